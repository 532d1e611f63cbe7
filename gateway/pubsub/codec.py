"""OPC UA PubSub JSON messages, encoded and decoded (OPC 10000-14 v1.05 §7.2.5, OPC 10000-6 v1.05 §5.4).

A pure module: messages in, bytes out, and back; no I/O and no OPC UA stack (no Python
stack implements PubSub). The gateway's uplink encodes with it and the head-end decodes
with it, so both sides share one definition of every field.

What is sent
------------
* **NetworkMessage** (§7.2.5.3, ``MessageType`` ``ua-data``): ``MessageId``,
  ``MessageType``, ``PublisherId``, ``WriterGroupName``, ``Messages``.
* **DataSetMessage** (§7.2.5.4, Table 185): ``DataSetWriterId`` (UInt16),
  ``DataSetWriterName``, ``SequenceNumber`` (UInt32), ``MetaDataVersion``
  (``MajorVersion``/``MinorVersion``), ``Timestamp``, ``Status`` (omitted when Good),
  ``MessageType`` (``ua-keyframe``, ``ua-deltaframe``, ``ua-event``, ``ua-keepalive`` —
  a keep-alive has no ``Payload``), ``Payload``.
* **Fields** in the **VerboseEncoding** field form (§7.2.5.4.2, FieldEncoding1 false,
  FieldEncoding2 true): top-level Variants are collapsed to the bare JSON value the
  field's DataType in the metadata implies (``230.1``, ``"2026-03-29T00:15:00Z"``).
  A field sent as a DataValue (:class:`FieldValue`, DataSetFieldContentMask StatusCode)
  is ``{"Value": 230.1}``, with ``"Status": {"Code": n, "Symbol": "..."}`` unless Good.
  Doubles that JSON cannot hold are the strings ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"`` (Part 6 §5.4.2.5).
* **StatusCodes** in the v1.05 form (Part 6 §5.4.2.12): ``{"Code": n, "Symbol": name}``.
* **Metadata** (§7.2.5.5.2, ``ua-metadata``) with a DataSetMetaDataType: NodeIds and
  QualifiedNames as v1.05 strings (``"i=11"``, ``"EngineeringUnits"``), LocalizedText as
  ``{"Text": ...}``, the EngineeringUnits property as an EUInformation structure.
* **Status** (§7.2.5.5.5, ``ua-status``): ``IsCyclic``, ``Status`` (PubSubState, an
  Enumeration as its number), and ``Timestamp``/``NextReportTime`` only when cyclic.

What is accepted
----------------
Decoders in the wild still send the v1.04 forms, so :func:`decode` accepts both: a
Variant as ``{"UaType": n, "Value": v}`` or ``{"Type": n, "Body": v}``, a StatusCode as
an object or a bare number, a DataSetWriterId as a number or a numeric string (it was a
String before the 1.04 errata). Everything else is checked: a wrong type, a missing
mandatory field, a number out of range or an unknown message type raises
:class:`MessageError` naming the field's path (``Messages[2].SequenceNumber``).

SMX extension (not in Part 14)
------------------------------
PubSub has no delivery acknowledgement. :class:`Ack` (``{"DataSetWriterId", "Through"}``,
on ``<prefix>/json/ack/<PublisherId>``) lets a consumer say it has stored everything of a
writer through a time; :class:`ReplayRequest` (``{"DataSetWriterId", "From", "To"}``, on
``<prefix>/json/replay/<PublisherId>``) asks the publisher to send a range again. A
``ua-status`` message may carry ``Backlog`` (UInt32: records not yet with the fleet) and
``MessagesSent`` (UInt64: messages published since start), so a head-end sees how far behind
each box is and how busy it is without a second topic; other subscribers ignore them.
"""

from __future__ import annotations

import enum
import gzip
import json
import math
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.errors import RemoteProtocolError

#: MQTT 5 content types (§7.3.4.2): plain, and gzip-compressed JSON.
CONTENT_TYPE = "application/json"
CONTENT_TYPE_GZIP = "application/json+gzip"
#: Largest message :func:`decode` takes (after decompression): a day of minute records
#: in one NetworkMessage is far below it.
MAX_MESSAGE_BYTES = 1 << 20


