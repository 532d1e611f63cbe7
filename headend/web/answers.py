"""What every route of the head-end's REST API shares: the JSON answers and times in and
out (:mod:`headend.web.api` and :mod:`headend.web.portfolios`); the JSON errors and the
parsing of a time are the gateway's (:mod:`gateway.httpjson`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.httpjson import parse_time


def dumps(data: Any) -> str:
    # allow_nan=False: storage keeps finite numbers only, and an answer must be strict JSON.
    return json.dumps(data, allow_nan=False)


def answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def query_time(request: web.Request, name: str) -> datetime | None:
    """The query parameter ``name`` as an aware UTC time (it must say its offset), or None."""
    text = request.query.get(name)
    return None if text is None else parse_time(text, name, "2026-12-06T00:00:00+01:00")
