"""A portfolio's live aggregate, its advice and its flexibility ranking (pure; issue 18).

Scale-out (DESIGN §12): the sites are hashed into :data:`BUCKETS` buckets
(:func:`bucket_of`); each bucket is owned by one head-end instance at a time (a lease in
the database), which takes the bucket's members' live and register messages and computes,
every second, the bucket's :class:`Partial` per portfolio. The instances exchange the
partials over the broker and each one :func:`combine` s the latest partial of every bucket
into the portfolio's :class:`Aggregate`. A bucket counts once whichever instance sent its
latest partial, so nothing is counted twice while buckets move between instances.

The rule for members without a fresh value (stated once, here):

* **fresh** — its net power is at most ``stale_after`` old: its latest value is summed
  into ``measured_kw``;
* **stale** — older, or its bucket's owner stopped reporting: it is **not** summed as zero
  nor as its last value, but *estimated* from its recent profile (its mean net power of the
  last 15 minutes, :data:`~headend.portfolio.member.RECENT`) into ``estimated_kw``; the mean
  magnitude of that profile is its share of ``uncertainty_kw`` (the estimate may be off by
  a whole typical consumption of the site);
* **offline** — its box said so (the Will, a clean stop) or nothing came for
  ``offline_after``: estimated the same way, counted apart.

``net_kw = measured_kw + estimated_kw``. The **coverage** is the fresh members' share of the
portfolio's recent consumption (mean magnitudes); members with no recent profile weigh the
mean of the others. The energy of the running period is the members' register energy
since the period's start (measured) plus the estimate for the time a member was not
measured, with its uncertainty; the advice follows from those totals as the gateway's does
(``gateway/market/advice.py``), and says by how much its projected imbalance is uncertain.
Below ``min_coverage`` the advice is ``no-measurement``: too little is measured to steer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gateway.market.advice import Advice, AdviceState, compute_advice
from gateway.market.periods import SettlementPeriod
from gateway.market.profiles import NotifiedProfile
from headend.portfolio.member import Member
from headend.portfolio.model import Portfolio

#: Buckets the sites are hashed into: the unit the instances share (at most this many instances
#: take part in the aggregation).
BUCKETS = 64
_HOUR = 3600.0


def bucket_of(publisher: str) -> int:
    """The bucket of a site: a stable hash of its PublisherId (every instance agrees)."""
    return int.from_bytes(hashlib.blake2b(publisher.encode(), digest_size=4).digest(), "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class Rules:
    """How members are classed and when the aggregate may steer (``[portfolios]``)."""

    #: A member's net power older than this is stale.
    stale_after: timedelta = timedelta(seconds=30)
    #: Nothing for this long (or its Will): offline.
    offline_after: timedelta = timedelta(minutes=5)
    #: A bucket's partial older than this: its owner is gone, its members are estimated.
    bucket_stale: timedelta = timedelta(seconds=1.5)
    #: Below this coverage the advice says no-measurement.
    min_coverage: float = 0.5
    #: The flexibility ranking compares the power now with the mean of this many minutes ago.
    change_minutes: int = 5


@dataclass(frozen=True, slots=True)
class Partial:
    """One bucket's share of one portfolio at one instant (sums over its members)."""

    portfolio: str
    bucket: int
    time: datetime
    period_start: datetime
    members: int
    fresh: int
    stale: int
    offline: int
    #: Members with no recent profile (never seen in the last 15 minutes).
    unknown: int
    #: Members whose energy since the period's start is (partly) estimated.
    unmeasured: int
    measured_kw: float
    estimated_kw: float
    uncertainty_kw: float
    #: Sums of the members' recent profiles: mean net power and mean magnitude, kW.
    recent_kw: float
    recent_abs_kw: float
    #: The fresh members' recent magnitude (the coverage's numerator).
    fresh_abs_kw: float
    energy_kwh: float
    energy_uncertainty_kwh: float
    #: The newest member value summed (for the aggregation latency).
    newest: datetime | None


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A portfolio's live aggregate at ``time``."""

    portfolio: str
    time: datetime
    period_start: datetime
    members: int
    fresh: int
    stale: int
    offline: int
    measured_kw: float
    estimated_kw: float
    uncertainty_kw: float
    coverage: float
    energy_kwh: float
    energy_uncertainty_kwh: float
    unmeasured: int
    #: Buckets holding members, and how many of them reported in time.
    buckets: int
    buckets_reporting: int
    newest: datetime | None

    @property
    def net_kw(self) -> float:
        """Measured plus estimated net power (positive: drawn from the grid)."""
        return self.measured_kw + self.estimated_kw

    @property
    def how(self) -> str:
        """How the aggregate was formed, in words."""
        if self.fresh == self.members:
            return f"all {self.members} members measured"
        return (
            f"{self.fresh} of {self.members} members measured ({self.coverage:.0%} of recent consumption); "
            f"{self.stale} stale and {self.offline} offline estimated from their last 15 minutes "
            f"({self.estimated_kw:+.1f} ± {self.uncertainty_kw:.1f} kW)"
        )


