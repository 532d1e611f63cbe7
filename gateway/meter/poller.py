"""The poller: the sole owner of a meter's line (DESIGN §1).

Theory of operation. Every ``cycle_s`` the poller runs one cycle with a time budget of
``budget_fraction`` of the cycle; the cost of each read is measured (EWMA) on the line:

1. **Core**: the 1-second objects in catalogue priority order, as many as the measured
   cost per read lets fit into ``core_fraction`` of the budget. They are read every cycle.
2. **Due periodic work**, the most overdue (relative to its period) first, as long as it
   fits: an energy register (one per cycle, all within ``register_period_s``), the clock
   (``clock_period_s``), and one piece of a load profile / event log readout (ranges
   queued every ``profile_period_s`` / ``event_period_s``, the event log first).
3. **Rotation**: the remaining 1-second objects, round robin, while the budget lasts.

What cannot be read in a cycle waits for the next one; each value's measured refresh
period is published, so a slow line is visible instead of silently late. The spare time
alternates between rotation and periodic work; periodic work overdue for long
("starving") runs even if the core must shrink, and if not even one core value fits
beside it the cycle's core is skipped and the skip is counted. A cycle that ends after
the next one should have started is counted as late.

Publishing never takes the line's time: the cycle's snapshot, a profile piece and events
are posted to each listener's mailbox (:mod:`gateway.meter.feed`) and delivered by a task
of its own, so a slow OPC UA publish, web feed or disk can never make a cycle late.

Failures: the first failed read marks every value Uncertain (last usable value) and
closes the session; re-opening backs off exponentially. Once no read has succeeded for
``loss_timeout_s`` the meter is declared lost and values turn Bad. Both transitions are
logged once, as is the recovery.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from gateway.clock import Clock
from gateway.config import MeterConfig, one_second_set, register_set
from gateway.errors import DataNotAvailable, GatewayError, ProtocolError, TransportError
from gateway.meter.bus import OWN_LINE, LineShare
from gateway.meter.feed import Mailbox, Outbox, delivery_of
from gateway.meter.model import (
    Diagnostics,
    EventRecord,
    LinkState,
    MeterInfo,
    ProfileData,
    Quality,
    Reading,
    Snapshot,
)
from gateway.obis import CATALOGUE, ONE_SECOND_SET_PRIORITY, Obis, ObisInfo
from gateway.streams import EVENT_LOG, READOUTS, Origin, Stream, StreamId, stream
from gateway.units import conversion_factor

log = logging.getLogger(__name__)

#: How far back the first profile / event readout goes.
INITIAL_PROFILE_SPAN = timedelta(days=1)
#: Share of the cycle the 1-second set and starving periodic work may use together.
SQUEEZE = 0.97
#: The shortest piece of a readout; the span adapts to what fits into a cycle, between
#: this and the stream's longest (``Stream.piece``).
PROFILE_PIECE_MIN = timedelta(minutes=15)
#: Seconds the listeners get, when the poller stops, to take what was posted to them.
DRAIN_S = 2.0
#: How far before the end of the last range read the next one starts (plus the clock deviation).
REREAD = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class CoreRead:
    """The last cycle's read of its core (the 1-second set): values, line seconds, bytes."""

    values: int
    seconds: float
    bytes: int


class LineStatsLike(Protocol):
    bytes_sent: int
    bytes_received: int


class MeterLink(Protocol):
    """What the poller needs from a protocol session (IEC 62056-21, DLMS/COSEM).

    ``batches`` tells whether :meth:`read_values` reads a whole set in one request
    (DLMS GET-WITH-LIST / SN multi-read); if not, the poller reads value by value, which
    lets it stop at the cycle's budget between two values.
    """

    @property
    def batches(self) -> bool: ...

    @property
    def stats(self) -> LineStatsLike: ...

    @property
    def answer_age_s(self) -> float:
        """Seconds since the meter took the values of its last answer (the answer's wire time)."""
        ...

    async def open(self) -> MeterInfo: ...

    async def read_value(self, obis: Obis) -> tuple[float, str]: ...

    async def read_values(self, objects: Sequence[Obis]) -> list[tuple[float, str] | DataNotAvailable]: ...

    async def read_clock(self, near: datetime) -> datetime:
        """The meter's clock as UTC; ``near`` (the gateway's time) picks the reading of a
        local time that has two or none (IEC 62056-21 gives no season flag)."""
        ...

    async def read_profile(self, profile: Stream, start: datetime, end: datetime) -> list[ProfileData]:
        """Entries of a load profile (``streams.PROFILES``) whose periods end in (start, end]."""
        ...

    async def read_events(self, start: datetime, end: datetime) -> list[EventRecord]: ...

    async def close(self) -> None: ...


