"""The head-end's ingest core: what the gateway's uplink encodes comes out as rows; foreign,
malformed and hostile input is refused with its cause and never stops ingest."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.config import MeterConfig
from gateway.meter.model import Diagnostics, Quality, Reading, Snapshot
from gateway.obis import Obis
from gateway.pubsub import codec
from gateway.uplink import writers as w
from headend.ingest import Accepted, Cause, Ingest, MetadataSeen, Refused, StatusSeen, parse_topic

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
METER = MeterConfig(id="meter1", url="socket://127.0.0.1:1", protocol="dlms")
VERSION = codec.ConfigurationVersion(800, 800)
PUB = "smx-17"


def metadata_message(
    writer: str, publisher: str = PUB, version: codec.ConfigurationVersion = VERSION
) -> bytes:
    spec = w.BY_NAME[writer]
    md = codec.MetaDataMessage(
        "m1", publisher, w.writer_id(0, spec), "meter1", writer, NOW, w.metadata(METER, spec, version)
    )
    return codec.encode(md)


def data_message(
    writer: str, records: list[tuple[datetime, list[float | None], int | None]], publisher: str = PUB,
    version: codec.ConfigurationVersion = VERSION,
) -> bytes:  # fmt: skip
    spec = w.BY_NAME[writer]
    fields = w.writer_fields(METER, spec)
    out = []
    for n, (t, values, status) in enumerate(records):
        payload, st = w.record_payload(spec, fields, status, values)
        out.append(w.dataset_message(spec, w.writer_id(0, spec), n + 1, version, t, payload, st))
    return codec.encode(codec.NetworkMessage("d1", publisher, "meter1", tuple(out)))


def topic(kind: str, writer: str = "", publisher: str = PUB) -> str:
    return f"opcua/json/{kind}/{publisher}/meter1/{writer}" if writer else f"opcua/json/{kind}/{publisher}"


def lp1_values(n: int = 0) -> list[float | None]:
    count = len(w.archive_columns(w.writer_fields(METER, w.BY_NAME["lp1"])))
    return [0.25 + n] * count


def ready(ingest: Ingest, *writers: str) -> None:
    for writer in writers:
        out = ingest.feed(topic("metadata", writer), metadata_message(writer), "application/json", NOW)
        assert isinstance(out[0], MetadataSeen)


def test_topics_of_the_tree_and_nothing_else() -> None:
    assert parse_topic("opcua", "opcua/json/data/smx-17/meter1/lp1") is not None
    assert parse_topic("opcua", "opcua/json/status/smx-17") is not None
    for bad in ("opcua/json/data/smx-17/meter1", "opcua/uadp/data/a/b/c", "other/json/data/a/b/c",
                "opcua/json/data//meter1/lp1", "opcua/json/status/a/b"):  # fmt: skip
        assert parse_topic("opcua", bad) is None, bad


def test_load_profile_periods_become_samples_of_every_field() -> None:
    ingest = Ingest()
    ready(ingest, "lp1")
    t1, t2 = NOW - timedelta(minutes=30), NOW - timedelta(minutes=15)
    out = ingest.feed(
        topic("data", "lp1"),
        data_message("lp1", [(t1, lp1_values(), 0), (t2, lp1_values(1), 0x80)]),
        "application/json",
        NOW,
    )
    assert all(isinstance(o, Accepted) for o in out)
    first, second = out
    assert isinstance(first, Accepted)
    assert isinstance(second, Accepted)
    assert (first.time, second.time) == (t1, t2)
    assert first.writer_id == 104
    names = {s.field for s in first.samples}
    assert "APlusPerPeriod" in names
    assert "MeterStatus" in names
    assert {s.stream for s in first.samples} == {"lp1"}
    status = {s.field: s for s in second.samples}
    assert status["MeterStatus"].value == 0x80
    assert status["APlusPerPeriod"].status == 0x40A40000  # the power-down period is Uncertain
    assert status["APlusPerPeriod"].value == 1.25


def test_events_become_events_and_live_is_not_stored() -> None:
    ingest = Ingest()
    ready(ingest, "events", "live")
    (event,) = ingest.feed(topic("data", "events"), data_message("events", [(NOW, [40.0], 5)]), None, NOW)
    assert isinstance(event, Accepted)
    assert [(e.code, e.severity, e.message, e.meter_status) for e in event.events] == [
        (40, 800, "Terminal cover opened", 5)
    ]
    frames = w.LiveFrames(w.writer_fields(METER, w.BY_NAME["live"]), 1)
    power = Obis.parse("1-0:1.7.0")
    snap = Snapshot("meter1", NOW, {power: Reading(power, 1.5, "kW", NOW, Quality.GOOD)}, Diagnostics())
    kind, payload, worst = frames.frame(snap)
    msg = w.dataset_message(w.BY_NAME["live"], 101, 1, VERSION, NOW, payload, worst, kind)
    data = codec.encode(codec.NetworkMessage("x", PUB, "meter1", (msg,)))
    assert ingest.feed(topic("data", "live"), data, None, NOW) == []


def test_data_before_its_metadata_is_held_then_taken() -> None:
    ingest = Ingest()
    data = data_message("lp1", [(NOW - timedelta(minutes=15), lp1_values(), 0)])
    assert ingest.feed(topic("data", "lp1"), data, None, NOW) == []
    assert ingest.held == 1
    out = ingest.feed(topic("metadata", "lp1"), metadata_message("lp1"), None, NOW)
    assert isinstance(out[0], MetadataSeen)
    assert isinstance(out[1], Accepted)
    assert ingest.held == 0
    # A new major version (other fields) is held again until its metadata comes.
    newer = codec.ConfigurationVersion(900, 900)
    again = data_message("lp1", [(NOW, lp1_values(), 0)], version=newer)
    assert ingest.feed(topic("data", "lp1"), again, None, NOW) == []
    out = ingest.feed(topic("metadata", "lp1"), metadata_message("lp1", version=newer), None, NOW)
    assert [type(o) for o in out] == [MetadataSeen, Accepted]


def test_status_messages_and_the_will() -> None:
    ingest = Ingest()
    will = codec.encode(codec.StatusMessage("w", PUB, codec.PubSubState.ERROR))
    assert ingest.feed(topic("status"), will, None, NOW) == [StatusSeen(PUB, codec.PubSubState.ERROR)]


def _hostile() -> list[tuple[str, str, bytes, str | None, Cause]]:
    """(what, topic, payload, content type, expected cause): the bad input of issue 17."""
    good = json.loads(data_message("lp1", [(NOW, lp1_values(), 0)]))

    def mutated(change: Any) -> bytes:
        doc = json.loads(json.dumps(good))
        change(doc)
        return json.dumps(doc).encode()

    def field(name: str, value: Any) -> Any:
        return lambda d: d["Messages"][0]["Payload"].__setitem__(name, value)

    lp1 = topic("data", "lp1")
    huge = (
        b'{"MessageId": "x", "MessageType": "ua-data", "Messages": [], "Pad": "' + b"a" * (10 << 20) + b'"}'
    )
    bomb = gzip.compress(b" " * (8 << 20))
    return [
        ("not JSON", lp1, b"\x00\xffnot json", None, Cause.INVALID),
        ("a JSON array", lp1, b"[1, 2]", None, Cause.INVALID),
        ("no MessageId", lp1, mutated(lambda d: d.pop("MessageId")), None, Cause.INVALID),
        (
            "unknown message type",
            lp1,
            mutated(lambda d: d.__setitem__("MessageType", "ua-x")),
            None,
            Cause.INVALID,
        ),
        (
            "writer id 0",
            lp1,
            mutated(lambda d: d["Messages"][0].__setitem__("DataSetWriterId", 0)),
            None,
            Cause.INVALID,
        ),
        (
            "sequence as text",
            lp1,
            mutated(lambda d: d["Messages"][0].__setitem__("SequenceNumber", "x")),
            None,
            Cause.INVALID,
        ),
        (
            "time without zone",
            lp1,
            mutated(lambda d: d["Messages"][0].__setitem__("Timestamp", "2026-12-06T10:00:00")),
            None,
            Cause.INVALID,
        ),
        ("10 MB payload", lp1, huge, None, Cause.TOO_LARGE),
        ("gzip bomb", lp1, bomb, codec.CONTENT_TYPE_GZIP, Cause.TOO_LARGE),
        ("gzip that is not", lp1, b"plain", codec.CONTENT_TYPE_GZIP, Cause.INVALID),
        ("NaN", lp1, mutated(field("APlusPerPeriod", "NaN")), None, Cause.BAD_VALUE),
        ("Infinity", lp1, mutated(field("APlusPerPeriod", "Infinity")), None, Cause.BAD_VALUE),
        ("text for a Double", lp1, mutated(field("APlusPerPeriod", "12")), None, Cause.METADATA_MISMATCH),
        ("boolean for a Double", lp1, mutated(field("APlusPerPeriod", True)), None, Cause.METADATA_MISMATCH),
        ("unknown field", lp1, mutated(field("Surprise", 1.0)), None, Cause.METADATA_MISMATCH),
        ("negative status word", lp1, mutated(field("MeterStatus", -1)), None, Cause.METADATA_MISMATCH),
        (
            "year 9999",
            lp1,
            mutated(lambda d: d["Messages"][0].__setitem__("Timestamp", "9999-12-31T00:00:00Z")),
            None,
            Cause.BAD_TIME,
        ),
        (
            "year 1990",
            lp1,
            mutated(lambda d: d["Messages"][0].__setitem__("Timestamp", "1990-01-01T00:00:00Z")),
            None,
            Cause.BAD_TIME,
        ),
        (
            "another publisher's id in the message",
            lp1,
            mutated(lambda d: d.__setitem__("PublisherId", "smx-18")),
            None,
            Cause.PUBLISHER_MISMATCH,
        ),
        (
            "another meter's group",
            lp1,
            mutated(lambda d: d.__setitem__("WriterGroupName", "meter2")),
            None,
            Cause.PUBLISHER_MISMATCH,
        ),
        (
            "writer name of another topic",
            lp1,
            mutated(lambda d: d["Messages"][0].__setitem__("DataSetWriterName", "lp2")),
            None,
            Cause.METADATA_MISMATCH,
        ),
        (
            "lp2's writer id on lp1's topic",
            lp1,
            mutated(
                lambda d: (
                    d["Messages"][0].__setitem__("DataSetWriterId", 105),
                    d["Messages"][0].__setitem__("DataSetWriterName", "lp1"),
                )
            ),
            None,
            Cause.METADATA_MISMATCH,
        ),
        (
            "a foreign topic",
            "opcua/json/data/smx-17/meter1",
            json.dumps(good).encode(),
            None,
            Cause.FOREIGN_TOPIC,
        ),
        ("another encoding", "opcua/uadp/data/smx-17/meter1/lp1", b"\x01\x02", None, Cause.FOREIGN_TOPIC),
        (
            "status on a data topic",
            lp1,
            codec.encode(codec.StatusMessage("s", PUB, codec.PubSubState.ERROR)),
            None,
            Cause.INVALID,
        ),
        (
            "metadata of another writer",
            topic("metadata", "lp1"),
            metadata_message("lp2"),
            None,
            Cause.METADATA_MISMATCH,
        ),
        (
            "a status with an unknown state",
            topic("status"),
            b'{"MessageId": "s", "MessageType": "ua-status", "PublisherId": "smx-17", "Status": 9}',
            None,
            Cause.INVALID,
        ),
        ("deeply nested", lp1, b"[" * 100_000, None, Cause.INVALID),
        (
            "a string of 5000 characters for the event's message",
            topic("data", "events"),
            json.dumps(
                {
                    **json.loads(data_message("events", [(NOW, [40.0], 0)])),
                    "Messages": [
                        {
                            **json.loads(data_message("events", [(NOW, [40.0], 0)]))["Messages"][0],
                            "Payload": {"EventCode": 40, "Message": "x" * 5000},
                        }
                    ],
                }
            ).encode(),
            None,
            Cause.METADATA_MISMATCH,
        ),
        (
            "NUL in the event's message",
            topic("data", "events"),
            json.dumps(
                {
                    **json.loads(data_message("events", [(NOW, [40.0], 0)])),
                    "Messages": [
                        {
                            **json.loads(data_message("events", [(NOW, [40.0], 0)]))["Messages"][0],
                            "Payload": {"EventCode": 40, "Message": "cover\u0000opened"},
                        }
                    ],
                }
            ).encode(),
            None,
            Cause.BAD_VALUE,
        ),
        (
            "event code beyond UInt16",
            topic("data", "events"),
            json.dumps(
                {
                    **json.loads(data_message("events", [(NOW, [40.0], 0)])),
                    "Messages": [
                        {
                            **json.loads(data_message("events", [(NOW, [40.0], 0)]))["Messages"][0],
                            "Payload": {"EventCode": 70000},
                        }
                    ],
                }
            ).encode(),
            None,
            Cause.METADATA_MISMATCH,
        ),
    ]


def test_thirty_hostile_messages_are_refused_with_their_cause_and_ingest_goes_on() -> None:
    ingest = Ingest()
    ready(ingest, "lp1", "lp2", "events")
    cases = _hostile()
    assert len(cases) >= 30
    for what, where, payload, content_type, cause in cases:
        out = ingest.feed(where, payload, content_type, NOW)
        assert out, what
        assert all(isinstance(o, Refused) for o in out), (what, out)
        assert {o.cause for o in out if isinstance(o, Refused)} == {cause}, (what, out)
    # Nothing was held or changed by them: a good message is taken as before.
    assert ingest.held == 0
    out = ingest.feed(topic("data", "lp1"), data_message("lp1", [(NOW, lp1_values(), 0)]), None, NOW)
    assert [type(o) for o in out] == [Accepted]


def test_held_messages_are_bounded() -> None:
    ingest = Ingest()
    t = NOW - timedelta(days=3)
    refused = []
    for n in range(250):
        data = data_message("lp1", [(t + timedelta(minutes=15 * n), lp1_values(), 0)])
        refused += ingest.feed(topic("data", "lp1"), data, None, NOW)
    assert ingest.held == 200
    assert len(refused) == 50
    assert {r.cause for r in refused if isinstance(r, Refused)} == {Cause.METADATA_MISSING}
    out = ingest.feed(topic("metadata", "lp1"), metadata_message("lp1"), None, NOW)
    assert len([o for o in out if isinstance(o, Accepted)]) == 200


@pytest.mark.parametrize("publisher", ["smx-17", "smx-18"])
def test_one_publishers_metadata_does_not_serve_another(publisher: str) -> None:
    ingest = Ingest()
    ingest.feed(topic("metadata", "lp1", publisher="smx-17"), metadata_message("lp1", "smx-17"), None, NOW)
    data = data_message("lp1", [(NOW, lp1_values(), 0)], publisher=publisher)
    out = ingest.feed(topic("data", "lp1", publisher=publisher), data, None, NOW)
    assert (out == []) is (publisher == "smx-18")  # smx-18's data waits for smx-18's metadata


def test_writer_id_by_name_follows_the_metadata() -> None:
    ingest = Ingest()
    assert ingest.writer_id(PUB, "meter1", "lp1") is None
    ready(ingest, "lp1", "minute")
    lp1, minute = w.writer_id(0, w.BY_NAME["lp1"]), w.writer_id(0, w.BY_NAME["minute"])
    assert ingest.writer_id(PUB, "meter1", "lp1") == lp1
    assert ingest.writer_id(PUB, "meter1", "minute") == minute
    assert ingest.writer_id("smx-18", "meter1", "lp1") is None
    assert ingest.writer_id(PUB, "meter2", "lp1") is None
    # The id of lp1 announced again as another meter's lp1: the old name no longer has it.
    spec = w.BY_NAME["lp1"]
    moved = codec.MetaDataMessage("m2", PUB, lp1, "meter2", "lp1", NOW, w.metadata(METER, spec, VERSION))
    ingest.feed(f"opcua/json/metadata/{PUB}/meter2/lp1", codec.encode(moved), None, NOW)
    assert ingest.writer_id(PUB, "meter1", "lp1") is None
    assert ingest.writer_id(PUB, "meter2", "lp1") == lp1
    assert ingest.meters() == {(PUB, "meter1"), (PUB, "meter2")}
