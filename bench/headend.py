"""Head-end: how many messages one instance takes, at what CPU, lag and memory, and what a
second instance and the database change (``python -m bench headend``, issue 17 point 4).

Processes: one mosquitto on loopback (:mod:`tests.support.broker`, logging notices and up:
its default test logging writes a line per PUBLISH, which would be the broker's main work
here), a throwaway PostgreSQL cluster (:mod:`tests.support.postgres`), the load generator
(:mod:`bench.headend_load`: N simulated sites, each its own PublisherId, the gateway's
messages) and the head-end instances (:mod:`bench.headend_runner`: ``smx-headend run``'s
objects, with ``store`` timed). CPU and RSS per process are the kernel's (``/proc``).

1. **Announce**: every site's status and the metadata of its six writers, retained.
2. Per scenario the instances are started (each first receives all the retained metadata:
   how long that takes, its CPU and the RSS after it are the "start" row), then the
   generator publishes the steady state for ``--seconds``; then the instances are given
   until their counters stand still to store what is still on its way.

   * 15-s live, 1 instance, SQLite;  * 15-s live, 1 instance, PostgreSQL;
   * 1-s live, 1 instance, PostgreSQL (more than it can take: its ceiling);
   * 1-s live, 2 instances of one shared-subscription group, PostgreSQL.

Figures: messages/s offered (sent by the generator) and taken (received by the instances,
over the window), messages lost (sent minus received), rows/s stored, the instance's CPU
(% of one core) and CPU per 1,000 messages/s, lag publish -> commit (p50/p99/max of sampled
rows, :mod:`bench.headend_runner`), the drain after the last publish, the RSS; and the
broker's, the generator's and PostgreSQL's CPU. Goals (issue 17): one instance keeps up
with 10,000 sites at 15-s live, two with 1-s live, lag p99 < 2 s.

``--quick``: 1,000 sites, 10 s a scenario (under 2 minutes in all). ``--profile``: the
1-s scenario of one instance again under cProfile (its event loop thread), top functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import pstats
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.headend_load import expected_rates, percentile, rows_per_message
from bench.tables import table
from tests.support.broker import Broker, mosquitto
from tests.support.postgres import postgres_cluster
from tests.support.processes import cpu_seconds, interrupt, rss_mib

ROOT = Path(__file__).resolve().parents[1]
GOAL_LAG_P99_S = 2.0
#: A scenario's counters are read this long after its start, to leave out the first second.
WARMUP_S = 3.0
#: After the last publish, what is in flight is stored once the counters stand still this long
#: (longer than one flush: a batch, its sites' states and its acknowledgements).
SETTLED_S = 8.0
DRAIN_TIMEOUT_S = 120.0
#: Starting instances get this long without progress to learn all the metadata.
METADATA_STALL_S = 20.0


#: The broker's queue per client: docs/mosquitto/mosquitto.conf says 10,000, but a head-end
#: that (re)starts gets every site's retained metadata at once (6 writers a site) through that
#: queue, and mosquitto drops what does not fit: 10,000 sites left an instance knowing 10,020
#: of 60,000 writers. Large here, so that what is measured is the head-end.
QUEUED = 1_000_000


#: The instances' MQTT client queue while they start (bench/headend_runner.py
#: --incoming-queue): the service bounds it at 10,000 and aiomqtt discards beyond that, so an
#: instance (re)starting with 10,000 sites' retained metadata (60,000 messages, ~0.8 GB) lost
#: half of it. Room for all while starting, so that the steady state is measured with every
#: writer known; then (SIGUSR2) the service's own bound again.
INCOMING_QUEUE = 200_000


@contextlib.asynccontextmanager
async def quiet_mosquitto(work: Path) -> AsyncIterator[Broker]:
    """mosquitto with a production broker's logging (notices and up: the tests' default writes
    a line per message, which would be the broker's main work here)."""
    async with mosquitto(work, max_queued_messages=QUEUED, quiet=True) as broker:
        yield broker


# -- processes --------------------------------------------------------------------------------


