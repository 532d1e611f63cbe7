"""A gateway's uplink into two head-end instances of one shared-subscription group, through a
real mosquitto, into one database: everything stored once, acknowledged, the work split."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import ScaledClock
from gateway.uplink.writers import BY_NAME, writer_fields
from headend.config import CompletenessConfig
from headend.storage.sqlite import SqliteRepository
from tests.support.broker import mosquitto, require_mosquitto
from tests.support.harness import PUBLISHER, headend_instance, publishing, running_gateway

SPEED = 8.0


@pytest.fixture(autouse=True)
def _mosquitto_installed() -> None:
    require_mosquitto()


@pytest.mark.slow
async def test_two_instances_store_a_gateway_once_and_acknowledge_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.uplink.service")
    db = tmp_path / "fleet.sqlite"
    clock = ScaledClock(datetime.now(UTC), SPEED)
    async with (
        mosquitto(tmp_path / "broker") as broker,
        headend_instance(broker, db, "headend-1") as first,
        headend_instance(broker, db, "headend-2") as second,
    ):
        config = publishing(tmp_path, broker, ack="consumer", writers=("lp1", "minute", "events"), batch=16,
                            status_interval_s=16)  # fmt: skip
        async with running_gateway(config, clock) as running:
            uplink = running.gateway.uplink
            assert uplink is not None
            reader = running.gateway.recorders["meter1"].archive.reader
            poller = running.gateway.pollers["meter1"]
            async with asyncio.timeout(30):  # the box announced itself: online
                while first.state(PUBLISHER) != "online":
                    await first.status_seen()
            # Its cyclic reports tell every instance how busy it is (the group split the data,
            # not the status).
            async with asyncio.timeout(60):
                while not all((s := h.site(PUBLISHER)) is not None and s.rate > 0 for h in (first, second)):
                    await first.status_seen()

            def acknowledged(writer: str) -> bool:
                last = reader.last_time(writer)
                status = next(w for w in uplink.status().writers if w.writer == writer)
                return last is not None and status.last_acknowledged == last

            # Until the meter's day of load profile is read out and archived, and the fleet
            # has acknowledged it and a few minute records (every acknowledgement follows a
            # commit); what the archive holds then is what the fleet must have.
            async with asyncio.timeout(120):
                while not (poller.readouts_pending == 0 and running.gateway.recorders["meter1"].idle.is_set()
                           and acknowledged("lp1") and reader.last_time("minute") is not None
                           and acknowledged("minute")):  # fmt: skip
                    await poller.wait_snapshot()
            start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
            columns = [f.column for f in writer_fields(config.meters[0], BY_NAME["lp1"]) if f.column]
            archived = [t for t, _s, _v in reader.read_columns("lp1", columns, start, end)]
        # The gateway stopped cleanly: its status says Disabled.
        async with asyncio.timeout(30):
            while first.state(PUBLISHER) != "disabled":
                await first.status_seen()

        repo = SqliteRepository(db)
        await repo.open()
        try:
            # Every period archived when the fleet acknowledged it, each once (the unique key);
            # what the stopping gateway archived after that may have reached it too.
            stored = await repo.times(PUBLISHER, "meter1", "lp1", start, end)
            assert stored[: len(archived)] == archived
            assert len(archived) >= 90
            rows = await repo.samples(PUBLISHER, "meter1", "lp1", start, end, ["APlusPerPeriod"])
            assert [r.time for r in rows[: len(archived)]] == archived  # one row per period and field
            minutes = await repo.times(PUBLISHER, "meter1", "minute", start, end)
            assert minutes
            (site,) = await repo.sites()
            assert (site.publisher, site.state) == (PUBLISHER, "disabled")  # the gateway stopped cleanly
            assert site.rate > 0  # messages/s from its last two cyclic reports
            assert site.last_seen is not None
        finally:
            await repo.close()
        # The acknowledgements were of what was sent: the box had nothing to correct.
        assert [r.getMessage() for r in caplog.records if "beyond what was sent" in r.getMessage()] == []
        # The group split the data: each instance stored some of it, neither all.
        split = (first.counters.accepted, second.counters.accepted)
        assert all(n > 0 for n in split), split
        print(f"records accepted per instance: {split}; acks {first.counters.acks} + {second.counters.acks}")


@pytest.mark.slow
async def test_what_the_head_end_missed_is_found_and_asked_for_again(tmp_path: Path) -> None:
    """The box published its day of load profile while no head-end listened (broker mode: the
    broker took it, the box's cursor moved on). The head-end finds the holes from the
    metadata it gets (retained) and asks for them; the box replays them from its archive."""
    db = tmp_path / "fleet.sqlite"
    clock = ScaledClock(datetime.now(UTC), SPEED)
    async with mosquitto(tmp_path / "broker") as broker:
        config = publishing(tmp_path, broker, writers=("lp1",))
        async with running_gateway(config, clock) as running:
            uplink = running.gateway.uplink
            assert uplink is not None
            reader = running.gateway.recorders["meter1"].archive.reader
            poller = running.gateway.pollers["meter1"]

            def delivered() -> bool:
                status = next(w for w in uplink.status().writers if w.writer == "lp1")
                return status.last_delivered is not None and status.last_delivered == reader.last_time("lp1")

            async with asyncio.timeout(60):
                while not (delivered() and poller.readouts_pending == 0):
                    await poller.wait_snapshot()
            # Only now a head-end: the day went to nobody.
            quick = CompletenessConfig(check_s=0.5, grace_s=0.0, per_publisher_s=0.5)
            async with headend_instance(broker, db, "headend-late", None, quick) as late:
                start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
                columns = [f.column for f in writer_fields(config.meters[0], BY_NAME["lp1"]) if f.column]

                async def filled() -> bool:
                    archived = [t for t, _s, _v in reader.read_columns("lp1", columns, start, end)]
                    stored = await late.repository.times(PUBLISHER, "meter1", "lp1", start, end)
                    return bool(archived) and stored == archived

                async with asyncio.timeout(90):
                    while not await filled():
                        await poller.wait_snapshot()
                assert late.counters.requests >= 1
        print(f"replay requests: {late.counters.requests}, rows stored: {late.counters.rows}")
