"""Tests of the simulated meter's physics and memory (gateway.simulator.physics)."""

from __future__ import annotations

import asyncio
import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clock import ManualClock
from gateway.simulator.physics import (
    EVENT_NAMES,
    DisturbanceKind,
    EventCode,
    HouseholdModel,
    Instant,
    MeterClock,
    MeterPhysics,
    ProfileStatus,
    Registers,
)

START = datetime(2024, 6, 10, tzinfo=UTC)  # a Monday, 01:00 CET
SECOND = timedelta(seconds=1)
QUARTER = timedelta(minutes=15)
INITIAL = (12345.0, 2345.0, 3456.0, 456.0)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def deltas(reg_b: Registers, reg_a: Registers) -> tuple[float, ...]:
    return tuple(b - a for a, b in zip(reg_a.as_tuple(), reg_b.as_tuple(), strict=True))


def split_energy(p_kw: float, q_kvar: float, hours: float) -> tuple[float, float, float, float]:
    """A+, A-, R+, R- of a constant 3-phase total over ``hours``."""
    return (
        max(p_kw, 0.0) * hours,
        max(-p_kw, 0.0) * hours,
        max(q_kvar, 0.0) * hours,
        max(-q_kvar, 0.0) * hours,
    )


def expected_energy(model: HouseholdModel, a: datetime, b: datetime) -> list[float]:
    """Independent integral of the model's 1-second powers over [a, b)."""
    total = [0.0, 0.0, 0.0, 0.0]
    t = a
    while t < b:
        sec_start = t.replace(microsecond=0)
        nxt = min(sec_start + SECOND, b)
        inst = model.instant(sec_start)
        for k, e in enumerate(
            split_energy(inst.active_kw, inst.reactive_kvar, (nxt - t) / timedelta(hours=1))
        ):
            total[k] += e
        t = nxt
    return total


def sunny_day(model: HouseholdModel, first: datetime) -> datetime:
    day = first
    while model.cloudiness(day + timedelta(hours=11)) > 0.1:
        day += timedelta(days=1)
    return day


# --------------------------------------------------------------------------- model


def test_model_is_deterministic_and_independent_of_query_order() -> None:
    times = [START + timedelta(seconds=s) for s in (0, 1, 59, 60, 3600 * 11, 86400 * 3 + 17, 7)]
    forward = HouseholdModel(seed=7)
    backward = HouseholdModel(seed=7)
    a = [forward.instant(t) for t in times]
    b = [backward.instant(t) for t in reversed(times)][::-1]
    assert a == b
    assert [forward.instant(t) for t in times] == a  # caches do not change values


def test_values_are_constant_within_a_second() -> None:
    model = HouseholdModel(seed=3)
    t = START + timedelta(hours=12, seconds=5)
    v0 = model.instant(t)
    v1 = model.instant(t + timedelta(microseconds=999_999))
    assert (v0.phases, v0.frequency_hz) == (v1.phases, v1.frequency_hz)
    assert model.instant(t + SECOND).phases != v0.phases


def test_different_seeds_differ() -> None:
    times = [START + timedelta(minutes=37 * k) for k in range(20)]
    a = [HouseholdModel(seed=1).instant(t).phases for t in times]
    b = [HouseholdModel(seed=2).instant(t).phases for t in times]
    assert all(x != y for x, y in zip(a, b, strict=True))
    days = [START + timedelta(days=d) for d in range(10)]
    assert [HouseholdModel(1).cloudiness(d) for d in days] != [HouseholdModel(2).cloudiness(d) for d in days]


@settings(max_examples=200, deadline=None)
@given(seconds=st.integers(0, 2_000_000_000), seed=st.integers(0, 2**40))
def test_instant_is_physically_plausible(seconds: int, seed: int) -> None:
    t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    inst = HouseholdModel(seed=seed).instant(t)
    assert inst == HouseholdModel(seed=seed).instant(t)
    assert 49.95 <= inst.frequency_hz <= 50.05
    assert 0.0 < inst.power_factor <= 1.0
    for ph in inst.phases:
        assert 140.0 < ph.voltage_v < 270.0
        assert 0.0 <= ph.power_factor <= 1.0
        s_kva = math.hypot(ph.active_kw, ph.reactive_kvar)
        assert math.isclose(ph.current_a, s_kva * 1000.0 / ph.voltage_v, rel_tol=1e-12)
        assert ph.active_import_kw * ph.active_export_kw == 0.0
    assert inst.active_import_kw - inst.active_export_kw == pytest.approx(inst.active_kw)
    assert inst.reactive_import_kvar - inst.reactive_export_kvar == pytest.approx(inst.reactive_kvar)


