"""The OPC UA PubSub JSON codec (gateway/pubsub/codec.py) and the topic tree (topics.py).

The expected JSON below is written by hand from OPC 10000-14 v1.05 §7.2.5 (Table 184
NetworkMessage, Table 185 DataSetMessage, Table 188 DataSetMetaData, Table 191 Status)
and OPC 10000-6 v1.05 §5.4 (StatusCode, DateTime, Double, Variant, ExtensionObject,
LocalizedText forms), never produced by the encoder; the head-end and any third-party
subscriber rely on exactly these shapes. Decoding must take the v1.04 forms still sent in
the wild and refuse anything else with a :class:`~gateway.pubsub.codec.MessageError` that
names the field.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gzip
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from asyncua import ua
from hypothesis import given
from hypothesis import strategies as st

from gateway.pubsub import codec
from gateway.pubsub.codec import (
    Ack,
    BuiltInType,
    ConfigurationVersion,
    DataSetMessage,
    DataSetMessageType,
    DataSetMetaData,
    EUInformation,
    FieldMetaData,
    FieldValue,
    MessageError,
    MetaDataMessage,
    NetworkMessage,
    PubSubState,
    ReplayRequest,
    StatusMessage,
)
from gateway.pubsub.topics import Topics, check_level, check_prefix, publisher_id_from_uri
from tests.support.pubsub_schema import SCHEMA, schema_of, validate

T0 = datetime(2026, 3, 29, 0, 15, tzinfo=UTC)
VERSION = ConfigurationVersion(828_061_200, 828_061_260)
VERSION_JSON = {"MajorVersion": 828_061_200, "MinorVersion": 828_061_260}
UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"
FIELD_ID_1 = "0b9e3a52-6a8d-5b7f-9c11-2f1d8e4a7c01"
FIELD_ID_2 = "0b9e3a52-6a8d-5b7f-9c11-2f1d8e4a7c02"

# -- the messages and their JSON, by hand ---------------------------------------------------

KEY_FRAME = NetworkMessage(
    message_id="6f1c2a9e-0c57-4a36-8d0f-6e0b7c9f1a01",
    publisher_id="smx-17",
    writer_group="meter-1",
    messages=(
        DataSetMessage(
            writer_id=101,
            sequence_number=7,
            metadata_version=VERSION,
            timestamp=T0,
            message_type=DataSetMessageType.KEY_FRAME,
            payload={
                "VoltageL1": FieldValue(230.1),
                "CurrentL1": FieldValue(None, 0x80320000),
                "PowerFactor": FieldValue(0.98, 0x40900400),  # with InfoBits set
                "Angle": FieldValue(12.5, 0x80AB0000),  # a code the codec has no symbol for
                "ActiveEnergy": 1234.5,
                "Frequency": math.nan,
                "ReactiveEnergy": math.inf,
                "Drift": -math.inf,
            },
            writer_name="live",
        ),
    ),
)
KEY_FRAME_JSON: dict[str, Any] = {
    "MessageId": "6f1c2a9e-0c57-4a36-8d0f-6e0b7c9f1a01",
    "MessageType": "ua-data",
    "PublisherId": "smx-17",
    "WriterGroupName": "meter-1",
    "Messages": [
        {
            "DataSetWriterId": 101,
            "DataSetWriterName": "live",
            "SequenceNumber": 7,
            "MetaDataVersion": VERSION_JSON,
            "Timestamp": "2026-03-29T00:15:00Z",
            "MessageType": "ua-keyframe",
            "Payload": {
                "VoltageL1": {"Value": 230.1},
                "CurrentL1": {
                    "Value": None,
                    "Status": {"Code": 0x80320000, "Symbol": "BadWaitingForInitialData"},
                },
                "PowerFactor": {
                    "Value": 0.98,
                    "Status": {"Code": 0x40900400, "Symbol": "UncertainLastUsableValue"},
                },
                "Angle": {"Value": 12.5, "Status": {"Code": 0x80AB0000}},
                "ActiveEnergy": 1234.5,
                "Frequency": "NaN",
                "ReactiveEnergy": "Infinity",
                "Drift": "-Infinity",
            },
        }
    ],
}

DELTA_FRAME = NetworkMessage(
    message_id="msg-2",
    publisher_id="smx-17",
    writer_group="meter-1",
    messages=(
        DataSetMessage(
            writer_id=101,
            sequence_number=8,
            metadata_version=VERSION,
            timestamp=T0 + timedelta(seconds=1, microseconds=500_000),
            message_type=DataSetMessageType.DELTA_FRAME,
            payload={"VoltageL1": FieldValue(230.2)},
            status=0x40000000,
            writer_name="live",
        ),
    ),
)
DELTA_FRAME_JSON: dict[str, Any] = {
    "MessageId": "msg-2",
    "MessageType": "ua-data",
    "PublisherId": "smx-17",
    "WriterGroupName": "meter-1",
    "Messages": [
        {
            "DataSetWriterId": 101,
            "DataSetWriterName": "live",
            "SequenceNumber": 8,
            "MetaDataVersion": VERSION_JSON,
            "Timestamp": "2026-03-29T00:15:01.5Z",
            "Status": {"Code": 0x40000000, "Symbol": "Uncertain"},
            "MessageType": "ua-deltaframe",
            "Payload": {"VoltageL1": {"Value": 230.2}},
        }
    ],
}

KEEP_ALIVE = NetworkMessage(
    "msg-3",
    "smx-17",
    "meter-1",
    (DataSetMessage(102, 9, VERSION, T0, DataSetMessageType.KEEP_ALIVE, None, writer_name="minute"),),
)
KEEP_ALIVE_JSON: dict[str, Any] = {
    "MessageId": "msg-3",
    "MessageType": "ua-data",
    "PublisherId": "smx-17",
    "WriterGroupName": "meter-1",
    "Messages": [
        {
            "DataSetWriterId": 102,
            "DataSetWriterName": "minute",
            "SequenceNumber": 9,
            "MetaDataVersion": VERSION_JSON,
            "Timestamp": "2026-03-29T00:15:00Z",
            "MessageType": "ua-keepalive",
        }
    ],
}

EVENT = NetworkMessage(
    "msg-4",
    "smx-17",
    "meter-1",
    (
        DataSetMessage(
            writer_id=106,
            sequence_number=3,
            metadata_version=VERSION,
            timestamp=datetime(2026, 3, 28, 23, 59, 58, 123456, tzinfo=UTC),
            message_type=DataSetMessageType.EVENT,
            payload={"EventCode": 47, "Severity": 500, "Message": "Power down", "MeterStatus": 0},
            writer_name="events",
        ),
    ),
)
EVENT_JSON: dict[str, Any] = {
    "MessageId": "msg-4",
    "MessageType": "ua-data",
    "PublisherId": "smx-17",
    "WriterGroupName": "meter-1",
    "Messages": [
        {
            "DataSetWriterId": 106,
            "DataSetWriterName": "events",
            "SequenceNumber": 3,
            "MetaDataVersion": VERSION_JSON,
            "Timestamp": "2026-03-28T23:59:58.123456Z",
            "MessageType": "ua-event",
            "Payload": {"EventCode": 47, "Severity": 500, "Message": "Power down", "MeterStatus": 0},
        }
    ],
}

METADATA = MetaDataMessage(
    message_id="msg-5",
    publisher_id="smx-17",
    writer_id=102,
    writer_group="meter-1",
    writer_name="minute",
    timestamp=T0,
    metadata=DataSetMetaData(
        namespaces=("http://smx-gateway.org/UA/",),
        name="meter-1.minute",
        fields=(
            FieldMetaData(
                "VoltageL1",
                BuiltInType.DOUBLE,
                FIELD_ID_1,
                "Voltage L1 (mean of the minute)",
                (
                    ("EngineeringUnits", EUInformation(UNECE, 0x564C54, "V", "volt")),
                    ("Obis", "1-0:32.7.0.255"),
                ),
            ),
            FieldMetaData("VoltageL1_Samples", BuiltInType.UINT32, FIELD_ID_2, "Samples"),
        ),
        configuration_version=VERSION,
        description="Minute records.",
    ),
)
METADATA_JSON: dict[str, Any] = {
    "MessageId": "msg-5",
    "MessageType": "ua-metadata",
    "PublisherId": "smx-17",
    "DataSetWriterId": 102,
    "WriterGroupName": "meter-1",
    "DataSetWriterName": "minute",
    "Timestamp": "2026-03-29T00:15:00Z",
    "MetaData": {
        # DataTypeSchemaHeader.Namespaces: index 1 of the "1:Obis" key is its first entry.
        "Namespaces": ["http://smx-gateway.org/UA/"],
        "Name": "meter-1.minute",
        "Description": {"Text": "Minute records."},
        "Fields": [
            {
                "Name": "VoltageL1",
                "Description": {"Text": "Voltage L1 (mean of the minute)"},
                "FieldFlags": 0,
                "BuiltInType": 11,
                "DataType": "i=11",
                "ValueRank": -1,
                "ArrayDimensions": [],
                "MaxStringLength": 0,
                "DataSetFieldId": FIELD_ID_1,
                "Properties": [
                    {
                        "Key": "EngineeringUnits",
                        "Value": {
                            "UaType": 22,
                            "Value": {
                                "UaTypeId": "i=887",
                                "UaBody": {
                                    "NamespaceUri": UNECE,
                                    "UnitId": 0x564C54,  # "VLT", the UNECE code of volt
                                    "DisplayName": {"Text": "V"},
                                    "Description": {"Text": "volt"},
                                },
                            },
                        },
                    },
                    {"Key": "1:Obis", "Value": {"UaType": 12, "Value": "1-0:32.7.0.255"}},
                ],
            },
            {
                "Name": "VoltageL1_Samples",
                "Description": {"Text": "Samples"},
                "FieldFlags": 0,
                "BuiltInType": 7,
                "DataType": "i=7",
                "ValueRank": -1,
                "ArrayDimensions": [],
                "MaxStringLength": 0,
                "DataSetFieldId": FIELD_ID_2,
                "Properties": [],
            },
        ],
        "ConfigurationVersion": VERSION_JSON,
    },
}

STATUS = StatusMessage("msg-6", "smx-17", PubSubState.OPERATIONAL)
STATUS_JSON: dict[str, Any] = {
    "MessageId": "msg-6",
    "MessageType": "ua-status",
    "PublisherId": "smx-17",
    "IsCyclic": False,
    "Status": 2,
}

CYCLIC_STATUS = StatusMessage(
    "msg-7", "smx-17", PubSubState.OPERATIONAL, True, T0, T0 + timedelta(minutes=1), 96, 12_345
)
CYCLIC_STATUS_JSON: dict[str, Any] = {
    "MessageId": "msg-7",
    "MessageType": "ua-status",
    "PublisherId": "smx-17",
    "Timestamp": "2026-03-29T00:15:00Z",
    "IsCyclic": True,
    "Status": 2,
    "NextReportTime": "2026-03-29T00:16:00Z",
    "Backlog": 96,
    "MessagesSent": 12_345,
}

ACK = Ack(102, T0)
ACK_JSON: dict[str, Any] = {"DataSetWriterId": 102, "Through": "2026-03-29T00:15:00Z"}

REPLAY = ReplayRequest(104, T0 - timedelta(days=1), T0)
REPLAY_JSON: dict[str, Any] = {
    "DataSetWriterId": 104,
    "From": "2026-03-28T00:15:00Z",
    "To": "2026-03-29T00:15:00Z",
}

EXAMPLES: dict[str, tuple[Any, dict[str, Any]]] = {
    "key frame": (KEY_FRAME, KEY_FRAME_JSON),
    "delta frame": (DELTA_FRAME, DELTA_FRAME_JSON),
    "keep-alive": (KEEP_ALIVE, KEEP_ALIVE_JSON),
    "event": (EVENT, EVENT_JSON),
    "metadata": (METADATA, METADATA_JSON),
    "status": (STATUS, STATUS_JSON),
    "cyclic status": (CYCLIC_STATUS, CYCLIC_STATUS_JSON),
    "ack": (ACK, ACK_JSON),
    "replay": (REPLAY, REPLAY_JSON),
}
MESSAGES = ["key frame", "delta frame", "keep-alive", "event", "metadata", "status", "cyclic status"]
DECODERS: dict[type, Callable[[bytes], Any]] = {
    NetworkMessage: codec.decode,
    MetaDataMessage: codec.decode,
    StatusMessage: codec.decode,
    Ack: codec.decode_ack,
    ReplayRequest: codec.decode_replay,
}


def _canon(x: Any) -> Any:
    """``x`` as nested tuples with every scalar tagged by its type and NaN made equal to
    itself: ``==`` on the result tells ``True`` from ``1`` and ``1`` from ``1.0``."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return (type(x).__name__, tuple(_canon(getattr(x, f.name)) for f in dataclasses.fields(x)))
    if isinstance(x, Mapping):
        return ("map", tuple((k, _canon(v)) for k, v in x.items()))
    if isinstance(x, list | tuple):
        return ("seq", tuple(_canon(v) for v in x))
    if isinstance(x, float) and math.isnan(x):
        return ("float", "NaN")
    return (type(x).__name__, x)