def partial(
    portfolio: str,
    bucket: int,
    members: Iterable[Member],
    now: datetime,
    period: SettlementPeriod,
    rules: Rules,
) -> Partial:
    """The bucket's partial of ``portfolio`` at ``now`` from its ``members``."""
    count = fresh = stale = offline = unknown = unmeasured = 0
    measured = estimated = uncertainty = recent_kw = recent_abs = fresh_abs = 0.0
    energy = energy_unc = 0.0
    newest: datetime | None = None
    elapsed_h = max(0.0, (now - period.start).total_seconds()) / _HOUR
    for m in members:
        count += 1
        recent = m.recent(now)
        if recent is None:
            unknown += 1
        else:
            recent_kw += recent[0]
            recent_abs += recent[1]
        start, _final = m.energy_at_start(period.start)
        if m.online and m.power is not None and m.fresh(now, rules.stale_after):
            fresh += 1
            measured += m.power
            if recent is not None:
                fresh_abs += recent[1]
            if m.power_time is not None and (newest is None or m.power_time > newest):
                newest = m.power_time
            current = m.energy_at(now)
            if start is not None and current is not None:
                energy += current - start
                continue
            gap_h = elapsed_h
        else:
            known = m.known_until
            if not m.online or known is None or now - known > rules.offline_after:
                offline += 1
            else:
                stale += 1
            if recent is not None:
                estimated += recent[0]
                uncertainty += recent[1]
            upto = m.energy_at(known) if known is not None and known > period.start else None
            if start is not None and upto is not None and known is not None:
                energy += upto - start
                gap_h = max(0.0, (now - known).total_seconds()) / _HOUR
            else:
                gap_h = elapsed_h
        unmeasured += 1
        if recent is not None:
            energy += recent[0] * gap_h
            energy_unc += recent[1] * gap_h
    return Partial(
        portfolio, bucket, now, period.start, count, fresh, stale, offline, unknown, unmeasured,
        measured, estimated, uncertainty, recent_kw, recent_abs, fresh_abs, energy, energy_unc, newest,
    )  # fmt: skip


