"""The head-end's ingest core: broker messages in, storage rows and verdicts out (no I/O).

What a fleet's broker delivers is foreign input: the boxes are ours, but a box can be
misconfigured, a broker shared, a link corrupting, a client hostile. So every message
goes through the same checks, in this order, and a message that fails one is refused
whole with a :class:`Cause` (counted per publisher by the caller, never stopping ingest):

1. the **topic** is one of the PubSub tree (OPC 10000-14 §7.3.4.7) under our prefix, with
   a PublisherId, WriterGroup and DataSetWriter level (``foreign-topic``);
2. **size** before parsing (``too-large``), gzip only as the content type says, with a
   bomb limit (:func:`gateway.pubsub.codec.decompress`);
3. the **codec** (:mod:`gateway.pubsub.codec`, the definitions the gateway encodes with):
   valid JSON of the right shape (``invalid``);
4. the message's **PublisherId** and WriterGroup are the topic's: a box writing under
   another's id is refused (``publisher-mismatch``), even where the broker's ACL let it
   through;
5. the **metadata** of the writer is known (a retained ``ua-metadata`` message on the
   metadata topic); a DataSetMessage whose DataSetWriterId or MetaDataVersion (major) it
   does not know is **held**, not guessed, until that metadata arrives (bounded: the
   oldest held message is refused as ``metadata-missing``);
6. every **field** is one of the metadata's, of its type (``metadata-mismatch``); numbers
   are finite (``bad-value``: NaN has no place in billing data);
7. the **time** is plausible: after 2000 and not more than :data:`FUTURE` ahead of the
   head-end's clock (``bad-time``).

What passes becomes :class:`~headend.storage.Sample` and :class:`~headend.storage.Event`
rows, or for the live writer a :class:`LiveSeen` (not stored: its history is the minute
records; the portfolios take it).
"""

from __future__ import annotations

import enum
import math
import sys
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from gateway.pubsub import codec
from gateway.pubsub.codec import (
    BuiltInType,
    DataSetMessage,
    DataSetMetaData,
    FieldValue,
    MessageError,
    MetaDataMessage,
    NetworkMessage,
    StatusMessage,
)
from gateway.uplink.writers import Writer
from headend.storage import Event, Sample

#: Largest message taken (before and after decompression): a day of minute records of one
#: meter in one NetworkMessage is ~5 MB at the uplink's largest batch; 1 MiB is its default.
MAX_BYTES = codec.MAX_MESSAGE_BYTES
#: A record stamped further ahead than this of the head-end's clock is refused.
FUTURE = timedelta(days=1)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: Held DataSetMessages waiting for their metadata: per writer, and in all.
HOLD_PER_WRITER = 200
HOLD_TOTAL = 20_000

_INTEGERS = {BuiltInType.UINT16: 0xFFFF, BuiltInType.UINT32: 0xFFFFFFFF}


class Cause(enum.StrEnum):
    """Why a message (or a DataSetMessage of it) was refused."""

    FOREIGN_TOPIC = "foreign-topic"
    TOO_LARGE = "too-large"
    INVALID = "invalid"
    PUBLISHER_MISMATCH = "publisher-mismatch"
    METADATA_MISSING = "metadata-missing"
    METADATA_MISMATCH = "metadata-mismatch"
    BAD_VALUE = "bad-value"
    BAD_TIME = "bad-time"


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic of the PubSub tree: ``<prefix>/json/<kind>/<publisher>[/<group>/<writer>]``."""

    kind: str
    publisher: str
    group: str = ""
    writer: str = ""


def parse_topic(prefix: str, topic: str) -> Topic | None:
    """The parts of ``topic``, None if it is not one of ours."""
    head = f"{prefix}/json/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) == 4 and parts[0] in ("data", "metadata") and all(parts):
        return Topic(parts[0], parts[1], parts[2], parts[3])
    if len(parts) == 2 and parts[0] in ("status", "ack", "replay") and parts[1]:
        return Topic(parts[0], parts[1])
    return None


@dataclass(frozen=True, slots=True)
class Refused:
    """A message or a DataSetMessage not taken, and why (``detail`` for the log)."""

    publisher: str
    cause: Cause
    detail: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """The rows of one DataSetMessage, ready to be stored."""

    publisher: str
    meter: str
    writer: str
    writer_id: int
    time: datetime
    samples: tuple[Sample, ...] = ()
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class LiveSeen:
    """A live DataSetMessage's values: each field present (a delta frame has the changed
    ones only), None where its status is not Good (a value nobody should add up)."""

    publisher: str
    meter: str
    time: datetime
    values: Mapping[str, float | None]


@dataclass(frozen=True, slots=True)
class StatusSeen:
    """A ``ua-status`` message (the Will included): the box's state."""

    publisher: str
    state: codec.PubSubState
    #: A cyclic report's Timestamp (the box's clock), and the SMX extension's counts.
    timestamp: datetime | None = None
    backlog: int | None = None
    messages_sent: int | None = None