def _same(a: Any, b: Any) -> bool:
    return bool(_canon(a) == _canon(b))


# -- encoding -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
def test_encodes_to_the_json_of_the_specification(name: str) -> None:
    msg, expected = EXAMPLES[name]
    assert codec.to_json(msg) == expected
    assert json.loads(codec.encode(msg)) == expected


@pytest.mark.parametrize("name", EXAMPLES)
def test_what_is_sent_validates_against_the_schema(name: str) -> None:
    msg, _ = EXAMPLES[name]
    schema = schema_of(type(msg).__name__) if isinstance(msg, Ack | ReplayRequest) else SCHEMA
    assert validate(json.loads(codec.encode(msg)), schema) == []


def test_status_is_omitted_when_good() -> None:
    good = dataclasses.replace(DELTA_FRAME.messages[0], status=0)
    assert "Status" not in codec.to_json(NetworkMessage("m", "p", "g", (good,)))["Messages"][0]
    payload = codec.to_json(KEY_FRAME)["Messages"][0]["Payload"]
    assert payload["VoltageL1"] == {"Value": 230.1}  # a Good DataValue: no Status


def test_status_codes_are_code_and_symbol_objects() -> None:
    dsm = codec.to_json(DELTA_FRAME)["Messages"][0]
    assert dsm["Status"] == {"Code": 1073741824, "Symbol": "Uncertain"}
    payload = codec.to_json(KEY_FRAME)["Messages"][0]["Payload"]
    # InfoBits are ignored when looking the symbol up (Part 6 §5.4.2.12), kept in the Code.
    assert payload["PowerFactor"]["Status"] == {"Code": 0x40900400, "Symbol": "UncertainLastUsableValue"}
    # A code without a known symbol goes without a Symbol.
    assert payload["Angle"]["Status"] == {"Code": 0x80AB0000}


