"""Run the integration tests in two pytest processes at once (``make test`` calls it).

The integration tests spend their time waiting on real time — a simulated meter answering
at 9600 Bd, subscriptions over 30 s, a gateway killed and restarted twenty times — not on
the CPU (a whole run uses under a quarter of one core). Two processes halve the wall time
on a two-core box (files that load the CPU themselves, :data:`EXCLUSIVE`, run alone
afterwards). The files are split by their measured durations (``WEIGHTS``, seconds;
a new file counts :data:`UNKNOWN` until measured) so the two halves end together. Each
process's output is printed whole when it ends; the exit status is the worse of the two.

    python tools/parallel_tests.py [pytest arguments ...]
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "tests" / "integration"
#: Wall seconds per file, measured on the 2-core sandbox with ``--durations=0`` (2026-11-26, 917 s in all).
WEIGHTS = {
    "test_end_to_end.py": 350,
    "test_dlms_session.py": 138,
    "test_archive_crash.py": 128,
    "test_dlms_faults.py": 101,
    "test_simulator.py": 42,
    "test_archive_backfill.py": 33,
    "test_simulator_dlms.py": 26,
    "test_web_page.py": 19,
    "test_rest_api.py": 18,
    "test_dst.py": 16,
    "test_load_profile.py": 10,
    "test_market_opcua.py": 9,
    "test_cli.py": 9,
    "test_events.py": 8,
    "test_browser_driver.py": 7,
    "test_history.py": 3,
    "test_address_space_snapshot.py": 1,
    "test_openvpn.py": 15,
    "test_web_security.py": 12,
    "test_node_opcua.py": 16,
    "test_opcua_security.py": 22,
    "test_opcua_limits.py": 9,
    "test_line_faults.py": 105,
}
UNKNOWN = 30
PROCESSES = 2
#: Files that load the CPU themselves (their own client processes, a virtual-time week):
#: run after the two halves, alone, so that they neither slow the others' real-time waits
#: nor are slowed by them.
EXCLUSIVE = ("test_load.py", "test_soak.py")


def split(files: list[Path], n: int = PROCESSES) -> list[list[Path]]:
    """Longest first, each to the group with the least time so far."""
    groups: list[list[Path]] = [[] for _ in range(n)]
    totals = [0] * n
    for path in sorted(files, key=lambda p: -WEIGHTS.get(p.name, UNKNOWN)):
        k = totals.index(min(totals))
        groups[k].append(path)
        totals[k] += WEIGHTS.get(path.name, UNKNOWN)
    return [g for g in groups if g]


def main(pytest_args: list[str]) -> int:
    files = sorted(p for p in INTEGRATION.glob("test_*.py") if p.name not in EXCLUSIVE)
    started = time.monotonic()
    worst = 0
    with contextlib.ExitStack() as stack:
        running = []
        for k, group in enumerate(split(files), start=1):
            log = stack.enter_context(tempfile.TemporaryFile(mode="w+"))
            names = [str(p.relative_to(ROOT)) for p in group]
            print(f"[integration {k}] {' '.join(p.name for p in group)}", flush=True)
            command = [sys.executable, "-m", "pytest", *pytest_args, *names]
            process = stack.enter_context(
                subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            )
            running.append((k, process, log))
        for k, process, log in running:
            code = process.wait()
            log.seek(0)
            print(f"\n[integration {k}] exit {code} after {time.monotonic() - started:.0f} s", flush=True)
            sys.stdout.write(log.read())
            sys.stdout.flush()
            worst = max(worst, code)
    alone = [str(p.relative_to(ROOT)) for p in sorted(INTEGRATION.glob("test_*.py")) if p.name in EXCLUSIVE]
    if alone:
        print(f"\n[integration alone] {' '.join(Path(n).name for n in alone)}", flush=True)
        code = subprocess.call([sys.executable, "-m", "pytest", *pytest_args, *alone], cwd=ROOT)
        print(f"[integration alone] exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        worst = max(worst, code)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
