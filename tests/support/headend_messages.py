"""Messages as a gateway's uplink encodes them, for the head-end's tests: one meter's
metadata and data (with the gateway's own writer table and codec), their topics, and the
hostile input of issue 17 with the cause each must be refused for."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

from gateway.config import MeterConfig
from gateway.pubsub import codec
from gateway.uplink import writers as w
from headend.ingest import Cause

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


def hostile() -> list[tuple[str, str, bytes, str | None, Cause]]:
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
        ("an empty payload", lp1, b"", None, Cause.INVALID),
        ("a JSON string", lp1, b'"ua-data"', None, Cause.INVALID),
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
