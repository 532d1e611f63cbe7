"""The head-end bench's load generator (bench/headend_load.py): its messages are what the
head-end's ingest takes from a gateway, its MQTT framing and its percentile are right."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.headend_load import (
    Ids,
    announcements,
    cut,
    data_templates,
    percentile,
    rows_per_message,
    streams,
)
from gateway.pubsub import codec
from gateway.uplink.writers import Writer
from headend.ingest import Accepted, Ingest, LiveSeen, MetadataSeen, StatusSeen
from tests.support.mqtt_wire import publish_packet, receive_maximum, varint

NOW = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_template_puts_the_values_where_the_sentinels_were() -> None:
    template = data_templates(Writer.LOAD_PROFILE_1, variants=1)[0]
    stamp = codec.format_time(NOW).encode()
    msg = codec.decode(template.render((b"site-00042", b"an-id", b"77", stamp)))
    assert isinstance(msg, codec.NetworkMessage)
    assert (msg.publisher_id, msg.message_id, msg.writer_group) == ("site-00042", "an-id", "meter1")
    (dsm,) = msg.messages
    assert (dsm.sequence_number, dsm.timestamp, dsm.writer_name) == (77, NOW, "lp1")


def test_template_refuses_a_sentinel_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        cut(b'{"a":"@@PUBLISHER@@","b":"@@PUBLISHER@@"}')


def test_ingest_takes_every_writer_of_a_site_as_a_gateway_sends_it() -> None:
    ingest = Ingest()
    seen = [o for t, p in announcements("site-00007") for o in ingest.feed(t, p, codec.CONTENT_TYPE, NOW)]
    assert sum(isinstance(o, MetadataSeen) for o in seen) == 6
    assert any(isinstance(o, StatusSeen) for o in seen)
    ids, stamp = Ids(), codec.format_time(NOW).encode()
    for stream in streams(10, 1.0):
        for k in range(7):  # key and delta frames of the live writer
            data = stream.template(7, k).render((b"site-00007", ids.next(), str(k + 1).encode(), stamp))
            topic = f"opcua/json/data/site-00007/meter1/{stream.writer}"
            out = ingest.feed(topic, data, codec.CONTENT_TYPE, NOW)
            # Live is seen (for the portfolios), every other writer's records become rows.
            kind = LiveSeen if stream.writer is Writer.LIVE else Accepted
            assert out
            assert all(isinstance(o, kind) for o in out), out
            rows = sum(len(o.samples) + len(o.events) for o in out if isinstance(o, Accepted))
            assert rows == rows_per_message()[str(stream.writer)]
            assert all(o.time == NOW for o in out if isinstance(o, Accepted | LiveSeen))
    assert ingest.held == 0


def test_schedule_spreads_each_writer_over_its_interval() -> None:
    live = next(s for s in streams(100, 15.0) if s.writer is Writer.LIVE)
    assert len(live.due(0.0, 15.0)) == 100  # one round: every site once
    assert len(live.due(0.0, 22.5)) == 50  # half the next round
    assert live.due(0.0, 22.5) == []


def test_message_ids_are_unique_and_shaped_as_uuids() -> None:
    ids = Ids()
    made = {ids.next() for _ in range(1000)}
    assert len(made) == 1000
    assert all(len(i) == 36 and i.count(b"-") == 4 for i in made)


def test_mqtt5_framing() -> None:
    assert varint(0) == b"\x00"
    assert varint(127) == b"\x7f"
    assert varint(128) == b"\x80\x01"
    assert varint(16384) == b"\x80\x80\x01"
    packet = publish_packet(b"a/b", b"xy", 1, 5)
    ct = b"\x03\x00\x10application/json"
    assert (
        packet
        == b"\x32"
        + bytes([2 + 3 + 2 + 1 + len(ct) + 2])
        + b"\x00\x03a/b\x00\x05"
        + bytes([len(ct)])
        + ct
        + b"xy"
    )
    assert publish_packet(b"t", b"", 0)[0] == 0x30
    # CONNACK body: flags, reason, properties (Topic Alias Maximum 10, Receive Maximum 20)
    assert receive_maximum(b"\x00\x00\x06\x22\x00\x0a\x21\x00\x14") == 20
    assert receive_maximum(b"\x00\x00\x00") == 65535
    with pytest.raises(ConnectionError):
        receive_maximum(b"\x00\x87\x00")


def test_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.99) == pytest.approx(99.01)
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN
    assert percentile([2.0, 1.0], 1.0) == 2.0
