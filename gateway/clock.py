"""Injected time (DESIGN §1: nothing schedules on ``time.time()`` directly).

Four clocks share one interface:

* :class:`SystemClock` - production: UTC wall time and the event loop's timers.
* :class:`ScaledClock` - wall time that runs ``speed`` times faster from a chosen start,
  so a test or demo lives through hours of meter time in seconds.
* :class:`ManualClock` - frozen until a test calls :meth:`ManualClock.advance`.
* :class:`LoopClock` - UTC time that follows the running event loop's own clock, so a
  loop with virtual time (``tests/support/virtual_time.py``) moves every part of the gateway, the
  simulated meter and the line timing together.

``now()`` is always an aware UTC ``datetime``; ``monotonic()`` is clock seconds that
never go backwards; ``sleep()`` waits clock seconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta


class Clock(ABC):
    """Source of time and of timed waits."""

    @abstractmethod
    def now(self) -> datetime:
        """Current UTC time (aware)."""

    @abstractmethod
    def monotonic(self) -> float:
        """Seconds on a monotonic scale of this clock."""

    @abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""

    @property
    def speed(self) -> float:
        """Clock seconds per real second (1 for real time)."""
        return 1.0

    async def sleep_until(self, deadline: float) -> None:
        """Wait until :meth:`monotonic` reaches ``deadline``."""
        delay = deadline - self.monotonic()
        if delay > 0:
            await self.sleep(delay)


class SystemClock(Clock):
    """The machine's UTC time; waits on the event loop."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


class ScaledClock(Clock):
    """Time that starts at ``start`` and runs ``speed`` times faster than real time."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("ScaledClock start must be timezone-aware")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = start.astimezone(UTC)
        self._speed = speed
        self._t0 = time.monotonic()
        self._jumped = 0.0

    @property
    def speed(self) -> float:
        return self._speed

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self._speed + self._jumped

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    def jump(self, seconds: float) -> None:
        """Move time forward at once (tests: hours pass while a link is cut).

        Sleeps already running end at their real-time deadline; everything reading the
        clock afterwards sees the later time, as after a suspended process resumes.
        """
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._jumped += seconds

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self._speed)


class ManualClock(Clock):
    """A frozen clock for tests: time moves only when :meth:`advance` is called."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock start must be timezone-aware")
        self._start = start.astimezone(UTC)
        self._elapsed = 0.0
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self._elapsed + seconds, next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self._elapsed += seconds
        while self._waiters and self._waiters[0][0] <= self._elapsed:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)

    def next_deadline(self) -> float | None:
        """The earliest time a sleeper waits for (tests step the clock to it), or None."""
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)  # a cancelled sleep
        return self._waiters[0][0] if self._waiters else None

    def set(self, when: datetime) -> None:
        """Advance to the absolute time ``when``."""
        self.advance((when.astimezone(UTC) - self.now()).total_seconds())


class LoopClock(Clock):
    """Time that starts at ``start`` and follows the event loop's clock (``loop.time()``).

    Under the standard loop this is real time; under a loop whose clock jumps over idle
    waits it runs as fast as the work allows, and every timeout, pacing delay and
    schedule stays consistent because they all read the same clock.
    """

    def __init__(self, start: datetime, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("LoopClock start must be timezone-aware")
        self._start = start.astimezone(UTC)
        self._loop = loop or asyncio.get_running_loop()
        self._t0 = self._loop.time()

    def monotonic(self) -> float:
        return self._loop.time() - self._t0

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))
