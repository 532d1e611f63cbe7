"""One head-end instance for ``python -m bench headend``, in a process of its own (its CPU and
RSS are its own), as ``smx-headend run`` starts it (:func:`headend.cli.repository`,
:class:`headend.service.Headend`), with one addition: the repository is wrapped so that
every committed batch yields its publish-to-commit lags. The load generator stamps each
record with the time it published it, so a stored row carries its publish time: the lag of
a row is the time ``store`` returned (the commit) minus its Timestamp. Every
``--lag-every``-th row of a batch is taken (rows, not messages: a minute record has 108).

Prints ``SMX head-end bench runner <name>`` when connected, then a JSON line every
``--report-s``: the instance's counters, the writers whose metadata it knows, what it holds
for want of metadata, its CPU seconds (all threads) and RSS, and the lags since the last
line. With ``--profile FILE`` the event loop's thread runs under cProfile from the first
SIGUSR1 on (the steady state, not the start), written at exit. ``--incoming-queue N``
replaces the MQTT client's bound of messages received and not yet taken (the service's own:
10,000; beyond it aiomqtt discards what the broker delivered, QoS 1 included) until SIGUSR2.

    python -m bench.headend_runner --config headend.toml --name bench-1 [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import aiomqtt

from gateway.clock import SystemClock
from gateway.uplink.writers import BY_NAME
from headend.cli import repository
from headend.config import load_config
from headend.service import STORED_WRITERS, Headend
from headend.storage import Batch, Repository, SiteState


class TimedRepository:
    """A repository whose ``store`` notes the lag of every ``every``-th row it committed, and
    which counts the time spent in ``store`` and in saving the sites' states (the flush's two
    parts in the database; the acknowledgements are published by their own task)."""

    def __init__(self, inner: Repository, every: int) -> None:
        self.inner = inner
        self.every = every
        self.lags: list[float] = []
        self.store_s = 0.0
        self.stores = 0
        self.save_site_s = 0.0
        self.site_saves = 0

    async def save_site(self, site: SiteState) -> None:
        await self.save_sites([site])

    async def save_sites(self, sites: Sequence[SiteState]) -> None:
        started = time.perf_counter()
        await self.inner.save_sites(sites)
        self.save_site_s += time.perf_counter() - started
        self.site_saves += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def store(self, batch: Batch) -> int:
        started = time.perf_counter()
        n = await self.inner.store(batch)
        committed = time.time()
        self.store_s += time.perf_counter() - started
        self.stores += 1
        self.lags += [committed - s.time.timestamp() for s in batch.samples[:: self.every]]
        self.lags += [committed - e.time.timestamp() for e in batch.events[:: self.every]]
        return n

    def take(self) -> list[float]:
        lags, self.lags = self.lags, []
        return lags


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _report(headend: Headend, repo: TimedRepository) -> dict[str, Any]:
    c = headend.counters
    t = os.times()
    return {
        "t": time.time(),
        "messages": c.messages,
        "accepted": c.accepted,
        "rows": c.rows,
        "batches": c.batches,
        "acks": c.acks,
        "requests": c.requests,
        "refused": sum(c.refused.values()),
        "known": len(headend.ingest._known),
        "held": headend.ingest.held,
        "cpu_s": t.user + t.system,
        "rss_mib": _rss_mib(),
        "store_s": repo.store_s,
        "stores": repo.stores,
        "save_site_s": repo.save_site_s,
        "save_sites": repo.site_saves,
        "gc_s": GC.seconds,
        "lags": [round(x, 4) for x in repo.take()],
    }


#: The aiomqtt clients made with another queue bound (:func:`incoming_queue`), and the bound
#: each was made with.
CLIENTS: list[tuple[aiomqtt.Client, int]] = []


def incoming_queue(size: int) -> None:
    """Every aiomqtt client of this process made with ``max_queued_incoming_messages=size``
    (until :func:`own_queue`)."""
    original = aiomqtt.Client

    class Client(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            own = kwargs.get("max_queued_incoming_messages") or 0
            kwargs["max_queued_incoming_messages"] = size
            super().__init__(*args, **kwargs)
            CLIENTS.append((self, own))

    aiomqtt.Client = Client  # type: ignore[misc]


def own_queue() -> None:
    """Each client's queue bound back to the one its service gave it (the storage's 10,000,
    the portfolios' 50,000): for the steady state."""
    for client, own in CLIENTS:
        client._queue._maxsize = own


class GcClock:
    """Seconds spent in the garbage collector (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


GC = GcClock()


async def _run(args: argparse.Namespace, profiler: cProfile.Profile | None) -> None:
    config = load_config(args.config)
    inner = repository(config)
    await inner.open()
    repo = TimedRepository(inner, args.lag_every)
    writers = tuple(BY_NAME) if args.all_writers else STORED_WRITERS
    headend = Headend(config, cast(Repository, repo), SystemClock(), name=args.name, writers=writers)
    task = asyncio.create_task(headend.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    if profiler is not None:
        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
    loop.add_signal_handler(signal.SIGUSR2, own_queue)

    async def report() -> None:
        await headend.connected.wait()
        print(f"SMX head-end bench runner {args.name}", flush=True)
        while True:
            print(json.dumps(_report(headend, repo)), flush=True)
            await asyncio.sleep(args.report_s)

    reporter = asyncio.create_task(report())
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        reporter.cancel()
        with contextlib.suppress(Exception):
            await headend.flush(None)
        print(json.dumps(_report(headend, repo)), flush=True)
        await inner.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--name", default="bench-headend")
    parser.add_argument("--report-s", type=float, default=0.5)
    parser.add_argument("--lag-every", type=int, default=20)
    parser.add_argument("--profile", type=Path, help="write the event loop thread's cProfile here")
    parser.add_argument("--all-writers", action="store_true", help="subscribe to live too (capacity)")
    parser.add_argument("--incoming-queue", type=int, help="the MQTT client's queue of received messages")
    args = parser.parse_args()
    if args.incoming_queue is not None:
        incoming_queue(args.incoming_queue)
    profiler = cProfile.Profile() if args.profile else None
    try:
        asyncio.run(_run(args, profiler))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.profile))


if __name__ == "__main__":
    main()
