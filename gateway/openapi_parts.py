"""The parts the OpenAPI 3.1 documents of the REST adapters are built with: the gateway's
(``gateway/web/openapi.py``) and the head-end's (``headend/web/openapi.py``).

Schemas (JSON Schema 2020-12, the subset ``tests/support/openapi_check.py`` checks), the
Error schema and the error responses, parameters, operations and the document's frame; and
the schemas of the market's forms that both APIs take and answer with (the advice, a
notified profile or schedule, its body). Each document keeps its own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import __version__

STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
NUM_OR_NULL = {"type": ["number", "null"]}
TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
DATE = {"type": "string", "format": "date"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """An object of exactly these properties, ``required`` ones and ``optional`` ones."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
        **extra,
    }


def array(items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **extra}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def param(
    name: str, where: str, description: str, schema: dict[str, Any] | None = None, required: bool = False
) -> dict[str, Any]:
    """A parameter ``in`` ``where`` (a path parameter is always required), a string unless
    ``schema`` says otherwise."""
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema or STR,
    }


# -- errors and operations -----------------------------------------------------------------


def error_schema(field: dict[str, Any]) -> dict[str, Any]:
    """The body of every error (``gateway/httpjson.py``'s), ``field`` the input at fault."""
    return obj(
        {
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "error": {"type": "string", "minLength": 1},
        },
        {"field": field},
        description="Every error: the HTTP status, a precise message, and the input at fault if any.",
    )


def error_responses(texts: Mapping[int, str], *codes: int) -> dict[str, Any]:
    """The responses of ``codes``, each an Error described by its ``texts``."""
    return {str(c): {"description": texts[c], **json_content(ref("Error"))} for c in codes}


def operation(
    op_id: str,
    summary: str,
    ok: dict[str, Any],
    error_texts: Mapping[int, str],
    *,
    errors: tuple[int, ...],
    params: tuple[dict[str, Any], ...] = (),
    body: str | None = None,
    status: str = "200",
    description: str = "",
    extra_ok: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An operation answering ``ok`` with ``status``, and ``extra_ok`` and the ``errors``
    (described by ``error_texts``); ``body``: the name of its request body's schema."""
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": {
            status: {"description": "OK", **ok},
            **(extra_ok or {}),
            **error_responses(error_texts, *errors),
        },
    }
    if description:
        op["description"] = description
    if params:
        op["parameters"] = list(params)
    if body:
        op["requestBody"] = {"required": True, **json_content(ref(body))}
    return op


def document(
    title: str,
    description: str,
    paths: dict[str, Any],
    schemas: dict[str, Any],
    security_schemes: dict[str, Any],
) -> dict[str, Any]:
    """The document (the server address is relative: it holds for any host)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__, "description": description},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": security_schemes},
    }


# -- the market's forms --------------------------------------------------------------------

#: The states of an advice (``gateway/market/advice.py``).
ADVICE_STATE = {"enum": ["advised", "no-notification", "closing", "no-measurement"]}
#: The settlement period an advice is for.
ADVICE_PERIOD = obj({"day": DATE, "number": {"type": "integer", "minimum": 1}, "start": TIME, "end": TIME})
#: An advice's quantities (null: the state has no such value, never 0).
ADVICE_QUANTITIES: dict[str, Any] = {
    "notified_kwh": NUM_OR_NULL,
    "measured_kwh": NUM_OR_NULL,
    "remaining_s": NUM,
    "current_kw": NUM_OR_NULL,
    "required_kw": NUM_OR_NULL,
    "projected_imbalance_kwh": NUM_OR_NULL,
    "correction_kw": NUM_OR_NULL,
}
#: A notified profile's (a schedule's) settlement periods and energy.
PROFILE_PERIODS = array(
    obj({"number": {"type": "integer", "minimum": 1}, "start": TIME, "end": TIME, "energy_kwh": NUM}),
    minItems=23,
    maxItems=100,
)
#: The days around today a profile (a schedule) may be notified for.
UPCOMING_DAYS = array(
    obj({"day": DATE, "periods": {"type": "integer", "minimum": 23, "maximum": 100}}),
    description="Yesterday to a week ahead, with the number of settlement periods.",
)


def profile_input(replace: str, **extra: Any) -> dict[str, Any]:
    """The body of a notified profile's (a schedule's) PUT (``gateway/jsonbody.py``'s
    PROFILE_KEYS); ``replace`` describes its flag."""
    return obj(
        {
            "values": array(
                NUM,
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
            "replace": {"type": "boolean", "default": False, "description": replace},
        },
        **extra,
    )