def test_voltage_frequency_and_power_factor_over_a_week() -> None:
    model = HouseholdModel(seed=11)
    samples = [model.instant(START + timedelta(seconds=61 * k)) for k in range(7 * 24 * 59)]
    voltages = [ph.voltage_v for s in samples for ph in s.phases]
    inside = sum(207.0 <= v <= 253.0 for v in voltages) / len(voltages)
    assert inside > 0.995
    assert 228.0 < sum(voltages) / len(voltages) < 234.0
    assert all(49.95 <= s.frequency_hz <= 50.05 for s in samples)
    assert max(s.frequency_hz for s in samples) - min(s.frequency_hz for s in samples) > 0.03  # it drifts
    assert all(0.0 < s.power_factor <= 1.0 for s in samples)
    # Mostly inductive, sometimes capacitive.
    reactive = [s.reactive_kvar for s in samples]
    assert sum(q > 0 for q in reactive) > 0.8 * len(reactive)
    assert any(q < 0 for q in reactive)


def test_sags_and_swells_are_rare_short_and_outside_the_band() -> None:
    model = HouseholdModel(seed=1)
    dists = model.disturbances_between(START, START + timedelta(days=28))
    assert 4 <= len(dists) <= 40  # a few per week
    assert {d.kind for d in dists} == {DisturbanceKind.SAG, DisturbanceKind.SWELL}
    for d in dists:
        assert timedelta(seconds=2) <= d.end - d.start <= timedelta(seconds=60)
        assert d.level_v < 207.0 if d.kind is DisturbanceKind.SAG else d.level_v > 253.0
        middle = model.instant(d.start + (d.end - d.start) / 2)
        for p in d.phases:
            v = middle.phases[p - 1].voltage_v
            assert v < 207.0 if d.kind is DisturbanceKind.SAG else v > 253.0
        assert all(207.0 < ph.voltage_v < 253.0 for ph in model.instant(d.end + timedelta(seconds=90)).phases)


# --------------------------------------------------------------------------- registers


@pytest.mark.parametrize("hour", [4.5, 12.0, 19.0])
def test_registers_are_the_exact_integral_of_published_powers(hour: float) -> None:
    t0 = START + timedelta(hours=hour)
    meter = MeterPhysics(HouseholdModel(seed=5), t0, history_days=0.1)
    reg0 = meter.registers
    assert reg0 == Registers(*INITIAL)
    integral = [0.0, 0.0, 0.0, 0.0]
    previous = reg0.as_tuple()
    for k in range(3600):
        inst = meter.instant()
        assert inst.time == t0 + k * SECOND
        for i, e in enumerate(split_energy(inst.active_kw, inst.reactive_kvar, 1 / 3600)):
            integral[i] += e
        meter.advance_to(t0 + (k + 1) * SECOND)
        now = meter.registers.as_tuple()
        assert all(b >= a for a, b in zip(previous, now, strict=True))
        previous = now
    for got, want in zip(deltas(meter.registers, reg0), integral, strict=True):
        assert close(got, want)
    assert any(d > 0 for d in deltas(meter.registers, reg0))


@settings(max_examples=30, deadline=None)
@given(steps=st.lists(st.integers(0, 4_000_000), min_size=1, max_size=40))
def test_registers_are_exact_at_any_time(steps: list[int]) -> None:
    model = HouseholdModel(seed=9)
    t0 = START + timedelta(hours=7, minutes=13, microseconds=250_000)
    meter = MeterPhysics(model, t0, history_days=0)
    t = t0
    for us in steps:
        t += timedelta(microseconds=us)
        meter.advance_to(t)
    want = expected_energy(model, t0, t)
    for got, w in zip(deltas(meter.registers, Registers(*INITIAL)), want, strict=True):
        assert close(got, w)


def test_registers_at_start_equal_the_initial_values() -> None:
    for start in (START, START + timedelta(minutes=7, seconds=3, microseconds=11)):
        meter = MeterPhysics(HouseholdModel(), start, history_days=2)
        assert meter.registers == Registers(*INITIAL)
        assert meter.now == start
    custom = Registers(500.0, 300.0, 200.0, 10.0)
    assert MeterPhysics(HouseholdModel(), START, history_days=1, initial_registers=custom).registers == custom


