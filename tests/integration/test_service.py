"""The gateway as a systemd service, without systemd as PID 1: the real ``smx-gateway run``
notifies a socket the test listens on (READY, WATCHDOG, STOPPING) and logs in the journal's
format to the stream named in ``$JOURNAL_STREAM``; in-process, a lost meter keeps the
keep-alives coming and a hung poller stops them; the shipped unit passes
``systemd-analyze verify`` and keeps its hardening."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.clock import SystemClock
from gateway.meter.model import LinkState
from gateway.systemd import Notifier, Watchdog
from tests.support.harness import demo, running_gateway
from tests.support.notify import NotifyListener

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "smx-gateway.service"


async def test_run_under_a_service_manager_notifies_keeps_alive_and_logs_for_the_journal(
    tmp_path: Path,
) -> None:
    listener = NotifyListener(tmp_path / "notify")
    out = (tmp_path / "stdout").open("wb")
    st = os.fstat(out.fileno())
    env = {
        **os.environ,
        **listener.environ(),
        "WATCHDOG_USEC": "1000000",  # a keep-alive every 0.5 s
        "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "--port", "0", "--web-port", "0",
        cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        ready = await listener.until(lambda f: "READY" in f)
        assert ready["READY"] == "1"
        assert re.fullmatch(r"serving OPC UA at opc\.tcp://127\.0\.0\.1:\d+/smx", ready["STATUS"]), ready
        for _ in range(3):
            assert await listener.until(lambda f: "WATCHDOG" in f) == {"WATCHDOG": "1"}
        proc.send_signal(signal.SIGTERM)
        assert await listener.until(lambda f: "STOPPING" in f) == {"STOPPING": "1", "STATUS": "stopping"}
        async with asyncio.timeout(30):
            rc = await proc.wait()
        assert proc.stderr is not None
        err = (await proc.stderr.read()).decode()
        assert rc == 0, err
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
        out.close()
        listener.close()
    # Before READY nothing claimed to be serving; no keep-alive before it either.
    kinds = [next(iter(f)) for f in listener.received]
    assert kinds.index("READY") < kinds.index("WATCHDOG")
    # The log: every line with its priority, no time stamp of its own (the journal has one).
    lines = (tmp_path / "stdout").read_text().splitlines()
    logged = [line for line in lines if line.startswith("<")]
    assert "<6>gateway: stopped by SIGTERM" in logged, lines
    assert all(re.match(r"<[0-7]>\S+: ", line) for line in logged), logged
    assert not any(re.match(r"\d{4}-\d\d-\d\d ", line) for line in lines), lines
    assert not err.strip(), err


@contextlib.asynccontextmanager
async def _watched(
    hung: Callable[[], list[str]], tmp_path: Path, interval_s: float = 0.4
) -> AsyncIterator[NotifyListener]:
    """A watchdog of ``hung`` notifying a listener, a keep-alive every ``interval_s / 2``."""
    listener = NotifyListener(tmp_path / "notify")
    notifier = Notifier(listener.address)
    dog = asyncio.create_task(Watchdog(notifier, interval_s, hung, SystemClock()).run())
    try:
        yield listener
    finally:
        dog.cancel()
        notifier.close()
        listener.close()


async def test_a_lost_meter_is_not_hung_the_keep_alives_go_on(tmp_path: Path) -> None:
    config = demo()
    config = replace(config, meters=(replace(config.meters[0], loss_timeout_s=2.0),))
    async with running_gateway(config) as run:
        gw = run.gateway
        poller = gw.pollers["meter1"]
        async with _watched(gw.hung, tmp_path) as listener:
            await listener.until(lambda f: "WATCHDOG" in f)
            gw.simulators["meter1"].faults.silent = True
            async with asyncio.timeout(60):
                while (await poller.wait_snapshot()).diagnostics.link is not LinkState.LOST:
                    pass
            # Lost, and the poller still publishes every cycle: keep-alives keep coming.
            n = len(listener.received)
            for _ in range(3):
                await listener.until(lambda f: "WATCHDOG" in f)
            assert not [f for f in listener.received[n:] if "STATUS" in f]
            assert gw.hung() == []


async def test_a_hung_poller_stops_the_keep_alives_until_it_turns_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_gateway(demo()) as run:
        gw = run.gateway
        poller = gw.pollers["meter1"]
        await poller.wait_snapshot()
        # A read that never returns (what the line's timeouts exist to prevent): the loop
        # stops in the cycle, no snapshot is published.
        release = asyncio.Event()
        cycle = poller._cycle

        async def hang(started: float) -> None:
            await release.wait()
            await cycle(started)

        monkeypatch.setattr(poller, "_cycle", hang)
        async with _watched(lambda: gw.hung(2.0), tmp_path) as listener:
            hung = await listener.until(lambda f: "STATUS" in f)
            assert re.fullmatch(r"hung: poller of meter meter1: no snapshot for \d+ s", hung["STATUS"]), hung
            said = len(listener.received)
            release.set()
            assert await listener.until(lambda f: "STATUS" in f) == {"STATUS": "serving"}
            # While hung, not one keep-alive: the manager's WatchdogSec runs out and it restarts us.
            assert listener.received[said - 1 :] == [hung, {"WATCHDOG": "1"}, {"STATUS": "serving"}]


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd (.ci/run does)")
    return tool


def _installed_unit(tmp_path: Path) -> Path:
    """The shipped unit with ExecStart at this venv's smx-gateway (verify checks it exists)."""
    exe = Path(sys.executable).parent / "smx-gateway"
    assert exe.exists(), exe
    text = UNIT.read_text().replace("ExecStart=/opt/smx/bin/smx-gateway", f"ExecStart={exe}")
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    return unit


def test_the_unit_verifies_clean(tmp_path: Path) -> None:
    unit = _installed_unit(tmp_path)
    done = subprocess.run([_analyze(), "verify", str(unit)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert [line for line in (done.stdout + done.stderr).splitlines() if unit.name in line] == []


def test_the_unit_keeps_its_hardening(tmp_path: Path) -> None:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    expected = {
        "Type": ["notify"], "WatchdogSec": ["30"], "Restart": ["on-failure"], "User": ["smx"],
        "SupplementaryGroups": ["dialout"], "ProtectSystem": ["strict"],
        "ReadWritePaths": ["/var/lib/smx/archive /var/lib/smx/pki"], "NoNewPrivileges": ["yes"],
        "PrivateTmp": ["yes"], "CapabilityBoundingSet": [""], "MemoryMax": ["192M"],
    }  # fmt: skip
    for key, values in expected.items():
        assert settings.get(key) == values, key
    done = subprocess.run(
        [_analyze(), "security", "--offline=true", str(_installed_unit(tmp_path))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert level, done.stdout + done.stderr
    # systemd's scale: 10 is a service without any protection; below 2 is "OK".
    assert float(level[1]) < 2.0, done.stdout
