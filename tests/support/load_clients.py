"""OPC UA client load in its own process (the load test and ``python -m bench clients|load``).

``sessions`` asyncua clients each hold one subscription (publishing interval ``period_ms``)
with a monitored item per node; ``churn`` more clients connect, subscribe, wait for their
first data and disconnect in a loop. The process writes JSON lines to stdout:

- ``{"event": "ready", ...}`` once every session has had data for every one of its items;
- ``{"event": "tick", ...}`` every ``tick_s`` (counts so far) — the parent samples the
  server's CPU and memory on these, so it never sleeps on its own;
- ``{"event": "done", ...}`` after ``seconds`` past ready: notifications per session, the
  longest silence of any session, bad values, errors (first few in words), churn cycles
  and, with ``--diagnostics METER``, the gateway's cycle counters at ready and at the end
  (``--settle-cycles N``: sessions open once the meter has been polled N times).

A client is the server's guest: every error is counted and reported, never raised, so
the parent sees all of them at once.

    python -m tests.support.load_clients ENDPOINT --namespace URI --node ID [--node ID ...]
        [--sessions 50] [--churn 2] [--period-ms 1000] [--seconds 60] [--tick-s 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from asyncua import Client, ua

#: Gateway counters read with ``--diagnostics``: browse name under <meter>.Diagnostics.
COUNTERS = ("Cycles", "LateCycles", "SkippedCycles", "CommunicationErrors")


@dataclass
class Session:
    """One subscribed client and what it received."""

    items: int
    notifications: int = 0
    bad: int = 0
    last: float = 0.0
    longest_gap_s: float = 0.0
    seen: set[Any] = field(default_factory=set)
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    measuring: bool = False

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        now = time.monotonic()
        if self.measuring and self.last:
            self.longest_gap_s = max(self.longest_gap_s, now - self.last)
        self.last = now
        self.notifications += 1
        if not data.monitored_item.Value.StatusCode.is_good():
            self.bad += 1
        self.seen.add(node.nodeid)
        if len(self.seen) >= self.items:
            self.complete.set()

    def status_change_notification(self, status: Any) -> None:
        self.bad += 1  # the server ended the subscription (timeout, session closed)


@dataclass
class Load:
    endpoint: str
    namespace: str
    nodes: list[str]
    period_ms: float
    hold_s: float = 1.0
    errors: list[str] = field(default_factory=list)
    churn_cycles: int = 0

    def error(self, where: str, err: BaseException) -> None:
        self.errors.append(f"{where}: {type(err).__name__}: {err}")

    async def subscribed(self) -> tuple[Client, Session]:
        """A connected client whose subscription has delivered every item once."""
        client = Client(self.endpoint, timeout=30)
        await client.connect()
        try:
            ns = await client.get_namespace_index(self.namespace)
            session = Session(items=len(self.nodes))
            subscription = await client.create_subscription(self.period_ms, session)
            nodes = [client.get_node(ua.NodeId(int(n) if n.isdigit() else n, ns)) for n in self.nodes]
            handles = await subscription.subscribe_data_change(nodes, sampling_interval=self.period_ms)
            refused = [h for h in handles if not isinstance(h, int)]
            if refused:
                raise RuntimeError(f"{len(refused)} monitored items refused: {refused[0]}")
            await asyncio.wait_for(session.complete.wait(), 60)
            return client, session
        except BaseException:
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise

    async def churn(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                client, _session = await self.subscribed()
                await asyncio.sleep(self.hold_s)  # a short visit: connected, then gone
                await client.disconnect()
                self.churn_cycles += 1
            except Exception as err:
                self.error("churn", err)
                await asyncio.sleep(1)  # a refusing server is not hammered


async def counters(client: Client, namespace: str, meter: str) -> dict[str, int]:
    ns = await client.get_namespace_index(namespace)
    nodes = [client.get_node(ua.NodeId(f"{meter}.Diagnostics.{name}", ns)) for name in COUNTERS]
    values = await client.read_values(nodes)
    return dict(zip(COUNTERS, (int(v or 0) for v in values), strict=True))  # None: not yet counted


async def settle(endpoint: str, namespace: str, meter: str, cycles: int) -> None:
    """Wait until the gateway's meter has run ``cycles`` polling cycles (past its start)."""
    reached = asyncio.Event()

    class Watch:
        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            if val is not None and val >= cycles:
                reached.set()

    async with Client(endpoint, timeout=30) as client:
        ns = await client.get_namespace_index(namespace)
        subscription = await client.create_subscription(500, Watch())
        await subscription.subscribe_data_change(
            client.get_node(ua.NodeId(f"{meter}.Diagnostics.Cycles", ns))
        )
        await asyncio.wait_for(reached.wait(), 600)


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def main(args: argparse.Namespace) -> int:
    if args.diagnostics and args.settle_cycles:
        await settle(args.endpoint, args.namespace, args.diagnostics, args.settle_cycles)
    load = Load(args.endpoint, args.namespace, args.node, args.period_ms, args.churn_hold_s)
    t0 = time.monotonic()
    results = await asyncio.gather(*(load.subscribed() for _ in range(args.sessions)), return_exceptions=True)
    clients: list[Client] = []
    sessions: list[Session] = []
    for result in results:
        if isinstance(result, BaseException):
            load.error("session", result)
        else:
            clients.append(result[0])
            sessions.append(result[1])
    before: dict[str, int] = {}
    if args.diagnostics and clients:
        before = await counters(clients[0], args.namespace, args.diagnostics)
    emit("ready", sessions=len(sessions), connect_s=time.monotonic() - t0, errors=load.errors[:5])
    for session in sessions:
        session.measuring = True
    stop = asyncio.Event()
    churners = [asyncio.create_task(load.churn(stop)) for _ in range(args.churn)]
    started = time.monotonic()
    end = started + args.seconds
    while (now := time.monotonic()) < end:
        await asyncio.sleep(min(args.tick_s, end - now))  # the load's own pace, not a wait on the server
        emit(
            "tick",
            t=time.monotonic() - started,
            notifications=sum(s.notifications for s in sessions),
            churn=load.churn_cycles,
            errors=len(load.errors),
        )
    stop.set()
    await asyncio.gather(*churners)
    after: dict[str, int] = {}
    if args.diagnostics and clients:
        after = await counters(clients[0], args.namespace, args.diagnostics)
    elapsed = time.monotonic() - started
    silence = max((time.monotonic() - s.last for s in sessions), default=0.0)
    for client in clients:
        try:
            await client.disconnect()
        except Exception as err:
            load.error("disconnect", err)
    rates = [s.notifications / elapsed for s in sessions]
    emit(
        "done",
        sessions=len(sessions),
        seconds=elapsed,
        notifications=sum(s.notifications for s in sessions),
        min_rate=min(rates, default=0.0),
        longest_gap_s=max((max(s.longest_gap_s, silence) for s in sessions), default=0.0),
        bad=sum(s.bad for s in sessions),
        churn=load.churn_cycles,
        errors=len(load.errors),
        first_errors=load.errors[:5],
        counters_before=before,
        counters_after=after,
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("endpoint")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--node", action="append", required=True, help="node id, string or number (repeat)")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--churn", type=int, default=2, help="clients connecting and disconnecting in a loop")
    parser.add_argument("--churn-hold-s", type=float, default=1.0, help="how long a churning client stays")
    parser.add_argument("--period-ms", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tick-s", type=float, default=5.0)
    parser.add_argument("--diagnostics", default="", help="meter id whose cycle counters to report")
    parser.add_argument(
        "--settle-cycles", type=int, default=0, help="with --diagnostics: wait for this many cycles"
    )
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # errors are counted and reported as JSON
    sys.exit(asyncio.run(main(parser.parse_args())))
