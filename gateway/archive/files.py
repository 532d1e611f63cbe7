"""Archive day files: append-only CSV per meter, stream and UTC day, crash-safe.

Layout
------
``<root>/<meter_id>/<stream>/<YYYY-MM-DD>.csv``, the day being the UTC day of each
record's time. Streams are named by the caller (``minute``, ``lp1``, ``lp2``, ``events``,
...). One file per day keeps retention a matter of deleting whole files and keeps every
file small enough for a person or a spreadsheet to open.

File format (version 1)
-----------------------
An example ``meter1/lp1/2026-03-29.csv``::

    # smx-archive 1 stream=lp1 meter=meter1
    # time: ISO 8601 UTC; status: meter status word (decimal); empty cell = no value
    time,status,1-0:1.29.0 [kWh],1-0:2.29.0 [kWh]
    2026-03-29T00:15:00Z,0,0.25,0.0
    2026-03-29T00:30:00Z,8,0.5,

* Lines starting with ``#`` are comments. The first names the format, its version, the
  stream and the meter. A spreadsheet shows them as one-cell rows; Python's :mod:`csv`
  reader takes them once they are filtered out.
* The first non-comment line is the column row: ``time``, ``status`` and one column per
  value, named ``<OBIS code>[ <qualifier>][ [<unit>]]`` (e.g. ``1-0:16.7.0 mean [kW]``).
  A configuration change during the day adds ``# columns changed: ...`` and a new
  column row; the records below a column row follow it.
* Each further line is one record: the time in ISO 8601 UTC with ``Z`` (microseconds
  only when non-zero), the status as a decimal integer, the values with ``.`` as the
  decimal point in Python's shortest round-trip notation (``0.1``, ``1e-05``). An empty
  cell means "no value". Nothing is quoted: names are checked to hold no comma or quote.
* Comma separated, ASCII, every line ends with ``\\n``. Records are in strictly
  increasing time order, across the day files of a stream too.

Crash safety
------------
Every :meth:`ArchiveWriter.append` writes its lines with one ``os.write`` and one
``os.fsync``, so after a power cut a file ends with complete records and at most one torn
line. A record is complete exactly when its line ends with ``\\n``: readers skip a last
line without it, and the writer truncates it away (with a warning) when it opens the file
again. A file whose header is damaged is renamed aside (``<day>.csv.corrupt-<n>``) and a
new one is started; nothing readable is ever deleted by the repair. A failed write (disk
full, ...) is cut back to the size before it, so the file stays as it was, and raised as
:class:`~gateway.errors.ArchiveError`.

The writer and reader here are synchronous, pure file I/O. :class:`AsyncArchive` runs
them in worker threads so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from gateway.errors import ArchiveError
from gateway.obis import Obis

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_MAGIC = b"# smx-archive "
_COMMENT = b"# time: ISO 8601 UTC; status: meter status word (decimal); empty cell = no value\n"
#: The name of a day file, ``YYYY-MM-DD.csv`` (also of the market's notified profiles).
DAY_FILE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})\.csv$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
fromisoformat = datetime.fromisoformat
_CHUNK = 64 * 1024  # scan step for tails and headers; far larger than any one line
#: Newest records looked at to find a profile's capture period.
_PERIOD_SAMPLE = 8
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Column:
    """One value column: the OBIS code and unit a reader needs to interpret the numbers.

    ``qualifier`` tells apart several columns derived from one OBIS code (minute records
    carry ``mean``, ``min``, ``max`` and ``count`` of one value).
    """

    obis: str
    unit: str = ""
    qualifier: str = ""

    def __post_init__(self) -> None:
        for name in (self.obis, self.unit, self.qualifier):
            if any(c in name for c in ',"\n\r[]'):
                raise ValueError(f'column name part {name!r} must not hold , " [ ] or a line break')
        if not self.obis:
            raise ValueError("a column needs an OBIS code")

    @property
    def heading(self) -> str:
        """The cell text in the column row, e.g. ``1-0:16.7.0 mean [kW]``."""
        text = self.obis
        if self.qualifier:
            text += f" {self.qualifier}"
        if self.unit:
            text += f" [{self.unit}]"
        return text


@dataclass(frozen=True, slots=True)
class Record:
    """One archived line: when, the meter's status word (if any) and the values."""

    time: datetime
    status: int | None
    values: tuple[float | None, ...]