def test_non_finite_doubles_are_strings_and_never_nan_literals() -> None:
    data = codec.encode(KEY_FRAME)
    payload = json.loads(data)["Messages"][0]["Payload"]
    assert (payload["Frequency"], payload["ReactiveEnergy"], payload["Drift"]) == (
        "NaN",
        "Infinity",
        "-Infinity",
    )
    assert b":NaN" not in data
    assert b":Infinity" not in data
    assert b":-Infinity" not in data
    json.loads(data, parse_constant=lambda c: pytest.fail(f"JSON holds the literal {c}"))


@pytest.mark.parametrize(
    ("time", "text"),
    [
        (datetime(2026, 3, 29, 0, 15, tzinfo=UTC), "2026-03-29T00:15:00Z"),
        (datetime(2026, 3, 29, 0, 15, 0, 500_000, tzinfo=UTC), "2026-03-29T00:15:00.5Z"),
        (datetime(2026, 3, 29, 0, 15, 0, 123_456, tzinfo=UTC), "2026-03-29T00:15:00.123456Z"),
        (datetime(2026, 3, 29, 0, 15, 0, 10, tzinfo=UTC), "2026-03-29T00:15:00.00001Z"),
        (datetime(2026, 3, 29, 2, 15, tzinfo=timezone(timedelta(hours=2))), "2026-03-29T00:15:00Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),  # DateTime's minimum (Part 6)
        (datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC), "0999-12-31T23:59:59Z"),
    ],
)
def test_datetimes_are_iso_8601_utc_with_z(time: datetime, text: str) -> None:
    assert codec.format_time(time) == text
    assert codec.parse_time(text, "t") == time


