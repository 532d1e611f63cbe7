"""An MQTT-aware loopback TCP proxy that loses one message on purpose (issue 17: "a message
dropped on purpose by a test proxy").

Between a gateway (``ack = "broker"``) and mosquitto: what the client sends is parsed into
MQTT control packets (fixed header, remaining length; MQTT 5.0 §2.1); the ``drop``-th
PUBLISH whose topic ends with ``suffix`` is swallowed and answered with a PUBACK by the
proxy itself, so the box believes the broker has it and moves its cursor on. Everything
else goes through unchanged, both ways. That is the one loss consumer acknowledgements
would have caught and broker acknowledgements cannot: only the head-end's completeness
check finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

HOST = "127.0.0.1"
PUBLISH, PUBACK = 3, 4


@dataclass
class Dropped:
    topic: str
    packet_id: int
    payload: bytes


@dataclass
class DroppingProxy:
    target_port: int
    suffix: str
    drop: int = 1
    port: int = 0
    #: PUBLISH packets with a matching topic seen so far.
    matching: int = 0
    dropped: list[Dropped] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def wait_dropped(self, timeout: float) -> Dropped:
        async with asyncio.timeout(timeout):
            while not self.dropped:
                self._changed.clear()
                await self._changed.wait()
        return self.dropped[0]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
            self._writers.append(up_writer)
            down = asyncio.create_task(self._copy(up_reader, writer))
            try:
                await self._client_to_broker(reader, up_writer, writer)
            finally:
                down.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await down
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self._tasks.discard(task)

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    async def _client_to_broker(
        self, reader: asyncio.StreamReader, up: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        while True:
            first = await reader.readexactly(1)
            # Remaining length: a variable byte integer of up to four bytes (§1.5.5).
            length_bytes = b""
            length, shift = 0, 0
            while True:
                b = (await reader.readexactly(1))[0]
                length_bytes += bytes([b])
                length |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            body = await reader.readexactly(length)
            if first[0] >> 4 == PUBLISH and self._swallow(first[0], body, client):
                continue
            up.write(first + length_bytes + body)
            await up.drain()

    def _swallow(self, header: int, body: bytes, client: asyncio.StreamWriter) -> bool:
        """Whether this PUBLISH is the one to lose (then it is answered with a PUBACK here)."""
        qos = (header >> 1) & 3
        topic_len = int.from_bytes(body[:2], "big")
        topic = body[2 : 2 + topic_len].decode(errors="replace")
        if not topic.endswith(self.suffix) or qos != 1:
            return False
        self.matching += 1
        if self.matching != self.drop:
            return False
        packet_id = int.from_bytes(body[2 + topic_len : 4 + topic_len], "big")
        # The properties (a variable byte integer length, then the properties), then the payload.
        pos, props, shift = 4 + topic_len, 0, 0
        while True:
            b = body[pos]
            pos += 1
            props |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        self.dropped.append(Dropped(topic, packet_id, body[pos + props :]))
        self._changed.set()
        # PUBACK, remaining length 2: reason code Success and no properties (§3.4.2.1).
        client.write(bytes([PUBACK << 4, 2]) + packet_id.to_bytes(2, "big"))
        return True


@contextlib.asynccontextmanager
async def dropping_proxy(target_port: int, suffix: str, drop: int = 1) -> AsyncIterator[DroppingProxy]:
    """A :class:`DroppingProxy` to ``127.0.0.1:target_port`` for the block."""
    proxy = DroppingProxy(target_port, suffix, drop)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
