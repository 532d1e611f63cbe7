"""The market service fed with snapshots: measured energy from the registers (interpolated
to the period start, advanced by the power between reads), advice, registration."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from gateway.archive.files import ArchiveReader, ArchiveWriter
from gateway.archive.minutes import RegisterSampler
from gateway.clock import ManualClock
from gateway.config import MarketConfig
from gateway.errors import MarketInputError
from gateway.localtime import meter_zone
from gateway.market.advice import AdviceState
from gateway.market.desk import MarketDesk
from gateway.market.periods import MarketCalendar
from gateway.market.service import EXPORT_ENERGY, EXPORT_POWER, IMPORT_ENERGY, IMPORT_POWER, MarketService
from gateway.meter.model import Diagnostics, Quality, Reading, Snapshot
from gateway.obis import CATALOGUE, Refresh

VIENNA = meter_zone("Europe/Vienna")
assert VIENNA is not None
Q15 = MarketCalendar(VIENNA, 15)
DAY = date(2026, 6, 1)
START = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # a period start (12:00 CEST)


def snapshot(t: datetime, kw: float, kwh: float | None, read_at: datetime) -> Snapshot:
    """Net import ``kw`` now; registers ``kwh`` (import) read at ``read_at``; no export."""
    readings = {
        IMPORT_POWER: Reading(IMPORT_POWER, kw, "kW", t, Quality.GOOD),
        EXPORT_POWER: Reading(EXPORT_POWER, 0.0, "kW", t, Quality.GOOD),
    }
    if kwh is not None:
        readings[IMPORT_ENERGY] = Reading(IMPORT_ENERGY, kwh, "kWh", read_at, Quality.GOOD)
        readings[EXPORT_ENERGY] = Reading(EXPORT_ENERGY, 3.0, "kWh", read_at, Quality.GOOD)
    return Snapshot("meter1", t, readings, Diagnostics())


def service(tmp_path: Path) -> MarketService:
    svc = MarketService(Q15)
    svc.remember(DAY, None)
    return svc


def register(svc: MarketService, values: list[object], unit: str = "kWh") -> None:
    svc.remember(DAY, svc.prepare(DAY, values, unit, now=START - timedelta(hours=1), existing=None))


def run(svc: MarketService, first: datetime, seconds: int, kw: float = 2.0) -> None:
    """Constant ``kw`` from ``first``; the registers (A+ from 100 kWh at START) read every 5 s."""
    for s in range(seconds):
        t = first + timedelta(seconds=s)
        read_at = t - timedelta(seconds=(t - START).total_seconds() % 5)
        kwh = 100.0 + kw * (read_at - START).total_seconds() / 3600
        svc.on_snapshot(snapshot(t, kw, kwh, read_at))


def test_advice_from_registers_interpolated_to_the_start_and_advanced_by_the_power(tmp_path: Path) -> None:
    svc = service(tmp_path)
    values: list[object] = [0.0] * 96
    number = Q15.period_at(START).number
    values[number - 1] = 0.6
    register(svc, values)
    run(svc, START - timedelta(seconds=62), 62 + 300 + 1)  # until 10:05:00
    advice = svc.advice
    assert advice is not None
    assert advice.state is AdviceState.ADVISED
    assert advice.measured_kwh == pytest.approx(2.0 * 5 / 60)  # 2 kW for 5 minutes
    assert advice.required_kw == pytest.approx((0.6 - 2.0 * 5 / 60) / (10 / 60))  # 2.6 kW
    assert advice.text == "increase by 0.6 kW to 2.6 kW for the remaining 10 minutes"


def test_started_mid_period_has_no_measurement_until_the_next_period(tmp_path: Path) -> None:
    svc = service(tmp_path)
    register(svc, [0.5] * 96)
    run(svc, START + timedelta(minutes=3), 60)
    assert svc.advice is not None
    assert svc.advice.state is AdviceState.NO_MEASUREMENT
    assert svc.advice.text == "no measurement for this period yet"
    run(svc, START + timedelta(minutes=14, seconds=50), 20)  # across 10:15
    assert svc.advice.state is AdviceState.ADVISED
    assert svc.advice.measured_kwh == pytest.approx(2.0 * 9 / 3600)  # 10:15:00 to 10:15:09


def test_no_profile_is_no_notification(tmp_path: Path) -> None:
    svc = service(tmp_path)
    run(svc, START - timedelta(seconds=10), 20)
    assert svc.advice is not None
    assert svc.advice.state is AdviceState.NO_NOTIFICATION


async def test_a_refused_profile_stores_nothing_and_a_stored_one_survives_a_restart(tmp_path: Path) -> None:
    config = MarketConfig(period_minutes=15, timezone="Europe/Vienna")
    desk = MarketDesk(config, tmp_path, ["meter1"], ManualClock(START - timedelta(hours=1)))
    with pytest.raises(MarketInputError, match="96 settlement periods") as refused:
        await desk.register("meter1", DAY, [0.5] * 95, "kWh")
    assert refused.value.field == "values"
    assert await desk.days("meter1") == []
    stored, replaced = await desk.register("meter1", DAY, [2.0] * 96, "kW")
    assert not replaced
    with pytest.raises(MarketInputError, match="already notified"):
        await desk.register("meter1", DAY, [1.0] * 96, "kW")
    again = MarketDesk(config, tmp_path, ["meter1"], ManualClock(START))  # a restart reads it from disk
    assert await again.load("meter1", DAY) == stored
    assert stored.energy_kwh == (0.5,) * 96
    assert await again.days("meter1") == [DAY]


async def test_advice_at_a_later_instant_holds_the_current_power(tmp_path: Path) -> None:
    svc = service(tmp_path)
    register(svc, [0.6] * 96)
    run(svc, START - timedelta(seconds=62), 62 + 300 + 1)  # 2 kW until 10:05:00
    later = svc.advice_at(START + timedelta(minutes=10))
    assert later.measured_kwh == pytest.approx(2.0 * 10 / 60)
    assert later.required_kw == pytest.approx((0.6 - 2.0 * 10 / 60) / (5 / 60))
    with pytest.raises(MarketInputError, match="not in the rest of the running period") as err:
        svc.advice_at(START + timedelta(minutes=15))
    assert err.value.out_of_range
    with pytest.raises(MarketInputError, match="not in the rest"):
        svc.advice_at(START + timedelta(minutes=4))


async def test_after_a_restart_the_archived_registers_give_the_period_start(tmp_path: Path) -> None:
    """The box restarts at 10:07 (a power cut): the register samples it archived around
    10:00 give the period's start value, so the advice goes on at once."""
    columns = RegisterSampler([i for i in CATALOGUE if i.refresh is Refresh.REGISTER]).columns
    assert [c.obis for c in columns][:2] == ["1-0:1.8.0", "1-0:2.8.0"]
    # 2 kW net import since 09:50, A+ sampled each minute at :30 until 10:06:30.
    samples = [START - timedelta(minutes=10, seconds=-30) + timedelta(minutes=k) for k in range(17)]
    rows = [(t, 0, (100.0 + 2.0 * (t - START).total_seconds() / 3600, 3.0, 0.0, 0.0)) for t in samples]
    writer = ArchiveWriter(tmp_path, "meter1")
    writer.append("registers", columns, rows)
    writer.close()
    restart = START + timedelta(minutes=7)
    config = MarketConfig(period_minutes=15, timezone="Europe/Vienna")
    desk = MarketDesk(config, tmp_path, ["meter1"], ManualClock(restart))
    await desk.register("meter1", DAY, [0.6] * 96)
    assert await desk.resume("meter1", ArchiveReader(tmp_path, "meter1")) == 9  # 09:58:30 .. 10:06:30
    svc = desk.service("meter1")
    run(svc, restart, 1)  # the first snapshot after the restart
    advice = svc.advice
    assert advice is not None
    assert advice.state is AdviceState.ADVISED
    assert advice.measured_kwh == pytest.approx(2.0 * 7 / 60)
    # Without the archive, the same start says no-measurement.
    fresh = MarketDesk(config, tmp_path / "empty", ["meter1"], ManualClock(restart))
    await fresh.register("meter1", DAY, [0.6] * 96)
    run(fresh.service("meter1"), restart, 1)
    assert fresh.service("meter1").advice is not None
    assert fresh.service("meter1").advice.state is AdviceState.NO_MEASUREMENT


async def test_reading_many_days_neither_forgets_today_nor_grows_the_cache(tmp_path: Path) -> None:
    config = MarketConfig(period_minutes=15, timezone="Europe/Vienna")
    desk = MarketDesk(config, tmp_path, ["meter1"], ManualClock(START - timedelta(hours=1)))
    await desk.register("meter1", DAY, [0.6] * 96)
    for n in range(1, 40):  # a client reads (or notifies) a month and more ahead
        await desk.load("meter1", DAY + timedelta(days=n))
    await desk.register("meter1", DAY + timedelta(days=20), [0.1] * 96)
    svc = desk.service("meter1")
    assert svc.profile(DAY) is not None
    assert [d for d in (DAY + timedelta(days=n) for n in range(-1, 41)) if svc.loaded(d)] == [
        DAY,
        DAY + timedelta(days=1),
    ]
    run(svc, START - timedelta(seconds=62), 63)
    assert svc.advice is not None
    assert svc.advice.notified_kwh == 0.6
