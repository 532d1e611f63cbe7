"""The poller's scheduling and availability logic on a manual clock with a scripted link.

The link is a fake (the protocol and the line are tested elsewhere with the real
simulator); every read advances the manual clock by what it would cost on the wire, so
hours of polling take milliseconds and every timing is exact.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.clock import ManualClock
from gateway.config import MeterConfig
from gateway.errors import DataNotAvailable, MeterTimeout
from gateway.meter.feed import Delivery, Mailbox
from gateway.meter.model import (
    EventRecord,
    LinkState,
    MeterInfo,
    ProfileData,
    ProfileEntry,
    Quality,
    Snapshot,
)
from gateway.meter.poller import Poller
from gateway.obis import CATALOGUE, Obis, Refresh
from gateway.streams import Stream, StreamId

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FAST = [i.obis for i in sorted(CATALOGUE, key=lambda i: i.priority) if i.refresh is Refresh.SECOND]


@dataclass
class Stats:
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass
class FakeLink:
    """A meter link whose reads cost ``cost`` clock seconds; ``down`` makes everything fail."""

    clock: ManualClock
    cost: float = 0.02
    down: bool = False
    reads_fail: bool = False  # signs on, then answers no read
    missing: frozenset[Obis] = frozenset()
    units: dict[Obis, str] = field(default_factory=dict)
    opens: list[float] = field(default_factory=list)
    reads: list[tuple[float, Obis]] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    #: Read a whole set in one request (DLMS) costing ``cost`` + ``per_value`` each.
    batches: bool = False
    per_value: float = 0.01
    batch_sizes: list[int] = field(default_factory=list)
    answer_age_s: float = 0.0

    async def open(self) -> MeterInfo:
        self.opens.append(self.clock.monotonic())
        await self._spend(1.0, signing_on=True)
        return MeterInfo("LGz", "ZMD3104107", "54800102", "B40", "fake", 9600)

    async def _spend(self, seconds: float, *, signing_on: bool = False) -> None:
        if self.down or (self.reads_fail and not signing_on):
            self.clock.advance(0.5)
            raise MeterTimeout("meter did not answer within 0.50 s")
        self.clock.advance(seconds)
        self.stats.bytes_sent += 14
        self.stats.bytes_received += 20

    async def read_value(self, obis: Obis) -> tuple[float, str]:
        await self._spend(self.cost)
        if obis in self.missing:
            raise DataNotAvailable(f"meter answered '(ERROR)' to R5 {obis.short}")
        self.reads.append((self.clock.monotonic(), obis))
        return float(obis.c) + self.clock.monotonic() / 1000, self.units.get(obis, "")

    async def read_values(self, objects: Sequence[Obis]) -> list[tuple[float, str] | DataNotAvailable]:
        assert self.batches, "the poller must read value by value from a link that does not batch"
        await self._spend(self.cost + self.per_value * len(objects))
        self.batch_sizes.append(len(objects))
        out: list[tuple[float, str] | DataNotAvailable] = []
        for obis in objects:
            if obis in self.missing:
                out.append(DataNotAvailable(f"{obis}: object-undefined"))
            else:
                self.reads.append((self.clock.monotonic(), obis))
                out.append((float(obis.c) + self.clock.monotonic() / 1000, self.units.get(obis, "")))
        return out

    async def read_clock(self, near: datetime) -> datetime:
        assert near == self.clock.now(), "the poller gives its own time to read the meter's by"
        await self._spend(2 * self.cost)
        return self.clock.now() + timedelta(seconds=3)

    async def read_profile(self, profile: Stream, start: datetime, end: datetime) -> list[ProfileData]:
        await self._spend(self.cost * 3)
        first = start.replace(minute=start.minute - start.minute % 15, second=0, microsecond=0)
        ends = [first + timedelta(minutes=15 * k) for k in range(1, 200)]
        entries = tuple(ProfileEntry(e, 0, (1.0,)) for e in ends if start <= e <= end)
        return (
            [ProfileData(profile.id, ((Obis.parse("1-0:1.29.0"), "kWh"),), 900, entries)] if entries else []
        )

    async def read_events(self, start: datetime, end: datetime) -> list[EventRecord]:
        await self._spend(self.cost)
        return [EventRecord(start + timedelta(minutes=1), 40, 0)] if start < end else []

    async def close(self) -> None:
        pass


@dataclass
class Recorder:
    snapshots: list[Snapshot] = field(default_factory=list)
    profiles: list[ProfileData] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)

    async def on_profile(self, meter_id: str, profile: ProfileData) -> None:
        self.profiles.append(profile)

    async def on_events(self, meter_id: str, events: Sequence[EventRecord]) -> None:
        self.events.extend(events)


async def run_for(clock: ManualClock, seconds: float) -> None:
    """Let the poller run ``seconds`` of clock time: step from one sleeper's deadline to the next."""
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        for _ in range(20):  # let every ready task run up to its next sleep
            await asyncio.sleep(0)
        deadline = clock.next_deadline()
        assert deadline is not None, "the poller stopped sleeping on the clock"
        clock.advance(max(0.0, min(deadline, end) - clock.monotonic()))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def config(**overrides: object) -> MeterConfig:
    return replace(MeterConfig(id="m", url="fake://"), **overrides)  # type: ignore[arg-type]


