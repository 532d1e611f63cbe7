"""The hand-off from a producer to its consumers: the producer never waits on them.

The poller owns the meter's line and its 1-second cycle (DESIGN §1); what it publishes
(snapshots, load-profile pieces, events) goes to consumers that may be slow at times:
an OPC UA server notifying hundreds of monitored items, a market service writing its
advice, a web page, a disk. If the poller awaited them, a slow consumer would make its
cycle late. So it only *posts*: every consumer has a :class:`Mailbox` and a task of its
own that delivers the posted calls one at a time, in order. The market desk hands its
advice on the same way.

What a mailbox keeps while its consumer is busy is bounded, by policy:

* **records** (a profile piece, events) are delivered, every one, in order;
* a **state** (a snapshot, an advice) under :attr:`Delivery.LATEST` replaces the one of
  the same key still waiting (OPC UA values and the live page show the present: a value
  a second old is worth nothing once a newer one is there), counted as ``superseded``;
  under :attr:`Delivery.EVERY` every state is delivered (the archive's minute records,
  the market's energy at a period's start need each one);
* a mailbox holds at most :data:`CAPACITY` calls; beyond that the oldest is dropped,
  counted as ``dropped`` and logged (at most once a minute per mailbox), so a consumer
  that stops cannot take the box's memory.

A consumer says its policy with a ``delivery`` attribute (:attr:`Delivery.EVERY` if it
has none). Its failure is logged and never stops the others.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: Calls a mailbox keeps for a busy consumer: ten minutes of 1-second snapshots.
CAPACITY = 600
#: Seconds between two log lines about one mailbox dropping calls.
_DROP_LOG_S = 60.0


class Delivery(enum.Enum):
    """What a consumer needs of the states posted to it."""

    #: Only the newest state of each key; older ones still waiting are replaced.
    LATEST = "latest"
    #: Every state, in order.
    EVERY = "every"


@dataclass(slots=True)
class _Call:
    call: Callable[[], Awaitable[None]]
    #: States of one key replace each other under LATEST; None: a record.
    key: Hashable | None


class Mailbox:
    """The calls posted for one consumer, and the task that delivers them."""

    def __init__(self, name: str, delivery: Delivery = Delivery.EVERY, capacity: int = CAPACITY) -> None:
        self.name = name
        self.delivery = delivery
        self.capacity = capacity
        self._calls: deque[_Call] = deque()
        self._posted = asyncio.Event()
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._logged_drop = -_DROP_LOG_S
        #: Calls delivered, replaced by a newer state, and dropped for want of room.
        self.delivered = 0
        self.superseded = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._calls)

    def post(self, call: Callable[[], Awaitable[None]], key: Hashable | None = None) -> None:
        """Queue ``call`` (never blocks). ``key``: a state that a newer one of the same key
        replaces under :attr:`Delivery.LATEST`; None: a record, always delivered."""
        if key is not None and self.delivery is Delivery.LATEST:
            waiting = len(self._calls)
            self._calls = deque(c for c in self._calls if c.key != key)
            self.superseded += waiting - len(self._calls)
        if len(self._calls) >= self.capacity:
            self._calls.popleft()
            self.dropped += 1
            now = time.monotonic()
            if now - self._logged_drop >= _DROP_LOG_S:
                self._logged_drop = now
                log.error(
                    "%s cannot keep up: %d calls dropped so far (at most %d wait)",
                    self.name, self.dropped, self.capacity,
                )  # fmt: skip
        self._calls.append(_Call(call, key))
        self._idle.clear()
        self._posted.set()

    async def run(self) -> None:
        """Deliver the calls posted, one at a time; only cancellation ends it."""
        while True:
            while not self._calls:
                self._idle.set()
                self._posted.clear()
                await self._posted.wait()
            item = self._calls.popleft()
            try:
                await item.call()
            except Exception:
                what = getattr(getattr(item.call, "func", item.call), "__name__", "call")
                log.exception("%s: %s failed", self.name, what)
            self.delivered += 1

    async def drained(self) -> None:
        """Wait until every call posted so far has been delivered (tests, shutdown)."""
        await self._idle.wait()


class Outbox:
    """A producer's mailboxes, one per consumer."""

    def __init__(self) -> None:
        self.mailboxes: list[Mailbox] = []
        self._tasks: asyncio.TaskGroup | None = None

    def add(self, name: str, delivery: Delivery = Delivery.EVERY) -> Mailbox:
        """A mailbox for one more consumer (delivered at once if the outbox runs already)."""
        mailbox = Mailbox(name, delivery)
        self.mailboxes.append(mailbox)
        if self._tasks is not None:
            self._tasks.create_task(mailbox.run(), name=f"deliver to {mailbox.name}")
        return mailbox

    async def run(self) -> None:
        """Run every mailbox's delivery; only cancellation ends it."""
        async with asyncio.TaskGroup() as tasks:
            for mailbox in self.mailboxes:
                tasks.create_task(mailbox.run(), name=f"deliver to {mailbox.name}")
            self._tasks = tasks
            try:
                await asyncio.Event().wait()  # the group lives as long as the outbox runs
            finally:
                self._tasks = None

    async def drained(self) -> None:
        for mailbox in self.mailboxes:
            await mailbox.drained()


def delivery_of(consumer: object) -> Delivery:
    """A consumer's policy: its ``delivery`` attribute, else every state."""
    found = getattr(consumer, "delivery", Delivery.EVERY)
    return found if isinstance(found, Delivery) else Delivery.EVERY


__all__: Sequence[str] = ("CAPACITY", "Delivery", "Mailbox", "Outbox", "delivery_of")
