"""The portfolios' REST routes (issue 18; DESIGN §12): HTTP in, :class:`PortfolioService` calls,
JSON out. No rule of its own: definitions pass :func:`~headend.portfolio.model.parse_portfolio`
(through the service), schedules the gateway's :func:`~gateway.market.profiles.make_profile`,
and a schedule's body the same form checks as the gateway's profile PUT
(:mod:`gateway.jsonbody`), so both refuse the same bodies with the same statuses and words:

* 400 a request that cannot be understood (not JSON, a key unknown, missing or of the wrong
  JSON type, a malformed day or time, a name in the body other than the path's);
* 404 an unknown portfolio (or schedule); 409 a name of the configuration file, or a day
  already registered without ``replace``; 413 too large; 415 not ``application/json``;
* 422 what the market's rules refuse (the field named), a time outside the running period.

Nothing is stored on an error. Writes take the same access rule as reads (the bearer token
wherever ``[http] token_file`` is set, which it must be off loopback).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from gateway.errors import MarketInputError
from gateway.httpjson import ApiError, query_int
from gateway.jsonbody import MAX_BODY, PROFILE_KEYS, PROFILE_REQUIRED, BodyError, Types, json_object
from gateway.market.periods import MarketCalendar, parse_day
from gateway.market.profiles import NotifiedProfile
from headend.config import HeadendConfig
from headend.portfolio.aggregate import Aggregate, MemberView, PortfolioAdvice
from headend.portfolio.model import NAME, Portfolio
from headend.portfolio.service import PeriodView, PortfolioService
from headend.storage import AggregateRecord
from headend.web.answers import answer, iso, query_time

#: Largest definition body: 100,000 sites named one by one (tags scale further).
MAX_DEFINITION = 8 * 1024 * 1024
#: A definition's keys and their JSON types (what they may hold: parse_portfolio).
DEFINITION_KEYS: dict[str, Types] = {
    "name": "string", "period_minutes": "number", "timezone": "string", "sites": "array", "tags": "array",
    "description": "string", "limit_kw": ("number", "null"), "origin": "string",
}  # fmt: skip
#: The history's resolutions: seconds of a record (None: the settlement period), longest range,
#: default range.
RESOLUTIONS: dict[str, tuple[int | None, timedelta, timedelta]] = {
    "1min": (60, timedelta(days=2), timedelta(hours=1)),
    "period": (None, timedelta(days=31), timedelta(days=1)),
}
MEMBER_STATES = ("offline", "stale", "fresh")
MEMBERS_LIMIT, MEMBERS_MAX = 1000, 100_000
RANKING_LIMIT, RANKING_MAX = 10, 100
_NO_SERVICE = "this head-end runs no portfolio service"


def _finite(x: float | None) -> float | None:
    """A number an answer may hold (JSON has no NaN): None for a non-finite one."""
    return x if x is None or math.isfinite(x) else None


def aggregate_json(a: Aggregate) -> dict[str, Any]:
    return {
        "time": iso(a.time), "period_start": iso(a.period_start), "net_kw": a.net_kw,
        "measured_kw": a.measured_kw, "estimated_kw": a.estimated_kw, "uncertainty_kw": a.uncertainty_kw,
        "coverage": a.coverage, "members": a.members, "fresh": a.fresh, "stale": a.stale,
        "offline": a.offline, "unmeasured": a.unmeasured, "energy_kwh": a.energy_kwh,
        "energy_uncertainty_kwh": a.energy_uncertainty_kwh, "buckets": a.buckets,
        "buckets_reporting": a.buckets_reporting, "newest": iso(a.newest), "how": a.how,
    }  # fmt: skip


def advice_json(p: PortfolioAdvice) -> dict[str, Any]:
    a = p.advice
    return {
        "state": a.state.value, "text": p.text, "at": iso(a.at),
        "period": {"day": a.period.day.isoformat(), "number": a.period.number, "start": iso(a.period.start),
                   "end": iso(a.period.end)},
        "notified_kwh": _finite(a.notified_kwh), "measured_kwh": _finite(a.measured_kwh),
        "remaining_s": a.remaining_s, "current_kw": _finite(a.current_kw),
        "required_kw": _finite(a.required_kw), "projected_imbalance_kwh": _finite(a.projected_imbalance_kwh),
        "correction_kw": _finite(a.correction_kw),
        "coverage": p.coverage, "uncertainty_kwh": p.uncertainty_kwh, "members": p.members, "fresh": p.fresh,
    }  # fmt: skip


def schedule_json(name: str, p: NotifiedProfile, calendar: MarketCalendar) -> dict[str, Any]:
    """As the gateway's notified profile (``gateway/web/views.py``), of a portfolio."""
    return {
        "portfolio": name, "day": p.day.isoformat(), "period_minutes": p.period_minutes, "unit": "kWh",
        "total_kwh": sum(p.energy_kwh),
        "periods": [
            {"number": q.number, "start": iso(q.start), "end": iso(q.end), "energy_kwh": e}
            for q, e in zip(calendar.periods(p.day), p.energy_kwh, strict=True)
        ],
    }  # fmt: skip


