"""``smx-headend``: the fleet head-end (issue 17).

smx-headend check-config headend.toml
smx-headend run --config headend.toml [--name headend-1]
smx-headend export --config headend.toml --day 2026-12-06 [--site smx-17] [--out day.csv]

``run`` ingests and serves the REST API and the fleet page (``[http] listen``) beside it, and
with ``[opcua]`` the portfolios over OPC UA (``headend/opcua.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Coroutine
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from gateway.clock import SystemClock
from gateway.errors import GatewayError
from gateway.files import replace_file
from headend.config import HeadendConfig, load_config, with_listen
from headend.export import export_day
from headend.portfolio.service import PortfolioService
from headend.service import Headend
from headend.storage import Repository, StorageError
from headend.web.api import FleetApi, FleetServer, read_token

log = logging.getLogger("headend")


def repository(config: HeadendConfig) -> Repository:
    """The configured storage backend."""
    storage = config.storage
    if storage.backend == "postgresql":
        from headend.storage.postgres import PostgresRepository  # asyncpg only when configured

        password = ""
        if storage.password_file:
            try:
                password = Path(storage.password_file).read_text().strip()
            except OSError as err:
                raise StorageError(f"cannot read {storage.password_file}: {err.strerror or err}") from err
        return PostgresRepository(_with_password(storage.dsn, password))
    from headend.storage.sqlite import SqliteRepository

    Path(storage.path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteRepository(Path(storage.path))


def _with_password(dsn: str, password: str) -> str:
    """The DSN with the password from its file (never written in the configuration)."""
    if not password:
        return dsn
    parts = urlsplit(dsn)
    user = quote(parts.username or "", safe="")
    netloc = f"{user}:{quote(password, safe='')}@{parts.hostname or ''}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))


def _token(config: HeadendConfig) -> str:
    return read_token(config.http.token_file) if config.http.token_file else ""


async def _run(config: HeadendConfig, name: str) -> None:
    token = _token(config)  # before anything opens: a bad token file is a configuration mistake
    repo = repository(config)
    await repo.open()
    clock = SystemClock()
    headend = Headend(config, repo, clock, name=name)
    portfolios = PortfolioService(config, repo, clock, headend.ingest, name=name)
    headend.observers.append(portfolios)
    server = FleetServer(FleetApi(config, repo, clock, token, portfolios), config.http.host, config.http.port)
    opcua = None
    try:
        await server.start()
        if config.opcua is not None:
            from headend.opcua import PortfolioServer  # asyncua only when configured

            opcua = PortfolioServer(portfolios, config.opcua, config.security)
            try:
                await opcua.start()
            except OSError as err:
                raise GatewayError(
                    f"cannot serve OPC UA at {config.opcua.endpoint}: {err.strerror or err}"
                ) from err
    except BaseException as err:
        await server.stop()
        await repo.close()
        if isinstance(err, OSError):
            raise GatewayError(str(err)) from err
        raise
    jobs = [headend.run(), portfolios.run()] + ([opcua.run()] if opcua is not None else [])
    task = asyncio.create_task(_together(*jobs))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    print(f"SMX head-end {name} ingesting from {config.broker.url} into {config.storage.backend}", flush=True)
    print(f"fleet page: {server.url}", flush=True)
    if opcua is not None:
        print(f"portfolios over OPC UA: {opcua.endpoint}", flush=True)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        if opcua is not None:
            await opcua.stop()
        await server.stop()
        with contextlib.suppress(Exception):
            await headend.flush(None)  # what was received is stored; its ack comes again from the box
        await repo.close()
        print(summary(headend), flush=True)
        print(portfolio_summary(portfolios), flush=True)


async def _together(*jobs: Coroutine[Any, Any, None]) -> None:
    """Run the ingest, the portfolios (and their OPC UA server) until cancelled (none ends by itself)."""
    async with asyncio.TaskGroup() as tasks:
        for job in jobs:
            tasks.create_task(job)


def summary(headend: Headend) -> str:
    """The line a cleanly stopped instance prints last: what it did since it started, so
    the split of a shared subscription between instances can be read off their output."""
    c = headend.counters
    return (
        f"SMX head-end {headend.name} stopped: {c.messages} messages, {c.accepted} accepted, "
        f"{c.rows} rows in {c.batches} batches, {c.acks} acks, {c.requests} replay requests, "
        f"{sum(c.refused.values())} refused"
    )


def portfolio_summary(portfolios: PortfolioService) -> str:
    """The portfolio service's line after :func:`summary`: its ticks and their CPU (per
    portfolio update: the CPU of the seconds' partials and aggregates divided by the ticks
    and the portfolios), the member values taken and the partials exchanged."""
    c = portfolios.counters
    count = len(portfolios.portfolios)
    per_ms = 1000 * c.tick_cpu_s / (c.ticks * count) if c.ticks and count else 0.0
    return (
        f"SMX head-end {portfolios.name} portfolios: {count} portfolio(s), {c.ticks} ticks, "
        f"{c.tick_cpu_s:.3f} s CPU in them ({per_ms:.3f} ms a portfolio update), {c.live} live and "
        f"{c.registers} register values, {c.partials_sent} partials sent, {c.partials_taken} taken, "
        f"{sum(c.refused.values())} refused"
    )


async def _export(config: HeadendConfig, day: date, sites: list[str]) -> str:
    repo = repository(config)
    await repo.open()
    try:
        return await export_day(repo, config, day, sites)
    finally:
        await repo.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smx-headend", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("config", type=Path)
    run = sub.add_parser("run", help="ingest the fleet")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument(
        "--name", default="", help="this instance's MQTT client id (default: smx-headend-<host>)"
    )
    run.add_argument(
        "--listen", help="the fleet page's HOST:PORT, port 0 for any free one (overrides [http])"
    )
    export = sub.add_parser("export", help="a day's 15-minute load profiles as CSV, with completeness flags")
    export.add_argument("--config", type=Path, required=True)
    export.add_argument(
        "--day", type=date.fromisoformat, required=True, help="the sites' local day, YYYY-MM-DD"
    )
    export.add_argument("--site", action="append", default=[], help="only this PublisherId (repeatable)")
    export.add_argument("--format", choices=["csv"], default="csv")
    export.add_argument("--out", type=Path, help="write to this file (default: standard output)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if args.command == "check-config":
            _token(config)
            print(f"{args.config}: OK, storage {config.storage.backend}, {len(config.sites)} site(s) listed")
            return 0
        if args.command == "export":
            text = asyncio.run(_export(config, args.day, args.site))
            if args.out:
                replace_file(args.out, text.encode())
            else:
                sys.stdout.write(text)
            return 0
        if args.listen:
            config = with_listen(config, args.listen)
        asyncio.run(_run(config, args.name or f"smx-headend-{socket.gethostname()}"))
        return 0
    except GatewayError as err:
        print(f"smx-headend: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
