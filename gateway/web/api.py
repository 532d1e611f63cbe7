"""The REST API and the local web page (aiohttp, in the gateway's event loop; DESIGN §7).

Every route is declared in :mod:`gateway.web.openapi` (served at ``/api/openapi.json``)
and a contract test checks each response against it. Errors are JSON,
``{"status": 422, "error": "<precise message>", "field": "values"}``, with the right 4xx:
400 for a request that cannot be understood (not JSON, a key missing, unknown or of the
wrong JSON type, a bad path or query parameter), 404 for what does not exist, 409 for a
day already notified without ``replace``, 413 for a body too large, 415 for a body that
is not ``application/json``, 422 for a well-formed request the market refuses (wrong
length, a value that is not a finite number, an unknown unit, a past day, out of
bounds). 503 says the archive cannot be read or written (a full disk), 500 is our bug
(JSON too, the traceback in the log). Nothing stored changes on an error.

File I/O (archive reads, profile files) runs in worker threads; archive downloads are
aiohttp's ``FileResponse`` (sendfile, HTTP Range and conditional requests).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway import __version__
from gateway.alarms.condition import EVENT_ID_UNKNOWN, ConditionError
from gateway.alarms.service import AlarmService
from gateway.archive import query
from gateway.archive.aggregates import Result, status_name
from gateway.archive.files import DAY_FILE
from gateway.archive.query import PAGE_LIMIT, ArchiveQueries, Refusal, SeriesKey, Span
from gateway.archive.recorder import ArchiveStatus
from gateway.clock import Clock
from gateway.config import GatewayConfig
from gateway.errors import ArchiveError, GatewayError, MarketInputError
from gateway.events import describe
from gateway.httpjson import ApiError, json_errors, parse_time, private_headers, query_int
from gateway.jsonbody import (
    MAX_BODY,
    PROFILE_KEYS,
    PROFILE_REQUIRED,
    BodyError,
    Types,
    json_object,
    too_large,
)
from gateway.market.advice import Advice
from gateway.market.desk import MarketDesk
from gateway.market.external import ExternalData
from gateway.market.periods import parse_day
from gateway.meter.model import Snapshot
from gateway.obis import Obis
from gateway.quality.en50160 import WeekReport, report_csv
from gateway.quality.service import PowerQuality
from gateway.security.auth import UserDirectory
from gateway.security.netbind import is_address, listening_socket
from gateway.streams import STREAMS, history_stream
from gateway.uplink.status import UplinkStatus
from gateway.web import views
from gateway.web.live import LiveHub, encode_event
from gateway.web.openapi import AGGREGATE_NAMES, MINUTE_SERIES, document
from gateway.web.sessions import WebSessions, WebUser

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: The API's aggregate names -> those of OPC 10000-13 ("delta_bounds" -> "DeltaBounds").
AGGREGATES = {name: name.title().replace("_", "") for name in AGGREGATE_NAMES}
NO_ARCHIVE = "no archive is configured ([archive] path is empty)"
MIN_INTERVAL_S, MAX_INTERVAL_S = 0.001, 100 * 366 * 86400.0
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
ARCHIVE_STREAMS = tuple(str(s.id) for s in STREAMS)
#: The operators' answers to an alarm (OPC 10000-9 5.7.3, 5.7.4, 5.5.5) by their REST name.
ALARM_METHODS = {"acknowledge": "Acknowledge", "confirm": "Confirm", "comment": "AddComment"}
#: What a refused history query says to the client (the input at fault, the message).
_REFUSALS = {
    Refusal.BAD_CURSOR: ("cursor", "cursor: not a cursor of this request"),
    Refusal.INVALID_RANGE: ("", "start and end must differ"),
}
#: The logged-in user of a request (None: anonymous), set by the access middleware.
USER: web.RequestKey[WebUser | None] = web.RequestKey("user")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=views.dumps)


def _reason(request: web.Request, err: web.HTTPException) -> str:
    """What an HTTP error of aiohttp's says: its text if it has its own, else its reason."""
    if err.status == 413:
        return too_large(MAX_BODY)
    return err.text if err.text and not err.text.startswith(str(err.status)) else err.reason


