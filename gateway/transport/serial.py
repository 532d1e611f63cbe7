"""Serial ports and pyserial URLs as a :class:`~gateway.transport.base.Transport`.

:func:`open_serial` accepts what :func:`serial.serial_for_url` accepts that has a file
descriptor: device paths (``/dev/ttyUSB0``, a pty slave) and URL handlers wrapping one
(``spy://``, ``hwgrep://``, ``alt://``). Those go through pyserial-asyncio
(``serial.serial_for_url`` + ``serial_asyncio.connection_for_serial``, the functions
``serial_asyncio.open_serial_connection`` is built from); the blocking open runs in a
worker thread so ``timeout`` can interrupt it.

Received bytes go to our own :class:`asyncio.Protocol`, not to the ``StreamReader`` that
``open_serial_connection`` builds: a ``StreamReader`` raises a stored connection error
before returning bytes it still buffers, so the last bytes before a hang-up were lost.

``socket://host:port`` is parsed by pyserial's own socket handler
(:meth:`serial.urlhandler.protocol_socket.Serial.from_url`, same syntax) but connected
with :meth:`asyncio.loop.create_connection`. pyserial-asyncio 0.6 does move bytes over
``socket://`` (the handler has ``fileno()`` and a non-blocking ``read``/``write`` at
timeout 0), but it is not fit for a gateway that shares its event loop:

* ``close()`` of the socket handler calls ``time.sleep(0.3)``: every close freezes the
  loop for 300 ms;
* opening is a synchronous ``socket.create_connection(timeout=5)`` on the loop thread;
* the peer's close arrives as ``SerialException("read failed: socket disconnected")``
  instead of an end-of-file.

pyserial ignores baud rate and framing for ``socket://`` anyway, so nothing is lost:
:meth:`SerialTransport.set_line` only records them there (and does not wait, as there
is no UART of ours behind the socket).

Draining before a baud switch: :meth:`SerialTransport.write` returns once the bytes are
in the kernel, but a UART may still be shifting them out. Changing the speed then would
garble the tail (IEC 62056-21 mode C switches right after the acknowledgement). The
transport keeps an estimate of when the transmitter goes idle - start of each write (or
end of the previous estimate, if later) plus :meth:`wire_time` plus a small margin - and
:meth:`SerialTransport.set_line` and :meth:`SerialTransport.close` ``asyncio.sleep`` until
then. We do not run ``tcdrain()`` (pyserial ``flush()``) in a worker thread: it cannot be
cancelled, it races with closing the descriptor, and several USB-serial drivers do not
report an empty transmitter reliably. The computed wait is the only sleep in this module.

Pseudo-terminals carry 8N1 only: the Linux pty driver silently rewrites a 7E1 request
to CS8 without parity. glibc's ``tcsetattr()`` notices and fails with ``EINVAL`` - but
only when no other setting (e.g. the speed) changed in the same call. Opening a pty at
300 baud changes the speed, so pyserial's open "succeeds" at what is really 8N1 (only a
later reconfiguration trips over it). Hence every configuration is read back with
``tcgetattr()``: a device that did not take the requested framing or standard baud rate
raises :class:`~gateway.errors.TransportError`, whatever the C library reports, so 7E1
on a pty fails loudly. A rejected :meth:`SerialTransport.set_line` restores the previous
setting. Modem lines (DTR/RTS/CTS) are never required.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import termios
from typing import Any

import serial
import serial_asyncio

from gateway.errors import MeterTimeout, TransportError
from gateway.transport.base import Framing, ReceiveBuffer, Transport, check_line

__all__ = ["SerialTransport", "open_serial"]

# Errors pyserial and the OS raise for a port or socket (ConnectionError is an OSError).
_LINK_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)
# pyserial also raises ValueError for settings and URLs it cannot parse.
_SETTING_ERRORS: tuple[type[BaseException], ...] = (*_LINK_ERRORS, ValueError)

# Added to the computed wire time before a baud switch: USB-serial latency and the
# estimate's rounding. Well below the 200 ms a meter waits before answering after a switch.
TX_SETTLE_MARGIN = 0.02


class _LinkProtocol(asyncio.Protocol):
    """Buffers received bytes and tracks write flow control for one connection."""

    def __init__(self, name: str) -> None:
        self.rx = ReceiveBuffer(name)
        self.lost = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.rx.feed(data)

    def eof_received(self) -> bool:
        self.rx.end("connection closed by peer")
        return False  # let the transport close itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is None:
            self.rx.end("connection closed by peer")
        else:
            self.rx.end(f"connection lost: {exc}", exc)
        self._wake_drain()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drain()

    async def drain(self) -> None:
        """Wait until the transport's write buffer is empty (or the link is lost)."""
        while self._paused and not self.lost:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    def _wake_drain(self) -> None:
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)


