"""A Pi's CPU budget (``python -m bench box``): the whole gateway inside a cgroup limited to
a fraction of one core and 192 MiB, and the archive's write pattern on the SD card.

Processes as on a box: the simulated meter (``smx-gateway simulate``, DLMS LN at 9600 Bd)
in its own process outside the limits; ``smx-gateway run`` (demo profile, archive and web
on) started inside a fresh cgroup (v2 ``cpu.max``/``memory.max`` where the machine has the
unified hierarchy with those controllers, else v1 ``cpu.cfs_quota_us`` and
``memory.limit_in_bytes``; the table says which). It starts unlimited (its start-up is
not what the budget is about) and settles; then, per series (no clients; 5 OPC UA
clients subscribed at 1000 ms to every value plus one live web page), the CPU quota is
set and held for a window, and the gateway's own counters say how many cycles ended late
or were skipped in it. The quota is found by bisection over :data:`QUOTAS` (the pass/fail
boundary is taken as monotone; windows of ``--seconds``), then confirmed over
``--box-confirm-minutes`` (an hour) at the quota found, stepping up while it fails: a
short window misses the 15-minute profile and event readouts, the cycle's heaviest work
(first measured: 1 % passed every 60-s window without clients, yet the hour at 1 % had 496
late and 31 skipped of 3,298 cycles). ``--box-quota Q`` skips the search and holds the hour
at Q: runs side by side, one per quota, cover the range in one hour. Reported: the
quota, the CPU the gateway used (``/proc``), the cgroup's throttled periods, the RSS, its
peak (VmHWM, since the start) and the cgroup's peak memory against the limit (which
counts the page cache of files read and written too). The live page holds its feed for
the whole window; a page that ends early fails the run.

The SD-card part runs the gateway (unlimited, the same load as a box: no clients) under
``strace --seccomp-bpf`` for ``--box-sd-minutes``: the files opened for writing, fsyncs,
renames in the steady window, and the archive's growth, scaled to a day.

The parts need little CPU (a few % of a core each), so they can run side by side as
processes of their own on a machine otherwise idle, e.g. for the hour::

    python -m bench box --box-series 5 --box-sd-minutes 0 --box-quota 3 --results-suffix=-s5-q3 &
    python -m bench box --box-series 0 --box-sd-minutes 0 --box-quota 2 --results-suffix=-s0-q2 &
    python -m bench box --box-series none --box-sd-minutes 15 --results-suffix=-sd

Needs root (cgroups, strace); it says so and stops otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asyncua import Client, ua

from bench.tables import table
from gateway.opcua.ids import SMX_NAMESPACE
from tests.support.processes import (
    METER_VALUES,
    ROOT,
    cpu_seconds,
    gateway_config,
    load_clients,
    rss_mib,
    simulator,
)

#: Quotas tried, in % of one core.
QUOTAS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0)
MEMORY_LIMIT = 192 * 1024**2
#: Seconds a new quota runs before its window (cycles in flight at the change settle).
SETTLE_S = 10.0
CFS_PERIOD_US = 100_000
COUNTERS = ("Cycles", "LateCycles", "SkippedCycles")
#: Goals of issue 19: a Pi-class box at <= 5 % of a core and <= 128 MiB with 5 clients.
CPU_GOAL, RSS_GOAL = 5.0, 128.0


class Cgroup:
    """A cgroup of our own with a CPU quota and a memory limit (v2 or v1)."""

    def __init__(self, name: str) -> None:
        unified = Path("/sys/fs/cgroup")
        controllers = unified / "cgroup.controllers"
        have = controllers.read_text().split() if controllers.exists() else []
        if {"cpu", "memory"} <= set(have):
            self.version = 2
            subtree = unified / "cgroup.subtree_control"
            subtree.write_text("+cpu +memory")
            self.dirs = {"cpu": unified / name, "memory": unified / name}
        else:
            self.version = 1
            self.dirs = {"cpu": unified / "cpu" / name, "memory": unified / "memory" / name}
        for folder in set(self.dirs.values()):
            folder.mkdir()

    @property
    def kind(self) -> str:
        return "cgroup v2 cpu.max" if self.version == 2 else "cgroup v1 cpu.cfs_quota_us"

    @property
    def procs(self) -> list[Path]:
        return sorted({d / "cgroup.procs" for d in self.dirs.values()})

    def set_cpu(self, percent: float | None) -> None:
        quota = -1 if percent is None else max(1000, round(CFS_PERIOD_US * percent / 100))
        if self.version == 2:
            value = "max" if quota < 0 else str(quota)
            (self.dirs["cpu"] / "cpu.max").write_text(f"{value} {CFS_PERIOD_US}")
        else:
            (self.dirs["cpu"] / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (self.dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))

    def set_memory(self, limit: int) -> None:
        name = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
        (self.dirs["memory"] / name).write_text(str(limit))

    def peak_mib(self) -> float:
        """The group's peak memory: the process and the page cache it caused (files read
        and written), which the kernel reclaims before it would kill anything."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        path = self.dirs["memory"] / name
        return int(path.read_text()) / 1024**2 if path.exists() else float("nan")

    def throttled(self) -> tuple[int, int]:
        """(periods, periods throttled) so far."""
        stat = dict(line.split() for line in (self.dirs["cpu"] / "cpu.stat").read_text().splitlines())
        return int(stat["nr_periods"]), int(stat["nr_throttled"])

    def remove(self) -> None:
        for folder in set(self.dirs.values()):
            with contextlib.suppress(OSError):
                folder.rmdir()


