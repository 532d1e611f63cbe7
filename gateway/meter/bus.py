"""Several DLMS meters on one line: an RS485 multi-drop bus (DESIGN §3).

The common field case: two or more meters on one RS485 pair behind one serial port, told
apart by their HDLC server address (IEC 62056-46 §6.4.2.2: the physical device address,
the lower HDLC address). Every meter keeps its own HDLC link and association; frames for
another station are ignored by each side's HDLC core, so the associations can stay open
side by side. What the meters must share is the line's time: a half-duplex bus carries one
exchange at a time.

:class:`SharedLine` is the one owner of such a line. It opens the port once (again after
the port itself failed), gives each meter's session a :class:`LineTap` (a
:class:`~gateway.transport.Transport` whose ``close`` leaves the port open), and hands the
line out in turns: each meter's poller runs its cycle (or its sign-on) while holding its
:class:`LineShare`'s turn, the pollers' cycles offset by an equal slot each, every poller
planning with its share of the cycle as its budget. A meter that does not answer costs
the others its response timeouts, as on a real bus; its backoff keeps that rare.

A line of its own is a :class:`LineShare` with the whole cycle and no lock to take
(:data:`OWN_LINE`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from gateway.errors import MeterTimeout, TransportError
from gateway.transport import Framing, Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LineShare:
    """One meter's part of its line: how many meters share it, which slot is this one's."""

    #: Meters on the line (1: a line of its own).
    stations: int = 1
    #: This meter's place among them (0-based): its cycles start ``slot / stations`` of a
    #: cycle after the first meter's.
    slot: int = 0
    #: Held for a cycle or a sign-on on a shared line; None on a line of its own.
    lock: asyncio.Lock | None = field(default=None, compare=False)

    @property
    def fraction(self) -> float:
        """Share of each cycle this meter's poller may plan with."""
        return 1.0 / self.stations

    def offset_s(self, cycle_s: float) -> float:
        """How long after the line's start this meter's first cycle begins."""
        return cycle_s * self.slot / self.stations

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """The line for one exchange sequence (FIFO among the meters: asyncio's lock is fair)."""
        if self.lock is None:
            yield
            return
        async with self.lock:
            yield


#: A meter alone on its line.
OWN_LINE = LineShare()


class SharedLine:
    """The owner of one port several meters are polled over (a multi-drop bus)."""

    def __init__(
        self, name: str, open_port: Callable[[], Awaitable[Transport]], meters: Sequence[str]
    ) -> None:
        if len(set(meters)) != len(meters) or not meters:
            raise ValueError(f"a shared line needs distinct meters, got {list(meters)}")
        self.name = name
        self._open_port = open_port
        self._lock = asyncio.Lock()
        self._opening = asyncio.Lock()
        self._port: Transport | None = None
        self.shares = {m: LineShare(len(meters), n, self._lock) for n, m in enumerate(meters)}

    async def tap(self) -> LineTap:
        """A transport onto the line for one meter session (the port opened if it is not)."""
        async with self._opening:
            if self._port is None or self._port.closed:
                self._port = await self._open_port()
                log.info("line %s open, shared by %d meters", self.name, len(self.shares))
            return LineTap(self, self._port)

    async def port_failed(self, port: Transport, err: TransportError) -> None:
        """The port itself broke (not a meter's silence): close it; the next tap reopens it."""
        if port is self._port:
            log.warning("line %s failed: %s", self.name, err)
            self._port = None
            with contextlib.suppress(TransportError):
                await port.close()

    async def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(TransportError):
                await port.close()


class LineTap(Transport):
    """One meter session's view of a shared port.

    Reads, writes and line settings go to the port; ``close`` ends only this view (the
    session has sent its DISC; the other meters' links stay up). A timeout is the meter's
    silence and leaves the port alone; any other transport error is the port's, and the
    line reopens it for whoever comes next.
    """

    def __init__(self, line: SharedLine, port: Transport) -> None:
        super().__init__(port.baudrate, port.framing)
        self._line = line
        self._port = port
        self._closed = False

    @property
    def name(self) -> str:
        return self._port.name

    @property
    def closed(self) -> bool:
        return self._closed or self._port.closed

    def _check(self) -> None:
        if self._closed:
            raise TransportError(f"{self.name}: this meter's session on the line is closed")

    async def _port_error(self, err: TransportError) -> None:
        if not isinstance(err, MeterTimeout):
            await self._line.port_failed(self._port, err)

    async def read(self, max_bytes: int = 4096, *, timeout: float) -> bytes:
        self._check()
        try:
            return await self._port.read(max_bytes, timeout=timeout)
        except TransportError as err:
            await self._port_error(err)
            raise

    async def write(self, data: bytes, *, timeout: float) -> None:
        self._check()
        try:
            await self._port.write(data, timeout=timeout)
        except TransportError as err:
            await self._port_error(err)
            raise

    async def set_line(self, baudrate: int, framing: Framing | None = None) -> None:
        self._check()
        await self._port.set_line(baudrate, framing)
        self.baudrate, self.framing = self._port.baudrate, self._port.framing

    def discard_input(self) -> None:
        if not self._closed:
            self._port.discard_input()

    def wire_time(self, n_bytes: int) -> float:
        return self._port.wire_time(n_bytes)

    async def close(self) -> None:
        self._closed = True