async def started(poller: Poller) -> asyncio.Task[None]:
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cheap_line_reads_every_one_second_value_every_cycle(clock: ManualClock) -> None:
    link, rec = FakeLink(clock, cost=0.02), Recorder()
    poller = Poller(config(), lambda: _ready(link), clock, [rec])
    task = await started(poller)
    await run_for(clock, 30)
    await stop(task)
    last = rec.snapshots[-1]
    assert last.diagnostics.link is LinkState.ONLINE
    assert last.diagnostics.late_cycles == 0
    for obis in FAST:
        reading = last.readings[obis]
        assert reading.quality is Quality.GOOD
        assert reading.refresh_s == pytest.approx(1.0, abs=0.01), obis
    energy = [r for r in last.readings.values() if r.obis.d == 8]
    # Registers share the spare time with the first day's profile backfill: within 2 periods.
    assert all(r.quality is Quality.GOOD and r.refresh_s is not None and r.refresh_s <= 10.0 for r in energy)
    assert last.diagnostics.clock_deviation_s == pytest.approx(3.0)


async def test_slow_line_keeps_priorities_every_second_and_rotates_the_rest(clock: ManualClock) -> None:
    link, rec = FakeLink(clock, cost=0.1), Recorder()  # 27 values x 0.1 s cannot fit in 1 s
    poller = Poller(config(), lambda: _ready(link), clock, [rec])
    task = await started(poller)
    await run_for(clock, 120)
    await stop(task)
    last = rec.snapshots[-1]
    refresh = [last.readings[o].refresh_s for o in FAST]
    assert all(r is not None for r in refresh), "every value is read eventually"
    core = [r for r in refresh if r is not None and r < 1.05]
    assert 3 <= len(core) < len(FAST)
    assert refresh[: len(core)] == core, "the core is the highest-priority prefix"
    # The value at the core's edge joins it in cycles without periodic work; beyond it the
    # rest rotate.
    assert all(r is not None and r > 1.5 for r in refresh[len(core) + 1 :])
    assert last.diagnostics.late_cycles == 0


@dataclass
class SlowSubscriber(Recorder):
    """Takes ``cost`` clock seconds over each snapshot (a server notifying many clients
    over a slow network, a stalled disk), as a listener of ``delivery``."""

    clock: ManualClock | None = None
    cost: float = 2.0
    delivery: Delivery = Delivery.LATEST

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        assert self.clock is not None
        await self.clock.sleep(self.cost)
        await super().on_snapshot(snapshot)


@pytest.mark.parametrize("delivery", list(Delivery))
async def test_a_subscriber_taking_two_seconds_per_snapshot_makes_no_cycle_late_and_costs_no_line_time(
    clock: ManualClock, delivery: Delivery
) -> None:
    # A line that fills 0.9 s of each cycle (27 values x 0.04 s, plus profiles and registers).
    async def run(listeners: list[Recorder]) -> tuple[FakeLink, Poller]:
        link = FakeLink(clock, cost=0.04)
        poller = Poller(config(), lambda: _ready(link), clock, listeners)
        task = await started(poller)
        await run_for(clock, 120)
        await stop(task)
        return link, poller

    alone, quick = Recorder(), Recorder()
    link_alone, by_itself = await run([alone])
    slow = SlowSubscriber(clock=clock, delivery=delivery)
    link, poller = await run([quick, slow])
    assert poller.snapshot is not None
    assert by_itself.snapshot is not None
    diag = poller.snapshot.diagnostics
    assert diag.late_cycles == 0
    assert diag.skipped_cycles == by_itself.snapshot.diagnostics.skipped_cycles
    # The line carried exactly what it carries with no subscriber at all.
    assert [o for _, o in link.reads] == [o for _, o in link_alone.reads]
    assert all(poller.snapshot.readings[o].refresh_s == pytest.approx(1.0, abs=0.01) for o in FAST[:8])
    # The quick listener got every snapshot; the slow one one every 2 s.
    assert len(quick.snapshots) == len(alone.snapshots) >= 119
    assert 55 <= len(slow.snapshots) <= 61
    times = [s.time for s in slow.snapshots]
    assert times == sorted(times)
    (mailbox,) = [m for m in poller.outbox.mailboxes if "SlowSubscriber" in m.name]
    if delivery is Delivery.LATEST:
        # Each delivery is the newest snapshot there was when the last one was done with:
        # every second one of those published.
        published = [s.time for s in quick.snapshots]
        steps = {published.index(b) - published.index(a) for a, b in itertools.pairwise(times)}
        assert steps == {2}, steps
        assert mailbox.superseded >= 55
    else:
        # Every snapshot, in order, the rest waiting (a backlog within the mailbox's bound).
        assert times == [s.time for s in quick.snapshots[: len(times)]]
        assert mailbox.superseded == 0
        assert mailbox.pending >= 55


