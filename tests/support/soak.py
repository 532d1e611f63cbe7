"""A simulated week of the whole gateway on a fast clock, with faults sprinkled in
(``tests/integration/test_soak.py`` and ``python -m bench soak``).

The gateway of ``make run`` — in-process simulated meter (DLMS LN at 9600 Bd), poller,
archive files, OPC UA server, web — runs on a :class:`~tests.support.virtual_time.VirtualTimeLoop`:
every wait on the clock is skipped, every byte on the line and every file write is real.
A fault plan (:data:`FAULTS`) disturbs the meter each day; afterwards the archive on disk
is read back and checked for completeness, and the process's memory blocks and asyncio
tasks at the end of the second day are compared with those at the end.

The week starts on Wednesday 2026-03-25 so that it crosses the change to summer time of
the market's zone (CET/CEST, Sunday 2026-03-29).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.app import Gateway
from gateway.archive.files import ArchiveReader
from gateway.clock import LoopClock
from gateway.config import GatewayConfig, demo_config
from gateway.simulator.physics import MeterClock
from gateway.simulator.server import SimulatedMeter
from tests.support.virtual_time import run_virtual

START = datetime(2026, 3, 25, tzinfo=UTC)
DAY = 86400.0
PERIOD = timedelta(minutes=15)
#: A RAM disk for the soak's files (:func:`soak_folder`), and the room it must have: a
#: week's archive is about 8 MB.
RAM_DISK = Path("/dev/shm")
RAM_DISK_ROOM = 256 * 2**20


@dataclass(frozen=True, slots=True)
class Fault:
    """One disturbance: at ``at_s`` (seconds after the start) for ``for_s`` seconds."""

    name: str
    at_s: float
    for_s: float
    #: Turns the fault on; returns what turns it off.
    apply: Callable[[SimulatedMeter], Awaitable[Callable[[], Awaitable[None]]]]


async def _silent(sim: SimulatedMeter) -> Callable[[], Awaitable[None]]:
    sim.faults.silent = True

    async def undo() -> None:
        sim.faults.silent = False

    return undo


async def _gone(sim: SimulatedMeter) -> Callable[[], Awaitable[None]]:
    await sim.stop()  # the line is cut: connections refused until it is back
    return sim.start


async def _corrupt(sim: SimulatedMeter) -> Callable[[], Awaitable[None]]:
    sim.faults.corrupt_answers = 40

    async def undo() -> None:
        sim.faults.corrupt_answers = 0

    return undo


async def _exceptions(sim: SimulatedMeter) -> Callable[[], Awaitable[None]]:
    sim.faults.exception_answers = 30

    async def undo() -> None:
        sim.faults.exception_answers = 0

    return undo


async def _clock_set_back(sim: SimulatedMeter) -> Callable[[], Awaitable[None]]:
    """A time sync sets the meter's clock 40 s back (events 4/5, CLOCK_ADJUSTED period)."""
    clock = sim.meter_clock
    assert isinstance(clock, MeterClock)
    old = clock.now()
    new = old - timedelta(seconds=40)
    sim.physics.set_clock(old, new)
    clock.set(new)

    async def undo() -> None:
        pass

    return undo


#: The plan: one or two faults a day, at times that differ from day to day.
FAULTS = (
    Fault("meter silent 90 s", 0.4 * DAY, 90, _silent),
    Fault("line cut 30 min", 1.6 * DAY, 1800, _gone),
    Fault("corrupted answers", 2.3 * DAY, 60, _corrupt),
    Fault("meter clock set 40 s back", 3.45 * DAY, 0, _clock_set_back),
    Fault("exception answers", 4.7 * DAY, 60, _exceptions),
    Fault("line cut 3 h", 5.2 * DAY, 3 * 3600, _gone),
    Fault("meter silent 10 min", 6.5 * DAY, 600, _silent),
)


@dataclass
class SoakResult:
    days: float
    cycle_s: float
    wall_s: float = 0.0
    cpu_s: float = 0.0
    gateway_alive: bool = False
    cycles: int = 0
    late_cycles: int = 0
    faults: list[str] = field(default_factory=list)
    #: (label, allocated memory blocks, asyncio tasks) after a gc, at the end of day 2 and at the end.
    samples: list[tuple[str, int, int]] = field(default_factory=list)
    lp1_expected: int = 0
    lp1_missing: list[datetime] = field(default_factory=list)
    lp1_duplicates: int = 0
    lp2_entries: int = 0
    minutes_expected: int = 0
    minutes_missing_outside_faults: list[datetime] = field(default_factory=list)
    minutes_recorded: int = 0
    events: int = 0
    clock_events: int = 0

    @property
    def block_growth(self) -> float:
        return self.samples[-1][1] / self.samples[0][1] - 1.0

    @property
    def task_growth(self) -> int:
        return self.samples[-1][2] - self.samples[0][2]


def soak_config(work: Path, cycle_s: float, node_cache: str = "") -> GatewayConfig:
    """The demo on loopback ports the OS picks, its archive in ``work``."""
    config = demo_config()
    meter = config.meters[0]
    assert meter.simulator is not None
    meter = replace(
        meter,
        cycle_s=cycle_s,
        register_period_s=max(5.0, cycle_s),
        simulator=replace(meter.simulator, history_days=1.5),
    )
    return replace(
        config,
        meters=(meter,),
        opcua=replace(config.opcua, port=0, node_cache=node_cache or str(work / "cache")),
        web=replace(config.web, port=0),
        archive=replace(config.archive, path=str(work / "archive")),
        security=replace(config.security, pki=str(work / "certs"), users=str(work / "certs" / "users")),
        log_level="ERROR",
    )