class MessageError(RemoteProtocolError):
    """A message that is not valid PubSub JSON; ``path`` names the field at fault."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or 'message'}: {problem}")
        self.path = path
        self.problem = problem


class MessageType(enum.StrEnum):
    """``MessageType`` of a NetworkMessage (§7.2.5.3, §7.2.5.5)."""

    DATA = "ua-data"
    METADATA = "ua-metadata"
    STATUS = "ua-status"


class DataSetMessageType(enum.StrEnum):
    """``MessageType`` of a DataSetMessage (§7.2.5.4, Table 185)."""

    KEY_FRAME = "ua-keyframe"
    DELTA_FRAME = "ua-deltaframe"
    EVENT = "ua-event"
    KEEP_ALIVE = "ua-keepalive"


class PubSubState(enum.IntEnum):
    """PubSubState (OPC 10000-14 §6.2.1, Table 6)."""

    DISABLED = 0
    PAUSED = 1
    OPERATIONAL = 2
    ERROR = 3
    PRE_OPERATIONAL = 4


class BuiltInType(enum.IntEnum):
    """The built-in types the SMX fields use (OPC 10000-6 §5.1.2); also their DataType ids."""

    BOOLEAN = 1
    UINT16 = 5
    UINT32 = 7
    DOUBLE = 11
    STRING = 12
    DATE_TIME = 13
    STATUS_CODE = 19


#: StatusCode symbols (OPC 10000-6 Annex A.2) of the codes SMX sends; others go without one.
STATUS_SYMBOLS: dict[int, str] = {
    0x40000000: "Uncertain",
    0x40900000: "UncertainLastUsableValue",
    0x40A40000: "UncertainDataSubNormal",
    0x80000000: "Bad",
    0x80050000: "BadCommunicationError",
    0x80320000: "BadWaitingForInitialData",
    0x80890000: "BadConfigurationError",
    0x809B0000: "BadNoData",
}
_SYMBOL_CODES = {name: code for code, name in STATUS_SYMBOLS.items()}
_UINT16 = 0xFFFF
_UINT32 = 0xFFFFFFFF
_UINT64 = 0xFFFFFFFFFFFFFFFF


def severity_bad(code: int) -> bool:
    return code & 0xC0000000 == 0x80000000


@dataclass(frozen=True, slots=True)
class ConfigurationVersion:
    """ConfigurationVersionDataType (OPC 10000-14 §6.2.3.2.6): VersionTime values,
    seconds since 2000-01-01 UTC. The major version changes when the fields change."""

    major: int
    minor: int


@dataclass(frozen=True, slots=True)
class FieldValue:
    """A field sent as a DataValue with its own status (DataSetFieldContentMask StatusCode)."""

    value: Any
    status: int = 0


@dataclass(frozen=True, slots=True)
class DataSetMessage:
    """One DataSetMessage (§7.2.5.4). ``payload`` maps field names to values (collapsed
    Variants) or :class:`FieldValue`; None for a keep-alive."""

    writer_id: int
    sequence_number: int
    metadata_version: ConfigurationVersion
    timestamp: datetime
    message_type: DataSetMessageType
    payload: Mapping[str, Any] | None
    status: int = 0
    writer_name: str = ""


@dataclass(frozen=True, slots=True)
class NetworkMessage:
    """A JSON NetworkMessage of DataSetMessages (§7.2.5.3)."""

    message_id: str
    publisher_id: str
    writer_group: str
    messages: tuple[DataSetMessage, ...]


@dataclass(frozen=True, slots=True)
class EUInformation:
    """EUInformation (OPC 10000-8 §5.6.3): a UNECE unit."""

    namespace_uri: str
    unit_id: int
    display_name: str
    description: str


@dataclass(frozen=True, slots=True)
class FieldMetaData:
    """FieldMetaData (OPC 10000-14 §6.2.3.2.4) of one DataSet field.

    ``properties`` are KeyValuePairs: the EngineeringUnits (an :class:`EUInformation`) and
    SMX's own ``Obis`` (the field's OBIS code) and ``Quantity`` (``mean``, ``min``, ...).
    """

    name: str
    built_in_type: BuiltInType
    field_id: str
    description: str = ""
    properties: tuple[tuple[str, EUInformation | str], ...] = ()

    def property(self, key: str) -> EUInformation | str | None:
        return next((v for k, v in self.properties if k == key), None)


@dataclass(frozen=True, slots=True)
class DataSetMetaData:
    """DataSetMetaDataType (OPC 10000-14 §6.2.3.2): what a writer's fields are."""

    name: str
    fields: tuple[FieldMetaData, ...]
    configuration_version: ConfigurationVersion
    description: str = ""
    #: The namespace table of the QualifiedNames in the fields' properties
    #: (DataTypeSchemaHeader.Namespaces): namespace index 1 is the first entry.
    namespaces: tuple[str, ...] = ()

    def field_types(self) -> dict[str, BuiltInType]:
        return {f.name: f.built_in_type for f in self.fields}