RecordLike = Record | tuple[datetime, int | None, Sequence[float | None]]


def day_file(day: date) -> str:
    """The file name of a UTC day's records (``2026-03-29.csv``)."""
    return f"{day.isoformat()}.csv"


def file_day(name: str) -> date | None:
    """The day of a day file's name; None for any other file (renamed-aside files too)."""
    m = DAY_FILE.match(name)
    if m is None:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def _check_name(kind: str, name: str) -> str:
    """Stream and meter names become directory names: refuse anything path-like."""
    if not _NAME.match(name):
        raise ValueError(f"{kind} {name!r} must be letters, digits, '_', '-' or '.' (not leading)")
    return name


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"archive times must be timezone-aware UTC, got naive {t!r}")
    return t if t.utcoffset() == timedelta(0) else t.astimezone(UTC)


def _format_time(t: datetime) -> str:
    return t.replace(tzinfo=None).isoformat() + "Z"


def _format_value(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def _header(stream: str, meter_id: str, columns: Sequence[Column]) -> bytes:
    names = ",".join(["time", "status", *(c.heading for c in columns)])
    first = f"# smx-archive {FORMAT_VERSION} stream={stream} meter={meter_id}\n"
    return first.encode("ascii") + _COMMENT + names.encode("ascii") + b"\n"


def _split_header(data: bytes) -> bytes | None:
    """The header (comment lines plus column row) at the start of ``data``, or None if damaged."""
    if not data.startswith(_MAGIC):
        return None
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            return None
        if data[pos : pos + 1] != b"#":
            return data[: end + 1] if data.startswith(b"time,status", pos) else None
        pos = end + 1


def _parse_line(line: bytes) -> Record:
    fields = line.rstrip(b"\n").decode("ascii").split(",")
    if len(fields) < 2:
        raise ValueError("fewer than two fields")
    t = datetime.fromisoformat(fields[0])
    if t.tzinfo is None:
        raise ValueError("time without zone")
    status = int(fields[1]) if fields[1] else None
    return Record(t, status, tuple(float(v) if v else None for v in fields[2:]))


def _record_lines(lines: Iterable[bytes], path: Path) -> Iterator[Record]:
    """Records from complete lines; comments, the column row and a torn line are skipped."""
    for line in lines:
        if not line.endswith(b"\n") or line.startswith((b"#", b"time,")) or line == b"\n":
            continue
        try:
            yield _parse_line(line)
        except (ValueError, UnicodeDecodeError) as err:
            log.warning("%s: skipping unreadable line %r (%s)", path, line[:80], err)


#: A column asked for by name: OBIS code and qualifier (``("1-0:16.7.0", "mean")``).
ColumnKey = tuple[str, str]


def parse_heading(heading: str) -> tuple[Obis, str, str]:
    """``1-0:16.7.0 mean [kW]`` -> (OBIS, qualifier, unit): the inverse of :attr:`Column.heading`."""
    unit = ""
    if heading.endswith("]") and " [" in heading:
        heading, unit = heading[:-1].rsplit(" [", 1)
    code, _, qualifier = heading.partition(" ")
    return Obis.parse(code), qualifier, unit


def _column_index(header: bytes, wanted: Sequence[ColumnKey]) -> list[int | None]:
    """Field positions of the ``wanted`` columns in a file's column row (None: not in it)."""
    names = header.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("ascii").split(",")
    found: list[tuple[Obis, str]] = []
    for name in names[2:]:
        try:
            obis, qualifier, _unit = parse_heading(name)
        except Exception:
            found.append((Obis(255, 255, 255, 255, 255, 255), "\0"))
            continue
        found.append((obis, qualifier))
    index: list[int | None] = []
    for code, qualifier in wanted:
        want = Obis.parse(code)
        pos = next((n for n, (o, q) in enumerate(found) if q == qualifier and o.matches(want)), None)
        index.append(None if pos is None else pos + 2)
    return index


def _fsync_dir(path: Path) -> None:
    """Make a created or renamed directory entry survive a power cut too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArchiveReader:
    """Reads the day files of one meter; safe to use while a writer appends."""

    def __init__(self, root: Path | str, meter_id: str) -> None:
        self.root = Path(root)
        self.meter_id = _check_name("meter id", meter_id)
        self._periods: dict[str, timedelta] = {}

    def note_period(self, stream: str, period: timedelta) -> None:
        """Remember a profile's capture period as the meter gave it with its last readout."""
        self._periods[stream] = period

    def capture_period(self, stream: str) -> timedelta | None:
        """The capture period of a load-profile stream: as the meter last gave it, else the
        smallest spacing of the newest records (a profile's records are whole periods
        apart; the files do not say it), None while fewer than two are archived."""
        found = self._periods.get(stream)
        if found is None:
            times = [r.time for r in itertools.islice(self.read(stream, reverse=True), _PERIOD_SAMPLE)]
            gaps = [a - b for a, b in itertools.pairwise(times) if a > b]
            if not gaps:
                return None
            found = self._periods.setdefault(stream, min(gaps))
        return found

    def stream_dir(self, stream: str) -> Path:
        return self.root / self.meter_id / _check_name("stream", stream)

    def path(self, stream: str, day: date) -> Path:
        return self.stream_dir(stream) / day_file(day)

    def days(self, stream: str) -> list[date]:
        """The UTC days that have a file, oldest first (renamed-aside files are not days)."""
        folder = self.stream_dir(stream)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise ArchiveError(f"cannot list {folder}: {err.strerror or err}") from err
        return sorted(d for d in map(file_day, names) if d is not None)

    def _days_between(
        self, stream: str, lo: datetime | None, hi: datetime | None, reverse: bool
    ) -> list[date]:
        """The day files that can hold records from ``lo`` to ``hi``, in reading order."""
        days = [
            d for d in self.days(stream) if (lo is None or d >= lo.date()) and (hi is None or d <= hi.date())
        ]
        if reverse:
            days.reverse()
        return days

    def read(
        self,
        stream: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        reverse: bool = False,
    ) -> Iterator[Record]:
        """Records with ``start <= time <= end`` (None = open), in time order or reversed.

        Lazy: day files are opened one after the other as the caller iterates, so a
        paged history read touches only the days it returns.
        """
        lo = _utc(start) if start is not None else None
        hi = _utc(end) if end is not None else None
        days = self._days_between(stream, lo, hi, reverse)
        for day in days:
            for rec in self._read_day(self.path(stream, day), reverse):
                if lo is not None and rec.time < lo:
                    if reverse:
                        return
                    continue
                if hi is not None and rec.time > hi:
                    if reverse:
                        continue
                    return
                yield rec

    def _read_day(self, path: Path, reverse: bool) -> Iterator[Record]:
        try:
            with open(path, "rb") as f:
                if not reverse:
                    yield from _record_lines(f, path)
                    return
                lines = f.read().splitlines(keepends=True)
        except FileNotFoundError:
            return  # pruned between listing and reading
        except OSError as err:
            raise ArchiveError(f"cannot read {path}: {err.strerror or err}") from err
        # A day file is at most a few MB, so reversing it in memory is cheap and simple.
        yield from _record_lines(reversed(lines), path)

    def read_columns(
        self,
        stream: str,
        wanted: Sequence[ColumnKey],
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        reverse: bool = False,
    ) -> Iterator[tuple[datetime, int | None, tuple[float | None, ...]]]:
        """Like :meth:`read`, but only the ``wanted`` columns, found by name in each file.

        A history read wants one OBIS object out of a file that holds dozens: parsing
        only its cells is what makes a year of one channel fast. Columns are matched by
        OBIS code (group B ignored, as a meter may name it differently, DESIGN §3) and
        qualifier in every day file's own header, so files written with another column
        layout (a changed configuration) are still read right; a column a file lacks
        reads as ``None``. Records with no wanted value at all are skipped.
        """
        lo = _utc(start) if start is not None else None
        hi = _utc(end) if end is not None else None
        days = self._days_between(stream, lo, hi, reverse)
        for day in days:
            path = self.path(stream, day)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            except OSError as err:
                raise ArchiveError(f"cannot read {path}: {err.strerror or err}") from err
            header = _split_header(data)
            if header is None:
                continue
            body = data[len(header) :]
            stop = body.rfind(b"\n")  # a torn last line is not a record
            lines = body[: stop + 1].split(b"\n")[:-1] if stop >= 0 else []
            # A changed configuration continues the file below a new column row: each
            # stretch of lines is read with the columns of the row above it.
            segments: list[tuple[list[int | None], list[bytes]]] = [(_column_index(header, wanted), [])]
            for line in lines:
                if line.startswith(b"time,status"):
                    segments.append((_column_index(line, wanted), []))
                else:
                    segments[-1][1].append(line)
            if reverse:
                segments.reverse()
            # Only the first and last day of the range need the time checks.
            check_lo = lo is not None and day == lo.date()
            check_hi = hi is not None and day == hi.date()
            for index, segment in segments:
                if all(i is None for i in index):
                    continue
                if reverse:
                    segment.reverse()
                for row in self._rows(segment, index, lo if check_lo else None, hi if check_hi else None,
                                      reverse, path):  # fmt: skip
                    if row is None:
                        return  # past the end of the range
                    yield row

    @staticmethod
    def _rows(
        lines: list[bytes],
        index: list[int | None],
        lo: datetime | None,
        hi: datetime | None,
        reverse: bool,
        path: Path,
    ) -> Iterator[tuple[datetime, int | None, tuple[float | None, ...]] | None]:
        """The wanted cells of ``lines``; None once the range is left (the read is over)."""
        # A one-column read (every history read of a register or profile channel) skips
        # the tuple building of the general case; lines are split no further than the
        # last wanted column, and cells stay bytes (float() and int() read ASCII).
        single = index[0] if len(index) == 1 else None
        splits = max(i for i in index if i is not None) + 1
        for line in lines:
            if not line or line[0] == 0x23:  # "#"
                continue
            try:
                fields = line.split(b",", splits)
                t = fromisoformat(fields[0].decode("ascii"))
                if t.tzinfo is None:
                    raise ValueError("time without zone")
                if lo is not None and t < lo:
                    if reverse:
                        yield None
                        return
                    continue
                if hi is not None and t > hi:
                    if reverse:
                        continue
                    yield None
                    return
                if single is not None:
                    cell = fields[single] if single < len(fields) else b""
                    if not cell:
                        continue
                    cells: tuple[float | None, ...] = (float(cell),)
                else:
                    cells = tuple(
                        None if i is None or i >= len(fields) or not fields[i] else float(fields[i])
                        for i in index
                    )
                    if all(c is None for c in cells):
                        continue
                status = int(fields[1]) if fields[1] else None
            except (ValueError, UnicodeDecodeError, IndexError) as err:
                log.warning("%s: skipping unreadable line %r (%s)", path, line[:80], err)
                continue
            yield t, status, cells

    def last_time(self, stream: str) -> datetime | None:
        """The newest record's time, reading only the tail of the newest non-empty day file."""
        for day in reversed(self.days(stream)):
            path = self.path(stream, day)
            try:
                t = self._last_time_in(path)
            except FileNotFoundError:
                continue
            except OSError as err:
                raise ArchiveError(f"cannot read {path}: {err.strerror or err}") from err
            if t is not None:
                return t
        return None

    @staticmethod
    def _last_time_in(path: Path) -> datetime | None:
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            span = _CHUNK
            while True:
                offset = max(0, size - span)
                data = os.pread(fd, size - offset, offset)
                lines = data.split(b"\n")
                lines.pop()  # torn rest after the last newline, or b"" if none
                if offset > 0:
                    lines = lines[1:]  # the first piece may be cut in the middle
                for line in reversed(lines):
                    if line and not line.startswith((b"#", b"time,")):
                        try:
                            return _parse_line(line).time
                        except (ValueError, UnicodeDecodeError):
                            continue
                if offset == 0:
                    return None
                span *= 4
        finally:
            os.close(fd)


@dataclass(slots=True)
class _DayBatch:
    """The lines of one append call that go to one day file."""

    day: date
    lines: list[str]
    newest: datetime


@dataclass(slots=True)
class _OpenFile:
    day: date
    path: Path
    fd: int
    size: int
    #: The header whose column row the file's records follow now.
    header: bytes


class ArchiveWriter:
    """Appends records to day files; one instance per meter, one caller per stream at a time.

    Files are opened lazily and kept open while records go to the same (stream, day), so
    the once-a-minute append costs one write and one fsync, not an open and a header scan.
    """

    def __init__(self, root: Path | str, meter_id: str) -> None:
        self.reader = ArchiveReader(root, meter_id)
        self.meter_id = meter_id
        self._open: dict[str, _OpenFile] = {}
        self._last: dict[str, datetime | None] = {}

    def append(self, stream: str, columns: Sequence[Column], records: Iterable[RecordLike]) -> int:
        """Append records newer than the stream's newest one; return how many were written.

        Older or equal times are skipped, so an overlapping backfill never duplicates;
        records of one call may share a time stamp (events of one second).
        Records of one call that fall on one day go out in one write and one fsync.
        """
        _check_name("stream", stream)
        if stream not in self._last:
            self._last[stream] = self.reader.last_time(stream)
        last = before = self._last[stream]
        width = len(columns)
        batches: list[_DayBatch] = []  # everything is checked before the first byte is written
        for item in records:
            t, status, values = (item.time, item.status, item.values) if isinstance(item, Record) else item
            t = _utc(t)
            if len(values) != width:
                raise ValueError(f"record at {t} has {len(values)} values for {width} columns")
            # Newer than what is stored; within one call equal times may repeat (two meter
            # events in one second), but never go back.
            if (before is not None and t <= before) or (last is not None and t < last):
                continue
            line = ",".join(
                [_format_time(t), "" if status is None else str(int(status)), *map(_format_value, values)]
            )
            if not batches or batches[-1].day != t.date():
                batches.append(_DayBatch(t.date(), [], t))
            batches[-1].lines.append(line)
            batches[-1].newest = last = t
        written = 0
        for batch in batches:
            self._write_day(stream, columns, batch.day, batch.lines)
            written += len(batch.lines)
            self._last[stream] = batch.newest
        return written

    def _write_day(self, stream: str, columns: Sequence[Column], day: date, lines: list[str]) -> None:
        header = _header(stream, self.meter_id, columns)
        f = self._file(stream, header, day)
        data = ("\n".join(lines) + "\n").encode("ascii")
        if f.size == 0:
            data = header + data  # a new file gets its header in the same write
        try:
            view = memoryview(data)
            while view:  # one call in practice; the loop only covers short writes
                n = os.write(f.fd, view)
                view = view[n:]
            os.fsync(f.fd)
        except OSError as err:
            self._undo(stream, f)
            raise ArchiveError(f"cannot append to {f.path}: {err.strerror or err}") from err
        f.size += len(data)

    def _undo(self, stream: str, f: _OpenFile) -> None:
        """Cut a failed write back so the file is exactly as it was, then forget the handle."""
        try:
            os.ftruncate(f.fd, f.size)
            os.fsync(f.fd)
        except OSError as err:
            log.error("%s: could not cut a failed write back to %d bytes: %s", f.path, f.size, err)
        self._close(stream)

    def _file(self, stream: str, header: bytes, day: date) -> _OpenFile:
        f = self._open.get(stream)
        if f is not None and f.day == day:
            if f.header != header:
                try:
                    f.size = self._continue_with_columns(f.fd, f.path, f.size, header)
                except OSError as err:
                    self._undo(stream, f)
                    raise ArchiveError(f"cannot append to {f.path}: {err.strerror or err}") from err
                f.header = header
            return f
        self._close(stream)
        path = self.reader.path(stream, day)
        try:
            f = self._open_for_append(path, header, day)
        except OSError as err:
            raise ArchiveError(f"cannot open {path}: {err.strerror or err}") from err
        self._open[stream] = f
        return f

    def _open_for_append(self, path: Path, header: bytes, day: date) -> _OpenFile:
        folder = path.parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_dir(folder.parent)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size > 0:
                found = _split_header(os.pread(fd, min(size, _CHUNK), 0))
                if found is None:
                    os.close(fd)
                    fd = -1
                    self._set_aside(path)
                    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                    size = 0
                else:
                    size = self._cut_torn_tail(fd, path, size)
                    size = self._continue_with_columns(fd, path, size, header)
            if size == 0:
                _fsync_dir(folder)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        return _OpenFile(day, path, fd, size, header)

    @staticmethod
    def _continue_with_columns(fd: int, path: Path, size: int, header: bytes) -> int:
        """Make the file's last column row this append's: after a configuration change
        the day goes on in the same file below a new column row (a comment says why), so
        nothing is set aside and readers take each stretch with its own columns."""
        wanted = header[header.rstrip(b"\n").rfind(b"\n") + 1 :]
        data = os.pread(fd, size, 0)
        at = data.rfind(b"\ntime,status")
        current = data[at + 1 : data.index(b"\n", at + 1) + 1]
        if current == wanted:
            return size
        addition = b"# columns changed: the records below follow this column row\n" + wanted
        os.write(fd, addition)
        os.fsync(fd)
        log.warning("%s: columns changed; the day continues below a new column row", path)
        return size + len(addition)

    @staticmethod
    def _set_aside(path: Path) -> None:
        n = 1
        while (aside := path.with_name(f"{path.name}.corrupt-{n}")).exists():
            n += 1
        os.rename(path, aside)
        _fsync_dir(path.parent)
        log.warning("%s: header damaged; kept as %s and starting a new file", path, aside.name)

    @staticmethod
    def _cut_torn_tail(fd: int, path: Path, size: int) -> int:
        """Truncate a last line without ``\\n`` (a write cut by a power loss); return the new size."""
        if os.pread(fd, 1, size - 1) == b"\n":
            return size
        end = size
        keep = 0
        while end > 0:
            start = max(0, end - _CHUNK)
            i = os.pread(fd, end - start, start).rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            end = start
        dropped = os.pread(fd, min(size - keep, 80), keep)
        os.ftruncate(fd, keep)
        os.fsync(fd)
        log.warning("%s: dropped %d bytes of a torn last line %r", path, size - keep, dropped)
        return keep

    def repair(self, stream: str) -> bool:
        """Cut a torn last line off the stream's newest day file now (at start), rather than
        at its next append; return whether one was cut. Only the newest file can be torn:
        every older one was complete before the next day's first record was written."""
        days = self.reader.days(stream)
        if not days:
            return False
        path = self.reader.path(stream, days[-1])
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise ArchiveError(f"cannot open {path}: {err.strerror or err}") from err
        try:
            size = os.fstat(fd).st_size
            return size > 0 and self._cut_torn_tail(fd, path, size) != size
        except OSError as err:
            raise ArchiveError(f"cannot repair {path}: {err.strerror or err}") from err
        finally:
            os.close(fd)

    def prune(self, stream: str, keep_days: int, today: date) -> list[date]:
        """Delete day files more than ``keep_days - 1`` days before ``today``; return their days.

        ``keep_days=1`` keeps only today. Only files named like a day are touched; files
        set aside as corrupt stay for a person to look at.
        """
        if keep_days < 1:
            raise ValueError("keep_days must be at least 1")
        oldest_kept = today - timedelta(days=keep_days - 1)
        removed = []
        for day in self.reader.days(stream):
            if day >= oldest_kept:
                break
            f = self._open.get(stream)
            if f is not None and f.day == day:
                self._close(stream)
            path = self.reader.path(stream, day)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as err:
                raise ArchiveError(f"cannot delete {path}: {err.strerror or err}") from err
            removed.append(day)
        return removed

    def _close(self, stream: str) -> None:
        f = self._open.pop(stream, None)
        if f is not None:
            os.close(f.fd)

    def close(self) -> None:
        """Close every open day file (data is already on disk: each append fsyncs)."""
        for stream in list(self._open):
            self._close(stream)


class AsyncArchive:
    """The archive for coroutines: every file operation runs in a worker thread.

    One lock per stream keeps appends to a stream in call order (and lets appends to
    different streams overlap); a cancelled caller still waits for its thread to finish
    before the lock is released, so two writes to one file never interleave.
    """

    def __init__(self, root: Path | str, meter_id: str) -> None:
        self.writer = ArchiveWriter(root, meter_id)
        self.reader = self.writer.reader
        self._locks: dict[str, asyncio.Lock] = {}

    async def _locked(self, stream: str, fn: Callable[[], _T]) -> _T:
        lock = self._locks.setdefault(stream, asyncio.Lock())
        async with lock:
            fut = asyncio.ensure_future(asyncio.to_thread(fn))
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                await asyncio.wait([fut])
                raise

    async def append(self, stream: str, columns: Sequence[Column], records: Iterable[RecordLike]) -> int:
        batch = list(records)
        return await self._locked(stream, lambda: self.writer.append(stream, columns, batch))

    async def read(
        self,
        stream: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[Record]:
        """Up to ``limit`` records of :meth:`ArchiveReader.read`, collected in a thread."""

        def collect() -> list[Record]:
            out: list[Record] = []
            for rec in self.reader.read(stream, start, end, reverse=reverse):
                if limit is not None and len(out) >= limit:
                    break
                out.append(rec)
            return out

        return await asyncio.to_thread(collect)

    async def last_time(self, stream: str) -> datetime | None:
        return await asyncio.to_thread(self.reader.last_time, stream)

    async def days(self, stream: str) -> list[date]:
        return await asyncio.to_thread(self.reader.days, stream)

    async def prune(self, stream: str, keep_days: int, today: date) -> list[date]:
        return await self._locked(stream, lambda: self.writer.prune(stream, keep_days, today))

    async def repair(self, stream: str) -> bool:
        return await self._locked(stream, lambda: self.writer.repair(stream))

    async def close(self) -> None:
        for lock in list(self._locks.values()):
            await lock.acquire()
        try:
            await asyncio.to_thread(self.writer.close)
        finally:
            for lock in self._locks.values():
                lock.release()


__all__ = [
    "DAY_FILE",
    "FORMAT_VERSION",
    "ArchiveReader",
    "ArchiveWriter",
    "AsyncArchive",
    "Column",
    "ColumnKey",
    "Record",
    "RecordLike",
    "day_file",
    "file_day",
    "parse_heading",
]
