"""Load: 50 OPC UA sessions with 30 monitored items each, plus clients connecting and
disconnecting in a loop, against the whole gateway for ``--load-minutes`` (default 10)
(``python -m bench load``).

The simulated meter, the gateway and the clients are three processes (:mod:`tests.support.processes`).
The gateway's RSS is sampled at every client tick (10 s); the first fifth of the run (at
least a minute) is warm-up, growth is the largest RSS after it against the RSS at its end.
A late or skipped 1-second cycle shows in the gateway's own counters, read at the start
and the end. Goals (issue 7): no error, RSS growth ≤ 5 %, no late cycle.
``tests/integration/test_load.py`` runs the same for a minute in ``make test``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.tables import table
from tests.support.processes import (
    METER_VALUES,
    Child,
    gateway,
    gateway_config,
    load_clients,
    settled_gateway,
    simulator,
)

SESSIONS = 50
ITEMS = 30
CHURN = 2
TICK_S = 10.0
GROWTH_GOAL = 0.05


async def run_load(
    work: Path,
    minutes: float,
    tick_s: float = TICK_S,
    node_cache: str = "",
    after: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Run the load against a gateway in ``work`` (on its second start: certificate and
    OPC UA node cache made); what a reader of the table needs, and what ``after`` found
    (called with the endpoint once the clients are gone, the gateway still running)."""
    async with simulator(work, history_days=0.05) as (_sim, url):
        config = gateway_config(work, url, node_cache=node_cache)
        async with settled_gateway(work, config):
            pass
        async with gateway(work, config) as (gw, endpoint):
            found = await _load(gw, endpoint, minutes * 60, tick_s)
            if after is not None:
                found.update(await after(endpoint))
            return found


async def _load(gw: Child, endpoint: str, seconds: float, tick_s: float) -> dict[str, Any]:
    warm_s = max(seconds / 5, min(60.0, seconds / 2))
    samples: list[tuple[float, float]] = []
    async with load_clients(endpoint, METER_VALUES[:ITEMS], sessions=SESSIONS, churn=CHURN, seconds=seconds,
                            tick_s=tick_s, diagnostics="meter1", settle_cycles=15) as clients:  # fmt: skip
        ready = await clients.until("ready", timeout=600)
        cpu0, wall0 = gw.cpu(), time.monotonic()
        samples.append((0.0, gw.rss()))
        while (event := await clients.next(timeout=seconds + 120))["event"] != "done":
            samples.append((event["t"], gw.rss()))
        cpu, wall = gw.cpu() - cpu0, time.monotonic() - wall0
    warm = [rss for t, rss in samples if t <= warm_s]
    after = [rss for t, rss in samples if t > warm_s] or warm[-1:]
    before, after_c = event["counters_before"], event["counters_after"]
    return {
        "sessions": ready["sessions"],
        "items": ready["sessions"] * ITEMS,
        "churn clients": CHURN,
        "minutes": event["seconds"] / 60,
        "connects in loop": event["churn"],
        "notifications/s": event["notifications"] / event["seconds"],
        "longest silence s": event["longest_gap_s"],
        "errors": event["errors"] + event["bad"] + (SESSIONS - ready["sessions"]),
        "first errors": "; ".join(event["first_errors"]) or "-",
        "cycles": after_c.get("Cycles", 0) - before.get("Cycles", 0),
        "late cycles": after_c.get("LateCycles", 0) - before.get("LateCycles", 0),
        "skipped cycles": after_c.get("SkippedCycles", 0) - before.get("SkippedCycles", 0),
        "CPU %": 100 * cpu / wall,
        "RSS after warm-up MiB": warm[-1],
        "RSS max later MiB": max(after),
        "RSS growth %": 100 * (max(after) - warm[-1]) / warm[-1],
        "rss_samples": samples,
    }


async def measure_load(seconds: float, minutes: float = 10.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="smx-bench-load-") as tmp:
        found = await run_load(Path(tmp), minutes)
    ok = (
        found["errors"] == 0
        and found["late cycles"] == 0
        and found["skipped cycles"] == 0
        and found["RSS growth %"] <= 100 * GROWTH_GOAL
    )
    found["verdict"] = "PASS" if ok else "FAIL"
    return {"load": [found]}


def print_load(results: dict[str, Any]) -> None:
    rows = [{k: v for k, v in row.items() if k != "rss_samples"} for row in results["load"]]
    columns = list(rows[0])
    half = len(columns) // 2
    print(table("Load: 50 sessions x 30 items at 1000 ms + 2 clients connecting in a loop (own processes)",
                [{k: r[k] for k in columns[:half]} for r in rows]))  # fmt: skip
    print(table("", [{k: r[k] for k in columns[half:]} for r in rows]))