#: The key of the snapshot in a listener's mailbox: a newer one replaces it under LATEST.
SNAPSHOT = "snapshot"


class PollerListener(Protocol):
    """A consumer of what the poller publishes. Its calls are delivered by a task of its
    own, in order; a ``delivery`` attribute of :class:`~gateway.meter.feed.Delivery`
    says whether it needs every snapshot (the default) or only the latest."""

    async def on_snapshot(self, snapshot: Snapshot) -> None: ...

    async def on_profile(self, meter_id: str, profile: ProfileData) -> None: ...

    async def on_events(self, meter_id: str, events: Sequence[EventRecord]) -> None: ...


@dataclass(slots=True)
class _ValueState:
    info: ObisInfo
    value: float | None = None
    unit: str = ""
    read_at: float | None = None  # clock.monotonic() of the last good read
    source_time: datetime | None = None
    refresh_s: float | None = None
    cost_s: float = 0.5  # measured seconds per read (EWMA); pessimistic until measured
    #: Why the meter cannot give this value (it has no such object, or another unit).
    unsupported: str = ""


class Work(enum.Enum):
    """The poller's periodic work besides the 1-second set."""

    #: The energy registers (all in one request on a batching link, else one per cycle).
    REGISTERS = "registers"
    #: The meter's clock, for the clock deviation.
    CLOCK = "clock"
    #: One piece of a queued profile or event-log range.
    READOUT_PIECE = "readout piece"
    #: Queue a readout's range (no line time of its own).
    READOUT = "readout"


@dataclass(slots=True)
class _Periodic:
    work: Work
    period_s: float
    due_at: float = 0.0
    cost_s: float = 1.0  # measured seconds per run (EWMA); pessimistic until measured
    measured: bool = False

    def starving(self, now: float, cycle_s: float) -> bool:
        """Overdue for so long that it must run even if the cycle overruns."""
        return now - self.due_at >= 5 * cycle_s


