"""An in-process transport pair for tests: no sockets, no devices, no timing."""

from __future__ import annotations

from gateway.errors import TransportError
from gateway.transport.base import Framing, ReceiveBuffer, Transport, check_line

__all__ = ["MemoryTransport"]


class MemoryTransport(Transport):
    """One end of a connected in-memory pair (create both with :meth:`pair`).

    Bytes written on one end become readable on the other. Line settings are only
    recorded: every :meth:`set_line` call is appended to :attr:`line_history` so a test
    can assert that a baud switch happened (the ends do not have to agree).
    Writes never block, so ``timeout`` on :meth:`write` is accepted and unused.
    """

    def __init__(self, name: str, baudrate: int = 300, framing: Framing = Framing.SEVEN_E_ONE) -> None:
        super().__init__(baudrate, framing)
        self._name = name
        self._rx = ReceiveBuffer(name)
        self._peer: MemoryTransport | None = None
        self._closed = False
        self.line_history: list[tuple[int, Framing]] = []
        """Every ``set_line`` call in order, as ``(baudrate, framing)``."""

    @classmethod
    def pair(
        cls,
        baudrate: int = 300,
        framing: Framing = Framing.SEVEN_E_ONE,
        names: tuple[str, str] = ("memory:a", "memory:b"),
    ) -> tuple[MemoryTransport, MemoryTransport]:
        """Two connected ends, both starting at ``baudrate``/``framing``."""
        a = cls(names[0], baudrate, framing)
        b = cls(names[1], baudrate, framing)
        a._peer, b._peer = b, a
        return a, b

    @property
    def name(self) -> str:
        return self._name

    @property
    def closed(self) -> bool:
        return self._closed or self._rx.ended

    async def read(self, max_bytes: int = 4096, *, timeout: float) -> bytes:
        return await self._rx.read(max_bytes, timeout)

    async def write(self, data: bytes, *, timeout: float) -> None:
        if self._closed or self._rx.ended or self._peer is None:
            raise self._rx.error()
        self._peer._rx.feed(bytes(data))

    async def set_line(self, baudrate: int, framing: Framing | None = None) -> None:
        framing = self.framing if framing is None else framing
        check_line(baudrate, framing)
        if self._closed:
            raise TransportError(f"{self._name}: transport is closed")
        self.baudrate, self.framing = baudrate, framing
        self.line_history.append((baudrate, framing))

    def discard_input(self) -> None:
        self._rx.clear()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._rx.close_local()
        if self._peer is not None:
            self._peer._rx.end("connection closed by peer")
            self._peer = None
