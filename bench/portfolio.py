"""Portfolios: aggregation latency and CPU per portfolio update at 10,000 sites, one
instance beside two (``python -m bench portfolio``, issue 18 point 5).

Processes: one mosquitto on loopback (a production broker's logging), a throwaway
PostgreSQL cluster (:mod:`tests.support.postgres`; the leases, the registers and the
aggregates' history are stored there), the load generator (:mod:`bench.headend_load`,
``--writers live,registers``: 10,000 sites, each its own PublisherId, the demo meter's live
writer every ``live_s`` and its registers every minute, spread evenly over each interval,
every message the gateway's) and ``smx-headend run`` instances of one group
(:mod:`bench.portfolio_runner`: ``headend.cli`` unchanged but for a line after every second's
combine). Five portfolios: all 10,000 sites (by tag) and four of 2,500 by tag.

Per scenario (``--seconds`` each, the first ``live_s + 5`` s left out):

* **latency**: per second and portfolio, the wall-clock time the instance's ``combine``
  returned (the aggregate readable over REST and OPC UA from then on) minus the aggregate's
  ``newest``: the Timestamp of the newest member value summed, which the generator sets to
  the time it publishes the message (its 10-ms tick: up to 10 ms before the write). So
  "the last member's message to the aggregate published". Beside it the *most-behind
  bucket*: the same for the newest value of the reporting bucket whose newest is oldest
  (an aggregate is only as current as its most-behind part);
* **CPU per portfolio update**: the service's own count (``counters.tick_cpu_s``: the CPU of
  every second's partials and combine) over the ticks and the portfolios; and the
  instance's whole CPU (its process, ``os.times``), which is mostly taking the live
  messages;
* live values taken per second (``counters.live``) against those offered, the coverage, the
  broker's, the generator's and PostgreSQL's CPU (``/proc``).

Scenarios: 1-s live (``stale_after_s`` 5) with one instance, then two; 10-s live (the boxes'
default; ``stale_after_s`` 30, the default) with two, then one (the other stopped: the
survivor takes its buckets first). Stops by itself; everything is removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.headend import INCOMING_QUEUE, generator, machine_busy, postgres_cpu, quiet_mosquitto
from bench.headend_load import percentile, site_name
from bench.tables import table
from headend.portfolio.aggregate import BUCKETS
from tests.support.broker import Broker
from tests.support.postgres import Cluster, postgres_cluster
from tests.support.processes import cpu_seconds, interrupt

ROOT = Path(__file__).resolve().parents[1]
SITES = 10_000
#: The portfolios: every site, and a quarter each by tag.
ALL = "all"
QUARTERS = tuple(f"q{n}" for n in range(4))
PORTFOLIOS = (ALL, *QUARTERS)
WRITERS = "live,registers"
#: (live interval s, stale_after_s) of the two sets of scenarios.
LIVE = ((1.0, 5.0), (10.0, 30.0))
GROUP = "bench"
READY_TIMEOUT_S = 240.0


@dataclass
class Runner:
    """A ``smx-headend run`` process (with the bench's hook) and its lines."""

    name: str
    process: asyncio.subprocess.Process
    reports: list[dict[str, Any]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    @property
    def last(self) -> dict[str, Any]:
        return self.reports[-1] if self.reports else {"known": 0, "owned": 0, "queued": 0, "t": 0.0}

    async def read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            text = line.decode().strip()
            if text.startswith("{"):
                self.reports.append(json.loads(text))
            else:
                self.other.append(text)
                if text.startswith("fleet page: "):
                    self.ready.set()

    async def stop(self) -> None:
        await interrupt(self.process, 60)
        if self.reader is not None:
            await self.reader

    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        return [r for r in self.reports if start <= r["t"] <= end]


def write_config(
    work: Path, name: str, broker: Broker, cluster: Cluster, stale_after_s: float, sites: int
) -> Path:
    secret = work / "db-password"
    secret.write_text(cluster.password + "\n")
    secret.chmod(0o600)
    lines = [
        'profile = "demo"', 'log_level = "WARNING"',
        "[broker]", f'url = "{broker.url}"', f'group = "{GROUP}"',
        "[storage]", 'backend = "postgresql"',
        f'dsn = "postgresql://{cluster.user}@127.0.0.1:{cluster.port}/smx"', f'password_file = "{secret}"',
        "[aggregation]", f"stale_after_s = {stale_after_s}",
    ]  # fmt: skip
    lines += [f'[[portfolios]]\nname = "{ALL}"\ntags = ["fleet"]']
    lines += [f'[[portfolios]]\nname = "{q}"\ntags = ["{q}"]' for q in QUARTERS]
    lines += [f'[[sites]]\npublisher = "{site_name(i)}"\ntags = ["fleet", "q{i % 4}"]' for i in range(sites)]
    path = work / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.asynccontextmanager
async def runners(configs: Sequence[tuple[str, Path]], work: Path) -> AsyncIterator[list[Runner]]:
    """Instances started in turn, each until it serves its page; stopped (SIGINT) at the end."""
    out: list[Runner] = []
    try:
        for name, config in configs:
            with (work / f"{name}.log").open("ab") as log:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.portfolio_runner", "--config", str(config), "--name", name,
                    "--incoming-queue", str(INCOMING_QUEUE), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                    stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)}, limit=1 << 24,
                )  # fmt: skip
            runner = Runner(name, process)
            runner.reader = asyncio.create_task(runner.read())
            out.append(runner)
            await asyncio.wait_for(runner.ready.wait(), 120)
        yield out
    finally:
        for runner in out:
            await runner.stop()