class Poller:
    """Owns one meter link; publishes a :class:`Snapshot` every cycle."""

    def __init__(
        self,
        config: MeterConfig,
        connect: Callable[[], Awaitable[MeterLink]],
        clock: Clock,
        listeners: Sequence[PollerListener] = (),
        *,
        budget_fraction: float = 0.9,
        core_fraction: float = 0.85,
        max_backoff_s: float = 10.0,
        initial_span: timedelta = INITIAL_PROFILE_SPAN,
        max_backfill: timedelta = timedelta(days=40),
        share: LineShare = OWN_LINE,
    ) -> None:
        self.config = config
        #: This meter's part of its line (a multi-drop bus shares it; :mod:`gateway.meter.bus`).
        self.share = share
        self._connect = connect
        self._clock = clock
        #: Where snapshots, profiles and events go: a mailbox per listener, never awaited.
        self.outbox = Outbox()
        self._listeners: list[tuple[PollerListener, Mailbox]] = []
        for listener in listeners:
            self.add_listener(listener)
        # On a shared line the poller plans with its slot of the cycle, not the whole.
        self._slot_s = config.cycle_s * share.fraction
        self._budget = budget_fraction * self._slot_s
        self._core_fraction = core_fraction
        self._core_budget = core_fraction * self._budget
        self._max_backoff = max_backoff_s
        self._initial_span = initial_span
        self._max_backfill = max_backfill
        order = one_second_set(config)
        by_obis = {i.obis: i for i in CATALOGUE}
        self._fast = [_ValueState(by_obis[o]) for o in order]
        self._registers = [_ValueState(i) for i in register_set(config)]
        self._values = {s.info.obis: s for s in [*self._fast, *self._registers]}
        self._rotation_starved = False
        self._register_next = 0
        self._register_round = 0.0
        self._cost_known = False
        self._periodic = [
            *([_Periodic(Work.REGISTERS, config.register_period_s)] if self._registers else []),
            _Periodic(Work.CLOCK, config.clock_period_s),
        ]
        # Readouts (no line time of their own): when due, their range is queued, and the
        # queue is read one piece per cycle as periodic work.
        periods = {Origin.PROFILE: config.profile_period_s, Origin.EVENT_LOG: config.event_period_s}
        self._readouts = {s.id: _Periodic(Work.READOUT, periods[s.origin]) for s in READOUTS}
        self._piece = _Periodic(Work.READOUT_PIECE, 60.0)
        self._piece_cost: dict[StreamId, float] = {}  # measured seconds per piece, per readout (EWMA)
        self._piece_span = {s.id: s.piece[0] for s in READOUTS}
        self._link: MeterLink | None = None
        self._info = MeterInfo()
        self._diag = Diagnostics(line_stations=share.stations, line_share=share.fraction)
        self._last_success: float | None = None
        self._failing = False
        self._failed_at = -1.0  # values read before this are not Good until read again
        self._started_at = 0.0
        #: When (clock monotonic) the last snapshot was published: every cycle, connected or
        #: not, so its age says whether the poll loop itself still turns (the watchdog's test).
        self.published_at: float | None = None
        self._polling_since: float | None = None
        self._lost_logged = False
        #: Per readout, the newest entry published (entries up to it are never published again).
        self._profile_cursor: dict[StreamId, datetime] = {}
        #: Per readout, the end of the last range read completely.
        self._read_until: dict[StreamId, datetime] = {}
        self._profile_pending: list[tuple[StreamId, datetime, datetime]] = []
        self.snapshot: Snapshot | None = None
        #: The last complete read of the cycle's core, for benchmarks and diagnostics.
        self.core_read: CoreRead | None = None
        self._snapshot_event = asyncio.Event()

    # -- public ------------------------------------------------------------------------------

    @property
    def diagnostics(self) -> Diagnostics:
        return self._diag

    def silent_s(self) -> float | None:
        """Seconds since the last snapshot (or since the poll loop started, before the
        first); None before it started."""
        since = self.published_at if self.published_at is not None else self._polling_since
        return None if since is None else self._clock.monotonic() - since

    @property
    def readouts_pending(self) -> int:
        """Profile / event-log ranges still to be read (the backfill after start or a gap)."""
        return len(self._profile_pending)

    def resume(self, readout: StreamId, last_entry: datetime) -> None:
        """Continue ``readout`` (a profile or the event log) after ``last_entry``, the newest
        one archived.

        The first readout then asks for everything after it (at most ``max_backfill``
        back), so a restart or an outage leaves no hole the meter can still fill, and
        entries up to ``last_entry`` are never published again.
        """
        if not stream(readout).readout:
            raise ValueError(f"{readout} is not read out of the meter")
        self._profile_cursor[readout] = last_entry
        self._read_until[readout] = last_entry

    async def wait_snapshot(self) -> Snapshot:
        """Wait for the next published snapshot (tests and adapters that need a fresh one)."""
        self._snapshot_event.clear()
        await self._snapshot_event.wait()
        assert self.snapshot is not None
        return self.snapshot

    def add_listener(self, listener: PollerListener) -> None:
        """Deliver what the poller publishes to ``listener`` too, as its ``delivery`` says."""
        name = f"meter {self.config.id}: {type(listener).__name__}"
        self._listeners.append((listener, self.outbox.add(name, delivery_of(listener))))

    async def run(self) -> None:
        """Poll forever; only cancellation ends it.

        A snapshot is published every cycle, connected or not, so staleness and loss
        show up on time even while re-opening the link is backing off. The listeners'
        deliveries run beside the cycle, as tasks of their own.
        """
        delivery = asyncio.create_task(self.outbox.run(), name=f"deliveries of meter {self.config.id}")
        try:
            await self._poll()
        finally:
            # What was posted is delivered before the deliveries stop (on a clean stop the
            # archive gets the last second too), unless a consumer hangs.
            drained = asyncio.ensure_future(self.outbox.drained())
            await asyncio.wait([drained], timeout=DRAIN_S)
            drained.cancel()
            delivery.cancel()
            await asyncio.wait([delivery])

    async def _poll(self) -> None:
        backoff = 1.0
        self._started_at = self._polling_since = self._clock.monotonic()
        retry_at = self._clock.monotonic()
        next_cycle = self._clock.monotonic() + self.share.offset_s(self.config.cycle_s)
        await self._clock.sleep_until(next_cycle)
        try:
            while True:
                async with self.share.turn():
                    started = self._clock.monotonic()
                    if self._link is None and started >= retry_at:
                        if await self._open():
                            backoff = 1.0
                        else:
                            retry_at = self._clock.monotonic() + backoff
                            backoff = min(backoff * 2, self._max_backoff)
                        next_cycle = started = self._clock.monotonic()
                    if self._link is not None:
                        await self._cycle(started)
                self._publish()
                next_cycle += self.config.cycle_s
                now = self._clock.monotonic()
                if now > next_cycle:
                    # Overran: count it and realign instead of bursting to catch up.
                    if self._link is not None:
                        self._diag = replace(self._diag, late_cycles=self._diag.late_cycles + 1)
                    next_cycle = now
                else:
                    await self._clock.sleep_until(next_cycle)
        finally:
            async with self.share.turn():  # the DISC is an exchange on the line too
                await self._drop_link()

    # -- link --------------------------------------------------------------------------------

    async def _open(self) -> bool:
        link: MeterLink | None = None
        try:
            link = await self._connect()
            self._info = await link.open()
        except (TransportError, ProtocolError) as err:
            self._failed(f"sign-on failed: {err}")
            if link is not None:
                await self._close(link)
            return False
        self._link = link
        self._cost_known = False
        for state in self._values.values():
            state.unsupported = ""  # a new session asks again: the meter may have been changed
        if link.batches:
            # One request reads the set: try it whole, the first request measures its cost.
            for state in self._values.values():
                state.cost_s = 0.0
        # Only values read count as success: a meter that signs on and then answers
        # nothing must still be declared lost.
        info = self._info
        log.info(
            "meter %s: %s %s %s, serial %s, %s at %d Bd",
            self.config.id, info.manufacturer, info.model, info.firmware, info.serial_number, info.protocol,
            info.baudrate,
        )  # fmt: skip
        self._diag = replace(self._diag, baudrate=self._info.baudrate)
        for p in (*self._periodic, *self._readouts.values()):
            p.due_at = self._clock.monotonic()  # registers, clock, profiles and events at once
        return True

    async def _close(self, link: MeterLink) -> None:
        try:
            await link.close()
        except GatewayError as err:  # a broken line cannot stop us from moving on
            log.debug("closing meter link: %s", err)

    async def _drop_link(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await self._close(link)

    def _failed(self, message: str) -> None:
        self._failed_at = self._clock.monotonic()
        self._diag = replace(self._diag, errors=self._diag.errors + 1, last_error=message)
        if not self._failing:
            log.warning("meter %s: %s", self.config.id, message)
        self._failing = True

    def _succeeded(self) -> None:
        self._last_success = self._clock.monotonic()
        if self._failing or self._lost_logged:
            if self._lost_logged:
                log.warning("meter %s is back", self.config.id)
            else:
                log.info("meter %s answers again", self.config.id)
        self._failing = False
        self._lost_logged = False

    def _link_state(self) -> LinkState:
        if self._last_success is None:
            return LinkState.LOST if self._lost() else LinkState.CONNECTING
        if self._lost():
            return LinkState.LOST
        return LinkState.DEGRADED if self._failing else LinkState.ONLINE

    def _lost(self) -> bool:
        since = self._last_success if self._last_success is not None else self._started_at
        lost = self._failing and self._clock.monotonic() - since >= self.config.loss_timeout_s
        if lost and not self._lost_logged:
            log.error("meter %s lost: no answer for %.0f s", self.config.id, self.config.loss_timeout_s)
            self._lost_logged = True
        return lost

    # -- one cycle ---------------------------------------------------------------------------

    def _plan(self, now: float) -> tuple[list[_ValueState], list[_Periodic], list[_ValueState]]:
        """Split this cycle's work into core values, due periodic work (in order) and the rotation."""
        for readout_id, readout in self._readouts.items():
            if readout.due_at <= now:
                self._queue_range(readout_id)
                readout.due_at = now + readout.period_s
        due = [p for p in self._periodic if p.due_at <= now]
        if self._profile_pending:
            # What the next piece costs depends on which readout it belongs to.
            # A readout not measured yet is guessed from the others; the very first one as
            # the whole budget on a value-by-value link (an ASCII profile answer is long),
            # as the time a full core leaves free on a batching one (a binary DLMS piece
            # is short, and guessing the whole budget would cost the 1-second set a cycle).
            batches = self._link is not None and self._link.batches
            untried = self._budget - self._core_budget if batches else self._budget / 1.5
            guess = 1.5 * max(self._piece_cost.values(), default=untried)
            self._piece.cost_s = self._piece_cost.get(self._profile_pending[0][0], guess)
            due.append(self._piece)
        starving = [p for p in due if p.starving(now, self.config.cycle_s)]
        # Starving work first, the longest waiting; otherwise the most overdue relative to
        # its own period: registers (5 s) before a profile piece that may wait a cycle.
        due.sort(key=lambda p: (now - p.due_at) / max(p.period_s, 1.0), reverse=True)
        if starving:
            first = min(starving, key=lambda p: p.due_at)
            due.remove(first)
            due.insert(0, first)
        periodic = due[0] if due else None
        # Leave room for at least one more read, so the rotation and periodic work never
        # starve behind a core that fills the cycle on a slow line.
        spare = max((v.cost_s for v in self._fast if not v.unsupported), default=0.0)
        core_budget = min(self._core_budget, self._budget - spare)
        skip = False
        fast = [v for v in self._fast if not v.unsupported]
        if periodic is not None and periodic.starving(now, self.config.cycle_s):
            # Make room: the core gives way rather than the periodic work never running -
            # but not the 1-second set if it and the work fit into the cycle together;
            # if not even one value fits beside it, the cycle is skipped, and counted.
            essential = sum(v.cost_s for v in fast if v.info.priority <= ONE_SECOND_SET_PRIORITY)
            keep = essential if essential + periodic.cost_s <= SQUEEZE * self._slot_s else 0.0
            core_budget = min(core_budget, max(self._budget - periodic.cost_s, keep))
            skip = any(v.cost_s > core_budget for v in fast[:1])
        core: list[_ValueState] = []
        spent = 0.0
        for state in () if skip else fast:
            if core and spent + state.cost_s > core_budget:
                break
            core.append(state)
            spent += state.cost_s
        if skip:
            self._diag = replace(self._diag, skipped_cycles=self._diag.skipped_cycles + 1)
        # Rotation: least recently read first (never read first, in priority order), which
        # stays fair however the core's size changes from cycle to cycle.
        rest = sorted(fast[len(core) :], key=lambda v: -1.0 if v.read_at is None else v.read_at)
        return core, due, rest

    async def _cycle(self, started: float) -> None:
        link = self._link
        assert link is not None
        before = link.stats.bytes_sent + link.stats.bytes_received
        core, periodics, rotation = self._plan(started)
        periodic = periodics[0] if periodics else None
        ok = True
        t0, bytes0 = self._clock.monotonic(), link.stats.bytes_sent + link.stats.bytes_received
        if link.batches:
            ok = await self._read_batch(link, core)
        else:
            for state in core:
                if not (ok := await self._read_value(link, state)):
                    break
        if ok and core:
            self.core_read = CoreRead(
                len(core),
                self._clock.monotonic() - t0,
                link.stats.bytes_sent + link.stats.bytes_received - bytes0,
            )
        # The spare time alternates: when the rotation got nothing last cycle, it goes
        # before periodic work that is not starving yet.
        rotation_first = (
            periodic is not None
            and self._rotation_starved
            and not periodic.starving(started, self.config.cycle_s)
        )
        rotated = 0
        if ok and rotation_first:
            ok, rotated = await self._rotate(link, rotation, started)
        for n, item in enumerate(periodics if ok else ()):
            # The first may overrun when starving; the others only run in the time left.
            elapsed = self._clock.monotonic() - started
            if elapsed + item.cost_s > self._budget and not (
                n == 0 and item.starving(started, self.config.cycle_s)
            ):
                continue
            t0 = self._clock.monotonic()
            ok = await self._periodic_work(link, item)
            cost = self._clock.monotonic() - t0
            item.cost_s = 0.7 * item.cost_s + 0.3 * cost if item.measured else cost
            item.measured = True
            if not ok:
                break
        if ok and not rotation_first:
            ok, rotated = await self._rotate(link, rotation, started)
        self._rotation_starved = bool(rotation) and rotated == 0
        if not ok:
            await self._drop_link()
        self._diag = replace(
            self._diag,
            cycles=self._diag.cycles + 1,
            cycle_duration_s=self._clock.monotonic() - started,
            bytes_per_cycle=link.stats.bytes_sent + link.stats.bytes_received - before,
        )

    async def _rotate(self, link: MeterLink, rotation: list[_ValueState], started: float) -> tuple[bool, int]:
        """Read rotating values while the cycle's budget lasts; (link still good, values read)."""
        rotated = 0
        if link.batches:
            # One request for as many as fit into what is left of the budget.
            elapsed = self._clock.monotonic() - started
            batch = []
            for state in rotation:
                elapsed += state.cost_s
                if elapsed > self._budget:
                    break
                batch.append(state)
            return await self._read_batch(link, batch), len(batch)
        for state in rotation:
            if self._clock.monotonic() - started + state.cost_s > self._budget:
                break
            if not await self._read_value(link, state):
                return False, rotated
            rotated += 1
        return True, rotated

    async def _read_value(self, link: MeterLink, state: _ValueState) -> bool:
        t0 = self._clock.monotonic()
        try:
            value, unit = await link.read_value(state.info.obis)
        except DataNotAvailable as err:
            self._unsupported(state, f"the meter has no object {state.info.obis.short} ({err})")
            return True  # the line is fine
        except (TransportError, ProtocolError) as err:
            self._failed(f"reading {state.info.obis.short}: {err}")
            return False
        cost = self._clock.monotonic() - t0
        self._first_request(cost, cost)
        self._accept(state, value, unit, cost, link.answer_age_s)
        return True

    async def _read_batch(self, link: MeterLink, states: Sequence[_ValueState]) -> bool:
        """Read ``states`` in one request; each value is charged its share of the time."""
        if not states:
            return True
        t0 = self._clock.monotonic()
        try:
            results = await link.read_values([s.info.obis for s in states])
        except (TransportError, ProtocolError) as err:
            self._failed(f"reading {len(states)} values ({states[0].info.obis.short}, ...): {err}")
            return False
        cost = self._clock.monotonic() - t0
        share = cost / len(states)
        self._first_request(cost, share)
        age = link.answer_age_s
        for state, result in zip(states, results, strict=True):
            if isinstance(result, DataNotAvailable):
                self._unsupported(state, f"the meter has no object {state.info.obis.short} ({result})")
            else:
                self._accept(state, *result, share, age)
        return True

    def _first_request(self, request_s: float, per_value_s: float) -> None:
        """The first request of a session tells what reads cost on this line.

        Periodic work not measured yet is guessed at one request of a batching link (the
        registers in one, the clock in one) or three reads (the IEC 62056-21 clock), not at
        the pessimistic start value: that would make it wait until it starves and then
        cost the 1-second set a cycle.
        """
        if self._cost_known:
            return
        self._cost_known = True
        for other in self._values.values():
            other.cost_s = per_value_s
        batches = self._link is not None and self._link.batches
        for item in self._periodic:
            if not item.measured:
                item.cost_s = request_s if batches else 3 * request_s

    def _accept(self, state: _ValueState, value: float, unit: str, cost: float, age: float) -> None:
        """Take a value just read into the state and the costs.

        ``cost``: line seconds it took; ``age``: seconds since the meter measured it (a long
        DLMS answer spends a fifth of a second on the wire): the time of measurement is
        the SourceTimestamp, so that values and registers line up second by second.
        """
        t1 = self._clock.monotonic()
        factor = conversion_factor(unit or state.info.unit, state.info.unit)
        if factor is None:
            self._unsupported(state, f"{state.info.obis.short} comes in {unit!r}, not {state.info.unit!r}")
            return
        value *= factor
        state.cost_s = 0.8 * state.cost_s + 0.2 * cost if state.read_at else cost
        if state.read_at is not None:
            interval = t1 - state.read_at
            state.refresh_s = interval if state.refresh_s is None else 0.7 * state.refresh_s + 0.3 * interval
        state.value, state.unit, state.read_at = value, state.info.unit, t1
        state.source_time = self._clock.now() - timedelta(seconds=age)
        self._diag = replace(self._diag, last_good_read=state.source_time)
        self._succeeded()

    def _unsupported(self, state: _ValueState, why: str) -> None:
        """Take a value out of the schedule for this session, and say so once."""
        state.unsupported = why
        log.warning(
            "meter %s: %s; it is published as Bad (configure `values` to drop it)", self.config.id, why
        )

    async def _periodic_work(self, link: MeterLink, item: _Periodic) -> bool:
        now_mono = self._clock.monotonic()
        try:
            if item.work is Work.REGISTERS and link.batches:
                if not await self._read_batch(link, self._registers):
                    return False
            elif item.work is Work.REGISTERS:
                # One register per cycle keeps the cycle short; the round of all of them
                # repeats every period, counted from the round's first read.
                if self._register_next % len(self._registers) == 0:
                    self._register_round = now_mono
                state = self._registers[self._register_next % len(self._registers)]
                self._register_next += 1
                if not await self._read_value(link, state):
                    return False
                if self._register_next % len(self._registers):
                    return True  # stays due until the round is complete
                item.due_at = self._register_round + item.period_s
                return True
            elif item.work is Work.CLOCK:
                try:
                    meter_time = await link.read_clock(self._clock.now())
                except DataNotAvailable as err:
                    log.warning(
                        "meter %s: no clock to read (%s); deviation not monitored", self.config.id, err
                    )
                    self._periodic.remove(item)
                    return True
                deviation = (meter_time - self._clock.now()).total_seconds()
                self._diag = replace(self._diag, clock_deviation_s=deviation)
                self._succeeded()
            elif item.work is Work.READOUT_PIECE:
                if not self._profile_pending:
                    return True
                await self._read_profile_piece(link)
                if self._profile_pending:
                    item.due_at = now_mono  # due again next cycle, without seniority over others
                    return True
        except (TransportError, ProtocolError) as err:
            self._failed(f"{item.work.value}: {err}")
            return False
        item.due_at = now_mono + item.period_s
        return True

    def _queue_range(self, code: StreamId) -> None:
        """Queue the range from the last entry read to now, to be read in pieces."""
        now = self._clock.now()
        for n, (pending, start, until) in enumerate(self._profile_pending):
            if pending == code:
                # Still catching up from the last time: read on to now. A range queued at
                # a reconnect in the middle of a gap must not end there when the link
                # comes back (the hole would stay until the next period's readout).
                if until < now:
                    self._profile_pending[n] = (code, start, now)
                return
        start = now - self._initial_span
        if code in self._read_until:
            # Go back a little: the meter's clock may lag ours, so an entry stamped before
            # the last range's end may have been captured after we read it. The cursor
            # keeps what was published from being published again.
            lookback = REREAD + timedelta(seconds=abs(self._diag.clock_deviation_s or 0.0))
            start = self._read_until[code] - lookback
            if code in self._profile_cursor:
                start = max(start, self._profile_cursor[code])
            start = max(start, now - self._max_backfill)
        if start < now:
            if not self._profile_pending:
                self._piece.due_at = self._clock.monotonic()
            # Events (tampering, outages) go before the load profile backfill.
            position = 0 if code == EVENT_LOG.id else len(self._profile_pending)
            self._profile_pending.insert(position, (code, start, now))

    async def _read_profile_piece(self, link: MeterLink) -> None:
        """Read the next piece of the oldest pending profile range, sized to fit a cycle."""
        code, start, until = self._profile_pending[0]
        readout = stream(code)
        span = self._piece_span[code]
        end = min(start + span, until)
        t0 = self._clock.monotonic()
        if readout.origin is Origin.EVENT_LOG:
            await self._read_events(link, start, end)
            blocks = []
        else:
            blocks = await link.read_profile(readout, start, end)
        cost = self._clock.monotonic() - t0
        known = self._piece_cost.get(code)
        self._piece_cost[code] = cost if known is None else 0.7 * known + 0.3 * cost
        # Aim at the time the core leaves free in a cycle: halve or double the span. A
        # full core leaves budget - core budget; a batching link's one request often less.
        target = self._budget - self._core_budget
        if link.batches and self.core_read is not None:
            target = max(target, self._budget - self.core_read.seconds - 0.1)
        if cost > target:
            self._piece_span[code] = max(span / 2, PROFILE_PIECE_MIN)
        elif cost < target / 2.5:
            self._piece_span[code] = min(span * 2, readout.piece[1])
        if end >= until:
            self._profile_pending.pop(0)
        else:
            self._profile_pending[0] = (code, end, until)
        self._succeeded()
        cursor = self._profile_cursor.get(code)
        for block in blocks:
            fresh = tuple(e for e in block.entries if cursor is None or e.end > cursor)
            if not fresh:
                continue
            self._profile_cursor[code] = max(e.end for e in fresh)
            cursor = self._profile_cursor[code]
            data = replace(block, entries=fresh)
            for listener, mailbox in self._listeners:
                mailbox.post(functools.partial(listener.on_profile, self.config.id, data))
        self._read_until[code] = end

    async def _read_events(self, link: MeterLink, start: datetime, end: datetime) -> None:
        cursor = self._profile_cursor.get(EVENT_LOG.id)
        events = [e for e in await link.read_events(start, end) if cursor is None or e.time > cursor]
        if events:
            self._profile_cursor[EVENT_LOG.id] = max(e.time for e in events)
            for listener, mailbox in self._listeners:
                mailbox.post(functools.partial(listener.on_events, self.config.id, events))

    # -- publish -----------------------------------------------------------------------------

    def _quality(self, state: _ValueState, link_state: LinkState) -> Quality:
        if state.unsupported:
            return Quality.UNSUPPORTED
        if state.read_at is None:
            return Quality.BAD if link_state is LinkState.LOST else Quality.WAITING
        if link_state is LinkState.LOST:
            return Quality.BAD
        if link_state is LinkState.DEGRADED or self._link is None or state.read_at <= self._failed_at:
            return Quality.UNCERTAIN
        return Quality.GOOD

    def _publish(self) -> None:
        link_state = self._link_state()
        self._diag = replace(self._diag, link=link_state)
        readings = {
            obis: Reading(
                obis=obis,
                value=state.value,
                unit=state.unit or state.info.unit,
                source_time=state.source_time,
                quality=self._quality(state, link_state),
                refresh_s=state.refresh_s,
            )
            for obis, state in self._values.items()
        }
        self.snapshot = Snapshot(self.config.id, self._clock.now(), readings, self._diag, self._info)
        self.published_at = self._clock.monotonic()
        for listener, mailbox in self._listeners:
            mailbox.post(functools.partial(listener.on_snapshot, self.snapshot), key=SNAPSHOT)
        self._snapshot_event.set()
