"""The DataSetWriters of a meter, declared once: what each publishes and how it is built.

One table (:data:`WRITERS`): the writer's name (its topic level and DataSetWriterName),
its number, the archive stream it replays (None: the live writer, which is not replayed;
the minute records are its history), its DataSetMessage type and its MQTT QoS. Every
meter of a gateway is one WriterGroup (named by the meter id) with these writers; a
writer's DataSetWriterId (UInt16, unique per PublisherId, OPC 10000-14 §6.2.4.1) is
``100 * (meter's place in the configuration, from 1) + number``: ``101`` is the first
meter's live writer.

This module is pure: it turns snapshots and archived records into
:class:`~gateway.pubsub.codec.DataSetMessage` and describes their fields as
:class:`~gateway.pubsub.codec.DataSetMetaData` (names, built-in types, EngineeringUnits
and OBIS codes in the field properties).

Fields
------
* ``live``: each 1-second value by its BrowseName (``VoltageL1``) as a DataValue with its
  status (``{"Value": 230.1}``; ``Status`` when not Good), stamped with the snapshot's time.
* ``minute``: per 1-second value its minute mean (``VoltageL1``) and ``VoltageL1_Min``,
  ``VoltageL1_Max``, ``VoltageL1_Samples`` (the archive's minute record, stamped at the
  minute's start).
* ``registers``: each energy register's sample.
* ``lp1``, ``lp2``: each channel of the profile period (stamped at the period's end) and
  ``MeterStatus``, the meter's status word as read; the DataSetMessage ``Status`` maps it
  (:func:`profile_status`).
* ``events``: ``EventCode``, ``Severity``, ``Message``, ``MeterStatus``.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway import SMX_NAMESPACE
from gateway.config import MeterConfig, one_second_set, register_set
from gateway.events import describe
from gateway.meter.model import Quality, Snapshot
from gateway.obis import CATALOGUE, Obis, ObisInfo
from gateway.pubsub.codec import (
    BuiltInType,
    ConfigurationVersion,
    DataSetMessage,
    DataSetMessageType,
    DataSetMetaData,
    EUInformation,
    FieldMetaData,
    FieldValue,
)
from gateway.streams import EVENT_LOG, StreamId, stream
from gateway.units import UNECE_NAMESPACE, UNITS

#: OPC UA StatusCodes of the published qualities (OPC 10000-4 §7.39), as in the address space.
QUALITY_STATUS: dict[Quality, int] = {
    Quality.GOOD: 0x00000000,
    Quality.UNCERTAIN: 0x40900000,  # UncertainLastUsableValue
    Quality.BAD: 0x80050000,  # BadCommunicationError
    Quality.WAITING: 0x80320000,  # BadWaitingForInitialData
    Quality.UNSUPPORTED: 0x80890000,  # BadConfigurationError
}
UNCERTAIN = 0x40000000
UNCERTAIN_DATA_SUB_NORMAL = 0x40A40000
BAD = 0x80000000
#: The VersionTime epoch (OPC 10000-14 §6.2.3.2.6).
_VERSION_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class Writer(enum.StrEnum):
    """A writer's name: its DataSetWriterName and the last level of its topics."""

    LIVE = "live"
    MINUTE = "minute"
    REGISTERS = "registers"
    LOAD_PROFILE_1 = "lp1"
    LOAD_PROFILE_2 = "lp2"
    EVENTS = "events"


@dataclass(frozen=True, slots=True)
class WriterSpec:
    """One row of the table."""

    name: Writer
    number: int
    #: The archive stream replayed; None: live values, never replayed.
    stream: StreamId | None
    message_type: DataSetMessageType
    qos: int
    description: str


WRITERS: tuple[WriterSpec, ...] = (
    WriterSpec(Writer.LIVE, 1, None, DataSetMessageType.KEY_FRAME, 0,
               "The 1-second values at the live interval; key frames and delta frames; not replayed."),
    WriterSpec(Writer.MINUTE, 2, StreamId.MINUTE, DataSetMessageType.KEY_FRAME, 1,
               "Minute records of the 1-second values: mean, minimum, maximum, samples."),
    WriterSpec(Writer.REGISTERS, 3, StreamId.REGISTERS, DataSetMessageType.KEY_FRAME, 1,
               "Energy register samples, one per minute."),
    WriterSpec(Writer.LOAD_PROFILE_1, 4, StreamId.LOAD_PROFILE_1, DataSetMessageType.KEY_FRAME, 1,
               "Load profile 1 periods as the meter gave them (billing)."),
    WriterSpec(Writer.LOAD_PROFILE_2, 5, StreamId.LOAD_PROFILE_2, DataSetMessageType.KEY_FRAME, 1,
               "Load profile 2 periods as the meter gave them."),
    WriterSpec(Writer.EVENTS, 6, StreamId.EVENTS, DataSetMessageType.EVENT, 1,
               "The meter's event log."),
)  # fmt: skip
BY_NAME: dict[str, WriterSpec] = {w.name: w for w in WRITERS}
#: Meters per gateway the DataSetWriterId scheme allows (UInt16, 0x0001-0x7FFF).
MAX_METERS = 0x7FFF // 100 - 1

