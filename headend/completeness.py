"""Completeness of a metering point's load profile per day, and which holes to ask for again.

A billing day is the site's **local** day: from local midnight to the next, so it holds
92, 96 or 100 quarter hours on the days the clocks change (in Europe/Vienna: the last
Sundays of March and October). A load-profile period is stamped at its **end** (DESIGN §5,
IEC 62056-21 P.01 / COSEM profile capture): the periods of a day end from 00:15 local to
24:00 local.

A period that is not stored is **missing** — unless the meter itself never recorded it: a
meter that loses its supply records nothing while it is down and flags the first period
after the outage with the power-down bit of its status word (IDIS/DSMR "AMR profile
status" 0x80). A hole that ends at such a period is most likely the meter's, **not
recorded**, and the head-end records it as such. But the bit only says that the supply
failed at some time during that period: a message lost on the way just before a short
outage leaves the same hole. Such a hole is therefore asked for **once** (the box answers
with what it has: nothing, or the periods), never again.

Pure: stored times and status words in, a verdict out. The service asks the publisher for
what is missing and older than a grace time, paced by :class:`ReplayPlanner`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

#: The load profile's capture period the head-end expects (the market's quarter hour).
PERIOD = timedelta(minutes=15)
#: The status word's power-down bit (the period saw a supply interruption).
POWER_DOWN = 0x80


def day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """UTC start and end of the local ``day`` in ``zone``."""
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def expected_periods(day: date, zone: tzinfo, period: timedelta = PERIOD) -> list[datetime]:
    """The UTC end times of the periods of the local ``day`` (92, 96 or 100 quarter hours)."""
    start, end = day_bounds(day, zone)
    count = (end - start) // period
    return [start + period * (n + 1) for n in range(count)]


@dataclass(frozen=True, slots=True)
class DayCompleteness:
    """One metering point's load profile on one local day."""

    day: date
    expected: int
    stored: int
    #: Period ends neither stored nor explained, oldest first.
    missing: tuple[datetime, ...] = ()
    #: Period ends the meter did not record (a power-down hole), oldest first.
    not_recorded: tuple[datetime, ...] = ()

    @property
    def percent(self) -> float:
        """Share of the day's periods stored or explained by the meter."""
        if not self.expected:
            return 100.0
        return 100.0 * (self.stored + len(self.not_recorded)) / self.expected

    @property
    def complete(self) -> bool:
        return not self.missing


def completeness(
    day: date,
    zone: tzinfo,
    stored: Mapping[datetime, int],
    *,
    later: Iterable[tuple[datetime, int]] = (),
    period: timedelta = PERIOD,
) -> DayCompleteness:
    """The verdict for ``day``: ``stored`` maps the stored period ends (UTC) to their status
    words; ``later`` are stored periods after the day (oldest first), which may explain a
    hole at the day's end."""
    expected = expected_periods(day, zone, period)
    after = sorted(list(stored.items()) + list(later))
    missing: list[datetime] = []
    not_recorded: list[datetime] = []
    hole: list[datetime] = []
    for t in expected:
        if t in stored:
            if hole:
                (not_recorded if stored[t] & POWER_DOWN else missing).extend(hole)
                hole = []
            continue
        hole.append(t)
    if hole:
        # The hole runs to the day's end: what comes first after it decides.
        nxt = next(((t, w) for t, w in after if t > hole[-1]), None)
        (not_recorded if nxt is not None and nxt[1] & POWER_DOWN else missing).extend(hole)
    count = sum(1 for t in expected if t in stored)
    return DayCompleteness(day, len(expected), count, tuple(missing), tuple(not_recorded))


@dataclass(frozen=True, slots=True)
class Request:
    """Ask ``publisher`` for ``writer_id``'s records from ``start`` to ``end`` again."""

    publisher: str
    writer_id: int
    start: datetime
    end: datetime


def runs(missing: Iterable[datetime], period: timedelta = PERIOD) -> list[tuple[datetime, ...]]:
    """Missing period ends split into runs of consecutive periods, oldest first."""
    out: list[list[datetime]] = []
    for t in sorted(missing):
        if out and t - out[-1][-1] == period:
            out[-1].append(t)
        else:
            out.append([t])
    return [tuple(r) for r in out]


