"""The uplink's pure parts: writers and their messages, the cursors over the archive, the
link discipline (backoff with jitter, pacing, the keepalive watchdog)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from gateway.archive.files import ArchiveReader, ArchiveWriter, Column, Record
from gateway.clock import LoopClock, ManualClock
from gateway.config import GatewayConfig, MeterConfig, UpstreamConfig, parse_config
from gateway.errors import ConfigError
from gateway.meter.model import Diagnostics, Quality, Reading, Snapshot
from gateway.obis import Obis
from gateway.pubsub import codec
from gateway.pubsub.codec import DataSetMessageType, FieldValue
from gateway.uplink import writers as w
from gateway.uplink.link import Backoff, TokenBucket
from gateway.uplink.outbox import ALL, Position, StateFile, WriterState, read_after
from gateway.uplink.service import LinkDead, Uplink
from tests.support.virtual_time import run_virtual

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
METER = MeterConfig(id="meter1", url="socket://127.0.0.1:1", protocol="dlms")
POWER = Obis.parse("1-0:1.7.0")
VOLTAGE = Obis.parse("1-0:32.7.0")


# -- writers ------------------------------------------------------------------------------


def test_writer_ids_are_unique_per_publisher_and_name_the_meter() -> None:
    ids = [w.writer_id(m, spec) for m in range(3) for spec in w.WRITERS]
    assert len(ids) == len(set(ids)) == 18
    assert w.writer_id(0, w.BY_NAME["live"]) == 101
    assert w.writer_id(1, w.BY_NAME["events"]) == 206
    assert all(1 <= i <= 0x7FFF for i in ids)  # externally assigned range (Part 14 §6.2.4.1)
    with pytest.raises(ValueError, match="at most"):
        w.writer_id(w.MAX_METERS, w.WRITERS[0])


def test_metadata_carries_units_obis_and_types() -> None:
    version = codec.ConfigurationVersion(7, 7)
    live = w.metadata(METER, w.BY_NAME["live"], version)
    power = next(f for f in live.fields if f.name == "ActivePowerImport")
    assert power.built_in_type is codec.BuiltInType.DOUBLE
    assert power.property("Obis") == "1-0:1.7.0"
    eu = power.property("EngineeringUnits")
    assert isinstance(eu, codec.EUInformation)
    assert eu.unit_id == int.from_bytes(b"KWT", "big")
    minute = {f.name: f for f in w.metadata(METER, w.BY_NAME["minute"], version).fields}
    assert minute["VoltageL1_Samples"].built_in_type is codec.BuiltInType.UINT32
    assert minute["VoltageL1_Samples"].property("EngineeringUnits") is None  # a count has no unit
    assert minute["VoltageL1_Max"].property("Quantity") == "max"
    lp1 = [f.name for f in w.metadata(METER, w.BY_NAME["lp1"], version).fields]
    assert lp1[-1] == "MeterStatus"
    assert len(lp1) > 1
    # Field ids are stable: a restart publishes the same DataSetFieldIds.
    assert live.fields == w.metadata(METER, w.BY_NAME["live"], version).fields


def test_fields_digest_changes_with_the_values_read() -> None:
    spec = w.BY_NAME["live"]
    fewer = replace(METER, values=(POWER, VOLTAGE))
    assert w.fields_digest(w.writer_fields(METER, spec)) != w.fields_digest(w.writer_fields(fewer, spec))
    assert w.fields_digest(w.writer_fields(fewer, spec)) == w.fields_digest(w.writer_fields(fewer, spec))


def _snapshot(t: datetime, power: float | None, quality: Quality = Quality.GOOD) -> Snapshot:
    readings = {
        POWER: Reading(POWER, power, "kW", t, quality),
        VOLTAGE: Reading(VOLTAGE, 230.0, "V", t, Quality.GOOD),
    }
    return Snapshot("meter1", t, readings, Diagnostics())


def test_live_frames_key_every_nth_and_deltas_carry_only_changes() -> None:
    meter = replace(METER, values=(POWER, VOLTAGE))
    frames = w.LiveFrames(w.writer_fields(meter, w.BY_NAME["live"]), key_frame_count=3)
    kinds = []
    payloads = []
    for n, power in enumerate([1.0, 1.0, 2.0, 2.0, 2.0]):
        kind, payload, _worst = frames.frame(_snapshot(T0 + timedelta(seconds=n), power))
        kinds.append(kind)
        payloads.append(payload)
    K, D = DataSetMessageType.KEY_FRAME, DataSetMessageType.DELTA_FRAME
    assert kinds == [K, D, D, K, D]
    assert payloads[0] == {"ActivePowerImport": FieldValue(1.0), "VoltageL1": FieldValue(230.0)}
    assert payloads[1] == {}  # nothing changed
    assert payloads[2] == {"ActivePowerImport": FieldValue(2.0)}
    assert set(payloads[3]) == {"ActivePowerImport", "VoltageL1"}
    frames.restart()
    assert frames.frame(_snapshot(T0, 2.0))[0] is K  # a new connection starts with a key frame


def test_live_status_per_field_and_worst_for_the_message() -> None:
    meter = replace(METER, values=(POWER, VOLTAGE))
    frames = w.LiveFrames(w.writer_fields(meter, w.BY_NAME["live"]), key_frame_count=1)
    _kind, payload, worst = frames.frame(_snapshot(T0, 1.5, Quality.UNCERTAIN))
    assert payload["ActivePowerImport"] == FieldValue(1.5, 0x40900000)  # UncertainLastUsableValue
    assert worst == 0x40000000
    _kind, payload, worst = frames.frame(_snapshot(T0, None, Quality.BAD))
    assert payload["ActivePowerImport"] == FieldValue(None, 0x80050000)  # BadCommunicationError
    assert worst == 0x80000000
    # A scaled integer's float noise is not sent: 12 significant digits.
    _kind, payload, _ = frames.frame(_snapshot(T0, 350 * 0.001))
    assert payload["ActivePowerImport"].value == 0.35


@pytest.mark.parametrize(
    ("word", "status"),
    [
        (0, 0),
        (None, 0),
        (0x08, 0),
        (0x80, 0x40A40000),
        (0x20, 0x40A40000),
        (0x04, 0x80000000),
        (0x81, 0x80000000),
    ],
)
def test_profile_status_word_maps_to_the_message_status(word: int | None, status: int) -> None:
    assert w.profile_status(word) == status


def test_record_payloads_of_profiles_and_events() -> None:
    spec = w.BY_NAME["lp1"]
    fields = w.writer_fields(METER, spec)
    n = len(w.archive_columns(fields))
    payload, status = w.record_payload(spec, fields, 0x80, [0.25] * n)
    assert payload["MeterStatus"] == 0x80
    assert status == 0x40A40000
    assert all(payload[f.meta.name] == 0.25 for f in fields if f.column)
    spec = w.BY_NAME["events"]
    payload, status = w.record_payload(spec, w.writer_fields(METER, spec), 3, [1.0])
    assert payload == {"EventCode": 1, "Severity": 600, "Message": "Power down", "MeterStatus": 3}


# -- cursors over the archive ---------------------------------------------------------------


def _events_archive(root: Path, times: list[datetime]) -> ArchiveReader:
    writer = ArchiveWriter(root, "meter1")
    writer.append(
        "events",
        [Column("0-0:99.98.0", "", "code")],
        [Record(t, 0, (float(n),)) for n, t in enumerate(times)],
    )
    writer.close()
    return ArchiveReader(root, "meter1")


def test_read_after_continues_exactly_behind_the_cursor_also_within_one_time(tmp_path: Path) -> None:
    # Three events share one time stamp: a cursor inside them neither repeats nor skips one.
    times = [
        T0,
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=1),
        T0 + timedelta(hours=25),
    ]
    reader = _events_archive(tmp_path, times)
    columns = [("0-0:99.98.0", "code")]
    seen = []
    position = Position(T0 - timedelta(days=1), ALL)
    while rows := read_after(reader, "events", columns, position, limit=2):
        seen += [int(r.values[0] or 0) for r in rows]
        position = rows[-1].after
    assert seen == [0, 1, 2, 3, 4]  # across the day boundary too
    assert position == Position(times[-1], 1)
    middle = read_after(reader, "events", columns, Position(times[1], 2), limit=10)
    assert [int(r.values[0] or 0) for r in middle] == [3, 4]
    # An acknowledged "Through" covers every record of its time; ``until`` bounds a replay request.
    assert [r.values[0] for r in read_after(reader, "events", columns, Position(times[1], ALL), 10)] == [4.0]
    bounded = read_after(reader, "events", columns, Position(T0, 0), 10, until=times[1])
    assert [int(r.values[0] or 0) for r in bounded] == [0, 1, 2, 3]


def test_state_file_round_trip_and_damage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file = StateFile(tmp_path / "meter1" / "uplink.json")
    assert file.load() == {}
    states = {"lp1": WriterState(Position(T0, 3), codec.ConfigurationVersion(5, 6), "abc")}
    file.save(states)
    assert file.load() == states
    assert not list(file.path.parent.glob("*.tmp"))  # replaced whole
    file.path.write_text('{"format": 1, "writers": {"lp1": {"cursor": ["yesterday", 1]')  # torn
    with caplog.at_level(logging.WARNING):
        assert file.load() == {}
    assert "unreadable" in caplog.text


# -- link discipline -------------------------------------------------------------------------


def test_backoff_windows_double_up_to_the_maximum_and_reset() -> None:
    backoff = Backoff(2.0, 60.0, random.Random(5))
    delays = [backoff.next_delay() for _ in range(12)]
    windows = [min(60.0, 2.0 * 2**n) for n in range(12)]
    assert all(1.0 <= d <= win for d, win in zip(delays, windows, strict=True))
    assert max(delays[6:]) > 30  # the window did grow to the maximum
    backoff.reset()
    assert backoff.next_delay() <= 2.0


def test_a_thousand_boxes_do_not_come_back_in_the_same_second() -> None:
    # A broker restart drops every box at once; count their reconnects per second over
    # the first three attempts (each box keeps failing while the broker is down).
    boxes = [Backoff(30.0, 300.0, random.Random(seed)) for seed in range(1000)]
    per_second: Counter[int] = Counter()
    for box in boxes:
        t = 0.0
        for _ in range(3):
            t += box.next_delay()
            per_second[int(t)] += 1
    assert max(per_second.values()) < 0.1 * 1000  # a fixed delay would put all 1000 in one second
    assert len(per_second) >= 10


def test_token_bucket_paces_and_never_refuses_a_large_message() -> None:
    clock = ManualClock(T0)
    bucket = TokenBucket(1000.0, 1000.0, clock)
    assert bucket.delay(1000) == 0
    bucket.take(1000)
    assert bucket.delay(500) == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.delay(500) == pytest.approx(0.0)
    bucket.take(500)
    # 3000 bytes with a 1000-byte burst: waits for a full bucket, then goes into debt.
    assert bucket.delay(3000) == pytest.approx(1.0)
    clock.advance(1.0)
    bucket.take(3000)
    assert bucket.delay(1000) == pytest.approx(3.0)


# -- the keepalive watchdog, in virtual time ---------------------------------------------------


class _SilentBroker:
    """A client whose broker answers probes until ``stall_at`` (loop time), then never."""

    def __init__(self, stall_at: float) -> None:
        self.stall_at = stall_at
        self.probes: list[float] = []

    async def unsubscribe(self, topic: str, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self.probes.append(loop.time())
        if loop.time() < self.stall_at:
            return
        try:
            await asyncio.wait_for(asyncio.Event().wait(), timeout)
        except TimeoutError:
            raise aiomqtt.MqttError("Operation timed out") from None


def _uplink(keepalive: int, tmp_path: Path) -> Uplink:
    config = GatewayConfig(
        meters=(METER,),
        upstream=UpstreamConfig(broker="mqtt://127.0.0.1:1883", keepalive_s=keepalive),
    )
    return Uplink(config, LoopClock(T0), {})


@pytest.mark.parametrize("stall_at", [0.01, 14.9, 15.1, 29.99, 47.0])
def test_a_silent_link_is_noticed_within_one_keepalive(stall_at: float, tmp_path: Path) -> None:
    keepalive = 30

    async def main() -> float:
        uplink = _uplink(keepalive, tmp_path)
        broker = _SilentBroker(stall_at)
        with pytest.raises(LinkDead, match="keepalive"):
            await uplink._watchdog(broker)  # type: ignore[arg-type]
        return asyncio.get_running_loop().time()

    noticed = run_virtual(main())
    # Noticed at most one keepalive after the broker was last heard (the issue allows 1.5).
    assert noticed - stall_at <= keepalive
    assert noticed > stall_at


class _FailingDisconnect:
    """A connected broker client whose disconnect fails when the session was cancelled, as
    aiomqtt's does when the broker does not answer the DISCONNECT in time."""

    def __init__(self) -> None:
        self.published: list[str] = []

    async def __aenter__(self) -> _FailingDisconnect:
        return self

    async def __aexit__(self, et: object, *_: object) -> None:
        if et is asyncio.CancelledError:
            raise aiomqtt.MqttError("Operation timed out")

    async def publish(self, topic: str, *_: object, **__: object) -> None:
        self.published.append(topic)

    async def subscribe(self, *_: object, **__: object) -> None:
        pass

    async def unsubscribe(self, *_: object, **__: object) -> None:
        pass

    @property
    def messages(self) -> _FailingDisconnect:
        return self

    def __aiter__(self) -> _FailingDisconnect:
        return self

    async def __anext__(self) -> object:
        await asyncio.Event().wait()  # nothing comes


