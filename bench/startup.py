"""Time from start to serving values (``python -m bench startup``).

``smx-gateway run`` (the demo: simulated DLMS meter at 9600 Bd) is started as its own
process, as a box starts it; an OPC UA client polls until it reads a Good voltage. Rows:
the endpoint printed (the server listens), the first Good value read over OPC UA, and the
process's RSS then. The first start creates the application certificate (RSA key pair),
later starts find it: both are shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncua import Client, ua

from bench.tables import table
from gateway.opcua.ids import SMX_NAMESPACE
from tests.support.processes import rss_mib

ROOT = Path(__file__).resolve().parents[1]
STARTS = 3


async def measure_startup(_seconds: float) -> dict[str, list[dict[str, Any]]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="smx-bench-startup-") as work:
        first = await _start(Path(work))  # creates var/certs: the first start of a box
        later = [await _start(Path(work)) for _ in range(STARTS)]
    rows.append({"start": "first (creates the certificate)", **first})
    rows.append({
        "start": f"later (median of {STARTS})",
        **{k: statistics.median(r[k] for r in later) for k in first},
    })  # fmt: skip
    return {"startup": rows}


class FirstGood:
    """Subscription handler: when the first Good value arrived."""

    def __init__(self) -> None:
        self.seen = asyncio.Event()
        self.at = 0.0

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        if not self.seen.is_set() and data.monitored_item.Value.StatusCode.is_good():
            self.at = time.perf_counter()
            self.seen.set()


async def _start(work: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "--port", "0", "--web-port", "0",
        cwd=work, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert process.stdout is not None
    try:
        endpoint = ""
        while not endpoint:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise RuntimeError("the gateway stopped before serving")
            if line.startswith("SMX gateway serving OPC UA at "):
                endpoint = line.split(" at ", 1)[1].strip()
        listening = time.perf_counter() - t0
        async with Client(endpoint, timeout=10) as client:
            ns = await client.get_namespace_index(SMX_NAMESPACE)
            good = FirstGood()
            subscription = await client.create_subscription(100, good)
            await subscription.subscribe_data_change(client.get_node(ua.NodeId("meter1.1-0:32.7.0", ns)))
            await asyncio.wait_for(good.seen.wait(), 60)
            serving = good.at - t0
        rss = rss_mib(process.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        await process.wait()
    return {"listening s": listening, "first Good value s": serving, "RSS MiB": rss}


def print_startup(results: dict[str, Any]) -> None:
    print(table("Start to serving (smx-gateway run, demo, own process)", results["startup"]))