@dataclass
class Gateway:
    process: asyncio.subprocess.Process
    endpoint: str
    web_url: str

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.asynccontextmanager
async def started(work: Path, config: Path, prefix: list[str]) -> AsyncIterator[Gateway]:
    """``smx-gateway run`` behind ``prefix`` (a shell joining the cgroup, or strace), until
    it has said where it serves."""
    args = [*prefix, sys.executable, "-m", "gateway", "run", "--config", str(config), "--port", "0",
            "--web-port", "0"]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *args, cwd=work, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    endpoint = web = ""
    seen: list[str] = []
    try:
        async with asyncio.timeout(180):
            while not web:
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError("the gateway ended before serving:\n" + "".join(seen[-30:]))
                seen.append(line)
                if line.startswith("SMX gateway serving OPC UA at "):
                    endpoint = line.split(" at ", 1)[1].strip()
                if "web page and REST API: " in line:
                    web = line.split("REST API: ", 1)[1].split()[0]
        drain = asyncio.create_task(_drain(process.stdout))
        try:
            yield Gateway(process, endpoint, web)
        finally:
            drain.cancel()
    finally:
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGINT to the whole session (the shell's exec'd gateway, or strace and its tracee),
    SIGKILL if it takes longer than 15 s."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ProcessLookupError(pid)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def counters(endpoint: str) -> dict[str, int]:
    """The poller's cycle counters, read over OPC UA."""
    async with Client(endpoint, timeout=30) as client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        nodes = [client.get_node(ua.NodeId(f"meter1.Diagnostics.{name}", ns)) for name in COUNTERS]
        values = await client.read_values(nodes)
    return dict(zip(COUNTERS, (int(v or 0) for v in values), strict=True))


async def settle(endpoint: str, cycles: int = 15) -> None:
    """Until the gateway has polled ``cycles`` times (a bench's wait: it polls every second)."""
    for _ in range(cycles * 20):
        if (await counters(endpoint))["Cycles"] >= cycles:
            return
        await asyncio.sleep(1)
    raise RuntimeError(f"the gateway did not poll {cycles} times in {cycles * 20} s")


async def window(gw: Gateway, group: Cgroup, quota: float, seconds: float) -> dict[str, Any]:
    """Hold ``quota`` for :data:`SETTLE_S` and then ``seconds``; what happened in the latter."""
    group.set_cpu(quota)
    await asyncio.sleep(SETTLE_S)  # the bench's clock: the gateway runs on its own meanwhile
    before, cpu0, wall0, thr0 = (
        await counters(gw.endpoint),
        cpu_seconds(gw.pid),
        time.monotonic(),
        group.throttled(),
    )
    await asyncio.sleep(seconds)
    after, cpu1, wall1, thr1 = (
        await counters(gw.endpoint),
        cpu_seconds(gw.pid),
        time.monotonic(),
        group.throttled(),
    )
    periods = thr1[0] - thr0[0]
    return {
        "quota % core": quota,
        "cycles": after["Cycles"] - before["Cycles"],
        "late": after["LateCycles"] - before["LateCycles"],
        "skipped": after["SkippedCycles"] - before["SkippedCycles"],
        "CPU % core": 100 * (cpu1 - cpu0) / (wall1 - wall0),
        "throttled %": 100 * (thr1[1] - thr0[1]) / periods if periods else 0.0,
        "RSS MiB": rss_mib(gw.pid),
    }


