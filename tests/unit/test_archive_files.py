"""Archive day files: round trips, crash repair, duplicates, disk full, retention, async.

Every test works on real files under ``tmp_path``; failures of the disk are simulated by
wrapping ``os.write`` for the archive's own file descriptors only.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import logging
import os
import tempfile
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.archive import files
from gateway.archive.files import ArchiveReader, ArchiveWriter, AsyncArchive, Column, Record
from gateway.errors import ArchiveError

LP_COLUMNS = (Column("1-0:1.29.0", "kWh"), Column("1-0:2.29.0", "kWh"))
T0 = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
Q = timedelta(minutes=15)


def lp_records(n: int, start: datetime = T0, step: timedelta = Q) -> list[Record]:
    return [
        Record(start + i * step, i % 3 if i % 5 else None, (i * 0.25, None if i % 4 == 0 else -i / 3))
        for i in range(n)
    ]


def day_file(root: Path, day: str, stream: str = "lp1") -> Path:
    return root / "meter1" / stream / f"{day}.csv"


def test_round_trip_forward_and_reverse_across_utc_midnight(tmp_path: Path) -> None:
    records = lp_records(16)  # 22:00 .. 01:45 next day: two day files
    writer = ArchiveWriter(tmp_path, "meter1")
    assert writer.append("lp1", LP_COLUMNS, records) == 16
    writer.close()

    reader = ArchiveReader(tmp_path, "meter1")
    assert reader.days("lp1") == [date(2026, 3, 28), date(2026, 3, 29)]
    assert list(reader.read("lp1")) == records
    assert list(reader.read("lp1", reverse=True)) == records[::-1]
    midnight = datetime(2026, 3, 29, tzinfo=UTC)
    assert [r.time for r in reader.read("lp1", T0 + Q * 7, T0 + Q * 9)] == [
        midnight - Q,
        midnight,
        midnight + Q,
    ]
    assert list(reader.read("lp1", T0 + Q * 7, T0 + Q * 9, reverse=True)) == records[7:10][::-1]
    assert list(reader.read("lp1", start=midnight)) == records[8:]
    assert (
        list(reader.read("lp1", end=midnight - timedelta(microseconds=1), reverse=True)) == records[:8][::-1]
    )
    assert list(reader.read("lp1", T0 + timedelta(days=5))) == []


def test_records_may_be_tuples_and_non_utc_aware_times_are_stored_as_utc(tmp_path: Path) -> None:
    from datetime import timezone

    cet = timezone(timedelta(hours=1))
    writer = ArchiveWriter(tmp_path, "meter1")
    writer.append("lp1", LP_COLUMNS, [(datetime(2026, 3, 29, 0, 30, tzinfo=cet), 7, (1.5, None))])
    assert list(ArchiveReader(tmp_path, "meter1").read("lp1")) == [
        Record(datetime(2026, 3, 28, 23, 30, tzinfo=UTC), 7, (1.5, None))
    ]
    assert day_file(tmp_path, "2026-03-28").exists()
    with pytest.raises(ValueError, match="aware"):
        writer.append("lp1", LP_COLUMNS, [(datetime(2026, 3, 29, 1), None, (1.0, 2.0))])
    with pytest.raises(ValueError, match="2 columns"):
        writer.append("lp1", LP_COLUMNS, [(T0 + timedelta(days=1), None, (1.0,))])


def test_header_names_format_obis_codes_and_units(tmp_path: Path) -> None:
    columns = (Column("1-0:16.7.0", "kW", "mean"), Column("1-0:16.7.0", "", "count"))
    ArchiveWriter(tmp_path, "meter1").append("minute", columns, [(T0, None, (1.25, 60.0))])
    text = day_file(tmp_path, "2026-03-28", "minute").read_text()
    assert text.splitlines() == [
        "# smx-archive 1 stream=minute meter=meter1",
        "# time: ISO 8601 UTC; status: meter status word (decimal); empty cell = no value",
        "time,status,1-0:16.7.0 mean [kW],1-0:16.7.0 count",
        "2026-03-28T22:00:00Z,,1.25,60.0",
    ]


def test_file_opens_with_the_csv_module(tmp_path: Path) -> None:
    ArchiveWriter(tmp_path, "meter1").append("lp1", LP_COLUMNS, lp_records(4))
    with open(day_file(tmp_path, "2026-03-28"), newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    assert list(rows[0]) == ["time", "status", "1-0:1.29.0 [kWh]", "1-0:2.29.0 [kWh]"]
    first = {"time": "2026-03-28T22:00:00Z", "status": "", "1-0:1.29.0 [kWh]": "0.0", "1-0:2.29.0 [kWh]": ""}
    assert rows[0] == first
    assert rows[1]["status"] == "1"
    assert float(rows[3]["1-0:1.29.0 [kWh]"]) == 0.75
    assert datetime.fromisoformat(rows[2]["time"]) == T0 + 2 * Q


def test_torn_last_line_is_truncated_on_reopen_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = lp_records(3)
    writer = ArchiveWriter(tmp_path, "meter1")
    writer.append("lp1", LP_COLUMNS, records)
    writer.close()
    path = day_file(tmp_path, "2026-03-28")
    intact = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b"2026-03-28T22:45:00Z,0,9.")  # the power failed mid-line

    reader = ArchiveReader(tmp_path, "meter1")
    assert list(reader.read("lp1")) == records  # readers skip the torn line already
    assert reader.last_time("lp1") == records[-1].time

    new = Record(T0 + 3 * Q, 1, (3.0, 4.0))
    with caplog.at_level(logging.WARNING, logger="gateway.archive.files"):
        assert ArchiveWriter(tmp_path, "meter1").append("lp1", LP_COLUMNS, [new]) == 1
    assert list(reader.read("lp1")) == [*records, new]
    assert path.read_bytes() == intact + b"2026-03-28T22:45:00Z,1,3.0,4.0\n"
    assert any("2026-03-28.csv" in m and "dropped 25 bytes" in m for m in caplog.messages)


def test_repair_at_start_cuts_the_torn_line_of_the_newest_file_only(tmp_path: Path) -> None:
    records = lp_records(8, step=timedelta(hours=1))  # 2026-03-28 22:00 .. 03-29 05:00
    writer = ArchiveWriter(tmp_path, "meter1")
    writer.append("lp1", LP_COLUMNS, records)
    writer.close()
    newest = day_file(tmp_path, "2026-03-29")
    intact = newest.read_bytes()
    with open(newest, "ab") as f:
        f.write(b"2026-03-29T06:00:00Z,0,1")  # the power failed mid-line
    assert ArchiveWriter(tmp_path, "meter1").repair("lp1") is True
    assert newest.read_bytes() == intact
    assert ArchiveWriter(tmp_path, "meter1").repair("lp1") is False  # nothing left to cut
    assert ArchiveWriter(tmp_path, "meter1").repair("events") is False  # no files at all
    assert list(ArchiveReader(tmp_path, "meter1").read("lp1")) == records


def test_damaged_header_is_set_aside_not_deleted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = day_file(tmp_path, "2026-03-28")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00\x00garbage\nmore\n")
    (path.parent / "2026-03-28.csv.corrupt-1").write_bytes(b"older\n")
    with caplog.at_level(logging.WARNING):
        ArchiveWriter(tmp_path, "meter1").append("lp1", LP_COLUMNS, lp_records(2))
    assert (path.parent / "2026-03-28.csv.corrupt-2").read_bytes() == b"\x00\x00garbage\nmore\n"
    assert list(ArchiveReader(tmp_path, "meter1").read("lp1")) == lp_records(2)
    assert any("corrupt-2" in m for m in caplog.messages)


def test_header_torn_while_creating_the_file_is_set_aside(tmp_path: Path) -> None:
    path = day_file(tmp_path, "2026-03-28")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"# smx-archive 1 stream=lp1 meter=meter1\n# time: ISO")
    ArchiveWriter(tmp_path, "meter1").append("lp1", LP_COLUMNS, lp_records(1))
    assert (path.parent / "2026-03-28.csv.corrupt-1").exists()
    assert list(ArchiveReader(tmp_path, "meter1").read("lp1")) == lp_records(1)


def test_a_changed_configuration_continues_the_day_below_a_new_column_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = ArchiveWriter(tmp_path, "meter1")
    writer.append("lp1", LP_COLUMNS, lp_records(2))
    writer.close()
    before = day_file(tmp_path, "2026-03-28").read_bytes()
    # The configuration changed: only A- now, and a new column R+.
    columns = (Column("1-0:2.29.0", "kWh"), Column("1-0:3.29.0", "kvarh"))
    with caplog.at_level(logging.WARNING, logger="gateway.archive.files"):
        assert ArchiveWriter(tmp_path, "meter1").append("lp1", columns, [(T0 + 2 * Q, 0, (7.0, 8.0))]) == 1
    after = day_file(tmp_path, "2026-03-28").read_bytes()
    assert after.startswith(before)  # nothing stored was touched
    assert after[len(before) :] == (
        b"# columns changed: the records below follow this column row\n"
        b"time,status,1-0:2.29.0 [kWh],1-0:3.29.0 [kvarh]\n"
        b"2026-03-28T22:30:00Z,0,7.0,8.0\n"
    )
    assert any("columns changed" in m for m in caplog.messages)
    reader = ArchiveReader(tmp_path, "meter1")
    wanted = [("1-0:1.29.0", ""), ("1-0:2.29.0", ""), ("1-0:3.29.0", "")]
    old = lp_records(2)
    expected = [
        (old[0].time, old[0].status, (old[0].values[0], old[0].values[1], None)),
        (old[1].time, old[1].status, (old[1].values[0], old[1].values[1], None)),
        (T0 + 2 * Q, 0, (None, 7.0, 8.0)),
    ]
    expected = [row for row in expected if any(v is not None for v in row[2])]
    assert list(reader.read_columns("lp1", wanted)) == expected
    assert list(reader.read_columns("lp1", wanted, reverse=True)) == expected[::-1]
    # The same layout again needs no new row; the old one back gets one more.
    writer = ArchiveWriter(tmp_path, "meter1")
    writer.append("lp1", columns, [(T0 + 3 * Q, 0, (1.0, 2.0))])
    writer.append("lp1", LP_COLUMNS, [(T0 + 4 * Q, 0, (3.0, 4.0))])
    writer.close()
    text = day_file(tmp_path, "2026-03-28").read_text()
    assert text.count("# columns changed") == 2
    assert reader.last_time("lp1") == T0 + 4 * Q
    assert [t for t, _, _ in reader.read_columns("lp1", [("1-0:1.29.0", "")])][-1] == T0 + 4 * Q


def test_duplicate_and_overlapping_appends_are_skipped(tmp_path: Path) -> None:
    records = lp_records(10)
    writer = ArchiveWriter(tmp_path, "meter1")
    assert writer.append("lp1", LP_COLUMNS, records[:6]) == 6
    assert writer.append("lp1", LP_COLUMNS, records[:6]) == 0
    assert writer.append("lp1", LP_COLUMNS, records[3:8]) == 2
    writer.close()
    # A new writer (after a restart) learns the newest time from the files.
    assert ArchiveWriter(tmp_path, "meter1").append("lp1", LP_COLUMNS, records) == 2
    assert list(ArchiveReader(tmp_path, "meter1").read("lp1")) == records


def test_one_append_is_one_write_and_one_fsync_per_day_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = ArchiveWriter(tmp_path, "meter1")
    writer.append("lp1", LP_COLUMNS, lp_records(1))  # file exists and is open
    calls: list[str] = []
    real_write, real_fsync = os.write, os.fsync

    def write(fd: int, data: bytes) -> int:
        calls.append("write")
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    assert writer.append("lp1", LP_COLUMNS, lp_records(7)[1:]) == 6  # all on 2026-03-28
    assert calls == ["write", "fsync"]


@pytest.mark.parametrize("partial", [False, True])
def test_disk_full_raises_archive_error_and_leaves_the_file_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partial: bool
) -> None:
    records = lp_records(6)
    writer = ArchiveWriter(tmp_path, "meter1")
    writer.append("lp1", LP_COLUMNS, records[:2])
    path = day_file(tmp_path, "2026-03-28")
    before = path.read_bytes()
    real_write = os.write
    archive_fds = {f.fd for f in writer._open.values()}

    def full_disk(fd: int, data: bytes) -> int:
        if fd not in archive_fds:
            return real_write(fd, data)
        if partial:
            real_write(fd, bytes(data)[:10])  # some bytes made it before the disk filled up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(ArchiveError, match="No space left") as caught:
        writer.append("lp1", LP_COLUMNS, records[2:4])
    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
    assert path.read_bytes() == before

    monkeypatch.setattr(os, "write", real_write)  # space is back: writing resumes
    assert writer.append("lp1", LP_COLUMNS, records[2:]) == 4
    assert list(ArchiveReader(tmp_path, "meter1").read("lp1")) == records


def test_prune_deletes_only_old_day_files(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path, "meter1")
    writer.append("lp1", LP_COLUMNS, lp_records(10, step=timedelta(days=1)))  # 03-28 .. 04-06
    folder = day_file(tmp_path, "2026-03-28").parent
    (folder / "notes.txt").write_text("keep me")
    (folder / "2026-03-01.csv.corrupt-1").write_text("keep me too")
    removed = writer.prune("lp1", keep_days=3, today=date(2026, 4, 6))
    assert removed == [date(2026, 3, 28) + timedelta(days=i) for i in range(7)]
    assert ArchiveReader(tmp_path, "meter1").days("lp1") == [
        date(2026, 4, 4),
        date(2026, 4, 5),
        date(2026, 4, 6),
    ]
    assert (folder / "notes.txt").exists()
    assert (folder / "2026-03-01.csv.corrupt-1").exists()
    with pytest.raises(ValueError, match="keep_days"):
        writer.prune("lp1", keep_days=0, today=date(2026, 4, 6))


def test_last_time_of_a_big_file_reads_only_its_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = [(start + timedelta(seconds=2 * i), 0, (i * 0.001, 2.0, 3.0, 4.0)) for i in range(35_040)]
    columns = tuple(Column(f"1-0:{c}.29.0", "kWh") for c in (1, 2, 3, 4))
    ArchiveWriter(tmp_path, "meter1").append("lp1", columns, records)
    size = day_file(tmp_path, "2026-01-01").stat().st_size
    assert size > 1_000_000

    read_bytes: list[int] = []
    real_pread = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        read_bytes.append(n)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", pread)
    assert ArchiveReader(tmp_path, "meter1").last_time("lp1") == records[-1][0]
    assert sum(read_bytes) <= 64 * 1024


def test_last_time_skips_header_only_files_and_empty_streams(tmp_path: Path) -> None:
    reader = ArchiveReader(tmp_path, "meter1")
    assert reader.last_time("lp1") is None
    assert reader.days("lp1") == []
    ArchiveWriter(tmp_path, "meter1").append("lp1", LP_COLUMNS, lp_records(2))
    newer = day_file(tmp_path, "2026-03-30")
    newer.write_bytes(files._header("lp1", "meter1", LP_COLUMNS))
    assert reader.last_time("lp1") == T0 + Q


def test_names_that_would_escape_the_archive_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stream"):
        ArchiveWriter(tmp_path, "meter1").append("../x", LP_COLUMNS, [])
    with pytest.raises(ValueError, match="meter id"):
        ArchiveReader(tmp_path, "a/b")
    with pytest.raises(ValueError, match="must not hold"):
        Column("1-0:1.8.0", "k,Wh")


values_st = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=1, max_value=3 * 86_400 * 10**6), min_size=1, max_size=30),
    rows=st.data(),
)
def test_hypothesis_round_trip(steps: list[int], rows: st.DataObject) -> None:
    t = datetime(2025, 12, 31, 23, 59, tzinfo=UTC)
    records = []
    for step in steps:
        t += timedelta(microseconds=step)
        status = rows.draw(st.one_of(st.none(), st.integers(min_value=0, max_value=2**32 - 1)))
        values = tuple(rows.draw(st.lists(values_st, min_size=3, max_size=3)))
        records.append(Record(t, status, values))
    columns = tuple(Column(f"1-0:{c}.8.0", "Wh") for c in (1, 2, 3))
    with tempfile.TemporaryDirectory() as root:
        writer = ArchiveWriter(root, "m")
        half = len(records) // 2
        assert writer.append("s", columns, records[:half]) + writer.append("s", columns, records) == len(
            records
        )
        writer.close()
        reader = ArchiveReader(root, "m")
        assert list(reader.read("s")) == records
        assert list(reader.read("s", reverse=True)) == records[::-1]
        assert reader.last_time("s") == records[-1].time


async def test_async_archive_runs_file_io_off_the_event_loop(tmp_path: Path) -> None:
    archive = AsyncArchive(tmp_path, "meter1")
    loop_thread = threading.get_ident()
    threads: list[int] = []
    real_append = archive.writer.append

    def spy(*args: object, **kwargs: object) -> int:
        threads.append(threading.get_ident())
        return real_append(*args, **kwargs)  # type: ignore[arg-type]

    archive.writer.append = spy  # type: ignore[method-assign]
    records = lp_records(12)
    counts = await asyncio.gather(
        *(archive.append("lp1", LP_COLUMNS, records[i : i + 3]) for i in range(0, 12, 3))
    )
    assert counts == [3, 3, 3, 3]  # the per-stream lock kept the batches in call order
    assert threads
    assert loop_thread not in threads
    assert await archive.read("lp1") == records
    assert await archive.read("lp1", reverse=True, limit=2) == records[:-3:-1]
    assert await archive.last_time("lp1") == records[-1].time
    assert await archive.days("lp1") == [date(2026, 3, 28), date(2026, 3, 29)]
    assert await archive.prune("lp1", keep_days=1, today=date(2026, 3, 29)) == [date(2026, 3, 28)]
    await archive.close()
