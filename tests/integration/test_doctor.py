"""``smx-gateway doctor`` on the cases an installer meets: the simulated meter answering,
a wrong referencing (and which one works), a wrong password, a missing device, a device
another program holds, a full disk, a certificate about to expire; the command's exit code.
Real parts: the simulator through the socket transport, a pseudo-terminal held by a real
process, a real tmpfs filled to the last byte, real certificate files."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.clock import SystemClock
from gateway.config import MeterConfig, SimulatorConfig
from gateway.doctor import Check, check_certificate, check_device, check_disk, check_meter, report
from gateway.security.pki import create_application_certificate
from gateway.simulator.server import simulator_from_config
from tests.support.disks import fill, tiny_disk

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def simulated(**settings: object) -> AsyncIterator[str]:
    """A simulated meter on a TCP port; its socket:// URL."""
    sim = simulator_from_config(
        SimulatorConfig(hdlc_baudrate=9600, history_days=0.05, **settings), SystemClock()
    )  # type: ignore[arg-type]
    await sim.start()
    try:
        yield sim.url
    finally:
        await sim.stop()


def _meter(url: str, **settings: object) -> MeterConfig:
    return MeterConfig(
        id="m1", url=url, **{"protocol": "dlms", "referencing": "ln", "baudrate": 9600, **settings}
    )  # type: ignore[arg-type]


async def test_the_simulated_meter_answers_and_its_clock_agrees() -> None:
    async with simulated(referencing="ln") as url:
        meter, clock = await check_meter(_meter(url))
    assert meter.ok, meter
    assert meter.found.endswith("answers dlms LN at 9600 Bd"), meter.found
    assert clock.ok, clock
    assert clock.name == "meter m1: clock"


async def test_a_wrong_referencing_fails_and_says_which_way_the_meter_answers() -> None:
    async with simulated(referencing="ln") as url:
        (meter,) = await check_meter(_meter(url, referencing="sn"))
    assert not meter.ok
    assert "no answer dlms SN at 9600 Bd" in meter.found, meter.found
    assert "it answers dlms LN at 9600 Bd" in meter.found, meter.found
    assert meter.fix == 'set protocol = "dlms", referencing = "ln", baudrate = 9600 in [[meters]] m1'


async def test_a_wrong_password_is_named_as_such_not_as_a_wrong_protocol() -> None:
    async with simulated(referencing="ln", password="SECRET12") as url:
        (meter,) = await check_meter(_meter(url, password="00000000"))
    assert not meter.ok
    assert "refused the password" in meter.found, meter.found
    assert "password" in meter.fix


def test_a_missing_device_is_named_with_the_fix() -> None:
    got = check_device(_meter("/dev/ttyNOPE7"))
    assert not got.ok
    assert got.found == "/dev/ttyNOPE7 does not exist"
    assert "/dev/serial/by-id/" in got.fix


def test_a_device_another_program_holds_is_busy(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        device = os.ttyname(slave)
        assert check_device(_meter(device)).ok
        with open(device, "rb") as held:  # a real process holds it open
            holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=held)
        try:
            got = check_device(_meter(device))
        finally:
            holder.kill()
            holder.wait()
        assert not got.ok
        assert f"is open in process(es) {holder.pid}" in got.found, got.found
        assert "systemctl stop smx-gateway" in got.fix
    finally:
        os.close(master)
        os.close(slave)


def test_a_full_disk_fails_with_what_is_left(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk") as disk:
        archive = disk / "archive"
        archive.mkdir()
        assert not check_disk(str(archive)).ok  # 64 KiB is below the minimum anyway
        fill(disk)
        got = check_disk(str(archive))
    assert not got.ok
    assert got.found.startswith("0 MiB free of 0 MiB"), got.found
    assert "keep_days" in got.fix
    assert check_disk(str(tmp_path), used_per_day=1.0).ok  # the test machine's disk, 1 byte a day


def _own(pki: Path, days: int) -> None:
    cert, _ = create_application_certificate("urn:smx:gateway", common_name="SMX", organization="tests",
                                             lifetime=dt.timedelta(days=days))  # fmt: skip
    from cryptography.hazmat.primitives.serialization import Encoding

    (pki / "own" / "certs").mkdir(parents=True)
    (pki / "own" / "certs" / "smx.der").write_bytes(cert.public_bytes(Encoding.DER))


def test_a_certificate_about_to_expire_fails_one_with_a_year_passes(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    _own(tmp_path / "soon", 30)
    own, trust = check_certificate(str(tmp_path / "soon"), now)
    assert not own.ok
    assert "(30 days)" in own.found or "(29 days)" in own.found, own.found
    assert "restart the gateway" in own.fix
    assert trust.ok
    _own(tmp_path / "year", 365)
    assert check_certificate(str(tmp_path / "year"), now)[0].ok
    missing = check_certificate(str(tmp_path / "none"), now)[0]
    assert (missing.ok, missing.fix) == (False, "start the gateway once: it makes one")


def test_the_report_prints_each_fix_under_its_fail() -> None:
    text = report([Check("a", True, "fine"), Check("b", False, "broken", "mend it")])
    assert text.splitlines() == [
        "PASS  a: fine",
        "FAIL  b: broken",
        "      fix: mend it",
        "1 passed, 1 failed",
    ]


async def test_the_command_exits_non_zero_when_a_check_fails(tmp_path: Path) -> None:
    config = tmp_path / "smx.toml"
    config.write_text(f'[archive]\npath = "{tmp_path / "archive"}"\n[security]\npki = "{tmp_path / "pki"}"\n'
                      '[[meters]]\nid = "m1"\nurl = "/dev/ttyNOPE7"\n')  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "doctor", "--config", str(config),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    lines = out.decode().splitlines()
    assert proc.returncode == 1, err.decode()
    assert lines[0] == "FAIL  meter m1: serial device: /dev/ttyNOPE7 does not exist", lines
    assert lines[1].startswith("      fix: ")
    assert any(line.startswith("FAIL  own certificate: none at") for line in lines), lines
    assert lines[-1].endswith("failed")
