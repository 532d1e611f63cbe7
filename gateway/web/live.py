"""The live feed of the web page: one JSON message per meter and second, pushed as
Server-Sent Events (``GET /api/live``).

The hub is a poller listener placed after the market desk, so a message carries the
snapshot and the advice computed from that same snapshot, plus the external values with
their age. Each client has a short queue: a client that cannot keep up loses the oldest
messages (live values are worth nothing late) instead of growing the gateway's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from gateway.meter.model import EventRecord, ProfileData, Snapshot
from gateway.web.views import dumps

#: Messages a slow client may fall behind by before the oldest are dropped.
QUEUE = 8
#: Sentinel telling a client's stream to end (the gateway stops).
_CLOSE = b""


class LiveHub:
    """Latest snapshot per meter, and the clients listening for the next ones."""

    def __init__(self, render: Callable[[Snapshot], dict[str, Any]]) -> None:
        self._render = render
        self.latest: dict[str, Snapshot] = {}
        self._clients: set[asyncio.Queue[bytes]] = set()
        self._closed = False

    def listen(self) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE)
        if self._closed:  # a client that arrives while the gateway stops ends at once
            queue.put_nowait(_CLOSE)
        self._clients.add(queue)
        return queue

    def leave(self, queue: asyncio.Queue[bytes]) -> None:
        self._clients.discard(queue)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Queue ``data`` as an event named ``event`` for every client (encoded once for all)."""
        message = encode_event(event, data)
        for queue in self._clients:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)

    def close(self) -> None:
        """End every client's stream (the gateway stops)."""
        self._closed = True
        for queue in self._clients:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(_CLOSE)

    @staticmethod
    def closed(message: bytes) -> bool:
        return message is _CLOSE

    # -- poller listener ----------------------------------------------------------------

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        self.latest[snapshot.meter_id] = snapshot
        if self._clients:
            self.publish("snapshot", self._render(snapshot))

    async def on_profile(self, meter_id: str, profile: ProfileData) -> None:
        return None

    async def on_events(self, meter_id: str, events: Sequence[EventRecord]) -> None:
        return None


def encode_event(name: str, data: dict[str, Any]) -> bytes:
    """One Server-Sent Event (``event:`` and one ``data:`` line of compact JSON)."""
    return f"event: {name}\ndata: {dumps(data)}\n\n".encode()
