"""The portfolio service of one head-end instance (issue 18; DESIGN §12).

What it does, every second, for every portfolio:

1. **Owns some buckets.** The sites are hashed into :data:`~headend.portfolio.aggregate.BUCKETS`
   buckets; the instances of a group share them through leases in the database
   (:meth:`~headend.storage.Repository.lease`): each instance renews its own every third of
   ``lease_s`` and takes free or expired ones up to its fair share (the buckets divided by the
   instances alive, whose heartbeats are leases too), and gives surplus back when another
   instance joins. A dead instance's buckets are taken over once their leases expire.
2. **Takes its buckets' members' live and register messages** over a broker connection of
   its own, *not shared*: ``<prefix>/json/data/<site>/+/live`` and ``.../registers`` of each
   member site of an owned bucket. The messages go through the same
   :class:`~headend.ingest.Ingest` as the stored data (one metadata table); the storage
   connection's shared subscriptions are untouched.
3. **Publishes its buckets' partials** (:mod:`~headend.portfolio.partials`) on the broker
   and takes every instance's, keeping the latest partial of each bucket, and
   :func:`~headend.portfolio.aggregate.combine` s them into the portfolio's aggregate: a
   bucket counts once whoever sent it, so a bucket moving between instances is never
   counted twice, and a dead owner's bucket is estimated (stated as such) until its new
   owner reports.
4. Keeps the aggregate's **history**: a record per minute and per settlement period in the
   database (the first instance to write one wins), and the last hour in memory.

Schedules are registered per delivery day with the gateway's own validation
(:func:`gateway.market.profiles.make_profile`) and stored in the database; definitions made
through REST too, re-read by every instance every :data:`RELOAD_S`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.clock import Clock
from gateway.errors import ConfigError, MarketInputError
from gateway.market.profiles import NotifiedProfile, make_profile
from gateway.uplink.link import Backoff, BrokerUrl
from gateway.uplink.writers import Writer
from headend.broker import keep_connected, mqtt_client
from headend.config import HeadendConfig, load_config
from headend.ingest import Accepted, Ingest, LiveSeen, Refused
from headend.portfolio import partials as wire
from headend.portfolio.aggregate import (
    BUCKETS,
    Aggregate,
    Flexibility,
    MemberView,
    Partial,
    PortfolioAdvice,
    Rules,
    advise,
    bucket_of,
    combine,
    member_view,
    partial,
    ranking,
)
from headend.portfolio.member import Member, net_energy
from headend.portfolio.model import Portfolio, parse_portfolio
from headend.storage import AggregateRecord, PortfolioRecord, Repository, ScheduleRecord, StorageError

log = logging.getLogger(__name__)

#: Seconds between two reads of the stored definitions (REST changes reach every instance).
RELOAD_S = 2.0
#: The aggregate of a second is combined this long after it (the partials of that second
#: travel meanwhile); a bucket's partial more than BUCKET_STALE older than the aggregate is
#: its owner's last word (it is gone or late): its members are estimated.
COMBINE_AFTER_S = 0.25
BUCKET_STALE = timedelta(seconds=1.5)
#: Member views are exchanged every this many ticks (the portfolio view's table).
VIEWS_EVERY = 5
#: Topic filters per SUBSCRIBE packet.
SUBSCRIBE_CHUNK = 200
#: The in-memory history of the aggregate (the portfolio view's last hour).
HISTORY = timedelta(hours=1)
#: The load-profile writer and fields the settled energy is summed from (billing quality).
SETTLED_STREAM = str(Writer.LOAD_PROFILE_1)
SETTLED_IMPORT, SETTLED_EXPORT = "APlusPerPeriod", "AMinusPerPeriod"
#: The meters' load-profile capture period.
PROFILE_PERIOD = timedelta(minutes=15)


def rules_of(config: HeadendConfig) -> Rules:
    a = config.aggregation
    return Rules(
        stale_after=timedelta(seconds=a.stale_after_s),
        offline_after=timedelta(seconds=a.offline_after_s),
        bucket_stale=BUCKET_STALE,
        min_coverage=a.min_coverage,
    )


@dataclass(slots=True)
class _Interval:
    """The 1-second aggregates of a minute or a settlement period, summed as they come."""

    start: datetime
    seconds: int
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    coverage: float = 0.0
    last: Aggregate | None = None

    def add(self, a: Aggregate) -> None:
        net = a.net_kw
        self.count += 1
        self.total += net
        self.low, self.high = min(self.low, net), max(self.high, net)
        self.coverage += a.coverage
        self.last = a

    def record(self, portfolio: str) -> AggregateRecord:
        mean = self.total / self.count
        end = self.start + timedelta(seconds=self.seconds)
        last = self.last
        if self.seconds > 60 and last is not None and last.period_start == self.start:
            # The period's energy as the aggregate measured it, carried to the period's end.
            rest_h = max(0.0, (end - last.time).total_seconds()) / 3600
            energy = last.energy_kwh + last.net_kw * rest_h
            uncertainty = last.energy_uncertainty_kwh + last.uncertainty_kw * rest_h
        else:
            energy = mean * self.seconds / 3600
            uncertainty = (last.uncertainty_kw if last else 0.0) * self.seconds / 3600
        return AggregateRecord(portfolio, self.seconds, self.start, mean, self.low, self.high,
                               self.coverage / self.count, energy, uncertainty, self.count)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PeriodView:
    """One settlement period of a delivery day: schedule, live estimate, settled energy."""

    number: int
    start: datetime
    end: datetime
    notified_kwh: float | None
    #: The energy the live aggregate measured (and estimated) for the period, at its close.
    live_kwh: float | None
    live_uncertainty_kwh: float | None
    #: The members' load-profile energy (billing quality) once stored.
    settled_kwh: float | None
    #: Member load-profile records found / expected for the period.
    settled_records: int
    expected_records: int
    coverage: float | None

    @property
    def complete(self) -> bool:
        return self.expected_records > 0 and self.settled_records >= self.expected_records

    @property
    def difference_kwh(self) -> float | None:
        """Settled minus live: how far the live estimate was off (once settled is complete)."""
        if self.settled_kwh is None or self.live_kwh is None or not self.complete:
            return None
        return self.settled_kwh - self.live_kwh


@dataclass(slots=True)
class Counters:
    ticks: int = 0
    partials_sent: int = 0
    partials_taken: int = 0
    live: int = 0
    registers: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    #: CPU seconds spent in the ticks (the bench's cost per update).
    tick_cpu_s: float = 0.0


class PortfolioService:
    """The portfolios of one head-end instance: their members, aggregates, schedules, advice."""

    def __init__(
        self, config: HeadendConfig, repository: Repository, clock: Clock, ingest: Ingest, *, name: str
    ) -> None:
        self.config = config
        self.repository = repository
        self.clock = clock
        self.ingest = ingest
        self.name = name
        self.rules = rules_of(config)
        self.url = BrokerUrl.parse(config.broker.url)
        self.counters = Counters()
        self.connected = asyncio.Event()
        #: Every portfolio by name: the configuration file's and the stored ones.
        self.portfolios: dict[str, Portfolio] = {p.name: p for p in config.portfolios}
        #: portfolio -> bucket -> its member PublisherIds.
        self._members: dict[str, dict[int, tuple[str, ...]]] = {}
        #: The buckets this instance owns now.
        self.owned: frozenset[int] = frozenset()
        #: The member sites of the owned buckets, with what is known of them.
        self._state: dict[str, Member] = {}
        #: What the status messages said: PublisherId -> online.
        self._online: dict[str, bool] = {}
        self._partials: dict[str, dict[int, Partial]] = {}
        #: portfolio -> PublisherId -> (its view, when received).
        self._views: dict[str, dict[str, MemberView]] = {}
        self.aggregates: dict[str, Aggregate] = {}
        self._history: dict[str, deque[tuple[datetime, float, float, float]]] = {}
        self._minutes: dict[str, _Interval] = {}
        self._periods: dict[str, _Interval] = {}
        self._schedules: dict[tuple[str, date], NotifiedProfile | None] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._client: aiomqtt.Client | None = None
        self._subscribed: set[str] = set()
        self._ticked = asyncio.Event()
        self._backoff = Backoff(2.0, 60.0)
        self._stored: dict[str, Portfolio] = {}
        #: The configuration file's modification time as last read (None: not yet looked at).
        self._file_mtime: int | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._index()

    # -- definitions ------------------------------------------------------------------------

    def _index(self) -> None:
        tags = self.config.tags()
        members: dict[str, dict[int, tuple[str, ...]]] = {}
        for name, p in self.portfolios.items():
            by_bucket: dict[int, list[str]] = {}
            for publisher in p.members(tags):
                by_bucket.setdefault(bucket_of(publisher), []).append(publisher)
            members[name] = {b: tuple(ps) for b, ps in sorted(by_bucket.items())}
        self._members = members
        for gone in set(self._partials) - set(members):
            self._partials.pop(gone, None)
            self.aggregates.pop(gone, None)

    async def reload(self) -> None:
        """Read the stored definitions again (REST changes made at any instance), and the
        configuration file's ``[[portfolios]]`` and site tags when the file changed."""
        file_changed = await self._reread_file()
        stored: dict[str, Portfolio] = {}
        for record in await self.repository.portfolios():
            try:
                stored[record.name] = parse_portfolio(record.definition, origin="rest")
            except MarketInputError as err:
                log.error("portfolio %s: stored definition unusable: %s", record.name, err)
        if stored == self._stored and not file_changed:
            return
        self._stored = stored
        config = {p.name: p for p in self.config.portfolios}
        self.portfolios = {**stored, **config}  # the file's definition wins a name clash
        self._index()
        await self._resubscribe()

    async def _reread_file(self) -> bool:
        """Take the configuration file's portfolios and site tags again if it changed since
        it was read (the rest of the file takes effect at the next start). A file that no
        longer reads is logged and the last good one kept."""
        path = Path(self.config.source)

        def changed() -> HeadendConfig | None:
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                return None
            if self._file_mtime is None:
                self._file_mtime = mtime  # as read at the start
                return None
            if mtime == self._file_mtime:
                return None
            self._file_mtime = mtime
            return load_config(path)

        try:
            new = await asyncio.to_thread(changed)
        except ConfigError as err:
            log.error("portfolios %s: %s; keeping the portfolios as they were", self.name, err)
            return False
        if new is None or (new.portfolios, new.tags()) == (self.config.portfolios, self.config.tags()):
            return False
        self.config = replace(self.config, portfolios=new.portfolios, sites=new.sites)
        log.info(
            "portfolios %s: %s changed: %d portfolio(s) in the file", self.name, path, len(new.portfolios)
        )
        return True

    def portfolio(self, name: str) -> Portfolio:
        try:
            return self.portfolios[name]
        except KeyError:
            raise KeyError(f"no portfolio {name!r}") from None

    def members_of(self, name: str) -> tuple[str, ...]:
        return tuple(sorted(p for ps in self._members.get(name, {}).values() for p in ps))

    async def define(self, data: object) -> tuple[Portfolio, bool]:
        """Store a portfolio made through REST (created or replaced); MarketInputError if it
        is refused. Returns it and whether it is new."""
        portfolio = parse_portfolio(data, origin="rest")
        if portfolio.origin != "rest":
            raise MarketInputError("origin: a portfolio made at run time is of origin rest", field="origin")
        if any(p.name == portfolio.name for p in self.config.portfolios):
            raise MarketInputError(
                f"name: {portfolio.name!r} is defined in the configuration file; change it there",
                field="name",
            )
        created = portfolio.name not in self.portfolios
        await self.repository.save_portfolio(
            PortfolioRecord(portfolio.name, portfolio.as_json(), self.clock.now())
        )
        await self.reload()
        log.info("portfolio %s %s: %d members", portfolio.name, "defined" if created else "changed",
                 len(self.members_of(portfolio.name)))  # fmt: skip
        return portfolio, created

    async def remove(self, name: str) -> bool:
        if any(p.name == name for p in self.config.portfolios):
            raise MarketInputError(f"name: {name!r} is defined in the configuration file; remove it there",
                                   field="name")  # fmt: skip
        existed = await self.repository.delete_portfolio(name)
        await self.reload()
        return existed

    # -- schedules --------------------------------------------------------------------------

    async def register_schedule(
        self, name: str, day: object, values: Sequence[object], unit: str = "kWh", *, replace: bool = False
    ) -> tuple[NotifiedProfile, bool]:
        """Validate (the gateway's rules) and store a schedule; MarketInputError, nothing stored,
        if refused. Returns it and whether it replaced one."""
        portfolio = self.portfolio(name)
        if not isinstance(day, date) or isinstance(day, datetime):
            raise MarketInputError(f"day must be a date, got {day!r}", field="day")
        async with self._locks.setdefault(name, asyncio.Lock()):
            existing = await self.schedule(name, day)
            now = self.clock.now()
            profile = make_profile(portfolio.calendar, day, list(values), unit, now=now, existing=existing,
                                   replace=replace, limit_kw=portfolio.limit_kw)  # fmt: skip
            record = ScheduleRecord(name, day, profile.period_minutes, profile.energy_kwh, now)
            await self.repository.save_schedule(record)
            self._schedules[(name, day)] = profile
        log.info("portfolio %s: schedule for %s registered (%.3f kWh)", name, day, sum(profile.energy_kwh))
        return profile, existing is not None

    async def schedule(self, name: str, day: date) -> NotifiedProfile | None:
        """The stored schedule of ``day`` (remembered for the days the advice asks about)."""
        portfolio = self.portfolio(name)
        key = (name, day)
        if key in self._schedules:
            return self._schedules[key]
        record = await self.repository.schedule(name, day)
        profile = None
        if record is not None and record.period_minutes == portfolio.period_minutes:
            profile = NotifiedProfile(record.day, record.period_minutes, record.energy_kwh)
        today = portfolio.calendar.day_of(self.clock.now())
        if abs((day - today).days) <= 1:
            self._schedules[key] = profile
        return profile

    async def schedule_days(self, name: str) -> list[date]:
        self.portfolio(name)
        return await self.repository.schedule_days(name)

    # -- the live aggregate -------------------------------------------------------------------

    def aggregate(self, name: str) -> Aggregate | None:
        self.portfolio(name)
        return self.aggregates.get(name)

    async def advice(self, name: str, at: datetime | None = None) -> PortfolioAdvice:
        """The advice now, or at a later instant of the running period (current power held)."""
        portfolio = self.portfolio(name)
        aggregate = self.aggregates.get(name)
        moment = at or self.clock.now()
        if moment.tzinfo is None:
            raise MarketInputError(f"the time must say its offset, got {moment.isoformat()}", field="time")
        if at is not None and aggregate is not None:
            period = portfolio.calendar.period_at(aggregate.time)
            if not aggregate.time <= at < period.end:
                raise MarketInputError(
                    f"{at.isoformat()} is not in the rest of the running period "
                    f"[{aggregate.time.isoformat()}, {period.end.isoformat()})",
                    out_of_range=True,
                    field="time",
                )
        schedule = await self.schedule(name, portfolio.calendar.day_of(moment))
        return advise(portfolio, schedule, aggregate, moment, self.rules)

    def members(self, name: str) -> list[MemberView]:
        """Every member as the instances last showed it (own buckets: now)."""
        self.portfolio(name)
        now = self.clock.now()
        views = dict(self._views.get(name, {}))
        for bucket, publishers in self._members.get(name, {}).items():
            if bucket in self.owned:
                for p in publishers:
                    member = self._state.get(p)
                    if member is not None:
                        views[p] = member_view(member, bucket, now, self.rules)
        out = []
        for p in self.members_of(name):
            out.append(views.get(p) or MemberView(p, bucket_of(p), "offline", None, None, None, None))
        return out

    async def flexibility(self, name: str, limit: int = 10) -> tuple[PortfolioAdvice, list[Flexibility]]:
        advice = await self.advice(name)
        return advice, ranking(self.members(name), advice.advice.correction_kw, limit)

    def recent(self, name: str) -> list[tuple[datetime, float, float, float]]:
        """The last hour, a point a second: (time, net kW, measured kW, coverage)."""
        self.portfolio(name)
        return list(self._history.get(name, ()))

    async def history(self, name: str, seconds: int, start: datetime, end: datetime) -> list[AggregateRecord]:
        self.portfolio(name)
        return await self.repository.aggregates(name, seconds, start, end)

    async def periods(self, name: str, day: date) -> list[PeriodView]:
        """A delivery day's periods: schedule, live estimate, settled load-profile energy."""
        portfolio = self.portfolio(name)
        calendar = portfolio.calendar
        periods = calendar.periods(day)
        start, end = calendar.day_bounds(day)
        schedule = await self.schedule(name, day)
        seconds = portfolio.period_minutes * 60
        live = {r.start: r for r in await self.repository.aggregates(name, seconds, start, end)}
        members = self.members_of(name)
        sums = await self.repository.period_sums(members, SETTLED_STREAM, SETTLED_IMPORT, SETTLED_EXPORT,
                                                 start, end)  # fmt: skip
        per_period = max(1, portfolio.period_minutes // 15)
        settled: dict[int, tuple[float, int]] = {}
        for s in sums:
            # A load-profile period is stamped at its end: it belongs to the period it closes.
            number = (s.time - PROFILE_PERIOD - start) // calendar.period + 1
            energy, records = settled.get(number, (0.0, 0))
            settled[number] = (energy + s.import_kwh - s.export_kwh, records + s.sites)
        out = []
        for p in periods:
            r = live.get(p.start)
            energy, records = settled.get(p.number, (0.0, 0))
            out.append(PeriodView(
                p.number, p.start, p.end, None if schedule is None else schedule.energy_of(p.number),
                None if r is None else r.energy_kwh, None if r is None else r.uncertainty_kwh,
                energy if records else None, records, len(members) * per_period,
                None if r is None else r.coverage,
            ))  # fmt: skip
        return out

    async def next_tick(self) -> None:
        """Wait for the next aggregate (every second)."""
        await self._ticked.wait()

    async def saved(self) -> None:
        """Wait until the history records handed to the database so far are written (or
        their failure logged)."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    # -- what the storage connection sees ---------------------------------------------------

    def on_live(self, seen: LiveSeen) -> None:
        member = self._state.get(seen.publisher)
        if member is not None:
            self.counters.live += 1
            member.live(seen.time, dict(seen.values))

    def on_registers(self, accepted: Accepted) -> None:
        member = self._state.get(accepted.publisher)
        if member is None:
            return
        net = net_energy({s.field: s.value for s in accepted.samples})
        if net is not None:
            self.counters.registers += 1
            member.register(accepted.time, net)

    def on_status(self, publisher: str, state: str) -> None:
        online = state == "online"
        self._online[publisher] = online
        member = self._state.get(publisher)
        if member is not None:
            member.online = online

    # -- the connection -------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, own buckets, aggregate, reconnect; only cancellation ends it."""
        await keep_connected(
            f"portfolios {self.name}", self.url, self._session, self._ended, self.clock, self._backoff, log
        )

    def _ended(self) -> None:
        """A session ended: nothing is owned or connected until the next one."""
        self.connected.clear()
        self._client = None
        self._subscribed.clear()
        self.owned = frozenset()
        self._state.clear()

    async def _session(self) -> None:
        await self.reload()
        b = self.config.broker
        client = await mqtt_client(b, self.url, f"{self.name}-portfolios", 50_000)
        async with client:
            await client.subscribe(wire.topic_filter(b.prefix, b.group), qos=0)
            self._client = client
            self._backoff.reset()
            self.connected.set()
            log.info("portfolios %s: %d portfolio(s), aggregating with group %s",
                     self.name, len(self.portfolios), b.group)  # fmt: skip
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._lease_loop())
                tasks.create_task(self._tick_loop(client))
                tasks.create_task(self._reload_loop())
                async for message in client.messages:
                    self._take(message)

    def _take(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        topic = str(message.topic)
        b = self.config.broker
        if topic.startswith(wire.topic_filter(b.prefix, b.group)[:-1]):
            self._on_partials(payload)
            return
        content_type = getattr(message.properties, "ContentType", None) if message.properties else None
        for outcome in self.ingest.feed(topic, payload, content_type, self.clock.now()):
            if isinstance(outcome, LiveSeen):
                self.on_live(outcome)
            elif isinstance(outcome, Accepted) and outcome.writer == Writer.REGISTERS:
                self.on_registers(outcome)
            elif isinstance(outcome, Refused):
                self.counters.refused[str(outcome.cause)] += 1

    def _on_partials(self, payload: bytes) -> None:
        try:
            message = wire.decode(payload)
        except wire.PartialsError as err:
            self.counters.refused["partials"] += 1
            log.warning("portfolios %s: a partials message refused: %s", self.name, err)
            return
        if message.instance == self.name:
            return  # ours: taken when made
        self._apply(message.partials)
        for portfolio, view in message.members:
            if view.bucket not in self.owned:
                self._views.setdefault(portfolio, {})[view.publisher] = view

    def _apply(self, partials: Sequence[Partial]) -> None:
        for p in partials:
            latest = self._partials.setdefault(p.portfolio, {})
            old = latest.get(p.bucket)
            if old is None or p.time >= old.time:
                latest[p.bucket] = p
                self.counters.partials_taken += 1

    # -- buckets ----------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        while True:
            await self.own_buckets()
            await self.clock.sleep(self.config.aggregation.lease_s / 3)

    async def own_buckets(self) -> None:
        """Renew this instance's heartbeat and buckets; take free ones up to its fair share;
        give surplus back."""
        now = self.clock.now()
        ttl = timedelta(seconds=self.config.aggregation.lease_s)
        group = self.config.broker.group
        instances, buckets = f"portfolio/{group}/instance/", f"portfolio/{group}/bucket/"
        await self.repository.lease(instances + self.name, self.name, now, ttl)
        alive = sorted(
            lease.owner for lease in await self.repository.leases(instances) if lease.expires > now
        )
        share = math.ceil(BUCKETS / max(1, len(alive)))
        held = {int(lease.name[len(buckets) :]): lease for lease in await self.repository.leases(buckets)}
        mine = sorted(b for b, lease in held.items() if lease.owner == self.name and lease.expires > now)
        keep = mine[:share]
        for extra in mine[share:]:
            await self.repository.release(f"{buckets}{extra}", self.name)
        owned = []
        for b in keep:
            if await self.repository.lease(f"{buckets}{b}", self.name, now, ttl):
                owned.append(b)
        # Free ones from a place of its own in the ring, so instances starting at once
        # do not all try the same buckets first.
        place = alive.index(self.name) if self.name in alive else 0
        ring = [(place * BUCKETS // max(1, len(alive)) + k) % BUCKETS for k in range(BUCKETS)]
        for b in ring:
            if len(owned) >= share:
                break
            lease = held.get(b)
            if b in owned or (lease is not None and lease.owner != self.name and lease.expires > now):
                continue
            if await self.repository.lease(f"{buckets}{b}", self.name, now, ttl):
                owned.append(b)
        if frozenset(owned) != self.owned:
            log.info("portfolios %s: owns %d of %d buckets (%d instance(s))",
                     self.name, len(owned), BUCKETS, len(alive))  # fmt: skip
            self.owned = frozenset(owned)
            await self._resubscribe()

    async def _resubscribe(self) -> None:
        """Subscribe to the live and register data of the owned buckets' member sites (and
        no other); forget the sites no longer owned."""
        wanted = {
            p
            for buckets in self._members.values()
            for b, publishers in buckets.items()
            if b in self.owned
            for p in publishers
        }
        for p in set(self._state) - wanted:
            del self._state[p]
        for p in wanted - set(self._state):
            self._state[p] = Member(p, online=self._online.get(p, True))
        client = self._client
        if client is None:
            return
        prefix = self.config.broker.prefix

        def filters(publishers: Sequence[str]) -> list[str]:
            return [
                f"{prefix}/json/data/{p}/+/{w}" for p in publishers for w in (Writer.LIVE, Writer.REGISTERS)
            ]

        new, gone = sorted(wanted - self._subscribed), sorted(self._subscribed - wanted)
        for i in range(0, len(gone), SUBSCRIBE_CHUNK):
            await client.unsubscribe(filters(gone[i : i + SUBSCRIBE_CHUNK]))
        self._subscribed -= set(gone)
        for i in range(0, len(new), SUBSCRIBE_CHUNK):
            chunk = new[i : i + SUBSCRIBE_CHUNK]
            await client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters(chunk)])
            self._subscribed.update(chunk)

    async def _reload_loop(self) -> None:
        while True:
            await self.clock.sleep(RELOAD_S)
            await self.reload()

    # -- the tick -----------------------------------------------------------------------------

    async def _tick_loop(self, client: aiomqtt.Client) -> None:
        b = self.config.broker
        while True:
            now = self.clock.now()
            # On the whole second: every instance's partials are of the same instant.
            await self.clock.sleep(1.0 - now.microsecond / 1e6)
            second = self.clock.now().replace(microsecond=0)
            message = self.partials(second)
            if message is not None:
                await client.publish(wire.topic(b.prefix, b.group, self.name), wire.encode(message), qos=0)
                self.counters.partials_sent += len(message.partials)
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # Python 3.11's wait_for (inside aiomqtt's publish) can swallow a cancellation
                    # that comes as the publish completes: a stop must still stop the loop.
                    raise asyncio.CancelledError
            # The other instances' partials of this second arrive meanwhile: the aggregate of
            # the second is combined from every bucket's partial of that second.
            await self.clock.sleep(COMBINE_AFTER_S)
            self.combine(second)

    def tick(self) -> wire.Partials | None:
        """:meth:`partials` and :meth:`combine` at the clock's now, at once (tests, one instance)."""
        now = self.clock.now()
        message = self.partials(now)
        self.combine(now)
        return message

    def partials(self, now: datetime) -> wire.Partials | None:
        """This instance's partials at ``now`` (applied here at once); the message to publish,
        None when it owns no bucket with members."""
        started = time.process_time()
        self.counters.ticks += 1
        own: list[Partial] = []
        views: list[tuple[str, MemberView]] = []
        with_views = self.counters.ticks % VIEWS_EVERY == 0
        for name, portfolio in self.portfolios.items():
            period = portfolio.calendar.period_at(now)
            for bucket, publishers in self._members.get(name, {}).items():
                if bucket not in self.owned:
                    continue
                members = [self._state[p] for p in publishers if p in self._state]
                own.append(partial(name, bucket, members, now, period, self.rules))
                if with_views:
                    views += [(name, member_view(m, bucket, now, self.rules)) for m in members]
        self._apply(own)
        self.counters.tick_cpu_s += time.process_time() - started
        if not own:
            return None
        return wire.Partials(self.name, now, tuple(own), tuple(views))

    def combine(self, now: datetime) -> None:
        """Every portfolio's aggregate at ``now`` from the latest partial of each bucket."""
        started = time.process_time()
        for name, portfolio in self.portfolios.items():
            period = portfolio.calendar.period_at(now)
            counts = {b: len(ps) for b, ps in self._members.get(name, {}).items()}
            aggregate = combine(name, now, period, counts, self._partials.get(name, {}), self.rules)
            self.aggregates[name] = aggregate
            self._record(name, portfolio, aggregate)
        self._ticked.set()
        self._ticked = asyncio.Event()
        self.counters.tick_cpu_s += time.process_time() - started

    def _record(self, name: str, portfolio: Portfolio, aggregate: Aggregate) -> None:
        now = aggregate.time
        history = self._history.setdefault(name, deque())
        history.append((now, aggregate.net_kw, aggregate.measured_kw, aggregate.coverage))
        while history and history[0][0] < now - HISTORY:
            history.popleft()
        done: list[AggregateRecord] = []
        minute = now.replace(second=0, microsecond=0)
        current = self._minutes.get(name)
        if current is None or current.start != minute:
            if current is not None and current.count:
                done.append(current.record(name))
            current = self._minutes[name] = _Interval(minute, 60)
        current.add(aggregate)
        start = aggregate.period_start
        running = self._periods.get(name)
        if running is None or running.start != start:
            if running is not None and running.count:
                done.append(running.record(name))
            running = self._periods[name] = _Interval(start, portfolio.period_minutes * 60)
        running.add(aggregate)
        if done:
            task = asyncio.get_running_loop().create_task(self._save(done))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _save(self, records: list[AggregateRecord]) -> None:
        try:
            await self.repository.save_aggregates(records)
        except StorageError as err:
            log.warning("portfolios %s: history not saved: %s", self.name, err)


__all__: Sequence[str] = ("PeriodView", "PortfolioService", "rules_of")
