"""A day's 15-minute load profiles as CSV, for billing and DSO/TSO data exchange (issue 17).

One line per site, meter and quarter hour of the site's **local** day (92, 96 or 100 of
them, :mod:`headend.completeness`), in period order, with the period's start and end in
UTC and in local time, every channel the site sent (columns named as its metadata names
the fields, e.g. ``APlusPerPeriod``), the meter's status word and a **flag**:

* ``ok`` — stored as the meter gave it;
* ``missing`` — not stored (yet): the values are empty; the head-end asks the box for it;
* ``not-recorded`` — the meter itself recorded nothing (a supply interruption, told by the
  status word of the period after the hole): the values are empty and stay so.

The header lines start with ``#`` and state the day, the sites' zones and the completeness
of each meter, so a file is self-describing when it is mailed on. Values use ``.`` as the
decimal point in Python's shortest round-trip notation; an empty cell is no value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from headend.completeness import PERIOD, DayCompleteness, completeness, day_bounds, expected_periods
from headend.config import HeadendConfig
from headend.storage import Repository

STREAM = "lp1"
STATUS_FIELD = "MeterStatus"


@dataclass(frozen=True, slots=True)
class _Block:
    """One meter's day: its zone, its stored periods by end time and the verdict."""

    publisher: str
    meter: str
    zone: ZoneInfo
    rows: dict[datetime, dict[str, float | None]]
    verdict: DayCompleteness


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def export_day(
    repository: Repository, config: HeadendConfig, day: date, sites: Sequence[str] = ()
) -> str:
    """The CSV text of ``day`` for ``sites`` (every site that has sent a load profile when empty)."""
    pairs = sorted(p for p in await repository.publishers_and_meters() if not sites or p[0] in sites)
    blocks: list[_Block] = []
    channels: set[str] = set()
    for publisher, meter in pairs:
        zone = ZoneInfo(config.site(publisher).timezone)
        start, end = day_bounds(day, zone)
        rows = await repository.samples(publisher, meter, STREAM, start, end + PERIOD * 8)
        if not rows:
            continue
        by_time: dict[datetime, dict[str, float | None]] = {}
        for r in rows:
            by_time.setdefault(r.time, {})[r.field] = r.value
        stored = {t: int(v.get(STATUS_FIELD) or 0) for t, v in by_time.items() if start < t <= end}
        later = sorted((t, int(v.get(STATUS_FIELD) or 0)) for t, v in by_time.items() if t > end)
        verdict = completeness(day, zone, stored, later=later)
        channels.update(f for v in by_time.values() for f in v if f != STATUS_FIELD)
        blocks.append(_Block(publisher, meter, zone, by_time, verdict))
    names = sorted(channels)
    out = io.StringIO()
    out.write(f"# smx-headend export 1: load profile {STREAM}, local day {day.isoformat()}\n")
    for b in blocks:
        v = b.verdict
        out.write(
            f"# {b.publisher} {b.meter}: zone {b.zone.key}, {v.expected} periods, {v.stored} stored, "
            f"{len(v.missing)} missing, {len(v.not_recorded)} not recorded ({v.percent:.2f} %)\n"
        )
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["site", "meter", "start_utc", "end_utc", "start_local", "end_local", *names, STATUS_FIELD, "flag"]
    )
    for b in blocks:
        missing, not_recorded = set(b.verdict.missing), set(b.verdict.not_recorded)
        for end_t in expected_periods(day, b.zone):
            start_t = end_t - PERIOD
            values = None if end_t in missing or end_t in not_recorded else b.rows.get(end_t)
            flag = "not-recorded" if end_t in not_recorded else "missing" if values is None else "ok"
            cells = ["" if values is None or values.get(n) is None else repr(values[n]) for n in names]
            word = None if values is None else values.get(STATUS_FIELD)
            writer.writerow([
                b.publisher, b.meter, _iso(start_t), _iso(end_t), start_t.astimezone(b.zone).isoformat(),
                end_t.astimezone(b.zone).isoformat(), *cells, "" if word is None else str(int(word)), flag,
            ])  # fmt: skip
    return out.getvalue()