def test_data_set_writer_id_is_a_uint16_number() -> None:
    dsm = codec.to_json(KEY_FRAME)["Messages"][0]
    assert dsm["DataSetWriterId"] == 101
    assert type(dsm["DataSetWriterId"]) is int


def test_keep_alive_has_no_payload() -> None:
    assert "Payload" not in codec.to_json(KEEP_ALIVE)["Messages"][0]
    # even when the caller hands one
    with_payload = dataclasses.replace(KEEP_ALIVE.messages[0], payload={"x": 1.0})
    assert "Payload" not in codec.to_json(NetworkMessage("m", "p", "g", (with_payload,)))["Messages"][0]


def test_non_cyclic_status_omits_timestamp_and_next_report_time() -> None:
    out = codec.to_json(dataclasses.replace(STATUS, timestamp=T0, next_report=T0))
    assert "Timestamp" not in out
    assert "NextReportTime" not in out


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("Backlog", -1, "Backlog: -1 is outside 0..4294967295"),
        ("Backlog", "96", "Backlog: expected an integer, got a string"),
        ("MessagesSent", 2**64, "MessagesSent: 18446744073709551616 is outside"),
        ("MessagesSent", 1.5, "MessagesSent: expected an integer, got a number"),
    ],
)
def test_the_smx_status_extension_is_checked(key: str, value: Any, error: str) -> None:
    with pytest.raises(MessageError, match=re.escape(error)):
        codec.decode(json.dumps({**CYCLIC_STATUS_JSON, key: value}))


def test_a_cyclic_status_needs_both_times() -> None:
    with pytest.raises(ValueError, match="NextReportTime"):
        codec.to_json(dataclasses.replace(CYCLIC_STATUS, next_report=None))


def test_encode_is_compact_utf8_json() -> None:
    msg = dataclasses.replace(STATUS, publisher_id="zähler-ß")
    data = codec.encode(msg)
    assert (
        data
        == (
            '{"MessageId":"msg-6","MessageType":"ua-status","PublisherId":"zähler-ß","IsCyclic":false,"Status":2}'
        ).encode()
    )
    assert b" " not in codec.encode(KEY_FRAME)
    assert b"\n" not in codec.encode(METADATA)


# -- decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
def test_decode_undoes_encode(name: str) -> None:
    msg, _ = EXAMPLES[name]
    assert _same(DECODERS[type(msg)](codec.encode(msg)), msg)
    if name != "key frame":  # NaN != NaN: the key frame is checked with _same only
        assert DECODERS[type(msg)](codec.encode(msg)) == msg