async def test_what_was_posted_is_delivered_when_the_poller_stops(clock: ManualClock) -> None:
    class Gated(Recorder):
        """Takes nothing until the gate opens (a disk that stalls for a while)."""

        def __init__(self) -> None:
            super().__init__()
            self.gate = asyncio.Event()

        async def on_snapshot(self, snapshot: Snapshot) -> None:
            await self.gate.wait()
            for _ in range(3):
                await asyncio.sleep(0)  # a write yields to the loop (worker thread, socket)
            await super().on_snapshot(snapshot)

    link, every, gated = FakeLink(clock, cost=0.02), Recorder(), Gated()
    poller = Poller(config(), lambda: _ready(link), clock, [every, gated])
    task = await started(poller)
    await run_for(clock, 5)
    assert gated.snapshots == []
    assert len(every.snapshots) >= 5
    task.cancel()  # a clean stop: the gate opens while the poller stops
    gated.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gated.snapshots == every.snapshots


def test_a_mailbox_keeps_records_replaces_states_and_drops_the_oldest_beyond_its_capacity(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[str] = []

    def call(text: str) -> Callable[[], Awaitable[None]]:
        async def deliver() -> None:
            got.append(text)

        return deliver

    latest = Mailbox("test listener", Delivery.LATEST, capacity=3)
    latest.post(call("s1"), key="snapshot")
    latest.post(call("r1"))
    latest.post(call("s2"), key="snapshot")
    latest.post(call("r2"))
    assert latest.superseded == 1
    assert latest.pending == 3  # r1, s2, r2: records stay in order
    with caplog.at_level(logging.ERROR, logger="gateway.meter.feed"):
        latest.post(call("r3"))
        latest.post(call("r4"))
    assert latest.dropped == 2
    assert latest.pending == 3
    assert ["test listener cannot keep up" in r.message for r in caplog.records] == [True]  # logged once

    async def deliver_all() -> None:
        task = asyncio.create_task(latest.run())
        await latest.drained()
        task.cancel()

    asyncio.run(deliver_all())
    assert got == ["r2", "r3", "r4"]


async def test_lost_meter_is_uncertain_then_bad_logged_once_and_recovers(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    link, rec = FakeLink(clock), Recorder()
    poller = Poller(config(loss_timeout_s=10.0), lambda: _ready(link), clock, [rec])
    task = await started(poller)
    await run_for(clock, 5)
    voltage = Obis.parse("1-0:32.7.0")
    good_value = rec.snapshots[-1].readings[voltage].value
    caplog.set_level(logging.INFO, logger="gateway.meter.poller")
    caplog.clear()
    link.down = True
    down_at = clock.monotonic()
    await run_for(clock, 1.5)
    uncertain = rec.snapshots[-1].readings[voltage]
    assert uncertain.quality is Quality.UNCERTAIN
    assert uncertain.value == good_value
    await run_for(clock, 30)
    bad_since = next(s.time for s in rec.snapshots if s.readings[voltage].quality is Quality.BAD)
    assert (bad_since - (T0 + timedelta(seconds=down_at))).total_seconds() == pytest.approx(10.0, abs=1.1)
    opens = [t for t in link.opens if t >= down_at]
    gaps = [b - a for a, b in itertools.pairwise(opens)]
    assert gaps == sorted(gaps), "re-opening backs off"
    assert max(gaps) <= 10.0 + 1.5
    link.down = False
    await run_for(clock, 15)
    assert rec.snapshots[-1].readings[voltage].quality is Quality.GOOD
    assert rec.snapshots[-1].diagnostics.link is LinkState.ONLINE
    messages = [r.getMessage() for r in caplog.records]
    assert sum("did not answer" in m for m in messages) == 1, messages
    assert sum(" lost" in m for m in messages) == 1
    assert sum("is back" in m for m in messages) == 1
    await stop(task)


async def test_profiles_are_read_in_pieces_each_entry_once(clock: ManualClock) -> None:
    link, rec = FakeLink(clock), Recorder()
    poller = Poller(config(profile_period_s=900.0), lambda: _ready(link), clock, [rec])
    task = await started(poller)
    await run_for(clock, 2 * 3600)
    await stop(task)
    p01 = [e.end for p in rec.profiles if p.stream is StreamId.LOAD_PROFILE_1 for e in p.entries]
    assert len(p01) == len(set(p01)), "no entry is published twice"
    assert p01 == sorted(p01)
    expected_first = T0 - timedelta(days=1) + timedelta(minutes=15)
    assert p01[0] == expected_first
    assert p01[-1] >= T0 + timedelta(hours=1, minutes=45)
    steps = {(b - a) for a, b in itertools.pairwise(p01)}
    assert steps == {timedelta(minutes=15)}, "the pieces join without gaps"
    assert rec.events, "the event log is read too"


async def _ready(link: FakeLink) -> FakeLink:
    return link


async def test_object_the_meter_lacks_is_unsupported_and_the_rest_stays_good(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    pf = Obis.parse("1-0:13.7.0")
    link, rec = FakeLink(clock, missing=frozenset({pf})), Recorder()
    poller = Poller(config(), lambda: _ready(link), clock, [rec])
    task = await started(poller)
    await run_for(clock, 20)
    await stop(task)
    last = rec.snapshots[-1]
    assert last.readings[pf].quality is Quality.UNSUPPORTED
    assert all(r.quality is Quality.GOOD for o, r in last.readings.items() if o != pf)
    assert len(link.opens) == 1, "the session is kept"
    assert sum("no object 13.7.0" in r.getMessage() for r in caplog.records) == 1
    assert sum(1 for _, o in link.reads if o == pf) == 0


async def test_a_new_session_asks_again_for_what_the_last_one_lacked(clock: ManualClock) -> None:
    pf = Obis.parse("1-0:13.7.0")
    link, rec = FakeLink(clock, missing=frozenset({pf})), Recorder()
    poller = Poller(config(), lambda: _ready(link), clock, [rec])
    task = await started(poller)
    await run_for(clock, 10)
    assert rec.snapshots[-1].readings[pf].quality is Quality.UNSUPPORTED
    # The meter is exchanged for one that has the object: the line drops and comes back.
    link.down, link.missing = True, frozenset()
    await run_for(clock, 5)
    link.down = False
    await run_for(clock, 20)
    await stop(task)
    assert len(link.opens) >= 2
    assert rec.snapshots[-1].readings[pf].quality is Quality.GOOD


async def test_meter_unit_is_converted_by_prefix_or_refused(clock: ManualClock) -> None:
    p_plus, voltage = Obis.parse("1-0:1.7.0"), Obis.parse("1-0:32.7.0")
    link, rec = FakeLink(clock, units={p_plus: "W", voltage: "A"}), Recorder()
    poller = Poller(config(), lambda: _ready(link), clock, [rec])
    task = await started(poller)
    await run_for(clock, 5)
    await stop(task)
    last = rec.snapshots[-1]
    raw = [t for t, o in link.reads if o == p_plus][-1]
    assert last.readings[p_plus].value == pytest.approx((1 + raw / 1000) / 1000)  # W -> kW
    assert last.readings[p_plus].unit == "kW"
    assert last.readings[voltage].quality is Quality.UNSUPPORTED


async def test_meter_that_signs_on_but_answers_nothing_is_declared_lost(clock: ManualClock) -> None:
    clock.advance(100_000)  # a monotonic clock far from zero, like the system's
    link, rec = FakeLink(clock, reads_fail=True), Recorder()
    poller = Poller(config(loss_timeout_s=10.0), lambda: _ready(link), clock, [rec])
    task = await started(poller)
    await run_for(clock, 5)
    assert rec.snapshots[-1].diagnostics.link is not LinkState.LOST, "not lost before the loss timeout"
    await run_for(clock, 10)
    await stop(task)
    assert rec.snapshots[-1].diagnostics.link is LinkState.LOST
    assert len(link.opens) >= 2, "sign-on keeps being retried"


async def test_failing_listener_does_not_stop_polling(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Recorder):
        async def on_snapshot(self, snapshot: Snapshot) -> None:
            raise RuntimeError("listener bug")

    link, rec = FakeLink(clock), Recorder()
    poller = Poller(config(), lambda: _ready(link), clock, [Broken(), rec])
    task = await started(poller)
    await run_for(clock, 5)
    await stop(task)
    assert len(rec.snapshots) >= 4
    assert any("meter m: Broken: on_snapshot failed" in r.getMessage() for r in caplog.records)


# -- links that read a whole set in one request (DLMS) --------------------------------------------


async def test_batch_link_reads_the_whole_one_second_set_in_one_request_every_cycle(
    clock: ManualClock,
) -> None:
    # 27 values at 0.1 s each would not fit value by value; one request of 0.1 + 27 x 0.01 s does.
    link, rec = FakeLink(clock, cost=0.1, per_value=0.01, batches=True), Recorder()
    poller = Poller(config(), lambda: _ready(link), clock, [rec])
    task = await started(poller)
    await run_for(clock, 60)
    await stop(task)
    last = rec.snapshots[-1]
    for obis in FAST:
        assert last.readings[obis].quality is Quality.GOOD
        assert last.readings[obis].refresh_s == pytest.approx(1.0, abs=0.01), obis
    assert link.batch_sizes.count(len(FAST)) >= 50, "one request carries the whole set"
    registers = [r for r in last.readings.values() if r.obis.d == 8]
    assert len(registers) == 4
    assert 4 in link.batch_sizes, "the registers come in one request too"
    assert all(r.quality is Quality.GOOD and r.refresh_s is not None and r.refresh_s <= 10 for r in registers)
    assert last.diagnostics.late_cycles == 0
    assert last.diagnostics.skipped_cycles == 0


async def test_batch_link_object_missing_from_the_set_is_unsupported_alone(clock: ManualClock) -> None:
    pf = Obis.parse("1-0:13.7.0")
    link, rec = FakeLink(clock, batches=True, missing=frozenset({pf})), Recorder()
    poller = Poller(config(), lambda: _ready(link), clock, [rec])
    task = await started(poller)
    await run_for(clock, 10)
    await stop(task)
    last = rec.snapshots[-1]
    assert last.readings[pf].quality is Quality.UNSUPPORTED
    assert all(r.quality is Quality.GOOD for o, r in last.readings.items() if o != pf)
    assert len(link.opens) == 1
    assert link.batch_sizes[0] == len(FAST), "the first request finds out"
    assert max(link.batch_sizes[1:]) == len(FAST) - 1, "the missing object is no longer asked for"


async def test_batch_link_failure_turns_values_uncertain_and_recovers(clock: ManualClock) -> None:
    link, rec = FakeLink(clock, batches=True), Recorder()
    poller = Poller(config(loss_timeout_s=10.0), lambda: _ready(link), clock, [rec])
    task = await started(poller)
    await run_for(clock, 5)
    link.down = True
    await run_for(clock, 1.5)
    assert all(rec.snapshots[-1].readings[o].quality is Quality.UNCERTAIN for o in FAST)
    link.down = False
    await run_for(clock, 5)
    await stop(task)
    assert all(rec.snapshots[-1].readings[o].quality is Quality.GOOD for o in FAST)


async def test_resumed_readouts_start_after_the_last_archived_entry(clock: ManualClock) -> None:
    """After a restart the gateway asks the meter for what came after its archive, no more,
    no less; a gap longer than ``max_backfill`` is filled from that far back only."""
    link, rec = FakeLink(clock), Recorder()
    poller = Poller(
        config(profile_period_s=900.0), lambda: _ready(link), clock, [rec], max_backfill=timedelta(days=3)
    )
    archived_p01 = T0 - timedelta(hours=5)  # five hours since the last archived period
    archived_p02 = T0 - timedelta(days=10)  # longer ago than max_backfill
    poller.resume(StreamId.LOAD_PROFILE_1, archived_p01)
    poller.resume(StreamId.LOAD_PROFILE_2, archived_p02)
    task = await started(poller)
    await run_for(clock, 1800)
    await stop(task)
    p01 = [e.end for p in rec.profiles if p.stream is StreamId.LOAD_PROFILE_1 for e in p.entries]
    p02 = [e.end for p in rec.profiles if p.stream is StreamId.LOAD_PROFILE_2 for e in p.entries]
    assert p01[0] == archived_p01 + timedelta(minutes=15)  # the first period not yet archived
    assert len(p01) == len(set(p01))
    assert {b - a for a, b in itertools.pairwise(p01)} == {timedelta(minutes=15)}
    assert p02[0] == T0 - timedelta(days=3) + timedelta(minutes=15)
