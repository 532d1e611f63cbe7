"""A garbled line: a TCP proxy on loopback between the gateway and a (simulated) meter.

The gateway's ``socket://`` URL points at :attr:`GarbledLine.url`; every connection it
opens is forwarded to the meter's port, byte for byte, unless a knob says otherwise:

* ``corrupt``: probability per byte (either direction) that one of its 8 bits is flipped;
* ``drop``: probability per byte (either direction) that it is silently left out;
* ``silent``: the line carries nothing: bytes in either direction are lost;
* :meth:`GarbledLine.cut`: every connection is closed at once (both ends), as when a
  TCP-transparent modem loses its carrier;
* ``tamper``: a function applied to every chunk towards the gateway first (a test's own
  damage, e.g. one the protocol's check character cannot see);
* a meter that does not accept the connection: the gateway's connection is closed.

The knobs can be turned at any time; they act on the next chunk that passes. Random
decisions come from one seeded :class:`random.Random`, and :attr:`GarbledLine.stats`
counts everything the line did. Tests wait for the line with :meth:`GarbledLine.wait_for`
(woken by every change of the counters), never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.clock import Clock, SystemClock


@dataclass(slots=True)
class LineStats:
    """What the line did since it started."""

    #: Connections the gateway opened, and when (``clock.monotonic()`` of each accept).
    connections: int = 0
    connected_at: list[float] = field(default_factory=list)
    #: Connections closed because the meter did not accept the onward connection.
    refused: int = 0
    #: Connections closed by :meth:`GarbledLine.cut`.
    cuts: int = 0
    #: Bytes that came in from the gateway (towards the meter) and from the meter, before
    #: any knob acted on them.
    to_meter: int = 0
    to_gateway: int = 0
    corrupted: int = 0
    dropped: int = 0
    #: Bytes lost while the line was silent.
    swallowed: int = 0


class GarbledLine:
    """A TCP proxy ``host:port`` -> ``target_host:target_port`` with fault knobs."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        seed: int = 1,
        host: str = "127.0.0.1",
        clock: Clock | None = None,
    ) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.host = host
        self.port = 0
        self.corrupt = 0.0
        self.drop = 0.0
        self.silent = False
        self.tamper: Callable[[bytes], bytes] | None = None
        self.stats = LineStats()
        self._rng = random.Random(seed)
        self._clock = clock or SystemClock()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        """The URL the gateway uses instead of the meter's."""
        return f"socket://{self.host}:{self.port}"

    def clear(self) -> None:
        """Every knob back to a clean line."""
        self.corrupt = self.drop = 0.0
        self.silent = False
        self.tamper = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.cut()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def cut(self) -> int:
        """Close every connection now (both ends); return how many were open."""
        pairs = len(self._writers) // 2
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        self.stats.cuts += pairs
        self._touch()
        return pairs

    async def wait_for(self, predicate: Callable[[LineStats], bool], timeout: float) -> None:
        """Wait until ``predicate(stats)`` holds; fail with TimeoutError after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            while not predicate(self.stats):
                self._changed.clear()
                await self._changed.wait()

    def _touch(self) -> None:
        self._changed.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        self.stats.connected_at.append(self._clock.monotonic())
        self._touch()
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            self.stats.refused += 1
            self._touch()
            writer.close()
            return
        self._writers |= {writer, up_writer}
        to_meter = asyncio.create_task(self._pump(reader, up_writer, towards_meter=True))
        to_gateway = asyncio.create_task(self._pump(up_reader, writer, towards_meter=False))
        pumps = {to_meter, to_gateway}
        self._tasks |= pumps
        try:
            # Either end closing ends the connection: the other end is closed too.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            for task in pumps:
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
            self._tasks -= pumps
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()
            self._touch()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, towards_meter: bool
    ) -> None:
        while data := await reader.read(4096):
            out = self._garble(data if towards_meter or self.tamper is None else self.tamper(data))
            if towards_meter:
                self.stats.to_meter += len(data)
            else:
                self.stats.to_gateway += len(data)
            self._touch()
            if out:
                writer.write(out)
                await writer.drain()

    def _garble(self, data: bytes) -> bytes:
        if self.silent:
            self.stats.swallowed += len(data)
            return b""
        if not self.corrupt and not self.drop:
            return data
        out = bytearray()
        rng = self._rng
        for byte in data:
            if self.drop and rng.random() < self.drop:
                self.stats.dropped += 1
                continue
            if self.corrupt and rng.random() < self.corrupt:
                byte ^= 1 << rng.randrange(8)
                self.stats.corrupted += 1
            out.append(byte)
        return bytes(out)


__all__ = ["GarbledLine", "LineStats"]
