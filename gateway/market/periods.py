"""Settlement periods of a market day, daylight-saving days included (DESIGN §6).

A market settles imbalance per settlement period (15 or 60 minutes) of its *delivery
day*, a day of the market's local time (CET/CEST for the European markets). Periods are
laid on UTC time, so the delivery day of a change day simply has fewer or more of them:
with 15-minute periods a day has 96, the spring change day 92 and the autumn change day
100; with 60-minute periods 24, 23 and 25. Period number 1 starts at the day's local
midnight.

Periods are aligned to the local day; whole-hour offsets (every European market) make
that the same grid in UTC, and a zone with a half-hour offset still gets periods that
start at its own local midnight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from gateway.errors import MarketInputError

#: Settlement period lengths the market services accept, minutes.
PERIOD_MINUTES = (15, 60)
#: Delivery days the market services accept: far enough for any real schedule, and the
#: day's bounds always fit in a datetime.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(text: object) -> date:
    """A delivery day written ``YYYY-MM-DD``; MarketInputError (field ``day``) otherwise."""
    try:
        if not isinstance(text, str) or not _DAY.match(text):
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        raise MarketInputError(f"day: expected a date YYYY-MM-DD, got {text!r}", field="day") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise MarketInputError(
            f"day: expected a day in {FIRST_DAY.year}..{LAST_DAY.year}, got {text}", field="day"
        )
    return day


@dataclass(frozen=True, slots=True)
class SettlementPeriod:
    """One settlement period: its delivery day, number (1-based) and UTC bounds ``[start, end)``."""

    day: date
    number: int
    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class MarketCalendar:
    """The periods of a market: its local zone and its period length."""

    zone: tzinfo
    period_minutes: int = 15

    def __post_init__(self) -> None:
        if self.period_minutes not in PERIOD_MINUTES:
            raise MarketInputError(
                f"settlement period must be one of {', '.join(map(str, PERIOD_MINUTES))} minutes, "
                f"got {self.period_minutes}"
            )

    @property
    def period(self) -> timedelta:
        return timedelta(minutes=self.period_minutes)

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """The UTC instants of the delivery day's local midnight and the next one."""
        start = datetime(day.year, day.month, day.day, tzinfo=self.zone).astimezone(UTC)
        following = day + timedelta(days=1)
        end = datetime(following.year, following.month, following.day, tzinfo=self.zone).astimezone(UTC)
        return start, end

    def periods_in(self, day: date) -> int:
        """How many periods the delivery day has (92/96/100 or 23/24/25 in Europe)."""
        start, end = self.day_bounds(day)
        return (end - start) // self.period

    def periods(self, day: date) -> list[SettlementPeriod]:
        start, _end = self.day_bounds(day)
        step = self.period
        return [
            SettlementPeriod(day, n + 1, start + n * step, start + (n + 1) * step)
            for n in range(self.periods_in(day))
        ]

    def day_of(self, moment: datetime) -> date:
        """The delivery day ``moment`` (aware) falls in."""
        if moment.tzinfo is None:
            raise ValueError(f"market times must be timezone-aware, got naive {moment!r}")
        return moment.astimezone(self.zone).date()

    def period_at(self, moment: datetime) -> SettlementPeriod:
        """The settlement period that contains ``moment``."""
        day = self.day_of(moment)
        start, _end = self.day_bounds(day)
        index = (moment.astimezone(UTC) - start) // self.period
        step = self.period
        return SettlementPeriod(day, index + 1, start + index * step, start + (index + 1) * step)
