"""The archive as the outbox: durable cursors of what the fleet has, and reads after them.

PubSub has no delivery acknowledgement and brokers drop what their bounded queues cannot
hold, so the uplink never keeps its own buffer: what it publishes of the archived streams
is read from the day files, and a **cursor** per (meter, writer) says how far the fleet
has it. After an outage (of the link, the broker or the box) the uplink reads on from the
cursor, oldest first.

* ``ack = "broker"``: the cursor moves when the broker has taken a message (PUBACK of QoS 1).
* ``ack = "consumer"`` (SMX extension): it moves only when the consumer says it has stored
  everything through a time (:class:`~gateway.pubsub.codec.Ack`).

The cursors of a meter live in one small JSON file, ``<archive>/<meter>/uplink.json``,
replaced whole (:func:`gateway.files.replace_file`: a power cut leaves the old or the new
one). A lost or damaged file is not fatal: the uplink starts again from
``[upstream] initial_days`` back (duplicates, never a hole within that span).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gateway.archive.files import ArchiveReader
from gateway.files import replace_file
from gateway.pubsub.codec import ConfigurationVersion, format_time

log = logging.getLogger(__name__)

STATE_FILE = "uplink.json"
_FORMAT = 1
#: ``skip`` of a position after every record of its time (an acknowledged "Through").
ALL = 1 << 31


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """After the first ``skip`` records stamped ``time`` (records before ``time`` are behind it)."""

    time: datetime
    skip: int = ALL

    def to_json(self) -> list[object]:
        return [format_time(self.time), self.skip]

    @classmethod
    def from_json(cls, data: object) -> Position:
        if not (isinstance(data, list) and len(data) == 2 and isinstance(data[1], int)):
            raise ValueError(f"not a position: {data!r}")
        t = datetime.fromisoformat(str(data[0]))
        if t.tzinfo is None:
            raise ValueError("a position's time needs a zone")
        return cls(t, data[1])


@dataclass(slots=True)
class WriterState:
    """What is durable of one writer."""

    #: Everything up to here is with the fleet (broker or consumer, by the ack mode).
    cursor: Position
    #: The metadata's version and the digest of the fields it describes.
    version: ConfigurationVersion
    digest: str


class StateFile:
    """The cursors and metadata versions of one meter's writers."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, WriterState]:
        """The saved states; empty (with a warning) if the file is missing or damaged."""
        try:
            data = json.loads(self.path.read_bytes())
            if data.get("format") != _FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            out = {}
            for name, w in data["writers"].items():
                major, minor = w["version"]
                out[str(name)] = WriterState(
                    Position.from_json(w["cursor"]),
                    ConfigurationVersion(int(major), int(minor)),
                    str(w["digest"]),
                )
            return out
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("%s is unreadable (%s): the uplink starts its cursors afresh", self.path, err)
            return {}

    def save(self, states: dict[str, WriterState]) -> None:
        """Replace the file whole (OSError: nothing changed)."""
        data = {
            "format": _FORMAT,
            "writers": {
                name: {
                    "cursor": s.cursor.to_json(),
                    "version": [s.version.major, s.version.minor],
                    "digest": s.digest,
                }
                for name, s in sorted(states.items())
            },
        }
        replace_file(self.path, json.dumps(data, indent=1).encode() + b"\n")


@dataclass(frozen=True, slots=True)
class Row:
    """One archived record as the uplink reads it, and the position just after it."""

    time: datetime
    status: int | None
    values: tuple[float | None, ...]
    after: Position


def read_after(
    reader: ArchiveReader,
    stream: str,
    columns: Sequence[tuple[str, str]],
    after: Position,
    limit: int,
    until: datetime | None = None,
) -> list[Row]:
    """Up to ``limit`` records of ``stream`` after ``after`` (and at or before ``until``),
    oldest first. Synchronous file reads: run it in a worker thread."""
    out: list[Row] = []
    run_time: datetime | None = None
    run = 0
    rows: Iterator[tuple[datetime, int | None, tuple[float | None, ...]]] = reader.read_columns(
        stream, list(columns), after.time, until
    )
    for t, status, values in rows:
        if t == run_time:
            run += 1
        else:
            run_time, run = t, 1
        if t == after.time and run <= after.skip:
            continue
        out.append(Row(t, status, values, Position(t, run)))
        if len(out) >= limit:
            break
    return out


def initial_position(now: datetime, days: float) -> Position:
    """Where a writer without a cursor starts: ``days`` back from ``now``."""
    return Position(now - timedelta(days=days), ALL)
