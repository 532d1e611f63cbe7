"""The OpenAPI 3.1 document of the head-end's REST API, served at ``/api/openapi.json``.

Data next to the code it describes (as the gateway's ``gateway/web/openapi.py``);
``tests/headend/test_rest_api.py`` calls every operation, checks each answer (successes
and errors) against it, and that the server's routes and the documented ones are the same.
"""

from __future__ import annotations

from typing import Any

from gateway.openapi_parts import (
    ADVICE_PERIOD,
    ADVICE_QUANTITIES,
    ADVICE_STATE,
    DATE,
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

#: The load profiles the profile route reads.
PROFILE_STREAMS = ("lp1", "lp2")
#: The streams whose newest record time a site's meters show.
STREAMS = ("lp1", "lp2", "minute", "registers", "events")

_COUNT = {"type": "integer", "minimum": 0}
_PERCENT = {
    "type": ["number", "null"],
    "minimum": 0,
    "maximum": 100,
    "description": "Periods stored or not recorded by the meter, of those due; null while none is due.",
}

_DAY_SUMMARY = obj(
    {
        "day": DATE,
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
    "last_seen": {**TIME_OR_NULL, "description": "When its last status or data arrived."},
    "backlog": {**_COUNT, "description": "Records the box reports it still has to send."},
    "rate": {
        "type": "number",
        "minimum": 0,
        "description": "Messages per second the box published between its last two cyclic status reports.",
    },
    "completeness": array(
        _DAY_SUMMARY,
        minItems=7,
        maxItems=7,
        description="Load profile lp1 of the last 7 local days, oldest first, today last.",
    ),
}

SCHEMAS: dict[str, Any] = {
    "Error": error_schema({"type": "string", "description": "The input at fault."}),
    "Site": obj(_SITE),
    "SiteDetail": obj(
        {
            **_SITE,
            "info": {"type": "object", "additionalProperties": STR, "description": "What its status said."},
            "meters": array(
                obj(
                    {
                        "meter": STR,
                        "latest": obj(
                            {s: TIME_OR_NULL for s in STREAMS},
                            description="The newest record time of each stream, null when none.",
                        ),
                    }
                )
            ),
        }
    ),
    "Records": obj(
        {
            "publisher": STR,
            "meter": STR,
            "stream": STR,
            "from": TIME,
            "to": TIME,
            "fields": array(STR, description="The records' field names, as the site's metadata names them."),
            "records": array(
                obj(
                    {
                        "time": {**TIME, "description": "The record's time; a load-profile period's end."},
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
    "Events": obj(
        {
            "publisher": STR,
            "meter": STR,
            "from": TIME,
            "to": TIME,
            "events": array(
                obj(
                    {
                        "time": TIME,
                        "code": INT,
                        "severity": INT,
                        "message": STR,
                        "meter_status": {**INT, "description": "The meter's status word with the event."},
                    }
                )
            ),
        }
    ),
    "Completeness": obj(
        {
            "publisher": STR,
            "meter": STR,
            "day": DATE,
            "timezone": STR,
            "periods": {"type": "integer", "minimum": 92, "maximum": 100},
            "expected": {
                **_COUNT,
                "description": "Periods ended by now (all of them for a day that is over).",
            },
            "stored": _COUNT,
            "missing": array(
                TIME,
                description="Ends of due periods neither stored nor explained; "
                "the head-end asks the box for them again.",
            ),
            "not_recorded": array(
                TIME,
                description="Ends of periods the meter did not record (a power down, "
                "told by the next period's status word): never asked for.",
            ),
            "percent": _PERCENT,
        }
    ),
}

_ERRORS = {
    400: "Malformed request: a bad, missing or naive time, a reversed or too long range, an unknown "
    "stream, a malformed day; a body that is not JSON, not an object, with a key unknown, missing or "
    "of the wrong JSON type",
    401: "Without the bearer token ([http] token_file is set): Authorization: Bearer <token>",
    404: "No such site, meter, portfolio or schedule (or this head-end runs no portfolio service)",
    409: "A portfolio of the configuration file (change it there), or a day already notified without replace",
    413: "The body is too large",
    415: "The body is not Content-Type application/json",
    422: "Well-formed but refused: a definition or schedule the market's rules refuse (the field named), "
    "a time outside the running period",
    503: "The database cannot answer",
}


_PUBLISHER = param("publisher", "path", "The site's PublisherId.")
_METER = param("meter", "path", "The meter's id at its site.")
_FROM = param(
    "from", "query", "Start, inclusive: ISO 8601 with its offset (Z or +01:00; %2B in a URL).", TIME
)
_TO = param("to", "query", "End, exclusive: ISO 8601 with its offset.", TIME)
_DAY_RANGE = param(
    "day",
    "query",
    "Instead of from and to: the site's local day; its periods end from 00:15 to 24:00 local time.",
    DATE,
)


def _op(
    op_id: str, summary: str, ok: dict[str, Any], *, errors: tuple[int, ...] = (404, 503), **more: Any
) -> dict[str, Any]:
    return operation(op_id, summary, ok, _ERRORS, errors=errors, **more)


# -- portfolios (issue 18) -------------------------------------------------------------------

_SHARE = {"type": "number", "minimum": 0, "maximum": 1}
_PERIOD_MINUTES = {"enum": [15, 60]}
_MEMBER_STATE = {
    "enum": ["fresh", "stale", "offline"],
    "description": "fresh: its net power is at most [aggregation] stale_after_s old and summed; stale: "
    "older, estimated from its last 15 minutes; offline: its box said so or nothing came for "
    "offline_after_s, estimated the same way.",
}
_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_DEFINITION: dict[str, Any] = {
    "name": {"type": "string", "pattern": _NAME_PATTERN},
    "period_minutes": {**_PERIOD_MINUTES, "description": "The market's settlement period."},
    "timezone": {"type": "string", "description": "The zone whose midnight starts a delivery day."},
    "sites": array(STR, description="Members named by PublisherId."),
    "tags": array(STR, description="Members by a tag of their [[sites]] table."),
    "description": STR,
    "limit_kw": {
        "type": ["number", "null"],
        "description": "The largest average power (kW, either direction) a schedule may ask for.",
    },
}
_AGGREGATE = obj(
    {
        "time": TIME,
        "period_start": {**TIME, "description": "The running settlement period's start."},
        "net_kw": {**NUM, "description": "measured_kw + estimated_kw: positive = drawn from the grid."},
        "measured_kw": {**NUM, "description": "The fresh members' net power, summed."},
        "estimated_kw": {**NUM, "description": "The stale and offline members' estimate."},
        "uncertainty_kw": {**NUM, "description": "How far the estimate may be off."},
        "coverage": {**_SHARE, "description": "The fresh members' share of the recent consumption."},
        "members": _COUNT,
        "fresh": _COUNT,
        "stale": _COUNT,
        "offline": _COUNT,
        "unmeasured": {**_COUNT, "description": "Members whose energy this period is (partly) estimated."},
        "energy_kwh": {
            **NUM,
            "description": "The running period's net energy so far, measured and estimated.",
        },
        "energy_uncertainty_kwh": NUM,
        "buckets": {**_COUNT, "description": "Buckets holding members (the unit the instances share)."},
        "buckets_reporting": {**_COUNT, "description": "Of those, the ones whose owner reported in time."},
        "newest": {**TIME_OR_NULL, "description": "The newest member value summed."},
        "how": {"type": "string", "description": "How the aggregate was formed, in words."},
    },
    description="A portfolio's live aggregate (net import convention).",
)
_ADVICE = obj(
    {
        "state": ADVICE_STATE,
        "text": {"type": "string", "description": "The advice in plain words, with its uncertainty."},
        "at": TIME,
        "period": ADVICE_PERIOD,
        **ADVICE_QUANTITIES,
        "coverage": _SHARE,
        "uncertainty_kwh": {**NUM, "description": "How far the projected imbalance may be off."},
        "members": _COUNT,
        "fresh": _COUNT,
    },
    description="The gateway's advice (ComputeAdvice) on the portfolio's totals. Net import convention: "
    "positive = drawn from the grid. null = the state has no such value, never 0.",
)
_MEMBER = {
    "publisher": STR,
    "name": {"type": "string", "description": "From [[sites]]; empty when not configured."},
    "bucket": {"type": "integer", "minimum": 0},
    "state": _MEMBER_STATE,
    "power_kw": {**NUM_OR_NULL, "description": "Its latest net power."},
    "age_s": {**NUM_OR_NULL, "description": "How old its latest net power is; null: never seen."},
    "change_kw": {**NUM_OR_NULL, "description": "Its power now minus its mean 5 minutes ago."},
    "recent_kw": {**NUM_OR_NULL, "description": "Its mean net power of the last 15 minutes."},
}
_PORTFOLIO = {
    "name": STR,
    "definition": ref("PortfolioDefinition"),
    "members": {**_COUNT, "description": "Its member sites now."},
    "aggregate": {"oneOf": [ref("Aggregate"), {"type": "null"}], "description": "null before the first."},
}
_PROFILE_INPUT = profile_input(
    "Replace a schedule of the day.",
    description="The body of the gateway's notified-profile PUT, refused the same way.",
)

PORTFOLIO_SCHEMAS: dict[str, Any] = {
    "PortfolioDefinition": obj({**_DEFINITION, "origin": {"enum": ["config", "rest"]}}),
    "PortfolioInput": obj(
        {},
        {
            **_DEFINITION,
            "name": {**_DEFINITION["name"], "description": "The path's name; may be left out."},
            "origin": {"const": "rest", "description": "Made through REST (may be left out)."},
        },
        description="A definition: members by sites, tags or both; period_minutes 15 (default) or 60; "
        "timezone Europe/Vienna by default.",
    ),
    "Aggregate": _AGGREGATE,
    "PortfolioAdvice": _ADVICE,
    "Portfolio": obj(_PORTFOLIO),
    "PortfolioDetail": obj({**_PORTFOLIO, "advice": ref("PortfolioAdvice"), "how": STR}),
    "Live": obj(
        {
            "portfolio": STR,
            "time": TIME,
            "aggregate": {"oneOf": [ref("Aggregate"), {"type": "null"}]},
            "advice": ref("PortfolioAdvice"),
            "coverage": _SHARE,
            "uncertainty_kw": NUM,
            "uncertainty_kwh": NUM,
            "members": obj({"total": _COUNT, "fresh": _COUNT, "stale": _COUNT, "offline": _COUNT}),
            "how": STR,
        }
    ),
    "Recent": obj(
        {
            "portfolio": STR,
            "points": array(
                obj({"time": TIME, "net_kw": NUM, "measured_kw": NUM, "coverage": _SHARE}),
                description="A point a second of the last hour (this instance's memory), oldest first.",
            ),
        }
    ),
    "Members": obj(
        {
            "portfolio": STR,
            "time": TIME,
            "total": _COUNT,
            "counts": obj({"fresh": _COUNT, "stale": _COUNT, "offline": _COUNT}),
            "members": array(obj(_MEMBER), description="Offline first, then stale, then fresh; by name."),
        }
    ),
    "Flexibility": obj(
        {
            "portfolio": STR,
            "advice": ref("PortfolioAdvice"),
            "ranking": array(
                obj({**_MEMBER, "reason": STR}),
                description="The fresh members whose power moved most against the advice lately; empty "
                "when the advice asks for no correction.",
            ),
        }
    ),
    "ScheduleList": obj(
        {
            "portfolio": STR,
            "period_minutes": _PERIOD_MINUTES,
            "timezone": STR,
            "today": {**DATE, "description": "The running delivery day."},
            "days": array(DATE, description="Days with a schedule."),
            "upcoming": UPCOMING_DAYS,
        }
    ),
    "Schedule": obj(
        {
            "portfolio": STR,
            "day": DATE,
            "period_minutes": _PERIOD_MINUTES,
            "unit": {"const": "kWh"},
            "total_kwh": NUM,
            "periods": PROFILE_PERIODS,
        }
    ),
    "ScheduleInput": _PROFILE_INPUT,
    "History": obj(
        {
            "portfolio": STR,
            "resolution": {"enum": ["1min", "period"]},
            "seconds": {"type": "integer", "minimum": 60},
            "start": TIME,
            "end": TIME,
            "records": array(
                obj(
                    {
                        "start": TIME,
                        "mean_kw": NUM,
                        "min_kw": NUM,
                        "max_kw": NUM,
                        "coverage": _SHARE,
                        "energy_kwh": NUM,
                        "uncertainty_kwh": NUM,
                        "samples": {**_COUNT, "description": "1-second aggregates in the interval."},
                    }
                ),
                description="Intervals with start <= interval start < end, oldest first.",
            ),
        }
    ),
    "Periods": obj(
        {
            "portfolio": STR,
            "day": DATE,
            "period_minutes": _PERIOD_MINUTES,
            "timezone": STR,
            "periods": array(
                obj(
                    {
                        "number": {"type": "integer", "minimum": 1},
                        "start": TIME,
                        "end": TIME,
                        "notified_kwh": {**NUM_OR_NULL, "description": "The schedule; null: none."},
                        "live_kwh": {**NUM_OR_NULL, "description": "What the live aggregate measured."},
                        "live_uncertainty_kwh": NUM_OR_NULL,
                        "settled_kwh": {**NUM_OR_NULL, "description": "The members' load profiles."},
                        "settled_records": _COUNT,
                        "expected_records": _COUNT,
                        "complete": {"type": "boolean", "description": "Every member's load profile is in."},
                        "difference_kwh": {
                            **NUM_OR_NULL,
                            "description": "settled - live, once settled is complete.",
                        },
                        "coverage": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                    }
                ),
                minItems=23,
                maxItems=100,
            ),
        }
    ),
}

_NAME = param("name", "path", "The portfolio's name.")
_PDAY = param("day", "path", "The delivery day, YYYY-MM-DD (the portfolio's zone).", DATE)
_READ = (400, 404, 503)
PORTFOLIO_PATHS: dict[str, Any] = {
    "/api/portfolios": {
        "get": _op(
            "listPortfolios",
            "Every portfolio: definition, members, latest aggregate",
            json_content(array(ref("Portfolio"))),
            errors=(503,),
            description="Those of the configuration file ([[portfolios]], origin config) and those made "
            "here (origin rest, stored in the database), by name.",
        )
    },
    "/api/portfolios/{name}": {
        "get": _op(
            "getPortfolio",
            "A portfolio: definition, aggregate, advice and how they were formed",
            json_content(ref("PortfolioDetail")),
            params=(_NAME,),
        ),
        "put": _op(
            "putPortfolio",
            "Define a portfolio (create or replace)",
            json_content(ref("Portfolio")),
            params=(_NAME,),
            body="PortfolioInput",
            status="201",
            extra_ok={"200": {"description": "Replaced", **json_content(ref("Portfolio"))}},
            errors=(400, 404, 409, 413, 415, 422, 503),
            description="Stored in the database; every instance of the group takes it within seconds. "
            "A name of the configuration file is refused with 409 (change it there).",
        ),
        "delete": _op(
            "deletePortfolio",
            "Remove a portfolio made through REST (its schedules and history stay)",
            {},
            params=(_NAME,),
            status="204",
            errors=(404, 409, 503),
        ),
    },
    "/api/portfolios/{name}/live": {
        "get": _op(
            "getPortfolioLive",
            "The live aggregate, the advice, coverage, uncertainty, member counts",
            json_content(ref("Live")),
            params=(_NAME,),
        )
    },
    "/api/portfolios/{name}/recent": {
        "get": _op(
            "getPortfolioRecent",
            "The net power of the last hour, a point a second",
            json_content(ref("Recent")),
            params=(_NAME, param("since", "query", "Only points after this time (with its offset).", TIME)),
            errors=_READ,
        )
    },
    "/api/portfolios/{name}/members": {
        "get": _op(
            "getPortfolioMembers",
            "The members' freshness: state, power, age",
            json_content(ref("Members")),
            params=(
                _NAME,
                param(
                    "state", "query", "Only members in this state.", {"enum": ["fresh", "stale", "offline"]}
                ),
                param("limit", "query", "At most this many members (1..100000, default 1000).", INT),
            ),
            errors=_READ,
        )
    },
    "/api/portfolios/{name}/flexibility": {
        "get": _op(
            "getPortfolioFlexibility",
            "The members that moved most against the advice, with the reason",
            json_content(ref("Flexibility")),
            params=(_NAME, param("limit", "query", "At most this many (1..100, default 10).", INT)),
            errors=_READ,
        )
    },
    "/api/portfolios/{name}/advice": {
        "get": _op(
            "getPortfolioAdvice",
            "ComputeAdvice on the portfolio: now or later in the running period",
            json_content(ref("PortfolioAdvice")),
            params=(
                _NAME,
                param(
                    "time",
                    "query",
                    "A later instant of the running period (current power held), with its offset; "
                    "default now.",
                    TIME,
                ),
            ),
            errors=(400, 404, 422, 503),
        )
    },
    "/api/portfolios/{name}/history": {
        "get": _op(
            "getPortfolioHistory",
            "The aggregate's stored history per minute or per settlement period",
            json_content(ref("History")),
            params=(
                _NAME,
                param(
                    "resolution",
                    "query",
                    "1min (at most 2 days) or period (at most 31 days).",
                    {"enum": ["1min", "period"], "default": "1min"},
                ),
                param(
                    "start", "query", "Start, inclusive; default the end less an hour (1min) or a day.", TIME
                ),
                param("end", "query", "End, exclusive; default now.", TIME),
            ),
            errors=_READ,
        )
    },
    "/api/portfolios/{name}/periods/{day}": {
        "get": _op(
            "getPortfolioPeriods",
            "A delivery day's periods: notified, live estimate, settled from the load profiles",
            json_content(ref("Periods")),
            params=(_NAME, _PDAY),
            errors=_READ,
        )
    },
    "/api/portfolios/{name}/schedules": {
        "get": _op(
            "listPortfolioSchedules",
            "Delivery days with a schedule",
            json_content(ref("ScheduleList")),
            params=(_NAME,),
        )
    },
    "/api/portfolios/{name}/schedules/{day}": {
        "get": _op(
            "getPortfolioSchedule",
            "The schedule of a day",
            json_content(ref("Schedule")),
            params=(_NAME, _PDAY),
            errors=_READ,
        ),
        "put": _op(
            "putPortfolioSchedule",
            "Register the schedule of a day",
            json_content(ref("Schedule")),
            params=(_NAME, _PDAY),
            body="ScheduleInput",
            status="201",
            extra_ok={"200": {"description": "Replaced", **json_content(ref("Schedule"))}},
            errors=(400, 404, 409, 413, 415, 422, 503),
            description="As the gateway's notified profile: net import energy per period, positive = "
            "drawn from the grid. Refused (nothing stored): wrong length for the day, a value that is "
            "not a finite number, a day already over, a day already registered without replace, an "
            "average power beyond the portfolio's limit_kw.",
        ),
    },
}


def document() -> dict[str, Any]:
    """The document (the server address is relative: it holds for any host)."""
    records = (_PUBLISHER, _METER, _FROM, _TO, _DAY_RANGE)
    paths: dict[str, Any] = {
        "/api/openapi.json": {
            "get": _op("getOpenApi", "This document", json_content({"type": "object"}), errors=())
        },
        "/api/sites": {
            "get": _op(
                "listSites",
                "Every site: state, last seen, backlog, messages/s, 7 days' completeness",
                json_content(array(ref("Site"))),
                errors=(503,),
                description="Sites heard of and those in [[sites]], by PublisherId.",
            )
        },
        "/api/sites/{publisher}": {
            "get": _op(
                "getSite",
                "One site, its meters and their newest records",
                json_content(ref("SiteDetail")),
                params=(_PUBLISHER,),
            )
        },
        "/api/sites/{publisher}/meters/{meter}/profile": {
            "get": _op(
                "getProfile",
                "A meter's load profile periods in a range (at most 31 days)",
                json_content(ref("Records")),
                errors=(400, 404, 503),
                params=(
                    *records,
                    param(
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
                json_content(ref("Records")),
                errors=(400, 404, 503),
                params=records,
            )
        },
        "/api/sites/{publisher}/meters/{meter}/events": {
            "get": _op(
                "getEvents",
                "A meter's events in a range (at most 31 days)",
                json_content(ref("Events")),
                errors=(400, 404, 503),
                params=records,
            )
        },
        "/api/sites/{publisher}/meters/{meter}/completeness": {
            "get": _op(
                "getCompleteness",
                "Completeness of a meter's load profile lp1 on a local day",
                json_content(ref("Completeness")),
                errors=(400, 404, 503),
                params=(
                    _PUBLISHER,
                    _METER,
                    param("day", "query", "The site's local day.", DATE, required=True),
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
                    param("day", "query", "The sites' local day.", DATE, required=True),
                    param(
                        "site",
                        "query",
                        "Only this PublisherId (repeatable); default every site.",
                        array(STR),
                    ),
                ),
                description="The file smx-headend export writes: one line per site, meter and quarter hour, "
                "flagged ok, missing or not-recorded.",
            )
        },
    }
    paths.update(PORTFOLIO_PATHS)
    for path, operations in paths.items():
        if path == "/api/openapi.json":
            continue
        for op in operations.values():
            op["security"] = [{"bearer": []}]
            op["responses"].update(error_responses(_ERRORS, 401))
    return openapi_document(
        "SMX head-end REST API",
        "The fleet as the head-end stored it: sites and their state, load profiles, "
        "minute records, events, completeness per local day, and the day export (read-only); "
        "the portfolios of sites: their definitions and schedules (written here), live aggregate, "
        "advice, members, flexibility ranking, history and settled periods. "
        "Times are ISO 8601; answers give UTC.",
        paths,
        {**SCHEMAS, **PORTFOLIO_SCHEMAS},
        {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "Only when [http] token_file is set: the file's token.",
            },
        },
    )