@dataclass(frozen=True, slots=True)
class MetaDataMessage:
    """A ``ua-metadata`` message (§7.2.5.5.2), retained on the metadata topic."""

    message_id: str
    publisher_id: str
    writer_id: int
    writer_group: str
    writer_name: str
    timestamp: datetime
    metadata: DataSetMetaData


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A ``ua-status`` message (§7.2.5.5.5), retained; also the MQTT Will."""

    message_id: str
    publisher_id: str
    status: PubSubState
    is_cyclic: bool = False
    timestamp: datetime | None = None
    next_report: datetime | None = None
    #: SMX extension ``Backlog``: archived records not yet with the fleet (all writers).
    backlog: int | None = None
    #: SMX extension ``MessagesSent``: MQTT messages the box published since it started;
    #: two cyclic reports give the fleet the box's messages per second.
    messages_sent: int | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """SMX extension: the consumer has stored everything of a writer through ``through``."""

    writer_id: int
    through: datetime


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """SMX extension: send the writer's records with ``start <= time <= end`` again."""

    writer_id: int
    start: datetime
    end: datetime


Message = NetworkMessage | MetaDataMessage | StatusMessage


def new_message_id() -> str:
    """A globally unique MessageId (§7.2.5.3)."""
    return str(uuid.uuid4())


# -- encoding -----------------------------------------------------------------------------


def format_time(t: datetime) -> str:
    """A DateTime as ISO 8601 UTC with ``Z`` (Part 6 §5.4.2.6); microseconds only when set."""
    t = t.astimezone(UTC)
    text = f"{t.year:04d}" + t.strftime("-%m-%dT%H:%M:%S")  # %Y is not zero-padded below 1000
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    return text + "Z"


def _status(code: int) -> dict[str, Any]:
    out: dict[str, Any] = {"Code": code}
    symbol = STATUS_SYMBOLS.get(code & 0xFFFF0000)
    if symbol:
        out["Symbol"] = symbol
    return out


def _value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, datetime):
        return format_time(v)
    return v


def _field(v: Any) -> Any:
    if isinstance(v, FieldValue):
        out: dict[str, Any] = {"Value": _value(v.value)}
        if v.status:
            out["Status"] = _status(v.status)
        return out
    return _value(v)


def _version(v: ConfigurationVersion) -> dict[str, int]:
    return {"MajorVersion": v.major, "MinorVersion": v.minor}


def _dataset_message(m: DataSetMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"DataSetWriterId": m.writer_id}
    if m.writer_name:
        out["DataSetWriterName"] = m.writer_name
    out["SequenceNumber"] = m.sequence_number
    out["MetaDataVersion"] = _version(m.metadata_version)
    out["Timestamp"] = format_time(m.timestamp)
    if m.status:
        out["Status"] = _status(m.status)
    out["MessageType"] = str(m.message_type)
    if m.message_type is not DataSetMessageType.KEEP_ALIVE:
        out["Payload"] = {name: _field(v) for name, v in (m.payload or {}).items()}
    return out


def _eu(eu: EUInformation) -> dict[str, Any]:
    return {
        "NamespaceUri": eu.namespace_uri,
        "UnitId": eu.unit_id,
        "DisplayName": {"Text": eu.display_name},
        "Description": {"Text": eu.description},
    }


def _property(key: str, value: EUInformation | str) -> dict[str, Any]:
    # A KeyValuePair's Value is a Variant: EUInformation is an ExtensionObject (i=887),
    # a string a String; both in the v1.05 Variant form.
    if isinstance(value, EUInformation):
        variant = {"UaType": 22, "Value": {"UaTypeId": "i=887", "UaBody": _eu(value)}}
    else:
        variant = {"UaType": int(BuiltInType.STRING), "Value": value}
    return {"Key": key if key == "EngineeringUnits" else f"1:{key}", "Value": variant}


