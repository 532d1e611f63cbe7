"""The gateway, the simulated meter and the load clients as their own processes, as a box
runs them, with what the kernel says about their CPU time and memory (``/proc``).

Shared by the load test and ``python -m bench clients|load``: a process's numbers are
its own, not the test runner's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.obis import CATALOGUE
from gateway.opcua.ids import SMX_NAMESPACE
from tests.support.simulated_meter import modelled

ROOT = Path(__file__).resolve().parents[2]
_TICKS = os.sysconf("SC_CLK_TCK")
#: Every OBIS value the demo meter publishes Good (its 1-second set and registers): a
#: catalogue row the simulator lacks is Bad, which the load clients count as errors.
METER_VALUES = tuple(f"meter1.{info.obis}" for info in CATALOGUE if modelled(info.obis))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (proc(5) fields 14, 15)


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ProcessLookupError(pid)


def gateway_config(work: Path, meter_url: str | None, *, archive: bool = True, node_cache: str = "") -> Path:
    """A configuration file for a gateway in ``work``: the demo profile (anonymous reading on
    the None endpoint, certificates made in ``work``), loopback ports the OS picks at run
    time, one DLMS LN meter at 9600 Bd on ``meter_url`` or the in-process simulator; the OPC
    UA node cache in ``node_cache`` (default: ``work/cache``)."""
    meter = (
        f'url = "{meter_url}"\n'
        if meter_url
        else 'url = "socket://127.0.0.1:0"\n[meters.simulator]\nhdlc_baudrate = 9600\nhistory_days = 2\n'
    )
    text = (
        'log_level = "WARNING"\n'
        '[opcua]\nhost = "127.0.0.1"\n'
        f'node_cache = "{node_cache or work / "cache"}"\n'
        '[security]\nprofile = "demo"\nanonymous = true\ndiscovery = true\n'
        f'pki = "{work / "certs"}"\nusers = "{work / "certs" / "users"}"\n'
        f'[archive]\npath = "{work / "archive" if archive else ""}"\n'
        '[web]\nhost = "127.0.0.1"\n'
        '[[meters]]\nid = "meter1"\nprotocol = "dlms"\nreferencing = "ln"\nbaudrate = 9600\n' + meter
    )
    path = work / "smx.toml"
    path.write_text(text)
    return path


@dataclass
class Child:
    """A running child process and the line it announced itself with."""

    process: asyncio.subprocess.Process
    announced: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> float:
        return rss_mib(self.pid)


@contextlib.asynccontextmanager
async def child(*args: str, cwd: Path, announce: str, timeout: float = 120) -> AsyncIterator[Child]:
    """``python args...`` until it prints a line starting with ``announce``; stopped with
    SIGINT (as Ctrl-C or systemd would) when the block ends, SIGKILL if it hangs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"{args} ended before {announce!r}:\n" + "".join(seen[-30:]))
                seen.append(line)
                if line.startswith(announce):
                    break
        # Keep reading what it prints, so a full pipe never blocks it.
        drain = asyncio.create_task(_drain(process.stdout))
        try:
            yield Child(process, line.strip())
        finally:
            drain.cancel()
    finally:
        await interrupt(process, 15)


async def interrupt(process: asyncio.subprocess.Process, timeout: float) -> None:
    """Stop ``process`` as Ctrl-C does (SIGINT: a clean stop), killed if it takes longer
    than ``timeout`` s."""
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


@contextlib.asynccontextmanager
async def simulator(work: Path, history_days: float = 2) -> AsyncIterator[tuple[Child, str]]:
    """``smx-gateway simulate`` (DLMS and IEC on one port, 9600 Bd HDLC) and its URL."""
    async with child(
        "-m", "gateway", "simulate", "--listen", "127.0.0.1:0", "--history-days", str(history_days),
        cwd=work, announce="simulated meter listening on ",
    ) as sim:  # fmt: skip
        yield sim, sim.announced.rsplit(" ", 1)[1]


@contextlib.asynccontextmanager
async def gateway(work: Path, config: Path) -> AsyncIterator[tuple[Child, str]]:
    """``smx-gateway run --config`` on ports the OS picks, and its OPC UA endpoint."""
    async with child(
        "-m", "gateway", "run", "--config", str(config), "--port", "0", "--web-port", "0",
        cwd=work, announce="SMX gateway serving OPC UA at ",
    ) as gw:  # fmt: skip
        yield gw, gw.announced.split(" at ", 1)[1]


class Clients:
    """A running :mod:`tests.support.load_clients` process and the JSON lines it wrote."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    async def next(self, timeout: float = 300) -> dict[str, Any]:
        """The next event the clients report."""
        assert self.process.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            if not raw:
                code = await self.process.wait()
                assert self.process.stderr is not None
                err = (await self.process.stderr.read()).decode()[-3000:]
                raise RuntimeError(f"load clients ended (exit {code}) after {self.lines[-1:]}:\n{err}")
            with contextlib.suppress(ValueError):
                event: dict[str, Any] = json.loads(raw)
                self.lines.append(event)
                return event

    async def until(self, name: str, timeout: float = 300) -> dict[str, Any]:
        while (event := await self.next(timeout))["event"] != name:
            pass
        return event


@contextlib.asynccontextmanager
async def load_clients(
    endpoint: str,
    nodes: tuple[str, ...] | list[str],
    *,
    sessions: int,
    seconds: float,
    churn: int = 0,
    period_ms: float = 1000,
    tick_s: float = 5,
    namespace: str = SMX_NAMESPACE,
    diagnostics: str = "",
    settle_cycles: int = 0,
    churn_hold_s: float = 1.0,
) -> AsyncIterator[Clients]:
    """Start :mod:`tests.support.load_clients`; killed when the block ends if still running."""
    args = [
        "-m", "tests.support.load_clients", endpoint, "--namespace", namespace, "--sessions", str(sessions),
        "--churn", str(churn), "--period-ms", str(period_ms), "--seconds", str(seconds),
        "--tick-s", str(tick_s), "--churn-hold-s", str(churn_hold_s),
    ]  # fmt: skip
    if diagnostics:
        args += ["--diagnostics", diagnostics, "--settle-cycles", str(settle_cycles)]
    for node in nodes:
        args += ["--node", node]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        yield Clients(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def settled_gateway(work: Path, config: Path, cycles: int = 15) -> AsyncIterator[tuple[Child, str]]:
    """:func:`gateway` once it has polled its meter ``cycles`` times."""
    async with gateway(work, config) as (gw, endpoint):
        async with load_clients(endpoint, METER_VALUES[:1], sessions=0, seconds=0, diagnostics="meter1",
                                settle_cycles=cycles) as clients:  # fmt: skip
            await clients.until("done", timeout=600)
        yield gw, endpoint