async def wait_ready(group: Sequence[Runner], writers: int) -> float:
    """Until every instance knows every writer's metadata and the buckets are shared out
    evenly (each its part, all 64 owned); each client's own queue bound from then on.
    Returns the seconds it took."""
    started = time.monotonic()
    share = BUCKETS // len(group)
    while True:
        # What an earlier scenario left in a queue is taken first.
        if all(
            r.last["known"] >= writers and r.last["owned"] == share and r.last["queued"] < 100 for r in group
        ):
            break
        if time.monotonic() - started > READY_TIMEOUT_S:
            raise RuntimeError(
                f"instances not ready: {[(r.name, r.last['known'], r.last['owned']) for r in group]}"
            )
        await asyncio.sleep(0.5)  # the instances' lines come every second
    for r in group:
        r.process.send_signal(signal.SIGUSR2)
    return time.monotonic() - started


def _latencies(reports: Sequence[dict[str, Any]], names: Sequence[str], slot: int) -> list[float]:
    return [r["t"] - v[slot] for r in reports for n in names if (v := r["portfolios"].get(n)) and v[slot]]


async def scenario(
    label: str, group: Sequence[Runner], broker: Broker, cluster: Cluster, live_s: float, stale_s: float,
    seconds: float, sites: int,
) -> dict[str, Any]:  # fmt: skip
    assert broker.pid is not None
    pg_data = cluster.folder / "data"
    pg0, broker0, (busy0, _all0) = postgres_cpu(pg_data), cpu_seconds(broker.pid), machine_busy()
    t_start = time.time()
    sent = await generator(
        "run", "--url", broker.url, "--sites", str(sites), "--live", str(live_s), "--seconds", str(seconds),
        "--writers", WRITERS, timeout=seconds + 120,
    )  # fmt: skip
    t_end = time.time()
    pg_cpu, broker_cpu, (busy1, _all1) = (
        postgres_cpu(pg_data) - pg0,
        cpu_seconds(broker.pid) - broker0,
        machine_busy(),
    )
    w0, w1 = t_start + live_s + 5, t_end
    per = []
    window: list[dict[str, Any]] = []
    per_tick: list[float] = []
    intake: list[float] = []
    for r in group:
        reports = r.between(w0, w1)
        if len(reports) < 2:
            raise RuntimeError(f"{r.name}: {len(reports)} aggregates in the window")
        a, z = reports[0], reports[-1]
        span = z["t"] - a["t"]
        ticks = z["ticks"] - a["ticks"]
        # The CPU of each second's update (partials and combine), from consecutive lines.
        for x, y in itertools.pairwise(reports):
            if y["ticks"] - x["ticks"] == 1:
                per_tick.append(1000 * (y["tick_cpu_s"] - x["tick_cpu_s"]))
        intake += [x["t"] - x["newest_taken"] for x in reports if x["newest_taken"] is not None]
        per.append({
            "instance": r.name, "buckets": z["owned"], "aggregates_s": (len(reports) - 1) / span,
            "live_s": (z["live"] - a["live"]) / span, "cpu_pct": 100 * (z["cpu_s"] - a["cpu_s"]) / span,
            "tick_ms": 1000 * (z["tick_cpu_s"] - a["tick_cpu_s"]) / ticks if ticks else math.nan,
            "queued_max": max(x["queued"] for x in reports), "rss_mib": z["rss_mib"],
        })  # fmt: skip
        window += reports
    offered = sent["sent"].get("live", 0) / sent["seconds"]
    taken = sum(p["live_s"] for p in per)
    lat_all, lat_q = _latencies(window, [ALL], 0), _latencies(window, QUARTERS, 0)
    behind = _latencies(window, PORTFOLIOS, 1)
    cover = [v[4] for r in window if (v := r["portfolios"].get(ALL))]
    fresh = [v[2] / v[3] for r in window if (v := r["portfolios"].get(ALL)) and v[3]]
    tick_ms = statistics.fmean(p["tick_ms"] for p in per)
    span = t_end - t_start
    return {
        "scenario": label, "instances": len(group), "stale_after_s": stale_s,
        "live_offered_s": offered, "live_taken_s": taken,
        "latency_p50_s": percentile(lat_all, 0.5), "latency_p99_s": percentile(lat_all, 0.99),
        "latency_tags_p50_s": percentile(lat_q, 0.5), "latency_tags_p99_s": percentile(lat_q, 0.99),
        "behind_p50_s": percentile(behind, 0.5), "behind_p99_s": percentile(behind, 0.99),
        "intake_lag_p50_s": percentile(intake, 0.5), "intake_lag_p99_s": percentile(intake, 0.99),
        "coverage_median": statistics.median(cover) if cover else math.nan,
        "fresh_median": statistics.median(fresh) if fresh else math.nan,
        "cpu_pct": sum(p["cpu_pct"] for p in per),
        "tick_ms": tick_ms, "ms_per_portfolio_update": tick_ms / len(PORTFOLIOS),
        "update_ms_p50": percentile(per_tick, 0.5) / len(PORTFOLIOS),
        "update_ms_p99": percentile(per_tick, 0.99) / len(PORTFOLIOS),
        "broker_cpu_pct": 100 * broker_cpu / span, "generator_cpu_pct": 100 * sent["cpu_s"] / sent["seconds"],
        "postgres_cpu_pct": 100 * pg_cpu / span, "machine_busy_pct": 100 * (busy1 - busy0) / span,
        "per_instance": per, "sent": sent,
    }  # fmt: skip


