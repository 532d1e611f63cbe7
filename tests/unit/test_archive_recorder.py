"""The archive recorder: what the poller publishes lands in the day files, off the
poller's path; a full disk is reported, live data goes on, and writing resumes by itself.

The full disk is real: a 64 KiB tmpfs mounted for the test (tests/support/disks.py; root only,
CI runs as root).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.archive.files import ArchiveReader, AsyncArchive, Column, Record
from gateway.archive.quality import week_from_archive
from gateway.archive.recorder import RETRY_S, ArchiveRecorder, ArchiveStatus
from gateway.clock import ManualClock
from gateway.config import ArchiveConfig, MeterConfig
from gateway.meter.model import (
    Diagnostics,
    EventRecord,
    ProfileData,
    ProfileEntry,
    Quality,
    Reading,
    Snapshot,
)
from gateway.obis import CATALOGUE, Obis, Refresh
from gateway.quality.en50160 import Verdict, week_of
from gateway.streams import StreamId
from tests.support.disks import fill, tiny_disk

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
METER = MeterConfig(id="meter1", url="socket://127.0.0.1:1", protocol="dlms")
VOLTAGE = Obis.parse("1-0:32.7.0")
IMPORT = Obis.parse("1-0:1.8.0")


def snapshot(at: datetime, volts: float, kwh: float) -> Snapshot:
    readings = {info.obis: Reading(info.obis, None, info.unit, None, Quality.WAITING) for info in CATALOGUE}
    readings[VOLTAGE] = Reading(VOLTAGE, volts, "V", at, Quality.GOOD)
    readings[IMPORT] = Reading(IMPORT, kwh, "kWh", at, Quality.GOOD)
    return Snapshot("meter1", at, readings, Diagnostics())


def profile(ends: list[datetime]) -> ProfileData:
    channels = tuple((Obis.parse(f"1-0:{c}.29.0"), "kWh") for c in (1, 2, 3, 4))
    entries = tuple(ProfileEntry(t, 0, (0.25, 0.0, 0.1, 0.0)) for t in ends)
    return ProfileData(StreamId.LOAD_PROFILE_1, channels, 900, entries)


async def feed(recorder: ArchiveRecorder, clock: ManualClock, seconds: int, first: int = 0) -> None:
    """One snapshot per second for seconds ``first`` .. ``first + seconds - 1`` after T0."""
    for k in range(first, first + seconds):
        clock.set(T0 + timedelta(seconds=k))
        await recorder.on_snapshot(snapshot(clock.now(), 230.0 + k % 3, 100.0 + k / 3600))


async def test_minutes_registers_profiles_and_events_land_in_their_streams(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    statuses: list[ArchiveStatus] = []

    async def seen(status: ArchiveStatus) -> None:
        statuses.append(status)

    recorder = ArchiveRecorder(AsyncArchive(tmp_path, "meter1"), METER, ArchiveConfig(), clock, seen)
    await feed(recorder, clock, 125)  # two whole minutes and a bit
    await recorder.on_profile("meter1", profile([T0 + timedelta(minutes=15), T0 + timedelta(minutes=30)]))
    await recorder.on_events("meter1", [EventRecord(T0 + timedelta(seconds=5), 40, 0),
                                        EventRecord(T0 + timedelta(seconds=5), 41, 0)])  # fmt: skip
    await recorder.write_pending()
    reader = ArchiveReader(tmp_path, "meter1")
    minutes = list(reader.read_columns("minute", [(str(VOLTAGE), "mean"), (str(VOLTAGE), "count")]))
    assert [(t, values) for t, _, values in minutes] == [
        (T0, (231.0, 60.0)),
        (T0 + timedelta(minutes=1), (231.0, 60.0)),
    ]
    registers = list(reader.read_columns("registers", [(str(IMPORT), "")]))
    # One sample per minute: the minute's last read, at its own time stamp.
    assert [t for t, _, _ in registers] == [T0 + timedelta(seconds=59), T0 + timedelta(seconds=119)]
    assert [t for t, _, _ in reader.read_columns("lp1", [("1-0:1.29.0", "")])] == [
        T0 + timedelta(minutes=15),
        T0 + timedelta(minutes=30),
    ]
    # Two events in one second are both kept.
    assert [v for _, _, (v,) in reader.read_columns("events", [("0-0:99.98.0", "code")])] == [40.0, 41.0]
    assert statuses[-1] == ArchiveStatus(state="ok", records_written=2 + 2 + 2 + 2)
    await recorder.close()
    # The minute in progress at shutdown is written too, incomplete but true.
    tail = list(reader.read_columns("minute", [(str(VOLTAGE), "count")]))[-1]
    assert tail[0] == T0 + timedelta(minutes=2)
    assert tail[2] == (5.0,)


async def test_full_disk_is_reported_nothing_stored_is_damaged_and_writing_resumes(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk") as disk:
        clock = ManualClock(T0)
        statuses: list[ArchiveStatus] = []

        async def seen(status: ArchiveStatus) -> None:
            statuses.append(status)

        recorder = ArchiveRecorder(AsyncArchive(disk, "meter1"), METER, ArchiveConfig(), clock, seen)
        await feed(recorder, clock, 61)
        await recorder.write_pending()
        minute_file = disk / "meter1" / "minute" / "2026-03-29.csv"
        before = minute_file.read_bytes()
        filler = fill(disk)
        # Half an hour with the disk full: appends that fit the file's last page still
        # succeed (tmpfs), the first that needs a new page fails.
        for minute in range(1, 31):
            await feed(recorder, clock, 60, first=minute * 60)
            await recorder.write_pending()
        assert statuses[-1].state == "disk-full"
        assert "No space left" in statuses[-1].last_error
        assert statuses[-1].backlog > 0
        during = minute_file.read_bytes()
        assert during.startswith(before)  # nothing stored was touched
        assert during.endswith(b"\n")  # the failed append was cut back, no torn line
        # Space returns; the next snapshot after the retry pause writes the backlog.
        filler.unlink()
        clock.advance(RETRY_S)
        await recorder.on_snapshot(snapshot(clock.now(), 230.0, 100.1))
        await recorder.write_pending()
        assert statuses[-1].state == "ok"
        assert statuses[-1].backlog == 0
        times = [
            t for t, _, _ in ArchiveReader(disk, "meter1").read_columns("minute", [(str(VOLTAGE), "mean")])
        ]
        assert times == [T0 + timedelta(minutes=m) for m in range(len(times))]
        assert len(times) == 31  # every minute, none twice
        await recorder.close()


async def test_register_columns_follow_the_configured_values(tmp_path: Path) -> None:
    meter = MeterConfig(id="meter1", url="socket://x:1", values=(VOLTAGE, IMPORT))
    recorder = ArchiveRecorder(AsyncArchive(tmp_path, "meter1"), meter, ArchiveConfig(), ManualClock(T0))
    assert [c.heading for c in recorder.registers.columns] == ["1-0:1.8.0 [kWh]"]
    assert [i.obis for i in recorder.minutes.objects] == [VOLTAGE]
    assert all(i.refresh is Refresh.REGISTER for i in recorder.registers.objects)


async def test_retention_deletes_whole_old_day_files_once_a_day(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    archive = AsyncArchive(tmp_path, "meter1")
    old = [T0 - timedelta(days=d) for d in (5, 4, 3)]
    await archive.append("lp1", (Column("1-0:1.29.0", "kWh"),), [Record(t, 0, (1.0,)) for t in old])
    config = ArchiveConfig(keep_days=(("lp1", 4),))  # today and the 3 days before
    recorder = ArchiveRecorder(archive, METER, config, clock)
    await recorder.write_pending()
    assert [str(d) for d in archive.reader.days("lp1")] == ["2026-03-26"]  # 03-24 and 03-25 deleted
    assert archive.reader.days("minute") == []  # other streams keep their defaults
    await recorder.close()


async def test_ten_minute_power_quality_records_land_in_pq10_and_read_back_as_the_week(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    recorder = ArchiveRecorder(AsyncArchive(tmp_path, "meter1"), METER, ArchiveConfig(), clock)
    await feed(recorder, clock, 1300)  # two whole 10-minute intervals and a bit
    await recorder.on_events("meter1", [EventRecord(T0 + timedelta(seconds=30), 76, 0),
                                        EventRecord(T0 + timedelta(seconds=40), 82, 0)])  # fmt: skip
    await recorder.write_pending()
    reader = ArchiveReader(tmp_path, "meter1")
    start, end = week_of(T0, None)
    report = week_from_archive(reader, start, end, recorder.quality.flush() if recorder.quality else None)
    # L1 = 230 + k % 3 over whole intervals (600 divisible by 3): the r.m.s. of 230, 231, 232;
    # L2/L3 not read.
    first = next(
        reader.read_columns(StreamId.QUALITY, [("1-0:32.7.0", "mean10min"), ("1-0:32.7.0", "seconds")])
    )
    assert first == (T0, None, (pytest.approx(math.sqrt((230.0**2 + 231.0**2 + 232.0**2) / 3)), 600.0))
    assert (report.valid, report.flagged) == (
        2,
        1,
    )  # the open interval has 100 of 600 seconds; the dip flags one
    assert report.criterion("Voltage dips").measured == 1
    assert report.criterion("Voltage within Un ±10 %").measured == 100.0
    assert report.criterion("Voltage unbalance ≤ 2 % (approximation)").verdict is Verdict.NO_DATA