def _metadata(md: DataSetMetaData) -> dict[str, Any]:
    return {
        "Namespaces": list(md.namespaces),
        "Name": md.name,
        "Description": {"Text": md.description},
        "Fields": [
            {
                "Name": f.name,
                "Description": {"Text": f.description},
                "FieldFlags": 0,
                "BuiltInType": int(f.built_in_type),
                "DataType": f"i={int(f.built_in_type)}",
                "ValueRank": -1,
                "ArrayDimensions": [],
                "MaxStringLength": 0,
                "DataSetFieldId": f.field_id,
                "Properties": [_property(k, v) for k, v in f.properties],
            }
            for f in md.fields
        ],
        "ConfigurationVersion": _version(md.configuration_version),
    }


def to_json(msg: Message | Ack | ReplayRequest) -> dict[str, Any]:
    """The JSON object of a message (what :func:`encode` serializes)."""
    if isinstance(msg, NetworkMessage):
        return {
            "MessageId": msg.message_id,
            "MessageType": str(MessageType.DATA),
            "PublisherId": msg.publisher_id,
            "WriterGroupName": msg.writer_group,
            "Messages": [_dataset_message(m) for m in msg.messages],
        }
    if isinstance(msg, MetaDataMessage):
        return {
            "MessageId": msg.message_id,
            "MessageType": str(MessageType.METADATA),
            "PublisherId": msg.publisher_id,
            "DataSetWriterId": msg.writer_id,
            "WriterGroupName": msg.writer_group,
            "DataSetWriterName": msg.writer_name,
            "Timestamp": format_time(msg.timestamp),
            "MetaData": _metadata(msg.metadata),
        }
    if isinstance(msg, StatusMessage):
        out: dict[str, Any] = {
            "MessageId": msg.message_id,
            "MessageType": str(MessageType.STATUS),
            "PublisherId": msg.publisher_id,
        }
        if msg.is_cyclic:
            if msg.timestamp is None or msg.next_report is None:
                raise ValueError("a cyclic status needs Timestamp and NextReportTime (§7.2.5.5.5)")
            out["Timestamp"] = format_time(msg.timestamp)
        out["IsCyclic"] = msg.is_cyclic
        out["Status"] = int(msg.status)
        if msg.is_cyclic:
            assert msg.next_report is not None
            out["NextReportTime"] = format_time(msg.next_report)
        if msg.backlog is not None:
            out["Backlog"] = msg.backlog
        if msg.messages_sent is not None:
            out["MessagesSent"] = msg.messages_sent
        return out
    if isinstance(msg, Ack):
        return {"DataSetWriterId": msg.writer_id, "Through": format_time(msg.through)}
    return {"DataSetWriterId": msg.writer_id, "From": format_time(msg.start), "To": format_time(msg.end)}