def test_history_is_trimmed_when_registers_would_be_negative() -> None:
    empty = MeterPhysics(
        HouseholdModel(), START + timedelta(minutes=5), initial_registers=(0.0, 0.0, 0.0, 0.0)
    )
    assert empty.registers == Registers(0.0, 0.0, 0.0, 0.0)
    assert empty.load_profile_1 == ()
    assert empty.events == ()
    small = (60.0, 40.0, 30.0, 1.0)
    meter = MeterPhysics(HouseholdModel(), START, initial_registers=small)
    entries = meter.load_profile_1
    assert 0 < len(entries) < 40 * 96
    at_begin = [small[0], small[1], small[2], small[3]]
    for e in entries:
        for i, d in enumerate((e.a_plus, e.a_minus, e.r_plus, e.r_minus)):
            at_begin[i] -= d
    assert min(at_begin) >= -1e-9
    first_start = entries[0].end - QUARTER
    assert all(ev.time > first_start for ev in meter.events)


def test_sunny_noon_exports_and_evening_imports() -> None:
    model = HouseholdModel(seed=1)
    day = sunny_day(model, START)
    meter = MeterPhysics(model, day + timedelta(hours=10, minutes=30), history_days=0.5)
    before = meter.registers
    meter.advance_to(day + timedelta(hours=11, minutes=30))  # 11:30-12:30 CET
    a_plus, a_minus, _, _ = deltas(meter.registers, before)
    assert a_minus > 1.5
    assert a_plus < 0.1
    assert meter.instant().active_kw < 0
    meter.advance_to(day + timedelta(hours=20))  # 21:00 CET: sun is down
    before = meter.registers
    meter.advance_to(day + timedelta(hours=21))
    a_plus, a_minus, r_plus, _ = deltas(meter.registers, before)
    assert a_plus > 0.2
    assert a_minus == 0.0
    assert r_plus > 0.0


# --------------------------------------------------------------------------- load profiles


def test_profile_deltas_sum_to_register_differences_in_advanced_time() -> None:
    meter = MeterPhysics(HouseholdModel(seed=4), START, history_days=0.5)
    readings = {START: meter.registers}
    t = START
    for _ in range(12):
        t += QUARTER
        meter.advance_to(t - timedelta(seconds=7))  # not only at period ends
        meter.advance_to(t)
        readings[t] = meter.registers
    ends = sorted(readings)
    for a in ends:
        for b in ends:
            if a < b:
                entries = meter.profile1_between(a, b)
                assert len(entries) == (b - a) // QUARTER
                sums = [
                    sum(getattr(e, f) for e in entries) for f in ("a_plus", "a_minus", "r_plus", "r_minus")
                ]
                for got, want in zip(deltas(readings[b], readings[a]), sums, strict=True):
                    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def test_history_profile_is_the_integral_of_the_model() -> None:
    model = HouseholdModel(seed=6)
    meter = MeterPhysics(model, START, history_days=1, history_events=False)
    entries = meter.load_profile_1
    assert len(entries) == 96
    assert entries[-1].end == START
    checker = HouseholdModel(seed=6)
    for e in entries:
        want = [0.0, 0.0, 0.0, 0.0]
        for minute in range(15):
            inst = checker.instant(e.end - QUARTER + timedelta(minutes=minute))
            for i, x in enumerate(split_energy(inst.active_kw, inst.reactive_kvar, 1 / 60)):
                want[i] += x
        for got, w in zip((e.a_plus, e.a_minus, e.r_plus, e.r_minus), want, strict=True):
            assert close(got, w)
    # History and advanced time are one consistent register history.
    meter.advance_to(START + timedelta(hours=2))
    later = meter.profile1_between(START, START + timedelta(hours=2))
    assert len(later) == 8
    assert math.isclose(meter.registers.a_plus - INITIAL[0], sum(e.a_plus for e in later), rel_tol=1e-9)


def test_96_aligned_entries_per_day() -> None:
    meter = MeterPhysics(HouseholdModel(seed=2), START + timedelta(minutes=4), history_days=2)
    assert len(meter.load_profile_1) == 2 * 96
    meter.advance_to(START + timedelta(days=1, minutes=4))
    day = meter.profile1_between(START, START + timedelta(days=1))
    assert len(day) == 96
    assert len(meter.profile2_between(START, START + timedelta(days=1))) == 96
    for entries in (meter.load_profile_1, meter.load_profile_2):
        ends = [e.end for e in entries]
        assert all(e.minute % 15 == 0 and e.second == 0 and e.microsecond == 0 for e in ends)
        assert all(b - a == QUARTER for a, b in itertools.pairwise(ends))


