"""What every route of the head-end's REST API shares: the JSON answers, the JSON errors,
times in and out (:mod:`headend.web.api` and :mod:`headend.web.portfolios`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An answer with a 4xx status and a JSON error body."""

    def __init__(self, status: int, message: str, field: str = "", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.field = field
        self.headers = headers or {}


def error_body(status: int, message: str, field: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "error": message}
    if field:
        body["field"] = field
    return body


def answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # allow_nan=False: storage keeps finite numbers only, and an answer must be strict JSON.
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda d: json.dumps(d, allow_nan=False)
    )


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def query_time(request: web.Request, name: str) -> datetime | None:
    """The query parameter ``name`` as an aware UTC time (it must say its offset), or None."""
    text = request.query.get(name)
    if text is None:
        return None
    # A '+' in a URL query is a space: "+01:00" arrives as " 01:00" unless written %2B01:00.
    hint = " (write a '+' in a query as %2B)" if " " in text else ""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"{name}: expected an ISO 8601 time like 2026-12-06T00:00:00+01:00, "
                            f"got {text!r}{hint}", name) from None  # fmt: skip
    if t.tzinfo is None:
        raise ApiError(400, f"{name}: the time must say its offset (Z or +01:00), got {text!r}", name)
    try:
        return t.astimezone(UTC)
    except OverflowError:
        raise ApiError(400, f"{name}: {text!r} is out of range", name) from None