def test_decoded_payload_holds_field_values_for_data_values_and_plain_values_otherwise() -> None:
    decoded = codec.decode(codec.encode(KEY_FRAME))
    assert isinstance(decoded, NetworkMessage)
    payload = decoded.messages[0].payload
    assert payload is not None
    assert payload["VoltageL1"] == FieldValue(230.1, 0)
    assert payload["CurrentL1"] == FieldValue(None, 0x80320000)
    assert payload["ActiveEnergy"] == 1234.5
    assert type(payload["ActiveEnergy"]) is float
    assert math.isnan(payload["Frequency"])
    assert payload["ReactiveEnergy"] == math.inf
    assert codec.field_values(payload)["CurrentL1"] is None


def _data(**changes: Any) -> dict[str, Any]:
    """The key frame's JSON with the first DataSetMessage's fields changed."""
    out = copy.deepcopy(KEY_FRAME_JSON)
    out["Messages"][0].update(changes)
    return out


def _decode(o: Any) -> Any:
    return codec.decode(json.dumps(o))


def test_accepts_v104_variants_in_the_payload() -> None:
    decoded = _decode(
        _data(
            Payload={
                "A": {"Type": 11, "Body": 230.1},
                "B": {"UaType": 11, "Value": 1.5},
                "C": {"Type": 11, "Body": "NaN"},
                "D": {"Type": 19, "Body": 2150760448},  # a Bad field sent as its StatusCode
            }
        )
    )
    payload = decoded.messages[0].payload
    assert payload["A"] == 230.1
    assert payload["B"] == 1.5
    assert math.isnan(payload["C"])
    assert payload["D"] == FieldValue(None, 0x80320000)


def test_accepts_v104_status_codes_as_bare_numbers() -> None:
    decoded = _decode(_data(Status=1073741824, Payload={"A": {"Value": 1.0, "Status": 2147483648}}))
    assert decoded.messages[0].status == 0x40000000
    assert decoded.messages[0].payload == {"A": FieldValue(1.0, 0x80000000)}


def test_accepts_a_status_code_given_by_its_symbol_alone() -> None:
    decoded = _decode(_data(Status={"Symbol": "Bad_NoData"}))
    assert decoded.messages[0].status == ua.StatusCodes.BadNoData


def test_accepts_v104_writer_id_as_numeric_string_and_numeric_publisher_id() -> None:
    o = _data(DataSetWriterId="101")
    o["PublisherId"] = 17
    decoded = _decode(o)
    assert decoded.messages[0].writer_id == 101
    assert decoded.publisher_id == "17"


def test_accepts_messages_as_a_single_object() -> None:
    o = copy.deepcopy(KEY_FRAME_JSON)
    o["Messages"] = o["Messages"][0]
    assert _same(_decode(o), KEY_FRAME)


def test_accepts_a_verbose_enumeration_status() -> None:
    decoded = _decode(STATUS_JSON | {"Status": "Operational_2"})
    assert decoded.status is PubSubState.OPERATIONAL


def _second(**changes: Any) -> dict[str, Any]:
    """The key frame's JSON with a second DataSetMessage, changed."""
    out = copy.deepcopy(KEY_FRAME_JSON)
    out["Messages"].append({**out["Messages"][0], **changes})
    return out