@dataclass
class Runner:
    """A head-end instance process and its reports."""

    name: str
    process: asyncio.subprocess.Process
    reports: list[dict[str, Any]] = field(default_factory=list)
    lags: list[tuple[float, float]] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    profiled: bool = False
    _reader: asyncio.Task[None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last(self) -> dict[str, Any]:
        return self.reports[-1]

    async def read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            text = line.decode().strip()
            if text.startswith("SMX head-end bench runner"):
                self._ready.set()
            elif text.startswith("{"):
                report = json.loads(text)
                self.lags += [(report["t"], lag) for lag in report.pop("lags")]
                self.reports.append(report)

    def at(self, t: float) -> dict[str, Any]:
        """The last report made at or before ``t`` (the first one if none)."""
        before = [r for r in self.reports if r["t"] <= t]
        return before[-1] if before else self.reports[0]

    async def stop(self) -> None:
        await interrupt(self.process, 30)
        if self._reader is not None:
            await self._reader


def _config(work: Path, name: str, broker: Broker, backend: str, dsn: str, password: str) -> Path:
    text = f'profile = "demo"\nlog_level = "WARNING"\n[broker]\nurl = "{broker.url}"\ngroup = "bench"\n'
    if backend == "sqlite":
        text += f'[storage]\nbackend = "sqlite"\npath = "{work / "headend.sqlite"}"\n'
    else:
        secret = work / "db-password"
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        text += f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\npassword_file = "{secret}"\n'
    path = work / f"{name}.toml"
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def runners(configs: Sequence[tuple[str, Path]], work: Path, profile: Path | None = None,
                  all_writers: bool = False) -> AsyncIterator[list[Runner]]:  # fmt: skip
    """Head-end instances; ``all_writers``: subscribed to live too (the ingest's capacity; as
    shipped an instance takes only the writers it stores)."""
    out: list[Runner] = []
    try:
        for name, config in configs:
            argv = ["-m", "bench.headend_runner", "--config", str(config), "--name", name,
                    "--incoming-queue", str(INCOMING_QUEUE)]  # fmt: skip
            if all_writers:
                argv.append("--all-writers")
            if profile is not None:
                argv += ["--profile", str(profile)]
            with (work / f"{name}.log").open("ab") as log:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=log,
                    env={**os.environ, "PYTHONPATH": str(ROOT)}, limit=1 << 26,
                )  # fmt: skip
            runner = Runner(name, process, profiled=profile is not None)
            runner._reader = asyncio.create_task(runner.read())
            out.append(runner)
        for runner in out:
            await asyncio.wait_for(runner._ready.wait(), 60)
        yield out
    finally:
        for runner in out:
            await runner.stop()


async def generator(*args: str, timeout: float) -> dict[str, Any]:
    """``python -m bench.headend_load args``: its JSON result (the process killed if late)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.headend_load", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"load generator {args[0]} did not end within {timeout} s") from None
    if process.returncode != 0:
        raise RuntimeError(f"load generator {args[0]} failed ({process.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def postgres_cpu(data: Path) -> float:
    """CPU seconds of the cluster in ``data``: its postmaster (``postmaster.pid``) and the
    processes it started (other clusters on the machine are not counted)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        master = int((data / "postmaster.pid").read_text().split()[0])
        total = cpu_seconds(master)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                    total += cpu_seconds(int(stat.parent.name))
        return total
    return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, all) CPU seconds of the machine so far, all cores (``/proc/stat``)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    # user, nice, system, irq, softirq (not idle, iowait, steal; guest is inside user)
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
    return busy / hz, sum(ticks[:8]) / hz


# -- measuring --------------------------------------------------------------------------------


async def wait_metadata(group: Sequence[Runner], writers: int) -> list[dict[str, Any]]:
    """Until every instance knows ``writers`` writers' metadata (or stalls): a row each."""
    rows = []
    for runner in group:
        last, since = -1, time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            known = runner.last["known"] if runner.reports else 0
            if known >= writers:
                break
            if known != last:
                last, since = known, time.monotonic()
            elif time.monotonic() - since > METADATA_STALL_S:
                break
        runner.process.send_signal(signal.SIGUSR2)  # the service's own queue bound from now on
        r = runner.last
        rows.append({
            "instance": runner.name,
            "writers_known": f"{r['known']}/{writers}",
            "seconds": r["t"] - runner.started,
            "cpu_s": r["cpu_s"],
            "rss_mib": r["rss_mib"],
        })  # fmt: skip
    return rows


async def settle(group: Sequence[Runner], still_s: float = SETTLED_S) -> float:
    """Wait until no instance's counters changed for ``still_s``; when they last changed."""

    def state() -> tuple[int, ...]:
        return tuple(x for r in group for x in (r.last["messages"], r.last["rows"], r.last["batches"]))

    last, changed = state(), time.time()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.time() - changed < still_s and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = state()
        if now != last:
            last, changed = now, max(r.last["t"] for r in group)
    return changed


