"""JSON forms of the gateway's values, shared by the REST API and the live feed.

Conventions (README "REST API"): times are ISO 8601 UTC with a ``Z`` and milliseconds;
every number says its unit in the key (``_kw``, ``_kwh``, ``_s``) or next to it
(``unit``); a quantity that has no value in a state is ``null``, never ``0``.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import Any

from gateway.alarms.condition import Notification
from gateway.archive.recorder import ArchiveStatus
from gateway.config import MeterConfig
from gateway.diagnostics import ARCHIVE_FIELDS, METER_FIELDS, UPLINK_FIELDS, UPLINK_WRITER_FIELDS
from gateway.market.advice import Advice
from gateway.market.external import ExternalState
from gateway.market.periods import MarketCalendar
from gateway.market.profiles import NotifiedProfile
from gateway.meter.model import Diagnostics, MeterInfo, Reading, Snapshot
from gateway.obis import CATALOGUE
from gateway.quality.en50160 import WeekReport
from gateway.uplink.status import UplinkStatus

INFO = {i.obis: i for i in CATALOGUE}


def dumps(data: Any) -> str:
    """Compact JSON; NaN or infinity is our bug (a quantity without value is None)."""
    return json.dumps(data, allow_nan=False, separators=(",", ":"))


def iso(t: datetime | None) -> str | None:
    """``2026-11-26T15:04:05.250Z`` (UTC), or None."""
    if t is None:
        return None
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def reading(r: Reading) -> dict[str, Any]:
    info = INFO.get(r.obis)
    return {
        "obis": str(r.obis),
        "name": info.name if info else str(r.obis),
        "value": r.value,
        "unit": r.unit or (info.unit if info else ""),
        "quality": r.quality.value,
        "time": iso(r.source_time),
    }


def diagnostics(
    d: Diagnostics, archive: ArchiveStatus | None, uplink: UplinkStatus | None = None, meter_id: str = ""
) -> dict[str, Any]:
    """The diagnostic fields (gateway/diagnostics.py) under their attribute names; the
    uplink's with the writers of ``meter_id``."""
    body = {f.attribute: _plain(getattr(d, f.attribute)) for f in METER_FIELDS}
    body["archive"] = (
        None
        if archive is None
        else {f.attribute: _plain(getattr(archive, f.attribute)) for f in ARCHIVE_FIELDS}
    )
    if uplink is None:
        body["uplink"] = None
    else:
        up: dict[str, Any] = {f.attribute: _plain(getattr(uplink, f.attribute)) for f in UPLINK_FIELDS}
        up["writers"] = [
            {
                "writer": w.writer,
                **{f.attribute: _plain(getattr(w, f.attribute)) for f in UPLINK_WRITER_FIELDS},
            }
            for w in uplink.writers
            if w.meter_id == meter_id
        ]
        body["uplink"] = up
    return body


def _plain(value: Any) -> Any:
    """A diagnostic value as JSON: an enum by its value, a time in ISO 8601."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return iso(value)
    return value


def identity(config: MeterConfig, info: MeterInfo | None) -> dict[str, Any]:
    info = info or MeterInfo()
    return {
        "id": config.id,
        "name": config.display_name,
        "protocol": config.protocol,
        "manufacturer": info.manufacturer,
        "model": info.model,
        "serial_number": info.serial_number,
        "firmware": info.firmware,
    }


def snapshot(s: Snapshot) -> dict[str, Any]:
    return {
        "meter": s.meter_id,
        "time": iso(s.time),
        "values": [reading(r) for r in s.readings.values()],
    }


def advice(meter_id: str, a: Advice) -> dict[str, Any]:
    return {
        "meter": meter_id,
        "state": a.state.value,
        "text": a.text,
        "at": iso(a.at),
        "period": {
            "day": a.period.day.isoformat(),
            "number": a.period.number,
            "start": iso(a.period.start),
            "end": iso(a.period.end),
        },
        "notified_kwh": a.notified_kwh,
        "measured_kwh": a.measured_kwh,
        "remaining_s": a.remaining_s,
        "current_kw": a.current_kw,
        "required_kw": a.required_kw,
        "projected_imbalance_kwh": a.projected_imbalance_kwh,
        "correction_kw": a.correction_kw,
    }


def external(state: ExternalState) -> dict[str, Any]:
    c, v = state.config, state.value
    return {
        "name": c.name,
        "unit": c.unit,
        "description": c.description,
        "fresh_s": c.fresh_s,
        "source": c.source or None,
        "value": None if v is None else v.value,
        "time": None if v is None else iso(v.time),
        "received": None if v is None else iso(v.received),
        "origin": None if v is None else v.origin,
        "age_s": state.age_s,
        "stale": state.stale,
        "source_error": state.source_error or None,
    }


def profile(meter_id: str, p: NotifiedProfile, calendar: MarketCalendar) -> dict[str, Any]:
    periods = calendar.periods(p.day)
    return {
        "meter": meter_id,
        "day": p.day.isoformat(),
        "period_minutes": p.period_minutes,
        "unit": "kWh",
        "total_kwh": sum(p.energy_kwh),
        "periods": [
            {"number": q.number, "start": iso(q.start), "end": iso(q.end), "energy_kwh": e}
            for q, e in zip(periods, p.energy_kwh, strict=True)
        ],
    }


def alarm(n: Notification) -> dict[str, Any]:
    """A condition notification (OPC 10000-9 fields in the REST API's words)."""
    return {
        "source": n.source,
        "condition": n.condition,
        "type": n.type_name,
        "event_id": n.event_id.hex(),
        "time": iso(n.time),
        "active": n.active,
        "acknowledged": n.acked,
        "confirmed": n.confirmed,
        "retain": n.retain,
        "severity": n.severity,
        "message": n.message,
        "limit": n.limit or None,
        "comment": n.comment,
        "user": n.user or None,
        "active_since": iso(n.active_since),
    }


def power_quality(meter_id: str, r: WeekReport, which: str) -> dict[str, Any]:
    """An EN 50160 week (gateway/quality/en50160.py)."""
    return {
        "meter": meter_id,
        "week": which,
        "start": iso(r.start),
        "end": iso(r.end),
        "hours": r.hours,
        "intervals": r.intervals,
        "means": r.valid,
        "flagged": r.flagged,
        "verdict": r.verdict.value,
        "criteria": [
            {
                "name": c.name,
                "clause": c.clause,
                "measured": c.measured,
                "unit": c.unit,
                "limit": c.limit,
                "verdict": None if c.verdict is None else c.verdict.value,
            }
            for c in r.criteria
        ],
        "episodes": [
            {
                "kind": e.kind.value,
                "start": iso(e.start),
                "end": iso(e.end),
                "phases": [p + 1 for p in e.phases],
            }
            for e in r.episodes
        ],
    }