BAD_MESSAGES: dict[str, tuple[str | bytes, str]] = {
    "SequenceNumber -1": (json.dumps(_second(SequenceNumber=-1)), "Messages[1].SequenceNumber"),
    "SequenceNumber 2^32": (json.dumps(_data(SequenceNumber=1 << 32)), "Messages[0].SequenceNumber"),
    "SequenceNumber 1.5": (json.dumps(_data(SequenceNumber=1.5)), "Messages[0].SequenceNumber"),
    "DataSetWriterId 0": (json.dumps(_data(DataSetWriterId=0)), "Messages[0].DataSetWriterId"),
    "DataSetWriterId 70000": (json.dumps(_data(DataSetWriterId=70000)), "Messages[0].DataSetWriterId"),
    "DataSetWriterId true": (json.dumps(_data(DataSetWriterId=True)), "Messages[0].DataSetWriterId"),
    "DataSetWriterId superscript digit": (
        json.dumps(_data(DataSetWriterId="²")),
        "Messages[0].DataSetWriterId",
    ),
    "DataSetWriterId 5000 digits": (
        json.dumps(_data(DataSetWriterId="1" * 5000)),
        "Messages[0].DataSetWriterId",
    ),
    "DataSetWriterId missing": (
        json.dumps(
            _data()
            | {"Messages": [{k: v for k, v in _data()["Messages"][0].items() if k != "DataSetWriterId"}]}
        ),
        "Messages[0].DataSetWriterId",
    ),
    "Timestamp without zone": (json.dumps(_data(Timestamp="2026-03-29T00:15:00")), "Messages[0].Timestamp"),
    "Timestamp not a time": (json.dumps(_data(Timestamp="yesterday")), "Messages[0].Timestamp"),
    "Timestamp before year 1 in UTC": (
        json.dumps(_data(Timestamp="0001-01-01T00:00:00+01:00")),
        "Messages[0].Timestamp",
    ),
    "DataSetMessage type unknown": (json.dumps(_data(MessageType="ua-frame")), "Messages[0].MessageType"),
    "key frame without Payload": (
        json.dumps(
            _data() | {"Messages": [{k: v for k, v in _data()["Messages"][0].items() if k != "Payload"}]}
        ),
        "Messages[0].Payload",
    ),
    "field Status Code negative": (
        json.dumps(_data(Payload={"A": {"Value": 1, "Status": {"Code": -1}}})),
        "Messages[0].Payload.A.Status.Code",
    ),
    "field Status unknown symbol": (
        json.dumps(_data(Payload={"A": {"Value": 1, "Status": {"Symbol": "BadSomething"}}})),
        "Messages[0].Payload.A.Status.Symbol",
    ),
    "MetaDataVersion not an object": (json.dumps(_data(MetaDataVersion=1)), "Messages[0].MetaDataVersion"),
    "Messages not an array": (json.dumps(KEY_FRAME_JSON | {"Messages": "x"}), "Messages"),
    "MessageType unknown": (json.dumps(KEY_FRAME_JSON | {"MessageType": "ua-whatever"}), "MessageType"),
    "MessageType missing": (
        json.dumps({k: v for k, v in KEY_FRAME_JSON.items() if k != "MessageType"}),
        "MessageType",
    ),
    "MessageId missing": (
        json.dumps({k: v for k, v in KEY_FRAME_JSON.items() if k != "MessageId"}),
        "MessageId",
    ),
    "MessageId a number": (json.dumps(KEY_FRAME_JSON | {"MessageId": 5}), "MessageId"),
    "not JSON": (b'{"MessageId": ', ""),
    "not UTF-8": (b'{"MessageId": "\xff"}', ""),
    "a top-level array": (json.dumps([KEY_FRAME_JSON]), ""),
    "nested too deeply": ("[" * 100_000, ""),
    "over MAX_MESSAGE_BYTES": (b" " * codec.MAX_MESSAGE_BYTES + json.dumps(STATUS_JSON).encode(), ""),
    "status cyclic without Timestamp": (
        json.dumps({k: v for k, v in CYCLIC_STATUS_JSON.items() if k != "Timestamp"}),
        "Timestamp",
    ),
    "status cyclic without NextReportTime": (
        json.dumps({k: v for k, v in CYCLIC_STATUS_JSON.items() if k != "NextReportTime"}),
        "NextReportTime",
    ),
    "status 5": (json.dumps(STATUS_JSON | {"Status": 5}), "Status"),
    "status missing": (json.dumps({k: v for k, v in STATUS_JSON.items() if k != "Status"}), "Status"),
    "status verbose with a superscript": (json.dumps(STATUS_JSON | {"Status": "Operational_²"}), "Status"),
    "status IsCyclic a string": (json.dumps(STATUS_JSON | {"IsCyclic": "false"}), "IsCyclic"),
    "status without PublisherId": (
        json.dumps({k: v for k, v in STATUS_JSON.items() if k != "PublisherId"}),
        "PublisherId",
    ),
    "metadata BuiltInType Guid": (
        json.dumps(
            METADATA_JSON
            | {"MetaData": METADATA_JSON["MetaData"] | {"Fields": [{"Name": "x", "BuiltInType": 14}]}}
        ),
        "MetaData.Fields[0].BuiltInType",
    ),
    "metadata field without Name": (
        json.dumps(
            METADATA_JSON | {"MetaData": METADATA_JSON["MetaData"] | {"Fields": [{"BuiltInType": 11}]}}
        ),
        "MetaData.Fields[0].Name",
    ),
    "metadata without ConfigurationVersion": (
        json.dumps(
            METADATA_JSON
            | {
                "MetaData": {
                    k: v for k, v in METADATA_JSON["MetaData"].items() if k != "ConfigurationVersion"
                }
            }
        ),
        "MetaData.ConfigurationVersion",
    ),
    "metadata DataSetWriterId 0": (json.dumps(METADATA_JSON | {"DataSetWriterId": 0}), "DataSetWriterId"),
}


@pytest.mark.parametrize("name", BAD_MESSAGES)
def test_invalid_messages_raise_message_error_naming_the_field(name: str) -> None:
    data, path = BAD_MESSAGES[name]
    with pytest.raises(MessageError) as caught:
        codec.decode(data)
    assert caught.value.path == path
    assert str(caught.value).startswith(path or "message")


@pytest.mark.parametrize(
    ("decode", "data", "path"),
    [
        (codec.decode_ack, {"Through": "2026-03-29T00:15:00Z"}, "DataSetWriterId"),
        (codec.decode_ack, {"DataSetWriterId": 1}, "Through"),
        (codec.decode_ack, {"DataSetWriterId": 65536, "Through": "2026-03-29T00:15:00Z"}, "DataSetWriterId"),
        (codec.decode_replay, REPLAY_JSON | {"From": "2026-03-30T00:00:00Z"}, "From"),  # after To
        (codec.decode_replay, REPLAY_JSON | {"To": "2026-03-30"}, "To"),
        (codec.decode_replay, [REPLAY_JSON], ""),
    ],
)
def test_invalid_acks_and_replay_requests(decode: Callable[[str], Any], data: Any, path: str) -> None:
    with pytest.raises(MessageError) as caught:
        decode(json.dumps(data))
    assert caught.value.path == path