def test_profile_queries_are_half_open_on_the_left() -> None:
    meter = MeterPhysics(HouseholdModel(), START, history_days=1)
    a, b = START - timedelta(hours=1), START
    got = meter.profile1_between(a, b)
    assert [e.end for e in got] == [a + QUARTER, a + 2 * QUARTER, a + 3 * QUARTER, b]
    assert [e.end for e in meter.profile2_between(a, b)] == [e.end for e in got]
    assert meter.profile1_between(b, b + timedelta(days=1)) == []


def test_load_profile_2_means_are_the_means_of_the_instants() -> None:
    meter = MeterPhysics(HouseholdModel(seed=8), START + timedelta(hours=17), history_days=0.2)
    t0 = meter.now
    instants: list[Instant] = []
    for k in range(900):
        instants.append(meter.instant())
        meter.advance_to(t0 + (k + 1) * SECOND)
    (entry,) = meter.profile2_between(t0, t0 + QUARTER)
    assert entry.end == t0 + QUARTER
    means = (entry.u1, entry.u2, entry.u3, entry.i1, entry.i2, entry.i3)
    for ph in range(3):
        volts = [i.phases[ph].voltage_v for i in instants]
        amps = [i.phases[ph].current_a for i in instants]
        assert min(volts) <= means[ph] <= max(volts)
        assert min(amps) <= means[3 + ph] <= max(amps)
        assert math.isclose(means[ph], sum(volts) / 900, rel_tol=1e-9)
        assert math.isclose(means[3 + ph], sum(amps) / 900, rel_tol=1e-9)


def test_big_jump_stays_consistent() -> None:
    meter = MeterPhysics(HouseholdModel(), START, history_days=4)
    meter.advance_to(START + timedelta(days=3, minutes=1))  # 2 coarse days, then 1 day at 1 s
    entries = meter.profile1_between(START, START + timedelta(days=3))
    assert len(entries) == 3 * 96
    # The open period holds one minute; the rest is in the entries.
    open_part = meter.registers.a_plus - INITIAL[0] - sum(e.a_plus for e in entries)
    assert 0.0 <= open_part < 0.2


# --------------------------------------------------------------------------- events and knobs


def test_power_outage_events_status_and_dead_phases() -> None:
    meter = MeterPhysics(HouseholdModel(), START, history_days=0.5)
    down, up = START + timedelta(minutes=5), START + timedelta(minutes=50)
    meter.power_down(down)
    meter.power_down(down + SECOND)  # already down: nothing new
    frozen = meter.registers
    inst = meter.instant(START + timedelta(minutes=20))
    assert not meter.powered
    assert all(ph.voltage_v == 0.0 and ph.current_a == 0.0 for ph in inst.phases)
    assert inst.active_kw == 0.0
    assert inst.frequency_hz == 0.0
    meter.power_up(up)
    assert meter.registers == frozen
    assert meter.powered
    meter.advance_to(START + timedelta(hours=1, minutes=30))
    assert [(e.code, e.time) for e in meter.events_between(START, up)] == [
        (EventCode.POWER_DOWN, down),
        (EventCode.POWER_UP, up),
    ]
    lp1 = meter.profile1_between(START, START + timedelta(hours=1, minutes=30))
    lp2 = meter.profile2_between(START, START + timedelta(hours=1, minutes=30))
    flagged = [bool(e.status & ProfileStatus.POWER_DOWN) for e in lp1]
    assert flagged == [True, True, True, True, False, False]
    assert [e.status for e in lp2] == [e.status for e in lp1]
    assert lp1[0].a_plus + lp1[0].a_minus > 0  # powered for 5 minutes
    assert lp1[1].a_plus == lp1[1].a_minus == lp1[1].r_plus == lp1[1].r_minus == 0.0
    assert lp2[1].u1 == lp2[1].i1 == 0.0
    assert 200.0 < lp2[0].u1 < 260.0  # mean over the powered part only


