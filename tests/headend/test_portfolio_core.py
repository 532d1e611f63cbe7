"""The portfolio aggregate and its advice against hand computation (issue 18, point 1).

Three sites with known constant powers — A draws 2.0 kW, B 1.5 kW, C feeds in 0.5 kW — whose
energy registers move exactly with them (read once a minute, as the uplink's ``registers``
writer sends them), live values every second. The portfolio's notified schedule is 1.0 kWh
in every quarter hour. By hand, at ``s`` seconds into a period:

* net power 2.0 + 1.5 - 0.5 = 3.0 kW; energy so far 3.0 kW x s/3600 h;
* required power (1.0 - E) / (remaining h); projected imbalance E + 3.0 x remaining - 1.0.

Then C falls silent: after ``stale_after`` it is stale and, by the stated rule, estimated at
its recent mean (-0.5 kW) with an uncertainty of its mean magnitude (0.5 kW); the coverage is
the fresh members' share of recent consumption, (2.0 + 1.5) / (2.0 + 1.5 + 0.5).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.market.advice import AdviceState
from gateway.market.profiles import NotifiedProfile, make_profile
from headend.portfolio.aggregate import (
    BUCKETS,
    Aggregate,
    MemberView,
    Partial,
    Rules,
    advise,
    bucket_of,
    combine,
    member_view,
    partial,
    ranking,
)
from headend.portfolio.member import Member
from headend.portfolio.model import Portfolio, parse_portfolio
from headend.portfolio.partials import Partials, PartialsError, decode, encode

POWERS = {"site-a": 2.0, "site-b": 1.5, "site-c": -0.5}
RULES = Rules(stale_after=timedelta(seconds=30), offline_after=timedelta(minutes=5))
PORTFOLIO = parse_portfolio({"name": "brp-north", "sites": sorted(POWERS)})
START_KWH = 1000.0


class Sites:
    """The three sites, fed second by second from ``begin``; registers every whole minute."""

    def __init__(self, begin: datetime, powers: dict[str, float] = POWERS) -> None:
        self.powers = dict(powers)
        self.members = {p: Member(p) for p in powers}
        self.energy = dict.fromkeys(powers, START_KWH)
        self.now = begin
        self.silent: set[str] = set()
        for p, m in self.members.items():
            m.register(begin, self.energy[p])

    def run(self, seconds: int) -> None:
        for _ in range(seconds):
            self.now += timedelta(seconds=1)
            for p, m in self.members.items():
                self.energy[p] += self.powers[p] / 3600
                if p in self.silent:
                    continue
                kw = self.powers[p]
                m.live(self.now, {"ActivePowerImport": max(kw, 0.0), "ActivePowerExport": max(-kw, 0.0)})
                if self.now.second == 0:
                    m.register(self.now, self.energy[p])
                # Every period start asked as the service's tick does, each second.
                m.energy_at_start(PORTFOLIO.calendar.period_at(self.now).start)

    def aggregate(self, portfolio: Portfolio = PORTFOLIO) -> tuple[Aggregate, dict[int, Partial]]:
        period = portfolio.calendar.period_at(self.now)
        by_bucket: dict[int, list[Member]] = {}
        for p, m in self.members.items():
            by_bucket.setdefault(bucket_of(p), []).append(m)
        partials = {b: partial(portfolio.name, b, ms, self.now, period, RULES) for b, ms in by_bucket.items()}
        counts = {b: len(ms) for b, ms in by_bucket.items()}
        return combine(portfolio.name, self.now, period, counts, partials, RULES), partials


def schedule_for(day: date, portfolio: Portfolio = PORTFOLIO, kwh: float = 1.0) -> NotifiedProfile:
    calendar = portfolio.calendar
    return make_profile(
        calendar, day, [kwh] * calendar.periods_in(day), "kWh", now=datetime(2000, 1, 1, tzinfo=UTC)
    )


def test_mid_period_equals_the_hand_computation() -> None:
    # 10:00 UTC on an ordinary day; the sites started at 09:58 (two register reads before).
    sites = Sites(datetime(2026, 6, 2, 9, 58, tzinfo=UTC))
    sites.run(120 + 450)  # 7 min 30 s into the 10:00-10:15 period
    aggregate, _ = sites.aggregate()
    assert (aggregate.members, aggregate.fresh, aggregate.stale, aggregate.offline) == (3, 3, 0, 0)
    assert aggregate.net_kw == pytest.approx(3.0)
    assert aggregate.estimated_kw == 0.0
    assert aggregate.coverage == pytest.approx(1.0)
    assert aggregate.unmeasured == 0
    assert aggregate.energy_kwh == pytest.approx(3.0 * 450 / 3600, abs=1e-9)
    advice = advise(PORTFOLIO, schedule_for(date(2026, 6, 2)), aggregate, sites.now, RULES)
    remaining_h = 450 / 3600
    assert advice.advice.state is AdviceState.ADVISED
    assert advice.advice.required_kw == pytest.approx((1.0 - 0.375) / remaining_h)  # 5.0 kW
    assert advice.advice.projected_imbalance_kwh == pytest.approx(0.375 + 3.0 * remaining_h - 1.0)  # -0.25
    assert advice.advice.correction_kw == pytest.approx(2.0)
    assert advice.uncertainty_kwh == 0.0
    assert advice.text.startswith("increase by 2.0 kW to 5.0 kW")


def test_at_the_start_and_in_the_last_seconds() -> None:
    sites = Sites(datetime(2026, 6, 2, 9, 58, tzinfo=UTC))
    sites.run(121)  # 10:00:01
    aggregate, _ = sites.aggregate()
    # The start value is provisional (the first register read after 10:00 comes at 10:01),
    # integrated from 09:59's read: exact for a constant power.
    assert aggregate.energy_kwh == pytest.approx(3.0 / 3600, abs=1e-9)
    advice = advise(PORTFOLIO, schedule_for(date(2026, 6, 2)), aggregate, sites.now, RULES)
    remaining_h = (15 * 60 - 1) / 3600
    assert advice.advice.required_kw == pytest.approx((1.0 - 3.0 / 3600) / remaining_h)
    sites.run(60)  # 10:01:01: the read at 10:01 makes the start value final (interpolated)
    member = sites.members["site-a"]
    value, final = member.energy_at_start(datetime(2026, 6, 2, 10, 0, tzinfo=UTC))
    assert final
    assert value == pytest.approx(START_KWH + 2.0 * 120 / 3600)
    sites.run(15 * 60 - 61 - 3)  # 10:14:57: three seconds left
    aggregate, _ = sites.aggregate()
    advice = advise(PORTFOLIO, schedule_for(date(2026, 6, 2)), aggregate, sites.now, RULES)
    assert advice.advice.state is AdviceState.CLOSING
    assert advice.advice.remaining_s == 3
    assert aggregate.energy_kwh == pytest.approx(3.0 * 897 / 3600, abs=1e-9)
    assert advice.advice.projected_imbalance_kwh == pytest.approx(3.0 * 900 / 3600 - 1.0)  # -0.25 kWh
    assert advice.advice.required_kw is None


@pytest.mark.parametrize(
    ("day", "periods", "utc_start", "number"),
    [
        # Spring: 02:00 local does not exist; 03:00 CEST (01:00 UTC) starts period 9 of 92.
        (date(2026, 3, 29), 92, datetime(2026, 3, 29, 1, 0, tzinfo=UTC), 9),
        # Autumn: 02:00-03:00 twice; the second 02:00 (01:00 UTC) starts period 13 of 100.
        (date(2026, 10, 25), 100, datetime(2026, 10, 25, 1, 0, tzinfo=UTC), 13),
    ],
)
def test_across_a_daylight_saving_change(day: date, periods: int, utc_start: datetime, number: int) -> None:
    calendar = PORTFOLIO.calendar
    assert calendar.periods_in(day) == periods
    # A schedule that rises by period number: the advice must take the right period's value.
    values = [0.25 * n for n in range(1, periods + 1)]
    schedule = make_profile(calendar, day, values, "kWh", now=datetime(2000, 1, 1, tzinfo=UTC))
    sites = Sites(utc_start - timedelta(minutes=2))
    sites.run(120 + 300)  # 5 minutes into the period across the change
    aggregate, _ = sites.aggregate()
    period = calendar.period_at(sites.now)
    assert (period.day, period.number, period.start) == (day, number, utc_start)
    advice = advise(PORTFOLIO, schedule, aggregate, sites.now, RULES)
    notified = 0.25 * number
    assert advice.advice.notified_kwh == pytest.approx(notified)
    assert aggregate.energy_kwh == pytest.approx(3.0 * 300 / 3600, abs=1e-9)
    assert advice.advice.required_kw == pytest.approx((notified - 0.25) / (600 / 3600))
    # Registering 96 values for the change day is refused, as the gateway refuses it.
    with pytest.raises(Exception, match=f"{day} has {periods} settlement periods of 15 min, got 96"):
        make_profile(calendar, day, [1.0] * 96, "kWh", now=datetime(2000, 1, 1, tzinfo=UTC))


def test_a_member_going_stale_is_estimated_from_its_recent_profile() -> None:
    sites = Sites(datetime(2026, 6, 2, 9, 58, tzinfo=UTC))
    sites.run(120 + 200)  # 10:03:20
    sites.silent.add("site-c")
    sites.run(30)  # C's last value is 30 s old: still fresh (stale_after 30 s)
    aggregate, _ = sites.aggregate()
    assert aggregate.fresh == 3
    sites.run(1)  # 31 s: stale
    aggregate, _ = sites.aggregate()
    assert (aggregate.fresh, aggregate.stale, aggregate.offline) == (2, 1, 0)
    assert aggregate.measured_kw == pytest.approx(3.5)  # A and B only: C is neither 0 nor its last value
    assert aggregate.estimated_kw == pytest.approx(-0.5)  # C's mean of its recent minutes
    assert aggregate.uncertainty_kw == pytest.approx(0.5)
    assert aggregate.net_kw == pytest.approx(3.0)
    assert aggregate.coverage == pytest.approx(3.5 / 4.0)
    # Energy: C measured up to its last value, estimated since; the estimate's uncertainty is
    # its magnitude over the 31 unmeasured seconds.
    assert aggregate.energy_kwh == pytest.approx(3.0 * 231 / 3600, abs=1e-9)
    assert aggregate.energy_uncertainty_kwh == pytest.approx(0.5 * 31 / 3600)
    assert "2 of 3 members measured" in aggregate.how
    assert "1 stale" in aggregate.how
    advice = advise(PORTFOLIO, schedule_for(date(2026, 6, 2)), aggregate, sites.now, RULES)
    remaining_h = (900 - 231) / 3600
    assert advice.uncertainty_kwh == pytest.approx(0.5 * 31 / 3600 + 0.5 * remaining_h)
    assert "members estimated" in advice.text
    sites.run(5 * 60)  # silent for more than offline_after: offline, still estimated
    aggregate, _ = sites.aggregate()
    assert (aggregate.fresh, aggregate.stale, aggregate.offline) == (2, 0, 1)
    assert aggregate.estimated_kw == pytest.approx(-0.5)


def test_a_box_that_said_offline_is_offline_at_once() -> None:
    sites = Sites(datetime(2026, 6, 2, 9, 58, tzinfo=UTC))
    sites.run(200)
    sites.members["site-b"].online = False  # its Will arrived
    aggregate, _ = sites.aggregate()
    assert (aggregate.fresh, aggregate.offline) == (2, 1)
    assert aggregate.measured_kw == pytest.approx(1.5)
    assert aggregate.estimated_kw == pytest.approx(1.5)


def test_too_little_coverage_gives_no_measurement() -> None:
    sites = Sites(datetime(2026, 6, 2, 9, 58, tzinfo=UTC))
    sites.run(200)
    sites.silent |= {"site-a", "site-b"}
    sites.run(40)
    aggregate, _ = sites.aggregate()
    assert aggregate.coverage == pytest.approx(0.5 / 4.0)
    advice = advise(PORTFOLIO, schedule_for(date(2026, 6, 2)), aggregate, sites.now, RULES)
    assert advice.advice.state is AdviceState.NO_MEASUREMENT
    assert advice.text == "no measurement to steer by: 12% of the portfolio measured (at least 50% needed)"


def test_started_mid_period_the_advice_waits_for_the_next_period() -> None:
    # The head-end starts at 10:05: no register read before 10:00, as the gateway after a start.
    sites = Sites(datetime(2026, 6, 2, 10, 5, tzinfo=UTC))
    sites.run(60)
    aggregate, _ = sites.aggregate()
    assert aggregate.unmeasured == 3
    advice = advise(PORTFOLIO, schedule_for(date(2026, 6, 2)), aggregate, sites.now, RULES)
    assert advice.advice.state is AdviceState.NO_MEASUREMENT
    sites.run(10 * 60 + 30)  # 10:16:30: the 10:15 period is measured from its start
    aggregate, _ = sites.aggregate()
    assert aggregate.unmeasured == 0
    assert aggregate.energy_kwh == pytest.approx(3.0 * 90 / 3600, abs=1e-9)


def test_a_dead_owners_bucket_is_estimated_never_counted_twice() -> None:
    sites = Sites(datetime(2026, 6, 2, 9, 58, tzinfo=UTC))
    sites.run(300)
    aggregate, partials = sites.aggregate()
    period = PORTFOLIO.calendar.period_at(sites.now)
    counts = {b: p.members for b, p in partials.items()}
    # A bucket's partial from a second instance (the same instant): one kept, never both.
    latest = dict(partials)
    twin = next(iter(partials.values()))
    assert (
        combine(PORTFOLIO.name, sites.now, period, counts, latest | {twin.bucket: twin}, RULES) == aggregate
    )
    # The owners died 10 s ago: their partials are stale, their members estimated from the
    # partials' recent profiles (3.0 kW, uncertain by 4.0 kW), nothing measured.
    later = sites.now + timedelta(seconds=10)
    view = combine(PORTFOLIO.name, later, period, counts, latest, RULES)
    assert (view.fresh, view.stale, view.buckets_reporting) == (0, 3, 0)
    assert view.measured_kw == 0
    assert view.estimated_kw == pytest.approx(3.0)
    assert view.uncertainty_kw == pytest.approx(4.0)
    assert view.coverage == 0
    # Carried on at the estimate: 3.0 kW over the 10 s as well, uncertain by 4.0 kW over them.
    assert view.energy_kwh == pytest.approx(3.0 * 190 / 3600, abs=1e-9)
    assert view.energy_uncertainty_kwh == pytest.approx(4.0 * 10 / 3600)
    # A bucket nobody ever reported: its members are unknown, offline, unmeasured.
    unseen = combine(PORTFOLIO.name, sites.now, period, counts | {BUCKETS - 1: 2}, latest, RULES)
    assert (unseen.members, unseen.offline, unseen.unmeasured) == (5, 2, 2)
    assert unseen.coverage == pytest.approx(4.0 / (4.0 * 5 / 3))  # they weigh the mean of the others


def test_flexibility_ranks_who_moved_against_the_advice() -> None:
    sites = Sites(datetime(2026, 6, 2, 9, 58, tzinfo=UTC))
    sites.run(300)
    sites.powers["site-a"] = 4.0  # A rose by 2 kW
    sites.powers["site-b"] = 1.0  # B fell by 0.5 kW
    sites.run(60)
    views = [member_view(m, bucket_of(p), sites.now, RULES) for p, m in sites.members.items()]
    ranked = ranking(views, correction_kw=-1.0)  # the portfolio should draw less
    assert [f.member.publisher for f in ranked] == ["site-a"]
    assert ranked[0].reason.startswith("its power rose by 2.00 kW to 4.00 kW")
    assert [f.member.publisher for f in ranking(views, correction_kw=+1.0)] == ["site-b"]
    assert ranking(views, correction_kw=None) == []


def test_partials_round_trip_and_refuse_what_is_not_one() -> None:
    sites = Sites(datetime(2026, 6, 2, 9, 58, tzinfo=UTC))
    sites.run(100)
    _aggregate, partials = sites.aggregate()
    views = tuple(
        ("brp-north", member_view(m, bucket_of(p), sites.now, RULES)) for p, m in sites.members.items()
    )
    message = Partials("headend-1", sites.now, tuple(partials.values()), views)
    data = encode(message)
    assert decode(data) == message
    for bad, where in [
        (b"not json", "not JSON"),
        (b"[]", "a JSON object"),
        (data.replace(b'"Version":1', b'"Version":2'), "MessageType/Version"),
        (data.replace(b'"Bucket"', b'"Bucket2"', 1), "Partials: expected the columns"),
        (data.replace(b'"headend-1"', b"7"), "Instance"),
    ]:
        with pytest.raises(PartialsError, match=where):
            decode(bad)
    body = json.loads(data)
    body["Partials"]["Rows"][0][4] = -3  # Members
    with pytest.raises(PartialsError, match=r"Partials.Rows\[0\].Members: expected a count"):
        decode(json.dumps(body).encode())
    body["Partials"]["Rows"][0][4] = 3
    body["Partials"]["Rows"][0][1] = BUCKETS
    with pytest.raises(PartialsError, match=r"Partials.Rows\[0\].Bucket: expected a bucket 0..63"):
        decode(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "-x", "sites": ["a"]}, "name: expected"),
        ({"name": "x", "sites": []}, "a portfolio needs members"),
        ({"name": "x", "sites": ["a", "a"]}, "'a' is listed twice"),
        ({"name": "x", "sites": ["a"], "period_minutes": 30}, "period_minutes: expected one of 15, 60"),
        ({"name": "x", "sites": ["a"], "timezone": "Mars/Olympus"}, "timezone: expected an IANA"),
        ({"name": "x", "tags": ["ok", "not ok"]}, r"tags\[1\]"),
        ({"name": "x", "sites": ["a"], "limit_kw": -1}, "limit_kw"),
        ({"name": "x", "sites": ["a"], "colour": "red"}, "colour: not a field"),
        ("x", "a JSON object"),
    ],
)
def test_definitions_are_checked_with_precise_errors(body: object, message: str) -> None:
    with pytest.raises(Exception, match=message):
        parse_portfolio(body)


def test_members_by_site_and_by_tag() -> None:
    p = parse_portfolio({"name": "vpp", "sites": ["smx-9"], "tags": ["vpp", "heat"]})
    tags = {"smx-1": ("vpp",), "smx-2": ("brp",), "smx-3": ("heat", "brp"), "smx-9": ("vpp",)}
    assert p.members(tags) == ("smx-1", "smx-3", "smx-9")


_finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
_counts = st.integers(min_value=0, max_value=100_000)
_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_partials = st.builds(
    Partial, _names, st.integers(0, BUCKETS - 1), _times, _times, _counts, _counts, _counts, _counts,
    _counts, _counts, _finite, _finite, _finite, _finite, _finite, _finite, _finite, _finite,
    st.none() | _times,
)  # fmt: skip
_views = st.builds(
    MemberView, _names, st.integers(0, BUCKETS - 1), st.sampled_from(["fresh", "stale", "offline"]),
    st.none() | _finite, st.none() | _finite, st.none() | _finite, st.none() | _finite,
)  # fmt: skip


@given(
    st.builds(
        Partials,
        st.text(max_size=40),
        _times,
        st.lists(_partials, max_size=5).map(tuple),
        st.lists(st.tuples(_names, _views), max_size=5).map(tuple),
    )
)
def test_partials_round_trip_whatever_they_hold(message: Partials) -> None:
    assert decode(encode(message)) == message
