"""The live feed of the web page: one JSON message per meter and second, pushed as
Server-Sent Events (``GET /api/live``).

The hub listens to the market desk's advice, which comes with the snapshot it was
computed from: a message carries both, plus the external values with their age. Only the
latest of each meter is delivered to it (live values are worth nothing late). Each client
has a short queue: a client that cannot keep up loses the oldest messages instead of
growing the gateway's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from gateway.market.advice import Advice
from gateway.meter.feed import Delivery
from gateway.meter.model import Snapshot
from gateway.web.views import dumps

#: Messages a slow client may fall behind by before the oldest are dropped.
QUEUE = 8
#: Sentinel telling a client's stream to end (the gateway stops).
_CLOSE = b""


class LiveHub:
    """Latest snapshot per meter, and the clients listening for the next ones."""

    #: The page shows the present: a snapshot still waiting is replaced by a newer one.
    delivery = Delivery.LATEST

    def __init__(self, render: Callable[[Snapshot, Advice | None], dict[str, Any]]) -> None:
        self._render = render
        self.latest: dict[str, Snapshot] = {}
        self.advice: dict[str, Advice] = {}
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

    # -- advice listener ----------------------------------------------------------------

    async def on_advice(self, snapshot: Snapshot, advice: Advice) -> None:
        self.latest[snapshot.meter_id] = snapshot
        self.advice[snapshot.meter_id] = advice
        if self._clients:
            self.publish("snapshot", self._render(snapshot, advice))


def encode_event(name: str, data: dict[str, Any]) -> bytes:
    """One Server-Sent Event (``event:`` and one ``data:`` line of compact JSON)."""
    return f"event: {name}\ndata: {dumps(data)}\n\n".encode()
