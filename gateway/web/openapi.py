"""The OpenAPI 3.1 document of the REST API, served at ``/api/openapi.json``.

Written as data next to the code it describes; ``tests/integration/test_rest_api.py``
calls every operation and checks each answer (successes and errors) against it, and
that every route the server has is documented and every documented one exists.
"""

from __future__ import annotations

from typing import Any

from gateway.openapi_parts import (
    ADVICE_PERIOD,
    ADVICE_QUANTITIES,
    ADVICE_STATE,
    INT,
    NUM,
    NUM_OR_NULL,
    PROFILE_PERIODS,
    STR,
    TIME,
    TIME_OR_NULL,
    UPCOMING_DAYS,
    array,
    error_responses,
    error_schema,
    json_content,
    obj,
    operation,
    param,
    profile_input,
    ref,
)
from gateway.openapi_parts import document as openapi_document
from gateway.web.sessions import COOKIE, PUBLIC

#: Aggregates of the history route (OPC UA Part 13 functions, snake_case).
AGGREGATE_NAMES = (
    "average", "minimum", "maximum", "range", "count", "total", "delta", "delta_bounds", "start", "end",
)  # fmt: skip
#: The ``minute`` parameter of the history route -> the minute record's column (archive detail).
MINUTE_SERIES = {"min": "min", "max": "max", "samples": "count"}
SCHEMAS: dict[str, Any] = {
    "Error": error_schema(STR),
    "LoginInput": obj({"user": STR, "password": STR}),
    "Alarm": obj(
        {
            "source": {"type": "string", "description": "The meter's id, or gateway."},
            "condition": {"type": "string", "description": "ConditionName (README alarm table)."},
            "type": {"type": "string", "description": "OPC UA event type, e.g. ExclusiveLimitAlarmType."},
            "event_id": {"type": "string", "description": "EventId (hex): what acknowledge names."},
            "time": TIME,
            "active": {"type": "boolean"},
            "acknowledged": {"type": "boolean"},
            "confirmed": {"type": "boolean"},
            "retain": {"type": "boolean"},
            "severity": {"type": "integer", "minimum": 1, "maximum": 1000},
            "message": STR,
            "limit": {"enum": ["HighHigh", "High", "Low", "LowLow", None]},
            "comment": STR,
            "user": {"type": ["string", "null"]},
            "active_since": TIME_OR_NULL,
        }
    ),
    "Alarms": obj({"alarms": array(ref("Alarm"))}),
    "AlarmAnswerInput": obj({"event_id": STR}, {"comment": STR}),
    "PowerQuality": obj(
        {
            "meter": STR,
            "week": {"enum": ["running", "last"]},
            "start": TIME,
            "end": TIME,
            "hours": NUM,
            "intervals": INT,
            "means": INT,
            "flagged": INT,
            "verdict": {"enum": ["pass", "fail", "no data"]},
            "criteria": array(
                obj(
                    {
                        "name": STR,
                        "clause": STR,
                        "measured": NUM_OR_NULL,
                        "unit": STR,
                        "limit": STR,
                        "verdict": {"enum": ["pass", "fail", "no data", None]},
                    }
                )
            ),
            "episodes": array(
                obj({"kind": STR, "start": TIME, "end": TIME_OR_NULL, "phases": array({"type": "integer"})})
            ),
        }
    ),
    "Session": obj(
        {
            "user": {"type": ["string", "null"]},
            "role": {"enum": ["viewer", "operator", "admin", None]},
            "anonymous_read": {"type": "boolean", "description": "Whether reading needs no login."},
        }
    ),
    "Index": obj(
        {
            "product": STR,
            "version": STR,
            "opcua": STR,
            "meters": array(STR),
            "openapi": STR,
            "market": obj({"period_minutes": {"enum": [15, 60]}, "timezone": STR}),
        }
    ),
    "Reading": obj(
        {
            "obis": {"type": "string", "pattern": r"^\d+-\d+:\d+\.\d+\.\d+(\*\d+)?$"},
            "name": STR,
            "value": NUM_OR_NULL,
            "unit": STR,
            "quality": {
                "enum": ["good", "uncertain", "bad", "waiting", "unsupported"],
                "description": "good; uncertain = last read failed, last value kept; bad = meter lost; "
                "waiting = not read yet; unsupported = the meter has no such object.",
            },
            "time": {**TIME_OR_NULL, "description": "When the meter took the value."},
        }
    ),
    "Diagnostics": obj(
        {
            "link": {"enum": ["connecting", "online", "degraded", "lost"]},
            "cycle_duration_s": NUM,
            "bytes_per_cycle": INT,
            "cycles": INT,
            "late_cycles": INT,
            "skipped_cycles": INT,
            "errors": INT,
            "last_error": STR,
            "last_good_read": TIME_OR_NULL,
            "clock_deviation_s": NUM_OR_NULL,
            "baudrate": INT,
            "line_stations": INT,
            "line_share": NUM,
            "archive": {
                "oneOf": [
                    {"type": "null"},
                    obj(
                        {
                            "state": {"enum": ["ok", "disk-full", "error"]},
                            "last_error": STR,
                            "records_written": INT,
                            "backlog": INT,
                            "dropped": INT,
                        }
                    ),
                ]
            },
            "uplink": {
                "description": "The uplink to the fleet's MQTT broker (README 'Uplink to the fleet'); "
                "null when none is configured. Writers: this meter's.",
                "oneOf": [
                    {"type": "null"},
                    obj(
                        {
                            "state": {"enum": ["off", "connecting", "connected", "waiting"]},
                            "broker": STR,
                            "publisher_id": STR,
                            "ack": {"enum": ["broker", "consumer"]},
                            "last_connected": TIME_OR_NULL,
                            "last_error": STR,
                            "connects": INT,
                            "messages_sent": INT,
                            "bytes_sent": INT,
                            "live_dropped": INT,
                            "writers": array(
                                obj(
                                    {
                                        "writer": {
                                            "enum": ["live", "minute", "registers", "lp1", "lp2", "events"]
                                        },
                                        "writer_id": INT,
                                        "backlog": INT,
                                        "last_delivered": TIME_OR_NULL,
                                        "last_acknowledged": TIME_OR_NULL,
                                        "messages": INT,
                                        "bytes": INT,
                                    }
                                )
                            ),
                        }
                    ),
                ],
            },
        }
    ),
    "Meter": obj(
        {
            "id": STR,
            "name": STR,
            "protocol": {"enum": ["dlms", "dlms-mode-e", "iec62056-21"]},
            "manufacturer": STR,
            "model": STR,
            "serial_number": STR,
            "firmware": STR,
            "time": TIME_OR_NULL,
            "status": {"oneOf": [{"type": "null"}, ref("Diagnostics")]},
        }
    ),
    "Snapshot": obj({"meter": STR, "time": TIME, "values": array(ref("Reading"))}),
    "History": obj(
        {
            "meter": STR,
            "obis": STR,
            "unit": STR,
            "aggregate": {
                "oneOf": [
                    {"type": "null"},
                    {"enum": list(AGGREGATE_NAMES)},
                ]
            },
            "values": array(
                obj(
                    {
                        "time": TIME,
                        "value": NUM_OR_NULL,
                        "status": {"type": "string", "description": "OPC UA StatusCode name"},
                    }
                )
            ),
            "next": {"type": ["string", "null"], "description": "Pass as cursor to read the next page."},
        }
    ),
    "Events": obj(
        {
            "meter": STR,
            "events": array(
                obj(
                    {
                        "time": TIME,
                        "code": INT,
                        "name": STR,
                        "severity": INT,
                        "status": {"type": ["integer", "null"]},
                    }
                )
            ),
            "next": {"type": ["string", "null"]},
        }
    ),
    "Advice": obj(
        {
            "meter": STR,
            "state": ADVICE_STATE,
            "text": {"type": "string", "description": "The advice in plain words."},
            "at": TIME,
            "period": ADVICE_PERIOD,
            **ADVICE_QUANTITIES,
        },
        description="Net import convention: positive = drawn from the grid, negative = fed in. "
        "null = the state "
        "has no such value (e.g. no notification), never 0.",
    ),
    "ProfileList": obj(
        {
            "meter": STR,
            "period_minutes": {"enum": [15, 60]},
            "timezone": STR,
            "today": {"type": "string", "format": "date", "description": "The running delivery day."},
            "days": array({"type": "string", "format": "date"}, description="Days with a notified profile."),
            "upcoming": UPCOMING_DAYS,
        }
    ),
    "Profile": obj(
        {
            "meter": STR,
            "day": {"type": "string", "format": "date"},
            "period_minutes": {"enum": [15, 60]},
            "unit": {"const": "kWh"},
            "total_kwh": NUM,
            "periods": PROFILE_PERIODS,
        }
    ),
    "ProfileInput": profile_input("Replace a profile already notified for the day."),
    "External": obj(
        {
            "name": STR,
            "unit": STR,
            "description": STR,
            "fresh_s": NUM,
            "source": {"type": ["string", "null"]},
            "value": NUM_OR_NULL,
            "time": TIME_OR_NULL,
            "received": TIME_OR_NULL,
            "origin": {"type": ["string", "null"]},
            "age_s": NUM_OR_NULL,
            "stale": {"type": "boolean", "description": "Older than fresh_s, or never received."},
            "source_error": {"type": ["string", "null"]},
        }
    ),
    "ExternalInput": obj(
        {"value": NUM}, {"time": {**TIME, "description": "The value's own time; default now."}}
    ),
    "ArchiveList": obj(
        {
            "meter": STR,
            "files": array(
                obj(
                    {
                        "stream": STR,
                        "day": {"type": "string", "format": "date"},
                        "name": STR,
                        "size": INT,
                        "modified": TIME,
                        "url": STR,
                    }
                )
            ),
        }
    ),
}


