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
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from gateway.clock import SystemClock
from gateway.config import ExternalConfig
from gateway.errors import MarketInputError
from gateway.meter.model import LinkState
from gateway.systemd import Notifier, Watchdog
from tests.support.harness import demo, running_gateway, subscribe
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
            assert hung == {"STATUS": "hung: poller of meter meter1: no snapshot for over 2 s"}
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


def _config(tmp_path: Path, *, limit_kw: float = 100.0, baudrate: int = 9600) -> str:
    return f"""\
[opcua]
port = 0

[web]
port = 0

[security]
pki = "{tmp_path / "pki"}"
users = "{tmp_path / "users"}"

[archive]
path = ""

[market]
limit_kw = {limit_kw}

[[meters]]
id = "meter1"
protocol = "dlms"
referencing = "ln"
baudrate = {baudrate}

[meters.simulator]
history_days = 0.1
"""


class _Lines:
    """A process's stderr, line by line, kept."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._seen = 0

    async def until(self, text: str, timeout: float = 60.0) -> str:
        """The first line from the last one found on that contains ``text``."""
        async with asyncio.timeout(timeout):
            while True:
                while self._seen < len(self.lines):
                    line = self.lines[self._seen]
                    self._seen += 1
                    if text in line:
                        return line
                raw = await self._stream.readline()
                assert raw, f"stderr ended before {text!r}: {self.lines[-5:]}"
                self.lines.append(raw.decode().rstrip())


async def test_sighup_applies_what_may_change_and_refuses_the_rest_whole(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify")
    config = tmp_path / "smx.toml"
    config.write_text(_config(tmp_path))
    env = {**os.environ, **listener.environ()}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "--config", str(config),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    log = _Lines(proc.stderr)
    try:
        await listener.until(lambda f: "READY" in f)

        # A market rule: applied, and the manager told it is reloading, then ready again.
        config.write_text(_config(tmp_path, limit_kw=50.0))
        proc.send_signal(signal.SIGHUP)
        assert "market.limit_kw" in await log.until("configuration reloaded:")
        assert "RELOADING" in await listener.until(lambda f: "RELOADING" in f or "READY" in f)
        assert (await listener.until(lambda f: "READY" in f))["READY"] == "1"

        # A meter's line needs a restart: nothing of the file applied, not even the market.
        config.write_text(_config(tmp_path, limit_kw=20.0, baudrate=19200))
        proc.send_signal(signal.SIGHUP)
        line = await log.until("configuration not reloaded")
        assert "meters[meter1].baudrate" in line, line
        assert line.endswith("need(s) a restart; nothing applied"), line

        # A broken file: the running configuration kept, the mistake named.
        config.write_text(_config(tmp_path, limit_kw=-5.0))
        proc.send_signal(signal.SIGHUP)
        line = await log.until("configuration not reloaded, the running one kept")
        assert str(config) in line, line  # the file
        assert "limit_kw" in line, line  # and the key

        # Still serving (keep-alives are not asked for here: READY after each reload).
        await listener.until(lambda f: "READY" in f)
        proc.send_signal(signal.SIGTERM)
        await log.until("stopped by SIGTERM")
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
        listener.close()


async def test_a_reload_takes_the_new_market_limit_and_pulls_from_the_new_source(tmp_path: Path) -> None:
    first, second = tmp_path / "price-a.json", tmp_path / "price-b.json"
    first.write_text('{"value": 41.5}')
    second.write_text('{"value": 77.25}')
    spot = ExternalConfig("spot_price", "EUR/MWh", source=str(first), pull_s=3600.0)
    config = replace(demo(), external=(spot,), market=replace(demo().market, limit_kw=100.0))
    async with running_gateway(config) as run:
        gw = run.gateway
        pulled: asyncio.Queue[float] = asyncio.Queue()
        gw.external.subscribe(lambda v: pulled.put_nowait(v.value))
        async with asyncio.timeout(30):
            while (gw.external.state("spot_price", gw.clock.now()).value or None) is None:
                await pulled.get()
        assert gw.external.state("spot_price", gw.clock.now()).value.value == 41.5  # type: ignore[union-attr]
        day = gw.desk.calendar.day_of(gw.clock.now()) + timedelta(days=1)
        sixty_kw = [15.0] * gw.desk.calendar.periods_in(day)  # kWh a quarter hour
        await gw.desk.register("meter1", day, list(sixty_kw))  # within 100 kW

        loaded = replace(config, external=(replace(spot, source=str(second)),),
                         market=replace(config.market, limit_kw=50.0),
                         web=gw.config.web)  # the harness's port 0, as the file would say  # fmt: skip
        todo = gw.reload(loaded)
        assert todo.applies
        assert todo.live == ("market.limit_kw", "external.spot_price.source")
        # The pulls start again at once with the new source (not an hour later).
        async with asyncio.timeout(30):
            while await pulled.get() != 77.25:
                pass
        with pytest.raises(MarketInputError, match="50"):
            await gw.desk.register("meter1", day, list(sixty_kw), replace=True)
        # What a client sees: the new source's value over REST and OPC UA.
        async with aiohttp.ClientSession() as http, http.get(f"{gw.web_url}api/external/spot_price") as got:
            body = await got.json()
        assert (body["value"], body["source"]) == (77.25, str(second))
        changes = await subscribe(run, ["SMX.ExternalData.spot_price"], period_ms=100)
        values = changes.changes
        await changes.wait_for(
            lambda: any(v.Value.Value == 77.25 for v in values.get("SMX.ExternalData.spot_price", [])), 30
        )
