"""Injected clocks: manual time wakes sleepers in order; scaled time runs faster."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gateway.clock import ManualClock, ScaledClock

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


async def test_manual_clock_wakes_sleepers_when_advanced_past_their_deadline() -> None:
    clock = ManualClock(T0)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 10)), asyncio.create_task(sleeper("early", 1))]
    await asyncio.sleep(0)
    clock.advance(5)
    await asyncio.sleep(0)
    assert woke == ["early"]
    assert clock.now() == T0 + timedelta(seconds=5)
    clock.advance(5)
    await asyncio.gather(*tasks)
    assert woke == ["early", "late"]


def test_manual_clock_refuses_to_go_backwards_and_naive_times() -> None:
    clock = ManualClock(T0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="aware"):
        ManualClock(datetime(2026, 1, 1))


async def test_scaled_clock_runs_faster_than_real_time() -> None:
    clock = ScaledClock(T0, speed=1000.0)
    loop = asyncio.get_running_loop()
    real0, t0 = loop.time(), clock.monotonic()
    await clock.sleep(50.0)  # 50 clock seconds = 50 ms real
    assert clock.monotonic() - t0 >= 50.0
    assert loop.time() - real0 < 5.0
    assert clock.now() >= T0 + timedelta(seconds=50)