async def search(gw: Gateway, group: Cgroup, seconds: float, label: str, log: list[dict[str, Any]]) -> float:
    """The smallest quota of :data:`QUOTAS` whose window has 0 late and 0 skipped cycles."""
    low, high = 0, len(QUOTAS) - 1
    best = float("nan")
    while low <= high:
        mid = (low + high) // 2
        row = await window(gw, group, QUOTAS[mid], seconds)
        ok = row["late"] == 0 and row["skipped"] == 0 and row["cycles"] > 0
        log.append({"series": label, **row, "verdict": "pass" if ok else "FAIL"})
        print(f"  {label}: {QUOTAS[mid]} % -> {row['late']} late, {row['skipped']} skipped", flush=True)
        if ok:
            best, high = QUOTAS[mid], mid - 1
        else:
            low = mid + 1
    return best


async def measure_box(
    seconds: float,
    confirm_minutes: float,
    sd_minutes: float,
    series: tuple[int, ...] = (0, 5),
    start: float | None = None,
) -> dict[str, Any]:
    """The quota search for each number of clients in ``series`` (one gateway for all), then
    the SD-card part (skipped for ``sd_minutes`` 0). With ``start`` the search is skipped and
    the hour is held at ``start`` (stepping up while it fails): several such runs side by
    side cover a range of quotas in one hour."""
    if os.geteuid() != 0:
        raise SystemExit("bench box needs root (its own cgroup, strace)")
    # A window spans a readout period (15 min) unless told shorter: the readouts are the
    # cycle's heaviest work and a minute's window can miss them.
    window_s = max(seconds, 30.0)
    rows: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    sd: dict[str, Any] = {}
    group = Cgroup(f"smx-bench-{os.getpid()}")
    try:
        group.set_memory(MEMORY_LIMIT)
        with tempfile.TemporaryDirectory(prefix="smx-bench-box-") as tmp:
            work = Path(tmp)
            async with simulator(work, history_days=0.05) as (_sim, url):
                config = gateway_config(work, url)
                joins = "; ".join(f"echo $$ > {shlex.quote(str(p))}" for p in group.procs)
                prefix = ["sh", "-c", f'{joins}; exec "$0" "$@"']
                async with started(work, config, prefix) as gw:
                    await settle(gw.endpoint)
                    for clients in series:
                        label = f"{clients} OPC UA clients" + (" + 1 live page" if clients else "")
                        async with _load(gw, clients, 4 * 3600):
                            group.set_cpu(None)
                            await asyncio.sleep(SETTLE_S)
                            quota = start or await search(gw, group, window_s, label, rows)
                            confirm = await window(gw, group, quota, 60 * confirm_minutes)
                            # The hour holds what a window may not: the profile and event
                            # readouts, the day's first records. Step up until it passes.
                            while (confirm["late"] or confirm["skipped"]) and quota < QUOTAS[-1]:
                                rows.append({"series": f"{label} (the hour)", **confirm, "verdict": "FAIL"})
                                quota = next(q for q in QUOTAS if q > quota)
                                confirm = await window(gw, group, quota, 60 * confirm_minutes)
                        group.set_cpu(None)
                        found.append({
                            "series": label, "quota found % core": quota,
                            "confirmed min": confirm_minutes, "cycles": confirm["cycles"],
                            "late": confirm["late"], "skipped": confirm["skipped"],
                            "CPU % core": confirm["CPU % core"], "throttled %": confirm["throttled %"],
                            "RSS MiB": confirm["RSS MiB"], "peak RSS MiB": peak_rss_mib(gw.pid),
                            "cgroup peak MiB (with page cache)": group.peak_mib(),
                            "limit MiB": MEMORY_LIMIT / 1024**2, "how": group.kind,
                        })  # fmt: skip
            if sd_minutes > 0:
                sd = await sd_card(work / "sd", sd_minutes)
    finally:
        group.remove()
    goals = []
    with_clients = next((r for r in found if r["series"].startswith("5")), None)
    if with_clients is not None:
        goals.append({
            "goal": f"<= {CPU_GOAL:g} % of one core with 5 clients",
            "measured": with_clients["quota found % core"],
            "verdict": "PASS" if with_clients["quota found % core"] <= CPU_GOAL else "FAIL",
        })  # fmt: skip
        peak = with_clients["peak RSS MiB"]
        goals.append({"goal": f"<= {RSS_GOAL:g} MiB (peak RSS) with 5 clients", "measured": peak,
                      "verdict": "PASS" if peak <= RSS_GOAL else "FAIL"})  # fmt: skip
    return {"box_windows": rows, "box_found": found, "box_goals": goals, "box_sd": [sd] if sd else []}


