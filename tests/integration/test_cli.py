"""The command line as a user types it: `smx-gateway run` prints an endpoint that serves
the simulated meter; `check-config` reports mistakes; SIGINT and SIGTERM stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from asyncua import Client, ua

from gateway.opcua.ids import SMX_NAMESPACE

ROOT = Path(__file__).resolve().parents[2]


def _ignore_sigint() -> None:
    """What a shell does to a background job without job control, nohup-style starts too."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("stop", "inherited"),
    [(signal.SIGINT, None), (signal.SIGINT, _ignore_sigint), (signal.SIGTERM, None)],
    ids=["sigint", "sigint-ignored-by-the-parent", "sigterm"],
)
async def test_run_prints_endpoint_serves_values_and_stops_on_a_signal(
    stop: signal.Signals, inherited: Callable[[], None] | None
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "--port", "0", "--web-port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=inherited,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            line = (await proc.stdout.readline()).decode()
            match = re.match(
                r"SMX gateway serving OPC UA at (opc\.tcp://127\.0\.0\.1:\d+/smx)$", line.strip()
            )
            assert match, line
            meter_line = (await proc.stdout.readline()).decode()
            assert "browse Objects/SMX/Meters/meter1" in meter_line
            async with Client(match[1]) as client:
                ns = await client.get_namespace_index(SMX_NAMESPACE)
                voltage = client.get_node(ua.NodeId("meter1.1-0:32.7.0", ns))
                good: asyncio.Queue[float] = asyncio.Queue()

                class Handler:
                    def datachange_notification(self, node: object, val: float, data: object) -> None:
                        if data.monitored_item.Value.StatusCode.is_good():  # type: ignore[attr-defined]
                            good.put_nowait(val)

                sub = await client.create_subscription(200, Handler())
                await sub.subscribe_data_change(voltage)
                assert 200 < await good.get() < 260
        proc.send_signal(stop)
        async with asyncio.timeout(15):
            rc = await proc.wait()
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert rc == 0, log
        assert f"stopped by {stop.name}" in log
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()


async def test_check_config_names_file_key_and_expectation(tmp_path: Path) -> None:
    bad = tmp_path / "smx.toml"
    bad.write_text('[[meters]]\nid = "m"\nurl = "/dev/ttyUSB0"\nbaudrate = 9601\n', encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "check-config", str(bad),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 2
    assert f"{bad}: meters[0].baudrate: expected one of" in err.decode()
    good = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "check-config", str(ROOT / "smx.example.toml"),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await good.communicate()
    assert good.returncode == 0, err.decode()
    assert "OK, 1 meter(s)" in out.decode()
