"""The small JSON Schema validator of tests/support/pubsub_schema.py rejects what it must,
keyword by keyword, and the PubSub schema rejects hand-made invalid messages: the schema
checks of tests/unit/test_pubsub_codec.py are not vacuous."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.pubsub_schema import SCHEMA, schema_of, validate

# -- the validator, one keyword at a time: (schema, a passing instance, a failing instance) --

KEYWORDS: dict[str, tuple[dict[str, Any], Any, Any]] = {
    "type string": ({"type": "string"}, "a", 1),
    "type integer refuses a boolean": ({"type": "integer"}, 7, True),
    "type integer refuses a fraction": ({"type": "integer"}, -3, 1.5),
    "type number refuses NaN": ({"type": "number"}, 2.5, float("nan")),
    "type number refuses a boolean": ({"type": "number"}, 0, False),
    "type boolean": ({"type": "boolean"}, False, 0),
    "type null": ({"type": "null"}, None, 0),
    "type array": ({"type": "array"}, [], {}),
    "type object": ({"type": "object"}, {}, []),
    "type list": ({"type": ["null", "string"]}, None, 1),
    "properties": ({"properties": {"a": {"type": "integer"}}}, {"a": 1}, {"a": "1"}),
    "required": ({"required": ["a"]}, {"a": 1}, {"b": 1}),
    "additionalProperties false": (
        {"properties": {"a": {}}, "additionalProperties": False},
        {"a": 1},
        {"a": 1, "b": 2},
    ),
    "additionalProperties schema": (
        {"additionalProperties": {"type": "integer"}},
        {"x": 1, "y": 2},
        {"x": 1, "y": "2"},
    ),
    "items": ({"items": {"type": "integer"}}, [1, 2], [1, "2"]),
    "enum": ({"enum": ["a", 1]}, 1, "b"),
    "enum tells true from 1": ({"enum": [1]}, 1, True),
    "const": ({"const": "ua-data"}, "ua-data", "ua-status"),
    "const tells 1 from true": ({"const": True}, True, 1),
    "minimum": ({"minimum": 1}, 1, 0),
    "maximum": ({"maximum": 65535}, 65535, 65536),
    "pattern": ({"pattern": "^a+$"}, "aaa", "aab"),
    "pattern $ is the end of the string": ({"pattern": "^a$"}, "a", "a\n"),
    "anyOf": ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 1, 1.5),
    "oneOf none": ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "s", None),
    "oneOf two": ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, -1, 5),
    "$ref": ({"$defs": {"U": {"type": "integer"}}, "$ref": "#/$defs/U"}, 1, "1"),
    "if/then": ({"if": {"const": 1}, "then": {"type": "integer"}, "else": {"type": "string"}}, "x", 1.0),
    "if/else": ({"if": {"type": "integer"}, "then": {"minimum": 0}, "else": {"type": "string"}}, "x", None),
    "false schema": ({"properties": {"Payload": False}}, {}, {"Payload": {}}),
}


@pytest.mark.parametrize("name", KEYWORDS)
def test_each_keyword_passes_one_instance_and_fails_another(name: str) -> None:
    schema, good, bad = KEYWORDS[name]
    assert validate(good, schema) == []
    errors = validate(bad, schema)
    assert errors, f"{name}: {bad!r} passed"
    assert all(e.startswith("$") for e in errors)


def test_errors_name_the_json_path() -> None:
    schema = {"properties": {"Messages": {"items": {"properties": {"Id": {"minimum": 1}}}}}}
    assert validate({"Messages": [{"Id": 1}, {"Id": 0}]}, schema) == [
        "$.Messages[1].Id: 0 is less than the minimum 1"
    ]


@pytest.mark.parametrize("keyword", ["minLength", "format", "not", "patternProperties", "allOf"])
def test_unsupported_keywords_are_refused_not_ignored(keyword: str) -> None:
    with pytest.raises(ValueError, match="does not support"):
        validate("x", {keyword: 1})


def test_only_local_defs_references() -> None:
    with pytest.raises(ValueError, match="references"):
        validate(1, {"$ref": "https://example.org/schema"})
    with pytest.raises(ValueError, match="unresolved"):
        validate(1, {"$ref": "#/$defs/Nothing"})


# -- the PubSub schema against hand-made messages ----------------------------------------------


def _network_message() -> dict[str, Any]:
    return {
        "MessageId": "7c1fb7a0-2a4b-4f0e-9a55-0f1e5d3c9b21",
        "MessageType": "ua-data",
        "PublisherId": "smx-17",
        "WriterGroupName": "meter-1",
        "Messages": [
            {
                "DataSetWriterId": 101,
                "DataSetWriterName": "live",
                "SequenceNumber": 4,
                "MetaDataVersion": {"MajorVersion": 800000000, "MinorVersion": 800000001},
                "Timestamp": "2026-03-29T00:15:00Z",
                "MessageType": "ua-keyframe",
                "Payload": {
                    "VoltageL1": {"Value": 230.1},
                    "CurrentL1": {
                        "Value": None,
                        "Status": {"Code": 0x80320000, "Symbol": "BadWaitingForInitialData"},
                    },
                    "Frequency": "NaN",
                },
            }
        ],
    }


def _status(cyclic: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"MessageId": "m-1", "MessageType": "ua-status", "PublisherId": "smx-17"}
    out["IsCyclic"] = cyclic
    out["Status"] = 2
    if cyclic:
        out["Timestamp"] = "2026-03-29T00:15:00Z"
        out["NextReportTime"] = "2026-03-29T00:16:00Z"
    return out


def test_hand_made_valid_messages_pass() -> None:
    assert validate(_network_message(), SCHEMA) == []
    assert validate(_status(False), SCHEMA) == []
    assert validate(_status(True), SCHEMA) == []
    assert validate({"DataSetWriterId": 101, "Through": "2026-03-29T00:15:00.5Z"}, schema_of("Ack")) == []


def _without(message: dict[str, Any], *path: str | int) -> dict[str, Any]:
    out = copy.deepcopy(message)
    target: Any = out
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return out


def _with(message: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(message)
    target: Any = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


INVALID: dict[str, dict[str, Any]] = {
    "missing MessageId": _without(_network_message(), "MessageId"),
    "DataSetWriterId 0": _with(_network_message(), ("Messages", 0, "DataSetWriterId"), 0),
    "DataSetWriterId beyond UInt16": _with(_network_message(), ("Messages", 0, "DataSetWriterId"), 65536),
    "DataSetWriterId as a string (v1.04)": _with(
        _network_message(), ("Messages", 0, "DataSetWriterId"), "101"
    ),
    "SequenceNumber -1": _with(_network_message(), ("Messages", 0, "SequenceNumber"), -1),
    "SequenceNumber beyond UInt32": _with(_network_message(), ("Messages", 0, "SequenceNumber"), 1 << 32),
    "unknown MessageType": _with(_network_message(), ("MessageType",), "ua-whatever"),
    "unknown DataSetMessage type": _with(_network_message(), ("Messages", 0, "MessageType"), "ua-frame"),
    "extra top-level key": _with(_network_message(), ("Extra",), 1),
    "extra DataSetMessage key": _with(_network_message(), ("Messages", 0, "Extra"), 1),
    "Timestamp without zone": _with(_network_message(), ("Messages", 0, "Timestamp"), "2026-03-29T00:15:00"),
    "Timestamp with trailing zero fraction": _with(
        _network_message(), ("Messages", 0, "Timestamp"), "2026-03-29T00:15:00.000000Z"
    ),
    "Status as a bare number (v1.04)": _with(_network_message(), ("Messages", 0, "Status"), 2147483648),
    "Status Good sent": _with(_network_message(), ("Messages", 0, "Status"), {"Code": 0}),
    "field Status as a bare number": _with(
        _network_message(), ("Messages", 0, "Payload", "VoltageL1"), {"Value": 1.0, "Status": 1073741824}
    ),
    "field DataValue with an unknown key": _with(
        _network_message(), ("Messages", 0, "Payload", "VoltageL1"), {"Value": 1.0, "Quality": 0}
    ),
    "keep-alive with a Payload": _with(_network_message(), ("Messages", 0, "MessageType"), "ua-keepalive"),
    "key frame without a Payload": _without(_network_message(), "Messages", 0, "Payload"),
    "non-cyclic status with a Timestamp": _status(False) | {"Timestamp": "2026-03-29T00:15:00Z"},
    "non-cyclic status with a NextReportTime": _status(False) | {"NextReportTime": "2026-03-29T00:15:00Z"},
    "cyclic status without NextReportTime": _without(_status(True), "NextReportTime"),
    "status 5": _status(False) | {"Status": 5},
    "status as a string": _status(False) | {"Status": "Operational_2"},
    "status without PublisherId": _without(_status(False), "PublisherId"),
}


@pytest.mark.parametrize("name", INVALID)
def test_the_schema_rejects_invalid_messages(name: str) -> None:
    assert validate(INVALID[name], SCHEMA), f"{name} passed"


def test_the_errors_point_at_the_field() -> None:
    errors = validate(INVALID["DataSetWriterId 0"], schema_of("NetworkMessage"))
    assert errors == ["$.Messages[0].DataSetWriterId: 0 is less than the minimum 1"]
    errors = validate(INVALID["extra top-level key"], schema_of("NetworkMessage"))
    assert errors == ["$.Extra: additional property not allowed"]
    errors = validate(INVALID["missing MessageId"], schema_of("NetworkMessage"))
    assert errors == ["$: 'MessageId' is required"]


def test_schema_of_unknown_definition() -> None:
    with pytest.raises(KeyError):
        schema_of("Nothing")


@pytest.mark.parametrize(
    ("definition", "good", "bad"),
    [
        ("QualifiedName", ["1:0\n", "Obis", "2:a\nb"], [":x", ""]),
        ("NodeId", ["s=a\nb", "ns=1;s=line\nbreak", "i=11"], ["s=", "x=1"]),
    ],
)
def test_names_and_string_identifiers_may_hold_line_breaks(
    definition: str, good: list[str], bad: list[str]
) -> None:
    """A QualifiedName's name and a string NodeId identifier are any String (Hypothesis found
    the schema refusing "1:0\\n", which the codec rightly encodes: ECMA-262's "." stops at a
    line break)."""
    schema = schema_of(definition)
    assert [v for v in good if validate(v, schema)] == []
    assert [v for v in bad if not validate(v, schema)] == []
