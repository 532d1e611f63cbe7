"""The partials and member views as the head-end instances exchange them (pure; issue 18).

Each instance publishes, every second, the :class:`~headend.portfolio.aggregate.Partial` of
every bucket it owns for every portfolio, and every few seconds the
:class:`~headend.portfolio.aggregate.MemberView` of those buckets' members, on
``<prefix>/smx-headend/<group>/partials/<instance>`` (QoS 0, not retained: a partial is
worth a second). One JSON object a message, a table with its columns named once::

    {"MessageType": "smx-portfolio-partials", "Version": 1, "Instance": "headend-1",
     "Time": "2026-03-29T10:00:01Z",
     "Partials": {"Columns": ["Portfolio", "Bucket", ...], "Rows": [["brp-north", 3, ...], ...]},
     "Members": {"Columns": ["Portfolio", "Bucket", "Publisher", ...], "Rows": [...]}}

:func:`decode` is strict: what another instance (or anybody able to publish there) sends
is foreign input; a malformed message raises :class:`PartialsError` naming the column and
row, and nothing of it is used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from headend.portfolio.aggregate import BUCKETS, MemberView, Partial
from headend.portfolio.model import NAME

MESSAGE_TYPE = "smx-portfolio-partials"
VERSION = 1
#: Largest message taken: 64 buckets x 100 portfolios of partials, or 10,000 member views.
MAX_BYTES = 4 * 1024 * 1024


class PartialsError(ValueError):
    """A partials message that is not one (the text says where)."""


def topic(prefix: str, group: str, instance: str) -> str:
    """Where ``instance`` publishes its partials."""
    return f"{prefix}/smx-headend/{group}/partials/{instance}"


def topic_filter(prefix: str, group: str) -> str:
    """Every instance's partials of ``group``."""
    return f"{prefix}/smx-headend/{group}/partials/+"


@dataclass(frozen=True, slots=True)
class Partials:
    """One instance's message."""

    instance: str
    time: datetime
    partials: tuple[Partial, ...] = ()
    #: (portfolio, member view) of the instance's buckets; empty in most messages.
    members: tuple[tuple[str, MemberView], ...] = ()


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise PartialsError(f"{where}: expected a time, got {value!r}")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise PartialsError(f"{where}: expected an ISO 8601 time, got {value!r}") from None
    if t.tzinfo is None:
        raise PartialsError(f"{where}: the time must say its offset, got {value!r}")
    return t.astimezone(UTC)


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PartialsError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PartialsError(f"{where}: expected a count, got {value!r}")
    return value


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise PartialsError(f"{where}: expected a name, got {value!r}")
    return value


def _bucket(value: object, where: str) -> int:
    n = _count(value, where)
    if n >= BUCKETS:
        raise PartialsError(f"{where}: expected a bucket 0..{BUCKETS - 1}, got {n}")
    return n


def _optional(read: Callable[[object, str], Any]) -> Callable[[object, str], Any]:
    return lambda v, where: None if v is None else read(v, where)


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) > 256:
        raise PartialsError(f"{where}: expected a text, got {value!r}")
    return value


#: Column name, the record's field, how to read it.
_PARTIAL: tuple[tuple[str, str, Callable[[object, str], Any]], ...] = tuple(
    (name, f.name, read)
    for f, (name, read) in zip(
        fields(Partial),
        (
            ("Portfolio", _name),
            ("Bucket", _bucket),
            ("Time", _time),
            ("PeriodStart", _time),
            ("Members", _count),
            ("Fresh", _count),
            ("Stale", _count),
            ("Offline", _count),
            ("Unknown", _count),
            ("Unmeasured", _count),
            ("MeasuredPower", _number),
            ("EstimatedPower", _number),
            ("Uncertainty", _number),
            ("RecentPower", _number),
            ("RecentMagnitude", _number),
            ("FreshMagnitude", _number),
            ("Energy", _number),
            ("EnergyUncertainty", _number),
            ("Newest", _optional(_time)),
        ),
        strict=True,
    )
)
_MEMBER: tuple[tuple[str, str, Callable[[object, str], Any]], ...] = tuple(
    (name, f.name, read)
    for f, (name, read) in zip(
        fields(MemberView),
        (
            ("Publisher", _name),
            ("Bucket", _bucket),
            ("State", _text),
            ("Power", _optional(_number)),
            ("Age", _optional(_number)),
            ("Change", _optional(_number)),
            ("Recent", _optional(_number)),
        ),
        strict=True,
    )
)


def _out(value: object) -> object:
    return _iso(value) if isinstance(value, datetime) else value


def encode(message: Partials) -> bytes:
    body: dict[str, Any] = {
        "MessageType": MESSAGE_TYPE,
        "Version": VERSION,
        "Instance": message.instance,
        "Time": _iso(message.time),
        "Partials": {
            "Columns": [c for c, _f, _r in _PARTIAL],
            "Rows": [[_out(getattr(p, f)) for _c, f, _r in _PARTIAL] for p in message.partials],
        },
    }
    if message.members:
        body["Members"] = {
            "Columns": ["Portfolio", *(c for c, _f, _r in _MEMBER)],
            "Rows": [[name, *(_out(getattr(v, f)) for _c, f, _r in _MEMBER)] for name, v in message.members],
        }
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _table(body: dict[str, Any], key: str, columns: Sequence[str]) -> list[list[Any]]:
    table = body.get(key)
    if not isinstance(table, dict) or table.get("Columns") != list(columns):
        raise PartialsError(f"{key}: expected the columns {', '.join(columns)}")
    rows = table.get("Rows")
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == len(columns) for r in rows):
        raise PartialsError(f"{key}.Rows: expected rows of {len(columns)} values")
    return rows


def decode(payload: bytes) -> Partials:
    """The message; PartialsError naming what is wrong."""
    if len(payload) > MAX_BYTES:
        raise PartialsError(f"{len(payload)} bytes: larger than {MAX_BYTES}")
    try:
        body = json.loads(payload, parse_constant=lambda c: _refuse_constant(c))
    except (ValueError, RecursionError) as err:
        raise PartialsError(f"not JSON: {err}") from None
    if not isinstance(body, dict):
        raise PartialsError("expected a JSON object")
    if body.get("MessageType") != MESSAGE_TYPE or body.get("Version") != VERSION:
        raise PartialsError(f"MessageType/Version: expected {MESSAGE_TYPE!r} version {VERSION}")
    instance = _text(body.get("Instance"), "Instance")
    time = _time(body.get("Time"), "Time")
    partials = []
    for n, row in enumerate(_table(body, "Partials", [c for c, _f, _r in _PARTIAL])):
        values = {
            f: read(v, f"Partials.Rows[{n}].{c}") for (c, f, read), v in zip(_PARTIAL, row, strict=True)
        }
        partials.append(Partial(**values))
    members = []
    if "Members" in body:
        columns = ["Portfolio", *(c for c, _f, _r in _MEMBER)]
        for n, row in enumerate(_table(body, "Members", columns)):
            name = _name(row[0], f"Members.Rows[{n}].Portfolio")
            values = {
                f: read(v, f"Members.Rows[{n}].{c}") for (c, f, read), v in zip(_MEMBER, row[1:], strict=True)
            }
            members.append((name, MemberView(**values)))
    return Partials(instance, time, tuple(partials), tuple(members))


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")