class SerialTransport(Transport):
    """A serial device or ``socket://`` link; create it with :func:`open_serial`."""

    def __init__(
        self,
        url: str,
        transport: asyncio.Transport,
        protocol: _LinkProtocol,
        port: Any,
        baudrate: int,
        framing: Framing,
    ) -> None:
        super().__init__(baudrate, framing)
        self._url = url
        self._transport = transport
        self._protocol = protocol
        self._port = port  # the pyserial Serial instance, None for socket://
        self._closing = False
        self._writing = False
        self._tx_idle_at = 0.0  # loop time when the UART has sent everything written
        # high=0: any byte the OS has not taken yet pauses us, so drain() means "in the kernel".
        transport.set_write_buffer_limits(high=0)

    @property
    def name(self) -> str:
        return self._url

    @property
    def url(self) -> str:
        return self._url

    @property
    def closed(self) -> bool:
        return self._closing or self._protocol.lost or self._protocol.rx.ended

    async def read(self, max_bytes: int = 4096, *, timeout: float) -> bytes:
        return await self._protocol.rx.read(max_bytes, timeout)

    async def write(self, data: bytes, *, timeout: float) -> None:
        self._check_usable()
        if self._writing:
            raise RuntimeError(f"{self._url}: another task is already writing")
        if not data:
            return
        loop = asyncio.get_running_loop()
        self._tx_idle_at = max(loop.time(), self._tx_idle_at) + self.wire_time(len(data))
        self._writing = True
        try:
            self._transport.write(bytes(data))
            async with asyncio.timeout(timeout):
                await self._protocol.drain()
        except TimeoutError as err:
            raise MeterTimeout(f"{self._url}: could not send {len(data)} bytes within {timeout:g} s") from err
        finally:
            self._writing = False
        if self._protocol.lost:
            raise self._protocol.rx.error()
        self._tx_idle_at = max(self._tx_idle_at, loop.time())

    async def set_line(self, baudrate: int, framing: Framing | None = None) -> None:
        framing = self.framing if framing is None else framing
        check_line(baudrate, framing)
        self._check_usable()
        if self._port is not None:
            await self._wait_tx_idle()
            self._check_usable()
            try:
                self._port.apply_settings(_settings(baudrate, framing))
                _verify_line(self._port, self._url, baudrate, framing)
            except TransportError:
                self._restore_line()
                raise
            except _SETTING_ERRORS as err:
                self._restore_line()
                raise TransportError(
                    f"{self._url}: cannot set line to {baudrate} baud {framing.value}: {err}"
                ) from err
        self.baudrate, self.framing = baudrate, framing

    def discard_input(self) -> None:
        self._protocol.rx.clear()
        if self._port is not None and not self.closed:
            try:
                self._port.reset_input_buffer()
            except _LINK_ERRORS as err:
                raise TransportError(f"{self._url}: cannot discard input: {err}") from err

    async def close(self) -> None:
        if self._closing:
            await asyncio.shield(self._protocol.closed)
            return
        self._closing = True
        self._protocol.rx.close_local()
        # Graceful only if everything written is already in the kernel; a write that timed
        # out or is still running leaves output we drop instead of waiting for it.
        graceful = not self._writing and not self._transport.get_write_buffer_size()
        try:
            if graceful and self._port is not None and not self._protocol.lost:
                await self._wait_tx_idle()  # let the last message (e.g. a break) leave the UART
        except BaseException:
            graceful = False  # cancelled: do not let pyserial-asyncio's tcdrain() block the loop
            raise
        finally:
            if graceful:
                self._transport.close()
            else:
                self._abandon_output()
                self._transport.abort()
        await asyncio.shield(self._protocol.closed)

    def _check_usable(self) -> None:
        if self.closed:
            raise self._protocol.rx.error()

    async def _wait_tx_idle(self) -> None:
        delay = self._tx_idle_at + TX_SETTLE_MARGIN - asyncio.get_running_loop().time()
        if self._tx_idle_at and delay > 0:
            await asyncio.sleep(delay)

    def _restore_line(self) -> None:
        """Put the port back to the current setting after a rejected change (best effort)."""
        with contextlib.suppress(*_SETTING_ERRORS):
            self._port.apply_settings(_settings(self.baudrate, self.framing))

    def _abandon_output(self) -> None:
        """Drop unsent output, so closing does not block in tcdrain() (pyserial-asyncio calls it)."""
        if self._port is not None:
            with contextlib.suppress(*_LINK_ERRORS):
                self._port.reset_output_buffer()


