"""The head-end's MQTT clients under overload: a full incoming queue's discards are summed
up in the log, not one line each (through a real mosquitto)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiomqtt
import pytest

from gateway.uplink.link import BrokerUrl
from headend.broker import QUEUE_FULL, discard_summary, mqtt_client
from headend.config import BrokerConfig
from tests.support.broker import mosquitto, require_mosquitto

QUEUE = 5
SAID = "incoming queue full: {} message(s) discarded since the last such line ({} in all)"


class _Probe(logging.Filter):
    """Counts aiomqtt's discard warnings before the summary filters them; set at ``n``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.seen, self.reached = n, 0, asyncio.Event()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == QUEUE_FULL:
            self.seen += 1
            if self.seen >= self.n:
                self.reached.set()
        return True


async def test_a_full_queue_says_how_many_it_discarded_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_mosquitto()
    now = [1000.0]
    identifier = f"discard-probe-{id(now)}"
    logger, summary = discard_summary(identifier, clock=lambda: now[0])
    probe = _Probe(35)
    logger.filters.insert(0, probe)
    caplog.set_level(logging.WARNING, logger=logger.name)
    async with mosquitto(tmp_path / "broker") as broker:
        config = BrokerConfig(url=broker.url)
        receiver = await mqtt_client(config, BrokerUrl.parse(broker.url), identifier, QUEUE)
        async with receiver, aiomqtt.Client("127.0.0.1", BrokerUrl.parse(broker.url).port) as sender:
            await receiver.subscribe("t/#", qos=1)
            for n in range(40):  # nobody takes them: 5 are queued, 35 discarded
                await sender.publish(f"t/{n}", str(n).encode(), qos=1)
            await asyncio.wait_for(probe.reached.wait(), 30)
            lines = [r.getMessage() for r in caplog.records if r.name == logger.name]
            assert lines == [SAID.format(1, 1)]
            assert summary.discarded == 35

            now[0] += 60.0  # a minute later the next discard says how many went unsaid
            probe.n, probe.reached = 36, asyncio.Event()
            await sender.publish("t/40", b"40", qos=1)
            await asyncio.wait_for(probe.reached.wait(), 30)
            lines = [r.getMessage() for r in caplog.records if r.name == logger.name]
            assert lines[1:] == [SAID.format(35, 36)]

            # What was queued is intact and in order.
            got = []
            async for message in receiver.messages:
                got.append(str(message.topic))
                if len(got) == QUEUE:
                    break
            assert got == [f"t/{n}" for n in range(QUEUE)]
