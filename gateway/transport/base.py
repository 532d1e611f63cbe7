"""The byte transport under the meter protocols.

A :class:`Transport` moves bytes and nothing else: it knows the line speed and the
character framing (so it can say how long bytes take on the wire), but nothing about
IEC 62056-21 or DLMS. Protocol code talks to this narrow interface; the concrete
transports are :class:`~gateway.transport.serial.SerialTransport` (serial devices and
pyserial URLs such as ``socket://host:port``) and
:class:`~gateway.transport.memory.MemoryTransport` (an in-process pair for tests).

Errors: a read or write that runs out of time raises :class:`~gateway.errors.MeterTimeout`;
a link that is closed, lost or was never opened raises :class:`~gateway.errors.TransportError`.
Timeouts are real (event-loop) seconds because the wire is real.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from types import TracebackType
from typing import Self

from gateway.errors import MeterTimeout, TransportError

__all__ = ["Framing", "Transport"]


class Framing(enum.Enum):
    """Character framing on an asynchronous serial line.

    IEC 62056-21 uses 7 data bits, even parity, one stop bit; DLMS/HDLC uses 8N1.
    The parity letters and numbers match pyserial's constants (``"E"``/``"N"``, 7/8, 1).
    """

    SEVEN_E_ONE = "7E1"
    EIGHT_N_ONE = "8N1"

    @property
    def bytesize(self) -> int:
        """Data bits per character."""
        return int(self.value[0])

    @property
    def parity(self) -> str:
        """Parity as pyserial spells it: ``"E"`` (even) or ``"N"`` (none)."""
        return self.value[1]

    @property
    def stopbits(self) -> int:
        """Stop bits per character."""
        return int(self.value[2])

    @property
    def bits_per_char(self) -> int:
        """Bits on the wire per character: start + data + parity + stop (10 for both framings)."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits


class Transport(abc.ABC):
    """A bidirectional byte link to one meter.

    ``read``/``write`` take an explicit ``timeout``: every exchange with a meter has a
    protocol-defined deadline, and running out of it surfaces as :class:`MeterTimeout`
    (a caller's own ``asyncio.timeout`` still raises ``TimeoutError`` as usual).
    One task may read while another writes; concurrent reads (or concurrent writes)
    are a programming error and raise :class:`RuntimeError`.
    """

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Where the link goes (URL or device path); used in error messages."""

    def __init__(self, baudrate: int, framing: Framing) -> None:
        check_line(baudrate, framing)
        #: Current line speed in bit/s, and character framing (changed by :meth:`set_line`).
        self.baudrate = baudrate
        self.framing = framing

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once :meth:`close` was called or the link was lost.

        Bytes received before the peer went away can still be read.
        """

    @abc.abstractmethod
    async def read(self, max_bytes: int = 4096, *, timeout: float) -> bytes:
        """Return at least one and at most ``max_bytes`` received bytes.

        Returns at once with whatever is buffered; otherwise waits up to ``timeout``
        seconds for data. Raises :class:`MeterTimeout` when nothing arrived in time
        and :class:`TransportError` when the link is closed and the buffer is empty.
        """

    @abc.abstractmethod
    async def write(self, data: bytes, *, timeout: float) -> None:
        """Send ``data``; return once all of it was handed to the operating system.

        Raises :class:`MeterTimeout` if that does not happen within ``timeout``
        seconds and :class:`TransportError` if the link is closed or fails.
        """

    @abc.abstractmethod
    async def set_line(self, baudrate: int, framing: Framing | None = None) -> None:
        """Change the line speed (and framing, if given) for everything that follows.

        Bytes already written are sent at the old setting first.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the link. Idempotent; pending reads fail with :class:`TransportError`."""

    @abc.abstractmethod
    def discard_input(self) -> None:
        """Drop every received byte not yet read (before a new sign-on)."""

    def wire_time(self, n_bytes: int) -> float:
        """Seconds ``n_bytes`` characters occupy the line at the current setting."""
        return n_bytes * self.framing.bits_per_char / self.baudrate

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def check_line(baudrate: int, framing: Framing) -> None:
    """Reject line settings no transport can honour (programming/config errors)."""
    if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
        raise ValueError(f"baudrate must be a positive integer, got {baudrate!r}")
    if not isinstance(framing, Framing):
        raise TypeError(f"framing must be a Framing, got {framing!r}")


class ReceiveBuffer:
    """Received bytes plus the reason the stream ended (shared by the transports).

    ``feed`` appends, ``end`` records why no more bytes will come (the first reason
    wins; buffered bytes stay readable), ``close_local`` drops everything because we
    closed our own end. ``read`` waits with a real-time timeout.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._data = bytearray()
        self._end_reason: str | None = None
        self._end_cause: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def ended(self) -> bool:
        return self._end_reason is not None

    def __len__(self) -> int:
        return len(self._data)

    def feed(self, data: bytes) -> None:
        if self._end_reason is None and data:
            self._data += data
            self._wake()

    def end(self, reason: str, cause: BaseException | None = None) -> None:
        if self._end_reason is None:
            self._end_reason = reason
            self._end_cause = cause
        self._wake()

    def close_local(self) -> None:
        self._data.clear()
        self._end_reason = "transport is closed"
        self._end_cause = None
        self._wake()

    def clear(self) -> None:
        self._data.clear()

    def error(self) -> TransportError:
        """A fresh exception describing why the stream ended."""
        err = TransportError(f"{self._name}: {self._end_reason or 'transport is closed'}")
        err.__cause__ = self._end_cause
        return err

    async def read(self, max_bytes: int, timeout: float) -> bytes:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        if self._waiter is not None:
            raise RuntimeError(f"{self._name}: another task is already reading")
        if not self._data and self._end_reason is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            except TimeoutError as err:
                # The timer can expire in the same loop iteration in which the first bytes
                # reach the kernel (a busy loop runs late). Two more passes of the loop
                # deliver them (the first queues the socket callback behind us), so a
                # meter is not blamed for the gateway's own delay.
                self._waiter = None
                for _ in range(2):
                    await asyncio.sleep(0)
                if not self._data and self._end_reason is None:
                    raise MeterTimeout(f"{self._name}: no data received within {timeout:g} s") from err
            finally:
                self._waiter = None
        if self._data:
            chunk = bytes(self._data[:max_bytes])
            del self._data[:max_bytes]
            return chunk
        raise self.error()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
