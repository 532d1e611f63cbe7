"""Bad input through a real broker into a running instance: the thirty hostile messages of
``test_ingest.hostile`` are counted per cause and logged, nothing of them is stored, the
instance keeps ingesting and never exits (issue 17, "Bad input")."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from headend.service import STORED_WRITERS
from tests.support.broker import mosquitto, require_mosquitto, topic_matches
from tests.support.harness import headend_instance
from tests.support.headend_messages import (
    METER,
    NOW,
    PUB,
    data_message,
    hostile,
    lp1_values,
    metadata_message,
    topic,
)

FAR = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture(autouse=True)
def _mosquitto_installed() -> None:
    require_mosquitto()


def _props(content_type: str | None) -> Properties | None:
    if content_type is None:
        return None
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = content_type
    return props


@pytest.mark.slow
async def test_hostile_messages_through_the_broker_are_counted_and_logged_and_ingest_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="headend.service")
    cases = hostile()
    # What the broker delivers to the instance: what its subscriptions match (the data of
    # the writers it stores, every writer's metadata, every box's status).
    filters = [f"opcua/json/data/+/+/{w}" for w in STORED_WRITERS] + [
        "opcua/json/metadata/#",
        "opcua/json/status/#",
    ]
    delivered = [c for c in cases if any(topic_matches(f, c[1]) for f in filters)]
    assert len(delivered) >= 30
    async with (
        mosquitto(tmp_path / "broker") as broker,
        headend_instance(broker, tmp_path / "fleet.sqlite", "headend-1") as headend,
        aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as box,
    ):
        for writer in ("lp1", "lp2", "events"):
            await box.publish(topic("metadata", writer), metadata_message(writer), qos=1, retain=True)
        good = data_message("lp1", [(NOW, lp1_values(), 0)])
        await box.publish(topic("data", "lp1"), good, qos=1)
        async with asyncio.timeout(30):
            while await headend.repository.times(PUB, METER.id, "lp1", *FAR) != [NOW]:
                await headend.flushed()
        before = headend.counters.messages

        for _what, where, payload, content_type, _cause in cases:
            await box.publish(where, payload, qos=1, properties=_props(content_type))
        # Live data is not stored, so not taken: it never reaches the instance.
        await box.publish(topic("data", "live"), data_message("lp1", [(NOW, lp1_values(), 0)]), qos=1)
        # Then a good period: taken after all of them (one publisher's messages arrive in order).
        later = NOW.replace(minute=15)
        await box.publish(topic("data", "lp1"), data_message("lp1", [(later, lp1_values(1), 0)]), qos=1)
        async with asyncio.timeout(60):
            while await headend.repository.times(PUB, METER.id, "lp1", *FAR) != [NOW, later]:
                await headend.flushed()

        assert headend.counters.messages - before == len(delivered) + 1
        refused = Counter({cause: n for (_p, cause), n in headend.counters.refused.items()})
        expected = Counter(str(cause) for *_rest, cause in delivered)
        assert refused == expected
        # Each cause logged (at most once a minute each: here once).
        logged = Counter(r.getMessage().split("refused (")[1].split(",")[0] for r in caplog.records
                         if "refused (" in r.getMessage())  # fmt: skip
        assert logged == Counter(set(expected.elements()))
        # Nothing of them stored: the two good periods, their fields, no event.
        rows = await headend.repository.samples(PUB, METER.id, "lp1", *FAR)
        assert {r.time for r in rows} == {NOW, later}
        assert await headend.repository.events(PUB, METER.id, *FAR) == []
        assert await headend.repository.publishers_and_meters() == [(PUB, METER.id)]
