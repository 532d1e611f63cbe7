"""The demo gateway for a bench: in a temporary working directory, on ports the OS picks,
settled past its start (association, first readings, most of the first backfill)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

from gateway.app import Gateway
from gateway.config import GatewayConfig, demo_config

#: Snapshots waited for before measuring.
SETTLE_SNAPSHOTS = 20


def bench_config() -> GatewayConfig:
    """``make run``'s demo configuration on ports the OS picks."""
    config = demo_config()
    return replace(config, opcua=replace(config.opcua, port=0), web=replace(config.web, port=0))


@contextlib.asynccontextmanager
async def settled_demo(
    prefix: str, prepare: Callable[[Path], GatewayConfig] | None = None
) -> AsyncIterator[tuple[Gateway, Path]]:
    """The running demo gateway and its working directory (``prepare`` may set it up first
    and return the configuration to run)."""
    start = Path.cwd()
    with tempfile.TemporaryDirectory(prefix=prefix) as work:
        os.chdir(work)
        try:
            config = prepare(Path(work)) if prepare is not None else bench_config()
            gateway = Gateway(config)
            task = asyncio.create_task(gateway.run())
            try:
                await asyncio.wait_for(gateway.ready.wait(), 60)
                poller = gateway.pollers["meter1"]
                for _ in range(SETTLE_SNAPSHOTS):
                    await poller.wait_snapshot()
                yield gateway, Path(work)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            os.chdir(start)