#: Every error as JSON (the access middleware's refusals, Denied, are ApiErrors).
_errors = json_errors(views.dumps, log, reason=_reason, unavailable=ArchiveError)


# -- request parsing ---------------------------------------------------------------------


def _time(text: str, name: str) -> datetime:
    return parse_time(text, name, "2026-11-26T14:00:00Z")


def _query_time(request: web.Request, name: str, default: datetime | None = None) -> datetime | None:
    text = request.query.get(name)
    return default if text is None else _time(text, name)


def _flag(request: web.Request, name: str) -> bool:
    text = request.query.get(name, "false")
    if text not in ("true", "false"):
        raise ApiError(400, f"{name}: expected true or false, got {text!r}", name)
    return text == "true"


def _duration(text: str, name: str) -> timedelta:
    """An ISO 8601 duration (PT15M, P1D) or seconds (900)."""
    try:
        seconds = float(text)
    except ValueError:
        m = _DURATION.match(text)
        if not m or text in ("P", "PT"):
            raise ApiError(
                400, f"{name}: expected an ISO 8601 duration like PT15M or seconds, got {text!r}", name
            ) from None
        d, h, mi, s = m.groups()
        seconds = int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)
    if not math.isfinite(seconds) or not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise ApiError(400, f"{name}: expected a duration from 1 ms to 100 years, got {text!r}", name)
    return timedelta(seconds=seconds)


def _day(text: str) -> date:
    try:
        return parse_day(text)
    except MarketInputError as err:
        raise ApiError(400, str(err), "day") from None


async def _body(
    request: web.Request, allowed: Mapping[str, Types], required: tuple[str, ...]
) -> dict[str, Any]:
    """The request's JSON object, checked for its form (:func:`gateway.jsonbody.json_object`)."""
    raw = await request.read() if request.content_type == "application/json" else b""
    try:
        return json_object(request.content_type, raw, allowed, required)
    except BodyError as err:
        raise ApiError(err.status, str(err), err.field) from None


def _number(r: Result) -> float | int | None:
    """A result's value in JSON: Count is an integer (Int32 over OPC UA), the rest numbers."""
    return int(r.value) if r.integer and r.value is not None else r.value


async def _answer(read: Callable[[Any, bytes | None], Any], question: Any, cursor: bytes | None) -> Any:
    """``read(question, cursor)`` in a worker thread (file reads); a refusal is a 400 naming why."""
    try:
        return await asyncio.to_thread(read, question, cursor)
    except query.QueryError as err:
        field, message = _REFUSALS.get(err.refusal, ("", str(err)))
        raise ApiError(400, message, field) from None


def _cursor(point: bytes | None) -> str | None:
    return None if point is None else base64.urlsafe_b64encode(point).decode("ascii").rstrip("=")


def _point(request: web.Request) -> bytes | None:
    text = request.query.get("cursor")
    if text is None:
        return None
    try:
        # validate=True: the lenient decoder drops foreign characters, so "!!!" would be an
        # empty cursor, i.e. the first page again, and a client following cursors would loop.
        point = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except ValueError:
        point = b""
    if not point:
        raise ApiError(400, "cursor: not a cursor this API returned", "cursor")
    return point


# -- the API -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebServices:
    """The services of the running gateway the web adapter translates HTTP to."""

    config: GatewayConfig
    clock: Clock
    users: UserDirectory
    desk: MarketDesk
    external: ExternalData
    #: The archive's history, None when no archive is configured.
    history: ArchiveQueries | None
    #: The archive's root folder (the day files to download), None without an archive.
    archive_root: Path | None
    #: The state of a meter's archive (None: it has none).
    archive_status: Callable[[str], ArchiveStatus | None]
    #: The OPC UA endpoint clients connect to.
    endpoint: str
    #: The uplink's state (None: no uplink configured).
    uplink_status: Callable[[], UplinkStatus | None] = lambda: None
    #: The alarm conditions (None: not running).
    alarms: AlarmService | None = None
    #: EN 50160 weeks (None without an archive).
    quality: PowerQuality | None = None


