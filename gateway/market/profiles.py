"""Notified profiles: the schedule a balance responsible party notified for a delivery day.

A profile holds one value per settlement period of its day, stored as **energy in kWh
per period, net import** (consumption A+ minus feed-in A-: positive = drawn from the
grid, negative = net export). A profile given as average power (kW) is converted with
the period's length (kWh = kW x hours), so both forms land on the same numbers.

:func:`make_profile` is the one gate every adapter (OPC UA method, REST, web form) goes
through; it raises :class:`~gateway.errors.MarketInputError` with a message that names
the day, the period and what was expected, and never changes anything stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from gateway.errors import MarketInputError
from gateway.market.periods import MarketCalendar

#: Units a profile may be given in.
UNITS = ("kWh", "kW")


@dataclass(frozen=True, slots=True)
class NotifiedProfile:
    """A validated profile: net import energy per settlement period of ``day``, kWh."""

    day: date
    period_minutes: int
    energy_kwh: tuple[float, ...]

    def energy_of(self, number: int) -> float:
        """The notified energy of period ``number`` (1-based)."""
        return self.energy_kwh[number - 1]


def make_profile(
    calendar: MarketCalendar,
    day: date,
    values: Sequence[object],
    unit: str = "kWh",
    *,
    now: datetime,
    existing: NotifiedProfile | None = None,
    replace: bool = False,
    allow_past: bool = False,
    limit_kw: float | None = None,
) -> NotifiedProfile:
    """Validate ``values`` for ``day`` and return the profile in kWh per period.

    Refused (MarketInputError): a unit other than kWh/kW; a length other than the day's
    number of periods (92/96/100 or 23/24/25 on change days); a value that is not a
    finite number (bools are not numbers here); a day already over (unless
    ``allow_past``); a day already notified (unless ``replace``); an average power
    beyond ``limit_kw`` in either direction.
    """
    if unit not in UNITS:
        raise MarketInputError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}", field="unit")
    expected = calendar.periods_in(day)
    if len(values) != expected:
        minutes = calendar.period_minutes
        raise MarketInputError(
            f"{day} has {expected} settlement periods of {minutes} min, got {len(values)} values",
            field="values",
        )
    hours = calendar.period_minutes / 60
    energy: list[float] = []
    for number, value in enumerate(values, start=1):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MarketInputError(
                f"period {number}: expected a number, got {type(value).__name__} {value!r}", field="values"
            )
        number_value = float(value)
        if math.isnan(number_value):
            raise MarketInputError(f"period {number}: NaN is not a value", field="values")
        if math.isinf(number_value):
            raise MarketInputError(
                f"period {number}: {number_value} is not a finite value", out_of_range=True, field="values"
            )
        kwh = number_value if unit == "kWh" else number_value * hours
        if limit_kw is not None and abs(kwh / hours) > limit_kw:
            raise MarketInputError(
                f"period {number}: {kwh / hours:g} kW average is beyond the limit of ±{limit_kw:g} kW",
                out_of_range=True,
                field="values",
            )
        energy.append(kwh)
    _start, end = calendar.day_bounds(day)
    if end <= now and not allow_past:
        raise MarketInputError(
            f"{day} is over; a past day is only accepted on purpose", out_of_range=True, field="day"
        )
    if existing is not None and not replace:
        raise MarketInputError(
            f"{day} is already notified; replacing it needs the replace flag", field="replace"
        )
    return NotifiedProfile(day, calendar.period_minutes, tuple(energy))