def _settings(baudrate: int, framing: Framing) -> dict[str, Any]:
    return {
        "baudrate": baudrate,
        "bytesize": framing.bytesize,
        "parity": framing.parity,
        "stopbits": framing.stopbits,
    }


def _verify_line(port: Any, url: str, baudrate: int, framing: Framing) -> None:
    """Read the termios settings back; raise if the device silently changed them."""
    fd = getattr(port, "fd", None)
    if not isinstance(fd, int):
        return
    try:
        attrs = termios.tcgetattr(fd)
    except termios.error:
        return  # not a terminal: nothing to verify
    cflag, ospeed = attrs[2], attrs[5]
    size = {termios.CS5: 5, termios.CS6: 6, termios.CS7: 7, termios.CS8: 8}.get(cflag & termios.CSIZE, 0)
    parity = ("O" if cflag & termios.PARODD else "E") if cflag & termios.PARENB else "N"
    actual = f"{size}{parity}{2 if cflag & termios.CSTOPB else 1}"
    problems = []
    if actual != framing.value:
        problems.append(f"framing {actual} instead of {framing.value}")
    wanted_speed = getattr(termios, f"B{baudrate}", None)  # non-standard rates: not checkable
    if wanted_speed is not None and ospeed != wanted_speed:
        problems.append(f"a different speed than {baudrate} baud")
    if problems:
        raise TransportError(
            f"{url}: the device did not accept {baudrate} baud {framing.value}; it reports "
            + " and ".join(problems)
            + " (pseudo-terminals, for one, only carry 8N1)"
        )


def _open_port(url: str, baudrate: int, framing: Framing) -> Any:
    """Open and verify a pyserial port (blocking; runs in a worker thread)."""
    port = serial.serial_for_url(url, **_settings(baudrate, framing))
    try:
        try:
            port.fileno()
        except (OSError, ValueError, AttributeError) as err:
            raise TransportError(
                f"{url}: this pyserial URL handler has no file descriptor, so it cannot be used "
                "with asyncio; use a device path or socket://host:port"
            ) from err
        _verify_line(port, url, baudrate, framing)
    except BaseException:
        port.close()
        raise
    return port


def _close_quietly(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        with contextlib.suppress(*_LINK_ERRORS):
            fut.result().close()


async def _open_device(url: str, baudrate: int, framing: Framing) -> Any:
    """Run :func:`_open_port` in a thread; if we are cancelled, close the port it opens."""
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, functools.partial(_open_port, url, baudrate, framing))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        fut.add_done_callback(_close_quietly)
        raise


def _socket_address(url: str) -> tuple[str, int]:
    """Parse ``socket://host:port`` with pyserial's own socket URL handler."""
    from serial.urlhandler import protocol_socket

    expected = "expected socket://<host>:<port> with a port in 1..65535"
    try:
        host, port = protocol_socket.Serial().from_url(url)
    except serial.SerialException as err:
        raise TransportError(f"{url}: invalid socket URL: {err}") from err
    except (ValueError, TypeError, KeyError) as err:
        # pyserial 3.5 fails with TypeError on a missing port and KeyError while
        # formatting its own message for an out-of-range one.
        raise TransportError(f"{url}: invalid socket URL, {expected}") from err
    if not host or not port:
        raise TransportError(f"{url}: invalid socket URL, {expected}")
    return str(host), int(port)


async def open_serial(
    url: str,
    baudrate: int = 300,
    framing: Framing = Framing.SEVEN_E_ONE,
    *,
    timeout: float,
) -> SerialTransport:
    """Open a serial device path or pyserial URL at ``baudrate``/``framing``.

    Raises :class:`TransportError` (naming ``url``) if the device does not exist, the
    connection is refused, the URL is invalid or the device rejects the line setting,
    and :class:`MeterTimeout` if opening takes longer than ``timeout`` seconds.
    """
    check_line(baudrate, framing)
    loop = asyncio.get_running_loop()
    protocol = _LinkProtocol(url)
    scheme, separator, _ = url.partition("://")
    is_socket = bool(separator) and scheme.lower() == "socket"
    try:
        async with asyncio.timeout(timeout):
            if is_socket:
                host, port_number = _socket_address(url)
                transport, _ = await loop.create_connection(lambda: protocol, host, port_number)
                port = None
            else:
                port = await _open_device(url, baudrate, framing)
                try:
                    transport, _ = await serial_asyncio.connection_for_serial(loop, lambda: protocol, port)
                except BaseException:
                    port.close()
                    raise
    except TimeoutError as err:
        raise MeterTimeout(f"{url}: could not open within {timeout:g} s") from err
    except _SETTING_ERRORS as err:
        raise TransportError(f"{url}: cannot open at {baudrate} baud {framing.value}: {err}") from err
    return SerialTransport(url, transport, protocol, port, baudrate, framing)
