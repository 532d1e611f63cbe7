"""A service manager's side of the notification protocol (``sd_notify(3)``), for tests: a
datagram socket the test listens on, as systemd does at ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path


class NotifyListener:
    """Binds ``path`` (or the abstract ``@name`` if ``path`` starts with "@"); every datagram
    received is kept as a dict of its ``KEY=VALUE`` lines, in order."""

    def __init__(self, path: str | Path) -> None:
        self.address = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.bind("\0" + self.address[1:] if self.address.startswith("@") else self.address)
        self._sock.setblocking(False)
        self.received: list[dict[str, str]] = []

    def environ(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.address}

    async def receive(self) -> dict[str, str]:
        """The next datagram."""
        data = await asyncio.get_running_loop().sock_recv(self._sock, 4096)
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.received.append(fields)
        return fields

    async def until(self, wanted: Callable[[dict[str, str]], bool], timeout: float = 60.0) -> dict[str, str]:
        """The first datagram from now on that ``wanted`` accepts (a hang guard, not a deadline)."""
        async with asyncio.timeout(timeout):
            while True:
                fields = await self.receive()
                if wanted(fields):
                    return fields

    def close(self) -> None:
        self._sock.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)