def test_a_stop_stops_the_uplink_also_when_the_disconnect_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped while connected, the disconnect times out: aiomqtt's MqttError takes the
    cancellation's place. The uplink stops all the same instead of reconnecting."""

    async def main() -> tuple[bool, int]:
        uplink = _uplink(30, tmp_path)
        clients: list[_FailingDisconnect] = []

        def client_for(_tls: object) -> _FailingDisconnect:
            clients.append(_FailingDisconnect())
            return clients[-1]

        monkeypatch.setattr(uplink, "_client_for", client_for)
        task = asyncio.create_task(uplink.run())
        await asyncio.wait_for(uplink.connected.wait(), 60)
        task.cancel()
        await asyncio.wait({task}, timeout=600)  # virtual: reconnects would be many by then
        return task.cancelled(), len(clients)

    assert run_virtual(main()) == (True, 1)


def test_upstream_config_is_validated(tmp_path: Path) -> None:
    base = {"meters": [{"id": "m1", "url": "socket://127.0.0.1:1"}]}

    def parse(**up: object) -> UpstreamConfig:
        return parse_config({**base, "upstream": up}, "smx.toml").upstream

    assert not parse().enabled
    cfg = parse(broker="mqtts://broker.example.net:8883", ca="ca.pem", ack="consumer", live_interval_s=60)
    assert cfg.enabled
    assert (cfg.ack, cfg.live_interval_s) == ("consumer", 60)
    assert "secret" not in repr(parse(broker="mqtts://b:8883", ca="ca.pem", password="secret"))
    bad = [
        ({"broker": "http://b"}, "upstream.broker"),
        ({"broker": "mqtt://b:1883"}, "plain MQTT only in the demo profile"),
        ({"broker": "mqtts://b:8883"}, "upstream.ca"),
        ({"broker": "mqtts://b", "ca": "c", "live_interval_s": 0}, "live_interval_s"),
        ({"broker": "mqtts://b", "ca": "c", "ack": "maybe"}, "upstream.ack"),
        ({"broker": "mqtts://b", "ca": "c", "publisher_id": "a/b"}, "publisher_id"),
        ({"broker": "mqtts://b", "ca": "c", "prefix": "a/+/b"}, "prefix"),
        ({"broker": "mqtts://b", "ca": "c", "writers": ["live", "live"]}, "writers"),
        ({"broker": "mqtts://b", "ca": "c", "certificate": "c.pem"}, "upstream.key"),
        ({"broker": "mqtts://b", "ca": "c", "reconnect_first_s": 9, "reconnect_max_s": 5}, "reconnect_max_s"),
        ({"broker": "mqtts://b", "ca": "c", "color": "red"}, "color"),
    ]
    for up, message in bad:
        with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
            parse(**up)
    demo = parse_config({**base, "security": {"profile": "demo"}, "upstream": {"broker": "mqtt://b"}}, "x")
    assert demo.upstream.broker == "mqtt://b"