#: What each error status of the API means.
_ERRORS = {
    400: "Malformed request",
    401: "Not logged in (POST /api/login, or Basic authentication)",
    403: "The user's role may not do this",
    404: "Not found",
    409: "Already done: a day notified (set replace), an alarm acknowledged",
    413: "Body too large",
    415: "Not JSON",
    422: "Refused by validation",
    503: "Archive (or the alarms) unavailable",
}


_METER = param("meter", "path", "Meter id (its folder name in OPC UA).")
_OBIS = param("obis", "path", "OBIS code, e.g. 1-0:1.7.0.")
_DAY = param(
    "day", "path", "Delivery day (market local time), YYYY-MM-DD.", {"type": "string", "format": "date"}
)
_START = param("start", "query", "Start (ISO 8601 with offset).", TIME, required=True)
_END = param("end", "query", "End (ISO 8601 with offset); default now.", TIME)
_CURSOR = param("cursor", "query", "The next value of the previous page.")
_WEEK = param("week", "query", "running (default) or last.", {"enum": ["running", "last"]})


def _op(
    op_id: str, summary: str, ok: dict[str, Any], *, errors: tuple[int, ...] = (404,), **more: Any
) -> dict[str, Any]:
    return operation(op_id, summary, ok, _ERRORS, errors=errors, **more)