@dataclass(frozen=True, slots=True)
class MetadataSeen:
    """A writer's metadata, new or changed."""

    publisher: str
    writer_id: int
    writer: str
    metadata: DataSetMetaData


Outcome = Accepted | Refused | StatusSeen | MetadataSeen | LiveSeen


@dataclass(slots=True)
class _Known:
    """What a writer's metadata says, as much as ingest needs: a fleet's metadata decoded
    whole is ~170 kB per box (descriptions, units, OBIS properties of every field), 1.7 GB
    for 10,000 boxes; this is the version and the field types, the latter shared by every
    writer with the same fields (the boxes of a fleet mostly have the same)."""

    meter: str
    writer: str
    major: int
    types: Mapping[str, BuiltInType]


class Ingest:
    """Turns broker messages into outcomes; keeps the writers' metadata and what waits for it."""

    def __init__(self, prefix: str = "opcua") -> None:
        self.prefix = prefix
        self._known: dict[tuple[str, int], _Known] = {}
        #: (publisher, meter, writer name) -> its DataSetWriterIds, the first announced first:
        #: :meth:`writer_id` without a scan of every writer of the fleet (the completeness
        #: check asks it for every site; a scan made that quadratic in the sites).
        self._ids: dict[tuple[str, str, str], dict[int, None]] = {}
        #: Held DataSetMessages per (publisher, writer id), oldest first.
        self._held: OrderedDict[tuple[str, int], deque[tuple[str, str, DataSetMessage]]] = OrderedDict()
        self.held = 0
        #: One field-type table per distinct layout of fields, shared by the writers that have it.
        self._types: dict[tuple[tuple[str, BuiltInType], ...], Mapping[str, BuiltInType]] = {}

    # -- entry ----------------------------------------------------------------------------

    def feed(self, topic: str, payload: bytes, content_type: str | None, now: datetime) -> list[Outcome]:
        """Everything one broker message means."""
        where = parse_topic(self.prefix, topic)
        if where is None:
            return [
                Refused(
                    _publisher_of(topic), Cause.FOREIGN_TOPIC, f"not a topic of {self.prefix}/json: {topic}"
                )
            ]
        if len(payload) > MAX_BYTES:
            return [Refused(where.publisher, Cause.TOO_LARGE, f"{len(payload)} bytes on {topic}")]
        try:
            if content_type == codec.CONTENT_TYPE_GZIP:
                payload = codec.decompress(payload, MAX_BYTES)
            message = codec.decode(payload)
        except MessageError as err:
            cause = Cause.TOO_LARGE if "larger than" in err.problem else Cause.INVALID
            return [Refused(where.publisher, cause, f"{topic}: {err}")]
        if message.publisher_id != where.publisher:
            detail = f"{topic}: PublisherId {message.publisher_id!r} is not the topic's"
            return [Refused(where.publisher, Cause.PUBLISHER_MISMATCH, detail)]
        if where.kind == "status" and isinstance(message, StatusMessage):
            m = message
            return [StatusSeen(where.publisher, m.status, m.timestamp, m.backlog, m.messages_sent)]
        if where.kind == "metadata" and isinstance(message, MetaDataMessage):
            return self._metadata(where, message, now)
        if where.kind == "data" and isinstance(message, NetworkMessage):
            if message.writer_group and message.writer_group != where.group:
                detail = f"{topic}: WriterGroupName {message.writer_group!r} is not the topic's"
                return [Refused(where.publisher, Cause.PUBLISHER_MISMATCH, detail)]
            return [o for d in message.messages for o in self._dataset(where, d, now)]
        return [
            Refused(
                where.publisher, Cause.INVALID, f"{topic}: a {type(message).__name__} on a {where.kind} topic"
            )
        ]

    # -- metadata -------------------------------------------------------------------------

    def _metadata(self, where: Topic, msg: MetaDataMessage, now: datetime) -> list[Outcome]:
        if msg.writer_name and msg.writer_name != where.writer:
            detail = f"metadata of {msg.writer_name!r} on the topic of {where.writer!r}"
            return [Refused(where.publisher, Cause.METADATA_MISMATCH, detail)]
        types = self._types.setdefault(_layout(msg.metadata), MappingProxyType(msg.metadata.field_types()))
        known = _Known(sys.intern(where.group), sys.intern(where.writer),
                       msg.metadata.configuration_version.major, types)  # fmt: skip
        key = (where.publisher, msg.writer_id)
        out: list[Outcome] = [MetadataSeen(where.publisher, msg.writer_id, where.writer, msg.metadata)]
        old = self._known.get(key)
        if old is not None and (old.meter, old.writer) != (known.meter, known.writer):
            ids = self._ids.get((where.publisher, old.meter, old.writer), {})
            ids.pop(msg.writer_id, None)
            if not ids:
                self._ids.pop((where.publisher, old.meter, old.writer), None)
        self._known[key] = known
        self._ids.setdefault((where.publisher, known.meter, known.writer), {})[msg.writer_id] = None
        waiting = self._held.pop(key, None)
        if waiting:
            self.held -= len(waiting)
            for publisher, group, d in waiting:
                out += self._dataset(Topic("data", publisher, group, where.writer), d, now)
        return out

    @property
    def layouts(self) -> int:
        """Distinct field layouts known (each one type table, however many writers share it)."""
        return len(self._types)

    def meters(self) -> set[tuple[str, str]]:
        """The (publisher, meter) pairs whose metadata was seen."""
        return {(publisher, k.meter) for (publisher, _wid), k in self._known.items()}

    def writer_id(self, publisher: str, meter: str, writer: str) -> int | None:
        """The DataSetWriterId of a publisher's meter's writer, as its metadata said (the
        first announced, should two ids carry one name)."""
        ids = self._ids.get((publisher, meter, writer))
        return next(iter(ids)) if ids else None

    # -- data -----------------------------------------------------------------------------

    def _dataset(self, where: Topic, d: DataSetMessage, now: datetime) -> list[Outcome]:
        publisher = where.publisher
        if d.writer_name and d.writer_name != where.writer:
            detail = f"DataSetWriterName {d.writer_name!r} on the topic of {where.writer!r}"
            return [Refused(publisher, Cause.METADATA_MISMATCH, detail)]
        known = self._known.get((publisher, d.writer_id))
        if known is None or known.major != d.metadata_version.major:
            return self._hold(where, d)
        if known.writer != where.writer or known.meter != where.group:
            detail = (
                f"DataSetWriterId {d.writer_id} is {known.meter}/{known.writer}, "
                f"not {where.group}/{where.writer}"
            )
            return [Refused(publisher, Cause.METADATA_MISMATCH, detail)]
        if not EPOCH <= d.timestamp <= now + FUTURE:
            return [
                Refused(publisher, Cause.BAD_TIME, f"{known.writer} record stamped {d.timestamp.isoformat()}")
            ]
        if d.message_type is codec.DataSetMessageType.KEEP_ALIVE:
            return []
        payload = d.payload or {}
        problem = _check_fields(payload, known.types)
        if problem is not None:
            cause, detail = problem
            return [Refused(publisher, cause, f"{known.writer} at {d.timestamp.isoformat()}: {detail}")]
        if known.writer == Writer.LIVE:
            return [LiveSeen(publisher, known.meter, d.timestamp, _good_values(payload))]
        if known.writer == Writer.EVENTS:
            event = Event(
                publisher,
                known.meter,
                d.timestamp,
                int(payload.get("EventCode") or 0),
                int(payload.get("Severity") or 0),
                str(payload.get("Message") or ""),
                int(payload.get("MeterStatus") or 0),
            )
            return [Accepted(publisher, known.meter, known.writer, d.writer_id, d.timestamp, events=(event,))]
        samples = tuple(
            Sample(
                publisher,
                known.meter,
                known.writer,
                name,
                d.timestamp,
                None if v is None else float(v),
                d.status,
            )
            for name, v in payload.items()
        )
        return [Accepted(publisher, known.meter, known.writer, d.writer_id, d.timestamp, samples=samples)]

    def _hold(self, where: Topic, d: DataSetMessage) -> list[Outcome]:
        key = (where.publisher, d.writer_id)
        queue = self._held.setdefault(key, deque())
        self._held.move_to_end(key)
        queue.append((where.publisher, where.group, d))
        self.held += 1
        out: list[Outcome] = []
        if len(queue) > HOLD_PER_WRITER:
            queue.popleft()
            self.held -= 1
            out.append(
                Refused(
                    where.publisher,
                    Cause.METADATA_MISSING,
                    f"no metadata for DataSetWriterId {d.writer_id}; the oldest held message given up",
                )
            )
        while self.held > HOLD_TOTAL:
            old_key, old = next(iter(self._held.items()))
            old.popleft()
            self.held -= 1
            if not old:
                del self._held[old_key]
            out.append(Refused(old_key[0], Cause.METADATA_MISSING, "too many messages wait for metadata"))
        return out


