"""A meter in local time with daylight saving: its profile and logbook stamps arrive in
UTC, on both change days (Europe/Vienna 2026: 23-hour and 25-hour local days).

The same simulated household is read twice through the real transport and IEC 62056-21
code: once by a meter that stamps in UTC (season digit 2) and once by a meter that stamps
in local time with the season digit (0 normal / 1 summer time). After conversion both
must give the same 96 periods of the UTC day, with the same values.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.clock import ManualClock
from gateway.localtime import meter_zone
from gateway.meter.iec21 import Iec21Meter, Iec21Session
from gateway.meter.model import ProfileData
from gateway.simulator.physics import HouseholdModel, MeterPhysics
from gateway.simulator.server import SimulatedMeter
from gateway.streams import PROFILES
from gateway.transport import Framing, open_serial

LP1 = PROFILES[0]

ZONE = "Europe/Vienna"


@contextlib.asynccontextmanager
async def meter(clock: ManualClock, timezone: str) -> AsyncIterator[Iec21Meter]:
    physics = MeterPhysics(HouseholdModel(seed=3), clock.now(), history_days=2.0)
    sim = SimulatedMeter(physics, clock, max_baudrate=19200, timezone=timezone)
    await sim.start()
    transport = await open_serial(sim.url, baudrate=300, framing=Framing.SEVEN_E_ONE, timeout=5)
    link = Iec21Meter(Iec21Session(transport, max_baudrate=19200, response_timeout=5.0), meter_zone(timezone))
    try:
        await link.open()
        yield link
    finally:
        await link.close()
        await transport.close()
        await sim.stop()


def entries(blocks: list[ProfileData]) -> list[tuple[datetime, tuple[float | None, ...]]]:
    return [(e.end, e.values) for b in blocks for e in b.entries]


@pytest.mark.parametrize("day", [datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 10, 25, tzinfo=UTC)])
async def test_local_time_meter_gives_the_96_utc_periods_of_a_change_day(day: datetime) -> None:
    end = day + timedelta(days=1)
    clock = ManualClock(end + timedelta(hours=1))
    async with meter(clock, "") as utc_meter:
        expected = entries(await utc_meter.read_profile(LP1, day, end))
        expected_events = await utc_meter.read_events(day - timedelta(days=1), end)
    async with meter(clock, ZONE) as local_meter:
        got = entries(await local_meter.read_profile(LP1, day, end))
        got_events = await local_meter.read_events(day - timedelta(days=1), end)

    ends = [day + timedelta(minutes=15 * (k + 1)) for k in range(96)]
    assert [t for t, _ in expected] == ends
    assert [t for t, _ in got] == ends  # no hour lost in spring, none doubled in autumn
    assert got == expected
    assert got_events == expected_events
