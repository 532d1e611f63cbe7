"""Completeness of local days as the REST API and the fleet page show it.

:func:`headend.completeness.completeness` judges a whole day; the page also shows the
running day, whose later periods are not due yet. So a day here counts only the periods
that have **ended** by ``now``: today at 10:00 with every quarter hour so far stored is
100 %, not 42 %. Stored times and status words of a run of days are read with two queries
per meter (the fleet page asks for seven days of every site every few seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from headend.completeness import PERIOD, completeness, day_bounds, expected_periods
from headend.storage import Repository

#: The load profile the completeness is of, and its status word (the power-down bit).
STREAM = "lp1"
STATUS_FIELD = "MeterStatus"
#: Periods read after a day, which may explain a hole at its end (as the export does).
LOOK_AFTER = PERIOD * 8
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Day:
    """One metering point's (or a site's, summed) load profile on one local day, so far."""

    day: date
    #: The day's quarter hours (92, 96 or 100).
    periods: int
    #: Those ended by now: what should be stored.
    expected: int
    stored: int
    missing: tuple[datetime, ...] = ()
    #: Periods the meter did not record (a power down), never asked for.
    not_recorded: tuple[datetime, ...] = ()

    @property
    def percent(self) -> float | None:
        """Stored or explained of those due; None while none is due (or no meter has data)."""
        if not self.expected:
            return None
        return 100.0 * (self.stored + len(self.not_recorded)) / self.expected


def local_days(now: datetime, zone: ZoneInfo, count: int) -> list[date]:
    """The ``count`` local days up to and including today in ``zone``, oldest first."""
    today = now.astimezone(zone).date()
    return [today - timedelta(days=n) for n in range(count - 1, -1, -1)]


async def meter_days(
    repository: Repository, publisher: str, meter: str, days: Sequence[date], zone: ZoneInfo, now: datetime
) -> list[Day]:
    """The completeness of consecutive ``days`` of one meter, as far as they are over."""
    first, _ = day_bounds(days[0], zone)
    _, last = day_bounds(days[-1], zone)
    # Period ends lie in (start, end]: read [start + 1 µs, end + LOOK_AFTER].
    span = (first + _TICK, last + LOOK_AFTER + _TICK)
    times = await repository.times(publisher, meter, STREAM, *span)
    words = {
        s.time: int(s.value or 0)
        for s in await repository.samples(publisher, meter, STREAM, *span, [STATUS_FIELD])
    }
    out = []
    for day in days:
        start, end = day_bounds(day, zone)
        stored = {t: words.get(t, 0) for t in times if start < t <= end}
        later = [(t, words.get(t, 0)) for t in times if t > end]
        verdict = completeness(day, zone, stored, later=later)
        due = [t for t in expected_periods(day, zone) if t <= now]
        out.append(
            Day(
                day,
                verdict.expected,
                len(due),
                sum(1 for t in stored if t <= now),
                tuple(t for t in verdict.missing if t <= now),
                tuple(t for t in verdict.not_recorded if t <= now),
            )
        )
    return out


def summed(days: Sequence[Day]) -> Day:
    """Several meters' same day as one (a site's day); ``periods`` is the day's own count."""
    return Day(
        days[0].day,
        days[0].periods,
        sum(d.expected for d in days),
        sum(d.stored for d in days),
        tuple(sorted(t for d in days for t in d.missing)),
        tuple(sorted(t for d in days for t in d.not_recorded)),
    )