def _check_fields(payload: Mapping[str, Any], types: Mapping[str, BuiltInType]) -> tuple[Cause, str] | None:
    """None if every field is one of the metadata's, of its type, finite; else why not."""
    for name, raw in payload.items():
        kind = types.get(name)
        if kind is None:
            return Cause.METADATA_MISMATCH, f"field {name!r} is not in the metadata"
        value = raw.value if isinstance(raw, FieldValue) else raw
        if value is None:
            continue
        if kind is BuiltInType.DOUBLE:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return Cause.METADATA_MISMATCH, f"field {name!r} is {type(value).__name__}, not a Double"
            if not math.isfinite(value):
                return Cause.BAD_VALUE, f"field {name!r} is {value}"
        elif kind in _INTEGERS:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INTEGERS[kind]:
                return Cause.METADATA_MISMATCH, f"field {name!r} is {value!r}, not a {kind.name}"
        elif kind is BuiltInType.STRING:
            if not isinstance(value, str) or len(value) > 4096:
                return Cause.METADATA_MISMATCH, f"field {name!r} is not a String of at most 4096 characters"
            if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
                return Cause.BAD_VALUE, f"field {name!r} holds NUL or a lone surrogate (no database keeps it)"
        else:
            return (
                Cause.METADATA_MISMATCH,
                f"field {name!r} has a type the head-end does not store ({kind.name})",
            )
    return None


def _good_values(payload: Mapping[str, Any]) -> dict[str, float | None]:
    """The live fields' numbers; None for a value whose status is not Good (or no number)."""
    out: dict[str, float | None] = {}
    for name, raw in payload.items():
        value, status = (raw.value, raw.status) if isinstance(raw, FieldValue) else (raw, 0)
        good = status & 0xC0000000 == 0 and isinstance(value, int | float) and not isinstance(value, bool)
        out[name] = float(value) if good else None
    return out


def _publisher_of(topic: str) -> str:
    """The PublisherId level of a topic of any prefix, for counting foreign input."""
    parts = topic.split("/")
    return parts[3] if len(parts) > 3 and parts[1] == "json" else "?"


__all__: Sequence[str] = (
    "Accepted",
    "Cause",
    "Ingest",
    "LiveSeen",
    "MetadataSeen",
    "Refused",
    "StatusSeen",
    "Topic",
    "parse_topic",
)


def _layout(metadata: DataSetMetaData) -> tuple[tuple[str, BuiltInType], ...]:
    """The fields' names and types, the key of a shared type table."""
    return tuple((f.name, f.built_in_type) for f in metadata.fields)
