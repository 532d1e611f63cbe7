"""A fast MQTT 5 publisher for load: packets framed here, messages from templates.

paho's cost per message would be the load generator's, not the measured side's; these few
pieces frame a PUBLISH by hand and write many at once. Shared by the head-end's load
bench (``bench/headend_load.py``) and the portfolio load test
(``tests/headend/test_portfolio_load.py``, :mod:`tests.support.portfolio_load`).

* :class:`Template`: an encoded message cut at its sentinels (unique texts where one
  message differs from the next); per message only those are put in.
* :func:`publish_packet`, :func:`connect_packet`, :func:`receive_maximum`: MQTT 5 framing,
  every PUBLISH with the uplink's ContentType property.
* :class:`Connection`: one client connection (plain TCP, no keepalive) that publishes
  pre-framed packets; QoS 1 publishes respect the broker's Receive Maximum.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.pubsub import codec


@dataclass(frozen=True, slots=True)
class Template:
    """An encoded message cut at its sentinels: ``render`` puts the values in (in the order of
    the ``slots`` it was cut at)."""

    parts: tuple[bytes, ...]
    slots: tuple[int, ...]

    @classmethod
    def of(cls, encoded: bytes, slots: Sequence[bytes]) -> Template:
        found: list[tuple[int, int]] = []
        for slot, text in enumerate(slots):
            at = encoded.find(text)
            if at >= 0:
                if encoded.find(text, at + 1) >= 0:
                    raise ValueError(f"sentinel {text!r} twice in a template")
                found.append((at, slot))
        found.sort()
        parts, start = [], 0
        for at, slot in found:
            parts.append(encoded[start:at])
            start = at + len(slots[slot])
        parts.append(encoded[start:])
        return cls(tuple(parts), tuple(slot for _at, slot in found))

    def render(self, values: Sequence[bytes]) -> bytes:
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out.append(values[slot])
            out.append(part)
        return b"".join(out)


# -- MQTT 5 framing ---------------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = n >> 7, n & 0x7F
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


#: The ContentType property the uplink sets (``application/json``).
_PROPS = b"\x03" + _utf8(codec.CONTENT_TYPE)
_PROPS = varint(len(_PROPS)) + _PROPS


def publish_packet(topic: bytes, payload: bytes, qos: int, packet_id: int = 0, retain: bool = False) -> bytes:
    """An MQTT 5 PUBLISH with the ContentType property."""
    head = _utf8(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + _PROPS
    return b"".join((bytes((0x30 | qos << 1 | retain,)), varint(len(head) + len(payload)), head, payload))


def connect_packet(client_id: str) -> bytes:
    """An MQTT 5 CONNECT: clean start, no keepalive, no properties."""
    body = _utf8("MQTT") + bytes((5, 0x02)) + (0).to_bytes(2, "big") + b"\x00" + _utf8(client_id)
    return b"\x10" + varint(len(body)) + body


def parse_varint(data: bytes, at: int) -> tuple[int, int]:
    """(value, next offset) of the variable byte integer at ``at``."""
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def receive_maximum(connack: bytes) -> int:
    """The Receive Maximum of a CONNACK's body (flags, reason, properties); 65535 if absent."""
    if connack[1] != 0:
        raise ConnectionError(f"CONNACK reason 0x{connack[1]:02x}")
    length, at = parse_varint(connack, 2)
    end = at + length
    while at < end:
        prop = connack[at]
        at += 1
        if prop == 0x21:
            return int.from_bytes(connack[at : at + 2], "big")
        if prop in (0x24, 0x25, 0x28, 0x29, 0x2A):  # byte properties
            at += 1
        elif prop in (0x13, 0x22):  # two-byte integers
            at += 2
        elif prop in (0x11, 0x27):  # four-byte integers
            at += 4
        elif prop in (0x12, 0x15, 0x1A, 0x1C, 0x1F, 0x16):  # strings, binary
            at += 2 + int.from_bytes(connack[at : at + 2], "big")
        elif prop == 0x26:  # user property: two strings
            for _ in range(2):
                at += 2 + int.from_bytes(connack[at : at + 2], "big")
        else:
            raise ValueError(f"CONNACK property 0x{prop:02x}")
    return 65535


class Connection:
    """One MQTT 5 client connection that publishes pre-framed packets (no keepalive)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, receive_max: int) -> None:
        self.reader, self.writer = reader, writer
        self.receive_max = receive_max
        #: QoS 1 publishes not acknowledged yet.
        self.inflight = 0
        self.buffer: list[bytes] = []
        self._freed = asyncio.Event()
        self._next_id = 0
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, host: str, port: int, client_id: str) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(connect_packet(client_id))
        first = await reader.readexactly(1)
        if first[0] != 0x20:
            raise ConnectionError(f"expected CONNACK, got packet type 0x{first[0]:02x}")
        length = await _read_varint(reader)
        return cls(reader, writer, receive_maximum(await reader.readexactly(length)))

    async def publish(self, topic: bytes, payload: bytes, qos: int, retain: bool = False) -> None:
        """Queue a PUBLISH (a QoS 1 one waits for a free slot of the Receive Maximum)."""
        packet_id = 0
        if qos:
            while self.inflight >= self.receive_max:
                await self.flush()
                self._freed.clear()
                await self._freed.wait()
            self.inflight += 1
            self._next_id = self._next_id % 0xFFFF + 1
            packet_id = self._next_id
        self.buffer.append(publish_packet(topic, payload, qos, packet_id, retain))

    async def flush(self) -> None:
        if self.buffer:
            self.writer.write(b"".join(self.buffer))
            self.buffer.clear()
        await self.writer.drain()

    async def settle(self) -> None:
        """Wait until every QoS 1 publish is acknowledged."""
        await self.flush()
        while self.inflight:
            self._freed.clear()
            await self._freed.wait()

    async def _read(self) -> None:
        while True:
            head = await self.reader.readexactly(1)
            await self.reader.readexactly(await _read_varint(self.reader))
            if head[0] >> 4 == 4:  # PUBACK
                self.inflight -= 1
                self._freed.set()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(ConnectionError):
            self.writer.write(b"\xe0\x00")  # DISCONNECT, normal
            await self.writer.drain()
        self.writer.close()


async def _read_varint(reader: asyncio.StreamReader) -> int:
    value, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7


async def connections(url: str, n: int, name: str) -> list[Connection]:
    """``n`` connections to the broker at ``mqtt://host:port``, client ids ``name-<c>``."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return [await Connection.open(host, int(port), f"{name}-{c}") for c in range(n)]