def combine(
    portfolio: str,
    now: datetime,
    period: SettlementPeriod,
    members_per_bucket: Mapping[int, int],
    partials: Mapping[int, Partial],
    rules: Rules,
) -> Aggregate:
    """The portfolio's aggregate from the latest partial of each bucket that has members.

    A bucket whose partial is older than ``bucket_stale`` (its owner is gone), of another
    period or of another membership is estimated from that partial's recent profile per
    member. Members nobody has a recent profile of (a bucket never reported, or just taken
    over by an instance that has not heard from them yet) are estimated at the mean of the
    members with one, and weigh that mean in the coverage: never counted as zero."""
    members = fresh = stale = offline = unmeasured = reporting = unknown = known = 0
    measured = estimated = uncertainty = fresh_abs = known_kw = known_abs = 0.0
    energy = energy_unc = 0.0
    newest: datetime | None = None
    elapsed_h = max(0.0, (now - period.start).total_seconds()) / _HOUR
    for bucket, count in members_per_bucket.items():
        if count <= 0:
            continue
        members += count
        p = partials.get(bucket)
        if p is None:
            offline += count
            unknown += count
            unmeasured += count
            continue
        if now - p.time <= rules.bucket_stale and p.members == count and p.period_start == period.start:
            reporting += 1
            fresh, stale, offline = fresh + p.fresh, stale + p.stale, offline + p.offline
            unknown += p.unknown
            known += p.members - p.unknown
            unmeasured += p.unmeasured
            measured += p.measured_kw
            estimated += p.estimated_kw
            uncertainty += p.uncertainty_kw
            fresh_abs += p.fresh_abs_kw
            known_kw += p.recent_kw
            known_abs += p.recent_abs_kw
            # The partial may be a little older than now: its energy is carried on at its power.
            lag_h = max(0.0, (now - p.time).total_seconds()) / _HOUR
            energy += p.energy_kwh + (p.measured_kw + p.estimated_kw) * lag_h
            energy_unc += p.energy_uncertainty_kwh + p.uncertainty_kw * lag_h
            if p.newest is not None and (newest is None or p.newest > newest):
                newest = p.newest
            continue
        # Its owner is gone (or the bucket changed): every member estimated from the profile.
        stale += count
        unmeasured += count
        profiled = p.members - p.unknown
        if profiled <= 0:
            unknown += count
            continue
        per_kw, per_abs = p.recent_kw / profiled, p.recent_abs_kw / profiled
        known += count
        known_kw += per_kw * count
        known_abs += per_abs * count
        estimated += per_kw * count
        uncertainty += per_abs * count
        if p.period_start == period.start and p.members == count:
            gap_h = max(0.0, (now - p.time).total_seconds()) / _HOUR
            energy += p.energy_kwh
            energy_unc += p.energy_uncertainty_kwh
        else:
            gap_h = elapsed_h
        energy += per_kw * count * gap_h
        energy_unc += per_abs * count * gap_h
    weight = known_abs
    if unknown and known:
        mean_kw, mean_abs = known_kw / known, known_abs / known
        estimated += unknown * mean_kw
        uncertainty += unknown * mean_abs
        energy += unknown * mean_kw * elapsed_h
        energy_unc += unknown * mean_abs * elapsed_h
        weight += unknown * mean_abs
    # By the members' recent consumption; by their count while nobody's is known.
    coverage = fresh_abs / weight if weight > 0 else (fresh / members if members else 0.0)
    return Aggregate(
        portfolio, now, period.start, members, fresh, stale, offline, measured, estimated, uncertainty,
        min(1.0, coverage), energy, energy_unc, unmeasured,
        sum(1 for c in members_per_bucket.values() if c > 0), reporting, newest,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PortfolioAdvice:
    """The gateway's advice computed on the portfolio's totals, with what it rests on."""

    advice: Advice
    coverage: float
    #: How far the projected imbalance may be off (the estimated members), kWh.
    uncertainty_kwh: float
    members: int
    fresh: int
    text: str


def advise(
    portfolio: Portfolio,
    schedule: NotifiedProfile | None,
    aggregate: Aggregate | None,
    at: datetime,
    rules: Rules,
) -> PortfolioAdvice:
    """The advice at ``at`` (now, or later in the running period with the current power held)."""
    calendar = portfolio.calendar
    period = calendar.period_at(at)
    if aggregate is None or aggregate.period_start != period.start or aggregate.members == 0:
        advice = compute_advice(calendar, schedule, at, net_energy_at_start_kwh=None,
                                net_energy_now_kwh=None, current_kw=None)  # fmt: skip
        return PortfolioAdvice(advice, 0.0, 0.0, 0, 0, advice.text)
    a = aggregate
    ahead_h = max(0.0, (at - a.time).total_seconds()) / _HOUR
    measured_enough = a.coverage >= rules.min_coverage and a.unmeasured < a.members
    advice = compute_advice(
        calendar,
        schedule,
        at,
        net_energy_at_start_kwh=0.0 if measured_enough else None,
        net_energy_now_kwh=a.energy_kwh + a.net_kw * ahead_h,
        current_kw=a.net_kw,
    )
    remaining_h = max(0.0, advice.remaining_s) / _HOUR
    uncertainty = a.energy_uncertainty_kwh + a.uncertainty_kw * (ahead_h + remaining_h)
    text = advice.text
    if advice.state is AdviceState.NO_MEASUREMENT and advice.notified_kwh is not None and a.members:
        text = (
            f"no measurement to steer by: {a.coverage:.0%} of the portfolio measured "
            f"(at least {rules.min_coverage:.0%} needed)"
        )
        advice = replace(advice, text=text)
    elif advice.state in (AdviceState.ADVISED, AdviceState.CLOSING) and a.fresh < a.members:
        text = f"{text} (±{uncertainty:.1f} kWh: {a.members - a.fresh} of {a.members} members estimated)"
    return PortfolioAdvice(advice, a.coverage, uncertainty, a.members, a.fresh, text)


@dataclass(frozen=True, slots=True)
class MemberView:
    """A member as the portfolio view and the ranking show it."""

    publisher: str
    bucket: int
    state: str
    power_kw: float | None
    age_s: float | None
    #: Power now minus its mean ``change_minutes`` ago, kW.
    change_kw: float | None
    recent_kw: float | None


def member_view(member: Member, bucket: int, now: datetime, rules: Rules) -> MemberView:
    known = member.known_until
    if member.online and member.fresh(now, rules.stale_after):
        state = "fresh"
    elif not member.online or known is None or now - known > rules.offline_after:
        state = "offline"
    else:
        state = "stale"
    recent = member.recent(now)
    return MemberView(
        member.publisher, bucket, state, member.power,
        None if known is None else round((now - known).total_seconds(), 3),
        member.change(now, rules.change_minutes), None if recent is None else recent[0],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Flexibility:
    """A member that moved against the advice, and why it is listed."""

    member: MemberView
    reason: str


def ranking(views: Sequence[MemberView], correction_kw: float | None, limit: int = 10) -> list[Flexibility]:
    """The members whose power moved most against the advice's direction lately.

    The advice asks the portfolio to draw less (correction < 0) or more (> 0); a member
    whose power rose (fell) by the most in the last minutes works against it most and is
    where an operator looks first. No optimisation: a ranking by the change, explained."""
    if correction_kw is None or correction_kw == 0:
        return []
    wanted = -1.0 if correction_kw < 0 else 1.0
    against = [
        v for v in views if v.change_kw is not None and v.change_kw * wanted < 0 and v.state == "fresh"
    ]
    against.sort(key=lambda v: (-abs(v.change_kw or 0.0), v.publisher))
    verb = "rose" if wanted < 0 else "fell"
    need = "draw less" if wanted < 0 else "draw more"
    return [
        Flexibility(
            v,
            f"its power {verb} by {abs(v.change_kw or 0.0):.2f} kW to {v.power_kw or 0.0:.2f} kW "
            f"while the portfolio should {need}",
        )
        for v in against[:limit]
    ]
