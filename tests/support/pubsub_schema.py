"""A JSON Schema of the OPC UA PubSub JSON messages SMX sends, and a small validator for it.

The schema is written by hand from the tables of OPC 10000-14 v1.05 (PubSub) §7.2.5 and
OPC 10000-6 v1.05 (Mappings) §5.4, not from :mod:`gateway.pubsub.codec`, so a test that
validates the codec's output against it checks the codec against the specification:

* JSON NetworkMessage: Part 14 §7.2.5.3, Table 184 (``ua-data``; the MessageType
  mapping is Table 183).
* JSON DataSetMessage: Part 14 §7.2.5.4.1, Table 185; the field forms of the
  VerboseEncoding (collapsed Variants, DataValue objects): §7.2.5.4.2.
* JSON DataSetMetaData message: Part 14 §7.2.5.5.2, Table 188 (``ua-metadata``) with the
  DataSetMetaDataType of §6.2.3.2.3 and the FieldMetaData of §6.2.3.2.4.
* JSON Status message: Part 14 §7.2.5.5.5, Table 191 (``ua-status``).
* Built-in types in JSON: Part 6 §5.4.2 (numbers, ``"NaN"``/``"Infinity"`` strings,
  DateTime strings §5.4.2.6, NodeId strings §5.4.2.10, StatusCode objects §5.4.2.12
  Table 37, QualifiedName strings §5.4.2.14, LocalizedText objects §5.4.2.15, the
  ExtensionObject §5.4.2.16 and Variant §5.4.2.17 objects of the v1.05 form).
* SMX's acknowledgement and replay request (not in Part 14): ``gateway/pubsub/codec.py``.

Table numbers are those of the 1.05 edition on reference.opcfoundation.org/specs (earlier
1.05 printings number the same tables 163-170).

The schema describes what SMX *sends*, so it is closed (``additionalProperties: false``)
wherever a table lists every field, and it requires the optional header fields SMX always
includes (DataSetWriterId, SequenceNumber, MetaDataVersion, Timestamp, MessageType).

:func:`validate` supports exactly the keywords used here and refuses any other, so a typo
in the schema cannot make a check silently vacuous.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

Schema = Mapping[str, Any] | bool

_UINT16_MAX = 0xFFFF
_UINT32_MAX = 0xFFFFFFFF

# A DateTime as SMX writes it: ISO 8601 in UTC with "Z", fractions of a second only when
# not zero, at most 7 digits (a DateTime counts 100 ns ticks) (Part 6 §5.4.2.6).
_DATE_TIME = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{0,6}[1-9])?Z$"
)
# A NodeId in the v1.05 string form: [ns=<index>;|nsu=<uri>;]<i|s|g|b>=<identifier> (Part 6 §5.4.2.10).
_NODE_ID = r"^((ns=[1-9][0-9]*|nsu=[^;]+);)?(i=[0-9]+|s=[\s\S]+|g=[0-9a-fA-F-]{36}|b=[A-Za-z0-9+/=]*)$"
# A QualifiedName in the v1.05 string form: [<namespace index>:]<name> (Part 6 §5.4.2.14).
# A name (and a string identifier) is any String, line breaks included: ECMA-262's "." is not.
_QUALIFIED_NAME = r"^([1-9][0-9]*:)?[^:][\s\S]*$"
_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


DEFS: dict[str, Any] = {
    # -- built-in types (Part 6 §5.1.2 Table 1 ranges, §5.4.2 JSON forms) -------------------
    "UInt16": {"type": "integer", "minimum": 0, "maximum": _UINT16_MAX},
    "UInt32": {"type": "integer", "minimum": 0, "maximum": _UINT32_MAX},
    "Int32": {"type": "integer", "minimum": -(1 << 31), "maximum": (1 << 31) - 1},
    "Byte": {"type": "integer", "minimum": 0, "maximum": 0xFF},
    "String": {"type": "string"},
    "NonEmptyString": {"type": "string", "pattern": "[\\s\\S]"},
    "DateTime": {"type": "string", "pattern": _DATE_TIME},
    "NodeId": {"type": "string", "pattern": _NODE_ID},
    "QualifiedName": {"type": "string", "pattern": _QUALIFIED_NAME},
    "Guid": {"type": "string", "pattern": _GUID},
    # Part 6 §5.4.2.12, Table 37: {"Code", "Symbol"}; both omitted for Good (0), so a
    # StatusCode that is present at all has a non-zero Code.
    "StatusCode": {
        "type": "object",
        "properties": {
            "Code": {"type": "integer", "minimum": 1, "maximum": _UINT32_MAX},
            "Symbol": {"type": "string", "pattern": "^(Good|Uncertain|Bad)[A-Za-z0-9]*$"},
        },
        "required": ["Code"],
        "additionalProperties": False,
    },
    # Part 6 §5.4.2.15, Table 38.
    "LocalizedText": {
        "type": "object",
        "properties": {"Locale": {"type": "string"}, "Text": {"type": "string"}},
        "additionalProperties": False,
    },
    # -- DataSet fields in the VerboseEncoding (Part 14 §7.2.5.4.2) ----------------------
    # A collapsed top-level Variant of the built-in types SMX fields use (Boolean, UInt16,
    # UInt32, Double, String, DateTime), or null (no value). A Double that JSON cannot
    # hold is one of the strings "NaN", "Infinity", "-Infinity" (Part 6 §5.4.2): a string.
    "FieldVariant": {"type": ["null", "boolean", "number", "string"]},
    # A field sent as a DataValue (DataSetFieldContentMask StatusCode): Part 6 §5.4.2.18;
    # Status omitted when Good.
    "FieldDataValue": {
        "type": "object",
        "properties": {
            "Value": _ref("FieldVariant"),
            "Status": _ref("StatusCode"),
            "SourceTimestamp": _ref("DateTime"),
            "ServerTimestamp": _ref("DateTime"),
        },
        "additionalProperties": False,
    },
    "Field": {"anyOf": [_ref("FieldVariant"), _ref("FieldDataValue")]},
    # ConfigurationVersionDataType (Part 14 §6.2.3.2.6): two VersionTimes (UInt32).
    "ConfigurationVersion": {
        "type": "object",
        "properties": {"MajorVersion": _ref("UInt32"), "MinorVersion": _ref("UInt32")},
        "required": ["MajorVersion", "MinorVersion"],
        "additionalProperties": False,
    },
    # DataSetWriterId: UInt16 (Table 185, Table 188); 0 is not a valid writer id.
    "DataSetWriterId": {"type": "integer", "minimum": 1, "maximum": _UINT16_MAX},
    # -- Part 14 §7.2.5.4.1, Table 185: JSON DataSetMessage ------------------------------
    "DataSetMessage": {
        "type": "object",
        "properties": {
            "DataSetWriterId": _ref("DataSetWriterId"),
            "DataSetWriterName": _ref("String"),
            "PublisherId": _ref("String"),
            "WriterGroupName": _ref("String"),
            "SequenceNumber": _ref("UInt32"),
            "MetaDataVersion": _ref("ConfigurationVersion"),
            "MinorVersion": _ref("UInt32"),
            "Timestamp": _ref("DateTime"),
            "Status": _ref("StatusCode"),
            "MessageType": {"enum": ["ua-keyframe", "ua-deltaframe", "ua-event", "ua-keepalive"]},
            "Payload": {"type": "object", "additionalProperties": _ref("Field")},
        },
        "required": ["DataSetWriterId", "SequenceNumber", "MetaDataVersion", "Timestamp", "MessageType"],
        "additionalProperties": False,
        # §7.2.5.4.1: a keep-alive is a DataSetMessage without any Payload; every other
        # kind carries one.
        "if": {"properties": {"MessageType": {"const": "ua-keepalive"}}},
        "then": {"properties": {"Payload": False}},
        "else": {"required": ["Payload"]},
    },
    # -- Part 14 §7.2.5.3, Table 184: JSON NetworkMessage --------------------------------
    "NetworkMessage": {
        "type": "object",
        "properties": {
            "MessageId": _ref("NonEmptyString"),
            "MessageType": {"const": "ua-data"},
            "PublisherId": _ref("String"),
            "WriterGroupName": _ref("String"),
            "DataSetClassId": _ref("Guid"),
            "Messages": {"type": "array", "items": _ref("DataSetMessage")},
        },
        "required": ["MessageId", "MessageType", "Messages"],
        "additionalProperties": False,
    },
    # -- DataSetMetaDataType (Part 14 §6.2.3.2.3) and its parts --------------------------
    # EUInformation (Part 8 §5.6.3), the body of the EngineeringUnits property.
    "EUInformation": {
        "type": "object",
        "properties": {
            "NamespaceUri": _ref("String"),
            "UnitId": _ref("Int32"),
            "DisplayName": _ref("LocalizedText"),
            "Description": _ref("LocalizedText"),
        },
        "required": ["NamespaceUri", "UnitId", "DisplayName"],
        "additionalProperties": False,
    },
    # KeyValuePair (Part 5 §12.21): Key a QualifiedName, Value a Variant (Part 6 §5.4.2.17,
    # v1.05: {"UaType", "Value"}); SMX's values are an EUInformation in an ExtensionObject
    # (Part 6 §5.4.2.16: {"UaTypeId", "UaBody"}; EUInformation is DataType i=887) or a String.
    "KeyValuePair": {
        "type": "object",
        "properties": {
            "Key": _ref("QualifiedName"),
            "Value": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "UaType": {"const": 22},
                            "Value": {
                                "type": "object",
                                "properties": {
                                    "UaTypeId": {"const": "i=887"},
                                    "UaBody": _ref("EUInformation"),
                                },
                                "required": ["UaTypeId", "UaBody"],
                                "additionalProperties": False,
                            },
                        },
                        "required": ["UaType", "Value"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "properties": {"UaType": {"const": 12}, "Value": _ref("String")},
                        "required": ["UaType", "Value"],
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "required": ["Key", "Value"],
        "additionalProperties": False,
    },
    # FieldMetaData (Part 14 §6.2.3.2.4).
    "FieldMetaData": {
        "type": "object",
        "properties": {
            "Name": _ref("NonEmptyString"),
            "Description": _ref("LocalizedText"),
            "FieldFlags": _ref("UInt16"),  # DataSetFieldFlags, an OptionSet of UInt16
            "BuiltInType": {"type": "integer", "minimum": 1, "maximum": 25},  # Byte, Part 6 Table 1
            "DataType": _ref("NodeId"),
            "ValueRank": _ref("Int32"),
            "ArrayDimensions": {"type": "array", "items": _ref("UInt32")},
            "MaxStringLength": _ref("UInt32"),
            "DataSetFieldId": _ref("Guid"),
            "Properties": {"type": "array", "items": _ref("KeyValuePair")},
        },
        "required": ["Name", "BuiltInType", "DataType", "ValueRank", "DataSetFieldId"],
        "additionalProperties": False,
    },
    # DataSetMetaDataType (Part 14 §6.2.3.2.3), with the fields of DataTypeSchemaHeader.
    "DataSetMetaData": {
        "type": "object",
        "properties": {
            "Namespaces": {"type": "array", "items": _ref("String")},
            "StructureDataTypes": {"type": "array"},
            "EnumDataTypes": {"type": "array"},
            "SimpleDataTypes": {"type": "array"},
            "Name": _ref("String"),
            "Description": _ref("LocalizedText"),
            "Fields": {"type": "array", "items": _ref("FieldMetaData")},
            "DataSetClassId": _ref("Guid"),
            "ConfigurationVersion": _ref("ConfigurationVersion"),
        },
        "required": ["Fields", "ConfigurationVersion"],
        "additionalProperties": False,
    },
    # -- Part 14 §7.2.5.5.2, Table 188: JSON DataSetMetaData message (all mandatory) -----
    "MetaDataMessage": {
        "type": "object",
        "properties": {
            "MessageId": _ref("NonEmptyString"),
            "MessageType": {"const": "ua-metadata"},
            "PublisherId": _ref("NonEmptyString"),
            "DataSetWriterId": _ref("DataSetWriterId"),
            "WriterGroupName": _ref("String"),
            "DataSetWriterName": _ref("String"),
            "Timestamp": _ref("DateTime"),
            "MetaData": _ref("DataSetMetaData"),
        },
        "required": [
            "MessageId",
            "MessageType",
            "PublisherId",
            "DataSetWriterId",
            "WriterGroupName",
            "DataSetWriterName",
            "Timestamp",
            "MetaData",
        ],
        "additionalProperties": False,
    },
    # -- Part 14 §7.2.5.5.5, Table 191: JSON Status message ------------------------------
    "StatusMessage": {
        "type": "object",
        "properties": {
            "MessageId": _ref("NonEmptyString"),
            "MessageType": {"const": "ua-status"},
            "PublisherId": _ref("NonEmptyString"),
            "Timestamp": _ref("DateTime"),
            "IsCyclic": {"type": "boolean"},
            # PubSubState (Part 14 §6.2.1): an Enumeration, encoded as its number.
            "Status": {"enum": [0, 1, 2, 3, 4]},
            "NextReportTime": _ref("DateTime"),
            # SMX extension (gateway/pubsub/codec.py): the box's backlog and traffic.
            "Backlog": _ref("UInt32"),
            "MessagesSent": {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
        },
        "required": ["MessageId", "MessageType", "PublisherId", "IsCyclic", "Status"],
        "additionalProperties": False,
        # Timestamp and NextReportTime: mandatory if IsCyclic, omitted otherwise.
        "if": {"properties": {"IsCyclic": {"const": True}}},
        "then": {"required": ["Timestamp", "NextReportTime"]},
        "else": {"properties": {"Timestamp": False, "NextReportTime": False}},
    },
    # -- SMX extension (gateway/pubsub/codec.py) -----------------------------------------
    "Ack": {
        "type": "object",
        "properties": {"DataSetWriterId": _ref("DataSetWriterId"), "Through": _ref("DateTime")},
        "required": ["DataSetWriterId", "Through"],
        "additionalProperties": False,
    },
    "ReplayRequest": {
        "type": "object",
        "properties": {
            "DataSetWriterId": _ref("DataSetWriterId"),
            "From": _ref("DateTime"),
            "To": _ref("DateTime"),
        },
        "required": ["DataSetWriterId", "From", "To"],
        "additionalProperties": False,
    },
}

#: Any message SMX publishes: a NetworkMessage, a metadata message or a status message
#: (Part 14 §7.2.5.2, Table 183: the ``MessageType`` tells them apart).
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": DEFS,
    "oneOf": [_ref("NetworkMessage"), _ref("MetaDataMessage"), _ref("StatusMessage")],
}


def schema_of(name: str) -> dict[str, Any]:
    """The schema of one definition (``"Ack"``, ``"DataSetMessage"``, ...)."""
    if name not in DEFS:
        raise KeyError(name)
    return {"$defs": DEFS, "$ref": f"#/$defs/{name}"}


# -- the validator ------------------------------------------------------------------------

#: Keywords that only annotate; every other keyword not handled below is refused.
_ANNOTATIONS = {"$schema", "$defs", "$comment", "title", "description"}
_HANDLED = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "minimum",
    "maximum",
    "pattern",
    "anyOf",
    "oneOf",
    "$ref",
    "if",
    "then",
    "else",
}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        # Stricter than draft 2020-12 (which counts 1.0): OPC UA integers are written
        # without a fraction, and Python's json reads 1.0 as a float.
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        # NaN and the infinities are no JSON numbers (Part 6 sends them as strings).
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value)
        )
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise ValueError(f"unknown type {kind!r} in the schema")


def _json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: ``true`` is not ``1`` (Python says it is), ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return a == b
    return type(a) is type(b) and a == b


def _resolve(root: Mapping[str, Any], ref: str) -> Schema:
    if not ref.startswith("#/$defs/"):
        raise ValueError(f"only #/$defs/... references are supported, not {ref!r}")
    name = ref.removeprefix("#/$defs/")
    defs = root.get("$defs", {})
    if name not in defs:
        raise ValueError(f"unresolved reference {ref!r}")
    resolved: Schema = defs[name]
    return resolved


def _check(value: Any, schema: Schema, root: Mapping[str, Any], path: str) -> list[str]:
    if schema is True:
        return []
    if schema is False:
        return [f"{path}: not allowed here"]
    unknown = set(schema) - _HANDLED - _ANNOTATIONS
    if unknown:
        raise ValueError(f"the validator does not support {sorted(unknown)} (at schema for {path})")
    errors: list[str] = []
    if "$ref" in schema:
        errors += _check(value, _resolve(root, schema["$ref"]), root, path)
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, k) for k in kinds):
            # The other keywords would only repeat the mismatch.
            return [*errors, f"{path}: {value!r:.60} is not of type {' or '.join(kinds)}"]
    if "const" in schema and not _json_equal(value, schema["const"]):
        errors.append(f"{path}: {value!r:.60} is not {schema['const']!r}")
    if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
        errors.append(f"{path}: {value!r:.60} is not one of {schema['enum']!r}")
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if "minimum" in schema and numeric and value < schema["minimum"]:
        errors.append(f"{path}: {value!r} is less than the minimum {schema['minimum']}")
    if "maximum" in schema and numeric and value > schema["maximum"]:
        errors.append(f"{path}: {value!r} is greater than the maximum {schema['maximum']}")
    if "pattern" in schema and isinstance(value, str) and not _pattern(schema["pattern"]).search(value):
        errors.append(f"{path}: {value!r:.60} does not match {schema['pattern']!r}")
    if isinstance(value, dict):
        properties: Mapping[str, Schema] = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: {key!r} is required")
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in properties:
                errors += _check(item, properties[key], root, where)
            elif "additionalProperties" in schema:
                extra = schema["additionalProperties"]
                if extra is False:
                    errors.append(f"{where}: additional property not allowed")
                else:
                    errors += _check(item, extra, root, where)
    if isinstance(value, list) and "items" in schema:
        for n, item in enumerate(value):
            errors += _check(item, schema["items"], root, f"{path}[{n}]")
    if "anyOf" in schema:
        branches = [_check(value, s, root, path) for s in schema["anyOf"]]
        if all(branches):
            errors.append(f"{path}: matches none of anyOf: {_best(branches)}")
    if "oneOf" in schema:
        branches = [_check(value, s, root, path) for s in schema["oneOf"]]
        matched = sum(not b for b in branches)
        if matched == 0:
            errors.append(f"{path}: matches none of oneOf: {_best(branches)}")
        elif matched > 1:
            errors.append(f"{path}: matches {matched} branches of oneOf, not exactly one")
    if "if" in schema:
        branch = "then" if not _check(value, schema["if"], root, path) else "else"
        if branch in schema:
            errors += _check(value, schema[branch], root, path)
    return errors


def _pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` with a final ``$`` meaning the end of the string, as in ECMA-262 (Python's
    ``$`` also matches before a final newline)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _best(branches: list[list[str]]) -> str:
    """The errors of the branch that came closest (fewest errors), for the message."""
    best = branches[0]
    for errors in branches[1:]:
        if len(errors) < len(best):
            best = errors
    return "; ".join(best)


def validate(instance: Any, schema: Schema) -> list[str]:
    """The errors of ``instance`` against ``schema`` (empty: valid), each with a JSON path
    (``$.Messages[0].DataSetWriterId: 0 is less than the minimum 1``).

    Supports exactly: type (``integer`` excludes booleans and fractions), properties,
    required, additionalProperties (false or a schema), items, enum, const, minimum,
    maximum, pattern, anyOf, oneOf, ``$ref`` to ``#/$defs/...`` of the root, if/then/else
    and the boolean schemas; raises ValueError on any other keyword.
    """
    root = schema if isinstance(schema, Mapping) else {}
    return _check(instance, schema, root, "$")
