"""Minute records of the 1-second values: mean/min/max/count per UTC minute, each sample once."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.archive.files import ArchiveReader, ArchiveWriter
from gateway.archive.minutes import STREAM, MinuteAggregator
from gateway.meter.model import Diagnostics, Quality, Reading, Snapshot
from gateway.obis import CATALOGUE, Obis

T0 = datetime(2026, 3, 29, 0, 58, 0, tzinfo=UTC)
VOLTAGE = next(i for i in CATALOGUE if str(i.obis) == "1-0:32.7.0")
POWER = next(i for i in CATALOGUE if str(i.obis) == "1-0:1.7.0")


def snapshot(at: datetime, values: dict[Obis, tuple[float, datetime, Quality]]) -> Snapshot:
    readings = {
        obis: Reading(obis, value, "V", stamp, quality) for obis, (value, stamp, quality) in values.items()
    }
    return Snapshot("meter1", at, readings, Diagnostics())


def test_columns_name_obis_qualifier_and_unit() -> None:
    agg = MinuteAggregator([VOLTAGE, POWER])
    assert [c.heading for c in agg.columns] == [
        "1-0:32.7.0 mean [V]",
        "1-0:32.7.0 min [V]",
        "1-0:32.7.0 max [V]",
        "1-0:32.7.0 count",
        "1-0:1.7.0 mean [kW]",
        "1-0:1.7.0 min [kW]",
        "1-0:1.7.0 max [kW]",
        "1-0:1.7.0 count",
    ]


def test_a_minute_of_samples_gives_one_record_at_the_minute_start() -> None:
    agg = MinuteAggregator([VOLTAGE])
    records = []
    for k in range(125):  # 2 minutes and 5 seconds, one sample each second
        t = T0 + timedelta(seconds=k, milliseconds=200)
        records += agg.add(snapshot(t, {VOLTAGE.obis: (230.0 + k % 60, t, Quality.GOOD)}))
    assert [r.time for r in records] == [T0, T0 + timedelta(minutes=1)]
    mean, low, high, count = records[0].values
    assert (low, high, count) == (230.0, 289.0, 60.0)
    assert mean == sum(230.0 + k for k in range(60)) / 60
    (last,) = agg.flush()
    assert last.time == T0 + timedelta(minutes=2)
    assert last.values[3] == 5.0, "the minute in progress is written at shutdown with its count"


def test_repeated_old_readings_and_bad_ones_are_not_counted() -> None:
    agg = MinuteAggregator([VOLTAGE])
    t = T0 + timedelta(seconds=1)
    agg.add(snapshot(t, {VOLTAGE.obis: (230.0, t, Quality.GOOD)}))
    # The next cycles did not read the value again: same SourceTimestamp, then Uncertain.
    agg.add(snapshot(t + timedelta(seconds=1), {VOLTAGE.obis: (230.0, t, Quality.GOOD)}))
    agg.add(snapshot(t + timedelta(seconds=2), {VOLTAGE.obis: (230.0, t, Quality.UNCERTAIN)}))
    later = t + timedelta(seconds=3)
    agg.add(snapshot(later, {VOLTAGE.obis: (240.0, later, Quality.GOOD)}))
    (record,) = agg.add(snapshot(T0 + timedelta(minutes=1, seconds=1), {}))
    assert record.values == (235.0, 230.0, 240.0, 2.0)


def test_a_silent_minute_writes_nothing_and_the_clock_closes_the_last_one() -> None:
    agg = MinuteAggregator([VOLTAGE])
    t = T0 + timedelta(seconds=30)
    assert agg.add(snapshot(t, {VOLTAGE.obis: (231.0, t, Quality.GOOD)})) == []
    # The meter is lost: snapshots keep coming with the old Bad reading.
    closed = agg.add(snapshot(T0 + timedelta(minutes=1, seconds=2), {VOLTAGE.obis: (231.0, t, Quality.BAD)}))
    assert [(r.time, r.values[3]) for r in closed] == [(T0, 1.0)]
    assert agg.add(snapshot(T0 + timedelta(minutes=3), {VOLTAGE.obis: (231.0, t, Quality.BAD)})) == []
    assert agg.flush() == []


def test_minute_records_land_in_the_archive_across_utc_midnight(tmp_path: Path) -> None:
    start = datetime(2026, 3, 28, 23, 58, tzinfo=UTC)
    agg = MinuteAggregator([VOLTAGE, POWER])
    writer = ArchiveWriter(tmp_path, "meter1")
    for k in range(240):
        t = start + timedelta(seconds=k)
        records = agg.add(
            snapshot(t, {VOLTAGE.obis: (230.0, t, Quality.GOOD), POWER.obis: (k / 100, t, Quality.GOOD)})
        )
        writer.append(STREAM, agg.columns, records)
    writer.close()
    reader = ArchiveReader(tmp_path, "meter1")
    back = list(reader.read(STREAM))
    assert [r.time for r in back] == [start + timedelta(minutes=m) for m in range(3)]
    assert [d.isoformat() for d in reader.days(STREAM)] == ["2026-03-28", "2026-03-29"]
    mean, low, high, count = back[2].values[4:]
    assert mean is not None
    assert math.isclose(mean, sum(range(120, 180)) / 100 / 60)
    assert (low, high, count) == (1.2, 1.79, 60.0)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60))
def test_stats_of_any_minute_are_exact(samples: list[float]) -> None:
    agg = MinuteAggregator([POWER])
    for k, value in enumerate(samples):
        t = T0 + timedelta(seconds=k)
        agg.add(snapshot(t, {POWER.obis: (value, t, Quality.GOOD)}))
    (record,) = agg.flush()
    mean, low, high, count = record.values
    assert count == len(samples)
    assert (low, high) == (min(samples), max(samples))
    assert mean is not None
    assert math.isclose(mean, math.fsum(samples) / len(samples), rel_tol=1e-9, abs_tol=1e-6)


def test_a_cycle_that_straddles_the_minute_fills_both_minutes() -> None:
    agg = MinuteAggregator([POWER, VOLTAGE])
    before, after = T0 + timedelta(seconds=59, milliseconds=700), T0 + timedelta(minutes=1, milliseconds=100)
    # Voltage read before the minute's end, power after it, in one snapshot.
    records = agg.add(
        snapshot(after, {VOLTAGE.obis: (230.0, before, Quality.GOOD), POWER.obis: (1.5, after, Quality.GOOD)})
    )
    assert [(r.time, r.values[4:]) for r in records] == [(T0, (230.0, 230.0, 230.0, 1.0))]
    (current,) = agg.flush()
    assert current.values[:4] == (1.5, 1.5, 1.5, 1.0)