def test_message_error_is_a_remote_protocol_error() -> None:
    from gateway.errors import RemoteProtocolError

    assert issubclass(MessageError, RemoteProtocolError)


# -- gzip -------------------------------------------------------------------------------------


def test_compress_round_trip() -> None:
    data = codec.encode(KEY_FRAME)
    assert codec.decompress(codec.compress(data)) == data
    assert gzip.decompress(codec.compress(data)) == data  # plain gzip for other consumers
    assert codec.compress(data) == codec.compress(data)  # no time in the header


def test_decompress_refuses_a_gzip_bomb() -> None:
    bomb = gzip.compress(b"\0" * (2 << 20))
    assert len(bomb) < 10_000
    with pytest.raises(MessageError, match="larger than"):
        codec.decompress(bomb)


def test_decompress_limit_is_exact() -> None:
    packed = codec.compress(b"x" * 100)
    assert codec.decompress(packed, limit=100) == b"x" * 100
    with pytest.raises(MessageError):
        codec.decompress(packed, limit=99)


@pytest.mark.parametrize(
    "data", [codec.compress(b"x" * 1000)[:-9], b"", b"{not gzip}", b"\x1f\x8b\x08garbage"]
)
def test_decompress_refuses_truncated_or_foreign_data(data: bytes) -> None:
    with pytest.raises(MessageError):
        codec.decompress(data)


# -- status codes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "symbol"), sorted(codec.STATUS_SYMBOLS.items()))
def test_status_symbols_match_asyncua(code: int, symbol: str) -> None:
    assert getattr(ua.StatusCodes, symbol) == code


# -- properties ---------------------------------------------------------------------------------

_AMBIGUOUS = {"NaN", "Infinity", "-Infinity"}  # a String field with these reads back as a Double
times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999_999), timezones=st.just(UTC)
)
status_codes = st.one_of(st.sampled_from(sorted(codec.STATUS_SYMBOLS)), st.integers(0, 0xFFFFFFFF))
plain_values = st.one_of(
    st.floats(),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.text().filter(lambda s: s not in _AMBIGUOUS),
    st.booleans(),
    st.none(),
)
field_values = st.one_of(plain_values, st.builds(FieldValue, plain_values, status_codes))
versions = st.builds(ConfigurationVersion, st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))


@st.composite
def dataset_messages(draw: st.DrawFn) -> DataSetMessage:
    kind = draw(st.sampled_from(DataSetMessageType))
    payload = None
    if kind is not DataSetMessageType.KEEP_ALIVE:
        payload = draw(st.dictionaries(st.text(), field_values, max_size=6))
    return DataSetMessage(
        writer_id=draw(st.integers(1, 0xFFFF)),
        sequence_number=draw(st.integers(0, 0xFFFFFFFF)),
        metadata_version=draw(versions),
        timestamp=draw(times),
        message_type=kind,
        payload=payload,
        status=draw(status_codes),
        writer_name=draw(st.text()),
    )


network_messages = st.builds(
    NetworkMessage,
    st.text(min_size=1),
    st.text(),
    st.text(),
    st.lists(dataset_messages(), max_size=5).map(tuple),
)
eu_information = st.builds(
    EUInformation, st.text(), st.integers(-(1 << 31), (1 << 31) - 1), st.text(), st.text()
)
properties = st.lists(
    st.one_of(
        st.tuples(st.just("EngineeringUnits"), eu_information),
        st.tuples(st.one_of(st.sampled_from(["Obis", "Quantity"]), st.text(min_size=1)), st.text()),
    ),
    max_size=3,
).map(tuple)
field_metadata = st.builds(
    FieldMetaData,
    st.text(min_size=1),
    st.sampled_from(BuiltInType),
    st.uuids().map(str),
    st.text(),
    properties,
)
metadata_messages = st.builds(
    MetaDataMessage,
    st.text(min_size=1),
    st.text(min_size=1),
    st.integers(1, 0xFFFF),
    st.text(),
    st.text(),
    times,
    st.builds(
        DataSetMetaData, st.text(), st.lists(field_metadata, max_size=4).map(tuple), versions, st.text()
    ),
)


@st.composite
def status_messages(draw: st.DrawFn) -> StatusMessage:
    cyclic = draw(st.booleans())
    return StatusMessage(
        draw(st.text(min_size=1)),
        draw(st.text(min_size=1)),
        draw(st.sampled_from(PubSubState)),
        cyclic,
        draw(times) if cyclic else None,
        draw(times) if cyclic else None,
        draw(st.none() | st.integers(0, 2**32 - 1)),
        draw(st.none() | st.integers(0, 2**64 - 1)),
    )