def test_encoded_live_message_is_compact_and_names_its_writer() -> None:
    spec = w.BY_NAME["live"]
    msg = codec.NetworkMessage(
        "id", "smx-17", "meter1",
        (w.dataset_message(spec, 101, 1, codec.ConfigurationVersion(1, 1), T0, {"P": FieldValue(1.0)}),),
    )  # fmt: skip
    data = json.loads(codec.encode(msg))
    assert data["Messages"][0]["DataSetWriterName"] == "live"
    assert data["Messages"][0]["Payload"] == {"P": {"Value": 1.0}}


def test_the_example_documents_the_upstream_defaults() -> None:
    from gateway.config import load_config

    example = load_config(Path(__file__).resolve().parents[2] / "smx.example.toml").upstream
    assert not example.enabled  # off unless a broker is configured
    assert replace(example, broker="") == UpstreamConfig()


def test_an_acknowledgement_moves_the_cursor_but_never_past_what_was_sent(tmp_path: Path) -> None:
    times = [T0 + timedelta(minutes=n) for n in range(5)]
    reader = _events_archive(tmp_path, times)
    config = GatewayConfig(
        meters=(METER,),
        upstream=UpstreamConfig(broker="mqtt://127.0.0.1:1883", ack="consumer", writers=("events",)),
    )

    async def main() -> tuple[Position, Position, Position]:
        uplink = Uplink(config, ManualClock(T0 + timedelta(days=1)), {"meter1": reader})
        await uplink.prepare()
        (w,) = uplink._writers.values()
        w.sent = Position(times[2], 1)  # three events sent
        await uplink._acknowledged(codec.Ack(w.id, times[1]))
        first = w.state.cursor
        await uplink._acknowledged(codec.Ack(w.id, times[0]))  # an older one changes nothing
        second = w.state.cursor
        await uplink._acknowledged(codec.Ack(w.id, T0 + timedelta(days=30)))  # ahead of what was sent
        return first, second, w.state.cursor

    first, second, third = asyncio.run(main())
    assert first == Position(times[1], ALL)
    assert second == first
    assert third == Position(times[2], 1)
    saved = StateFile(tmp_path / "meter1" / "uplink.json").load()
    assert saved["events"].cursor == third  # on disk


def test_metadata_versions_survive_a_restart_and_change_with_the_fields(tmp_path: Path) -> None:
    reader = _events_archive(tmp_path, [T0])

    def versions(meter: MeterConfig, at: datetime) -> dict[str, codec.ConfigurationVersion]:
        config = GatewayConfig(meters=(meter,), upstream=UpstreamConfig(broker="mqtt://127.0.0.1:1883"))
        uplink = Uplink(config, ManualClock(at), {"meter1": reader})
        asyncio.run(uplink.prepare())
        return {str(w.spec.name): w.state.version for w in uplink._writers.values()}

    first = versions(METER, T0)
    assert versions(METER, T0 + timedelta(days=1)) == first  # a restart: the same fields, the same version
    fewer = versions(replace(METER, values=(POWER, VOLTAGE)), T0 + timedelta(days=2))
    assert fewer["live"] != first["live"]  # other fields: a new version
    assert fewer["live"].major == w.version_time(T0 + timedelta(days=2))
    assert fewer["lp1"] == first["lp1"]  # a profile's fields did not change
