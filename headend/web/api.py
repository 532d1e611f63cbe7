"""The head-end's REST API and fleet page (aiohttp; issue 17, DESIGN §11).

The portfolios' routes (issue 18, DESIGN §12: definitions and schedules written, the live
aggregate, advice, members, history) are :mod:`headend.web.portfolios`. The rest is
read-only and thin: every answer is the repository's records, :mod:`headend.web.days`
(completeness per local day) or :func:`headend.export.export_day`; no SQL here. Every
route is declared in :mod:`headend.web.openapi` (served at ``/api/openapi.json``) and
``tests/headend/test_rest_api.py`` checks each answer against it.

Errors are JSON as the gateway's, ``{"status": 400, "error": "<precise message>",
"field": "from"}``: 400 for a query that cannot be understood (a time without its offset,
a reversed or too long range, an unknown stream), 401 without the bearer token where one
is configured, 404 for an unknown site, meter or route, 503 when the database cannot
answer, 500 for our bug (the traceback in the log).

Times in answers are UTC (``...Z``); a day is the site's local day (its ``[[sites]]``
time zone), as completeness and the export count it.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.clock import Clock
from gateway.errors import ConfigError
from gateway.httpjson import ApiError, json_errors, private_headers
from gateway.jsonbody import too_large
from headend.completeness import day_bounds, expected_periods
from headend.config import HeadendConfig
from headend.export import export_day
from headend.portfolio.service import PortfolioService
from headend.storage import EVENTS, Repository, Sample, SiteState, StorageError
from headend.web.answers import answer, dumps, iso, query_time
from headend.web.days import Day, local_days, meter_days, summed
from headend.web.openapi import PROFILE_STREAMS, STREAMS, document
from headend.web.portfolios import MAX_DEFINITION, PortfolioRoutes

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: Days of completeness per site in the fleet listing (the page's cells).
WEEK = 7
#: The longest range one request reads: a month of quarter hours or events, two days of minutes.
MAX_RANGE = {"profile": timedelta(days=31), "events": timedelta(days=31), "minute": timedelta(days=2)}
#: Readable without the token: the document says what the API is, not what it holds.
PUBLIC = frozenset({"/api/openapi.json"})
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TICK = timedelta(microseconds=1)


def _reason(request: web.Request, err: web.HTTPException) -> str:
    return {404: f"no route {request.path}", 413: too_large(MAX_DEFINITION)}.get(err.status, err.reason)


#: Every error as JSON; the fleet's meter data is nobody's cache entry (private_headers).
_errors = json_errors(
    dumps, log, reason=_reason, unavailable=StorageError,
    unavailable_text=lambda err: f"the database cannot answer: {err}",
)  # fmt: skip


def read_token(path: str) -> str:
    """The bearer token from ``[http] token_file`` (surrounding white space dropped)."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"[http] token_file {path}: cannot read it: {err}") from err
    if len(token) < 16 or any(c.isspace() for c in token):
        raise ConfigError(f"[http] token_file {path}: expected one token of at least 16 characters")
    return token


# -- query parameters ----------------------------------------------------------------------


def _day(text: str | None, name: str = "day") -> date:
    if text is None:
        raise ApiError(400, f"{name}: required, the site's local day as YYYY-MM-DD", name)
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"{name}: expected a day as YYYY-MM-DD, got {text!r}", name) from None


# -- the API -------------------------------------------------------------------------------


