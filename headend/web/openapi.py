"""The OpenAPI 3.1 document of the head-end's REST API, served at ``/api/openapi.json``.

Data next to the code it describes (as the gateway's ``gateway/web/openapi.py``);
``tests/headend/test_rest_api.py`` calls every operation, checks each answer (successes
and errors) against it, and that the server's routes and the documented ones are the same.
"""

from __future__ import annotations

from typing import Any

from gateway import __version__

#: The load profiles the profile route reads.
PROFILE_STREAMS = ("lp1", "lp2")
#: The streams whose newest record time a site's meters show.
STREAMS = ("lp1", "lp2", "minute", "registers", "events")

_STR = {"type": "string"}
_INT = {"type": "integer"}
_COUNT = {"type": "integer", "minimum": 0}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_DATE = {"type": "string", "format": "date"}
_PERCENT = {
    "type": ["number", "null"],
    "minimum": 0,
    "maximum": 100,
    "description": "Periods stored or not recorded by the meter, of those due; null while none is due.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": required,
        "required": list(required),
        "additionalProperties": False,
        **extra,
    }


def _array(items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **extra}


_DAY_SUMMARY = _obj(
    {
        "day": _DATE,
        "periods": {
            "type": "integer",
            "minimum": 92,
            "maximum": 100,
            "description": "The local day's quarter hours (92/96/100 on DST change days).",
        },
        "expected": {**_COUNT, "description": "Periods ended so far, summed over the site's meters."},
        "stored": _COUNT,
        "not_recorded": {**_COUNT, "description": "Periods the meter did not record (power down)."},
        "percent": _PERCENT,
    }
)

_SITE = {
    "publisher": {"type": "string", "description": "The box's PublisherId."},
    "name": {"type": "string", "description": "From [[sites]]; empty when not configured."},
    "timezone": {"type": "string", "description": "The site's local time zone (its days)."},
    "state": {
        "type": "string",
        "description": "online, offline (its Will: the box or its link died), disabled (a clean stop), "
        "another PubSub state in lower case, or unknown (nothing heard yet).",
    },
    "last_seen": {**_TIME_OR_NULL, "description": "When its last status or data arrived."},
    "backlog": {**_COUNT, "description": "Records the box reports it still has to send."},
    "rate": {
        "type": "number",
        "minimum": 0,
        "description": "Messages per second the box published between its last two cyclic status reports.",
    },
    "completeness": _array(
        _DAY_SUMMARY,
        minItems=7,
        maxItems=7,
        description="Load profile lp1 of the last 7 local days, oldest first, today last.",
    ),
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "error": {"type": "string", "minLength": 1},
            "field": {"type": "string", "description": "The input at fault."},
        },
        "required": ["status", "error"],
        "additionalProperties": False,
        "description": "Every error: the HTTP status, a precise message, and the input at fault if any.",
    },
    "Site": _obj(_SITE),
    "SiteDetail": _obj(
        {
            **_SITE,
            "info": {"type": "object", "additionalProperties": _STR, "description": "What its status said."},
            "meters": _array(
                _obj(
                    {
                        "meter": _STR,
                        "latest": _obj(
                            {s: _TIME_OR_NULL for s in STREAMS},
                            description="The newest record time of each stream, null when none.",
                        ),
                    }
                )
            ),
        }
    ),
    "Records": _obj(
        {
            "publisher": _STR,
            "meter": _STR,
            "stream": _STR,
            "from": _TIME,
            "to": _TIME,
            "fields": _array(
                _STR, description="The records' field names, as the site's metadata names them."
            ),
            "records": _array(
                _obj(
                    {
                        "time": {**_TIME, "description": "The record's time; a load-profile period's end."},
                        "values": {
                            "type": "object",
                            "additionalProperties": {"type": ["number", "null"]},
                            "description": "The record's fields; null: the meter gave no value.",
                        },
                        "status": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 4294967295,
                            "description": "The DataSetMessage Status (OPC UA StatusCode; 0 Good).",
                        },
                    }
                )
            ),
        },
        description="Records with from <= time < to, oldest first.",
    ),
    "Events": _obj(
        {
            "publisher": _STR,
            "meter": _STR,
            "from": _TIME,
            "to": _TIME,
            "events": _array(
                _obj(
                    {
                        "time": _TIME,
                        "code": _INT,
                        "severity": _INT,
                        "message": _STR,
                        "meter_status": {**_INT, "description": "The meter's status word with the event."},
                    }
                )
            ),
        }
    ),
    "Completeness": _obj(
        {
            "publisher": _STR,
            "meter": _STR,
            "day": _DATE,
            "timezone": _STR,
            "periods": {"type": "integer", "minimum": 92, "maximum": 100},
            "expected": {
                **_COUNT,
                "description": "Periods ended by now (all of them for a day that is over).",
            },
            "stored": _COUNT,
            "missing": _array(
                _TIME,
                description="Ends of due periods neither stored nor explained; "
                "the head-end asks the box for them again.",
            ),
            "not_recorded": _array(
                _TIME,
                description="Ends of periods the meter did not record (a power down, "
                "told by the next period's status word): never asked for.",
            ),
            "percent": _PERCENT,
        }
    ),
}

