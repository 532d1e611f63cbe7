"""Completeness per local day: 92/96/100 quarter hours, holes found, the meter's own
power-down holes explained, replay requests paced."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from headend.completeness import (
    PERIOD,
    POWER_DOWN,
    ReplayPlanner,
    Request,
    completeness,
    day_bounds,
    expected_periods,
    holes_to_ask,
    runs,
)

VIENNA = ZoneInfo("Europe/Vienna")


@pytest.mark.parametrize(
    ("day", "count"), [(date(2026, 3, 29), 92), (date(2026, 7, 1), 96), (date(2026, 10, 25), 100)]
)
def test_a_local_day_has_92_96_or_100_quarter_hours(day: date, count: int) -> None:
    periods = expected_periods(day, VIENNA)
    assert len(periods) == count
    start, end = day_bounds(day, VIENNA)
    assert periods[0] == start + PERIOD  # stamped at their end
    assert periods[-1] == end
    assert all(b - a == PERIOD for a, b in itertools.pairwise(periods))
    assert start.astimezone(VIENNA).hour == 0


def test_a_complete_day_and_a_hole() -> None:
    day = date(2026, 7, 1)
    ends = expected_periods(day, VIENNA)
    full = completeness(day, VIENNA, dict.fromkeys(ends, 0))
    assert full.complete
    assert full.percent == 100.0
    holey = {t: 0 for n, t in enumerate(ends) if n not in (10, 11, 12)}
    verdict = completeness(day, VIENNA, holey)
    assert verdict.missing == (ends[10], ends[11], ends[12])
    assert verdict.stored == 93
    assert verdict.percent == pytest.approx(100 * 93 / 96)


def test_a_power_down_hole_is_the_meters_and_not_asked_for() -> None:
    day = date(2026, 3, 29)  # a short day, too
    ends = expected_periods(day, VIENNA)
    stored = {t: 0 for n, t in enumerate(ends) if not 40 <= n < 48}
    stored[ends[48]] = POWER_DOWN  # the first period after the outage carries the flag
    verdict = completeness(day, VIENNA, stored)
    assert verdict.missing == ()
    assert verdict.not_recorded == tuple(ends[40:48])
    assert verdict.percent == 100.0
    # Without the flag the same hole is missing.
    stored[ends[48]] = 0x20  # clock adjusted: not a power down
    assert completeness(day, VIENNA, stored).missing == tuple(ends[40:48])


def test_a_hole_at_the_end_of_the_day_is_decided_by_what_comes_next() -> None:
    day = date(2026, 7, 1)
    ends = expected_periods(day, VIENNA)
    stored = {t: 0 for t in ends[:-4]}
    assert completeness(day, VIENNA, stored).missing == tuple(ends[-4:])
    next_day = [(ends[-1] + PERIOD, POWER_DOWN)]
    assert completeness(day, VIENNA, stored, later=next_day).not_recorded == tuple(ends[-4:])


def test_replay_requests_wait_for_the_grace_time_and_are_paced() -> None:
    planner = ReplayPlanner(grace=timedelta(hours=1), per_publisher=timedelta(minutes=10), total_per_minute=3)
    now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    fresh = (now - timedelta(minutes=30),)
    old = (now - timedelta(hours=3), now - timedelta(hours=2, minutes=45))
    assert planner.plan(now, [("smx-1", 104, fresh)]) == []  # still on its way, maybe
    assert planner.plan(now, [("smx-1", 104, old)]) == [Request("smx-1", 104, old[0], old[1])]
    assert planner.plan(now + timedelta(minutes=5), [("smx-1", 104, old)]) == []  # asked 5 min ago
    assert len(planner.plan(now + timedelta(minutes=11), [("smx-1", 104, old)])) == 1
    many = [(f"smx-{n}", 104, old) for n in range(2, 12)]
    later = now + timedelta(minutes=30)
    assert len(planner.plan(later, many)) == 3  # at most 3 a minute in all
    assert len(planner.plan(later + timedelta(seconds=30), many)) == 0
    assert len(planner.plan(later + timedelta(minutes=1), many)) == 3  # the next ones, not the same


def test_holes_split_into_runs_and_a_hole_the_box_lacks_is_given_up() -> None:
    t0 = datetime(2026, 7, 1, 0, 15, tzinfo=UTC)
    missing = [t0, t0 + PERIOD, t0 + 4 * PERIOD, t0 + 5 * PERIOD, t0 + 9 * PERIOD]
    assert runs(missing) == [(t0, t0 + PERIOD), (t0 + 4 * PERIOD, t0 + 5 * PERIOD), (t0 + 9 * PERIOD,)]
    planner = ReplayPlanner(grace=timedelta(0), per_publisher=timedelta(seconds=1), attempts=2)
    holes = [("smx-1", 104, r) for r in runs(missing)]
    now = datetime(2026, 7, 2, tzinfo=UTC)
    asked = []
    for n in range(8):
        asked += planner.plan(now + timedelta(seconds=2 * n), holes)
    # The oldest run twice, then given up; then the next, and so on: none starves another.
    assert [(r.start, r.end) for r in asked] == [
        (t0, t0 + PERIOD), (t0, t0 + PERIOD),
        (t0 + 4 * PERIOD, t0 + 5 * PERIOD), (t0 + 4 * PERIOD, t0 + 5 * PERIOD),
        (t0 + 9 * PERIOD, t0 + 9 * PERIOD), (t0 + 9 * PERIOD, t0 + 9 * PERIOD),
    ]  # fmt: skip
    assert len(planner.given_up) == 3


def test_a_power_down_hole_is_asked_for_once_and_a_lost_one_until_given_up() -> None:
    """The power-down bit says the supply failed during that period, not that the periods
    before it were never recorded: a message lost just before a short outage leaves the
    same hole. So the box is asked once for it (it answers with nothing, or the periods);
    the plainly missing periods as often as the planner allows."""
    zone = ZoneInfo("Europe/Vienna")
    day = date(2026, 7, 1)
    expected = expected_periods(day, zone)
    outage, lost = expected[40:44], expected[70:72]
    stored = {t: (POWER_DOWN if t == expected[44] else 0) for t in expected if t not in outage + lost}
    verdict = completeness(day, zone, stored)
    assert (verdict.not_recorded, verdict.missing) == (tuple(outage), tuple(lost))
    planner = ReplayPlanner(grace=timedelta(0), per_publisher=timedelta(seconds=1), attempts=3)
    now = datetime(2026, 7, 3, tzinfo=UTC)
    asked = []
    for n in range(8):  # a check every 2 s; the box never answers
        at = now + timedelta(seconds=2 * n)
        asked += planner.plan(at, holes_to_ask(verdict, at, planner, "smx-1", 104))
    assert [(r.start, r.end) for r in asked] == [(outage[0], outage[-1])] + [(lost[0], lost[-1])] * 3
    assert holes_to_ask(verdict, now + timedelta(minutes=1), planner, "smx-1", 104) == [
        ("smx-1", 104, tuple(lost))
    ]
