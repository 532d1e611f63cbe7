"""The whole gateway against a bare asyncua server: CPU and memory with 0, 1, 5 and 20
OPC UA clients subscribed at 1000 ms to every value (``python -m bench clients``).

Three processes, as on a box: the simulated meter (``smx-gateway simulate``, DLMS LN at
9600 Bd), the server measured, and the clients (:mod:`tests.support.load_clients`, one process
for all sessions). The server's CPU is read from ``/proc`` over a window after the
clients' warm-up, its RSS at the window's end.

- **SMX gateway**: ``smx-gateway run --config`` (demo profile, archive on, web on) reading
  the meter every second — protocol, poller, archive files, OPC UA, web — started once
  before (certificate and OPC UA node cache made, as on a box's second start).
- **bare asyncua**: :mod:`bench.bare_server` — the same number of Double variables written
  once a second and historized by asyncua's HistorySQLite; it reads no meter at all.

Goals (issue 7): the gateway's CPU ≤ the bare server's, its RSS ≤ 100 MB.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.bare_server import NAMESPACE as BARE_NAMESPACE
from bench.tables import table
from gateway.opcua.ids import SMX_NAMESPACE
from tests.support.processes import (
    METER_VALUES,
    Child,
    child,
    gateway_config,
    load_clients,
    settled_gateway,
    simulator,
)

SESSIONS = (0, 1, 5, 20)
#: Seconds of client load before the window (subscriptions made, first publishes sent).
WARM_S = 5.0
RSS_GOAL_MIB = 100 * 1000**2 / 1024**2  # 100 MB


async def measure_clients(seconds: float) -> dict[str, list[dict[str, Any]]]:
    window = max(seconds, 10.0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="smx-bench-clients-") as tmp:
        work = Path(tmp)
        # A short meter history: the gateway's first backfill is over before the window.
        async with simulator(work, history_days=0.05) as (_sim, url):
            config = gateway_config(work, url)
            async with settled_gateway(work, config):
                pass  # the box's first start: certificate and node cache made
            async with settled_gateway(work, config) as (gw, endpoint):
                rows += await _series("SMX gateway", gw, endpoint, METER_VALUES, SMX_NAMESPACE, window)
        bare_args = (
            "-m",
            "bench.bare_server",
            "--values",
            str(len(METER_VALUES)),
            "--db",
            str(work / "h.sqlite"),
        )
        async with child(*bare_args, cwd=work, announce="bare asyncua server at ") as bare:
            endpoint = bare.announced.split(" at ", 1)[1]
            nodes = [str(n) for n in range(1, len(METER_VALUES) + 1)]
            rows += await _series(
                "bare asyncua + HistorySQLite", bare, endpoint, nodes, BARE_NAMESPACE, window
            )
    verdicts = []
    for n in SESSIONS:
        smx, bare_row = (next(r for r in rows if r["server"].startswith(s) and r["clients"] == n)
                         for s in ("SMX", "bare"))  # fmt: skip
        ratio = smx["CPU %"] / bare_row["CPU %"] if bare_row["CPU %"] else float("nan")
        verdicts.append({
            "clients": n,
            "CPU SMX / bare": ratio,
            "CPU goal (SMX <= bare)": "PASS" if ratio <= 1.0 else "FAIL",
            "RSS SMX MiB": smx["RSS MiB"],
            "RSS goal (<= 100 MB)": "PASS" if smx["RSS MiB"] <= RSS_GOAL_MIB else "FAIL",
        })  # fmt: skip
    return {"clients": rows, "clients_goals": verdicts}


async def _series(
    server: str, process: Child, endpoint: str, nodes: Sequence[str], namespace: str, window: float
) -> list[dict[str, Any]]:
    rows = []
    for n in SESSIONS:
        if n == 0:
            cpu0, wall0 = process.cpu(), time.monotonic()
            await _idle(window)
            cpu, wall, rate, errors = process.cpu() - cpu0, time.monotonic() - wall0, 0.0, 0
        else:
            async with load_clients(endpoint, nodes, sessions=n, seconds=WARM_S + window, tick_s=WARM_S,
                                    namespace=namespace) as clients:  # fmt: skip
                ready = await clients.until("ready")
                warm = await clients.until("tick")
                cpu0, wall0 = process.cpu(), time.monotonic()
                done = await clients.until("done")
                cpu, wall = process.cpu() - cpu0, time.monotonic() - wall0
                rate = (done["notifications"] - warm["notifications"]) / (done["seconds"] - warm["t"])
                errors = done["errors"] + done["bad"] + (n - ready["sessions"])
        rows.append({
            "server": server,
            "clients": n,
            "items": n * len(nodes),
            "CPU %": 100 * cpu / wall,
            "RSS MiB": process.rss(),
            "notifications/s": rate,
            "errors": errors,
        })  # fmt: skip
    return rows


async def _idle(seconds: float) -> None:
    """The window without clients: the server runs on its own (a bench's wait, not a test's)."""
    await asyncio.sleep(seconds)


def print_clients(results: dict[str, Any]) -> None:
    print(table("Server CPU and memory, clients subscribed at 1000 ms to every value (own processes)",
                results["clients"]))  # fmt: skip
    print()
    print(table("Goals: the whole gateway against the bare asyncua server", results["clients_goals"]))