@contextlib.contextmanager
def soak_folder(fallback: Path) -> Iterator[Path]:
    """A folder for the soak's files on the RAM disk if there is one with room, else
    ``fallback``; removed at the end (``fallback`` is left to its owner).

    Every archive append fsyncs, as on a box: on a disk the week's ~15,000 fsyncs are a
    third of the soak's wall time, spent in worker threads while the virtual clock stands
    still. What the soak checks (every record there once, no growth, no late cycle) does
    not depend on how fast the disk is; the crash tests check what fsync is for."""
    try:
        usable = os.access(RAM_DISK, os.W_OK) and shutil.disk_usage(RAM_DISK).free >= RAM_DISK_ROOM
    except OSError:
        usable = False
    if not usable:
        yield fallback
        return
    folder = Path(tempfile.mkdtemp(prefix="smx-soak-", dir=RAM_DISK))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_soak(work: Path, *, days: float = 7.0, cycle_s: float = 1.0, node_cache: str = "") -> SoakResult:
    """Run the week (or ``days``) in virtual time; the archive stays in ``work``."""
    result = SoakResult(days=days, cycle_s=cycle_s)
    wall, cpu = time.monotonic(), time.process_time()
    run_virtual(_soak(work, result, node_cache))
    result.wall_s, result.cpu_s = time.monotonic() - wall, time.process_time() - cpu
    _check_archive(work / "archive", result)
    return result


async def _soak(work: Path, result: SoakResult, node_cache: str) -> None:
    clock = LoopClock(START)
    gateway = Gateway(soak_config(work, result.cycle_s, node_cache), clock)
    task = asyncio.create_task(gateway.run(), name="gateway")
    await gateway.ready.wait()
    sim = gateway.simulators["meter1"]
    end = result.days * DAY
    marks = sorted([(2 * DAY, "end of day 2")] if result.days > 2 else [(end / 3, "after a third")])
    plan = sorted(
        [(f.at_s, f) for f in FAULTS if f.at_s + f.for_s < end - 3600],
        key=lambda p: p[0],
    )
    undo: list[tuple[float, Callable[[], Awaitable[None]]]] = []
    events: list[tuple[float, str, object]] = [(t, "fault", f) for t, f in plan] + [
        (t, "mark", label) for t, label in marks
    ]
    for at, kind, what in sorted(events, key=lambda e: e[0]):
        while undo and undo[0][0] <= at:
            t, fn = undo.pop(0)
            await _until(clock, t)
            await fn()
        await _until(clock, at)
        if task.done():
            break
        if kind == "fault":
            assert isinstance(what, Fault)
            result.faults.append(f"{what.name} at day {what.at_s / DAY:.2f}")
            undo.append((at + what.for_s, await what.apply(sim)))
            undo.sort(key=lambda u: u[0])
        else:
            result.samples.append(_sample(str(what)))
    for t, fn in undo:
        await _until(clock, t)
        await fn()
    await _until(clock, end)
    result.gateway_alive = not task.done()
    result.samples.append(_sample("end"))
    snapshot = gateway.pollers["meter1"].snapshot
    if snapshot is not None:
        result.cycles = snapshot.diagnostics.cycles
        result.late_cycles = snapshot.diagnostics.late_cycles
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _until(clock: LoopClock, at_s: float) -> None:
    await clock.sleep(at_s - clock.monotonic())


def _sample(label: str) -> tuple[str, int, int]:
    gc.collect()
    return label, sys.getallocatedblocks(), len(asyncio.all_tasks())


def _check_archive(root: Path, result: SoakResult) -> None:
    reader = ArchiveReader(root, "meter1")
    end = START + timedelta(seconds=result.days * DAY)
    # Load profile 1: every period of the week (and the backfilled day before) once.
    times = [r.time for r in reader.read("lp1")]
    result.lp1_duplicates = len(times) - len(set(times))
    first = START - timedelta(days=1)
    last = end - 2 * PERIOD  # the last periods may still wait for their readout
    expected = [first + n * PERIOD for n in range(1, int((last - first) / PERIOD) + 1)]
    have = set(times)
    result.lp1_expected = len(expected)
    result.lp1_missing = [t for t in expected if t not in have]
    result.lp2_entries = sum(1 for _ in reader.read("lp2"))
    # Minute records: every minute the meter answered; fault windows (plus the loss
    # timeout and a reconnect) may have none.
    minutes = {r.time.replace(second=0, microsecond=0) for r in reader.read("minute")}
    result.minutes_recorded = len(minutes)
    windows = [
        (START + timedelta(seconds=f.at_s - 60), START + timedelta(seconds=f.at_s + f.for_s + 180))
        for f in FAULTS
        if f.at_s + f.for_s < result.days * DAY - 3600
    ]
    begin = min(minutes) + timedelta(minutes=2) if minutes else START
    expected_minutes = [
        begin + timedelta(minutes=n) for n in range(int((end - begin).total_seconds() // 60) - 2)
    ]
    result.minutes_expected = len(expected_minutes)
    result.minutes_missing_outside_faults = [
        m for m in expected_minutes if m not in minutes and not any(a <= m <= b for a, b in windows)
    ]
    events = list(reader.read("events"))
    result.events = len(events)
    result.clock_events = sum(1 for e in events if e.values and e.values[0] in (4.0, 5.0))