def test_set_clock_forward() -> None:
    meter = MeterPhysics(HouseholdModel(), START, history_days=0.5)
    old, new = START + timedelta(minutes=10), START + timedelta(minutes=40)
    meter.set_clock(old, new)
    assert meter.now == new
    events = meter.events_between(START, new)
    assert [(e.code, e.time) for e in events] == [
        (EventCode.CLOCK_ADJUSTED_OLD, old),
        (EventCode.CLOCK_ADJUSTED_NEW, new),
    ]
    assert events[0].name == EVENT_NAMES[EventCode.CLOCK_ADJUSTED_OLD]
    reg = meter.registers
    meter.advance_to(START + timedelta(hours=1))
    entries = meter.profile1_between(START, START + timedelta(hours=1))
    assert [e.end for e in entries] == [START + QUARTER, START + 3 * QUARTER, START + 4 * QUARTER]
    assert [bool(e.status & ProfileStatus.CLOCK_ADJUSTED) for e in entries] == [True, True, False]
    assert all(b >= a for a, b in zip(reg.as_tuple(), meter.registers.as_tuple(), strict=True))
    with pytest.raises(ValueError, match="backwards"):
        meter.set_clock(START, START + timedelta(hours=2))


def test_set_clock_backward_keeps_capture_order() -> None:
    meter = MeterPhysics(HouseholdModel(), START, history_days=0.5)
    old, new = START + timedelta(minutes=40), START + timedelta(minutes=5)
    meter.advance_to(old)
    reg = meter.registers
    meter.set_clock(old, new)
    assert meter.now == new
    assert meter.registers == reg
    meter.advance_to(START + timedelta(minutes=20))
    ends = [e.end for e in meter.load_profile_1[-4:]]
    assert ends == [START + QUARTER, START + 2 * QUARTER, START + 3 * QUARTER, START + QUARTER]
    flags = [bool(e.status & ProfileStatus.CLOCK_ADJUSTED) for e in meter.load_profile_1[-4:]]
    assert flags == [False, False, True, True]
    assert [e.code for e in meter.events[-2:]] == [EventCode.CLOCK_ADJUSTED_OLD, EventCode.CLOCK_ADJUSTED_NEW]
    assert all(b >= a for a, b in zip(reg.as_tuple(), meter.registers.as_tuple(), strict=True))


def test_terminal_cover_events() -> None:
    meter = MeterPhysics(HouseholdModel(), START, history_days=0.5)
    meter.open_terminal_cover(START + timedelta(minutes=1))
    meter.open_terminal_cover(START + timedelta(minutes=2))
    assert meter.terminal_cover_open
    meter.close_terminal_cover(START + timedelta(minutes=3))
    assert not meter.terminal_cover_open
    assert [(e.code, e.time.minute) for e in meter.events_between(START, meter.now)] == [(40, 1), (41, 3)]


def test_sag_from_the_voltage_model_is_logged() -> None:
    model = HouseholdModel(seed=1)
    sag = next(
        d
        for d in model.disturbances_between(START, START + timedelta(days=28))
        if d.kind is DisturbanceKind.SAG and len(d.phases) == 1
    )
    t0 = sag.start - timedelta(minutes=2)
    meter = MeterPhysics(model, t0, history_days=0.1)
    seen: list[float] = []
    t = t0
    while t < sag.end + timedelta(minutes=1):
        inst = meter.instant()
        if sag.start <= t < sag.end:
            seen.append(inst.phases[sag.phases[0] - 1].voltage_v)
        t += SECOND
        meter.advance_to(t)
    assert seen
    assert max(seen) < 207.0
    codes = [(e.code, e.time) for e in meter.events_between(t0, t)]
    p = sag.phases[0]
    assert codes == [(75 + p, sag.start), (81 + p, sag.end)]


def test_history_memory_and_its_events() -> None:
    meter = MeterPhysics(HouseholdModel(seed=1), START)
    assert len(meter.load_profile_1) == len(meter.load_profile_2) == 40 * 96
    assert meter.load_profile_1[0].end > START - timedelta(days=40)
    codes = [e.code for e in meter.events]
    assert codes.count(EventCode.POWER_DOWN) == codes.count(EventCode.POWER_UP) == 1
    assert codes.count(EventCode.TERMINAL_COVER_OPENED) == codes.count(EventCode.TERMINAL_COVER_CLOSED) == 1
    assert any(76 <= c <= 81 for c in codes)
    assert any(e.status & ProfileStatus.POWER_DOWN for e in meter.load_profile_1)
    times = [e.time for e in meter.events]
    assert times == sorted(times)
    assert START - timedelta(days=40) < times[0]
    assert times[-1] <= START
    meter.advance_to(START + timedelta(days=1, minutes=20))
    assert len(meter.load_profile_1) == len(meter.load_profile_2) == 40 * 96
    assert meter.load_profile_1[0].end > meter.now - timedelta(days=40)


