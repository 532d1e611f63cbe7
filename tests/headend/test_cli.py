"""smx-headend: check-config, the storage chosen by the configuration, the DSN's password."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from headend.cli import _with_password, main, repository
from headend.config import parse_config
from headend.storage.postgres import PostgresRepository
from headend.storage.sqlite import SqliteRepository


def test_check_config_says_ok_or_names_the_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text('profile = "demo"\n[storage]\npath = "var/h.sqlite"\n')
    assert main(["check-config", str(good)]) == 0
    assert "OK, storage sqlite" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[broker]\nurl = "mqtt://broker:1883"\n')
    assert main(["check-config", str(bad)]) == 2
    assert "plain MQTT only in the demo profile" in capsys.readouterr().err


def test_the_configured_backend_and_the_password_from_its_file(tmp_path: Path) -> None:
    sqlite = parse_config({"profile": "demo", "storage": {"path": str(tmp_path / "db" / "h.sqlite")}}, "x")
    assert isinstance(repository(sqlite), SqliteRepository)
    assert (tmp_path / "db").is_dir()
    secret = tmp_path / "pw"
    secret.write_text("s3cr:et/\n")
    pg = parse_config(
        {
            "profile": "demo",
            "storage": {
                "backend": "postgresql",
                "dsn": "postgresql://smx@db:5433/smx",
                "password_file": str(secret),
            },
        },
        "x",
    )
    assert isinstance(repository(pg), PostgresRepository)
    assert (
        _with_password("postgresql://smx@db:5433/smx", "s3cr:et/")
        == "postgresql://smx:s3cr%3Aet%2F@db:5433/smx"
    )
    assert _with_password("postgresql://smx@db/smx", "") == "postgresql://smx@db/smx"


def run_config(tmp_path: Path, more: str = "") -> Path:
    """A configuration file with no broker at all (port 1 refuses: the ingest retries), an
    SQLite file and the page on a free port; ``more`` appended."""
    config = tmp_path / "headend.toml"
    config.write_text(
        'profile = "demo"\n[broker]\nurl = "mqtt://127.0.0.1:1"\n'
        f'[storage]\npath = "{tmp_path / "h.sqlite"}"\n[http]\nlisten = "127.0.0.1:0"\n' + more
    )
    return config


@contextlib.asynccontextmanager
async def running(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``smx-headend run --config config``, killed at the end unless it ended."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "headend.cli", "run", "--config", str(config), "--name", "h-test",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def printed(process: asyncio.subprocess.Process, prefix: str) -> str:
    """The rest of the first line the process printed that starts with ``prefix``."""
    assert process.stdout is not None
    while not (line := (await process.stdout.readline()).decode()).startswith(prefix):
        assert line, f"smx-headend run ended without printing {prefix!r}"
    return line.removeprefix(prefix).strip()


async def test_run_serves_the_fleet_page_beside_the_ingest_and_stops_on_sigterm(tmp_path: Path) -> None:
    # No broker at all: the page is served all the same, the ingest retries.
    async with running(run_config(tmp_path)) as process, asyncio.timeout(30):
        url = await printed(process, "fleet page: ")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url), url
        async with aiohttp.ClientSession() as http, http.get(url + "api/sites") as resp:
            assert resp.status == 200
            assert await resp.json() == []
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0


async def test_run_serves_the_portfolios_over_opcua_with_opcua_configured(tmp_path: Path) -> None:
    """[opcua]: the portfolios' OPC UA server starts with the service (production profile:
    a viewer over SignAndEncrypt) and stops with it on SIGTERM."""
    from asyncua import ua

    from gateway.security.pki import Pki
    from gateway.security.users import Role
    from headend.opcua import NAMESPACE
    from tests.support.harness import add_user, secure_client, shared_pki, trust_test_client

    pki, users = tmp_path / "pki", tmp_path / "users"
    config = run_config(
        tmp_path,
        f'[opcua]\nport = 0\nnode_cache = "{shared_pki() / "node-cache"}"\n'
        f'[security]\npki = "{pki}"\nusers = "{users}"\nlogin_delay_s = 0.05\n'
        '[[portfolios]]\nname = "north"\nsites = ["smx-1", "smx-2"]\n',
    )
    add_user(parse_config({"opcua": {}, "security": {"users": str(users)}, "profile": "demo"}, "x"), "viewer",
             Role.VIEWER)  # fmt: skip
    trust_test_client(pki)
    async with running(config) as process, asyncio.timeout(60):
        endpoint = await printed(process, "portfolios over OPC UA: ")
        assert re.fullmatch(r"opc\.tcp://127\.0\.0\.1:\d+/smx-headend", endpoint), endpoint
        client = await secure_client(endpoint, "viewer", server_certificate=Pki(pki).own_certificate)
        async with client:
            ns = await client.get_namespace_index(NAMESPACE)
            north = client.get_node(ua.NodeId("Portfolios/north", ns))
            assert (await north.read_browse_name()).Name == "north"
            # No broker, no tick yet: the aggregate is awaited, not a zero.
            net = await client.get_node(ua.NodeId("Portfolios/north/NetPower", ns)).read_data_value(
                raise_on_bad_status=False
            )
            assert net.StatusCode.name == "BadWaitingForInitialData"
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0


def test_check_config_reads_the_token_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "headend.toml"
    config.write_text(f'profile = "demo"\n[http]\nlisten = "0.0.0.0:8090"\ntoken_file = "{tmp_path / "t"}"\n')
    assert main(["check-config", str(config)]) == 2
    assert "token_file" in capsys.readouterr().err
    (tmp_path / "t").write_text("a-token-of-the-fleet-page\n")
    assert main(["check-config", str(config)]) == 0


def test_a_stopped_instance_says_what_it_did(tmp_path: Path) -> None:
    from gateway.clock import SystemClock
    from headend.cli import summary
    from headend.service import Headend

    config = parse_config({"profile": "demo"}, "x")
    headend = Headend(config, SqliteRepository(tmp_path / "h.sqlite"), SystemClock(), name="h-1")
    headend.counters.messages, headend.counters.accepted, headend.counters.rows = 12, 10, 40
    headend.counters.refused[("smx-x", "json")] += 2
    assert summary(headend) == (
        "SMX head-end h-1 stopped: 12 messages, 10 accepted, 40 rows in 0 batches, 0 acks, "
        "0 replay requests, 2 refused"
    )


def test_a_stopped_instance_says_what_its_portfolios_cost(tmp_path: Path) -> None:
    from gateway.clock import SystemClock
    from headend.cli import portfolio_summary
    from headend.ingest import Ingest
    from headend.portfolio.service import PortfolioService

    config = parse_config(
        {"profile": "demo", "portfolios": [{"name": "a", "sites": ["s-1"]}, {"name": "b", "sites": ["s-2"]}]},
        "x",
    )
    service = PortfolioService(config, SqliteRepository(tmp_path / "h.sqlite"), SystemClock(), Ingest(),
                               name="h-1")  # fmt: skip
    c = service.counters
    c.ticks, c.tick_cpu_s, c.live, c.registers, c.partials_sent, c.partials_taken = 100, 0.5, 7, 3, 64, 128
    c.refused["partials"] += 1
    assert portfolio_summary(service) == (
        "SMX head-end h-1 portfolios: 2 portfolio(s), 100 ticks, 0.500 s CPU in them (2.500 ms a portfolio "
        "update), 7 live and 3 register values, 64 partials sent, 128 taken, 1 refused"
    )
