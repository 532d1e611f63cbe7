"""The gateway as a box installs it: the wheel built from this checkout, installed with the
pinned constraints into a fresh venv (no checkout on the path), gives a working
``smx-gateway``: it serves the simulated meter over OPC UA and the web page from its
package data, prints the example configuration it ships, and that passes ``check-config``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from asyncua import Client, ua

from gateway.config import load_config
from gateway.opcua.ids import SMX_NAMESPACE

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "deploy" / "constraints.txt"


def _pins(lines: list[str]) -> set[str]:
    return {line.strip().lower() for line in lines if line.strip() and not line.startswith("#")}


def _pip(venv: Path, *args: str) -> str:
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *args], capture_output=True, text=True,
                          check=False, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout."""
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # pip builds in the tree
    assert built.returncode == 0, built.stderr
    (found,) = dist.glob("smx_gateway-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed with the constraints."""
    venv = tmp_path_factory.mktemp("package") / "box"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    _pip(venv, "install", "--quiet", "-c", str(CONSTRAINTS), str(wheel))
    return venv


def _env() -> dict[str, str]:
    """The environment without this checkout's venv or path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_the_constraints_pin_exactly_what_the_wheel_pulls_in(venv: Path) -> None:
    frozen = _pins(_pip(venv, "freeze").splitlines())
    assert {p for p in frozen if not p.startswith("smx-gateway")} == _pins(
        CONSTRAINTS.read_text().splitlines()
    )


def test_the_installed_gateway_ships_its_example_configuration(venv: Path, tmp_path: Path) -> None:
    exe = venv / "bin" / "smx-gateway"
    example = subprocess.run([str(exe), "example-config"], capture_output=True, text=True, check=True,
                             cwd=tmp_path, env=_env(), timeout=120)  # fmt: skip
    assert example.stdout == (ROOT / "smx.example.toml").read_text(encoding="utf-8")
    (tmp_path / "smx.toml").write_text(example.stdout, encoding="utf-8")
    checked = subprocess.run([str(exe), "check-config", "smx.toml"], capture_output=True, text=True,
                             check=False, cwd=tmp_path, env=_env(), timeout=120)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("smx.toml: OK"), checked.stdout


async def test_the_installed_gateway_serves_opcua_and_its_page(venv: Path, tmp_path: Path) -> None:
    exe = venv / "bin" / "smx-gateway"
    box = tmp_path
    env = _env()
    proc = await asyncio.create_subprocess_exec(
        str(exe), "run", "--port", "0", "--web-port", "0", cwd=box, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(120):
            endpoint = web = ""
            while not web:
                line = (await proc.stdout.readline()).decode()
                assert line, "smx-gateway stopped before serving"
                if m := re.match(r"SMX gateway serving OPC UA at (\S+)", line):
                    endpoint = m[1]
                if m := re.search(r"web page and REST API: (\S+)", line):
                    web = m[1]
            async with Client(endpoint) as client:
                ns = await client.get_namespace_index(SMX_NAMESPACE)
                name = await client.get_node(ua.NodeId("meter1.1-0:32.7.0", ns)).read_browse_name()
                assert name.Name
            page = await asyncio.to_thread(lambda: urllib.request.urlopen(web, timeout=30).read().decode())
            assert "<html" in page.lower()
        # Nothing of the checkout: the modules come from the venv.
        assert not (box / "gateway").exists()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rc = await proc.wait()
        assert rc == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()


def test_the_install_script_lays_out_a_box_and_keeps_its_configuration(wheel: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"

    def install(*args: str) -> subprocess.CompletedProcess[str]:
        script = str(ROOT / "deploy" / "install.sh")
        return subprocess.run(["sh", script, "--root", str(root), *args], capture_output=True, text=True,
                              check=False, timeout=600, env=_env())  # fmt: skip

    first = install(str(wheel))
    assert first.returncode == 0, first.stdout + first.stderr
    assert (root / "opt/smx/bin/smx-gateway").exists()
    unit = root / "etc/systemd/system/smx-gateway.service"
    assert unit.read_text() == (ROOT / "deploy" / "smx-gateway.service").read_text()
    # The configuration writes only where the unit lets the service write.
    toml = root / "etc/smx/smx.toml"
    config = load_config(toml)
    assert config.archive.path == "/var/lib/smx/archive"
    assert (config.security.pki, config.security.users) == ("/var/lib/smx/pki", "/var/lib/smx/pki/users")
    assert config.opcua.node_cache == "/var/cache/smx"
    assert "ReadWritePaths=/var/lib/smx/archive /var/lib/smx/pki" in unit.read_text()
    assert "CacheDirectory=smx" in unit.read_text()
    assert stat.S_IMODE(toml.stat().st_mode) == 0o640
    for folder in ("var/lib/smx", "var/lib/smx/archive", "var/lib/smx/pki"):
        assert stat.S_IMODE((root / folder).stat().st_mode) == 0o750, folder

    # An update keeps the box's configuration.
    toml.write_text(toml.read_text() + "# the installer's own\n")
    again = install(str(wheel))
    assert again.returncode == 0, again.stderr
    assert f"kept {toml}" in again.stdout
    assert toml.read_text().endswith("# the installer's own\n")

    missing = install(str(tmp_path / "nothing.whl"))
    assert missing.returncode == 2
    assert "no wheel at" in missing.stderr