class FleetApi:
    """Routes of the REST API and the fleet page over the head-end's repository."""

    def __init__(
        self,
        config: HeadendConfig,
        repository: Repository,
        clock: Clock,
        token: str = "",
        portfolios: PortfolioService | None = None,
    ) -> None:
        self.config = config
        self.repository = repository
        self.clock = clock
        self._token = token.encode()
        self.document = document()
        #: The portfolios' routes (issue 18), over the instance's service (None: it runs none).
        self.portfolios = PortfolioRoutes(config, portfolios)
        app = web.Application(middlewares=[_errors, self._access], client_max_size=MAX_DEFINITION)
        r = app.router
        r.add_get("/", self.page)
        r.add_static("/static", STATIC, append_version=True)
        r.add_get("/api/openapi.json", self.openapi)
        r.add_get("/api/sites", self.sites)
        r.add_get("/api/sites/{publisher}", self.site)
        r.add_get("/api/sites/{publisher}/meters/{meter}/profile", self.profile)
        r.add_get("/api/sites/{publisher}/meters/{meter}/minute", self.minute)
        r.add_get("/api/sites/{publisher}/meters/{meter}/events", self.events)
        r.add_get("/api/sites/{publisher}/meters/{meter}/completeness", self.completeness)
        r.add_get("/api/export", self.export)
        self.portfolios.add_to(r)
        app.on_response_prepare.append(private_headers)
        self.app = app

    @web.middleware
    async def _access(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self._token and request.path.startswith("/api/") and request.path not in PUBLIC:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            challenge = {"WWW-Authenticate": 'Bearer realm="SMX head-end"'}
            if scheme.lower() != "bearer":
                raise ApiError(401, "this API needs the header Authorization: Bearer <token>", "", challenge)
            if not hmac.compare_digest(given.strip().encode(), self._token):
                raise ApiError(401, "wrong bearer token", "", challenge)
        return await handler(request)

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def openapi(self, request: web.Request) -> web.Response:
        return answer(self.document)

    # -- sites -----------------------------------------------------------------------------

    async def _fleet(self) -> tuple[dict[str, SiteState], dict[str, list[str]]]:
        """Every site's state and meters; a site is one the ingest or the configuration knows."""
        states = {s.publisher: s for s in await self.repository.sites()}
        meters: dict[str, list[str]] = {s.publisher: [] for s in self.config.sites}
        for publisher in states:
            meters.setdefault(publisher, [])
        for publisher, meter in await self.repository.publishers_and_meters():
            meters.setdefault(publisher, []).append(meter)
        return states, meters

    async def _site_json(self, publisher: str, state: SiteState | None, meters: list[str]) -> dict[str, Any]:
        site = self.config.site(publisher)
        zone = ZoneInfo(site.timezone)
        now = self.clock.now()
        days = local_days(now, zone, WEEK)
        per_meter = [await meter_days(self.repository, publisher, m, days, zone, now) for m in meters]
        week = [
            summed([m[n] for m in per_meter]) if per_meter else Day(d, len(expected_periods(d, zone)), 0, 0)
            for n, d in enumerate(days)
        ]
        return {
            "publisher": publisher, "name": site.name, "timezone": site.timezone,
            "state": state.state if state else "unknown",
            "last_seen": iso(state.last_seen) if state else None,
            "backlog": state.backlog if state else 0,
            "rate": state.rate if state else 0.0,
            "completeness": [
                {"day": d.day.isoformat(), "periods": d.periods, "expected": d.expected, "stored": d.stored,
                 "not_recorded": len(d.not_recorded), "percent": d.percent}
                for d in week
            ],
        }  # fmt: skip

    async def sites(self, request: web.Request) -> web.Response:
        states, meters = await self._fleet()
        return answer([await self._site_json(p, states.get(p), meters[p]) for p in sorted(meters)])

    async def _publisher(self, request: web.Request) -> tuple[str, SiteState | None, list[str]]:
        publisher = request.match_info["publisher"]
        states, meters = await self._fleet()
        if publisher not in meters:
            raise ApiError(
                404, f"no site {publisher!r} (none has sent anything or is configured)", "publisher"
            )
        return publisher, states.get(publisher), meters[publisher]

    async def _meter(self, request: web.Request) -> tuple[str, str]:
        publisher, _state, meters = await self._publisher(request)
        meter = request.match_info["meter"]
        if meter not in meters:
            known = ", ".join(meters) or "none stored yet"
            raise ApiError(404, f"site {publisher!r} has no meter {meter!r} (known: {known})", "meter")
        return publisher, meter

    async def site(self, request: web.Request) -> web.Response:
        publisher, state, meters = await self._publisher(request)
        body = await self._site_json(publisher, state, meters)
        body["info"] = dict(state.info) if state else {}
        body["meters"] = [
            {"meter": m, "latest": {s: iso(await self.repository.latest(publisher, m, s)) for s in STREAMS}}
            for m in meters
        ]
        return answer(body)

    # -- records ---------------------------------------------------------------------------

    def _range(self, request: web.Request, publisher: str, what: str) -> tuple[datetime, datetime]:
        """``from``/``to`` (``from <= time < to``), or ``day``: the site's local day, whose
        periods end from 00:15 to 24:00 (period ends in ``(start, end]``)."""
        start, end, text = query_time(request, "from"), query_time(request, "to"), request.query.get("day")
        if text is not None:
            if start is not None or end is not None:
                raise ApiError(400, "day: give either day or from and to, not both", "day")
            first, last = day_bounds(_day(text), ZoneInfo(self.config.site(publisher).timezone))
            return first + _TICK, last + _TICK
        for name, value in (("from", start), ("to", end)):
            if value is None:
                raise ApiError(400, f"{name}: required, an ISO 8601 time with its offset "
                                    "(or day=YYYY-MM-DD for the site's local day)", name)  # fmt: skip
        assert start is not None
        assert end is not None
        if end <= start:
            raise ApiError(400, f"to: must be after from ({iso(end)} is not after {iso(start)})", "to")
        longest = MAX_RANGE[what]
        if end - start > longest:
            raise ApiError(400, f"to: at most {longest.days} days after from, got {end - start}", "to")
        return start, end

    async def _records(self, request: web.Request, stream: str, what: str) -> web.Response:
        publisher, meter = await self._meter(request)
        start, end = self._range(request, publisher, what)
        rows = await self.repository.samples(publisher, meter, stream, start, end)
        return answer({
            "publisher": publisher, "meter": meter, "stream": stream, "from": iso(start), "to": iso(end),
            "fields": sorted({s.field for s in rows}), "records": _records(rows),
        })  # fmt: skip

    async def profile(self, request: web.Request) -> web.Response:
        stream = request.query.get("stream", "lp1")
        if stream not in PROFILE_STREAMS:
            known = ", ".join(PROFILE_STREAMS)
            raise ApiError(400, f"stream: expected one of {known}, got {stream!r}", "stream")
        return await self._records(request, stream, "profile")

    async def minute(self, request: web.Request) -> web.Response:
        return await self._records(request, "minute", "minute")

    async def events(self, request: web.Request) -> web.Response:
        publisher, meter = await self._meter(request)
        start, end = self._range(request, publisher, EVENTS)
        found = await self.repository.events(publisher, meter, start, end)
        return answer({
            "publisher": publisher, "meter": meter, "from": iso(start), "to": iso(end),
            "events": [
                {"time": iso(e.time), "code": e.code, "severity": e.severity, "message": e.message,
                 "meter_status": e.meter_status}
                for e in found
            ],
        })  # fmt: skip

    async def completeness(self, request: web.Request) -> web.Response:
        publisher, meter = await self._meter(request)
        day = _day(request.query.get("day"))
        site = self.config.site(publisher)
        zone = ZoneInfo(site.timezone)
        [d] = await meter_days(self.repository, publisher, meter, [day], zone, self.clock.now())
        return answer({
            "publisher": publisher, "meter": meter, "day": day.isoformat(), "timezone": site.timezone,
            "periods": d.periods, "expected": d.expected, "stored": d.stored,
            "missing": [iso(t) for t in d.missing], "not_recorded": [iso(t) for t in d.not_recorded],
            "percent": d.percent,
        })  # fmt: skip

    # -- export ----------------------------------------------------------------------------

    async def export(self, request: web.Request) -> web.Response:
        day = _day(request.query.get("day"))
        sites = request.query.getall("site", [])
        if sites:
            _states, meters = await self._fleet()
            for publisher in sites:
                if publisher not in meters:
                    raise ApiError(404, f"no site {publisher!r}", "site")
        text = await export_day(self.repository, self.config, day, sites)
        name = f"smx-headend-{day.isoformat()}{'-' + sites[0] if len(sites) == 1 else ''}.csv"
        return web.Response(
            text=text,
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


def _records(rows: list[Sample]) -> list[dict[str, Any]]:
    """Samples (one per field) as records (one per time): the values by field, the status."""
    out: list[dict[str, Any]] = []
    last: datetime | None = None
    for s in rows:  # ordered by time, then field
        if s.time != last:
            out.append({"time": iso(s.time), "values": {}, "status": s.status})
            last = s.time
        out[-1]["values"][s.field] = s.value
    return out


class FleetServer:
    """Serves :class:`FleetApi` on ``[http] listen`` until stopped."""

    def __init__(self, api: FleetApi, host: str, port: int) -> None:
        self.api = api
        self.host = host
        self.port = port
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(self.api.app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as err:
            await runner.cleanup()
            raise OSError(
                err.errno, f"cannot serve the fleet page at {self.host}:{self.port}: {err.strerror}"
            ) from err
        self._runner = runner
        port = runner.addresses[0][1] if runner.addresses else self.port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