async def scenario(
    label: str, group: Sequence[Runner], broker: Broker, pg_data: Path, url: str, sites: int,
    live_s: float, seconds: float, backend: str, with_live: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Publish the steady state for ``seconds``; what the instances did with it. Offered is
    what the instances subscribe to: the stored writers, and live if ``with_live``."""
    await settle(group, 2.0)  # what came before (retained status messages) is in
    for runner in group:
        if runner.profiled:  # its profile starts now (SIGUSR1 would end any other runner)
            with contextlib.suppress(ProcessLookupError):
                runner.process.send_signal(signal.SIGUSR1)
    pg0 = postgres_cpu(pg_data)
    busy0, all0 = machine_busy()
    assert broker.pid is not None
    broker0 = cpu_seconds(broker.pid)
    before = [r.last for r in group]
    t_start = time.time()
    sent = await generator("run", "--url", url, "--sites", str(sites), "--live", str(live_s),
                           "--seconds", str(seconds), timeout=seconds + 120)  # fmt: skip
    t_end = time.time()
    broker_cpu = cpu_seconds(broker.pid) - broker0
    drained = await settle(group)
    pg_cpu = postgres_cpu(pg_data) - pg0
    busy1, all1 = machine_busy()
    # The window: the steady state, without the first seconds.
    w0, w1 = t_start + WARMUP_S, t_end
    per = []
    for runner, b in zip(group, before, strict=True):
        a, z, last = runner.at(w0), runner.at(w1), runner.last
        span = z["t"] - a["t"]
        per.append({
            "instance": runner.name,
            "msg_s": (z["messages"] - a["messages"]) / span,
            "rows_s": (z["rows"] - a["rows"]) / span,
            "cpu_pct": 100 * (z["cpu_s"] - a["cpu_s"]) / span,
            "received": last["messages"] - b["messages"],
            "rows": last["rows"] - b["rows"],
            "refused": last["refused"] - b["refused"],
            "held": last["held"],
            "rss_mib": last["rss_mib"],
            "batches": last["batches"] - b["batches"],
            "store_s": last["store_s"] - b["store_s"],
            "save_site_s": last["save_site_s"] - b["save_site_s"],
            "save_sites": last["save_sites"] - b["save_sites"],
            "gc_pct": 100 * (z["gc_s"] - a["gc_s"]) / span,
        })  # fmt: skip
    lags = [lag for r in group for t, lag in r.lags if t_start <= t <= drained + 1]
    for_them = sum(n for w, n in sent["sent"].items() if with_live or w != "live")
    offered = for_them / sent["seconds"]
    taken = sum(p["msg_s"] for p in per)
    cpu = sum(p["cpu_pct"] for p in per)
    received = sum(p["received"] for p in per)
    rows_expected = sum(n * rows_per_message()[w] for w, n in sent["sent"].items())
    row = {
        "scenario": label,
        "live_taken": "yes" if with_live else "no",
        "backend": backend,
        "instances": len(group),
        "offered_msg_s": offered,
        "taken_msg_s": taken,
        "split": "/".join(f"{p['received']}" for p in per),
        "lost": for_them - received,
        "rows_s": sum(p["rows_s"] for p in per),
        "rows_stored": f"{sum(p['rows'] for p in per)}/{rows_expected}",
        "cpu_pct": cpu,
        "cpu_pct_per_1k_msg_s": cpu / (taken / 1000) if taken else math.nan,
        "lag_p50_s": percentile(lags, 0.5),
        "lag_p99_s": percentile(lags, 0.99),
        "lag_max_s": max(lags) if lags else math.nan,
        "drain_s": max(0.0, drained - t_end),
        "rss_mib": max(p["rss_mib"] for p in per),
        "broker_cpu_pct": 100 * broker_cpu / (t_end - t_start),
        "generator_cpu_pct": 100 * sent["cpu_s"] / sent["seconds"],
        "postgres_cpu_pct": 100 * pg_cpu / (t_end - t_start) if backend == "postgresql" else 0.0,
        "store_ms_per_batch": 1000 * sum(p["store_s"] for p in per) / max(1, sum(p["batches"] for p in per)),
        "rows_per_batch": sum(p["rows"] for p in per) / max(1, sum(p["batches"] for p in per)),
        "save_site_s": sum(p["save_site_s"] for p in per),
        "save_sites": sum(p["save_sites"] for p in per),
        "gc_pct": sum(p["gc_pct"] for p in per),
        "refused": sum(p["refused"] for p in per),
        # The whole machine meanwhile (other sessions included), in % of one core (200 %: both).
        "machine_busy_pct": 100 * (busy1 - busy0) / (t_end - t_start),
        "machine_idle_pct": 100 * ((all1 - all0) - (busy1 - busy0)) / (t_end - t_start),
        "per_instance": per,
        "sent": sent,
    }
    row["keeps_up"] = bool(
        row["lost"] <= 0.001 * for_them and row["lag_p99_s"] < GOAL_LAG_P99_S and row["drain_s"] < 5
    )
    return row


#: Where a function's own time is counted in the profile's summary (first match of its file).
AREAS = (
    ("MQTT client (paho, aiomqtt)", ("paho/", "aiomqtt/")),
    ("JSON parsing (json)", ("json/",)),
    ("codec decode (gateway/pubsub/codec.py)", ("gateway/pubsub/codec.py",)),
    ("ingest checks (headend/ingest.py)", ("headend/ingest.py",)),
    ("service: batches, acks, completeness (headend/service.py)", ("headend/service.py",)),
    ("storage (headend/storage, asyncpg, sqlite3)", ("headend/storage", "asyncpg", "sqlite3")),
    ("asyncio", ("asyncio/", "selectors.py")),
)
_IDLE = "<method 'poll' of 'select.epoll' objects>"


def profile_rows(path: Path, n: int = 25) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the top ``n`` functions by own time, the own time summed by area), as % of the event
    loop thread's busy time (its waits in epoll left out)."""
    stats = pstats.Stats(str(path))
    entries = [(k, v) for k, v in stats.stats.items() if k[2] != _IDLE]  # type: ignore[attr-defined]
    busy = sum(v[2] for _k, v in entries)
    entries.sort(key=lambda kv: kv[1][2], reverse=True)
    top = []
    for (filename, line, func), (_cc, calls, tottime, cumtime, _callers) in entries[:n]:
        where = filename.replace(str(ROOT) + "/", "").replace(sys.prefix, "<venv>")
        top.append({"function": f"{where}:{line}({func})", "calls": calls, "tottime_s": tottime,
                    "busy_pct": 100 * tottime / busy, "cumtime_s": cumtime})  # fmt: skip
    areas: dict[str, float] = {}
    for (filename, _line, func), v in entries:
        area = next((a for a, keys in AREAS if any(k in filename or k in func for k in keys)), "other")
        areas[area] = areas.get(area, 0.0) + v[2]
    summary = [{"area": a, "own_s": t, "busy_pct": 100 * t / busy}
               for a, t in sorted(areas.items(), key=lambda kv: -kv[1])]  # fmt: skip
    return top, summary


async def measure_headend(seconds: float, quick: bool = False, profile: bool = False,
                          sites: int | None = None) -> dict[str, Any]:  # fmt: skip
    sites = sites or (1_000 if quick else 10_000)
    seconds = 10.0 if quick else seconds
    writers = sites * 6
    work = Path(tempfile.mkdtemp(prefix="smx-bench-headend-"))
    results: dict[str, Any] = {"headend_sites": sites, "headend_seconds": seconds}
    try:
        async with quiet_mosquitto(work / "broker") as broker, postgres_cluster(work / "pg") as cluster:
            url = broker.url
            ann = await generator("announce", "--url", url, "--sites", str(sites), timeout=600)
            assert broker.pid is not None
            results["headend_announce"] = [{
                "sites": sites, "messages": ann["messages"], "mib": ann["bytes"] / 2**20,
                "seconds": ann["seconds"], "broker_rss_mib": rss_mib(broker.pid),
            }]  # fmt: skip
            pg_dsn = f"postgresql://{cluster.user}@127.0.0.1:{cluster.port}/smx"
            sq = _config(work, "sqlite-1", broker, "sqlite", "", "")
            pg = [_config(work, f"pg-{n}", broker, "postgresql", pg_dsn, cluster.password) for n in (1, 2)]
            starts: list[dict[str, Any]] = []
            rows: list[dict[str, Any]] = []
            args = (broker, cluster.folder / "data", url, sites)
            async with runners([("sqlite-1", sq)], work) as group:
                starts += await wait_metadata(group, writers)
                rows.append(await scenario("15-s live", group, *args, 15, seconds, "sqlite"))
            async with runners([("pg-1", pg[0])], work) as group:
                starts += await wait_metadata(group, writers)
                rows.append(await scenario("15-s live", group, *args, 15, seconds, "postgresql"))
                rows.append(await scenario("1-s live", group, *args, 1, seconds, "postgresql"))
                async with runners([("pg-2", pg[1])], work) as second:
                    starts += await wait_metadata(second, writers)
                    rows.append(
                        await scenario("1-s live", [*group, *second], *args, 1, seconds, "postgresql")
                    )
            # The ingest's capacity: subscribed to live as well (every message of the fleet).
            async with runners([("pg-1", pg[0])], work, all_writers=True) as group:
                await wait_metadata(group, writers)
                rows.append(await scenario("1-s live", group, *args, 1, seconds, "postgresql", True))
                async with runners([("pg-2", pg[1])], work, all_writers=True) as second:
                    await wait_metadata(second, writers)
                    both = [*group, *second]
                    rows.append(await scenario("1-s live", both, *args, 1, seconds, "postgresql", True))
            results["headend_start"] = starts
            results["headend_scenarios"] = rows
            if profile:
                prof = work / "headend.prof"
                async with runners([("profiled", pg[0])], work, profile=prof) as group:
                    await wait_metadata(group, writers)
                    results["headend_profiled"] = [
                        await scenario("1-s live, cProfile", group, *args, 1, seconds, "postgresql")
                    ]
                results["headend_profile"], results["headend_profile_areas"] = profile_rows(prof)
            for line in broker.log_text().splitlines():
                if "dropped" in line:
                    results.setdefault("headend_broker_drops", []).append(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


# -- printing ---------------------------------------------------------------------------------


def _goal(row: dict[str, Any]) -> str:
    return "yes" if row["keeps_up"] else "NO"


def print_headend(results: dict[str, Any]) -> None:
    sites = results["headend_sites"]
    print(
        table(f"Announce: {sites} sites' status and metadata (retained, QoS 1)", results["headend_announce"])
    )
    print()
    print(table("Instance start: all retained metadata received and decoded", results["headend_start"]))
    print()
    rates = expected_rates(sites, 15)
    planned = ", ".join(f"{w} {r:.3g}/s" for w, r in rates.items())
    shown = ("scenario", "live_taken", "backend", "instances", "offered_msg_s", "taken_msg_s", "lost",
             "rows_s", "cpu_pct", "cpu_pct_per_1k_msg_s", "lag_p50_s", "lag_p99_s", "lag_max_s", "drain_s",
             "rss_mib", "keeps_up")  # fmt: skip
    rows = [{k: (_goal(r) if k == "keeps_up" else r[k]) for k in shown} for r in results["headend_scenarios"]]
    print(table(f"{sites} sites, {results['headend_seconds']:.0f} s each (15-s live plans {planned})", rows))
    print()
    others = ("scenario", "live_taken", "backend", "instances", "split", "rows_stored", "refused",
              "rows_per_batch", "store_ms_per_batch", "save_sites", "save_site_s", "gc_pct",
              "broker_cpu_pct", "generator_cpu_pct", "postgres_cpu_pct", "machine_busy_pct")  # fmt: skip
    print(table("The same runs: split per instance, rows, the other processes' CPU (% of a core)",
                [{k: r[k] for k in others} for r in results["headend_scenarios"]]))  # fmt: skip
    scen = results["headend_scenarios"]
    sq = next((r for r in scen if r["backend"] == "sqlite"), None)
    pg = next((r for r in scen if r["backend"] == "postgresql" and r["scenario"] == "15-s live"), None)
    if sq and pg:
        print()
        print(
            f"rows/s PostgreSQL / SQLite at 15-s live: {pg['rows_s']:.0f} / {sq['rows_s']:.0f}; store "
            f"ms per batch {pg['store_ms_per_batch']:.1f} / {sq['store_ms_per_batch']:.1f}"
        )
    one = [
        r for r in scen if r["instances"] == 1 and r["scenario"] == "1-s live" and r["live_taken"] == "yes"
    ]
    two = [r for r in scen if r["instances"] == 2 and r["live_taken"] == "yes"]
    if one and two:
        print(
            "2 instances / 1 at 1-s live, live taken: "
            f"{two[0]['taken_msg_s'] / one[0]['taken_msg_s']:.2f} x messages/s"
        )
    for line in results.get("headend_broker_drops", [])[:5]:
        print("broker:", line)
    if "headend_profile" in results:
        print()
        print(table("Profiled run (cProfile slows it)", [
            {k: r[k] for k in shown if k != "keeps_up"} for r in results["headend_profiled"]]))  # fmt: skip
        print()
        print(
            table(
                "Where the event loop's busy time goes, by area (cProfile)", results["headend_profile_areas"]
            )
        )
        print()
        print(table("Top functions by own time (cProfile)", results["headend_profile"]))
