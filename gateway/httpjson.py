"""What the REST adapters say alike: the gateway's (``gateway/web/api.py``) and the
head-end's (``headend/web/api.py``, ``headend/web/portfolios.py``).

Errors are JSON, ``{"status": 400, "error": "<precise message>", "field": "start"}``: a
handler raises :class:`ApiError`, and the middleware of :func:`json_errors` answers it, an
HTTP error of aiohttp's (404, 405, 413, ...), the store that cannot answer (503) and our
bug (500, the traceback in the log) the same way. Times in a query say their offset,
integers in one are plain digits. Answers about meters are nobody's cache entry
(:func:`private_headers`). The request's JSON body is :mod:`gateway.jsonbody`'s.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware


class ApiError(Exception):
    """An answer with a 4xx status and a JSON error body (and ``headers``, as a challenge)."""

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


def json_errors(
    dumps: Callable[[Any], str],
    log: logging.Logger,
    *,
    reason: Callable[[web.Request, web.HTTPException], str],
    unavailable: type[Exception],
    unavailable_text: Callable[[Exception], str] = str,
) -> Middleware:
    """The middleware answering every error as JSON (written with ``dumps``): an ApiError
    with its status, field and headers; aiohttp's HTTP errors with ``reason``; an
    ``unavailable`` store with 503 and ``unavailable_text``; anything else with 500."""

    def respond(
        status: int, message: str, field: str = "", headers: Mapping[str, str] | None = None
    ) -> web.Response:
        body = error_body(status, message, field)
        return web.json_response(body, status=status, headers=headers, dumps=dumps)

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            return respond(err.status, str(err), err.field, err.headers)
        except web.HTTPException as err:
            if err.status < 400:
                raise
            return respond(err.status, reason(request, err))
        except unavailable as err:
            log.error("%s %s: %s", request.method, request.path, err)
            return respond(503, unavailable_text(err))
        except Exception as err:
            # Our bug: still a JSON answer, and the traceback in the log.
            log.exception("%s %s failed", request.method, request.path)
            return respond(500, f"internal error: {type(err).__name__}")

    return errors


async def private_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Answers about meters are nobody's cache entry; no content sniffing, no framing."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The query parameter ``name`` as an integer ``low..high`` (``default`` if not given)."""
    text = request.query.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", text) or not low <= int(text) <= high:
        raise ApiError(400, f"{name}: expected an integer {low}..{high}, got {text!r}", name)
    return int(text)


def parse_time(text: str, name: str, example: str) -> datetime:
    """The query parameter ``name``'s ``text`` as an aware UTC time (it must say its offset);
    a 400 naming the parameter otherwise (``example``: a time as the API writes one)."""
    # A '+' in a URL query is a space: "+01:00" arrives as " 01:00" unless written %2B01:00.
    hint = " (write a '+' in a query as %2B)" if " " in text else ""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(
            400, f"{name}: expected an ISO 8601 time like {example}, got {text!r}{hint}", name
        ) from None
    if t.tzinfo is None:
        raise ApiError(400, f"{name}: the time must say its offset (Z or +01:00), got {text!r}", name)
    try:
        return t.astimezone(UTC)
    except OverflowError:
        raise ApiError(400, f"{name}: {text!r} is out of range", name) from None