#: The minute record's qualifiers in the archive -> field name suffix and built-in type.
_MINUTE_PARTS: tuple[tuple[str, str, BuiltInType], ...] = (
    ("mean", "", BuiltInType.DOUBLE),
    ("min", "_Min", BuiltInType.DOUBLE),
    ("max", "_Max", BuiltInType.DOUBLE),
    ("count", "_Samples", BuiltInType.UINT32),
)
#: The load-profile status bits (IDIS/DSMR "AMR profile status") that make a period's
#: values Bad (the meter says they are invalid) or Uncertain (the period was not whole:
#: power down, clock set, clock invalid).
_PROFILE_BAD = 0x01 | 0x04  # critical error, data not valid
_PROFILE_UNCERTAIN = 0x02 | 0x20 | 0x80  # clock invalid, clock adjusted, power down


def profile_status(word: int | None) -> int:
    """The DataSetMessage Status of a load-profile period from the meter's status word."""
    if not word:
        return 0
    if word & _PROFILE_BAD:
        return BAD
    if word & _PROFILE_UNCERTAIN:
        return UNCERTAIN_DATA_SUB_NORMAL
    return 0


def significant(value: float) -> float:
    """``value`` to 12 significant digits: more than any meter resolves, while the last bits
    of a scaled integer (350 * 0.001 = 0.35000000000000003) or of a mean would cost 3G bytes."""
    return float(f"{value:.12g}")


def writer_id(meter_index: int, spec: WriterSpec) -> int:
    """The DataSetWriterId of ``spec`` for the meter at ``meter_index`` (0-based)."""
    if not 0 <= meter_index < MAX_METERS:
        raise ValueError(f"at most {MAX_METERS} meters per PublisherId")
    return 100 * (meter_index + 1) + spec.number


def version_time(t: datetime) -> int:
    """A VersionTime: whole seconds since 2000-01-01 UTC (OPC 10000-14 §6.2.3.2.6)."""
    return max(1, int((t - _VERSION_EPOCH).total_seconds()))


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a writer and where its value comes from."""

    meta: FieldMetaData
    #: The archive column (OBIS code, qualifier); None: not an archive column.
    column: tuple[str, str] | None


def _eu(unit: str) -> EUInformation | None:
    u = UNITS.get(unit)
    if u is None or not unit:
        return None
    return EUInformation(UNECE_NAMESPACE, u.unit_id, u.display, u.description)


def _field_id(meter_id: str, writer: str, name: str) -> str:
    """A stable DataSetFieldId (a Guid, §6.2.3.2.4): the same field keeps it across restarts."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"smx:{meter_id}/{writer}/{name}"))


def _value_field(
    meter_id: str, writer: str, info: ObisInfo, *, suffix: str = "", quantity: str = "",
    kind: BuiltInType = BuiltInType.DOUBLE, unit: bool = True,
) -> FieldMetaData:  # fmt: skip
    name = info.browse_name + suffix
    props: list[tuple[str, EUInformation | str]] = []
    eu = _eu(info.unit) if unit else None
    if eu is not None:
        props.append(("EngineeringUnits", eu))
    props.append(("Obis", str(info.obis)))
    if quantity:
        props.append(("Quantity", quantity))
    desc = info.description + (f" ({quantity} of the minute)" if quantity else "")
    return FieldMetaData(name, kind, _field_id(meter_id, writer, name), desc, tuple(props))


def _plain_field(meter_id: str, writer: str, name: str, kind: BuiltInType, description: str) -> FieldMetaData:
    return FieldMetaData(name, kind, _field_id(meter_id, writer, name), description)


def _catalogue(obis: Sequence[Obis]) -> list[ObisInfo]:
    by_obis = {i.obis: i for i in CATALOGUE}
    return [by_obis[o] for o in obis if o in by_obis]


def writer_fields(meter: MeterConfig, spec: WriterSpec) -> tuple[Field, ...]:
    """The fields of ``spec`` for ``meter``, in publishing order."""
    mid, w = meter.id, str(spec.name)
    status = _plain_field(mid, w, "MeterStatus", BuiltInType.UINT32, "The meter's status word of the record.")
    if spec.name is Writer.LIVE:
        return tuple(Field(_value_field(mid, w, i), None) for i in _catalogue(one_second_set(meter)))
    if spec.name is Writer.MINUTE:
        out = []
        for info in _catalogue(one_second_set(meter)):
            for qualifier, suffix, kind in _MINUTE_PARTS:
                meta = _value_field(mid, w, info, suffix=suffix, quantity=qualifier, kind=kind,
                                    unit=qualifier != "count")  # fmt: skip
                out.append(Field(meta, (str(info.obis), qualifier)))
        return tuple(out)
    if spec.name is Writer.REGISTERS:
        return tuple(Field(_value_field(mid, w, i), (str(i.obis), "")) for i in register_set(meter))
    if spec.name is Writer.EVENTS:
        return (
            Field(_plain_field(mid, w, "EventCode", BuiltInType.UINT16, "The meter's event code."),
                  (str(EVENT_LOG.cosem), "code")),
            Field(_plain_field(mid, w, "Severity", BuiltInType.UINT16, "OPC UA severity, 1-1000."), None),
            Field(_plain_field(mid, w, "Message", BuiltInType.STRING, "The event in words."), None),
            Field(status, None),
        )  # fmt: skip
    assert spec.stream is not None
    channels = stream(spec.stream).channels
    return (*(Field(_value_field(mid, w, i), (str(i.obis), "")) for i in channels), Field(status, None))


