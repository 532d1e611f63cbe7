"""The gateway's DLMS/COSEM session against the simulated meter, over a real ``socket://`` line.

The meter's clock is a :class:`ManualClock` (meter time moves only when a test says so);
the line runs in real time at 9600 Bd, paced by the simulator. Every test runs in the
three ways the gateway reaches a DLMS meter: Logical Name and Short Name referencing over
direct HDLC, and Logical Name through an IEC 62056-21 mode E sign-on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.clock import ManualClock
from gateway.errors import DataNotAvailable, MeterTimeout, RemoteProtocolError
from gateway.meter.dlms import (
    AssociationRefused,
    DlmsMeter,
    DlmsSession,
    DlmsSettings,
    Referencing,
    ServiceRefused,
)
from gateway.obis import CATALOGUE, Obis, Refresh
from gateway.simulator.physics import HouseholdModel, MeterPhysics
from gateway.simulator.server import SimulatedMeter
from gateway.streams import PROFILES
from gateway.transport import Framing, open_serial
from tests.support.simulated_meter import modelled

LP1, LP2 = PROFILES

DAY_START = datetime(2026, 6, 21, 0, 0, tzinfo=UTC)  # midsummer: the PV exports at noon
REGISTERS = [Obis.parse(f"1-0:{c}.8.0") for c in (1, 2, 3, 4)]
FAST = [i.obis for i in sorted(CATALOGUE, key=lambda i: i.priority) if i.refresh is Refresh.SECOND]
BAUD = 9600

MODES = {
    "ln": DlmsSettings(referencing=Referencing.LOGICAL_NAME, password="00000000", baudrate=BAUD),
    "sn": DlmsSettings(referencing=Referencing.SHORT_NAME, password="00000000", baudrate=BAUD),
    "mode-e": DlmsSettings(
        referencing=Referencing.LOGICAL_NAME, password="00000000", baudrate=BAUD, mode_e=True
    ),
}


@pytest.fixture(params=list(MODES))
def settings(request: pytest.FixtureRequest) -> DlmsSettings:
    return MODES[request.param]


@contextlib.asynccontextmanager
async def simulated(
    clock: ManualClock, history_days: float = 1.0, **options: Any
) -> AsyncIterator[SimulatedMeter]:
    physics = MeterPhysics(HouseholdModel(seed=7), clock.now(), history_days=history_days)
    sim = SimulatedMeter(physics, clock, max_baudrate=19200, hdlc_baudrate=BAUD, **options)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@contextlib.asynccontextmanager
async def session(sim: SimulatedMeter, settings: DlmsSettings) -> AsyncIterator[DlmsMeter]:
    transport = await open_serial(sim.url, baudrate=BAUD, framing=Framing.EIGHT_N_ONE, timeout=5)
    meter = DlmsMeter(DlmsSession(transport, replace(settings, response_timeout=2.0)))
    try:
        yield meter
    finally:
        await meter.close()


async def test_identity_and_the_whole_one_second_set_in_one_request(settings: DlmsSettings) -> None:
    clock = ManualClock(DAY_START + timedelta(hours=12))
    async with simulated(clock) as sim, session(sim, settings) as meter:
        info = await meter.open()
        assert info.serial_number == "54800102"
        assert info.firmware == "B40"
        assert info.manufacturer in ("LGZ", "LGz")
        assert info.model.startswith("ZMD")
        assert info.baudrate == BAUD
        assert ("SN" if settings.referencing is Referencing.SHORT_NAME else "LN") in info.protocol
        await meter.read_values(FAST)  # the first call reads the scalers
        sent = meter.stats.bytes_sent
        values = await meter.read_values(FAST)
        request_bytes = meter.stats.bytes_sent - sent
        registers = await meter.read_values(REGISTERS)
    by_obis = dict(zip(FAST, values, strict=True))
    for obis, result in by_obis.items():
        # A catalogue object the meter lacks is answered as not there, in the same request.
        assert isinstance(result, DataNotAvailable) is not modelled(obis), (obis, result)
    u1, unit = by_obis[Obis.parse("1-0:32.7.0")]  # type: ignore[misc]
    assert 200 < u1 < 260
    assert unit == "V"
    f, unit = by_obis[Obis.parse("1-0:14.7.0")]  # type: ignore[misc]
    assert 49.5 < f < 50.5
    assert unit == "Hz"
    p, unit = by_obis[Obis.parse("1-0:1.7.0")]  # type: ignore[misc]
    assert unit == "W"
    assert p >= 0
    # One HDLC frame carries the whole request (no segments, no RR from the meter).
    assert request_bytes < 400
    for result in registers:
        assert not isinstance(result, DataNotAvailable)
        assert result[1] in ("Wh", "varh")


async def test_one_day_of_load_profile_matches_the_registers(settings: DlmsSettings) -> None:
    """Issue 2 point 4 over DLMS: 96 periods, sum of deltas = register difference."""
    clock = ManualClock(DAY_START)
    async with simulated(clock) as sim, session(sim, settings) as meter:
        await meter.open()
        before = [v for v in await meter.read_values(REGISTERS)]
        clock.advance(86400)
        after = [v for v in await meter.read_values(REGISTERS)]
        (block,) = await meter.read_profile(LP1, DAY_START, DAY_START + timedelta(days=1))
    assert block.period_s == 900
    assert [str(o) for o, _ in block.channels] == ["1-0:1.29.0", "1-0:2.29.0", "1-0:3.29.0", "1-0:4.29.0"]
    assert [u for _, u in block.channels] == ["kWh", "kWh", "kvarh", "kvarh"]
    entries = block.entries
    assert [e.end for e in entries] == [DAY_START + timedelta(minutes=15 * (k + 1)) for k in range(96)]
    for channel, (start, end) in enumerate(zip(before, after, strict=True)):
        assert not isinstance(start, DataNotAvailable)
        assert not isinstance(end, DataNotAvailable)
        deltas = [e.values[channel] for e in entries]
        assert all(d is not None and d >= 0 for d in deltas)
        total_kwh = sum(d for d in deltas if d is not None)
        register_kwh = (end[0] - start[0]) / 1000  # the meter's registers are in Wh / varh
        # Registers and profile values have 0.01 Wh resolution.
        assert total_kwh == pytest.approx(register_kwh, abs=1e-5 * (96 + 2)), REGISTERS[channel]
    assert after[0][0] - before[0][0] > 1000  # type: ignore[index]
    assert after[1][0] - before[1][0] > 1000  # type: ignore[index]


async def test_profile_pieces_join_load_profile_2_and_the_event_log(settings: DlmsSettings) -> None:
    clock = ManualClock(DAY_START)
    async with simulated(clock) as sim, session(sim, settings) as meter:
        await meter.open()
        clock.advance(3600)
        sim.physics.power_down(clock.now())
        clock.advance(600)
        sim.physics.power_up(clock.now())
        clock.advance(5 * 3600)
        end = DAY_START + timedelta(hours=6)
        (whole,) = await meter.read_profile(LP1, DAY_START, end)
        pieces = []
        start = DAY_START
        while start < end:
            stop = start + timedelta(minutes=45)
            pieces += [
                e for b in await meter.read_profile(LP1, start, stop) for e in b.entries if e.end > start
            ]
            start = stop
        (lp2,) = await meter.read_profile(LP2, DAY_START, end)
        events = await meter.read_events(DAY_START, end)
    assert len(whole.entries) == 24
    assert pieces == list(whole.entries)
    assert [str(o) for o, _ in lp2.channels][:3] == ["1-0:32.5.0", "1-0:52.5.0", "1-0:72.5.0"]
    outage = [e.end for e in lp2.entries if e.status & 0x80]  # power failure bit
    assert outage == [DAY_START + timedelta(minutes=75)]
    assert all(200 < (e.values[0] or 0) < 260 for e in lp2.entries if e.status == 0)
    ours = [(e.time, e.code) for e in events if e.time >= DAY_START + timedelta(hours=1)]
    assert ours[:2] == [(DAY_START + timedelta(hours=1), 1), (DAY_START + timedelta(minutes=70), 2)]


async def test_meter_clock_is_read_as_utc(settings: DlmsSettings) -> None:
    clock = ManualClock(DAY_START + timedelta(hours=8, minutes=30, seconds=12))
    async with simulated(clock) as sim, session(sim, settings) as meter:
        await meter.open()
        assert await meter.read_clock(clock.now()) == clock.now().replace(microsecond=0)


# -- issue point 5: precise errors ------------------------------------------------------------


async def test_wrong_password_is_refused_by_name(settings: DlmsSettings) -> None:
    clock = ManualClock(DAY_START)
    async with simulated(clock, password="12345678") as sim, session(sim, settings) as meter:
        with pytest.raises(AssociationRefused, match=r"authentication-failure.*wrong password"):
            await meter.open()


async def test_refused_application_context_is_named(settings: DlmsSettings) -> None:
    other = "sn" if settings.referencing is Referencing.LOGICAL_NAME else "ln"
    clock = ManualClock(DAY_START)
    async with simulated(clock, referencing=other) as sim, session(sim, settings) as meter:
        with pytest.raises(AssociationRefused, match="application-context-name-not-supported"):
            await meter.open()


async def test_exception_response_is_named_and_the_association_stays_usable(settings: DlmsSettings) -> None:
    clock = ManualClock(DAY_START)
    async with simulated(clock) as sim, session(sim, settings) as meter:
        await meter.open()
        sim.faults.exception_answers = 1
        with pytest.raises(ServiceRefused, match="service-not-allowed / operation-not-possible"):
            await meter.read_values(FAST[:3])
        assert not any(isinstance(v, DataNotAvailable) for v in await meter.read_values(FAST[:3]))


async def test_corrupted_frame_and_silence_raise_precise_errors(settings: DlmsSettings) -> None:
    clock = ManualClock(DAY_START)
    async with simulated(clock) as sim:
        async with session(sim, settings) as meter:
            await meter.open()
            sim.faults.corrupt_answers = 1
            with pytest.raises(RemoteProtocolError, match=r"HCS|FCS|length|flag|address|control") as err:
                await meter.read_values(FAST[:3])
            assert not isinstance(err.value, ServiceRefused)
        async with session(sim, settings) as meter:
            await meter.open()  # a new link works at once
            sim.faults.silent = True
            with pytest.raises(MeterTimeout, match=r"did not answer within 2\.\d\d s"):
                await meter.read_values(FAST[:3])
            sim.faults.silent = False


async def test_object_the_meter_lacks_comes_back_alone(settings: DlmsSettings) -> None:
    clock = ManualClock(DAY_START)
    missing = Obis.parse("1-0:91.7.0")  # neutral current: not in this meter
    async with simulated(clock) as sim, session(sim, settings) as meter:
        await meter.open()
        results = await meter.read_values([FAST[0], missing, FAST[1]])
    assert not isinstance(results[0], DataNotAvailable)
    assert isinstance(results[1], DataNotAvailable)
    assert not isinstance(results[2], DataNotAvailable)
