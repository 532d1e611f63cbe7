"""A database that fails a write does not end the head-end: it drops the broker session
(nothing of the failed batch was acknowledged, so the boxes send it again), waits and
carries on."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from gateway.clock import SystemClock
from headend.config import BrokerConfig, HeadendConfig, StorageConfig
from headend.service import Headend
from headend.storage import Batch, StorageError
from headend.storage.sqlite import SqliteRepository
from tests.support.broker import mosquitto, require_mosquitto
from tests.support.headend_messages import data_message, lp1_values, metadata_message, topic

EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


class FailingOnce(SqliteRepository):
    """SQLite whose first write fails as a database that went away would."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failed = asyncio.Event()
        self.stored = asyncio.Event()

    async def store(self, batch: Batch) -> int:
        if not self.failed.is_set():
            self.failed.set()
            raise StorageError("the database went away (test)")
        rows = await super().store(batch)
        self.stored.set()
        return rows


async def test_a_failed_write_is_survived(tmp_path: Path) -> None:
    require_mosquitto()
    publisher = "smx-db"
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    async with mosquitto(tmp_path / "broker") as broker:
        config = HeadendConfig(
            profile="demo",
            broker=BrokerConfig(url=broker.url, group="g"),
            storage=StorageConfig(backend="sqlite", path=str(tmp_path / "h.sqlite")),
        )
        repo = FailingOnce(tmp_path / "h.sqlite")
        await repo.open()
        headend = Headend(config, repo, SystemClock(), name="h-1")
        task = asyncio.create_task(headend.run())
        try:
            async with aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as box:
                await asyncio.wait_for(headend.connected.wait(), 30)
                await box.publish(topic("metadata", "lp1", publisher), metadata_message("lp1", publisher),
                                  qos=1, retain=True)  # fmt: skip
                await box.publish(topic("data", "lp1", publisher),
                                  data_message("lp1", [(t0, lp1_values(), 0)], publisher), qos=1)  # fmt: skip
                await asyncio.wait_for(repo.failed.wait(), 30)
                # The instance reconnects after its backoff: what is published while it has
                # no session goes to nobody (a shared subscription without members), so
                # the box here publishes a next period every half second until one is stored.
                sent = []
                for n in range(1, 60):
                    assert not task.done(), task.exception()
                    sent.append(t0 + timedelta(minutes=15) * n)
                    message = data_message("lp1", [(sent[-1], lp1_values(), 0)], publisher)
                    await box.publish(topic("data", "lp1", publisher), message, qos=1)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(repo.stored.wait(), 0.5)
                    if repo.stored.is_set():
                        break
                stored = await repo.times(publisher, "meter1", "lp1", *EVER)
                assert stored
                assert set(stored) <= set(sent)
                assert not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await repo.close()
