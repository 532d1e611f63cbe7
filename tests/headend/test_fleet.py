"""A gateway's uplink into two head-end instances of one shared-subscription group, through a
real mosquitto, into one database: everything stored once, acknowledged, the work split."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import ScaledClock, SystemClock
from gateway.uplink.writers import BY_NAME, writer_fields
from headend.config import BrokerConfig, HeadendConfig, StorageConfig
from headend.service import Headend
from headend.storage.sqlite import SqliteRepository
from tests.support.broker import Broker, mosquitto, require_mosquitto
from tests.support.harness import demo, running_gateway

PUBLISHER = "smx-a"
SPEED = 8.0


@pytest.fixture(autouse=True)
def _mosquitto_installed() -> None:
    require_mosquitto()


@contextlib.asynccontextmanager
async def instance(broker: Broker, db: Path, name: str) -> AsyncIterator[Headend]:
    config = HeadendConfig(
        profile="demo",
        broker=BrokerConfig(url=broker.url, group="g"),
        storage=StorageConfig(backend="sqlite", path=str(db)),
    )
    repo = SqliteRepository(db)
    await repo.open()
    headend = Headend(config, repo, SystemClock(), name=name)
    task = asyncio.create_task(headend.run())
    try:
        await asyncio.wait_for(headend.connected.wait(), 30)
        yield headend
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await repo.close()


@pytest.mark.slow
async def test_two_instances_store_a_gateway_once_and_acknowledge_it(tmp_path: Path) -> None:
    db = tmp_path / "fleet.sqlite"
    clock = ScaledClock(datetime.now(UTC), SPEED)
    config = demo()
    up = replace(
        config.upstream, publisher_id=PUBLISHER, ack="consumer", initial_days=1.0,
        writers=("lp1", "minute", "events"), batch=16, replay_messages_per_s=100.0, replay_bytes_per_s=4e6,
    )  # fmt: skip
    async with (
        mosquitto(tmp_path / "broker") as broker,
        instance(broker, db, "headend-1") as first,
        instance(broker, db, "headend-2") as second,
    ):
        config = replace(
            config,
            archive=replace(config.archive, path=str(tmp_path / "archive")),
            upstream=replace(up, broker=broker.url),
        )
        async with running_gateway(config, clock) as running:
            uplink = running.gateway.uplink
            assert uplink is not None
            reader = running.gateway.recorders["meter1"].archive.reader
            poller = running.gateway.pollers["meter1"]

            def acknowledged(writer: str) -> bool:
                last = reader.last_time(writer)
                status = next(w for w in uplink.status().writers if w.writer == writer)
                return last is not None and status.last_acknowledged == last

            # Until the fleet has acknowledged the whole day of load profile and a few
            # minute records (every acknowledgement follows a commit).
            async with asyncio.timeout(120):
                while not (acknowledged("lp1") and (reader.last_time("minute") is not None)
                           and acknowledged("minute")):  # fmt: skip
                    await poller.wait_snapshot()

        repo = SqliteRepository(db)
        await repo.open()
        try:
            start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
            columns = [f.column for f in writer_fields(config.meters[0], BY_NAME["lp1"]) if f.column]
            archived = [t for t, _s, _v in reader.read_columns("lp1", columns, start, end)]
            stored = await repo.times(PUBLISHER, "meter1", "lp1", start, end)
            assert stored == archived  # every period, each once (the unique key holds)
            rows = await repo.samples(PUBLISHER, "meter1", "lp1", start, end, ["APlusPerPeriod"])
            assert len(rows) == len(archived)
            minutes = await repo.times(PUBLISHER, "meter1", "minute", start, end)
            assert minutes
        finally:
            await repo.close()
        # The group split the data: each instance stored some of it, neither all.
        split = (first.counters.accepted, second.counters.accepted)
        assert all(n > 0 for n in split), split
        print(f"records accepted per instance: {split}; acks {first.counters.acks} + {second.counters.acks}")
