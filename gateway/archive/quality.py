"""EN 50160 in the archive: the ``pq10`` stream the recorder writes (one record per
10-minute interval, gateway/quality/en50160.py) and the weekly reports read from it.

A ``pq10`` record (``<meter>/pq10/<day>.csv``), stamped with the interval's start::

    time,status,1-0:32.7.0 mean10min [V],1-0:52.7.0 mean10min [V],1-0:72.7.0 mean10min [V],
        1-0:32.7.0 seconds [s],1-0:14.7.0 means10s,1-0:14.7.0 within1pct,1-0:14.7.0 within4-6pct

(the mean r.m.s. voltage per phase; the seconds with a voltage; the interval's 10-second
frequency means and how many lay within ±1 % and within +4/-6 % of 50 Hz). The weekly
report is written whole into ``<meter>/pq-week/<Monday>.csv`` when a week is over.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo

from gateway.archive.files import ArchiveReader
from gateway.archive.recorder import EVENT_COLUMNS, PQ_COLUMNS
from gateway.files import replace_file
from gateway.quality.en50160 import TenMinutes, WeekReport, report_csv, week_of, week_report
from gateway.streams import EVENT_LOG, StreamId

_WANTED = tuple((c.obis, c.qualifier) for c in PQ_COLUMNS)
#: Events before the week looked at, so that an outage running into it is seen.
_LEAD = timedelta(days=1)


def _from_row(time: datetime, values: tuple[float | None, ...]) -> TenMinutes:
    u1, u2, u3, seconds, means, band, limits = values
    return TenMinutes(
        time, int(seconds or 0), (u1, u2, u3), int(means or 0), int(band or 0), int(limits or 0)
    )


def week_from_archive(
    reader: ArchiveReader, start: datetime, end: datetime, open_interval: TenMinutes | None = None
) -> WeekReport:
    """The EN 50160 report of the week [start, end) from the meter's ``pq10`` records and
    event log, plus the interval still open (the running week). Blocking: run in a thread."""
    last = end - timedelta(microseconds=1)
    records = [_from_row(t, v) for t, _s, v in reader.read_columns(StreamId.QUALITY, _WANTED, start, last)]
    live = open_interval
    if live is not None and start <= live.start < end and (not records or records[-1].start < live.start):
        records.append(live)
    wanted = ((str(EVENT_LOG.cosem), EVENT_COLUMNS[0].qualifier),)
    events = [
        (t, int(v[0]))
        for t, _s, v in reader.read_columns(EVENT_LOG.id, wanted, start - _LEAD, last)
        if v[0] is not None
    ]
    return week_report(records, events, start, end)


def weeks(now: datetime, zone: tzinfo | None) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """The running week and the last complete one, as UTC bounds."""
    running = week_of(now, zone)
    return running, week_of(running[0] - timedelta(seconds=1), zone)


def write_week(reader: ArchiveReader, report: WeekReport, monday: date) -> str:
    """The report as ``<meter>/pq-week/<Monday>.csv`` (whole-file replace); its path."""
    path = reader.stream_dir(StreamId.QUALITY_WEEKS) / f"{monday.isoformat()}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, report_csv(report).encode())
    return str(path)
