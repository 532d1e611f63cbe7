"""Tests for gateway.transport: the in-memory pair, socket:// and a real pty.

Nothing here sleeps to let things happen: every wait is on an event (a future, a
stream read, a reader callback) bounded by a timeout. The only time-based assertions
are the documented wire-time wait before a baud switch and read/write timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import termios
from collections.abc import AsyncIterator, Iterator

import pytest
import serial

from gateway.errors import MeterTimeout, TransportError
from gateway.transport import Framing, MemoryTransport, SerialTransport, Transport, open_serial
from gateway.transport.base import ReceiveBuffer
from gateway.transport.serial import TX_SETTLE_MARGIN, _verify_line

HAS_PROC_FD = os.path.isdir("/proc/self/fd")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def other_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


# --------------------------------------------------------------------------- Framing


def test_framing_parameters() -> None:
    assert (Framing.SEVEN_E_ONE.bytesize, Framing.SEVEN_E_ONE.parity, Framing.SEVEN_E_ONE.stopbits) == (
        7,
        serial.PARITY_EVEN,
        serial.STOPBITS_ONE,
    )
    assert (Framing.EIGHT_N_ONE.bytesize, Framing.EIGHT_N_ONE.parity, Framing.EIGHT_N_ONE.stopbits) == (
        8,
        serial.PARITY_NONE,
        serial.STOPBITS_ONE,
    )
    assert Framing.SEVEN_E_ONE.bits_per_char == Framing.EIGHT_N_ONE.bits_per_char == 10
    assert Framing("7E1") is Framing.SEVEN_E_ONE


def test_wire_time_uses_ten_bits_per_character() -> None:
    a, _ = MemoryTransport.pair(300, Framing.SEVEN_E_ONE)
    assert a.wire_time(30) == pytest.approx(1.0)
    a8, _ = MemoryTransport.pair(9600, Framing.EIGHT_N_ONE)
    assert a8.wire_time(96) == pytest.approx(0.1)
    assert a8.wire_time(0) == 0


def test_invalid_line_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="baudrate"):
        MemoryTransport("x", 0)
    with pytest.raises(TypeError, match="Framing"):
        MemoryTransport("x", 300, "7E1")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- MemoryTransport


@pytest.fixture
def pair() -> tuple[MemoryTransport, MemoryTransport]:
    return MemoryTransport.pair()


async def test_memory_round_trip(pair: tuple[MemoryTransport, MemoryTransport]) -> None:
    a, b = pair
    await a.write(b"/?!\r\n", timeout=1)
    assert await b.read(timeout=1) == b"/?!\r\n"
    await b.write(b"/ABC5\\2XYZ\r\n", timeout=1)
    assert await a.read(timeout=1) == b"/ABC5\\2XYZ\r\n"
    assert isinstance(a, Transport)
    assert a.name == "memory:a"


async def test_memory_read_returns_what_is_available_up_to_max_bytes(
    pair: tuple[MemoryTransport, MemoryTransport],
) -> None:
    a, b = pair
    await a.write(b"abc", timeout=1)
    await a.write(b"def", timeout=1)
    assert await b.read(4, timeout=1) == b"abcd"
    assert await b.read(100, timeout=1) == b"ef"
    with pytest.raises(ValueError, match="max_bytes"):
        await b.read(0, timeout=1)


async def test_memory_read_waits_for_a_later_write(pair: tuple[MemoryTransport, MemoryTransport]) -> None:
    a, b = pair

    async def writer() -> None:
        await a.write(b"late", timeout=1)

    # gather starts the reader first, so it is parked on its waiter when the write lands.
    data, _ = await asyncio.gather(b.read(timeout=5), writer())
    assert data == b"late"


async def test_memory_read_timeout_raises_meter_timeout(
    pair: tuple[MemoryTransport, MemoryTransport],
) -> None:
    _, b = pair
    with pytest.raises(MeterTimeout, match=r"memory:b: no data received within 0\.02 s"):
        await b.read(timeout=0.02)
    assert issubclass(MeterTimeout, TransportError)
    assert not b.closed


async def test_outer_deadline_is_not_a_meter_timeout_and_leaves_the_reader_usable(
    pair: tuple[MemoryTransport, MemoryTransport],
) -> None:
    a, b = pair
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await b.read(timeout=5)
    await a.write(b"ok", timeout=1)
    assert await b.read(timeout=1) == b"ok"


async def test_memory_concurrent_reads_are_refused(pair: tuple[MemoryTransport, MemoryTransport]) -> None:
    a, b = pair

    async def second_reader() -> None:
        with pytest.raises(RuntimeError, match="already reading"):
            await b.read(timeout=5)
        await a.write(b"x", timeout=1)

    data, _ = await asyncio.gather(b.read(timeout=5), second_reader())
    assert data == b"x"


async def test_memory_close_drains_buffered_data_then_fails(
    pair: tuple[MemoryTransport, MemoryTransport],
) -> None:
    a, b = pair
    await a.write(b"last words", timeout=1)
    await a.close()
    assert a.closed
    assert b.closed
    assert await b.read(4, timeout=1) == b"last"
    assert await b.read(timeout=1) == b" words"
    with pytest.raises(TransportError, match="memory:b: connection closed by peer") as info:
        await b.read(timeout=1)
    assert not isinstance(info.value, MeterTimeout)
    with pytest.raises(TransportError, match="closed by peer"):
        await b.write(b"anyone?", timeout=1)
    with pytest.raises(TransportError, match="memory:a: transport is closed"):
        await a.read(timeout=1)
    with pytest.raises(TransportError, match="transport is closed"):
        await a.write(b"x", timeout=1)
    await a.close()  # idempotent
    await b.close()


async def test_memory_close_wakes_a_waiting_reader_on_the_other_end(
    pair: tuple[MemoryTransport, MemoryTransport],
) -> None:
    a, b = pair
    results = await asyncio.gather(b.read(timeout=5), a.close(), return_exceptions=True)
    assert isinstance(results[0], TransportError)
    assert "closed by peer" in str(results[0])


async def test_memory_local_close_wakes_own_reader_and_drops_buffer(
    pair: tuple[MemoryTransport, MemoryTransport],
) -> None:
    a, b = pair
    results = await asyncio.gather(b.read(timeout=5), b.close(), return_exceptions=True)
    assert isinstance(results[0], TransportError)
    assert "transport is closed" in str(results[0])
    with pytest.raises(TransportError, match="closed by peer"):
        await a.write(b"x", timeout=1)


async def test_memory_set_line_is_recorded(pair: tuple[MemoryTransport, MemoryTransport]) -> None:
    a, b = pair
    assert (a.baudrate, a.framing) == (300, Framing.SEVEN_E_ONE)
    assert a.line_history == []
    await a.set_line(9600)
    await a.set_line(9600, Framing.EIGHT_N_ONE)
    assert a.line_history == [(9600, Framing.SEVEN_E_ONE), (9600, Framing.EIGHT_N_ONE)]
    assert (a.baudrate, a.framing) == (9600, Framing.EIGHT_N_ONE)
    assert (b.baudrate, b.line_history) == (300, [])
    with pytest.raises(ValueError, match="baudrate"):
        await a.set_line(-1)
    await a.close()
    with pytest.raises(TransportError):
        await a.set_line(300)


async def test_memory_discard_input(pair: tuple[MemoryTransport, MemoryTransport]) -> None:
    a, b = pair
    await a.write(b"stale garbage", timeout=1)
    b.discard_input()
    await a.write(b"fresh", timeout=1)
    assert await b.read(timeout=1) == b"fresh"


async def test_transport_is_an_async_context_manager() -> None:
    a, b = MemoryTransport.pair()
    async with a:
        assert not a.closed
    assert a.closed
    with pytest.raises(TransportError):
        await b.read(timeout=1)


# --------------------------------------------------------------------------- socket://


class ScriptedPeer:
    """A TCP server on 127.0.0.1 whose connections the test drives by hand (it plays the meter)."""

    def __init__(self) -> None:
        self._accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self._done = asyncio.Event()
        self.handlers: list[asyncio.Task[object]] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"socket://127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.append(task)
        await self._accepted.put((reader, writer))
        try:
            await self._done.wait()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def accept(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(5):
            return await self._accepted.get()

    async def stop(self) -> None:
        self._done.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        await asyncio.gather(*self.handlers, return_exceptions=True)


@pytest.fixture
async def peer() -> AsyncIterator[ScriptedPeer]:
    scripted = ScriptedPeer()
    await scripted.start()
    yield scripted
    await scripted.stop()
    assert other_tasks() == set()


@pytest.fixture
async def link(peer: ScriptedPeer) -> AsyncIterator[SerialTransport]:
    transport = await open_serial(peer.url, timeout=5)
    yield transport
    await transport.close()


async def test_socket_round_trip(peer: ScriptedPeer, link: SerialTransport) -> None:
    reader, writer = await peer.accept()
    assert (link.baudrate, link.framing, link.url, link.name) == (
        300,
        Framing.SEVEN_E_ONE,
        peer.url,
        peer.url,
    )
    await link.write(b"/?!\r\n", timeout=2)
    async with asyncio.timeout(5):
        assert await reader.readexactly(5) == b"/?!\r\n"
    writer.write(b"/XYZ5ABC\r\n")
    await writer.drain()
    received = b""
    while len(received) < 10:
        received += await link.read(timeout=2)
    assert received == b"/XYZ5ABC\r\n"


async def test_socket_chunked_reads(peer: ScriptedPeer, link: SerialTransport) -> None:
    _, writer = await peer.accept()
    payload = bytes(range(256)) * 4
    writer.write(payload)
    await writer.drain()
    chunks: list[bytes] = []
    while sum(map(len, chunks)) < len(payload):
        chunks.append(await link.read(100, timeout=2))
    assert all(1 <= len(chunk) <= 100 for chunk in chunks)
    assert len(chunks) >= 11
    assert b"".join(chunks) == payload


async def test_socket_read_timeout(peer: ScriptedPeer, link: SerialTransport) -> None:
    await peer.accept()
    with pytest.raises(MeterTimeout, match=f"{peer.url}: no data received within 0.05 s"):
        await link.read(timeout=0.05)
    assert not link.closed


async def test_socket_peer_close_delivers_last_bytes_then_fails(
    peer: ScriptedPeer, link: SerialTransport
) -> None:
    # A StreamReader (what open_serial_connection returns) would raise before handing these out.
    _, writer = await peer.accept()
    writer.write(b"\x01B0\x03q")
    writer.close()
    await writer.wait_closed()
    # Let our side take in both the bytes and the end of the stream before reading.
    async with asyncio.timeout(5):
        await asyncio.shield(link._protocol.closed)
    assert link.closed
    received = b""
    while len(received) < 5:
        received += await link.read(timeout=2)
    assert received == b"\x01B0\x03q"
    with pytest.raises(TransportError) as info:
        await link.read(timeout=2)
    assert str(info.value) == f"{peer.url}: connection closed by peer"
    assert not isinstance(info.value, MeterTimeout)
    with pytest.raises(TransportError, match="closed by peer"):
        await link.write(b"x", timeout=1)
    await link.close()


async def test_socket_connection_refused_names_the_url() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"socket://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(TransportError, match=f"{url}: cannot open") as info:
        await open_serial(url, timeout=5)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("socket://127.0.0.1", "invalid socket URL"),
        ("socket://127.0.0.1:99999", "invalid socket URL"),
        ("nosuchscheme://foo", "cannot open"),
        ("loop://", "no file descriptor"),
        ("/dev/smx-no-such-tty", "cannot open"),
    ],
)
async def test_unusable_urls_raise_transport_error(url: str, message: str) -> None:
    fds = open_fds() if HAS_PROC_FD else 0
    with pytest.raises(TransportError, match=message) as info:
        await open_serial(url, timeout=5)
    assert url in str(info.value)
    assert info.value.__cause__ is not None or "socket URL" in str(info.value)
    if HAS_PROC_FD:
        assert open_fds() == fds


async def test_socket_set_line_only_records_and_does_not_wait(
    peer: ScriptedPeer, link: SerialTransport
) -> None:
    reader, _ = await peer.accept()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await link.write(b"A" * 60, timeout=2)  # 2 s at 300 baud on a real line
    await link.set_line(9600, Framing.EIGHT_N_ONE)
    assert loop.time() - start < 1.0  # socket:// has no UART to wait for
    assert (link.baudrate, link.framing) == (9600, Framing.EIGHT_N_ONE)
    await link.set_line(19200)
    assert (link.baudrate, link.framing) == (19200, Framing.EIGHT_N_ONE)
    async with asyncio.timeout(5):
        assert await reader.readexactly(60) == b"A" * 60


@pytest.mark.skipif(not HAS_PROC_FD, reason="needs /proc/self/fd")
async def test_socket_close_is_idempotent_and_releases_everything(peer: ScriptedPeer) -> None:
    fds = open_fds()
    link = await open_serial(peer.url, 9600, Framing.EIGHT_N_ONE, timeout=5)
    reader, _ = await peer.accept()
    await link.write(b"bye", timeout=2)
    await link.close()
    await link.close()
    assert link.closed
    async with asyncio.timeout(5):
        assert await reader.read() == b"bye"  # the peer sees our data, then EOF
    with pytest.raises(TransportError, match="transport is closed"):
        await link.read(timeout=1)
    with pytest.raises(TransportError, match="transport is closed"):
        await link.write(b"x", timeout=1)
    with pytest.raises(TransportError, match="transport is closed"):
        await link.set_line(300)
    link.discard_input()  # harmless after close
    assert other_tasks() <= set(peer.handlers)
    # our socket is gone; the peer's accepted socket is closed when the fixture stops
    assert open_fds() == fds + 1


async def test_socket_close_wakes_a_pending_read(peer: ScriptedPeer, link: SerialTransport) -> None:
    await peer.accept()
    results = await asyncio.gather(link.read(timeout=5), link.close(), return_exceptions=True)
    assert isinstance(results[0], TransportError)
    assert not isinstance(results[0], MeterTimeout)


async def test_socket_write_returns_only_once_the_os_has_the_bytes(peer: ScriptedPeer) -> None:
    link = await open_serial(peer.url, timeout=5)
    reader, _ = await peer.accept()
    # The peer does not read, so the socket buffers fill up and a write finally times out.
    chunk = b"\x55" * 32768
    accepted = 0
    timed_out: MeterTimeout | None = None
    for _ in range(4096):  # 128 MiB, far more than any socket buffers hold
        try:
            await link.write(chunk, timeout=0.1)
        except MeterTimeout as err:
            timed_out = err
            break
        accepted += len(chunk)
    assert timed_out is not None
    assert str(timed_out) == f"{peer.url}: could not send 32768 bytes within 0.1 s"
    await link.close()  # aborts: our unsent rest is dropped, close does not hang
    async with asyncio.timeout(10):
        delivered = len(await reader.read())  # what the OS had, then EOF
    # Every byte write() reported as sent was in the kernel and arrives; at most the
    # part of the timed-out chunk the OS had taken comes on top.
    assert accepted <= delivered < accepted + len(chunk)


async def test_socket_write_completes_when_the_peer_reads(peer: ScriptedPeer, link: SerialTransport) -> None:
    reader, _ = await peer.accept()
    big = bytes(range(256)) * (64 * 1024)  # 16 MiB

    async def drain_peer() -> bytes:
        return await reader.readexactly(len(big))

    async with asyncio.timeout(30):
        received, _ = await asyncio.gather(drain_peer(), link.write(big, timeout=30))
    assert received == big


async def test_socket_discard_input(peer: ScriptedPeer, link: SerialTransport) -> None:
    reader, writer = await peer.accept()
    writer.write(b"stale")
    await writer.drain()
    assert await link.read(1, timeout=2) == b"s"  # the rest of "stale" may be in our buffer
    # Make sure all of "stale" has arrived: the peer answers our ping only after it.
    await link.write(b"ping", timeout=2)
    async with asyncio.timeout(5):
        await reader.readexactly(4)
    writer.write(b"|fresh")
    await writer.drain()
    received = b""
    while not received.endswith(b"|fresh"):
        received += await link.read(timeout=2)
    link.discard_input()
    writer.write(b"new")
    await writer.drain()
    received = b""
    while len(received) < 3:
        received += await link.read(timeout=2)
    assert received == b"new"


# --------------------------------------------------------------------------- pty (a real tty device)


class PtyMaster:
    """The master side of a pseudo-terminal; its slave path is what the transport opens."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    async def read_exactly(self, n: int, timeout: float = 5.0) -> bytes:
        loop = asyncio.get_running_loop()
        buf = bytearray()
        done: asyncio.Future[None] = loop.create_future()

        def on_readable() -> None:
            try:
                buf.extend(os.read(self.master, 4096))
            except BlockingIOError:
                return
            if len(buf) >= n and not done.done():
                done.set_result(None)

        loop.add_reader(self.master, on_readable)
        try:
            async with asyncio.timeout(timeout):
                await done
        finally:
            loop.remove_reader(self.master)
        return bytes(buf)

    def write(self, data: bytes) -> None:
        assert os.write(self.master, data) == len(data)

    def close_master(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def close(self) -> None:
        self.close_master()
        os.close(self.slave)


@pytest.fixture
def pty() -> Iterator[PtyMaster]:
    master = PtyMaster()
    yield master
    master.close()


async def test_pty_8n1_round_trip_is_8_bit_clean(pty: PtyMaster) -> None:
    async with await open_serial(pty.path, 115200, Framing.EIGHT_N_ONE, timeout=5) as link:
        assert (link.baudrate, link.framing) == (115200, Framing.EIGHT_N_ONE)
        every_byte = bytes(range(256))
        await link.write(every_byte, timeout=2)
        assert await pty.read_exactly(256) == every_byte
        pty.write(every_byte)
        received = b""
        while len(received) < 256:
            received += await link.read(timeout=2)
        assert received == every_byte


async def test_pty_baud_switch_waits_for_the_wire_time(pty: PtyMaster) -> None:
    async with await open_serial(pty.path, 300, Framing.EIGHT_N_ONE, timeout=5) as link:
        loop = asyncio.get_running_loop()
        ack = b"\x06050\r\n" * 2 + b"abc"  # 15 characters = 0.5 s at 300 baud
        on_the_wire = link.wire_time(len(ack))
        assert on_the_wire == pytest.approx(0.5)
        start = loop.time()
        await link.write(ack, timeout=2)  # a pty takes the bytes at once
        await link.set_line(9600)  # ... but a UART would still be sending them
        elapsed = loop.time() - start
        assert elapsed >= on_the_wire + TX_SETTLE_MARGIN - 0.005  # 5 ms: timer granularity
        assert (link.baudrate, link.framing) == (9600, Framing.EIGHT_N_ONE)
        assert termios.tcgetattr(pty.slave)[5] == termios.B9600  # the device really switched
        assert await pty.read_exactly(len(ack)) == ack
        start = loop.time()
        await link.set_line(4800)  # nothing written since: no wait
        assert loop.time() - start < 0.25


def test_ptys_never_end_up_at_7e1(pty: PtyMaster) -> None:
    """Why 7E1 must fail on a pty: the request errors or is silently coerced to 8N1.

    On Linux the pty driver forces CS8 without parity; glibc's tcsetattr() reports that
    as EINVAL only if nothing else changed in the same call. Plain pyserial opening the
    pty at 300 baud (a speed change from the pty's 38400) therefore "succeeds" at 8N1.
    """
    try:
        port = serial.serial_for_url(pty.path, baudrate=300, bytesize=7, parity="E", stopbits=1)
    except (serial.SerialException, termios.error):
        return  # refused outright
    try:
        cflag = termios.tcgetattr(port.fd)[2]
    finally:
        port.close()
    assert (cflag & termios.CSIZE, cflag & termios.PARENB) == (termios.CS8, 0)


def test_read_back_catches_a_silently_coerced_line(pty: PtyMaster) -> None:
    """The termios read-back is what catches a coercion glibc does not report."""
    port = serial.serial_for_url(pty.path, baudrate=300, bytesize=7, parity="E", stopbits=1)
    try:
        with pytest.raises(TransportError, match=r"did not accept 300 baud 7E1; it reports framing 8N1"):
            _verify_line(port, pty.path, 300, Framing.SEVEN_E_ONE)
        _verify_line(port, pty.path, 300, Framing.EIGHT_N_ONE)  # what it really is: accepted
    finally:
        port.close()


@pytest.mark.parametrize("baudrate", [300, 38400])  # 38400 = the pty's own speed: glibc's EINVAL path
async def test_pty_7e1_is_rejected(pty: PtyMaster, baudrate: int) -> None:
    fds = open_fds() if HAS_PROC_FD else 0
    with pytest.raises(TransportError, match=rf"{pty.path}: .*{baudrate} baud 7E1") as info:
        await open_serial(pty.path, baudrate, Framing.SEVEN_E_ONE, timeout=5)
    assert not isinstance(info.value, MeterTimeout)
    if HAS_PROC_FD:
        assert open_fds() == fds  # the port opened for the attempt was closed again


async def test_pty_set_line_to_7e1_is_rejected_and_keeps_the_old_setting(pty: PtyMaster) -> None:
    async with await open_serial(pty.path, 2400, Framing.EIGHT_N_ONE, timeout=5) as link:
        with pytest.raises(TransportError, match=rf"{pty.path}: .*9600 baud 7E1"):
            await link.set_line(9600, Framing.SEVEN_E_ONE)  # speed changes too: read-back path
        with pytest.raises(TransportError, match=rf"{pty.path}: .*2400 baud 7E1"):
            await link.set_line(2400, Framing.SEVEN_E_ONE)  # only framing changes: glibc EINVAL path
        assert (link.baudrate, link.framing) == (2400, Framing.EIGHT_N_ONE)
        assert termios.tcgetattr(pty.slave)[5] == termios.B2400
        await link.write(b"still works", timeout=2)
        assert await pty.read_exactly(11) == b"still works"


async def test_pty_hangup_raises_transport_error(pty: PtyMaster) -> None:
    link = await open_serial(pty.path, 9600, Framing.EIGHT_N_ONE, timeout=5)
    pty.write(b"bye")
    received = b""
    while len(received) < 3:
        received += await link.read(timeout=2)
    pty.close_master()
    with pytest.raises(TransportError, match=pty.path) as info:
        await link.read(timeout=2)
    assert not isinstance(info.value, MeterTimeout)
    assert link.closed
    await link.close()
    await link.close()


@pytest.mark.skipif(not HAS_PROC_FD, reason="needs /proc/self/fd")
async def test_pty_close_releases_the_device(pty: PtyMaster) -> None:
    fds = open_fds()
    link = await open_serial(pty.path, 2400, Framing.EIGHT_N_ONE, timeout=5)
    assert open_fds() > fds
    link.discard_input()
    await link.close()
    assert open_fds() == fds
    assert other_tasks() == set()


async def test_bytes_arriving_as_the_timeout_expires_are_read_not_a_timeout() -> None:
    """A busy loop may run the timeout and the socket callback in the same pass."""
    buffer = ReceiveBuffer("test line")
    loop = asyncio.get_running_loop()
    # Due just before the read's own timeout: the bytes reach the buffer one pass later,
    # as a socket's data_received does after the selector reported it.
    loop.call_later(0.05, lambda: loop.call_soon(buffer.feed, b"\x7e"))
    assert await buffer.read(16, timeout=0.05) == b"\x7e"
    with pytest.raises(MeterTimeout, match=r"no data received within 0\.05 s"):
        await buffer.read(16, timeout=0.05)
