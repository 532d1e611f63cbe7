"""``make bench``: the IEC 62056-21 line budget, measured side by side in one run.

Every row runs the real stack (simulated meter paced at the line's baud rate, socket://
transport, IEC 62056-21 core, poller) for a few seconds of real time and reports what
the line carried. Results are printed as a table and written to bench/results/.

    python -m bench [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.clock import ManualClock
from gateway.config import demo_config
from gateway.meter.iec21 import Iec21Meter, Iec21Session
from gateway.simulator.physics import HouseholdModel, MeterPhysics
from gateway.simulator.server import SimulatedMeter
from gateway.transport import Framing, open_serial

RESULTS = Path(__file__).parent / "results"


async def cycle_row(baud: int, reaction: float, seconds: float) -> dict[str, Any]:
    """Run the demo gateway against a meter of the given speed; measure steady cycles."""
    base = demo_config()
    meter = base.meters[0]
    assert meter.simulator is not None
    sim = replace(meter.simulator, reaction_time_s=reaction, max_baudrate=baud, history_days=1.0)
    meter = replace(meter, baudrate=baud, simulator=sim)
    config = replace(base, meters=(meter,), opcua=replace(base.opcua, port=0))
    gateway = Gateway(config)
    started = time.perf_counter()
    task = asyncio.create_task(gateway.run())
    await gateway.ready.wait()
    poller = gateway.pollers["meter1"]
    snapshot = await poller.wait_snapshot()
    while not any(r.value is not None for r in snapshot.readings.values()):
        snapshot = await poller.wait_snapshot()
    first_value_s = time.perf_counter() - started
    durations, sizes = [], []
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        snapshot = await poller.wait_snapshot()
        durations.append(snapshot.diagnostics.cycle_duration_s)
        sizes.append(snapshot.diagnostics.bytes_per_cycle)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    fast = [r for r in snapshot.readings.values() if r.refresh_s is not None and r.refresh_s < 1.5]
    second_set = sum(1 for r in snapshot.readings.values() if r.obis.d == 7)
    per_value = [r.refresh_s for r in snapshot.readings.values() if r.refresh_s is not None]
    diag = snapshot.diagnostics
    return {
        "line": f"{baud} Bd, tr {reaction * 1000:.0f} ms",
        "cycle_median_s": statistics.median(durations),
        "bytes_per_cycle_median": statistics.median(sizes),
        "line_capacity_bytes_s": baud // 10,
        "values_every_second": f"{sum(1 for r in fast if r.obis.d == 7)}/{second_set}",
        "slowest_refresh_s": max(per_value) if per_value else None,
        "not_yet_read": sum(1 for r in snapshot.readings.values() if r.value is None),
        "late_cycles": diag.late_cycles,
        "skipped_cycles": diag.skipped_cycles,
        "cycles": diag.cycles,
        "first_value_s": first_value_s,
        "readouts_pending": poller.readouts_pending,  # first day of profiles still being read
    }


async def profile_row(baud: int, reaction: float) -> dict[str, Any]:
    """One day of load profile 1 (96 periods) in one R5 P.01, against pure wire time."""
    day = datetime(2026, 6, 21, tzinfo=UTC)
    clock = ManualClock(day)
    physics = MeterPhysics(HouseholdModel(seed=3), day, history_days=2.0)
    sim = SimulatedMeter(physics, clock, max_baudrate=baud, reaction_time_s=reaction)
    await sim.start()
    transport = await open_serial(sim.url, baudrate=300, framing=Framing.SEVEN_E_ONE, timeout=5)
    session = Iec21Session(transport, max_baudrate=baud, response_timeout=5.0)
    meter = Iec21Meter(session)
    await meter.open()
    clock.advance(86400)
    sent0, recv0 = session.stats.bytes_sent, session.stats.bytes_received
    t0 = time.perf_counter()
    blocks = await meter.read_profile("P.01", day, day + timedelta(days=1))
    elapsed = time.perf_counter() - t0
    nbytes = session.stats.bytes_sent - sent0 + session.stats.bytes_received - recv0
    await meter.close()
    await transport.close()
    await sim.stop()
    wire = nbytes * 10 / baud
    return {
        "line": f"{baud} Bd, tr {reaction * 1000:.0f} ms",
        "entries": sum(len(b.entries) for b in blocks),
        "bytes": nbytes,
        "read_s": elapsed,
        "wire_s": wire,
        "ratio": elapsed / wire,
    }


def table(title: str, rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    cells = [[_fmt(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = [title, "  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


async def main(seconds: float) -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    lines = [(19200, 0.02), (9600, 0.02), (9600, 0.2)]
    cycles = [await cycle_row(baud, tr, seconds) for baud, tr in lines]
    profiles = [await profile_row(baud, tr) for baud, tr in lines]
    print(table("IEC 62056-21 1-second cycle (one R5 per value)", cycles))
    print()
    print(table("One day of load profile 1 (96 periods, one R5 P.01)", profiles))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps({"cycles": cycles, "profiles": profiles}, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="steady-state seconds per row")
    asyncio.run(main(parser.parse_args().seconds))