async def measure_portfolio(seconds: float, sites: int = SITES) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="smx-bench-portfolio-"))
    results: dict[str, Any] = {"portfolio_sites": sites, "portfolio_seconds": seconds}
    writers = sites * len(WRITERS.split(","))
    rows: list[dict[str, Any]] = []
    starts: list[dict[str, Any]] = []
    stops: list[tuple[str, str]] = []
    try:
        async with quiet_mosquitto(work / "broker") as broker, postgres_cluster(work / "pg") as cluster:
            ann = await generator(
                "announce", "--url", broker.url, "--sites", str(sites), "--writers", WRITERS, timeout=600
            )
            results["portfolio_announce"] = ann
            for live_s, stale_s in LIVE:
                config = write_config(work, f"live-{live_s:g}", broker, cluster, stale_s, sites)
                args = (broker, cluster, live_s, stale_s, seconds, sites)
                label = f"{live_s:g}-s live"
                if live_s == 1.0:  # one instance, then a second one joins
                    async with runners([("p-1", config)], work) as (one,):
                        starts.append(
                            {"live": label, "instances": 1, "ready_s": await wait_ready([one], writers)}
                        )
                        rows.append(await scenario(label, [one], *args))
                        async with runners([("p-2", config)], work) as (two,):
                            ready = await wait_ready([one, two], writers)
                            starts.append({"live": label, "instances": 2, "ready_s": ready})
                            rows.append(await scenario(label, [one, two], *args))
                        stops += [(label, x) for x in two.other]
                    stops += [(label, x) for x in one.other]
                else:  # two instances, then one is stopped and the other takes its buckets
                    async with runners([("p-1", config)], work) as (one,):
                        async with runners([("p-2", config)], work) as (two,):
                            ready = await wait_ready([one, two], writers)
                            starts.append({"live": label, "instances": 2, "ready_s": ready})
                            rows.append(await scenario(label, [one, two], *args))
                        stops += [(label, x) for x in two.other]
                        starts.append(
                            {"live": label, "instances": 1, "ready_s": await wait_ready([one], writers)}
                        )
                        rows.append(await scenario(label, [one], *args))
                    stops += [(label, x) for x in one.other]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["portfolio_scenarios"] = rows
    results["portfolio_starts"] = starts
    results["portfolio_stops"] = [
        f"{label}: {s}" for label, s in stops if " stopped: " in s or " portfolios: " in s
    ]
    return results


