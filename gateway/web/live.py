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

#: Messages a slow client may fall behind by before the oldest are dropped.
QUEUE = 8
#: Sentinel telling a client's stream to end (the gateway stops).
_CLOSE: dict[str, Any] = {}


class LiveHub:
    """Latest snapshot per meter, and the clients listening for the next ones."""

    def __init__(self, render: Callable[[Snapshot], dict[str, Any]]) -> None:
        self._render = render
        self.latest: dict[str, Snapshot] = {}
        self._clients: set[asyncio.Queue[dict[str, Any]]] = set()
        self._closed = False

    def listen(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)
        if self._closed:  # a client that arrives while the gateway stops ends at once
            queue.put_nowait(_CLOSE)
        self._clients.add(queue)
        return queue

    def leave(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._clients.discard(queue)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Queue ``data`` as an event named ``event`` for every client."""
        message = {"event": event, "data": data}
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
    def closed(message: dict[str, Any]) -> bool:
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