def encode(msg: Message | Ack | ReplayRequest) -> bytes:
    """The message as compact UTF-8 JSON."""
    return json.dumps(to_json(msg), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def compress(data: bytes) -> bytes:
    """gzip for ``application/json+gzip`` (level 6: most of the gain for little CPU)."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def decompress(data: bytes, limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """Undo :func:`compress`, refusing more than ``limit`` bytes of output (a gzip bomb)."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as err:
        raise MessageError("", f"not gzip data: {err}") from None
    if len(out) > limit:
        raise MessageError("", f"larger than {limit} bytes once decompressed")
    if not d.eof:
        raise MessageError("", "truncated gzip data")
    return out


# -- decoding -----------------------------------------------------------------------------


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _obj(v: Any, path: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise MessageError(path, f"expected a JSON object, got {_kind(v)}")
    return v


def _kind(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number"
    )


def _need(o: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in o:
        raise MessageError(_join(path, key), "missing")
    return o[key]


def _string(v: Any, path: str, *, empty: bool = True) -> str:
    if not isinstance(v, str):
        raise MessageError(path, f"expected a string, got {_kind(v)}")
    if not empty and not v:
        raise MessageError(path, "must not be empty")
    return v


def _digits(v: str) -> int | None:
    """``v`` as an integer if it is ASCII decimal digits (``str.isdigit`` also takes "²",
    which ``int`` refuses) and short enough for ``int`` (at most 4300 digits)."""
    return int(v) if v.isascii() and v.isdigit() and len(v) <= 20 else None


def _uint(v: Any, path: str, high: int, *, low: int = 0, numeric_string: bool = False) -> int:
    if numeric_string and isinstance(v, str):
        v = _digits(v) if _digits(v) is not None else v
    if isinstance(v, bool) or not isinstance(v, int):
        raise MessageError(path, f"expected an integer, got {_kind(v)}")
    if not low <= v <= high:
        raise MessageError(path, f"{v} is outside {low}..{high}")
    return v


def parse_time(v: Any, path: str) -> datetime:
    text = _string(v, path)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise MessageError(path, f"{text!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise MessageError(path, f"{text!r} has no time zone (expected ...Z)")
    try:
        return t.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is before datetime.min in UTC
        raise MessageError(path, f"{text!r} is outside the years 1..9999 in UTC") from None


def _status_code(v: Any, path: str) -> int:
    if isinstance(v, dict):
        code = v.get("Code", 0)
        if "Code" not in v and "Symbol" in v:
            symbol = _string(v["Symbol"], _join(path, "Symbol"))
            code = _SYMBOL_CODES.get(symbol.replace("_", ""))
            if code is None:
                raise MessageError(_join(path, "Symbol"), f"unknown symbol {symbol!r} without a Code")
        return _uint(code, _join(path, "Code"), _UINT32)
    return _uint(v, path, _UINT32)


def _version_of(v: Any, path: str) -> ConfigurationVersion:
    o = _obj(v, path)
    return ConfigurationVersion(
        _uint(o.get("MajorVersion", 0), _join(path, "MajorVersion"), _UINT32),
        _uint(o.get("MinorVersion", 0), _join(path, "MinorVersion"), _UINT32),
    )


def _plain(v: Any, path: str) -> Any:
    """A field value as sent (Verbose collapsed), with the non-finite Double strings read."""
    if isinstance(v, dict):
        if "UaType" in v or "Type" in v:  # a full Variant, v1.05 or v1.04
            kind = _uint(v.get("UaType", v.get("Type")), _join(path, "UaType"), 25, low=1)
            body = v.get("Value", v.get("Body"))
            if kind == BuiltInType.STATUS_CODE:
                return FieldValue(None, _status_code(body, _join(path, "Value")))
            return _plain(body, _join(path, "Value"))
        if set(v) <= {"Value", "Status", "SourceTimestamp", "ServerTimestamp"} and v:
            status = _status_code(v["Status"], _join(path, "Status")) if "Status" in v else 0
            return FieldValue(_plain(v.get("Value"), _join(path, "Value")), status)
        return v
    if v in ("NaN", "Infinity", "-Infinity"):
        return float(v)
    return v


def _dataset_message_of(v: Any, path: str) -> DataSetMessage:
    o = _obj(v, path)
    kind_text = o.get("MessageType", str(DataSetMessageType.KEY_FRAME))
    try:
        kind = DataSetMessageType(_string(kind_text, _join(path, "MessageType")))
    except ValueError:
        raise MessageError(_join(path, "MessageType"), f"unknown DataSetMessage type {kind_text!r}") from None
    payload: dict[str, Any] | None
    if kind is DataSetMessageType.KEEP_ALIVE:
        payload = None
    else:
        fields = _obj(_need(o, "Payload", path), _join(path, "Payload"))
        payload = {name: _plain(fv, _join(_join(path, "Payload"), name)) for name, fv in fields.items()}
    return DataSetMessage(
        writer_id=_uint(
            _need(o, "DataSetWriterId", path),
            _join(path, "DataSetWriterId"),
            _UINT16,
            low=1,
            numeric_string=True,
        ),
        sequence_number=_uint(o.get("SequenceNumber", 0), _join(path, "SequenceNumber"), _UINT32),
        metadata_version=_version_of(o.get("MetaDataVersion", {}), _join(path, "MetaDataVersion")),
        timestamp=parse_time(_need(o, "Timestamp", path), _join(path, "Timestamp")),
        message_type=kind,
        payload=payload,
        status=_status_code(o["Status"], _join(path, "Status")) if "Status" in o else 0,
        writer_name=_string(o.get("DataSetWriterName", ""), _join(path, "DataSetWriterName")),
    )


def _text(v: Any, path: str) -> str:
    if isinstance(v, str):  # the v1.04 NonReversible form
        return v
    return _string(_obj(v, path).get("Text", ""), _join(path, "Text"))


def _property_of(v: Any, path: str) -> tuple[str, EUInformation | str]:
    o = _obj(v, path)
    key = _need(o, "Key", path)
    name = _string(key.get("Name") if isinstance(key, dict) else key, _join(path, "Key"))
    name = name.split(":", 1)[1] if ":" in name else name
    value = _obj(_need(o, "Value", path), _join(path, "Value"))
    body = value.get("Value", value.get("Body"))
    if isinstance(body, dict):
        eu = _obj(body.get("UaBody", body.get("Body", body)), _join(path, "Value.Value"))
        p = _join(path, "Value.Value.UaBody")
        return name, EUInformation(
            _string(eu.get("NamespaceUri", ""), _join(p, "NamespaceUri")),
            _uint(eu.get("UnitId", 0), _join(p, "UnitId"), (1 << 31) - 1, low=-(1 << 31)),  # Int32
            _text(eu.get("DisplayName", {}), _join(p, "DisplayName")),
            _text(eu.get("Description", {}), _join(p, "Description")),
        )
    return name, _string(body, _join(path, "Value.Value"))


def _metadata_of(v: Any, path: str) -> DataSetMetaData:
    o = _obj(v, path)
    fields = _need(o, "Fields", path)
    if not isinstance(fields, list):
        raise MessageError(_join(path, "Fields"), f"expected an array, got {_kind(fields)}")
    out = []
    for n, f in enumerate(fields):
        fp = _join(_join(path, "Fields"), n)
        fo = _obj(f, fp)
        try:
            kind = BuiltInType(_uint(_need(fo, "BuiltInType", fp), _join(fp, "BuiltInType"), 25, low=1))
        except ValueError:
            raise MessageError(_join(fp, "BuiltInType"), "not a type SMX fields use") from None
        props = fo.get("Properties") or []
        if not isinstance(props, list):
            raise MessageError(_join(fp, "Properties"), "expected an array")
        out.append(
            FieldMetaData(
                name=_string(_need(fo, "Name", fp), _join(fp, "Name"), empty=False),
                built_in_type=kind,
                field_id=_string(fo.get("DataSetFieldId", ""), _join(fp, "DataSetFieldId")),
                description=_text(fo.get("Description", {}), _join(fp, "Description")),
                properties=tuple(
                    _property_of(p, _join(_join(fp, "Properties"), i)) for i, p in enumerate(props)
                ),
            )
        )
    namespaces = o.get("Namespaces") or []
    if not isinstance(namespaces, list) or not all(isinstance(n, str) for n in namespaces):
        raise MessageError(_join(path, "Namespaces"), "expected an array of strings")
    return DataSetMetaData(
        namespaces=tuple(namespaces),
        name=_string(o.get("Name", ""), _join(path, "Name")),
        fields=tuple(out),
        configuration_version=_version_of(
            _need(o, "ConfigurationVersion", path), _join(path, "ConfigurationVersion")
        ),
        description=_text(o.get("Description", {}), _join(path, "Description")),
    )


def _load(data: bytes | str) -> Any:
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError("", f"larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise MessageError("", f"not JSON: {err}") from None
    except RecursionError:
        raise MessageError("", "nested too deeply") from None


def decode(data: bytes | str) -> Message:
    """A NetworkMessage, metadata or status message from its JSON (:class:`MessageError` if invalid)."""
    o = _obj(_load(data), "")
    kind = _string(_need(o, "MessageType", ""), "MessageType")
    message_id = _string(_need(o, "MessageId", ""), "MessageId")
    publisher = o.get("PublisherId", "")
    if isinstance(publisher, int) and not isinstance(publisher, bool):
        publisher = str(publisher)  # a UInteger PublisherId is sent as its decimal string (§7.2.5.3)
    publisher = _string(publisher, "PublisherId")
    if kind == MessageType.DATA:
        messages = _need(o, "Messages", "")
        if isinstance(messages, dict):  # a single DataSetMessage without the array (§7.2.5.3)
            messages = [messages]
        if not isinstance(messages, list):
            raise MessageError("Messages", f"expected an array, got {_kind(messages)}")
        return NetworkMessage(
            message_id,
            publisher,
            _string(o.get("WriterGroupName", ""), "WriterGroupName"),
            tuple(_dataset_message_of(m, f"Messages[{n}]") for n, m in enumerate(messages)),
        )
    if kind == MessageType.METADATA:
        return MetaDataMessage(
            message_id,
            _string(publisher, "PublisherId", empty=False),
            _uint(_need(o, "DataSetWriterId", ""), "DataSetWriterId", _UINT16, low=1, numeric_string=True),
            _string(o.get("WriterGroupName", ""), "WriterGroupName"),
            _string(o.get("DataSetWriterName", ""), "DataSetWriterName"),
            parse_time(o["Timestamp"], "Timestamp") if "Timestamp" in o else datetime(2000, 1, 1, tzinfo=UTC),
            _metadata_of(_need(o, "MetaData", ""), "MetaData"),
        )
    if kind == MessageType.STATUS:
        cyclic = o.get("IsCyclic", False)
        if not isinstance(cyclic, bool):
            raise MessageError("IsCyclic", f"expected a boolean, got {_kind(cyclic)}")
        state = o.get("Status")
        if isinstance(state, str) and "_" in state:  # a verbose Enumeration: "Operational_2"
            state = state.rsplit("_", 1)[1]
            state = state if _digits(state) is None else _digits(state)
        try:
            status = PubSubState(_uint(state, "Status", 4))
        except ValueError:
            raise MessageError("Status", f"not a PubSubState: {state!r}") from None
        return StatusMessage(
            message_id,
            _string(publisher, "PublisherId", empty=False),
            status,
            cyclic,
            parse_time(_need(o, "Timestamp", ""), "Timestamp") if cyclic else None,
            parse_time(_need(o, "NextReportTime", ""), "NextReportTime") if cyclic else None,
            _uint(o["Backlog"], "Backlog", _UINT32) if "Backlog" in o else None,
            _uint(o["MessagesSent"], "MessagesSent", _UINT64) if "MessagesSent" in o else None,
        )
    raise MessageError("MessageType", f"unknown message type {kind!r}")


def decode_ack(data: bytes | str) -> Ack:
    """An SMX acknowledgement (:class:`MessageError` if invalid)."""
    o = _obj(_load(data), "")
    return Ack(
        _uint(_need(o, "DataSetWriterId", ""), "DataSetWriterId", _UINT16, low=1, numeric_string=True),
        parse_time(_need(o, "Through", ""), "Through"),
    )


def decode_replay(data: bytes | str) -> ReplayRequest:
    """An SMX replay request (:class:`MessageError` if invalid or ``From`` after ``To``)."""
    o = _obj(_load(data), "")
    req = ReplayRequest(
        _uint(_need(o, "DataSetWriterId", ""), "DataSetWriterId", _UINT16, low=1, numeric_string=True),
        parse_time(_need(o, "From", ""), "From"),
        parse_time(_need(o, "To", ""), "To"),
    )
    if req.start > req.end:
        raise MessageError("From", "after To")
    return req


def field_values(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """The plain values of a payload (a :class:`FieldValue`'s value), for consumers that
    do not look at per-field status."""
    return {k: (v.value if isinstance(v, FieldValue) else v) for k, v in (payload or {}).items()}


__all__: Sequence[str] = (
    "CONTENT_TYPE",
    "CONTENT_TYPE_GZIP",
    "Ack",
    "BuiltInType",
    "ConfigurationVersion",
    "DataSetMessage",
    "DataSetMessageType",
    "DataSetMetaData",
    "EUInformation",
    "FieldMetaData",
    "FieldValue",
    "MessageError",
    "MessageType",
    "MetaDataMessage",
    "NetworkMessage",
    "PubSubState",
    "ReplayRequest",
    "StatusMessage",
    "compress",
    "decode",
    "decode_ack",
    "decode_replay",
    "decompress",
    "encode",
    "field_values",
    "new_message_id",
)
