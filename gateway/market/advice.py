"""Real-time imbalance advice for the running settlement period (DESIGN §6).

The balance responsible party pays for every kWh the period's measured net energy
misses the notified energy by. At any instant ``t`` of a period ``[start, end)``:

* measured so far ``E_m`` = net import register (A+ minus A-) at ``t`` minus its value
  at the period's start, kWh;
* remaining time ``T_r = end - t``, hours;
* the average power that lands the period on target: ``P_req = (E_n - E_m) / T_r``;
* the projected imbalance if the current net power ``P`` is held:
  ``E_m + P * T_r - E_n`` (positive = more drawn than notified);
* the correction ``P_req - P``: negative means draw less (or feed in more).

All powers and energies are net import: positive = from the grid, negative = export, as
in :mod:`gateway.market.profiles`. In the last :data:`CLOSING_S` seconds of a period no
power can still move the energy noticeably, so the advice says so instead of asking for
an absurd power. Pure computation: the caller brings the register values and the clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from gateway.market.periods import MarketCalendar, SettlementPeriod
from gateway.market.profiles import NotifiedProfile

#: Below this many seconds left, no correction is advised (the period is closing).
CLOSING_S = 5.0
#: A correction smaller than this (kW, or this share of the required power) is "hold".
HOLD_KW = 0.05
HOLD_SHARE = 0.01


class AdviceState(enum.Enum):
    #: Advice computed: ``required_kw`` and ``correction_kw`` are set.
    ADVISED = "advised"
    #: No profile notified for the period's day: nothing to steer to.
    NO_NOTIFICATION = "no-notification"
    #: The period closes in less than CLOSING_S seconds.
    CLOSING = "closing"
    #: The energy registers are not known for the period (start or now): no measurement.
    NO_MEASUREMENT = "no-measurement"


@dataclass(frozen=True, slots=True)
class Advice:
    """The advice for one instant of a settlement period."""

    state: AdviceState
    period: SettlementPeriod
    at: datetime
    notified_kwh: float | None
    measured_kwh: float | None
    remaining_s: float
    current_kw: float | None
    #: Average net power to hold for the rest of the period to land on the notified energy.
    required_kw: float | None
    #: Projected imbalance at the current power: measured - notified at the period's end.
    projected_imbalance_kwh: float | None
    #: required - current: positive = draw more / feed in less.
    correction_kw: float | None
    text: str


def _minutes(seconds: float) -> str:
    if seconds >= 90:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds)} seconds"


def _words(required: float, current: float, remaining_s: float) -> str:
    correction = required - current
    left = f"for the remaining {_minutes(remaining_s)}"
    if abs(correction) < max(HOLD_KW, HOLD_SHARE * abs(required)):
        return f"hold the current {current:.1f} kW {left}"
    if required < 0 <= current:
        return f"switch from drawing {current:.1f} kW to feeding in {-required:.1f} kW {left}"
    if current < 0 <= required:
        return f"switch from feeding in {-current:.1f} kW to drawing {required:.1f} kW {left}"
    if required < 0:  # both feed-in
        verb = "increase" if correction < 0 else "reduce"
        return f"{verb} feed-in by {abs(correction):.1f} kW to {-required:.1f} kW {left}"
    verb = "reduce" if correction < 0 else "increase"
    return f"{verb} by {abs(correction):.1f} kW to {required:.1f} kW {left}"


def compute_advice(
    calendar: MarketCalendar,
    profile: NotifiedProfile | None,
    at: datetime,
    *,
    net_energy_at_start_kwh: float | None,
    net_energy_now_kwh: float | None,
    current_kw: float | None,
) -> Advice:
    """The advice at ``at`` from the net import register at the period start and now.

    ``profile`` is the notified profile of the day ``at`` falls in (None: none notified).
    """
    period = calendar.period_at(at)
    remaining_s = (period.end - at).total_seconds()
    measured = (
        None
        if net_energy_at_start_kwh is None or net_energy_now_kwh is None
        else net_energy_now_kwh - net_energy_at_start_kwh
    )
    # What every state shares; each state below fills in what it knows.
    advice = Advice(AdviceState.NO_NOTIFICATION, period, at, None, measured, remaining_s, current_kw,
                    None, None, None, "no notification for this period")  # fmt: skip
    if profile is None or profile.day != period.day or profile.period_minutes != calendar.period_minutes:
        return advice
    notified = profile.energy_of(period.number)
    if measured is None or current_kw is None:
        return replace(advice, state=AdviceState.NO_MEASUREMENT, notified_kwh=notified,
                       text="no measurement for this period yet")  # fmt: skip
    remaining_h = remaining_s / 3600
    projected = measured + current_kw * remaining_h - notified
    if remaining_s < CLOSING_S:
        text = f"period closing; expected imbalance {projected:+.3f} kWh"
        return replace(advice, state=AdviceState.CLOSING, notified_kwh=notified,
                       projected_imbalance_kwh=projected, text=text)  # fmt: skip
    required = (notified - measured) / remaining_h
    return replace(
        advice,
        state=AdviceState.ADVISED,
        notified_kwh=notified,
        required_kw=required,
        projected_imbalance_kwh=projected,
        correction_kw=required - current_kw,
        text=_words(required, current_kw, remaining_s),
    )