def test_event_log_keeps_the_last_500() -> None:
    meter = MeterPhysics(HouseholdModel(disturbances_per_week=150.0), START, history_days=10)
    assert len(meter.events) == 500
    last = meter.events[-1]
    meter.power_down(START + SECOND)
    assert len(meter.events) == 500
    assert meter.events[-2] == last


def test_history_is_reproducible() -> None:
    a = MeterPhysics(HouseholdModel(seed=3), START, history_days=3)
    b = MeterPhysics(HouseholdModel(seed=3), START, history_days=3)
    assert a.load_profile_1 == b.load_profile_1
    assert a.load_profile_2 == b.load_profile_2
    assert a.events == b.events
    c = MeterPhysics(HouseholdModel(seed=4), START, history_days=3)
    assert a.load_profile_1 != c.load_profile_1


def test_time_must_not_go_backwards_and_must_be_aware() -> None:
    meter = MeterPhysics(HouseholdModel(), START, history_days=0)
    meter.advance_to(START + SECOND)
    with pytest.raises(ValueError, match="backwards"):
        meter.advance_to(START)
    with pytest.raises(ValueError, match="aware"):
        meter.advance_to(datetime(2024, 6, 10, 1))
    with pytest.raises(ValueError, match="aware"):
        MeterPhysics(HouseholdModel(), datetime(2024, 6, 10))


# --------------------------------------------------------------------------- meter clock


def test_meter_clock_offset_and_drift() -> None:
    base = ManualClock(START)
    clock = MeterClock(base, offset_s=5.0, drift_ppm=100.0)
    assert clock.now() == START + timedelta(seconds=5)
    base.advance(10_000.0)
    assert clock.now() == START + timedelta(seconds=10_000 + 5 + 1)
    assert clock.offset_s == pytest.approx(6.0)
    assert clock.monotonic() == pytest.approx(10_001.0)
    assert clock.speed == pytest.approx(1.0001)
    mono = clock.monotonic()
    clock.set(START)
    assert clock.now() == START
    assert clock.monotonic() == pytest.approx(mono)  # setting the time never moves monotonic
    base.advance(1000.0)
    assert clock.now() == START + timedelta(seconds=1000.1)


async def test_meter_clock_sleep_runs_on_the_base_clock() -> None:
    base = ManualClock(START)
    clock = MeterClock(base, drift_ppm=-50_000.0)  # runs 5 % slow
    task = asyncio.create_task(clock.sleep(9.5))  # 10 s of the base clock
    await asyncio.sleep(0)
    base.advance(9.9)
    await asyncio.sleep(0)
    assert not task.done()
    base.advance(0.2)
    await asyncio.sleep(0)
    assert task.done()


def test_planted_supply_conditions_show_in_the_values_and_the_meters_log() -> None:
    model = HouseholdModel(disturbances_per_week=0)
    meter = MeterPhysics(model, START, history_days=0.1, history_events=False)
    sag = (START + timedelta(minutes=1), START + timedelta(minutes=3))
    model.plant(*sag, voltage=190.0, phases=(1, 3))
    model.plant(START + timedelta(minutes=5), START + timedelta(minutes=6), frequency=49.3)
    model.plant(START + timedelta(minutes=7), START + timedelta(minutes=8), voltage=215.0)  # within the band
    inside = meter.instant(START + timedelta(minutes=2))
    assert abs(inside.phases[0].voltage_v - 190.0) < 2.0
    assert abs(inside.phases[2].voltage_v - 190.0) < 2.0
    assert inside.phases[1].voltage_v > 220.0
    assert meter.instant(START + timedelta(minutes=5, seconds=30)).frequency_hz == 49.3
    assert abs(meter.instant(START + timedelta(minutes=7, seconds=30)).phases[1].voltage_v - 215.0) < 2.0
    meter.advance_to(START + timedelta(minutes=10))
    assert [(e.code, e.time) for e in meter.events_between(START, START + timedelta(minutes=10))] == [
        (EventCode.UNDER_VOLTAGE_L1, sag[0]),
        (EventCode.UNDER_VOLTAGE_L3, sag[0]),
        (EventCode.VOLTAGE_NORMAL_L1, sag[1]),
        (EventCode.VOLTAGE_NORMAL_L3, sag[1]),
    ]
    with pytest.raises(ValueError, match="start < end"):
        model.plant(sag[1], sag[0], voltage=190.0)
