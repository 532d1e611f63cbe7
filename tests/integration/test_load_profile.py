"""Issue point 4: one simulated day of load profile, read through the real session.

The meter's clock is a ManualClock: the test lives through a whole day in one step and
reads the energy registers at both ends of it, so the profile can be checked against
the registers the meter itself integrates.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.clock import ManualClock
from gateway.meter.iec21 import Iec21Meter, Iec21Session
from gateway.obis import Obis
from gateway.simulator.physics import HouseholdModel, MeterPhysics
from gateway.simulator.server import SimulatedMeter
from gateway.streams import PROFILES
from gateway.transport import Framing, open_serial

LP1, LP2 = PROFILES

DAY_START = datetime(2026, 6, 21, 0, 0, tzinfo=UTC)  # midsummer: the PV exports at noon
REGISTERS = [Obis.parse(f"1-0:{c}.8.0") for c in (1, 2, 3, 4)]


@contextlib.asynccontextmanager
async def meter_at(clock: ManualClock) -> AsyncIterator[tuple[SimulatedMeter, Iec21Meter]]:
    physics = MeterPhysics(HouseholdModel(seed=7), clock.now(), history_days=1.0)
    sim = SimulatedMeter(physics, clock, max_baudrate=19200)
    await sim.start()
    transport = await open_serial(sim.url, baudrate=300, framing=Framing.SEVEN_E_ONE, timeout=5)
    meter = Iec21Meter(Iec21Session(transport, max_baudrate=19200, response_timeout=5.0))
    try:
        await meter.open()
        yield sim, meter
    finally:
        await meter.close()
        await transport.close()
        await sim.stop()


async def read_registers(meter: Iec21Meter) -> list[float]:
    return [(await meter.read_value(o))[0] for o in REGISTERS]


async def test_one_day_of_load_profile_matches_the_registers() -> None:
    clock = ManualClock(DAY_START)
    async with meter_at(clock) as (_sim, meter):
        before = await read_registers(meter)
        clock.advance(86400)
        after = await read_registers(meter)
        (block,) = await meter.read_profile(LP1, DAY_START, DAY_START + timedelta(days=1))

    entries = block.entries
    assert len(entries) == 96
    assert [e.end for e in entries] == [DAY_START + timedelta(minutes=15 * (k + 1)) for k in range(96)]
    assert block.period_s == 900
    assert [str(o) for o, _ in block.channels] == ["1-0:1.29.0", "1-0:2.29.0", "1-0:3.29.0", "1-0:4.29.0"]
    for channel, (start, end) in enumerate(zip(before, after, strict=True)):
        deltas = [e.values[channel] for e in entries]
        assert all(d is not None and d >= 0 for d in deltas)
        total = sum(d for d in deltas if d is not None)
        # Registers and profile deltas carry 5 decimals: rounding bounds the difference.
        assert total == pytest.approx(end - start, abs=1e-5 + 96 * 5e-6), REGISTERS[channel]
    # Midsummer: the household both imported and exported during the day.
    assert after[0] - before[0] > 1.0
    assert after[1] - before[1] > 1.0


async def test_profile_read_in_pieces_equals_one_read() -> None:
    """The poller reads long ranges in pieces; the pieces must join without gap or overlap."""
    clock = ManualClock(DAY_START)
    async with meter_at(clock) as (_sim, meter):
        clock.advance(6 * 3600)
        whole = [
            e
            for b in await meter.read_profile(LP1, DAY_START, DAY_START + timedelta(hours=6))
            for e in b.entries
        ]
        pieces = []
        start = DAY_START
        while start < DAY_START + timedelta(hours=6):
            end = start + timedelta(minutes=45)
            pieces += [
                e for b in await meter.read_profile(LP1, start, end) for e in b.entries if e.end > start
            ]
            start = end
    assert len(whole) == 24
    assert pieces == whole


async def test_load_profile_2_and_event_log() -> None:
    clock = ManualClock(DAY_START)
    async with meter_at(clock) as (sim, meter):
        clock.advance(3600)
        sim.physics.power_down(clock.now())
        clock.advance(600)
        sim.physics.power_up(clock.now())
        clock.advance(1800)
        blocks = await meter.read_profile(LP2, DAY_START, clock.now())
        events = await meter.read_events(DAY_START, clock.now())
    # A status change starts a new block (P.01 header), as on a real meter.
    assert len(blocks) >= 2
    assert [str(o) for o, _ in blocks[0].channels][:3] == ["1-0:32.5.0", "1-0:52.5.0", "1-0:72.5.0"]
    entries = [e for b in blocks for e in b.entries]
    assert [e.end for e in entries] == [
        DAY_START + timedelta(minutes=15 * (k + 1)) for k in range(len(entries))
    ]
    outage = [e for e in entries if e.status & 0x80]  # power failure bit
    assert [e.end for e in outage] == [DAY_START + timedelta(minutes=m) for m in (75,)]
    normal = [e for e in entries if e.status == 0]
    assert normal
    assert all(200 < (e.values[0] or 0) < 260 for e in normal)
    ours = [(e.time, e.code) for e in events if e.time >= DAY_START + timedelta(hours=1)]
    assert ours[:2] == [(DAY_START + timedelta(hours=1), 1), (DAY_START + timedelta(minutes=70), 2)]