def period_json(p: PeriodView) -> dict[str, Any]:
    return {
        "number": p.number, "start": iso(p.start), "end": iso(p.end), "notified_kwh": p.notified_kwh,
        "live_kwh": p.live_kwh, "live_uncertainty_kwh": p.live_uncertainty_kwh, "settled_kwh": p.settled_kwh,
        "settled_records": p.settled_records, "expected_records": p.expected_records, "complete": p.complete,
        "difference_kwh": p.difference_kwh, "coverage": p.coverage,
    }  # fmt: skip


def record_json(r: AggregateRecord) -> dict[str, Any]:
    return {
        "start": iso(r.start), "mean_kw": r.mean_kw, "min_kw": r.min_kw, "max_kw": r.max_kw,
        "coverage": r.coverage, "energy_kwh": r.energy_kwh, "uncertainty_kwh": r.uncertainty_kwh,
        "samples": r.samples,
    }  # fmt: skip


def _day(text: str) -> date:
    """A delivery day in the path: the market's own reading of it (400 otherwise)."""
    try:
        return parse_day(text)
    except MarketInputError as err:
        raise ApiError(400, str(err), "day") from None


async def _body(request: web.Request, allowed: Mapping[str, Types], required: tuple[str, ...],
                limit: int) -> dict[str, Any]:  # fmt: skip
    raw = await request.read() if request.content_type == "application/json" else b""
    try:
        return json_object(request.content_type, raw, allowed, required, limit=limit)
    except BodyError as err:
        raise ApiError(err.status, str(err), err.field) from None