_ERRORS = {
    400: "Malformed request: a bad, missing or naive time, a reversed or too long range, an unknown stream",
    401: "Without the bearer token ([http] token_file is set): Authorization: Bearer <token>",
    404: "No such site or meter",
    503: "The database cannot answer",
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


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


_PUBLISHER = _param("publisher", "path", "The site's PublisherId.")
_METER = _param("meter", "path", "The meter's id at its site.")
_FROM = _param(
    "from", "query", "Start, inclusive: ISO 8601 with its offset (Z or +01:00; %2B in a URL).", _TIME
)
_TO = _param("to", "query", "End, exclusive: ISO 8601 with its offset.", _TIME)
_DAY_RANGE = _param(
    "day",
    "query",
    "Instead of from and to: the site's local day; its periods end from 00:15 to 24:00 local time.",
    _DATE,
)


def _op(
    op_id: str,
    summary: str,
    ok: dict[str, Any],
    *,
    errors: tuple[int, ...] = (404, 503),
    params: tuple[dict[str, Any], ...] = (),
    description: str = "",
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": {
            "200": {"description": "OK", **ok},
            **{str(c): {"description": _ERRORS[c], **_json_content(_ref("Error"))} for c in errors},
        },
    }
    if description:
        op["description"] = description
    if params:
        op["parameters"] = list(params)
    return op


def document() -> dict[str, Any]:
    """The document (the server address is relative: it holds for any host)."""
    records = (_PUBLISHER, _METER, _FROM, _TO, _DAY_RANGE)
    paths: dict[str, Any] = {
        "/api/openapi.json": {
            "get": _op("getOpenApi", "This document", _json_content({"type": "object"}), errors=())
        },
        "/api/sites": {
            "get": _op(
                "listSites",
                "Every site: state, last seen, backlog, messages/s, 7 days' completeness",
                _json_content(_array(_ref("Site"))),
                errors=(503,),
                description="Sites heard of and those in [[sites]], by PublisherId.",
            )
        },
        "/api/sites/{publisher}": {
            "get": _op(
                "getSite",
                "One site, its meters and their newest records",
                _json_content(_ref("SiteDetail")),
                params=(_PUBLISHER,),
            )
        },
        "/api/sites/{publisher}/meters/{meter}/profile": {
            "get": _op(
                "getProfile",
                "A meter's load profile periods in a range (at most 31 days)",
                _json_content(_ref("Records")),
                errors=(400, 404, 503),
                params=(
                    *records,
                    _param(
                        "stream",
                        "query",
                        "The load profile.",
                        {"enum": list(PROFILE_STREAMS), "default": "lp1"},
                    ),
                ),
                description="Periods are stamped at their end. Give from and to, or day.",
            )
        },
        "/api/sites/{publisher}/meters/{meter}/minute": {
            "get": _op(
                "getMinutes",
                "A meter's minute records in a range (at most 2 days)",
                _json_content(_ref("Records")),
                errors=(400, 404, 503),
                params=records,
            )
        },
        "/api/sites/{publisher}/meters/{meter}/events": {
            "get": _op(
                "getEvents",
                "A meter's events in a range (at most 31 days)",
                _json_content(_ref("Events")),
                errors=(400, 404, 503),
                params=records,
            )
        },
        "/api/sites/{publisher}/meters/{meter}/completeness": {
            "get": _op(
                "getCompleteness",
                "Completeness of a meter's load profile lp1 on a local day",
                _json_content(_ref("Completeness")),
                errors=(400, 404, 503),
                params=(
                    _PUBLISHER,
                    _METER,
                    _param("day", "query", "The site's local day.", _DATE, required=True),
                ),
            )
        },
        "/api/export": {
            "get": _op(
                "exportDay",
                "A local day's 15-minute load profiles as CSV, with completeness flags",
                {"content": {"text/csv": {"schema": {"type": "string"}}}},
                errors=(400, 404, 503),
                params=(
                    _param("day", "query", "The sites' local day.", _DATE, required=True),
                    _param(
                        "site",
                        "query",
                        "Only this PublisherId (repeatable); default every site.",
                        _array(_STR),
                    ),
                ),
                description="The file smx-headend export writes: one line per site, meter and quarter hour, "
                "flagged ok, missing or not-recorded.",
            )
        },
    }
    for path, operations in paths.items():
        if path == "/api/openapi.json":
            continue
        for op in operations.values():
            op["security"] = [{"bearer": []}]
            op["responses"]["401"] = {"description": _ERRORS[401], **_json_content(_ref("Error"))}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SMX head-end REST API",
            "version": __version__,
            "description": "The fleet as the head-end stored it: sites and their state, load profiles, "
            "minute records, events, completeness per local day, and the day export. Read-only. "
            "Times are ISO 8601; answers give UTC.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Only when [http] token_file is set: the file's token.",
                },
            },
        },
    }