@contextlib.asynccontextmanager
async def _load(gw: Gateway, clients: int, seconds: float) -> AsyncIterator[None]:
    """``clients`` OPC UA sessions on every value and one live web page (none for 0)."""
    if clients == 0:
        yield
        return
    async with load_clients(gw.endpoint, METER_VALUES, sessions=clients, seconds=seconds, tick_s=60) as load:
        await load.until("ready")
        page = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.web_client", gw.web_url, "1", str(seconds), "0", os.devnull,
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            yield
        finally:
            if page.returncode is None:
                page.kill()
                await page.wait()
            else:  # the window's numbers are not those of the load asked for
                raise RuntimeError(f"the live page ended before the window did (exit {page.returncode})")


_STRACE = re.compile(r"^(?P<pid>\d+)\s+(?P<t>\d\d:\d\d:\d\d\.\d+) (?P<call>\w+)\((?P<args>.*)")


async def sd_card(work: Path, minutes: float) -> dict[str, Any]:
    """The gateway's writes to its storage in a steady window, scaled to a day."""
    await asyncio.to_thread(work.mkdir)
    async with simulator(work, history_days=0.05) as (_sim, url):
        config = gateway_config(work, url)
        trace = work / "strace.txt"
        prefix = ["strace", "-f", "--seccomp-bpf", "-tt", "-o", str(trace),
                  "-e", "trace=openat,rename,renameat,renameat2,fsync,fdatasync,unlink,unlinkat"]  # fmt: skip
        async with started(work, config, prefix) as gw:
            await settle(gw.endpoint, cycles=120)  # the first backfill and a few minutes written
            archive = work / "archive"
            size0, t0 = await asyncio.to_thread(_size, archive), datetime.now()
            await asyncio.sleep(60 * minutes)
            size1, t1 = await asyncio.to_thread(_size, archive), datetime.now()
    return await asyncio.to_thread(_writes, trace, work, t0, t1, size1 - size0)


def _writes(trace: Path, work: Path, t0: datetime, t1: datetime, grown: int) -> dict[str, Any]:
    """What the trace shows between ``t0`` and ``t1``, scaled to a day."""
    written: dict[str, int] = {}
    fsyncs = renames = 0
    for line in trace.read_text().splitlines():
        m = _STRACE.match(line)
        if m is None:
            continue
        at = datetime.combine(t0.date(), datetime.strptime(m["t"], "%H:%M:%S.%f").time())
        if not t0 <= at <= t1:
            continue
        call, args = m["call"], m["args"]
        if call in ("fsync", "fdatasync"):
            fsyncs += 1
        elif call.startswith("rename"):
            renames += 1
        elif call == "openat" and re.search(r"O_WRONLY|O_RDWR|O_CREAT", args):
            path = args.split('"')[1] if '"' in args else args
            if path.startswith(str(work)):
                path = str(Path(path).relative_to(work))
            key = re.sub(r"\d{4}-\d\d-\d\d", "<day>", path)
            written[key] = written.get(key, 0) + 1
    span = (t1 - t0).total_seconds()
    day = 86400 / span
    return {
        "window min": span / 60,
        "archive bytes/day": grown * day,
        "fsyncs/day": fsyncs * day,
        "renames/day": renames * day,
        "files opened for writing": ", ".join(f"{k} ({v})" for k, v in sorted(written.items())) or "none",
    }


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def print_box(results: dict[str, Any]) -> None:
    parts = (
        ("box_windows", "CPU budget search (the whole gateway in a cgroup, 192 MiB, DLMS LN 9600 Bd)"),
        ("box_found", "Smallest quota with 0 late and 0 skipped cycles, confirmed"),
        ("box_goals", "Goals (issue 19)"),
        ("box_sd", "SD card: the gateway's writes in steady state (no clients), per day"),
    )
    shown = [(key, title) for key, title in parts if results.get(key)]
    for n, (key, title) in enumerate(shown):
        if n:
            print()
        print(table(title, results[key]))