class WebApi:
    """Routes of the REST API and the page, over the gateway's services."""

    def __init__(self, services: WebServices) -> None:
        self.services = services
        self._meters = {m.id: m for m in services.config.meters}
        #: The live feed; an advice listener of the market desk (the snapshot with its advice).
        self.hub = LiveHub(self.render)
        self.document = document()
        security = services.config.security
        self.sessions = WebSessions(
            services.users, anonymous=security.anonymous, secure=services.config.web.https
        )
        app = web.Application(middlewares=[_errors, self._access], client_max_size=MAX_BODY)
        r = app.router
        r.add_get("/", self.page)
        r.add_static("/static", STATIC, append_version=True)
        r.add_get("/api", self.index)
        r.add_get("/api/openapi.json", self.openapi)
        r.add_post("/api/login", self.login)
        r.add_post("/api/logout", self.logout)
        r.add_get("/api/session", self.session)
        r.add_get("/api/live", self.live)
        r.add_get("/api/meters", self.meters)
        r.add_get("/api/meters/{meter}", self.meter)
        r.add_get("/api/meters/{meter}/snapshot", self.snapshot)
        r.add_get("/api/meters/{meter}/values/{obis}", self.value)
        r.add_get("/api/meters/{meter}/history/{obis}", self.history)
        r.add_get("/api/meters/{meter}/events", self.events)
        r.add_get("/api/meters/{meter}/advice", self.advice)
        r.add_get("/api/meters/{meter}/profiles", self.profiles)
        r.add_get("/api/meters/{meter}/profiles/{day}", self.profile)
        r.add_put("/api/meters/{meter}/profiles/{day}", self.put_profile)
        r.add_get("/api/meters/{meter}/archive", self.archive)
        r.add_get("/api/meters/{meter}/archive/{stream}/{name}", self.download)
        r.add_get("/api/alarms", self.alarms)
        r.add_post("/api/alarms/{source}/{condition}/{method}", self.answer_alarm)
        r.add_get("/api/meters/{meter}/power-quality", self.power_quality)
        r.add_get("/api/meters/{meter}/power-quality.csv", self.power_quality_csv)
        r.add_get("/api/external", self.externals)
        r.add_get("/api/external/{name}", self.external)
        r.add_put("/api/external/{name}", self.put_external)
        app.on_shutdown.append(self._closing)
        app.on_response_prepare.append(private_headers)
        self.app = app
        self.on_external: list[Callable[[], Awaitable[None]]] = []

    async def _closing(self, _app: web.Application) -> None:
        self.hub.close()

    @web.middleware
    async def _access(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        user: WebUser | None = await self.sessions.check(request)
        request[USER] = user
        return await handler(request)

    # -- logins -----------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.Response:
        body = await _body(request, {"user": "string", "password": "string"}, ("user", "password"))
        self.sessions.logout(request)  # a new login never keeps the old token alive
        user, token = await self.sessions.login(request, body["user"], body["password"])
        response = _json(self._session_json(user))
        self.sessions.set_cookie(response, token)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        self.sessions.logout(request)
        response = _json(self._session_json(None))
        self.sessions.clear_cookie(response)
        return response

    async def session(self, request: web.Request) -> web.Response:
        return _json(self._session_json(request[USER]))

    def _session_json(self, user: WebUser | None) -> dict[str, Any]:
        return {
            "user": user.name if user else None,
            "role": str(user.role) if user else None,
            "anonymous_read": self.sessions.anonymous,
        }

    # -- helpers ----------------------------------------------------------------------------

    def _meter_id(self, request: web.Request) -> str:
        mid = request.match_info["meter"]
        if mid not in self._meters:
            known = ", ".join(self._meters)
            raise ApiError(404, f"no meter {mid!r} (known: {known})", "meter")
        return mid

    def _obis(self, request: web.Request) -> Obis:
        text = request.match_info["obis"]
        try:
            return Obis.parse(text)
        except (ValueError, GatewayError) as err:
            raise ApiError(400, f"obis: {err}", "obis") from None

    def _archive_root(self) -> Path:
        if self.services.archive_root is None:
            raise ApiError(404, NO_ARCHIVE)
        return self.services.archive_root

    def _history(self) -> ArchiveQueries:
        if self.services.history is None:
            raise ApiError(404, NO_ARCHIVE)
        return self.services.history

    # -- page and index ---------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def index(self, request: web.Request) -> web.Response:
        return _json({
            "product": "SMX gateway", "version": __version__, "opcua": self.services.endpoint,
            "meters": list(self._meters), "openapi": "/api/openapi.json",
            "market": {"period_minutes": self.services.config.market.period_minutes,
                       "timezone": self.services.config.market.timezone},
        })  # fmt: skip

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(self.document)

    # -- meters -----------------------------------------------------------------------------

    def _meter_json(self, mid: str) -> dict[str, Any]:
        latest = self.hub.latest.get(mid)
        body = views.identity(self._meters[mid], latest.info if latest else None)
        diag = latest.diagnostics if latest else None
        body["time"] = views.iso(latest.time) if latest else None
        body["status"] = (
            None
            if diag is None
            else views.diagnostics(
                diag, self.services.archive_status(mid), self.services.uplink_status(), mid
            )
        )
        return body

    async def meters(self, request: web.Request) -> web.Response:
        return _json([self._meter_json(mid) for mid in self._meters])

    async def meter(self, request: web.Request) -> web.Response:
        return _json(self._meter_json(self._meter_id(request)))

    def _latest(self, mid: str) -> Snapshot:
        latest = self.hub.latest.get(mid)
        if latest is None:
            raise ApiError(404, f"meter {mid!r} has not been read yet")
        return latest

    async def snapshot(self, request: web.Request) -> web.Response:
        return _json(views.snapshot(self._latest(self._meter_id(request))))

    async def value(self, request: web.Request) -> web.Response:
        mid = self._meter_id(request)
        obis = self._obis(request)
        reading = self._latest(mid).readings.get(obis)
        if reading is None:
            raise ApiError(404, f"meter {mid!r} has no value {obis}", "obis")
        return _json(views.reading(reading))

    # -- history and events -----------------------------------------------------------------

    async def history(self, request: web.Request) -> web.Response:
        """Raw or aggregated history: the archive's queries, with the OPC UA semantics."""
        mid = self._meter_id(request)
        obis = self._obis(request)
        history = self._history()
        series = self._series(mid, obis, request.query.get("minute"))
        start = _query_time(request, "start")
        if start is None:
            raise ApiError(400, "start: required (ISO 8601 UTC time)", "start")
        end = _query_time(request, "end", self.services.clock.now())
        assert end is not None
        cursor = _point(request)
        name = request.query.get("aggregate")
        if name is None:
            span = Span(start, end, query_int(request, "limit", PAGE_LIMIT, 1, PAGE_LIMIT))
            page = await _answer(history.raw, query.RawQuery(series, span, _flag(request, "bounds")), cursor)
        else:
            if name not in AGGREGATES:
                raise ApiError(
                    400, f"aggregate: expected one of {', '.join(AGGREGATES)}, got {name!r}", "aggregate"
                )
            text = request.query.get("interval")
            if text is None:
                raise ApiError(400, "interval: required with aggregate (e.g. PT15M)", "interval")
            step = _duration(text, "interval")
            if (abs(end - start) / step) > 100_000:
                raise ApiError(
                    400, "interval: more than 100000 intervals; choose a longer interval", "interval"
                )
            processed = query.ProcessedQuery(series, start, end, AGGREGATES[name], step)
            page = await _answer(history.processed, processed, cursor)
        unit = views.INFO[obis].unit if obis in views.INFO else ""
        return _json({
            "meter": mid, "obis": str(obis), "unit": unit, "aggregate": name,
            "values": [
                {"time": views.iso(r.time), "value": _number(r), "status": status_name(r.status)}
                for r in page.values
            ],
            "next": _cursor(page.cursor),
        })  # fmt: skip

    def _series(self, mid: str, obis: Obis, minute: str | None = None) -> SeriesKey:
        """The archived series of ``obis``: the meter's value, or a load-profile channel;
        with ``minute``, a column of a 1-second value's minute records."""
        stream = history_stream(obis)
        values = self._meters[mid].values
        if stream is None or (values and obis in views.INFO and obis not in values):
            raise ApiError(404, f"meter {mid!r} keeps no history of {obis}", "obis")
        if minute is None:
            return SeriesKey(mid, stream, obis)
        if minute not in MINUTE_SERIES:
            raise ApiError(
                400, f"minute: expected one of {', '.join(MINUTE_SERIES)}, got {minute!r}", "minute"
            )
        try:
            return SeriesKey(mid, stream, obis, MINUTE_SERIES[minute])
        except ValueError:
            raise ApiError(
                400, f"minute: {obis} is not a 1-second value (no minute records)", "minute"
            ) from None

    async def events(self, request: web.Request) -> web.Response:
        mid = self._meter_id(request)
        history = self._history()
        start = _query_time(request, "start")
        if start is None:
            raise ApiError(400, "start: required (ISO 8601 UTC time)", "start")
        end = _query_time(request, "end", self.services.clock.now())
        span = Span(start, end, query_int(request, "limit", 500, 1, PAGE_LIMIT))
        page = await _answer(history.events, query.EventQuery(mid, span), _point(request))
        found = [
            {"time": views.iso(e.time), "code": e.code, "name": (info := describe(e.code)).name,
             "severity": info.severity, "status": e.status}
            for e in page.events
        ]  # fmt: skip
        return _json({"meter": mid, "events": found, "next": _cursor(page.cursor)})

    # -- market -----------------------------------------------------------------------------

    async def advice(self, request: web.Request) -> web.Response:
        mid = self._meter_id(request)
        desk = self.services.desk
        at = _query_time(request, "at")
        try:
            found = await desk.advice_at(mid, at)
        except MarketInputError as err:
            raise ApiError(422, str(err), "at") from None
        return _json(views.advice(mid, found))

    async def profiles(self, request: web.Request) -> web.Response:
        mid = self._meter_id(request)
        desk = self.services.desk
        days = await desk.days(mid)
        today = desk.calendar.day_of(self.services.clock.now())
        upcoming = [today + timedelta(days=n) for n in range(-1, 8)]
        return _json({
            "meter": mid, "period_minutes": desk.calendar.period_minutes,
            "timezone": self.services.config.market.timezone, "today": today.isoformat(),
            "days": [d.isoformat() for d in days],
            "upcoming": [{"day": d.isoformat(), "periods": desk.calendar.periods_in(d)} for d in upcoming],
        })  # fmt: skip

    async def profile(self, request: web.Request) -> web.Response:
        mid = self._meter_id(request)
        day = _day(request.match_info["day"])
        desk = self.services.desk
        found = await desk.load(mid, day)
        if found is None:
            raise ApiError(404, f"no profile notified for {day}", "day")
        return _json(views.profile(mid, found, desk.calendar))

    async def put_profile(self, request: web.Request) -> web.Response:
        mid = self._meter_id(request)
        day = _day(request.match_info["day"])
        body = await _body(request, PROFILE_KEYS, PROFILE_REQUIRED)
        desk = self.services.desk
        try:
            stored, replaced = await desk.register(mid, day, body["values"], body.get("unit", "kWh"),
                                                   replace=body.get("replace", False))  # fmt: skip
        except MarketInputError as err:
            status = 409 if err.field == "replace" else 422
            raise ApiError(status, str(err), err.field) from None
        return _json(views.profile(mid, stored, desk.calendar), 200 if replaced else 201)

    # -- external data ----------------------------------------------------------------------

    async def externals(self, request: web.Request) -> web.Response:
        now = self.services.clock.now()
        return _json([views.external(s) for s in self.services.external.states(now)])

    def _external_name(self, request: web.Request) -> str:
        name = request.match_info["name"]
        if name not in self.services.external.configs:
            known = ", ".join(self.services.external.configs) or "none configured"
            raise ApiError(404, f"no external value {name!r} (known: {known})", "name")
        return name

    async def external(self, request: web.Request) -> web.Response:
        name = self._external_name(request)
        return _json(views.external(self.services.external.state(name, self.services.clock.now())))

    async def put_external(self, request: web.Request) -> web.Response:
        name = self._external_name(request)
        body = await _body(request, {"value": "number", "time": "string"}, ("value",))
        at = _time(body["time"], "time") if "time" in body else None
        now = self.services.clock.now()
        try:
            self.services.external.put(name, body["value"], now=now, time=at, origin="rest")
        except MarketInputError as err:
            raise ApiError(422, str(err), err.field) from None
        for changed in self.on_external:
            await changed()
        return _json(views.external(self.services.external.state(name, now)))

    # -- alarms and power quality -----------------------------------------------------------

    def _alarm_service(self) -> AlarmService:
        if self.services.alarms is None:
            raise ApiError(503, "the alarms are not running")
        return self.services.alarms

    async def alarms(self, request: web.Request) -> web.Response:
        """The retained conditions (active, or awaiting acknowledgement or confirmation),
        most severe first, as ConditionRefresh shows them."""
        shown = sorted(self._alarm_service().retained(), key=lambda n: (-n.severity, n.source, n.condition))
        return _json({"alarms": [views.alarm(n) for n in shown]})

    async def answer_alarm(self, request: web.Request) -> web.Response:
        service = self._alarm_service()
        source, name = request.match_info["source"], request.match_info["condition"]
        method = ALARM_METHODS.get(request.match_info["method"])
        if method is None:
            known = ", ".join(ALARM_METHODS)
            raise ApiError(
                404, f"no alarm method {request.match_info['method']!r} (known: {known})", "method"
            )
        try:
            service.condition(source, name)
        except KeyError as err:
            raise ApiError(404, str(err.args[0]), "condition") from None
        body = await _body(request, {"event_id": "string", "comment": "string"}, ("event_id",))
        try:
            event_id = bytes.fromhex(body["event_id"])
        except ValueError:
            raise ApiError(400, "event_id: expected the hex EventId of a notification", "event_id") from None
        user = request[USER]
        try:
            n = await service.answer(
                method, source, name, event_id, body.get("comment", ""), user.name if user else ""
            )
        except ConditionError as err:
            status = 422 if err.status == EVENT_ID_UNKNOWN else 409
            raise ApiError(status, f"{err.status}: {err.why}", "event_id") from None
        return _json(views.alarm(n))

    async def _week(self, request: web.Request) -> tuple[str, str, WeekReport]:
        mid = self._meter_id(request)
        which = request.query.get("week", "running")
        if which not in ("running", "last"):
            raise ApiError(400, f"week: expected running or last, got {which!r}", "week")
        if self.services.quality is None or mid not in self.services.quality.meters():
            raise ApiError(503, "power quality needs the archive ([archive] path)")
        return mid, which, await self.services.quality.week(mid, last=which == "last")

    async def power_quality(self, request: web.Request) -> web.Response:
        mid, which, report = await self._week(request)
        return _json(views.power_quality(mid, report, which))

    async def power_quality_csv(self, request: web.Request) -> web.Response:
        mid, _which, report = await self._week(request)
        zone = self.services.quality.zones.get(mid) if self.services.quality else None
        monday = report.start.astimezone(zone).date() if zone else report.start.date()
        name = f"{mid}-en50160-{monday.isoformat()}.csv"  # the week's Monday in the meter's zone
        return web.Response(
            body=report_csv(report).encode(),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # -- archive files ----------------------------------------------------------------------

    async def archive(self, request: web.Request) -> web.Response:
        mid = self._meter_id(request)
        root = self._archive_root()

        def listing() -> list[dict[str, Any]]:
            files = []
            for stream in ARCHIVE_STREAMS:
                folder = root / mid / stream
                try:
                    names = sorted(n for n in os.listdir(folder) if DAY_FILE.match(n))
                except FileNotFoundError:
                    continue
                for name in names:
                    try:
                        st = os.stat(folder / name)
                    except FileNotFoundError:
                        continue  # pruned meanwhile
                    files.append({
                        "stream": stream, "day": name[:10], "name": name, "size": st.st_size,
                        "modified": views.iso(datetime.fromtimestamp(st.st_mtime, UTC)),
                        "url": f"/api/meters/{mid}/archive/{stream}/{name}",
                    })  # fmt: skip
            return files

        return _json({"meter": mid, "files": await asyncio.to_thread(listing)})

    async def download(self, request: web.Request) -> web.StreamResponse:
        mid = self._meter_id(request)
        root = self._archive_root()
        stream, name = request.match_info["stream"], request.match_info["name"]
        if stream not in ARCHIVE_STREAMS:
            raise ApiError(
                404, f"no archive stream {stream!r} (known: {', '.join(ARCHIVE_STREAMS)})", "stream"
            )
        if not DAY_FILE.match(name):
            raise ApiError(404, f"no archive file {name!r} (names are YYYY-MM-DD.csv)", "name")
        path = root / mid / stream / name
        if not await asyncio.to_thread(path.is_file):
            raise ApiError(404, f"no archive file {stream}/{name}", "name")
        headers = {"Content-Disposition": f'attachment; filename="{mid}-{stream}-{name}"'}
        return web.FileResponse(path, headers=headers)

    # -- live feed --------------------------------------------------------------------------

    async def live(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: ``snapshot`` (values, advice, external data) per meter and second."""
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
        })  # fmt: skip
        await response.prepare(request)
        queue = self.hub.listen()
        try:
            # The newest state at once, so a page does not wait a second for its first values.
            for snap in list(self.hub.latest.values()):
                await response.write(
                    encode_event("snapshot", self.render(snap, self.hub.advice.get(snap.meter_id)))
                )
            while True:
                message = await queue.get()
                if self.hub.closed(message):
                    break
                await response.write(message)
        except ConnectionResetError:
            pass  # the client went away
        finally:
            self.hub.leave(queue)
        return response

    def render(self, snap: Snapshot, advice: Advice | None) -> dict[str, Any]:
        """One live message: the snapshot, the meter's status, the advice computed from the
        snapshot, the external data."""
        mid = snap.meter_id
        now = self.services.clock.now()
        body = views.snapshot(snap)
        body["status"] = views.diagnostics(
            snap.diagnostics, self.services.archive_status(mid), self.services.uplink_status(), mid
        )
        body["advice"] = views.advice(mid, advice) if advice is not None else None
        body["external"] = [views.external(s) for s in self.services.external.states(now)]
        return body


class WebServer:
    """Serves :class:`WebApi` on the configured address until stopped."""

    def __init__(self, api: WebApi, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.api = api
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(self.api.app, access_log=None)
        await runner.setup()
        site: web.BaseSite
        try:
            if is_address(self.host):  # bound with IP_FREEBIND: a tunnel address may come later
                sock = listening_socket(self.host, self.port)
                site = web.SockSite(runner, sock, ssl_context=self.ssl_context)
            else:
                site = web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context)
            await site.start()
        except OSError as err:
            await runner.cleanup()
            raise OSError(
                err.errno, f"cannot serve the web page at {self.host}:{self.port}: {err.strerror}"
            ) from err
        self._runner = runner
        addresses = runner.addresses
        port = addresses[0][1] if addresses else self.port
        scheme = "https" if self.ssl_context is not None else "http"
        self.url = f"{scheme}://{self.host}:{port}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
