"""Soak: the whole gateway for simulated days on a fast clock, faults sprinkled in
(``python -m bench soak [--soak-days 7]``).

The harness is ``tests/support/soak.py`` (the test suite runs the week at a 60-second poller cycle);
here the poller runs its real 1-second cycle. Reported: the CPU the simulated time cost,
the faults met, what the archive holds against what it should, the cycles late, and the
process's allocated memory blocks and asyncio tasks at a mark (end of day 2, or a third
of a shorter run) against the end.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from bench.tables import table
from tests.support.soak import run_soak


async def measure_soak(days: float) -> dict[str, list[dict[str, Any]]]:
    with tempfile.TemporaryDirectory(prefix="smx-bench-soak-") as tmp:
        # The virtual-time loop is its own event loop: run it on a worker thread.
        r = await asyncio.to_thread(run_soak, Path(tmp), days=days, cycle_s=1.0)
    (mark, blocks0, tasks0), (_, blocks1, tasks1) = r.samples[0], r.samples[-1]
    complete = not r.lp1_missing and not r.lp1_duplicates and not r.minutes_missing_outside_faults
    ok = r.gateway_alive and complete and r.late_cycles == 0 and tasks1 <= tasks0 and r.block_growth <= 0.02
    return {
        "soak": [
            {
                "simulated days": r.days,
                "cycle s": r.cycle_s,
                "CPU s": r.cpu_s,
                "faults": len(r.faults),
                "cycles": r.cycles,
                "late": r.late_cycles,
                "LP1 periods": f"{r.lp1_expected - len(r.lp1_missing)}/{r.lp1_expected}",
                "LP1 duplicates": r.lp1_duplicates,
                "minutes missing outside faults": len(r.minutes_missing_outside_faults),
                "events": r.events,
                f"blocks {mark} -> end": f"{blocks0} -> {blocks1} ({100 * r.block_growth:+.2f} %)",
                "tasks": f"{tasks0} -> {tasks1}",
                "verdict": "PASS" if ok else "FAIL",
            }
        ],
        "soak_faults": [{"fault": f} for f in r.faults],
    }


def print_soak(results: dict[str, Any]) -> None:
    print(table("Soak: the whole demo gateway in virtual time, 1-second cycle, faults sprinkled in",
                results["soak"]))  # fmt: skip
    if results["soak_faults"]:
        print(table("", results["soak_faults"]))