def document() -> dict[str, Any]:
    """The document (the server address is relative: it holds for any host)."""
    paths: dict[str, Any] = {
        "/api/login": {
            "post": _op(
                "login",
                "Log in: sets the session cookie",
                json_content(ref("Session")),
                body="LoginInput",
                errors=(400, 401, 413, 415),
                description="The same users and roles as OPC UA (smx-gateway users add). A refused login "
                "answers after a delay; repeated failures lock the name for a minute.",
            )
        },
        "/api/logout": {
            "post": _op("logout", "Log out: forgets the session", json_content(ref("Session")), errors=(401,))
        },
        "/api/session": {
            "get": _op(
                "getSession",
                "Who is logged in",
                json_content(ref("Session")),
                errors=(401,),
                description="401 only for a malformed or wrong Authorization header.",
            )
        },
        "/api": {"get": _op("getIndex", "What this gateway serves", json_content(ref("Index")), errors=())},
        "/api/openapi.json": {
            "get": _op("getOpenApi", "This document", json_content({"type": "object"}), errors=())
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
            "get": _op("listMeters", "Meters and their status", json_content(array(ref("Meter"))), errors=())
        },
        "/api/meters/{meter}": {
            "get": _op(
                "getMeter", "Identity and status of a meter", json_content(ref("Meter")), params=(_METER,)
            )
        },
        "/api/meters/{meter}/snapshot": {
            "get": _op(
                "getSnapshot",
                "The latest values of a meter",
                json_content(ref("Snapshot")),
                params=(_METER,),
            )
        },
        "/api/meters/{meter}/values/{obis}": {
            "get": _op(
                "getValue",
                "The latest value of one OBIS object",
                json_content(ref("Reading")),
                params=(_METER, _OBIS),
                errors=(400, 404),
            )
        },
        "/api/meters/{meter}/history/{obis}": {
            "get": _op(
                "getHistory",
                "History of a value, raw or aggregated",
                json_content(ref("History")),
                params=(
                    _METER,
                    _OBIS,
                    _START,
                    _END,
                    param(
                        "aggregate",
                        "query",
                        "Aggregate per interval (OPC UA Part 13 semantics); none = raw.",
                        {"enum": list(AGGREGATE_NAMES)},
                    ),
                    param(
                        "interval", "query", "Processing interval with an aggregate: PT15M, P1D or seconds."
                    ),
                    param(
                        "limit",
                        "query",
                        "Raw: most values per page (1..2000); aggregates page by 2000 intervals.",
                        {"type": "integer"},
                    ),
                    param("bounds", "query", "Raw: add the bounding values.", {"type": "boolean"}),
                    param(
                        "minute",
                        "query",
                        "A 1-second value's minute records: min (lowest sample of each minute), max "
                        "(highest), samples (their number); none = the minute means. Aggregates are "
                        "computed from these raw values (OPC UA MinuteMinimum/MinuteMaximum/MinuteSamples).",
                        {"enum": list(MINUTE_SERIES)},
                    ),
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
                json_content(ref("Events")),
                params=(
                    _METER,
                    _START,
                    _END,
                    param("limit", "query", "Most events per page (1..2000).", {"type": "integer"}),
                    _CURSOR,
                ),
                errors=(400, 404),
            )
        },
        "/api/meters/{meter}/advice": {
            "get": _op(
                "getAdvice",
                "Imbalance advice for the running settlement period",
                json_content(ref("Advice")),
                params=(
                    _METER,
                    param(
                        "at",
                        "query",
                        "A later instant of the running period (current power held); default now.",
                        TIME,
                    ),
                ),
                errors=(400, 404, 422, 503),
            )
        },
        "/api/meters/{meter}/profiles": {
            "get": _op(
                "listProfiles",
                "Delivery days with a notified profile",
                json_content(ref("ProfileList")),
                params=(_METER,),
            )
        },
        "/api/meters/{meter}/profiles/{day}": {
            "get": _op(
                "getProfile",
                "The notified profile of a day",
                json_content(ref("Profile")),
                params=(_METER, _DAY),
                errors=(400, 404, 503),
            ),
            "put": _op(
                "putProfile",
                "Notify (register) the profile of a day",
                json_content(ref("Profile")),
                params=(_METER, _DAY),
                body="ProfileInput",
                status="201",
                extra_ok={"200": {"description": "Replaced", **json_content(ref("Profile"))}},
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
                json_content(ref("ArchiveList")),
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
                    param("stream", "path", "minute, registers, lp1, lp2, events or notified."),
                    param("name", "path", "YYYY-MM-DD.csv"),
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
        "/api/alarms": {
            "get": _op(
                "listAlarms",
                "The retained alarms: active, or awaiting acknowledgement or confirmation",
                json_content(ref("Alarms")),
                errors=(401,),
                description="Most severe first; the same conditions an OPC UA ConditionRefresh shows.",
            )
        },
        "/api/alarms/{source}/{condition}/{method}": {
            "post": _op(
                "answerAlarm",
                "Acknowledge, confirm or comment an alarm (operator)",
                json_content(ref("Alarm")),
                params=(
                    param("source", "path", "The meter's id, or gateway."),
                    param("condition", "path", "ConditionName, e.g. VoltageL1."),
                    param("method", "path", "acknowledge, confirm or comment."),
                ),
                body="AlarmAnswerInput",
                errors=(400, 401, 403, 404, 409, 413, 415, 422, 503),
                description="OPC 10000-9 Acknowledge / Confirm / AddComment: event_id is the EventId of a "
                "notification of the alarm's open episode (422 otherwise); 409 when already acknowledged "
                "(confirmed). The user and the comment are recorded.",
            )
        },
        "/api/meters/{meter}/power-quality": {
            "get": _op(
                "getPowerQuality",
                "EN 50160 statistics of the running or the last complete week",
                json_content(ref("PowerQuality")),
                params=(_METER, _WEEK),
                errors=(400, 404, 503),
                description="Weeks run Monday 00:00 to Monday 00:00 in the meter's zone. README "
                "'Alarms and power quality' says what a billing meter can and cannot show.",
            )
        },
        "/api/meters/{meter}/power-quality.csv": {
            "get": _op(
                "getPowerQualityCsv",
                "The same week as CSV (the archive keeps each completed week: stream pq-week)",
                {"content": {"text/csv": {"schema": {"type": "string"}}}},
                params=(_METER, _WEEK),
                errors=(400, 404, 503),
            )
        },
        "/api/external": {
            "get": _op(
                "listExternal",
                "External energy data with age and staleness",
                json_content(array(ref("External"))),
                errors=(),
            )
        },
        "/api/external/{name}": {
            "get": _op(
                "getExternal",
                "One external value",
                json_content(ref("External")),
                params=(param("name", "path", "Configured name, e.g. spot_price."),),
            ),
            "put": _op(
                "putExternal",
                "Set an external value",
                json_content(ref("External")),
                params=(param("name", "path", "Configured name, e.g. spot_price."),),
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
            op["responses"].update(error_responses(_ERRORS, *needs))
    return openapi_document(
        "SMX gateway REST API",
        "Live meter values, history, events, notified profiles, imbalance advice, external "
        "energy data and archive files of an SMX gateway. Times are ISO 8601 UTC.",
        paths,
        SCHEMAS,
        {
            "cookie": {"type": "apiKey", "in": "cookie", "name": COOKIE},
            "basic": {"type": "http", "scheme": "basic"},
        },
    )
