"""The OpenAPI 3.1 document of the REST API, served at ``/api/openapi.json``.

Written as data next to the code it describes; ``tests/integration/test_rest_api.py``
calls every operation and checks each answer (successes and errors) against it, and
that every route the server has is documented and every documented one exists.
"""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.web.sessions import COOKIE, PUBLIC

#: Aggregates of the history route (OPC UA Part 13 functions, snake_case).
AGGREGATE_NAMES = (
    "average", "minimum", "maximum", "range", "count", "total", "delta", "delta_bounds", "start", "end",
)  # fmt: skip
_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_STR = {"type": "string"}
_INT = {"type": "integer"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    props = {**required, **(optional or {})}
    return {
        "type": "object",
        "properties": props,
        "required": list(required),
        "additionalProperties": False,
        **extra,
    }


def _array(items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **extra}


SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "error": {"type": "string", "minLength": 1},
        },
        {"field": _STR},
        description="Every error: the HTTP status, a precise message, and the input at fault if any.",
    ),
    "LoginInput": _obj({"user": _STR, "password": _STR}),
    "Session": _obj(
        {
            "user": {"type": ["string", "null"]},
            "role": {"enum": ["viewer", "operator", "admin", None]},
            "anonymous_read": {"type": "boolean", "description": "Whether reading needs no login."},
        }
    ),
    "Index": _obj(
        {
            "product": _STR,
            "version": _STR,
            "opcua": _STR,
            "meters": _array(_STR),
            "openapi": _STR,
            "market": _obj({"period_minutes": {"enum": [15, 60]}, "timezone": _STR}),
        }
    ),
    "Reading": _obj(
        {
            "obis": {"type": "string", "pattern": r"^\d+-\d+:\d+\.\d+\.\d+(\*\d+)?$"},
            "name": _STR,
            "value": _NUM_OR_NULL,
            "unit": _STR,
            "quality": {
                "enum": ["good", "uncertain", "bad", "waiting", "unsupported"],
                "description": "good; uncertain = last read failed, last value kept; bad = meter lost; "
                "waiting = not read yet; unsupported = the meter has no such object.",
            },
            "time": {**_TIME_OR_NULL, "description": "When the meter took the value."},
        }
    ),
    "Diagnostics": _obj(
        {
            "link": {"enum": ["connecting", "online", "degraded", "lost"]},
            "cycle_duration_s": _NUM,
            "bytes_per_cycle": _INT,
            "cycles": _INT,
            "late_cycles": _INT,
            "skipped_cycles": _INT,
            "errors": _INT,
            "last_error": _STR,
            "last_good_read": _TIME_OR_NULL,
            "clock_deviation_s": _NUM_OR_NULL,
            "baudrate": _INT,
            "archive": {
                "oneOf": [
                    {"type": "null"},
                    _obj(
                        {
                            "state": {"enum": ["ok", "disk-full", "error"]},
                            "last_error": _STR,
                            "records_written": _INT,
                            "backlog": _INT,
                            "dropped": _INT,
                        }
                    ),
                ]
            },
            "uplink": {
                "description": "The uplink to the fleet's MQTT broker (README 'Uplink to the fleet'); "
                "null when none is configured. Writers: this meter's.",
                "oneOf": [
                    {"type": "null"},
                    _obj(
                        {
                            "state": {"enum": ["off", "connecting", "connected", "waiting"]},
                            "broker": _STR,
                            "publisher_id": _STR,
                            "ack": {"enum": ["broker", "consumer"]},
                            "last_connected": _TIME_OR_NULL,
                            "last_error": _STR,
                            "connects": _INT,
                            "messages_sent": _INT,
                            "bytes_sent": _INT,
                            "live_dropped": _INT,
                            "writers": _array(
                                _obj(
                                    {
                                        "writer": {
                                            "enum": ["live", "minute", "registers", "lp1", "lp2", "events"]
                                        },
                                        "writer_id": _INT,
                                        "backlog": _INT,
                                        "last_delivered": _TIME_OR_NULL,
                                        "last_acknowledged": _TIME_OR_NULL,
                                        "messages": _INT,
                                        "bytes": _INT,
                                    }
                                )
                            ),
                        }
                    ),
                ],
            },
        }
    ),
    "Meter": _obj(
        {
            "id": _STR,
            "name": _STR,
            "protocol": {"enum": ["dlms", "dlms-mode-e", "iec62056-21"]},
            "manufacturer": _STR,
            "model": _STR,
            "serial_number": _STR,
            "firmware": _STR,
            "time": _TIME_OR_NULL,
            "status": {"oneOf": [{"type": "null"}, _ref("Diagnostics")]},
        }
    ),
    "Snapshot": _obj({"meter": _STR, "time": _TIME, "values": _array(_ref("Reading"))}),
    "History": _obj(
        {
            "meter": _STR,
            "obis": _STR,
            "unit": _STR,
            "aggregate": {
                "oneOf": [
                    {"type": "null"},
                    {"enum": list(AGGREGATE_NAMES)},
                ]
            },
            "values": _array(
                _obj(
                    {
                        "time": _TIME,
                        "value": _NUM_OR_NULL,
                        "status": {"type": "string", "description": "OPC UA StatusCode name"},
                    }
                )
            ),
            "next": {"type": ["string", "null"], "description": "Pass as cursor to read the next page."},
        }
    ),
    "Events": _obj(
        {
            "meter": _STR,
            "events": _array(
                _obj(
                    {
                        "time": _TIME,
                        "code": _INT,
                        "name": _STR,
                        "severity": _INT,
                        "status": {"type": ["integer", "null"]},
                    }
                )
            ),
            "next": {"type": ["string", "null"]},
        }
    ),
    "Advice": _obj(
        {
            "meter": _STR,
            "state": {"enum": ["advised", "no-notification", "closing", "no-measurement"]},
            "text": {"type": "string", "description": "The advice in plain words."},
            "at": _TIME,
            "period": _obj(
                {
                    "day": {"type": "string", "format": "date"},
                    "number": {"type": "integer", "minimum": 1},
                    "start": _TIME,
                    "end": _TIME,
                }
            ),
            "notified_kwh": _NUM_OR_NULL,
            "measured_kwh": _NUM_OR_NULL,
            "remaining_s": _NUM,
            "current_kw": _NUM_OR_NULL,
            "required_kw": _NUM_OR_NULL,
            "projected_imbalance_kwh": _NUM_OR_NULL,
            "correction_kw": _NUM_OR_NULL,
        },
        description="Net import convention: positive = drawn from the grid, negative = fed in. "
        "null = the state "
        "has no such value (e.g. no notification), never 0.",
    ),
    "ProfileList": _obj(
        {
            "meter": _STR,
            "period_minutes": {"enum": [15, 60]},
            "timezone": _STR,
            "today": {"type": "string", "format": "date", "description": "The running delivery day."},
            "days": _array({"type": "string", "format": "date"}, description="Days with a notified profile."),
            "upcoming": _array(
                _obj(
                    {
                        "day": {"type": "string", "format": "date"},
                        "periods": {"type": "integer", "minimum": 23, "maximum": 100},
                    }
                ),
                description="Yesterday to a week ahead, with the number of settlement periods.",
            ),
        }
    ),
    "Profile": _obj(
        {
            "meter": _STR,
            "day": {"type": "string", "format": "date"},
            "period_minutes": {"enum": [15, 60]},
            "unit": {"const": "kWh"},
            "total_kwh": _NUM,
            "periods": _array(
                _obj(
                    {
                        "number": {"type": "integer", "minimum": 1},
                        "start": _TIME,
                        "end": _TIME,
                        "energy_kwh": _NUM,
                    }
                ),
                minItems=23,
                maxItems=100,
            ),
        }
    ),
    "ProfileInput": _obj(
        {
            "values": _array(
                _NUM,
                description="One value per settlement period of the day (92/96/100 quarter "
                "hours or 23/24/25 hours on DST change days).",
            )
        },
        {
            "unit": {
                "enum": ["kWh", "kW"],
                "default": "kWh",
                "description": "kWh per period, or average kW over the period (stored as kWh).",
            },
            "replace": {
                "type": "boolean",
                "default": False,
                "description": "Replace a profile already notified for the day.",
            },
        },
    ),
    "External": _obj(
        {
            "name": _STR,
            "unit": _STR,
            "description": _STR,
            "fresh_s": _NUM,
            "source": {"type": ["string", "null"]},
            "value": _NUM_OR_NULL,
            "time": _TIME_OR_NULL,
            "received": _TIME_OR_NULL,
            "origin": {"type": ["string", "null"]},
            "age_s": _NUM_OR_NULL,
            "stale": {"type": "boolean", "description": "Older than fresh_s, or never received."},
            "source_error": {"type": ["string", "null"]},
        }
    ),
    "ExternalInput": _obj(
        {"value": _NUM}, {"time": {**_TIME, "description": "The value's own time; default now."}}
    ),
    "ArchiveList": _obj(
        {
            "meter": _STR,
            "files": _array(
                _obj(
                    {
                        "stream": _STR,
                        "day": {"type": "string", "format": "date"},
                        "name": _STR,
                        "size": _INT,
                        "modified": _TIME,
                        "url": _STR,
                    }
                )
            ),
        }
    ),
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed request",
        401: "Not logged in (POST /api/login, or Basic authentication)",
        403: "The user's role may not do this",
        404: "Not found",
        409: "Already notified (set replace)",
        413: "Body too large",
        415: "Not JSON",
        422: "Refused by validation",
        503: "Archive unavailable",
    }
    return {str(c): {"description": text[c], **_json_content(_ref("Error"))} for c in codes}


