"""Two DLMS meters on one RS485 line against one meter alone (``python -m bench multidrop``).

The real gateway (in this process, real time) polls simulated DLMS LN meters over real
``socket://`` transports: one meter alone on its line, then two on one line told apart by
HDLC address (:mod:`gateway.meter.bus`), at 9600 and 19200 Bd. After the first backfill
settles, a window of ``--seconds`` (at least 30) per row: what each meter's poller got of
the line — its share, the values its cycle's core read and the line time that took, the
median and longest refresh period of the 1-second set (every value of it, over the
window's snapshots: the longest is the rotation of what the core leaves out), the energy
registers' refresh, late and skipped cycles.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.tables import table
from gateway.config import GatewayConfig, one_second_set, register_set
from gateway.meter.poller import Poller
from tests.support.harness import demo, running_gateway

SPEEDS = (9600, 19200)
#: Snapshots after the start before the window: the first backfill (an hour) is read by then.
SETTLE_CYCLES = 40


def config(work: Path, baud: int, stations: int) -> GatewayConfig:
    base_config = demo("ln")
    base = base_config.meters[0]
    assert base.simulator is not None
    meters = []
    for n in range(stations):
        mid = f"m{n + 1}"
        simulator = replace(
            base.simulator, seed=n + 1, serial_number=f"5480010{n + 1}", physical_address=17 + n,
            on_line_of="m1" if n else "", hdlc_baudrate=baud, history_days=0.2,
        )  # fmt: skip
        meters.append(replace(base, id=mid, baudrate=baud, physical_address=17 + n, simulator=simulator))
    archive = replace(base_config.archive, path=str(work / "archive"), initial_backfill_days=1 / 24)
    return replace(base_config, meters=tuple(meters), archive=archive)


async def row(baud: int, stations: int, seconds: float) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="smx-bench-multidrop-") as tmp:
        async with running_gateway(config(Path(tmp), baud, stations)) as gw:
            pollers = gw.gateway.pollers
            first = pollers["m1"]
            for _ in range(SETTLE_CYCLES):
                await first.wait_snapshot()
            before = {m: p.diagnostics for m, p in pollers.items()}
            refresh: dict[str, list[float]] = {m: [] for m in pollers}
            registers: dict[str, list[float]] = {m: [] for m in pollers}
            cores: dict[str, list[tuple[int, float]]] = {m: [] for m in pollers}
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while loop.time() < end:
                await first.wait_snapshot()
                for mid, poller in pollers.items():
                    _sample(poller, refresh[mid], registers[mid], cores[mid])
            rows = []
            for mid, poller in pollers.items():
                d0, d1 = before[mid], poller.diagnostics
                values = [v for v, _ in cores[mid]]
                rows.append({
                    "line": f"{stations} meter{'s' if stations > 1 else ''} at {baud} Bd",
                    "meter": mid,
                    "share": d1.line_share,
                    "1-s set values": len(one_second_set(poller.config)),
                    "core values/cycle p50": float(statistics.median(values)) if values else 0.0,
                    "core line s p50": statistics.median(s for _, s in cores[mid]) if values else 0.0,
                    "1-s set refresh s p50": (
                        statistics.median(refresh[mid]) if refresh[mid] else float("nan")
                    ),
                    # The slowest of the set: how long the values the core leaves out rotate.
                    "1-s set refresh s max": max(refresh[mid], default=float("nan")),
                    "registers refresh s p50": (
                        statistics.median(registers[mid]) if registers[mid] else float("nan")
                    ),
                    "cycles": d1.cycles - d0.cycles,
                    "late": d1.late_cycles - d0.late_cycles,
                    "skipped": d1.skipped_cycles - d0.skipped_cycles,
                    "errors": d1.errors - d0.errors,
                })  # fmt: skip
    return rows


def _sample(
    poller: Poller, refresh: list[float], registers: list[float], cores: list[tuple[int, float]]
) -> None:
    snapshot = poller.snapshot
    if snapshot is None:
        return
    fast = set(one_second_set(poller.config))
    slow = {i.obis for i in register_set(poller.config)}
    for obis, reading in snapshot.readings.items():
        if reading.refresh_s is None:
            continue
        if obis in fast:
            refresh.append(reading.refresh_s)
        elif obis in slow:
            registers.append(reading.refresh_s)
    if poller.core_read is not None:
        cores.append((poller.core_read.values, poller.core_read.seconds))


async def measure_multidrop(seconds: float) -> dict[str, list[dict[str, Any]]]:
    window = max(seconds, 30.0)
    rows = []
    for baud in SPEEDS:
        for stations in (1, 2):
            rows += await row(baud, stations, window)
    return {"multidrop": rows}


def print_multidrop(results: dict[str, Any]) -> None:
    print(table("One meter alone against two on one RS485 line (DLMS LN, 1-s cycle)", results["multidrop"]))
