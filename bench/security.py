"""What OPC UA security costs (``python -m bench security``): None against the secure policies.

The demo gateway runs in this process (simulated meter, DLMS LN at 9600 Bd, archive, OPC
UA with the None endpoint and the three secure policies in SignAndEncrypt, web); for each
policy a client process (``bench/security_client.py``) times connections (channel with its
RSA handshake, session, activation with the password checked, close), subscribes to the
instantaneous values for a window while this process's CPU time is read, then times
sequential reads of the values. A window with no client is the baseline. Every policy
runs in each of :data:`ROUNDS` rounds; the table shows medians.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from bench.demo import bench_config, settled_demo
from gateway.config import GatewayConfig
from gateway.security.pki import Pki, create_application_certificate, write_private_key
from gateway.security.users import Role, UserDb, hash_password, verify_password

POLICIES = ("None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss")
ROUNDS = 3
ROOT = Path(__file__).resolve().parents[1]
USER = "bench"


async def measure_security(seconds: float) -> dict[str, list[dict[str, Any]]]:
    password = secrets.token_urlsafe(16)
    async with settled_demo("smx-bench-security-", lambda work: _prepare(work, password)) as (gateway, work):
        client_cert, client_key = work / "client.der", work / "client.pem"
        # Absolute: the client process runs in the repository.
        server_cert = Pki(gateway.config.security.pki).own_certificate.resolve()
        base: list[float] = []
        seen: dict[str, list[dict[str, Any]]] = {p: [] for p in POLICIES}
        for _round in range(ROUNDS):
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)  # the baseline window (the bench's own timing)
            base.append(1000 * (time.process_time() - cpu0) / (time.monotonic() - wall0))
            for policy in POLICIES:
                args = (gateway.endpoint, policy, str(client_cert), str(client_key), str(server_cert))
                seen[policy].append(await _window(args, password, seconds, str(work)))
    baseline = statistics.median(base)
    rows = []
    for policy in POLICIES:
        runs = seen[policy]
        connects = [1000 * c for r in runs for c in r["connects"]]
        reads = [1000 * c for r in runs for c in r["reads"]]
        cpu = statistics.median(r["cpu"] for r in runs)
        rows.append({
            "policy (SignAndEncrypt)": policy, "connect median ms": statistics.median(connects),
            "read median ms": statistics.median(reads), "values read": runs[0]["values"],
            "server CPU ms/s": cpu, "subscription ms/s": cpu - baseline,
            "changes/s": statistics.median(r["changes"] for r in runs) / seconds,
        })  # fmt: skip
    hashes = []
    stored = hash_password(password)
    for _ in range(5):
        t0 = time.perf_counter()
        verify_password(password, stored)
        hashes.append(1000 * (time.perf_counter() - t0))
    login = [{"check": "scrypt password (N=2^14, r=8, p=1)", "median ms": statistics.median(hashes),
              "baseline CPU ms/s": baseline}]  # fmt: skip
    return {"security_policies": rows, "security_login": login}


def _prepare(work: Path, password: str) -> GatewayConfig:
    """The demo configuration, a trusted client identity (``client.der``/``client.pem`` in
    ``work``) and a viewer, before the gateway starts."""
    config = bench_config()
    pki = Pki(config.security.pki)
    pki.create_folders()
    cert, key = create_application_certificate("urn:smx:bench-client", common_name="bench", organization="b")
    client_cert, client_key = work / "client.der", work / "client.pem"
    der = cert.public_bytes(serialization.Encoding.DER)
    client_cert.write_bytes(der)
    write_private_key(client_key, key)
    (pki.folder("trusted/certs") / "bench-client.der").write_bytes(der)
    users = UserDb.load(config.security.users)
    users.add(USER, Role.VIEWER, password=password)
    users.save()
    return config


async def _window(args: tuple[str, ...], password: str, seconds: float, work: str) -> dict[str, Any]:
    """One client run; this process's CPU per second while the client's subscription is open."""
    out = Path(work) / "client.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.security_client", *args, USER, str(seconds), str(out),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, env={**os.environ, "SMX_BENCH_PASSWORD": password},
    )  # fmt: skip
    assert process.stdout is not None
    line = await process.stdout.readline()
    if line.strip() != b"subscribed":
        await process.wait()
        raise RuntimeError(f"security client ({args[1]}) failed before subscribing: {line!r}")
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)  # the subscription's window
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    if await process.wait() != 0:
        raise RuntimeError(f"security client ({args[1]}) failed")
    result: dict[str, Any] = json.loads(out.read_text())
    result["cpu"] = 1000 * cpu / wall
    return result