def fields_digest(fields: Sequence[Field]) -> str:
    """What changes the major version of a writer's metadata: the fields' names and types."""
    text = "|".join(f"{f.meta.name}:{int(f.meta.built_in_type)}:{f.column}" for f in fields)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def metadata(meter: MeterConfig, spec: WriterSpec, version: ConfigurationVersion) -> DataSetMetaData:
    """The DataSetMetaData of ``spec`` for ``meter``."""
    return DataSetMetaData(
        namespaces=(SMX_NAMESPACE,),  # the "1:" of the Obis and Quantity property keys
        name=f"{meter.id}.{spec.name}",
        fields=tuple(f.meta for f in writer_fields(meter, spec)),
        configuration_version=version,
        description=f"{spec.description} Meter {meter.display_name}.",
    )


# -- messages -----------------------------------------------------------------------------


@dataclass(slots=True)
class LiveFrames:
    """Key and delta frames of the live writer (OPC 10000-14 §5.3.5, KeyFrameCount).

    Every ``key_frame_count``-th message is a key frame with every field; the others are
    delta frames with the fields whose value or status changed since the last message.
    """

    fields: tuple[Field, ...]
    key_frame_count: int
    _sent: int = 0
    _last: dict[str, FieldValue] | None = None

    def restart(self) -> None:
        """The next message is a key frame (after a reconnect: the subscriber may be new)."""
        self._sent = 0
        self._last = None

    def frame(self, snapshot: Snapshot) -> tuple[DataSetMessageType, dict[str, FieldValue], int]:
        """(key or delta frame, its payload, the worst status) for ``snapshot``."""
        current: dict[str, FieldValue] = {}
        worst = 0
        for f in self.fields:
            obis = Obis.parse(str(f.meta.property("Obis")))
            reading = snapshot.readings.get(obis)
            quality = reading.quality if reading is not None else Quality.WAITING
            value = reading.value if reading is not None else None
            if value is not None:
                value = significant(value)
            status = QUALITY_STATUS[quality]
            current[f.meta.name] = FieldValue(value, status)
            worst = max(worst, status & 0xC0000000)
        key = self._last is None or self.key_frame_count <= 1 or self._sent % self.key_frame_count == 0
        if key:
            payload = current
        else:
            last = self._last or {}
            payload = {k: v for k, v in current.items() if last.get(k) != v}
        self._last = current
        self._sent += 1
        kind = DataSetMessageType.KEY_FRAME if key else DataSetMessageType.DELTA_FRAME
        return kind, payload, worst


def record_payload(
    spec: WriterSpec, fields: Sequence[Field], status: int | None, values: Sequence[float | None]
) -> tuple[dict[str, Any], int]:
    """(payload, DataSetMessage Status) of one archived record whose ``values`` are the
    fields' archive columns in order (:func:`archive_columns`)."""
    columns = iter(values)
    payload: dict[str, Any] = {}
    for f in fields:
        kind = f.meta.built_in_type
        if f.column is not None:
            v = next(columns)
            payload[f.meta.name] = (
                None if v is None else (int(v) if kind is not BuiltInType.DOUBLE else significant(v))
            )
    if spec.name is Writer.EVENTS:
        code = int(payload.get("EventCode") or 0)
        info = describe(code)
        payload.update(Severity=info.severity, Message=info.name, MeterStatus=status or 0)
        return payload, 0
    if spec.stream in (StreamId.LOAD_PROFILE_1, StreamId.LOAD_PROFILE_2):
        payload["MeterStatus"] = status or 0
        return payload, profile_status(status)
    return payload, 0


def archive_columns(fields: Sequence[Field]) -> list[tuple[str, str]]:
    """The archive columns a writer reads, in field order."""
    return [f.column for f in fields if f.column is not None]


def dataset_message(
    spec: WriterSpec, wid: int, sequence: int, version: ConfigurationVersion, time: datetime,
    payload: Mapping[str, Any] | None, status: int = 0, kind: DataSetMessageType | None = None,
) -> DataSetMessage:  # fmt: skip
    return DataSetMessage(
        writer_id=wid,
        sequence_number=sequence & 0xFFFFFFFF,
        metadata_version=version,
        timestamp=time,
        message_type=kind or spec.message_type,
        payload=payload,
        status=status,
        writer_name=str(spec.name),
    )