def print_portfolio(results: dict[str, Any]) -> None:
    sites = results["portfolio_sites"]
    shown = ("scenario", "instances", "live_offered_s", "live_taken_s", "latency_p50_s", "latency_p99_s",
             "latency_tags_p50_s", "latency_tags_p99_s", "behind_p50_s", "behind_p99_s", "coverage_median",
             "fresh_median", "intake_lag_p50_s", "intake_lag_p99_s", "cpu_pct", "ms_per_portfolio_update",
             "update_ms_p50", "update_ms_p99")  # fmt: skip
    rows = results["portfolio_scenarios"]
    title = (
        f"Portfolios: {sites} sites, 5 portfolios (all; 4 by tag), {results['portfolio_seconds']:.0f} s each"
    )
    print(table(title, [{k: r[k] for k in shown} for r in rows]))
    print()
    others = ("scenario", "instances", "stale_after_s", "tick_ms", "broker_cpu_pct", "generator_cpu_pct",
              "postgres_cpu_pct", "machine_busy_pct")  # fmt: skip
    print(
        table(
            "The same runs: the other processes' CPU (% of a core)", [{k: r[k] for k in others} for r in rows]
        )
    )
    print()
    print(table("Per instance", [{"scenario": r["scenario"], **p} for r in rows for p in r["per_instance"]]))
    print()
    print(table("Instances ready (metadata known, buckets shared out)", results["portfolio_starts"]))
    for live in {r["scenario"] for r in rows}:
        one = next((r for r in rows if r["scenario"] == live and r["instances"] == 1), None)
        two = next((r for r in rows if r["scenario"] == live and r["instances"] == 2), None)
        if one and two and one["live_taken_s"] and one["ms_per_portfolio_update"]:
            print(
                f"{live}, 2 instances / 1: live taken {two['live_taken_s'] / one['live_taken_s']:.2f} x, "
                f"latency p50 {two['latency_p50_s'] / one['latency_p50_s']:.2f} x, CPU per portfolio update "
                f"{two['ms_per_portfolio_update'] / one['ms_per_portfolio_update']:.2f} x"
            )
    for line in results["portfolio_stops"]:
        print(line)