class PortfolioRoutes:
    """The ``/api/portfolios`` routes over a :class:`PortfolioService` (None: the instance runs
    none; the list is empty and every portfolio unknown)."""

    def __init__(self, config: HeadendConfig, service: PortfolioService | None) -> None:
        self.config = config
        self.service = service

    def add_to(self, router: web.UrlDispatcher) -> None:
        r = router
        r.add_get("/api/portfolios", self.list)
        r.add_get("/api/portfolios/{name}", self.get)
        r.add_put("/api/portfolios/{name}", self.put)
        r.add_delete("/api/portfolios/{name}", self.delete)
        r.add_get("/api/portfolios/{name}/live", self.live)
        r.add_get("/api/portfolios/{name}/recent", self.recent)
        r.add_get("/api/portfolios/{name}/members", self.members)
        r.add_get("/api/portfolios/{name}/flexibility", self.flexibility)
        r.add_get("/api/portfolios/{name}/advice", self.advice)
        r.add_get("/api/portfolios/{name}/history", self.history)
        r.add_get("/api/portfolios/{name}/periods/{day}", self.periods)
        r.add_get("/api/portfolios/{name}/schedules", self.schedules)
        r.add_get("/api/portfolios/{name}/schedules/{day}", self.schedule)
        r.add_put("/api/portfolios/{name}/schedules/{day}", self.put_schedule)

    # -- helpers ------------------------------------------------------------------------------

    def _service(self) -> PortfolioService:
        if self.service is None:
            raise ApiError(404, _NO_SERVICE, "name")
        return self.service

    def _portfolio(self, request: web.Request) -> tuple[PortfolioService, Portfolio]:
        service = self._service()
        name = request.match_info["name"]
        try:
            return service, service.portfolio(name)
        except KeyError:
            known = ", ".join(sorted(service.portfolios)) or "none defined"
            raise ApiError(404, f"no portfolio {name!r} (known: {known})", "name") from None

    def _summary(self, service: PortfolioService, p: Portfolio) -> dict[str, Any]:
        a = service.aggregate(p.name)
        return {
            "name": p.name, "definition": p.as_json(), "members": len(service.members_of(p.name)),
            "aggregate": None if a is None else aggregate_json(a),
        }  # fmt: skip

    def _view(self, v: MemberView) -> dict[str, Any]:
        return {
            "publisher": v.publisher, "name": self.config.site(v.publisher).name, "bucket": v.bucket,
            "state": v.state, "power_kw": v.power_kw, "age_s": v.age_s, "change_kw": v.change_kw,
            "recent_kw": v.recent_kw,
        }  # fmt: skip

    # -- definitions --------------------------------------------------------------------------

    async def list(self, request: web.Request) -> web.Response:
        if self.service is None:
            return answer([])
        service = self.service
        return answer([self._summary(service, service.portfolios[n]) for n in sorted(service.portfolios)])

    async def get(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        body = self._summary(service, p)
        body["advice"] = advice_json(await service.advice(p.name))
        a = service.aggregate(p.name)
        body["how"] = (
            a.how if a is not None else "no aggregate yet: none computed since this instance started"
        )
        return answer(body)

    async def put(self, request: web.Request) -> web.Response:
        service = self._service()
        name = request.match_info["name"]
        if not NAME.match(name):
            raise ApiError(400, f"name: expected letters, digits, '_', '.', '-' (at most 64, a letter or "
                                f"digit first), got {name!r}", "name")  # fmt: skip
        body = await _body(request, DEFINITION_KEYS, (), MAX_DEFINITION)
        if body.setdefault("name", name) != name:
            raise ApiError(400, f"name: the body names {body['name']!r}, the path {name!r}", "name")
        if body.setdefault("origin", "rest") != "rest":
            raise ApiError(422, f"origin: a portfolio made through REST is of origin rest, got "
                                f"{body['origin']!r}", "origin")  # fmt: skip
        existing = service.portfolios.get(name)
        if existing is not None and existing.origin == "config":
            raise ApiError(
                409, f"name: {name!r} is defined in the configuration file; change it there", "name"
            )
        try:
            portfolio, created = await service.define(body)
        except MarketInputError as err:
            raise ApiError(422, str(err), err.field) from None
        return answer(self._summary(service, portfolio), 201 if created else 200)

    async def delete(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        if p.origin == "config":
            raise ApiError(409, f"name: {p.name!r} is defined in the configuration file; remove it there",
                           "name")  # fmt: skip
        await service.remove(p.name)
        return web.Response(status=204)

    # -- the live aggregate -------------------------------------------------------------------

    async def live(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        a = service.aggregate(p.name)
        advice = await service.advice(p.name)
        if a is None:
            counts = {"total": len(service.members_of(p.name)), "fresh": 0, "stale": 0, "offline": 0}
        else:
            counts = {"total": a.members, "fresh": a.fresh, "stale": a.stale, "offline": a.offline}
        return answer({
            "portfolio": p.name, "time": iso(service.clock.now()),
            "aggregate": None if a is None else aggregate_json(a), "advice": advice_json(advice),
            "coverage": 0.0 if a is None else a.coverage,
            "uncertainty_kw": 0.0 if a is None else a.uncertainty_kw,
            "uncertainty_kwh": advice.uncertainty_kwh, "members": counts,
            "how": "no aggregate yet" if a is None else a.how,
        })  # fmt: skip

    async def recent(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        since = query_time(request, "since")
        points = [
            {"time": iso(t), "net_kw": net, "measured_kw": measured, "coverage": coverage}
            for t, net, measured, coverage in service.recent(p.name)
            if since is None or t > since
        ]
        return answer({"portfolio": p.name, "points": points})

    async def members(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        state = request.query.get("state")
        if state is not None and state not in MEMBER_STATES:
            raise ApiError(400, f"state: expected one of {', '.join(MEMBER_STATES)}, got {state!r}", "state")
        limit = query_int(request, "limit", MEMBERS_LIMIT, 1, MEMBERS_MAX)
        views = service.members(p.name)
        counts = {s: sum(1 for v in views if v.state == s) for s in ("fresh", "stale", "offline")}
        order = {s: n for n, s in enumerate(MEMBER_STATES)}
        shown = sorted((v for v in views if state is None or v.state == state),
                       key=lambda v: (order.get(v.state, -1), v.publisher))  # fmt: skip
        return answer({
            "portfolio": p.name, "time": iso(service.clock.now()), "total": len(views), "counts": counts,
            "members": [self._view(v) for v in shown[:limit]],
        })  # fmt: skip

    async def flexibility(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        limit = query_int(request, "limit", RANKING_LIMIT, 1, RANKING_MAX)
        advice, ranking = await service.flexibility(p.name, limit)
        return answer({
            "portfolio": p.name, "advice": advice_json(advice),
            "ranking": [{**self._view(f.member), "reason": f.reason} for f in ranking],
        })  # fmt: skip

    async def advice(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        at = query_time(request, "time")
        try:
            found = await service.advice(p.name, at)
        except MarketInputError as err:
            raise ApiError(422, str(err), "time") from None
        return answer(advice_json(found))

    # -- what was stored ----------------------------------------------------------------------

    async def history(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        resolution = request.query.get("resolution", "1min")
        if resolution not in RESOLUTIONS:
            raise ApiError(400, f"resolution: expected 1min or period, got {resolution!r}", "resolution")
        seconds, longest, default = RESOLUTIONS[resolution]
        seconds = seconds or p.period_minutes * 60
        end = query_time(request, "end") or service.clock.now()
        start = query_time(request, "start") or end - default
        if end <= start:
            raise ApiError(400, f"end: must be after start ({iso(end)} is not after {iso(start)})", "end")
        if end - start > longest:
            raise ApiError(400, f"end: at most {longest.days} days after start with resolution "
                                f"{resolution}, got {end - start}", "end")  # fmt: skip
        records = await service.history(p.name, seconds, start, end)
        return answer({
            "portfolio": p.name, "resolution": resolution, "seconds": seconds, "start": iso(start),
            "end": iso(end), "records": [record_json(r) for r in records],
        })  # fmt: skip

    async def periods(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        day = _day(request.match_info["day"])
        found = await service.periods(p.name, day)
        return answer({
            "portfolio": p.name, "day": day.isoformat(), "period_minutes": p.period_minutes,
            "timezone": p.timezone, "periods": [period_json(v) for v in found],
        })  # fmt: skip

    # -- schedules ----------------------------------------------------------------------------

    async def schedules(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        calendar = p.calendar
        today = calendar.day_of(service.clock.now())
        days = await service.schedule_days(p.name)
        return answer({
            "portfolio": p.name, "period_minutes": p.period_minutes, "timezone": p.timezone,
            "today": today.isoformat(), "days": [d.isoformat() for d in days],
            "upcoming": [
                {"day": d.isoformat(), "periods": calendar.periods_in(d)}
                for d in (today + timedelta(days=n) for n in range(-1, 8))
            ],
        })  # fmt: skip

    async def schedule(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        day = _day(request.match_info["day"])
        found = await service.schedule(p.name, day)
        if found is None:
            raise ApiError(404, f"no schedule registered for {day}", "day")
        return answer(schedule_json(p.name, found, p.calendar))

    async def put_schedule(self, request: web.Request) -> web.Response:
        service, p = self._portfolio(request)
        day = _day(request.match_info["day"])
        body = await _body(request, PROFILE_KEYS, PROFILE_REQUIRED, MAX_BODY)
        try:
            stored, replaced = await service.register_schedule(
                p.name, day, body["values"], body.get("unit", "kWh"), replace=body.get("replace", False)
            )
        except MarketInputError as err:
            status = 409 if err.field == "replace" else 422
            raise ApiError(status, str(err), err.field) from None
        return answer(schedule_json(p.name, stored, p.calendar), 200 if replaced else 201)
