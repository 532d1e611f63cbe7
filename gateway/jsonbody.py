"""A REST request's JSON body as the adapters take it: the gateway's (``gateway/web/api.py``)
and the head-end's (``headend/web/api.py``) refuse the same bodies with the same words.

Pure: the adapter hands over the request's Content-Type and bytes, and turns a
:class:`BodyError` into its JSON error answer. What is checked here is the request's form
(400: not JSON, not an object, a key unknown, missing or of the wrong JSON type; 413: too
large; 415: not ``application/json``); what the values mean is the services' business
(the market's validation, 422). NaN and Infinity literals come through as numbers, so the
market's validation names the period that holds them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

#: Largest request body the gateway takes: a 100-period profile is ~2 KB of JSON.
MAX_BODY = 64 * 1024
#: A JSON type name (:func:`json_type`), or several allowed for one key.
Types = str | tuple[str, ...]
#: A notified profile's body: the gateway's profile PUT and the head-end's schedule PUT.
PROFILE_KEYS: Mapping[str, Types] = {"values": "array", "unit": "string", "replace": "boolean"}
PROFILE_REQUIRED = ("values",)


class BodyError(ValueError):
    """A body refused for its form: the HTTP status, a precise message, the key at fault."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def json_type(value: object) -> str:
    """The JSON type of a parsed value (bool is not a number here)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "null"


def json_object(
    content_type: str,
    raw: bytes,
    allowed: Mapping[str, Types],
    required: Sequence[str] = (),
    *,
    limit: int = MAX_BODY,
) -> dict[str, Any]:
    """The body's JSON object, its keys and their JSON types (``allowed``: key -> type or
    types) checked; :class:`BodyError` otherwise."""
    if content_type != "application/json":
        raise BodyError(415, f"expected Content-Type application/json, got {content_type or 'none'}")
    if len(raw) > limit:
        raise BodyError(413, too_large(limit))
    try:
        data = json.loads(raw, parse_constant=float)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise BodyError(400, f"the body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise BodyError(400, f"the body must be a JSON object, got {json_type(data)}")
    for key in data:
        if key not in allowed:
            raise BodyError(400, f"unknown key {key!r} (expected: {', '.join(allowed)})", key)
    for key in required:
        if key not in data:
            raise BodyError(400, f"missing key {key!r}", key)
    for key, value in data.items():
        types = allowed[key]
        names = (types,) if isinstance(types, str) else types
        if json_type(value) not in names:
            raise BodyError(400, f"{key}: expected {' or '.join(names)}, got {json_type(value)}", key)
    return data


def too_large(limit: int) -> str:
    """What a 413 says."""
    return f"request body too large (at most {limit} bytes)"
