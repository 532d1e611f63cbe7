"""What the web page and REST API cost the gateway's core (``python -m bench web``).

The demo gateway runs in this process (simulated meter, DLMS LN at 9600 Bd, archive,
OPC UA, web); a client process keeps 0, 1 and 10 live feeds open for a window while this
process's CPU time is read (so the row says what the clients cost the box, not what they
cost themselves), then times sequential REST GETs. The 0-feed row is the baseline: the
gateway reading the meter each second, archiving and serving OPC UA.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.demo import settled_demo

FEEDS = (0, 1, 10)
ROUNDS = 3
ROOT = Path(__file__).resolve().parents[1]
REQUESTS = 200


async def measure_web(seconds: float) -> dict[str, list[dict[str, Any]]]:
    """Medians over :data:`ROUNDS` windows of ``seconds`` per feed count."""
    async with settled_demo("smx-bench-web-") as (gateway, work):
        # Rounds of 0, 1 and 10 feeds, medians per count: the meter's own readouts (profiles
        # every 15 minutes) land in some window, not in every window of one count.
        cpu: dict[int, list[float]] = {n: [] for n in FEEDS}
        seen: dict[int, dict[str, Any]] = {}
        for _round in range(ROUNDS):
            for n in FEEDS:
                result, used, wall = await _window(gateway.web_url, n, seconds, str(work))
                cpu[n].append(1000 * used / wall)
                seen[n] = result
        base = statistics.median(cpu[0])
        rows = []
        for n in FEEDS:
            per_second = statistics.median(cpu[n])
            feeds = seen[n]["feeds"]
            rows.append({
                "live feeds": n,
                "server CPU ms/s": per_second,
                "per feed ms/s": (per_second - base) / n if n else 0.0,
                "events/s per feed": statistics.median(e for e, _s in feeds) / seconds if n else 0.0,
                "bytes/s per feed": statistics.median(s for _e, s in feeds) / seconds if n else 0.0,
            })  # fmt: skip
        latencies = []
        for name in ("snapshot", "advice"):
            ms = sorted(1000 * d for d in seen[0][name])
            latencies.append({
                "GET": f"/api/meters/meter1/{name}", "requests": len(ms),
                "median ms": statistics.median(ms), "p95 ms": ms[int(0.95 * len(ms)) - 1],
            })  # fmt: skip
        return {"web_feeds": rows, "web_requests": latencies}


async def _window(url: str, feeds: int, seconds: float, work: str) -> tuple[dict[str, Any], float, float]:
    """Run the client with ``feeds`` live feeds; this process's CPU seconds during the feeds."""
    out = Path(work) / f"client-{feeds}.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.web_client", url, str(feeds), str(seconds), str(REQUESTS), str(out),
        cwd=ROOT,
    )  # fmt: skip
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)  # the feeds' window (the bench's own timing, not a test)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    if await process.wait() != 0:
        raise RuntimeError(f"web client with {feeds} feeds failed")
    return json.loads(out.read_text()), cpu, wall