@dataclass(slots=True)
class ReplayPlanner:
    """Turns holes (runs of missing periods) into replay requests, paced.

    A hole is asked for once it is older than ``grace`` (the box may still be sending it),
    at most once per ``per_publisher`` per publisher, and at most ``total_per_minute``
    requests a minute in all, so a fleet-wide outage cannot turn into a storm of requests
    against thousands of 3G links at once. A hole asked for ``attempts`` times that is
    still missing is given up (the box does not have it either: older than its archive, or
    lost with it) and counted in :attr:`given_up`, so one hole cannot starve the others.
    """

    grace: timedelta = timedelta(hours=1)
    per_publisher: timedelta = timedelta(minutes=10)
    total_per_minute: int = 60
    attempts: int = 3
    _last: dict[str, datetime] = field(default_factory=dict)
    _minute: list[datetime] = field(default_factory=list)
    _asked: dict[tuple[str, int, datetime, datetime], int] = field(default_factory=dict)
    given_up: set[tuple[str, int, datetime, datetime]] = field(default_factory=set)

    def plan(self, now: datetime, holes: Iterable[tuple[str, int, tuple[datetime, ...]]]) -> list[Request]:
        """Requests for ``(publisher, writer id, run of missing period ends)``, oldest run of
        each publisher first, as far as the limits allow (the per-publisher pacing kept in
        this planner: one instance; :meth:`due`, :meth:`room` and :meth:`asked` let several
        share it through the database)."""
        out = []
        for request in self.due(now, holes):
            last = self._last.get(request.publisher)
            if last is not None and now - last < self.per_publisher:
                continue
            if not self.room(now):
                break
            self.asked(request, now)
            out.append(request)
        return out

    def due(self, now: datetime, holes: Iterable[tuple[str, int, tuple[datetime, ...]]]) -> list[Request]:
        """Per publisher the oldest run that is past the grace time and not given up: what
        may be asked for if the pacing allows."""
        out: dict[str, Request] = {}
        for publisher, writer_id, missing in holes:
            if publisher in out:
                continue
            due = [t for t in missing if now - t >= self.grace]
            if not due:
                continue
            key = (publisher, writer_id, min(due), max(due))
            if key in self.given_up:
                continue
            if self._asked.get(key, 0) >= self.attempts:
                self.given_up.add(key)
                continue
            # The uplink's replay range is inclusive at both ends.
            out[publisher] = Request(publisher, writer_id, key[2], key[3])
        return list(out.values())

    def tried(self, now: datetime, publisher: str, writer_id: int, run: tuple[datetime, ...]) -> bool:
        """Whether the part of ``run`` past the grace time has been asked for already."""
        due = [t for t in run if now - t >= self.grace]
        return bool(due) and self._asked.get((publisher, writer_id, min(due), max(due)), 0) > 0

    def room(self, now: datetime) -> bool:
        """Whether another request fits in this minute's budget."""
        self._minute = [t for t in self._minute if now - t < timedelta(minutes=1)]
        return len(self._minute) < self.total_per_minute

    def asked(self, request: Request, now: datetime) -> None:
        """``request`` was sent at ``now``: its attempt and the budgets are counted."""
        key = (request.publisher, request.writer_id, request.start, request.end)
        self._asked[key] = self._asked.get(key, 0) + 1
        self._last[request.publisher] = now
        self._minute.append(now)


def holes_to_ask(
    verdict: DayCompleteness, now: datetime, planner: ReplayPlanner, publisher: str, writer_id: int
) -> list[tuple[str, int, tuple[datetime, ...]]]:
    """The day's holes worth a replay request, oldest first, for :meth:`ReplayPlanner.due`:
    every missing run up to ``now``, and a not-recorded run until it was asked for once."""
    found = runs(t for t in verdict.missing if t <= now)
    found += [r for r in runs(verdict.not_recorded) if not planner.tried(now, publisher, writer_id, r)]
    return [(publisher, writer_id, r) for r in sorted(found)]