def _param(
    name: str, where: str, description: str, schema: dict[str, Any] | None = None, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema or _STR,
    }


_METER = _param("meter", "path", "Meter id (its folder name in OPC UA).")
_OBIS = _param("obis", "path", "OBIS code, e.g. 1-0:1.7.0.")
_DAY = _param(
    "day", "path", "Delivery day (market local time), YYYY-MM-DD.", {"type": "string", "format": "date"}
)
_START = _param("start", "query", "Start (ISO 8601 with offset).", _TIME, required=True)
_END = _param("end", "query", "End (ISO 8601 with offset); default now.", _TIME)
_CURSOR = _param("cursor", "query", "The next value of the previous page.")


def _op(
    op_id: str,
    summary: str,
    ok: dict[str, Any],
    *,
    errors: tuple[int, ...] = (404,),
    params: tuple[dict[str, Any], ...] = (),
    body: str | None = None,
    status: str = "200",
    description: str = "",
    extra_ok: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": {status: {"description": "OK", **ok}, **(extra_ok or {}), **_errors(*errors)},
    }
    if description:
        op["description"] = description
    if params:
        op["parameters"] = list(params)
    if body:
        op["requestBody"] = {"required": True, **_json_content(_ref(body))}
    return op


def document() -> dict[str, Any]:
    """The document (the server address is relative: it holds for any host)."""
    paths: dict[str, Any] = {
        "/api/login": {
            "post": _op(
                "login",
                "Log in: sets the session cookie",
                _json_content(_ref("Session")),
                body="LoginInput",
                errors=(400, 401, 413, 415),
                description="The same users and roles as OPC UA (smx-gateway users add). A refused login "
                "answers after a delay; repeated failures lock the name for a minute.",
            )
        },
        "/api/logout": {
            "post": _op(
                "logout", "Log out: forgets the session", _json_content(_ref("Session")), errors=(401,)
            )
        },
        "/api/session": {
            "get": _op(
                "getSession",
                "Who is logged in",
                _json_content(_ref("Session")),
                errors=(401,),
                description="401 only for a malformed or wrong Authorization header.",
            )
        },
        "/api": {"get": _op("getIndex", "What this gateway serves", _json_content(_ref("Index")), errors=())},
        "/api/openapi.json": {
            "get": _op("getOpenApi", "This document", _json_content({"type": "object"}), errors=())
        },
        "/api/live": {
            "get": _op(
                "getLive",
                "Live feed (Server-Sent Events)",
                {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
                errors=(),
                description="One `snapshot` event per meter and second; its data is a Snapshot with `status` "
                "(Diagnostics), `advice` (Advice or null) and `external` (array of External).",
            )
        },
        "/api/meters": {
            "get": _op(
                "listMeters", "Meters and their status", _json_content(_array(_ref("Meter"))), errors=()
            )
        },
        "/api/meters/{meter}": {
            "get": _op(
                "getMeter", "Identity and status of a meter", _json_content(_ref("Meter")), params=(_METER,)
            )
        },
        "/api/meters/{meter}/snapshot": {
            "get": _op(
                "getSnapshot",
                "The latest values of a meter",
                _json_content(_ref("Snapshot")),
                params=(_METER,),
            )
        },
        "/api/meters/{meter}/values/{obis}": {
            "get": _op(
                "getValue",
                "The latest value of one OBIS object",
                _json_content(_ref("Reading")),
                params=(_METER, _OBIS),
                errors=(400, 404),
            )
        },
        "/api/meters/{meter}/history/{obis}": {
            "get": _op(
                "getHistory",
                "History of a value, raw or aggregated",
                _json_content(_ref("History")),
                params=(
                    _METER,
                    _OBIS,
                    _START,
                    _END,
                    _param(
                        "aggregate",
                        "query",
                        "Aggregate per interval (OPC UA Part 13 semantics); none = raw.",
                        {"enum": list(AGGREGATE_NAMES)},
                    ),
                    _param(
                        "interval", "query", "Processing interval with an aggregate: PT15M, P1D or seconds."
                    ),
                    _param(
                        "limit",
                        "query",
                        "Raw: most values per page (1..2000); aggregates page by 2000 intervals.",
                        {"type": "integer"},
                    ),
                    _param("bounds", "query", "Raw: add the bounding values.", {"type": "boolean"}),
                    _CURSOR,
                ),
                errors=(400, 404),
                description="The same code answers OPC UA HistoryRead: 1-second values as minute means, "
                "registers "
                "as read, load profile channels (1-0:1.29.0, ...) per period stamped at the period end.",
            )
        },
        "/api/meters/{meter}/events": {
            "get": _op(
                "getEvents",
                "The meter's archived event log",
                _json_content(_ref("Events")),
                params=(
                    _METER,
                    _START,
                    _END,
                    _param("limit", "query", "Most events per page (1..2000).", {"type": "integer"}),
                    _CURSOR,
                ),
                errors=(400, 404),
            )
        },
        "/api/meters/{meter}/advice": {
            "get": _op(
                "getAdvice",
                "Imbalance advice for the running settlement period",
                _json_content(_ref("Advice")),
                params=(
                    _METER,
                    _param(
                        "at",
                        "query",
                        "A later instant of the running period (current power held); default now.",
                        _TIME,
                    ),
                ),
                errors=(400, 404, 422, 503),
            )
        },
        "/api/meters/{meter}/profiles": {
            "get": _op(
                "listProfiles",
                "Delivery days with a notified profile",
                _json_content(_ref("ProfileList")),
                params=(_METER,),
            )
        },
        "/api/meters/{meter}/profiles/{day}": {
            "get": _op(
                "getProfile",
                "The notified profile of a day",
                _json_content(_ref("Profile")),
                params=(_METER, _DAY),
                errors=(400, 404, 503),
            ),
            "put": _op(
                "putProfile",
                "Notify (register) the profile of a day",
                _json_content(_ref("Profile")),
                params=(_METER, _DAY),
                body="ProfileInput",
                status="201",
                extra_ok={"200": {"description": "Replaced", **_json_content(_ref("Profile"))}},
                errors=(400, 404, 409, 413, 415, 422, 503),
                description="Net import energy per period: positive = drawn from the grid, "
                "negative = fed in. "
                "Refused (nothing stored): wrong length for the day, a value that is not a finite "
                "number, a day already over, a day already notified without replace.",
            ),
        },
        "/api/meters/{meter}/archive": {
            "get": _op(
                "listArchive",
                "The meter's archive files",
                _json_content(_ref("ArchiveList")),
                params=(_METER,),
            )
        },
        "/api/meters/{meter}/archive/{stream}/{name}": {
            "get": _op(
                "getArchiveFile",
                "Download an archive file (HTTP Range supported)",
                {"content": {"text/csv": {"schema": {"type": "string"}}}},
                params=(
                    _METER,
                    _param("stream", "path", "minute, registers, lp1, lp2, events or notified."),
                    _param("name", "path", "YYYY-MM-DD.csv"),
                ),
                extra_ok={
                    "206": {
                        "description": "Partial content (Range)",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    "416": {"description": "Range not satisfiable (the file is shorter)"},
                },
            )
        },
        "/api/external": {
            "get": _op(
                "listExternal",
                "External energy data with age and staleness",
                _json_content(_array(_ref("External"))),
                errors=(),
            )
        },
        "/api/external/{name}": {
            "get": _op(
                "getExternal",
                "One external value",
                _json_content(_ref("External")),
                params=(_param("name", "path", "Configured name, e.g. spot_price."),),
            ),
            "put": _op(
                "putExternal",
                "Set an external value",
                _json_content(_ref("External")),
                params=(_param("name", "path", "Configured name, e.g. spot_price."),),
                body="ExternalInput",
                errors=(400, 404, 413, 415, 422),
            ),
        },
    }
    for path, operations in paths.items():
        if path in PUBLIC:
            continue
        for method, op in operations.items():
            # Reads need a viewer (or nobody when anonymous reading is on), writes an operator.
            op["security"] = [{"cookie": []}, {"basic": []}]
            needs = [401] if method == "get" else [401, 403]
            op["responses"].update(_errors(*needs))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SMX gateway REST API",
            "version": __version__,
            "description": "Live meter values, history, events, notified profiles, imbalance advice, "
            "external "
            "energy data and archive files of an SMX gateway. Times are ISO 8601 UTC.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "cookie": {"type": "apiKey", "in": "cookie", "name": COOKIE},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }
