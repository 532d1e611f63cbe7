"""One head-end instance for ``python -m bench portfolio``: ``smx-headend run`` itself
(:func:`headend.cli.main`: the ingest, the portfolio service, the REST API), in a process
of its own, with one hook: after every second's :meth:`PortfolioService.combine` (the moment
the aggregates can be read: REST, OPC UA) it prints a JSON line with the wall-clock time
then, the second, and per portfolio the aggregate's ``newest`` (the newest member value
summed), the newest value of its most-behind reporting bucket, fresh, members, coverage and
buckets reporting; and the service's counters (ticks, their CPU, live values taken), the
process's CPU and RSS, the writers whose metadata it knows, the buckets it owns, the
messages waiting in its portfolio connection's queue and the newest live value it has taken
of any member (fresh or not: how far behind its intake is).

``SMX_BENCH_PROFILE=DIR`` runs it under cProfile and writes its stats to ``DIR/<name>.prof``
when it stops (where an instance's CPU goes under load).

``--incoming-queue N`` as :mod:`bench.headend_runner` (the retained metadata of 10,000 sites
at the start; each client's own bound again at SIGUSR2).

    python -m bench.portfolio_runner --config headend.toml --name p-1 [--incoming-queue 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.headend_runner import incoming_queue, own_queue
from headend.cli import main as headend_main
from headend.portfolio.service import PortfolioService


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(service: PortfolioService, second: datetime, available: float) -> dict[str, Any]:
    c = service.counters
    t = os.times()
    portfolios: dict[str, list[Any]] = {}
    for name, a in service.aggregates.items():
        if a.time != second:
            continue
        behind = [
            p.newest.timestamp()
            for p in service._partials.get(name, {}).values()
            if p.newest is not None and second - p.time <= service.rules.bucket_stale
        ]
        newest = None if a.newest is None else a.newest.timestamp()
        portfolios[name] = [newest, min(behind, default=None), a.fresh, a.members, a.coverage,
                            a.buckets_reporting, a.buckets]  # fmt: skip
    client = service._client
    taken = [m.power_time for m in service._state.values() if m.power_time is not None]
    return {
        "t": available,
        "second": second.timestamp(),
        "cpu_s": t.user + t.system,
        "rss_mib": _rss_mib(),
        "ticks": c.ticks,
        "tick_cpu_s": c.tick_cpu_s,
        "live": c.live,
        "registers": c.registers,
        "owned": len(service.owned),
        "known": len(service.ingest._known),
        "queued": 0 if client is None else client._queue.qsize(),
        # The newest live value it has taken of any member, fresh or not (its intake's lag).
        "newest_taken": max(taken).timestamp() if taken else None,
        "portfolios": portfolios,
    }


def hook() -> None:
    """PortfolioService.combine, then a line on stdout."""
    original = PortfolioService.combine

    def combine(self: PortfolioService, now: datetime) -> None:
        original(self, now)
        print(json.dumps(report(self, now, time.time())), flush=True)

    PortfolioService.combine = combine  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--name", default="bench-portfolio")
    parser.add_argument("--incoming-queue", type=int, help="the MQTT clients' queue of received messages")
    args = parser.parse_args()
    if args.incoming_queue is not None:
        incoming_queue(args.incoming_queue)
        signal.signal(signal.SIGUSR2, lambda _sig, _frame: own_queue())
    hook()
    argv = ["run", "--config", str(args.config), "--name", args.name, "--listen", "127.0.0.1:0"]
    profile = os.environ.get("SMX_BENCH_PROFILE")
    if not profile:
        sys.exit(headend_main(argv))
    # SMX_BENCH_PROFILE=DIR: the whole run under cProfile, its stats written to DIR/<name>.prof.
    import cProfile

    with cProfile.Profile() as prof:
        code = headend_main(argv)
    prof.dump_stats(str(Path(profile) / f"{args.name}.prof"))
    sys.exit(code)


if __name__ == "__main__":
    main()