messages = st.one_of(network_messages, metadata_messages, status_messages())


@given(messages)
def test_decode_undoes_encode_for_any_message(msg: codec.Message) -> None:
    assert _same(codec.decode(codec.encode(msg)), msg)


@given(messages)
def test_any_message_encodes_to_json_of_the_schema(msg: codec.Message) -> None:
    data = codec.encode(msg)
    assert validate(json.loads(data), SCHEMA) == []
    json.loads(data, parse_constant=lambda c: pytest.fail(f"JSON holds the literal {c}"))


@given(st.builds(Ack, st.integers(1, 0xFFFF), times))
def test_acks_round_trip(ack: Ack) -> None:
    assert codec.decode_ack(codec.encode(ack)) == ack
    assert validate(json.loads(codec.encode(ack)), schema_of("Ack")) == []


@given(st.integers(1, 0xFFFF), times, times)
def test_replay_requests_round_trip(writer: int, a: datetime, b: datetime) -> None:
    req = ReplayRequest(writer, min(a, b), max(a, b))
    assert codec.decode_replay(codec.encode(req)) == req
    assert validate(json.loads(codec.encode(req)), schema_of("ReplayRequest")) == []


ALL_DECODERS = [codec.decode, codec.decode_ack, codec.decode_replay]


def _only_message_errors(data: bytes | str) -> None:
    for decode in ALL_DECODERS:
        with contextlib.suppress(MessageError):
            decode(data)


@given(st.binary(max_size=300))
def test_garbage_bytes_raise_only_message_error(data: bytes) -> None:
    _only_message_errors(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_garbage_json_raises_only_message_error(value: Any) -> None:
    _only_message_errors(json.dumps(value))


def _paths(o: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every key/index path in a JSON value."""
    out = [path] if path else []
    if isinstance(o, dict):
        for k, v in o.items():
            out += _paths(v, (*path, k))
    elif isinstance(o, list):
        for n, v in enumerate(o):
            out += _paths(v, (*path, n))
    return out


@given(st.one_of(messages, st.builds(Ack, st.integers(1, 0xFFFF), times)), st.data())
def test_mutated_messages_raise_only_message_error(msg: Any, data: st.DataObject) -> None:
    o = codec.to_json(msg)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(o)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        parent: Any = o
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans(), label="delete"):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_values, label="value")
    _only_message_errors(json.dumps(o))


# -- topics -------------------------------------------------------------------------------------


def test_the_five_topics_of_a_publisher() -> None:
    t = Topics("opcua", "smx-17")
    assert t.data("meter-1", "live") == "opcua/json/data/smx-17/meter-1/live"
    assert t.metadata("meter-1", "live") == "opcua/json/metadata/smx-17/meter-1/live"
    assert t.status == "opcua/json/status/smx-17"
    assert t.ack == "opcua/json/ack/smx-17"
    assert t.replay == "opcua/json/replay/smx-17"
    assert Topics("fleet/opcua", "smx-17").status == "fleet/opcua/json/status/smx-17"


@pytest.mark.parametrize("name", ["", "a/b", "+", "#", "x\x00", "a+", "#b"])
def test_check_level_refuses_what_cannot_be_one_topic_level(name: str) -> None:
    with pytest.raises(ValueError, match="MQTT topic level"):
        check_level(name, "PublisherId")


def test_check_level_passes_a_good_level() -> None:
    assert check_level("smx-17", "PublisherId") == "smx-17"


@pytest.mark.parametrize(
    ("prefix", "publisher"), [("", "smx"), ("a//b", "smx"), ("opcua/", "smx"), ("opcua", "a/b")]
)
def test_topics_refuse_bad_prefix_or_publisher(prefix: str, publisher: str) -> None:
    with pytest.raises(ValueError, match="MQTT topic level"):
        Topics(prefix, publisher)


def test_check_prefix_takes_several_levels() -> None:
    assert check_prefix("fleet/site-1/opcua") == "fleet/site-1/opcua"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("urn:smx:smx-17", "smx-17"),
        ("urn:example.com:smx:gateway_1", "gateway_1"),
        ("http://example.com/gateways/gw 7/", "gw-7"),
        ("urn:smx:zähler+1#", "z-hler-1-"),
        ("", "smx"),
        (":::///", "smx"),
        ("urn:smx:" + "g" * 300, "g" * 256),  # a level holds at most 256 bytes
    ],
)
def test_publisher_id_from_uri(uri: str, expected: str) -> None:
    assert publisher_id_from_uri(uri) == expected


@given(st.one_of(st.text(), st.text(min_size=250, max_size=400)))
def test_publisher_id_from_any_uri_is_a_valid_level(uri: str) -> None:
    name = publisher_id_from_uri(uri)
    assert check_level(name, "PublisherId") == name
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
