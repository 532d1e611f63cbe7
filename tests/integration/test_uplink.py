"""The uplink against a real mosquitto: what the fleet receives from a running gateway.

The gateway runs with its in-process simulated meter on a :class:`ScaledClock` (a minute
passes in a few seconds, so minute records and register samples come quickly; the meter
and the gateway share the clock) and publishes to a mosquitto the test starts on
loopback; an observing MQTT 5 client records every message.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from asyncua import ua

from gateway.clock import ScaledClock
from gateway.config import GatewayConfig, UpstreamConfig
from gateway.pubsub import codec
from gateway.uplink.writers import WRITERS
from tests.support.broker import Broker, Received, Subscriber, mosquitto, require_mosquitto, subscriber
from tests.support.harness import Running, demo, plant_outage, running_gateway, subscribe
from tests.support.openapi_check import response_schema
from tests.support.openapi_check import validate as openapi_validate
from tests.support.pubsub_schema import SCHEMA, validate

PUBLISHER = "smx-test"
ALL_WRITERS = [str(w.name) for w in WRITERS]
#: Gateway (and meter) time runs this much faster than real time.
SPEED = 8.0


@pytest.fixture(autouse=True)
def _mosquitto_installed() -> None:
    require_mosquitto()


def upstream(broker: Broker, **changes: Any) -> UpstreamConfig:
    """Publishing to ``broker`` fast: every second live, generous replay limits."""
    base = UpstreamConfig(
        broker=broker.url, publisher_id=PUBLISHER, live_interval_s=1, key_frame_count=4, initial_days=2.0,
        replay_messages_per_s=200.0, replay_bytes_per_s=4e6, reconnect_first_s=2.0, reconnect_max_s=4.0,
    )  # fmt: skip
    return replace(base, **changes)


def gateway_config(tmp_path: Path, broker: Broker, **changes: Any) -> GatewayConfig:
    config = demo()
    archive = replace(config.archive, path=str(tmp_path / "archive"))
    return replace(config, archive=archive, upstream=upstream(broker, **changes))


def decoded(messages: list[Received]) -> list[codec.Message]:
    """The messages decoded, each checked first against the Part 14 JSON Schema."""
    out = []
    for m in messages:
        assert m.content_type in (codec.CONTENT_TYPE, codec.CONTENT_TYPE_GZIP), m
        data = codec.decompress(m.payload) if m.content_type == codec.CONTENT_TYPE_GZIP else m.payload
        assert validate(json.loads(data), SCHEMA) == [], (m.topic, validate(json.loads(data), SCHEMA)[:3])
        out.append(codec.decode(data))
    return out


def datasets(sub: Subscriber, writer: str) -> list[codec.DataSetMessage]:
    """Every DataSetMessage received of ``writer``, in arrival order."""
    found = []
    for msg in decoded(sub.on(f"opcua/json/data/{PUBLISHER}/meter1/{writer}")):
        assert isinstance(msg, codec.NetworkMessage)
        found += [d for d in msg.messages if d.writer_name == writer]
    return found


def has_data(writer: str, count: int = 1) -> Any:
    topic = f"opcua/json/data/{PUBLISHER}/meter1/{writer}"
    return lambda msgs: sum(1 for m in msgs if m.topic == topic) >= count


@contextlib.asynccontextmanager
async def gateway_publishing(config: GatewayConfig, clock: ScaledClock) -> AsyncIterator[Running]:
    async with running_gateway(config, clock) as running:
        yield running


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.slow
async def test_every_writer_reaches_the_fleet_valid_and_equal_to_opcua_and_the_archive(
    tmp_path: Path,
) -> None:
    clock = ScaledClock(datetime.now(UTC), SPEED)
    async with mosquitto(tmp_path / "broker") as broker, subscriber(broker, "opcua/json/#") as early:
        config = gateway_config(tmp_path, broker)
        config = replace(config, meters=(replace(config.meters[0], event_period_s=30.0),))
        async with gateway_publishing(config, clock) as running:
            gateway = running.gateway
            assert gateway.uplink is not None
            # The meter's log of the last day may hold no event (its history's are scripted
            # anywhere in two days): one now, read within the event period, gives the events
            # writer something to publish whatever the time of day.
            plant_outage(gateway.simulators["meter1"])
            live_ids = [f"meter1.{o}" for o in ("1-0:1.7.0", "1-0:32.7.0", "1-0:31.7.0")]
            opcua = await subscribe(running, live_ids, period_ms=100)
            await early.wait_for(
                lambda msgs: all(has_data(w)(msgs) for w in ALL_WRITERS) and has_data("live", 6)(msgs),
                timeout=120,
            )
            # The recorder has written what the uplink replayed; the archive is the truth.
            reader = gateway.recorders["meter1"].archive.reader

            async with subscriber(broker, "opcua/json/#") as late:
                # Retained: a subscriber that comes later still learns the status and every writer's fields.
                await late.wait_for(lambda msgs: len([m for m in msgs if m.retain]) >= 1 + len(ALL_WRITERS))
                retained = {m.topic: m for m in late.messages if m.retain}
            # Every message any subscriber got is valid PubSub JSON (status and metadata too).
            assert len(decoded(early.messages)) == len(early.messages)
            decoded(late.messages)
            status_topic = f"opcua/json/status/{PUBLISHER}"
            status = codec.decode(retained[status_topic].payload)
            assert isinstance(status, codec.StatusMessage)
            assert status.status is codec.PubSubState.OPERATIONAL
            metadata: dict[str, codec.MetaDataMessage] = {}
            for w in ALL_WRITERS:
                md = codec.decode(retained[f"opcua/json/metadata/{PUBLISHER}/meter1/{w}"].payload)
                assert isinstance(md, codec.MetaDataMessage)
                metadata[w] = md
            assert sorted(md.writer_id for md in metadata.values()) == list(range(101, 107))

            # Every data message is valid PubSub JSON, its fields those of the writer's metadata.
            for w in ALL_WRITERS:
                names = {f.name for f in metadata[w].metadata.fields}
                found = datasets(early, w)
                assert found, w
                for d in found:
                    assert d.writer_id == metadata[w].writer_id
                    assert d.metadata_version == metadata[w].metadata.configuration_version
                    assert set(d.payload or {}) <= names, (w, set(d.payload or {}) - names)
                sequence = [d.sequence_number for d in found]
                assert sequence == sorted(sequence), w
            units = {f.name: f.property("EngineeringUnits") for f in metadata["live"].metadata.fields}
            assert isinstance(units["VoltageL1"], codec.EUInformation)
            assert units["VoltageL1"].display_name == "V"

            # Live values are the OPC UA values of the same second: the value OPC UA showed
            # last at (or before) the message's time.
            live = [
                d for d in datasets(early, "live") if d.message_type is codec.DataSetMessageType.KEY_FRAME
            ]
            assert live
            by_node: dict[str, list[ua.DataValue]] = opcua.changes
            compared = 0
            for d in live:
                for node, name in zip(live_ids, ("ActivePowerImport", "VoltageL1", "CurrentL1"), strict=True):
                    field = (d.payload or {})[name]
                    assert isinstance(field, codec.FieldValue)
                    shown = [v for v in by_node.get(node, []) if v.SourceTimestamp is not None
                             and v.SourceTimestamp.replace(tzinfo=UTC) <= d.timestamp]  # fmt: skip
                    if not shown:
                        continue  # before the OPC UA subscription began
                    assert close(field.value, shown[-1].Value.Value), (name, d.timestamp, field, shown[-1])
                    compared += 1
            assert compared >= 3

            # Load-profile periods equal the archive's rows, value for value.
            for w, stream in (("lp1", "lp1"), ("lp2", "lp2")):
                sent = {d.timestamp: d for d in datasets(early, w)}
                fields = [f for f in metadata[w].metadata.fields if f.property("Obis")]
                columns = [(str(f.property("Obis")), "") for f in fields]
                rows = list(reader.read_columns(stream, columns, min(sent), max(sent)))
                assert len(rows) == len(sent), w
                for t, word, values in rows:
                    d = sent[t]
                    assert d.payload is not None
                    assert d.payload["MeterStatus"] == (word or 0)
                    for f, v in zip(fields, values, strict=True):
                        assert close(d.payload[f.name], v), (w, t, f.name)
            # Minute records too (mean, min, max, samples of the archive's minute file).
            sent_minutes = {d.timestamp: d for d in datasets(early, "minute")}
            volt = [("1-0:32.7.0", q) for q in ("mean", "min", "max", "count")]
            for t, _word, (mean, low, high, count) in reader.read_columns("minute", volt, min(sent_minutes),
                                                                           max(sent_minutes)):  # fmt: skip
                p = sent_minutes[t].payload or {}
                assert close(p["VoltageL1"], mean)
                assert close(p["VoltageL1_Min"], low)
                assert close(p["VoltageL1_Max"], high)
                assert p["VoltageL1_Samples"] == int(count or 0)
            # Events: the archived event log's codes, with their names and severities.
            events = datasets(early, "events")
            assert all(d.message_type is codec.DataSetMessageType.EVENT for d in events)
            archived = [
                int(v[0] or 0) for _t, _s, v in reader.read_columns("events", [("0-0:99.98.0", "code")])
            ]
            assert [int((d.payload or {})["EventCode"]) for d in events] == archived[: len(events)]

            # The diagnostics say the same: connected, nothing waiting, bytes counted.
            await gateway.uplink.refresh_backlog(force=True)
            state = gateway.uplink.status()
            assert state.state == "connected"
            assert state.messages_sent >= len(early.messages) - 1
            assert {w.writer for w in state.writers} == set(ALL_WRITERS)
            node = running.client.get_node(ua.NodeId("SMX.Diagnostics.Uplink.State", running.ns))
            assert await node.read_value() == "connected"
            # REST says the same, as its OpenAPI document describes it.
            async with aiohttp.ClientSession() as http:
                base = gateway.web_url.rstrip("/")
                async with http.get(f"{base}/api/openapi.json") as resp:
                    document = await resp.json()
                async with http.get(f"{base}/api/meters/meter1") as resp:
                    assert resp.status == 200
                    body = await resp.json()
            schema = response_schema(document, "/api/meters/{meter}", "get", 200)
            assert openapi_validate(body, schema, document) == []
            rest = body["status"]["uplink"]
            assert rest["state"] == "connected"
            assert rest["publisher_id"] == PUBLISHER
            assert {w["writer"]: w["writer_id"] for w in rest["writers"]}["lp1"] == 104
            node = running.client.get_node(
                ua.NodeId("SMX.Diagnostics.Uplink.meter1.lp1.DataSetWriterId", running.ns)
            )
            assert await node.read_value() == 104
        # A clean stop says Disabled (the Will, Error, is only for a box that dies).
        await early.wait_for(
            lambda msgs: any(
                m.topic == status_topic
                and isinstance(s := codec.decode(m.payload), codec.StatusMessage)
                and s.status is codec.PubSubState.DISABLED
                for m in msgs
            )
        )


@pytest.mark.slow
async def test_the_cyclic_status_reports_the_backlog_and_the_messages_sent(tmp_path: Path) -> None:
    """Every ``status_interval_s`` a retained, cyclic Operational status with the SMX
    extension: a consumer-mode box nobody acknowledges has its whole archive as backlog,
    and its MessagesSent grows with what it publishes."""
    clock = ScaledClock(datetime.now(UTC), SPEED)
    status_topic = f"opcua/json/status/{PUBLISHER}"
    async with mosquitto(tmp_path / "broker") as broker, subscriber(broker, status_topic) as sub:
        # Consumer mode with no consumer: nothing is ever acknowledged.
        config = gateway_config(tmp_path, broker, ack="consumer", status_interval_s=8, writers=("lp1",))

        def reports(msgs: list[Received]) -> list[codec.StatusMessage]:
            out = [codec.decode(m.payload) for m in msgs if m.topic == status_topic]
            return [s for s in out if isinstance(s, codec.StatusMessage) and s.is_cyclic]

        async with gateway_publishing(config, clock) as running:
            assert running.gateway.uplink is not None
            # Three reports after the one at connect, the last with the day counted as backlog.
            await sub.wait_for(
                lambda msgs: len(reports(msgs)) >= 4 and (reports(msgs)[-1].backlog or 0) > 0, timeout=120
            )
            found = reports(sub.messages)
            await running.gateway.uplink.refresh_backlog(force=True)
            writers = running.gateway.uplink.status().writers
        for s in found:
            assert s.status is codec.PubSubState.OPERATIONAL
            assert validate(codec.to_json(s), SCHEMA) == []
            assert s.timestamp is not None
            assert s.next_report is not None
            assert (s.next_report - s.timestamp).total_seconds() == 8
        times = [s.timestamp for s in found]
        assert times == sorted(times)
        sent = [s.messages_sent or 0 for s in found]
        assert sent == sorted(sent)
        assert sent[-1] > sent[0]
        # Nothing acknowledged: the backlog is what the archive holds of lp1 (the poller may
        # have archived a period more since that report).
        (lp1,) = [w for w in writers if w.writer == "lp1"]
        assert 0 < (found[-1].backlog or 0) <= lp1.backlog
