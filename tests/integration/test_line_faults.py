"""Issue 7: fault injection on a garbled line and a meter that reboots.

The gateway reaches the simulated meter through :class:`~tests.support.garbled_line.GarbledLine`,
a TCP proxy whose knobs corrupt or drop bytes, silence the line or cut the connection.
The meter runs beside the gateway on the same :class:`ScaledClock` (real speed); jumping
that clock lets a minute or a load-profile period pass at once.

For every fault the tests show what a user relies on:

* the gateway keeps running: the same OPC UA session reads on, snapshots keep coming, no
  exception escapes into the log (a crashed poller would be restarted with one);
* the state is reported precisely: values UncertainLastUsableValue at the first failed
  exchange (the last value kept), BadCommunicationError once the meter is lost,
  ``Diagnostics/LinkState`` degraded / lost / online, ``LastError`` naming the fault in
  the protocol's terms, ``CommunicationErrors`` counting each failed exchange once;
* reconnecting backs off: spaced, growing attempts, never more than one per cycle;
* nothing stored is lost or damaged: every archive file written before the fault is a
  byte-exact prefix of the file afterwards, every line parses, records are in increasing
  time order with no duplicates and no absurd times, the load profiles are complete period
  by period up to the end of the fault (read back from the meter) and equal the meter's
  own buffer, the event log equals the meter's (events logged during the fault included),
  and OPC UA HistoryRead returns what the files hold;
* once the line is clean, every value read in the first cycle the meter answers is Good
  (the whole 1-second set among them), and no value not read again is.

The line faults run on the demo's DLMS/COSEM LN at 9600 Bd and on IEC 62056-21 mode C at
19200 Bd (conftest.MODES; reading :data:`IEC_VALUES`), each on a gateway of its own, both at
once in every test (their line time overlaps). The two gateways live for the whole file, so
the archive checks of a fault also cover the faults before it. The meter's reboot with a
reset clock comes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua import ua

from gateway.archive.files import ArchiveReader, Record
from gateway.archive.recorder import ArchiveRecorder
from gateway.clock import ScaledClock
from gateway.config import one_second_set
from gateway.meter.model import LinkState, Quality, Snapshot
from gateway.meter.poller import Poller
from gateway.obis import CATALOGUE, Obis, Refresh
from gateway.simulator.physics import EventCode, ProfileStatus
from gateway.simulator.server import SimulatedMeter, simulator_from_config
from tests.support.garbled_line import GarbledLine
from tests.support.harness import Collector, Running, demo, running_gateway, subscribe
from tests.support.simulated_meter import expected_quality, modelled

pytestmark = pytest.mark.asyncio(loop_scope="module")

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PERIOD = timedelta(minutes=15)
HISTORY = timedelta(days=2)  # the simulated meter's own history (conftest.demo)
LOSS_TIMEOUT_S = 3.0
#: The first readout goes this far back: half an hour, read in one piece per profile.
BACKFILL_DAYS = 1 / 48
VOLTAGE = "meter1.1-0:32.7.0"
LINK = "meter1.Diagnostics.LinkState"
#: What the IEC 62056-21 gateway reads (one value per request): the voltages, currents,
#: active and reactive import power, power factor, frequency and the energy registers. With
#: all 27 values the profile pieces after each gap wait for room beside the rotation (5
#: cycles each) and the rotation takes ~10 s: the line faults do not depend on the set,
#: the file's run time does.
IEC_VALUES = (
    *(Obis.parse(f"1-0:{c}.7.0") for c in (32, 52, 72, 31, 51, 71, 1, 3, 13, 14)),
    *(i.obis for i in CATALOGUE if i.refresh is Refresh.REGISTER),
)
STREAMS = ("minute", "registers", "lp1", "lp2", "events", "pq10")


@dataclass
class Bench:
    """A gateway reading the simulated meter through a garbled line."""

    gw: Running
    sim: SimulatedMeter
    line: GarbledLine
    clock: ScaledClock
    mode: str

    @property
    def poller(self) -> Poller:
        return self.gw.gateway.pollers["meter1"]

    @property
    def recorder(self) -> ArchiveRecorder:
        return self.gw.gateway.recorders["meter1"]

    @property
    def reader(self) -> ArchiveReader:
        return self.recorder.archive.reader


@contextlib.asynccontextmanager
async def garbled_bench(mode: str, archive: Path) -> AsyncIterator[Bench]:
    """The demo gateway (``mode`` of conftest.MODES) whose meter URL is the garbled line.

    The meter is built from the demo's simulator section on the gateway's clock, as the
    gateway would build it, but started here, so that the line can sit between the two.
    """
    clock = ScaledClock(START)
    values = IEC_VALUES if mode == "iec" else ()
    config = demo(mode, loss_timeout_s=LOSS_TIMEOUT_S, response_timeout_s=0.5, values=values)
    meter = config.meters[0]
    assert meter.simulator is not None
    sim = simulator_from_config(meter.simulator, clock)
    await sim.start()
    line = GarbledLine(sim.host, sim.port, seed=7, clock=clock)
    await line.start()
    config = replace(
        config,
        meters=(replace(meter, url=line.url, simulator=None),),
        archive=replace(config.archive, path=str(archive), initial_backfill_days=BACKFILL_DAYS),
    )
    try:
        async with running_gateway(config, clock) as gw:
            yield Bench(gw, sim, line, clock, mode)
    finally:
        await line.stop()
        await sim.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def benches(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Bench]]:
    """One gateway per protocol for the whole file (a DLMS sign-on at 9600 Bd reads a 2 kB
    object list: 4.4 s a gateway need not spend for every test)."""
    async with contextlib.AsyncExitStack() as stack:
        yield {
            mode: await stack.enter_async_context(garbled_bench(mode, tmp_path_factory.mktemp(mode)))
            for mode in ("ln", "iec")
        }


async def on_each(benches: dict[str, Bench], run: Callable[[Bench], Awaitable[None]]) -> None:
    """``run`` on every gateway at once; a failure names its protocol."""

    async def labelled(b: Bench) -> None:
        try:
            await run(b)
        except Exception as err:
            err.add_note(f"protocol: {b.mode}")
            raise

    async with asyncio.TaskGroup() as tasks:
        for b in benches.values():
            tasks.create_task(labelled(b))


# -- waiting -----------------------------------------------------------------------------------


def online(s: Snapshot) -> bool:
    return s.diagnostics.link is LinkState.ONLINE


async def until(b: Bench, predicate: Callable[[Snapshot], bool], timeout: float) -> Snapshot:
    """The first published snapshot for which ``predicate`` holds."""
    async with asyncio.timeout(timeout):
        while not predicate(snapshot := await b.poller.wait_snapshot()):
            pass
    return snapshot


async def settled(b: Bench, timeout: float) -> Snapshot:
    """Online, the 1-second values as the meter gives them (Good), no readout pending and the
    archive written."""
    return await until(
        b,
        lambda s: (
            online(s)
            and all(s.readings[o].quality is expected_quality(o) for o in one_second_set(b.poller.config))
            and b.poller.readouts_pending == 0
            and b.recorder.idle.is_set()
        ),
        timeout,
    )


async def minute_archived(b: Bench) -> None:
    """Let the minute in progress end (clock jump) and wait until its record is on disk."""
    before = b.reader.last_time("minute") or EPOCH
    now = b.clock.now()
    b.clock.jump(60 - now.second - now.microsecond / 1e6 + 0.1)
    await until(
        b, lambda _: (b.reader.last_time("minute") or EPOCH) > before and b.recorder.idle.is_set(), 10
    )


async def still_serving(b: Bench, caplog: pytest.LogCaptureFixture) -> None:
    """The same OPC UA session reads on, and nothing crashed (a poller restarted after an
    exception, an archive write gone wrong) in this test."""
    assert await b.gw.client.nodes.server_state.read_value() == ua.ServerState.Running
    assert await b.gw.node(VOLTAGE).read_value() > 0
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def status_codes(collector: Collector, node: str) -> list[int]:
    return [v.StatusCode.value for v in collector.changes.get(node, [])]


# -- the archive -------------------------------------------------------------------------------


def last_period_end(t: datetime) -> datetime:
    return EPOCH + (t - EPOCH) // PERIOD * PERIOD


def files(b: Bench) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted((b.reader.root / "meter1").glob("*/*.csv"))}


def records(b: Bench) -> dict[str, list[Record]]:
    return {stream: list(b.reader.read(stream)) for stream in STREAMS}


def check_archive(b: Bench, before: dict[Path, bytes], lp_until: datetime) -> dict[str, list[Record]]:
    """What must hold of the archive after any fault; returns its records."""
    after = files(b)
    for path, content in before.items():
        assert after[path][: len(content)] == content, f"{path.parent.name}/{path.name} changed"
    found = records(b)
    for path, content in after.items():
        assert content.endswith(b"\n"), f"{path}: torn last line"
        lines = [x for x in content.split(b"\n")[:-1] if not x.startswith((b"#", b"time,"))]
        read = [r for r in found[path.parent.name] if r.time.date().isoformat() == path.stem]
        assert len(read) == len(lines), f"{path}: {len(lines) - len(read)} unreadable lines"
    now = b.clock.now()
    for stream, recs in found.items():
        times = [r.time for r in recs]
        assert all(START - HISTORY <= t <= now for t in times), f"{stream}: a time outside the meter's life"
        if stream == "events":  # two events of one second share a time stamp
            assert times == sorted(times)
            assert len(set(map(repr, recs))) == len(recs), "an event twice"
        else:
            assert all(x < y for x, y in itertools.pairwise(times)), f"{stream}: not increasing"
    # The load profiles: every period up to the end of the fault, as the meter has it.
    for stream in ("lp1", "lp2"):
        times = [r.time for r in found[stream]]
        assert times[-1] >= last_period_end(lp_until), f"{stream} ends at {times[-1]}, before {lp_until}"
        grid = [times[0] + k * PERIOD for k in range(len(times))]
        assert times == grid, f"{stream}: periods missing: {sorted(set(grid) - set(times))[:3]}"
    meter_lp1 = {e.end: e for e in b.sim.physics.load_profile_1}
    for rec in found["lp1"]:
        entry = meter_lp1[rec.time]
        assert rec.status == int(entry.status), rec.time
        as_sent = [round(v * 1e5) / 1e5 for v in (entry.a_plus, entry.a_minus, entry.r_plus, entry.r_minus)]
        assert rec.values == pytest.approx(as_sent, abs=1.1e-5), rec.time
    # The event log as the meter has it (to the second: DLMS stamps carry hundredths).
    archived = [(r.time.replace(microsecond=0), int(r.values[0] or 0)) for r in found["events"]]
    if archived:
        first, last = archived[0][0], archived[-1][0] + timedelta(seconds=1)
        logged = [
            (e.time.replace(microsecond=0), e.code) for e in b.sim.physics.events if first <= e.time < last
        ]
        assert sorted(archived) == sorted(logged)
    return found


async def history_matches(b: Bench, lp1: list[Record]) -> None:
    """OPC UA HistoryRead of the A+ channel returns what the archive holds."""
    start, end = lp1[0].time, lp1[-1].time + timedelta(seconds=1)
    values = await b.gw.node("meter1.P.01.1-0:1.29.0").read_raw_history(start, end, return_bounds=False)
    got = [(v.SourceTimestamp.replace(tzinfo=UTC), v.Value.Value) for v in values]
    assert got == [(r.time, r.values[0]) for r in lp1]


# -- one fault ---------------------------------------------------------------------------------


@dataclass
class Fault:
    """One fault on one gateway: how it starts, when it has shown, what it must show."""

    #: Turns the fault on (the line is cleaned with ``line.clear()`` afterwards).
    start: Callable[[Bench], None]
    #: Holds for the snapshot at which the fault has shown: (snapshot, connections opened
    #: since the fault began).
    shown: Callable[[Snapshot, int], bool]
    #: The meter must have been declared lost (values Bad) meanwhile.
    lost: bool
    #: Words every LastError during the fault contains one of.
    words: tuple[str, ...]


async def through(b: Bench, fault: Fault, caplog: pytest.LogCaptureFixture) -> list[Snapshot]:
    """Run ``fault`` on ``b`` and check everything a user relies on; return the snapshots
    published during the fault.

    Settle (with a minute record archived), start the fault while the meter logs a
    terminal cover opening, wait until it has shown, then clean the line while 15 minutes
    pass (a load-profile period ends during the fault), wait until the meter answers again
    and the readouts after the gap are archived, and check.
    """
    await settled(b, timeout=60)
    if b.reader.last_time("minute") is None:  # the faults before have left some
        await minute_archived(b)
    before = files(b)
    collector = await subscribe(b.gw, [VOLTAGE, LINK], period_ms=100)
    await collector.wait_for(lambda: ua.StatusCodes.Good in status_codes(collector, VOLTAGE), timeout=10)
    errors0, connections0 = b.poller.diagnostics.errors, b.line.stats.connections
    fault_minute = b.clock.now().replace(second=0, microsecond=0)
    began = b.clock.monotonic()
    seen: list[Snapshot] = []

    def shown(s: Snapshot) -> bool:
        seen.append(s)
        return fault.shown(s, b.line.stats.connections - connections0)

    fault.start(b)
    b.sim.advance()
    b.sim.physics.open_terminal_cover(opened := b.sim.now())
    await until(b, shown, timeout=30)
    b.sim.advance()
    b.sim.physics.close_terminal_cover(closed := b.sim.now())
    b.line.clear()
    ended = b.clock.monotonic()
    b.clock.jump(PERIOD.total_seconds())
    cleared_at = b.clock.now()
    back = await until(b, online, timeout=15)
    await settled(b, timeout=40)
    await collector.wait_for(lambda: status_codes(collector, VOLTAGE)[-1] == ua.StatusCodes.Good, timeout=5)
    await still_serving(b, caplog)

    # Each failed exchange counted once: every connection dropped (the one before the
    # fault, then each new one but the last, which is up) is one error.
    errors = b.poller.diagnostics.errors - errors0
    connections = b.line.stats.connections - connections0
    assert errors == connections >= 1
    assert not online(seen[-1])
    last_errors = {s.diagnostics.last_error for s in seen} - {""}
    assert last_errors
    assert all(any(w in e for w in fault.words) for e in last_errors), last_errors
    # Never more than one sign-on per cycle while the line was bad: no hot loop.
    during = [t for t in b.line.stats.connected_at[connections0:] if t < ended]
    assert len(during) <= (ended - began) / b.poller.config.cycle_s + 1, (during, began, ended)

    # What the client saw: the last usable value as such, Bad if lost, then Good again.
    statuses = status_codes(collector, VOLTAGE)
    uncertain = statuses.index(ua.StatusCodes.UncertainLastUsableValue)
    assert ua.StatusCodes.Good in statuses[:uncertain]
    # ... the last value read, with the time it was read (kept as long as nothing is read).
    kept = collector.changes[VOLTAGE]
    failing = [*itertools.takewhile(lambda v: not v.StatusCode.is_good(), kept[uncertain:])]
    stamps = [v.SourceTimestamp for v in [kept[uncertain - 1], *failing] if v.SourceTimestamp]
    assert stamps == sorted(stamps)
    if fault.lost:  # nothing was read meanwhile
        frozen = {(v.Value.Value, v.SourceTimestamp) for v in failing if v.StatusCode.is_uncertain()}
        assert frozen == {(kept[uncertain].Value.Value, kept[uncertain].SourceTimestamp)}
    links = [v.Value.Value for v in collector.changes.get(LINK, [])]
    assert links[0] == "online"
    assert links[-1] == "online"
    assert "degraded" in links
    if fault.lost:
        assert LinkState.LOST in [s.diagnostics.link for s in seen]
        assert "lost" in links
        assert ua.StatusCodes.BadCommunicationError in statuses[uncertain:]

    # Good within the cycle the meter answered: every value read in it is Good, the whole
    # 1-second set (what the meter has of it) among them; none of the others is (they are
    # the last usable values until read again). Values read before the line was clean are
    # 15 minutes older: the clock jumped.
    read_again = [
        r for r in back.readings.values() if r.source_time and r.source_time > cleared_at - PERIOD / 2
    ]
    assert {r.quality for r in read_again} == {Quality.GOOD}
    assert all(r.quality is not Quality.GOOD for r in back.readings.values() if r not in read_again)
    assert all(back.readings[o] in read_again for o in one_second_set(b.poller.config) if modelled(o))

    found = check_archive(b, before, lp_until=cleared_at)
    await history_matches(b, found["lp1"])
    # The cover opened and closed while the line was bad: both events are archived.
    events = {(r.time.replace(microsecond=0), int(r.values[0] or 0)) for r in found["events"]}
    assert (opened.replace(microsecond=0), EventCode.TERMINAL_COVER_OPENED) in events
    assert (closed.replace(microsecond=0), EventCode.TERMINAL_COVER_CLOSED) in events
    if fault.lost:  # no minute record while the meter did not answer: nothing stale is archived
        stale = [r.time for r in found["minute"] if fault_minute < r.time < cleared_at - PERIOD / 2]
        assert stale == []
    return seen


# -- the line faults ---------------------------------------------------------------------------


def corrupt(b: Bench) -> None:
    b.line.corrupt = 0.01


def drop(b: Bench) -> None:
    b.line.drop = 0.01


def silence(b: Bench) -> None:
    b.line.silent = True


#: How the protocols name a damaged or incomplete exchange.
DAMAGED = (
    "did not answer within",  # a damaged request: the meter ignores it (HDLC FCS, IEC garbage)
    "FCS",
    "HCS",
    "BCC",
    "frame",
    "invalid byte",
    "identification",
    "not three letters",
    "expected",
    "is not a number",
)


def damaging(b: Bench, start: Callable[[Bench], None]) -> Fault:
    """A damaging line: DLMS never gets 2 kB of object list through it (the meter is lost);
    IEC 62056-21 often signs on between damaged answers (shown after two new sign-ons)."""
    if b.mode == "ln":
        return Fault(start, lambda s, _: s.diagnostics.link is LinkState.LOST, True, DAMAGED)
    return Fault(start, lambda s, n: n >= 2 and not online(s), False, DAMAGED)


async def test_corrupted_bytes_are_named_and_nothing_stored_is_harmed(
    benches: dict[str, Bench], caplog: pytest.LogCaptureFixture
) -> None:
    """1 % of the bytes in both directions get one bit flipped."""

    async def run(b: Bench) -> None:
        await through(b, damaging(b, corrupt), caplog)
        assert b.line.stats.corrupted > 0

    await on_each(benches, run)


async def test_dropped_bytes_are_named_and_nothing_stored_is_harmed(
    benches: dict[str, Bench], caplog: pytest.LogCaptureFixture
) -> None:
    """1 % of the bytes in both directions silently disappear."""

    async def run(b: Bench) -> None:
        await through(b, damaging(b, drop), caplog)
        assert b.line.stats.dropped > 0

    await on_each(benches, run)


async def test_long_silence_backs_off_is_lost_and_recovers(
    benches: dict[str, Bench], caplog: pytest.LogCaptureFixture
) -> None:
    """The line carries nothing for longer than the loss timeout, then everything again."""

    async def run(b: Bench) -> None:
        first = len(b.line.stats.connected_at)
        # Until the meter is lost and the gateway has tried to sign on three times.
        fault = Fault(
            silence, lambda s, n: s.diagnostics.link is LinkState.LOST and n >= 3, True, ("did not answer",)
        )
        await through(b, fault, caplog)
        assert b.line.stats.swallowed > 0
        # The first new sign-on comes at the next cycle, then each failed one is followed by
        # a growing pause (1 s, 2 s, ... 10 s): spaced attempts, not a hot loop.
        attempts = b.line.stats.connected_at[first : first + 3]
        gaps = [y - x for x, y in itertools.pairwise(attempts)]
        assert gaps[0] >= 1.0, gaps
        assert gaps[1] >= 2.0, gaps
        assert gaps[1] > gaps[0], gaps

    await on_each(benches, run)


async def test_cut_in_the_middle_of_an_answer_reconnects(
    benches: dict[str, Bench], caplog: pytest.LogCaptureFixture
) -> None:
    """The line drops the TCP connection while the meter is answering."""

    async def run(b: Bench) -> None:
        cutting: list[asyncio.Task[int]] = []

        def cut_mid_answer(b: Bench) -> None:
            async def when_answering() -> int:
                received = b.line.stats.to_gateway
                await b.line.wait_for(lambda st: st.to_gateway > received, timeout=5)
                return b.line.cut()

            cutting.append(asyncio.create_task(when_answering()))

        await through(
            b, Fault(cut_mid_answer, lambda s, _: not online(s), False, ("closed by peer",)), caplog
        )
        assert await cutting[0] == 1  # the one connection there was

    await on_each(benches, run)


async def test_damage_the_check_character_cannot_see_is_read_again_not_archived(
    benches: dict[str, Bench], caplog: pytest.LogCaptureFixture
) -> None:
    """IEC 62056-21's check character is an XOR of the message: two flips of one bit leave it
    unchanged (and pyserial leaves a UART's parity check off). A load-profile answer so
    damaged that its periods end in 2036 must not enter the archive, where records only go
    forward: one period ten years ahead would keep out every later one, after a restart too
    (the readout resumes from the archive's last entry). It is a damaged answer, named and
    read again: the archive stays complete."""
    b = benches["iec"]
    await settled(b, timeout=60)
    before = files(b)
    errors0 = b.poller.diagnostics.errors
    damaged: list[bytes] = []

    def year_and_status(data: bytes) -> bytes:
        at = data.find(b"P.01(2")
        status = data.find(b")(", at) + 3
        if at < 0 or status < 3 or status >= len(data) or damaged:
            return data
        out = bytearray(data)
        out[at + 6] ^= 0x01  # P.01(ZYYMMDDhhmmss): the tens of the year, 2 -> 3
        out[status] ^= 0x01  # the status word (00): 0 -> 1, the same bit
        damaged.append(bytes(out))
        return bytes(out)

    b.line.tamper = year_and_status
    b.clock.jump(PERIOD.total_seconds())  # a period ends: the next readout brings it
    refused = await until(b, lambda _: bool(damaged) and b.poller.diagnostics.errors > errors0, timeout=15)
    b.line.tamper = None
    assert b"P.01(2360" in damaged[0]
    assert "after the end of the range asked for" in refused.diagnostics.last_error
    await settled(b, timeout=30)
    assert b.poller.diagnostics.errors == errors0 + 1
    found = check_archive(b, before, lp_until=b.clock.now())
    assert found["lp1"][-1].time == last_period_end(b.clock.now())
    await still_serving(b, caplog)


# -- the meter reboots with its clock set back -------------------------------------------------


async def test_meter_reboot_with_clock_set_back(
    benches: dict[str, Bench], caplog: pytest.LogCaptureFixture
) -> None:
    """The meter loses its supply for half an hour and comes back with its clock an hour slow.

    A metering engineer expects: the outage shown (Uncertain, Bad, LinkState lost); the
    meter's power-down archived at its time; the periods of the outage in the load profiles,
    flagged power-down, without energy where the supply was off for the whole period; the
    clock deviation published as soon as the meter answers again; the live values Good
    again (their time stamps are the gateway's); nothing the meter stamps with its wrong
    clock written into the archive (no period or event twice, out of order or at an
    impossible time); what was stored stays as it was.
    """
    slow_by = timedelta(hours=1)

    async def run(b: Bench) -> None:
        await reboot(b, slow_by, caplog)

    await on_each(benches, run)


async def reboot(b: Bench, slow_by: timedelta, caplog: pytest.LogCaptureFixture) -> None:
    await settled(b, timeout=60)
    if b.reader.last_time("minute") is None:
        await minute_archived(b)
    before = files(b)
    stored = records(b)
    collector = await subscribe(b.gw, [VOLTAGE, LINK], period_ms=100)
    await collector.wait_for(lambda: ua.StatusCodes.Good in status_codes(collector, VOLTAGE), timeout=10)

    down_at = b.sim.now()
    await b.sim.power_off()
    lost = await until(b, lambda s: s.diagnostics.link is LinkState.LOST and b.line.stats.refused >= 2, 20)
    assert "closed by peer" in lost.diagnostics.last_error
    b.clock.jump(2 * PERIOD.total_seconds())  # half an hour without supply
    on_at = b.clock.now()
    await b.sim.power_on(clock=on_at - slow_by)
    back = await until(b, online, timeout=15)
    assert all(back.readings[o].quality is expected_quality(o) for o in one_second_set(b.poller.config))
    deviated = await until(b, lambda s: (s.diagnostics.clock_deviation_s or 0) < -60, timeout=10)
    assert deviated.diagnostics.clock_deviation_s == pytest.approx(-slow_by.total_seconds(), abs=5)
    assert await b.gw.node("meter1.Diagnostics.ClockDeviation").read_value() == pytest.approx(
        -slow_by.total_seconds(), abs=5
    )
    await settled(b, timeout=40)
    # A quarter of an hour on: the slow clock closes a period stamped an hour ago, which
    # the next readout (an hour and 2 minutes back, for the deviation) gets as well.
    b.clock.jump(PERIOD.total_seconds())
    await until(b, lambda _: b.poller.readouts_pending > 0, timeout=5)
    await settled(b, timeout=40)
    meter_lp1 = b.sim.physics.load_profile_1
    assert any(y.end <= x.end for x, y in itertools.pairwise(meter_lp1))  # the meter's buffer is out of order
    await still_serving(b, caplog)
    statuses = status_codes(collector, VOLTAGE)
    uncertain = statuses.index(ua.StatusCodes.UncertainLastUsableValue)
    assert ua.StatusCodes.BadCommunicationError in statuses[uncertain:]
    assert statuses[-1] == ua.StatusCodes.Good

    after = files(b)
    for path, content in before.items():
        assert after[path][: len(content)] == content, f"{path.parent.name}/{path.name} changed"
    found = records(b)
    now = b.clock.now()
    for stream, recs in found.items():
        times = [r.time for r in recs]
        assert times[: len(stored[stream])] == [r.time for r in stored[stream]], stream
        assert all(START - HISTORY <= t <= now for t in times), f"{stream}: a time outside the meter's life"
        if stream == "events":
            assert times == sorted(times)
        else:
            assert all(x < y for x, y in itertools.pairwise(times)), f"{stream}: not increasing"
    # The load profiles go on period by period up to the supply's return, and the period
    # the clock setting cut short (stamped with its regular end); the periods of the
    # outage are there, flagged, with no energy in those entirely without supply.
    for stream in ("lp1", "lp2"):
        times = [r.time for r in found[stream]]
        assert times == [times[0] + k * PERIOD for k in range(len(times))], stream
        assert times[-1] == last_period_end(on_at) + PERIOD, stream
    outage = [r for r in found["lp1"] if r.time > down_at]
    assert all((r.status or 0) & ProfileStatus.POWER_DOWN for r in outage)
    assert (outage[-1].status or 0) & ProfileStatus.CLOCK_ADJUSTED
    without_supply = [r for r in outage[:-1] if r.time - PERIOD >= down_at]
    assert without_supply
    assert all(r.values == (0.0, 0.0, 0.0, 0.0) for r in without_supply)
    await history_matches(b, found["lp1"])
    # The power-down is archived at the meter's time; nothing stamped by the slow clock.
    new_events = [(r.time, int(r.values[0] or 0)) for r in found["events"][len(stored["events"]) :]]
    assert [c for t, c in new_events if abs((t - down_at).total_seconds()) < 1] == [EventCode.POWER_DOWN]
    assert all(t >= down_at.replace(microsecond=0) for t, _ in new_events), new_events
    # Register samples and minute records carry the gateway's time: the outage has none,
    # and no register went backwards.
    for stream in ("minute", "registers"):
        assert [
            r.time
            for r in found[stream]
            if down_at + timedelta(minutes=1) < r.time < on_at - timedelta(minutes=1)
        ] == []
    for column in zip(*(r.values for r in found["registers"]), strict=True):
        read = [v for v in column if v is not None]
        assert read == sorted(read), "a register went backwards"
