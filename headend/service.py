"""The head-end instance: the fleet's messages from the broker into storage, acknowledged.

One task owns the broker connection (as the gateway's uplink does). It subscribes to

* ``$share/<group>/<prefix>/json/data/+/+/<writer>`` for each writer it stores (minute,
  registers, lp1, lp2, events; not live) — the data, **shared** (MQTT 5 §4.8.2): the
  instances of one group split the fleet's messages, none sees them all, none is special;
* ``<prefix>/json/metadata/#`` and ``<prefix>/json/status/#`` — not shared: every instance
  needs every writer's metadata (retained) to read the data it gets, and the boxes' states.

Every message goes through :class:`~headend.ingest.Ingest`. What it accepts is collected
into a batch, stored in one transaction (:class:`~headend.storage.Repository`), and only
then acknowledged: per (publisher, writer) a ``Through`` on the publisher's ack topic, the
newest record time of what was committed. The gateway's uplink in consumer mode sends one
message per writer at a time and waits for that acknowledgement, so no later record of the
writer can be in flight at another instance: what this instance committed is everything
through that time. Refusals are counted per publisher and cause and logged at most once a
minute per cause; nothing stops ingest.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import aiomqtt

from gateway.clock import Clock
from gateway.pubsub import codec
from gateway.uplink.link import Backoff, BrokerUrl
from gateway.uplink.writers import WRITERS
from headend.broker import keep_connected, mqtt_client
from headend.completeness import PERIOD, ReplayPlanner, Request, completeness, day_bounds, holes_to_ask
from headend.config import HeadendConfig
from headend.ingest import Accepted, Ingest, LiveSeen, Refused, StatusSeen
from headend.storage import Batch, Event, Repository, Sample, SiteState

log = logging.getLogger(__name__)

#: A batch is stored when it holds this many rows or is this old (seconds).
BATCH_ROWS = 10_000
BATCH_AGE_S = 0.25
#: Refusals of one cause are logged at most this often (seconds).
LOG_EVERY_S = 60.0
#: The uplink writers whose records are stored (all but live).
STORED_WRITERS = tuple(str(w.name) for w in WRITERS if w.stream is not None)
#: A site's last seen time is saved from its data at most this often (seconds).
SEEN_EVERY_S = 5.0


class SiteObserver(Protocol):
    """What else wants the boxes' live values and states (the portfolios, issue 18): live
    values this connection sees (those released when their metadata came), every status."""

    def on_live(self, seen: LiveSeen) -> None: ...

    def on_status(self, publisher: str, state: str) -> None: ...


@dataclass(slots=True)
class Counters:
    """What one instance did since start (the bench and the tests read it)."""

    messages: int = 0
    accepted: int = 0
    rows: int = 0
    batches: int = 0
    acks: int = 0
    requests: int = 0
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass(slots=True)
class _Pending:
    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    #: (publisher, writer id) -> newest record time in the batch.
    through: dict[tuple[str, int], datetime] = field(default_factory=dict)
    #: publisher -> when its data last arrived.
    seen: dict[str, datetime] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.samples) + len(self.events)


@dataclass(slots=True)
class Site:
    """One box as this instance knows it (every instance sees every status message)."""

    state: str = "online"
    last_seen: datetime | None = None
    backlog: int = 0
    rate: float = 0.0
    #: The last cyclic report: (its Timestamp, its MessagesSent).
    last_report: tuple[datetime, int] | None = None
    #: When (monotonic) the site was last saved.
    saved_at: float = -math.inf

    def report(self, timestamp: datetime, sent: int) -> None:
        """A cyclic status: messages/s since the previous report. A count that went back is
        a restarted box: the rate waits for its next report."""
        last, self.last_report = self.last_report, (timestamp, sent)
        if last is not None and timestamp > last[0] and sent >= last[1]:
            self.rate = (sent - last[1]) / (timestamp - last[0]).total_seconds()

    def as_state(self, publisher: str) -> SiteState:
        return SiteState(publisher, self.state, self.last_seen, self.backlog, rate=self.rate)

    def saved(self, publisher: str, moment: float) -> SiteState:
        self.saved_at = moment
        return self.as_state(publisher)


class Headend:
    """One head-end instance."""

    def __init__(
        self,
        config: HeadendConfig,
        repository: Repository,
        clock: Clock,
        *,
        name: str = "",
        writers: Sequence[str] = STORED_WRITERS,
    ) -> None:
        self.config = config
        #: The writers whose data it subscribes to (the bench adds live to measure ingest).
        self.writers = tuple(writers)
        self.repository = repository
        self.clock = clock
        self.name = name or "smx-headend"
        self.url = BrokerUrl.parse(config.broker.url)
        self.ingest = Ingest(config.broker.prefix)
        self.counters = Counters()
        self.connected = asyncio.Event()
        self._pending = _Pending()
        self._logged: dict[str, float] = {}
        #: publisher -> what its status messages and its data said.
        self._sites: dict[str, Site] = {}
        self._status_seen = asyncio.Event()
        self._flushed = asyncio.Event()
        #: Sites whose status changed since the last save.
        self._dirty: set[str] = set()
        #: Set when a batch is full or a status waits: the flusher need not wait its age out.
        self._wake = asyncio.Event()
        #: Committed batches' (publisher, writer) -> Through, for the acknowledger, in order.
        self._acks: asyncio.Queue[dict[tuple[str, int], datetime]] = asyncio.Queue()
        self._backoff = Backoff(2.0, 60.0)
        self.observers: list[SiteObserver] = []
        c = config.completeness
        self._planner = ReplayPlanner(
            timedelta(seconds=c.grace_s), timedelta(seconds=c.per_publisher_s), c.total_per_minute
        )

    async def run(self) -> None:
        """Connect, ingest, reconnect; only cancellation ends it."""
        await keep_connected(
            f"head-end {self.name}",
            self.url,
            self._session,
            self.connected.clear,
            self.clock,
            self._backoff,
            log,
        )

    async def _session(self) -> None:
        b = self.config.broker
        client = await mqtt_client(b, self.url, self.name, 10_000)
        async with client:
            prefix = b.prefix
            await client.subscribe(f"{prefix}/json/metadata/#", qos=1)
            await client.subscribe(f"{prefix}/json/status/#", qos=1)
            # The writers it stores, each shared: live is not stored (its history is the
            # minute records), so it is not taken either (at 1-s live it is 97 % of the traffic).
            for writer in self.writers:
                await client.subscribe(f"$share/{b.group}/{prefix}/json/data/+/+/{writer}", qos=1)
            self._backoff.reset()
            self.connected.set()
            log.info("head-end %s: ingesting from %s (group %s)", self.name, self.url, b.group)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._flusher(client))
                tasks.create_task(self._acknowledger(client))
                tasks.create_task(self._completeness_loop(client))
                async for message in client.messages:
                    await self._take(message)

    async def _take(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        content_type = getattr(message.properties, "ContentType", None) if message.properties else None
        self.counters.messages += 1
        now = self.clock.now()
        for outcome in self.ingest.feed(str(message.topic), payload, content_type, now):
            if isinstance(outcome, Accepted):
                self.counters.accepted += 1
                self._pending.seen[outcome.publisher] = now
                self._pending.samples += outcome.samples
                self._pending.events += outcome.events
                key = (outcome.publisher, outcome.writer_id)
                last = self._pending.through.get(key)
                if last is None or outcome.time > last:
                    self._pending.through[key] = outcome.time
                if self._pending.rows >= BATCH_ROWS:
                    self._wake.set()
            elif isinstance(outcome, Refused):
                self._refused(outcome)
            elif isinstance(outcome, StatusSeen):
                await self._status(outcome, now)
            elif isinstance(outcome, LiveSeen):
                for observer in self.observers:
                    observer.on_live(outcome)

    async def _status(self, seen: StatusSeen, now: datetime) -> None:
        """A box's status: its state, and from a cyclic report its backlog and messages/s."""
        site = self._sites.setdefault(seen.publisher, Site())
        # Operational: online; Error (the Will: the box or its link died): offline;
        # Disabled (a clean stop) and the others by their name.
        site.state = {codec.PubSubState.OPERATIONAL: "online", codec.PubSubState.ERROR: "offline"}.get(
            seen.state, seen.state.name.lower()
        )
        if seen.backlog is not None:
            site.backlog = seen.backlog
        if seen.timestamp is not None and seen.messages_sent is not None:
            site.report(seen.timestamp, seen.messages_sent)
        if seen.state is codec.PubSubState.OPERATIONAL:
            # A retained report may be old (read at this instance's start): its own time.
            site.last_seen = now if seen.timestamp is None else min(seen.timestamp, now)
        for observer in self.observers:
            observer.on_status(seen.publisher, site.state)
        # Saved with the next batch (one statement for every box that reported meanwhile).
        self._dirty.add(seen.publisher)
        self._wake.set()

    def state(self, publisher: str) -> str | None:
        """A box's state as its last status message (stored) said."""
        site = self._sites.get(publisher)
        return None if site is None else site.state

    def site(self, publisher: str) -> SiteState | None:
        """What this instance knows of a box (what it last saved, or newer)."""
        site = self._sites.get(publisher)
        return None if site is None else site.as_state(publisher)

    async def status_seen(self) -> None:
        """Wait for the next status message to be stored."""
        await self._status_seen.wait()

    async def flushed(self) -> None:
        """Wait for the next batch to be committed."""
        await self._flushed.wait()

    def _refused(self, refused: Refused) -> None:
        self.counters.refused[(refused.publisher, str(refused.cause))] += 1
        now = self.clock.monotonic()
        cause = str(refused.cause)
        if now - self._logged.get(cause, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[cause] = now
            total = sum(n for (_p, c), n in self.counters.refused.items() if c == cause)
            log.warning("head-end %s: refused (%s, %d so far): %s: %s", self.name, cause, total,
                        refused.publisher, refused.detail)  # fmt: skip

    async def _completeness_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await self.clock.sleep(self.config.completeness.check_s)
            for request in await self.holes():
                msg = codec.encode(codec.ReplayRequest(request.writer_id, request.start, request.end))
                log.info("head-end %s: asking %s for writer %d from %s to %s", self.name, request.publisher,
                         request.writer_id, request.start.isoformat(), request.end.isoformat())  # fmt: skip
                await client.publish(
                    f"{self.config.broker.prefix}/json/replay/{request.publisher}", msg, qos=1
                )
                self.counters.requests += 1

    async def holes(self) -> list[Request]:
        """Every site's load profile, today and yesterday in its own time zone: the replay
        requests for what is missing, as far as the pacing allows.

        The instances of a group share the work through the database
        (:meth:`~headend.storage.Repository.claim`): a site is checked by one of them per
        half ``check_s``, and asked for a replay by one of them per ``per_publisher_s``."""
        now = self.clock.now()
        c = self.config.completeness
        found: list[tuple[str, int, tuple[datetime, ...]]] = []
        # The sites stored so far and those only announced (metadata seen, nothing stored yet).
        sites = set(await self.repository.publishers_and_meters()) | self.ingest.meters()
        checked: dict[str, bool] = {}
        for publisher, meter in sorted(sites):
            writer_id = self.ingest.writer_id(publisher, meter, "lp1")
            if writer_id is None:
                continue  # its metadata not seen yet: nothing to ask by
            if publisher not in checked:
                every = timedelta(seconds=c.check_s / 2)
                checked[publisher] = await self.repository.claim(publisher, "check", now, every)
            if not checked[publisher]:
                continue  # another instance checks it this time
            zone = ZoneInfo(self.config.site(publisher).timezone)
            today = now.astimezone(zone).date()
            for day in (today - timedelta(days=1), today):
                start, end = day_bounds(day, zone)
                rows = await self.repository.samples(publisher, meter, "lp1", start, end + PERIOD * 8,
                                                     ["MeterStatus"])  # fmt: skip
                stored = {r.time: int(r.value or 0) for r in rows if r.time <= end}
                later = [(r.time, int(r.value or 0)) for r in rows if r.time > end]
                verdict = completeness(day, zone, stored, later=later)
                found += holes_to_ask(verdict, now, self._planner, publisher, writer_id)
        out = []
        for request in self._planner.due(now, found):
            if not self._planner.room(now):
                break
            if await self.repository.claim(
                request.publisher, "replay", now, timedelta(seconds=c.per_publisher_s)
            ):
                self._planner.asked(request, now)
                out.append(request)
        return out

    async def _flusher(self, client: aiomqtt.Client) -> None:
        while True:
            # A batch is BATCH_AGE_S old or BATCH_ROWS big, whichever comes first.
            sleeper = asyncio.ensure_future(self.clock.sleep(BATCH_AGE_S))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
            self._wake.clear()
            await self.flush(client)

    async def flush(self, client: aiomqtt.Client | None) -> None:
        """Store what is pending in one transaction, then hand its acknowledgements to the
        acknowledger (which publishes them while the next batch is stored) and save the
        sites' states that changed."""
        pending, self._pending = self._pending, _Pending()
        if pending.rows or pending.through:
            stored = await self.repository.store(Batch(pending.samples, pending.events))
            self.counters.rows += stored
            self.counters.batches += 1
            if client is not None and pending.through:
                self._acks.put_nowait(pending.through)
            self._flushed.set()
            self._flushed = asyncio.Event()
        moment = self.clock.monotonic()
        for publisher, when in pending.seen.items():
            # Data is a sign of life too: last seen, and online unless a status said otherwise;
            # saved every SEEN_EVERY_S at most (10,000 boxes would be 10,000 updates a batch).
            site = self._sites.setdefault(publisher, Site())
            site.last_seen = when
            if moment - site.saved_at >= SEEN_EVERY_S:
                self._dirty.add(publisher)
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            await self.repository.save_sites([self._sites[p].saved(p, moment) for p in sorted(dirty)])
            self._status_seen.set()
            self._status_seen = asyncio.Event()

    async def _acknowledger(self, client: aiomqtt.Client) -> None:
        """Publishes the committed batches' acknowledgements, a batch's all at once (QoS 1;
        the broker's receive maximum paces them), batches in order."""
        prefix = self.config.broker.prefix

        async def one(publisher: str, writer_id: int, through: datetime) -> bool:
            ack = codec.encode(codec.Ack(writer_id, through))
            try:
                await client.publish(f"{prefix}/json/ack/{publisher}", ack, qos=1)
            except aiomqtt.MqttError:
                return False  # a lost ack: the box sends again after its ack_timeout_s, we upsert
            return True

        while True:
            through = await self._acks.get()
            done = await asyncio.gather(*(one(p, w, t) for (p, w), t in through.items()))
            self.counters.acks += sum(done)
