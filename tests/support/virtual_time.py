"""An asyncio event loop whose clock jumps over idle time (for hour-long benchmark runs).

``loop.time()`` is virtual: whenever the loop would block waiting for a timer with no
I/O ready, the clock jumps to that timer instead of sleeping. Everything the loop runs -
the poller's schedule, the simulated meter's byte pacing, transport timeouts - reads the
same clock (:class:`gateway.clock.LoopClock`), so an hour of line time passes in the CPU
time the work needs while every wire delay keeps its length.

Sockets must be local and the peers in the same loop (the simulated meter on loopback):
data written is readable at once, so "no I/O ready" means nothing is in flight. Work in
worker threads (``asyncio.to_thread``, ``run_in_executor``: the archive's file writes)
is in flight too: while any runs, the loop waits for it in real time and the clock stands
still, as if the disk were infinitely fast.
"""

from __future__ import annotations

import asyncio
import selectors
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.BaseSelector):
    """Delegates to a real selector; an idle wait with a timeout becomes a clock jump."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            return self._inner.select(None)  # no timer at all: only real I/O can wake us
        if self._loop.threads_busy():
            # A worker thread's result wakes the loop through its self-pipe; the short
            # real timeout covers the moment between the result and our bookkeeping.
            return self._inner.select(min(timeout, 0.01))
        self._loop.jump(timeout)
        return []

    def close(self) -> None:
        self._inner.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop with a virtual clock starting at 0."""

    def __init__(self) -> None:
        self._virtual = 0.0
        self._busy = 0
        self._busy_lock = threading.Lock()
        super().__init__(_JumpingSelector(self))

    def threads_busy(self) -> bool:
        return self._busy > 0

    def run_in_executor(self, executor: Any, func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        def counted() -> T:
            try:
                return func(*args)
            finally:
                with self._busy_lock:
                    self._busy -= 1

        with self._busy_lock:
            self._busy += 1
        try:
            return super().run_in_executor(executor, counted)
        except BaseException:
            with self._busy_lock:
                self._busy -= 1
            raise

    def time(self) -> float:
        return self._virtual

    def jump(self, seconds: float) -> None:
        self._virtual += max(seconds, 0.0)


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a :class:`VirtualTimeLoop`."""
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
