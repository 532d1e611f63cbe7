"""node-opcua, the independent OPC UA stack of the tests (``tests/node/client.mjs``): installed
from its lock file by the test that needs it, with client identities made for it. Used
against the gateway (``tests/integration/test_node_opcua.py``) and the head-end's portfolio
server (``tests/headend/test_portfolio_opcua.py``)."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.security.pki import create_application_certificate, write_private_key

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
#: npm's words for a registry it could not reach (anything else fails the module).
_UNREACHABLE = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|"
    r"network request to .* failed|npm error network|code E(?:SOCKET|PROXY)"
)


async def run_process(*command: str, cwd: Path, timeout: float) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def node_executable() -> str:
    """The ``node`` executable, with tests/node/node_modules installed from the lock file."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = "node-opcua interoperability: Node.js (node and npm) is not installed"
        print(reason)
        pytest.skip(reason)
    installed = NODE_DIR / "node_modules" / ".package-lock.json"  # written last by npm ci
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        code, out = await run_process(npm, "ci", "--no-audit", "--no-fund", cwd=NODE_DIR, timeout=600)
        if code != 0:
            if _UNREACHABLE.search(out):
                print(f"npm ci in {NODE_DIR} could not reach the registry:\n{out}")
                lines = [line for line in out.splitlines() if _UNREACHABLE.search(line)]
                why = next((line for line in lines if "request to" in line), lines[0])
                pytest.skip(f"node-opcua interoperability: npm registry not reachable: {why.strip()}")
            pytest.fail(f"npm ci in {NODE_DIR} failed ({code}):\n{out}")
    return node


def client_identity(tmp: Path, name: str, uri: str) -> tuple[Path, Path, x509.Certificate]:
    """A client certificate and key for ``uri`` as PEM files."""
    cert, key = create_application_certificate(
        uri, common_name=f"SMX node-opcua {name}", organization="tests", hostnames=["localhost"]
    )
    cert_file, key_file = tmp / f"{name}.pem", tmp / f"{name}-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private_key(key_file, key)
    return cert_file, key_file, cert
