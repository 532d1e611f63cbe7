"""Market services arithmetic: settlement periods on DST days, notified profile validation
and the imbalance advice, against cases computed by hand."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.errors import MarketInputError
from gateway.localtime import meter_zone
from gateway.market.advice import AdviceState, compute_advice
from gateway.market.periods import MarketCalendar
from gateway.market.profiles import NotifiedProfile, make_profile

VIENNA = meter_zone("Europe/Vienna")
assert VIENNA is not None
Q15 = MarketCalendar(VIENNA, 15)
H60 = MarketCalendar(VIENNA, 60)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- periods ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "quarter_hours", "hours"),
    [(date(2026, 3, 29), 92, 23), (date(2026, 6, 1), 96, 24), (date(2026, 10, 25), 100, 25)],
)
def test_a_delivery_day_has_its_local_number_of_periods(day: date, quarter_hours: int, hours: int) -> None:
    assert Q15.periods_in(day) == quarter_hours
    assert H60.periods_in(day) == hours
    periods = Q15.periods(day)
    assert periods[0].start == datetime(day.year, day.month, day.day, tzinfo=VIENNA).astimezone(UTC)
    assert all(b.start == a.end for a, b in itertools.pairwise(periods))


def test_period_at_counts_from_local_midnight_across_the_change() -> None:
    # Spring: local midnight CET = 23:00 UTC the day before; 01:00 UTC is 03:00 CEST.
    p = Q15.period_at(utc(2026, 3, 29, 1, 0))
    assert (p.day, p.number, p.start, p.end) == (
        date(2026, 3, 29),
        9,
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 29, 1, 15),
    )
    # Autumn: local 02:30 happens twice, as periods 11 (CEST) and 15 (CET).
    assert Q15.period_at(utc(2026, 10, 25, 0, 30)).number == 11
    assert Q15.period_at(utc(2026, 10, 25, 1, 30)).number == 15
    assert H60.period_at(utc(2026, 10, 25, 22, 59)).number == 25  # the 25th hour of that day
    assert Q15.period_at(utc(2026, 10, 25, 23, 0)).day == date(2026, 10, 26)


def test_only_15_and_60_minute_periods() -> None:
    with pytest.raises(MarketInputError, match="15, 60"):
        MarketCalendar(VIENNA, 30)


# -- profiles -----------------------------------------------------------------------------


def test_profile_in_kw_is_stored_as_kwh_per_period() -> None:
    profile = make_profile(Q15, date(2026, 6, 2), [4.0] * 96, "kW", now=NOW)
    assert profile.energy_kwh == (1.0,) * 96
    hourly = make_profile(H60, date(2026, 10, 25), [-2.0] * 25, "kW", now=NOW)
    assert hourly.energy_kwh == (-2.0,) * 25  # net export keeps its sign


@pytest.mark.parametrize(
    ("values", "kwargs", "message", "out_of_range"),
    [
        (
            [1.0] * 96,
            {"day": date(2026, 3, 29)},
            "2026-03-29 has 92 settlement periods of 15 min, got 96",
            False,
        ),
        ([1.0] * 95 + [math.nan], {}, "period 96: NaN", False),
        ([1.0] * 95 + [math.inf], {}, "period 96: inf is not a finite value", True),
        ([1.0] * 95 + ["1.0"], {}, "period 96: expected a number, got str '1.0'", False),
        ([True] * 96, {}, "period 1: expected a number, got bool", False),
        ([1.0] * 96, {"unit": "MWh"}, "unit must be one of kWh, kW", False),
        ([1.0] * 96, {"day": date(2026, 5, 30)}, "2026-05-30 is over", True),
        ([1.0] * 96, {"existing": True}, "already notified; replacing it needs the replace flag", False),
        ([1.0] * 95 + [300.0], {"limit_kw": 1000.0}, "1200 kW average is beyond the limit of ±1000 kW", True),
    ],
)
def test_bad_profiles_are_refused_with_a_precise_message(
    values: list[object], kwargs: dict[str, object], message: str, out_of_range: bool
) -> None:
    day = kwargs.pop("day", date(2026, 6, 2))
    assert isinstance(day, date)
    existing = NotifiedProfile(day, 15, (0.0,) * 96) if kwargs.pop("existing", False) else None
    with pytest.raises(MarketInputError, match=message.replace("(", r"\(")) as err:
        make_profile(Q15, day, values, now=NOW, existing=existing, **kwargs)  # type: ignore[arg-type]
    assert err.value.out_of_range is out_of_range


def test_replace_and_past_days_only_on_purpose() -> None:
    old = NotifiedProfile(date(2026, 6, 2), 15, (0.0,) * 96)
    new = make_profile(Q15, date(2026, 6, 2), [0.5] * 96, now=NOW, existing=old, replace=True)
    assert new.energy_kwh == (0.5,) * 96
    past = make_profile(Q15, date(2026, 5, 30), [0.5] * 96, now=NOW, allow_past=True)
    assert past.day == date(2026, 5, 30)


# -- advice -------------------------------------------------------------------------------

DAY = date(2026, 6, 1)  # local day; 10:00 UTC = 12:00 CEST, period 49 of 96


def profile_with(number: int, kwh: float, calendar: MarketCalendar = Q15, day: date = DAY) -> NotifiedProfile:
    values = [0.0] * calendar.periods_in(day)
    values[number - 1] = kwh
    return NotifiedProfile(day, calendar.period_minutes, tuple(values))


def test_mid_period_advice() -> None:
    # 10:00-10:15, notified 1.0 kWh; at 10:05 0.2 kWh measured, drawing 3.0 kW.
    # Required (1.0 - 0.2) / (10/60 h) = 4.8 kW; at 3.0 kW the period ends 0.3 kWh short.
    p = Q15.period_at(utc(2026, 6, 1, 10, 5))
    advice = compute_advice(
        Q15,
        profile_with(p.number, 1.0),
        utc(2026, 6, 1, 10, 5),
        net_energy_at_start_kwh=100.0,
        net_energy_now_kwh=100.2,
        current_kw=3.0,
    )
    assert advice.state is AdviceState.ADVISED
    assert (advice.period.start, advice.period.end) == (utc(2026, 6, 1, 10, 0), utc(2026, 6, 1, 10, 15))
    assert advice.remaining_s == 600
    assert advice.measured_kwh == pytest.approx(0.2)
    assert advice.required_kw == pytest.approx(4.8)
    assert advice.projected_imbalance_kwh == pytest.approx(-0.3)
    assert advice.correction_kw == pytest.approx(1.8)
    assert advice.text == "increase by 1.8 kW to 4.8 kW for the remaining 10 minutes"


def test_just_after_the_start_holding_is_enough() -> None:
    # 1 s in, nothing measured, 4.0 kW: 1.0 kWh / (899/3600 h) = 4.0044 kW: hold.
    at = utc(2026, 6, 1, 10, 0, 1)
    advice = compute_advice(
        Q15,
        profile_with(Q15.period_at(at).number, 1.0),
        at,
        net_energy_at_start_kwh=100.0,
        net_energy_now_kwh=100.0,
        current_kw=4.0,
    )
    assert advice.required_kw == pytest.approx(1.0 / (899 / 3600))
    assert advice.text == "hold the current 4.0 kW for the remaining 15 minutes"


def test_last_seconds() -> None:
    at = utc(2026, 6, 1, 10, 14, 50)  # 10 s left, 0.01 kWh missing: 3.6 kW
    number = Q15.period_at(at).number
    advice = compute_advice(
        Q15,
        profile_with(number, 1.0),
        at,
        net_energy_at_start_kwh=100.0,
        net_energy_now_kwh=100.99,
        current_kw=3.0,
    )
    assert advice.required_kw == pytest.approx(3.6)
    assert advice.text == "increase by 0.6 kW to 3.6 kW for the remaining 10 seconds"
    closing = compute_advice(
        Q15,
        profile_with(number, 1.0),
        at + timedelta(seconds=7),
        net_energy_at_start_kwh=100.0,
        net_energy_now_kwh=100.995,
        current_kw=3.0,
    )
    assert closing.state is AdviceState.CLOSING
    assert closing.required_kw is None
    assert closing.projected_imbalance_kwh == pytest.approx(0.995 + 3.0 * 3 / 3600 - 1.0)
    assert closing.text.startswith("period closing; expected imbalance -0.002 kWh")


def test_export_dominated_hour() -> None:
    # 60-min period notified -2.0 kWh (net export); half-way -0.8 kWh measured at -1.5 kW:
    # required (-2.0 + 0.8) / 0.5 h = -2.4 kW, i.e. feed in 0.9 kW more.
    at = utc(2026, 6, 1, 10, 30)
    advice = compute_advice(
        H60,
        profile_with(H60.period_at(at).number, -2.0, H60),
        at,
        net_energy_at_start_kwh=50.0,
        net_energy_now_kwh=49.2,
        current_kw=-1.5,
    )
    assert advice.required_kw == pytest.approx(-2.4)
    assert advice.projected_imbalance_kwh == pytest.approx(0.45)
    assert advice.text == "increase feed-in by 0.9 kW to 2.4 kW for the remaining 30 minutes"


def test_dst_day_periods_are_advised_by_their_own_number() -> None:
    # Autumn: the second 02:30 local (01:30 UTC) is period 15 of 100.
    at = utc(2026, 10, 25, 1, 37, 30)
    profile = profile_with(15, 0.75, Q15, date(2026, 10, 25))
    advice = compute_advice(
        Q15, profile, at, net_energy_at_start_kwh=10.0, net_energy_now_kwh=10.25, current_kw=2.0
    )
    assert advice.period.number == 15
    assert advice.notified_kwh == 0.75
    assert advice.required_kw == pytest.approx((0.75 - 0.25) / (450 / 3600))


def test_no_notification_and_no_measurement_are_states_not_zeros() -> None:
    at = utc(2026, 6, 1, 10, 5)
    none = compute_advice(Q15, None, at, net_energy_at_start_kwh=1.0, net_energy_now_kwh=1.1, current_kw=1.0)
    assert none.state is AdviceState.NO_NOTIFICATION
    assert (none.required_kw, none.notified_kwh, none.text) == (None, None, "no notification for this period")
    other_day = profile_with(49, 1.0, Q15, date(2026, 6, 2))
    assert (
        compute_advice(
            Q15, other_day, at, net_energy_at_start_kwh=1.0, net_energy_now_kwh=1.1, current_kw=1.0
        ).state
        is AdviceState.NO_NOTIFICATION
    )
    blind = compute_advice(
        Q15,
        profile_with(Q15.period_at(at).number, 1.0),
        at,
        net_energy_at_start_kwh=None,
        net_energy_now_kwh=1.1,
        current_kw=1.0,
    )
    assert blind.state is AdviceState.NO_MEASUREMENT
    assert blind.notified_kwh == 1.0


@pytest.mark.parametrize("calendar", [Q15, H60])
def test_following_the_advice_lands_the_period_within_one_percent(calendar: MarketCalendar) -> None:
    """A simulated hour: a base load that wanders, plus a controllable load that moves
    towards the advised power with a 30-second lag, one step a second."""
    rng = random.Random(4)
    start = utc(2026, 6, 1, 10, 0)
    steps = 3600
    periods: dict[int, float] = {}
    for period in [calendar.period_at(start + timedelta(seconds=s)) for s in range(0, steps, 60)]:
        periods[period.number] = 1.5 * period.length.total_seconds() / 3600  # 1.5 kW average
    values = [periods.get(n, 0.0) for n in range(1, calendar.periods_in(DAY) + 1)]
    profile = NotifiedProfile(DAY, calendar.period_minutes, tuple(values))
    energy = 0.0
    base = 1.0
    control = 0.0
    at_start: dict[int, float] = {}
    landed: dict[int, float] = {}
    for s in range(steps):
        at = start + timedelta(seconds=s)
        period = calendar.period_at(at)
        at_start.setdefault(period.number, energy)
        base = min(3.0, max(0.0, base + rng.gauss(0.0, 0.05)))
        advice = compute_advice(
            calendar,
            profile,
            at,
            net_energy_at_start_kwh=at_start[period.number],
            net_energy_now_kwh=energy,
            current_kw=base + control,
        )
        if advice.correction_kw is not None:
            control += advice.correction_kw / 30  # the plant follows with a 30-s lag
        energy += (base + control) / 3600
        landed[period.number] = energy - at_start[period.number]
    for number, measured in landed.items():
        assert measured == pytest.approx(periods[number], rel=0.01), f"period {number}"
