"""A meter in local time with daylight saving: its profile and logbook stamps arrive in
UTC, on both change days (Europe/Vienna 2026: 23-hour and 25-hour local days).

The same simulated household is read twice through the real transport and IEC 62056-21
code: once by a meter that stamps in UTC (season digit 2) and once by a meter that stamps
in local time with the season digit (0 normal / 1 summer time). After conversion both
must give the same 96 periods of the UTC day, with the same values.

Its clock (0.9.1 time, 0.9.2 date) is local time too, without a season flag: read as
UTC, a right clock shows no deviation, in winter, in summer and in the repeated hour.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.clock import ManualClock, ScaledClock
from gateway.localtime import meter_zone
from gateway.meter.iec21 import Iec21Meter, Iec21Session
from gateway.meter.model import ProfileData
from gateway.simulator.physics import HouseholdModel, MeterPhysics
from gateway.simulator.server import SimulatedMeter
from gateway.streams import PROFILES
from gateway.transport import Framing, open_serial
from tests.support.harness import demo, running_gateway

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


@pytest.mark.parametrize(
    "moment",
    [datetime(2026, 10, 25, 0, 30, 7, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, 7, tzinfo=UTC)],
    ids=["first-0230", "second-0230"],
)
async def test_local_time_meter_clock_reads_right_in_both_passes_of_the_repeated_hour(
    moment: datetime,
) -> None:
    """Local 02:30:07 happens twice on 25 October; the meter's clock says so both times
    without a season flag, and the gateway, whose time is right, reads the pass it is in."""
    clock = ManualClock(moment)
    async with meter(clock, ZONE) as local_meter:
        shown = (await local_meter.session.read("0.9.1")).value
        reading = await local_meter.read_clock(clock.now())
    assert shown == "02:30:07"
    assert reading == moment


@pytest.mark.parametrize(
    "start",
    [datetime(2026, 1, 15, 10, 0, tzinfo=UTC), datetime(2026, 7, 15, 10, 0, tzinfo=UTC)],
    ids=["january-cet", "july-cest"],
)
async def test_local_time_meter_shows_its_clock_deviation_not_its_utc_offset(start: datetime) -> None:
    """The whole gateway against an IEC 62056-21 meter whose clock (0.9.1 / 0.9.2) keeps
    Vienna's wall time, UTC+1 in January and UTC+2 in July: the meter's clock is right, so
    the deviation published is a fraction of a second, not the zone's offset."""
    config = demo("iec", timezone=ZONE)
    meter_config = config.meters[0]
    assert meter_config.simulator is not None
    simulator = replace(meter_config.simulator, timezone=ZONE)
    config = replace(config, meters=(replace(meter_config, simulator=simulator),))
    clock = ScaledClock(start)
    async with running_gateway(config, clock) as gw:
        sim = gw.gateway.simulators[meter_config.id]
        # The simulated meter does answer its local wall time, an hour or two from UTC.
        shown = datetime.strptime(
            f"{sim.register('0.9.2')} {sim.register('0.9.1')}", "0.9.2(%y-%m-%d) 0.9.1(%H:%M:%S)"
        )
        wall = clock.now().astimezone(ZoneInfo(ZONE)).replace(tzinfo=None)
        assert abs(shown - wall) < timedelta(seconds=2)
        assert abs(shown - clock.now().replace(tzinfo=None)) >= timedelta(minutes=59)
        poller = gw.gateway.pollers[meter_config.id]
        async with asyncio.timeout(60):
            while (deviation := (await poller.wait_snapshot()).diagnostics.clock_deviation_s) is None:
                pass
    assert abs(deviation) < 2.0, f"clock deviation {deviation} s of a meter whose clock is right"
