"""The portfolios' REST API (issue 18) against the OpenAPI document, on SQLite and PostgreSQL.

A real :class:`PortfolioService` aggregates the small fleet of tests/support/portfolio_fleet.py
in-process (buckets taken through the repository's leases, the members' live and register
messages handed over as its broker connection would, a tick every 10 s of a manual clock)
and the head-end's API serves it; every request goes through the contract-checking client
of tests/support/headend_api.py, so every answer (success or error) matches the document.

What the tests prove beyond the shapes: the numbers are the fleet's (the net power of the
members, the energy since the period's start, the advice's required power, the settled
load profiles against the live estimate); a schedule's body is taken and refused as the
gateway's notified profile is (the same cases, statuses, fields and words as the gateway's
tests/integration/test_rest_api.py, through the same code: gateway.jsonbody and the
market's make_profile); a definition is refused precisely; nothing is stored on an error;
the file's portfolios are read-only; writes need the bearer token where reads do.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from headend.web.portfolios import MAX_DEFINITION
from tests.support import fleet
from tests.support import portfolio_fleet as pf
from tests.support.headend_api import Api, operations, repository
from tests.support.rest_contract import AS_JSON, Refusal, all_refused, profile_refusals

pytestmark = pytest.mark.asyncio(loop_scope="module")

PORTFOLIOS = "/api/portfolios"
TOKEN = "portfolio-token-0123456789"
TOMORROW = pf.TODAY + timedelta(days=1)


@dataclass
class PortfolioApi(Api):
    """The contract-checking client, and the fed service behind the server it talks to."""

    fed: pf.Portfolios | None = None

    @property
    def scenario(self) -> pf.Portfolios:
        assert self.fed is not None
        return self.fed


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgres"])
async def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PortfolioApi]:
    work = tmp_path_factory.mktemp(f"portfolio-rest-{request.param}")
    async with contextlib.AsyncExitStack() as stack:
        repo = await stack.enter_async_context(repository(request.param, work, "portfolios"))
        portfolios = await stack.enter_async_context(pf.scenario(repo))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        url = portfolios.server.url
        async with session.get(url + "api/openapi.json") as resp:
            doc = await resp.json()
        yield PortfolioApi(session, url.rstrip("/"), doc, repo, fed=portfolios)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


# -- definitions and the live aggregate ------------------------------------------------------


async def test_every_portfolio_with_its_definition_members_and_latest_aggregate(api: PortfolioApi) -> None:
    answer = await api.call(PORTFOLIOS)
    assert answer.status == 200, answer.text
    north, south = answer.data
    assert north["definition"] == {
        "name": "north", "period_minutes": 15, "timezone": "Europe/Vienna", "sites": [], "tags": ["north"],
        "description": "The file's portfolio", "limit_kw": None, "origin": "config",
    }  # fmt: skip
    assert (north["members"], south["members"], south["definition"]["origin"]) == (4, 2, "rest")
    a = north["aggregate"]
    # 2 + 1.5 + 3 kW measured, site-4's 2.5 kW estimated from its last 15 minutes.
    assert (a["time"], a["measured_kw"], a["estimated_kw"], a["net_kw"]) == (iso(pf.NOW), 6.5, 2.5, 9.0)
    assert (a["fresh"], a["stale"], a["offline"], a["members"]) == (3, 1, 0, 4)
    assert south["aggregate"]["net_kw"] == pytest.approx(1.5 - 1.2)


async def test_a_portfolio_with_its_aggregate_advice_and_how_it_was_formed(api: PortfolioApi) -> None:
    answer = await api.call(f"{PORTFOLIOS}/north")
    assert answer.status == 200, answer.text
    data = answer.data
    assert data["how"] == data["aggregate"]["how"]
    assert data["how"].startswith("3 of 4 members measured")
    assert "1 stale and 0 offline estimated" in data["how"]
    advice = data["advice"]
    assert advice["state"] == "advised"
    assert advice["text"].startswith("reduce by 5.2 kW to 3.8 kW for the remaining 8 minutes")
    assert advice["text"].endswith("1 of 4 members estimated)")
    unknown = await api.call(f"{PORTFOLIOS}/nowhere")
    message = unknown.error(404, "name")
    assert "'nowhere'" in message
    assert "north, vpp-south" in message


async def test_live_the_aggregate_advice_coverage_uncertainty_and_counts(api: PortfolioApi) -> None:
    answer = await api.call(f"{PORTFOLIOS}/north/live")
    assert answer.status == 200, answer.text
    data = answer.data
    assert data["time"] == iso(pf.NOW)
    assert data["members"] == {"total": 4, "fresh": 3, "stale": 1, "offline": 0}
    assert 0.5 < data["coverage"] < 1
    assert data["uncertainty_kw"] == 2.5
    a, advice = data["aggregate"], data["advice"]
    # Since 10:00: site-1 0.25, site-2 0.1875, site-3 1 kW to 10:03 then 3 kW 0.275, site-4
    # 0.2708 measured to 10:06:30 and a minute estimated at 2.5 kW.
    assert a["energy_kwh"] == pytest.approx(1.025)
    assert a["energy_uncertainty_kwh"] == pytest.approx(2.5 / 60)
    assert advice["period"] == {"day": "2026-10-27", "number": 45, "start": "2026-10-27T10:00:00Z",
                                "end": "2026-10-27T10:15:00Z"}  # fmt: skip
    assert (advice["notified_kwh"], advice["remaining_s"], advice["current_kw"]) == (1.5, 450.0, 9.0)
    assert advice["measured_kwh"] == pytest.approx(1.025)
    assert advice["required_kw"] == pytest.approx((1.5 - 1.025) / (7.5 / 60))
    assert advice["correction_kw"] == pytest.approx(advice["required_kw"] - 9.0)
    assert data["uncertainty_kwh"] == advice["uncertainty_kwh"] == pytest.approx(2.5 / 60 + 2.5 * 7.5 / 60)
    south = await api.call(f"{PORTFOLIOS}/vpp-south/live")
    assert (south.data["advice"]["state"], south.data["how"]) == ("no-notification", "all 2 members measured")


async def test_recent_the_last_hour_a_point_a_tick(api: PortfolioApi) -> None:
    answer = await api.call(f"{PORTFOLIOS}/north/recent")
    assert answer.status == 200, answer.text
    points = answer.data["points"]
    assert len(points) == 136  # 09:45:00 to 10:07:30, every 10 s
    assert points[0] == {"time": "2026-10-27T09:45:00Z", "net_kw": 7.0, "measured_kw": 7.0, "coverage": 1.0}
    assert (points[-1]["time"], points[-1]["net_kw"], points[-1]["measured_kw"]) == (iso(pf.NOW), 9.0, 6.5)
    since = await api.call(f"{PORTFOLIOS}/north/recent", {"since": "2026-10-27T11:07:00+01:00"})
    assert [p["time"][11:19] for p in since.data["points"]] == ["10:07:10", "10:07:20", "10:07:30"]
    naive = await api.call(f"{PORTFOLIOS}/north/recent", {"since": "2026-10-27T10:07:00"})
    assert "offset" in naive.error(400, "since")


async def test_members_freshness_worst_first(api: PortfolioApi) -> None:
    answer = await api.call(f"{PORTFOLIOS}/north/members")
    assert answer.status == 200, answer.text
    data = answer.data
    assert (data["total"], data["counts"]) == (4, {"fresh": 3, "stale": 1, "offline": 0})
    rows = [(m["publisher"], m["name"], m["state"], m["power_kw"], m["age_s"]) for m in data["members"]]
    assert rows == [
        ("site-4", "House 4", "stale", 2.5, 60.0),
        ("site-1", "House 1", "fresh", 2.0, 0.0),
        ("site-2", "House 2", "fresh", 1.5, 0.0),
        ("site-3", "House 3", "fresh", 3.0, 0.0),
    ]
    assert data["members"][3]["change_kw"] == 2.0  # 3 kW now, 1 kW five minutes ago
    fresh = await api.call(f"{PORTFOLIOS}/north/members", {"state": "fresh", "limit": "2"})
    assert [m["publisher"] for m in fresh.data["members"]] == ["site-1", "site-2"]
    assert fresh.data["total"] == 4
    south = await api.call(f"{PORTFOLIOS}/vpp-south/members")
    assert [(m["publisher"], m["name"], m["power_kw"]) for m in south.data["members"]] == [
        ("site-2", "House 2", 1.5), ("site-5", "", -1.2)
    ]  # fmt: skip
    assert "offline, stale, fresh" in (await api.call(f"{PORTFOLIOS}/north/members", {"state": "old"})).error(
        400, "state"
    )
    for bad in ("0", "-1", "abc", "100001", "1e3"):
        assert "1..100000" in (await api.call(f"{PORTFOLIOS}/north/members", {"limit": bad})).error(
            400, "limit"
        )


async def test_flexibility_ranks_who_moved_against_the_advice(api: PortfolioApi) -> None:
    answer = await api.call(f"{PORTFOLIOS}/north/flexibility")
    assert answer.status == 200, answer.text
    assert answer.data["advice"]["correction_kw"] < 0  # draw less
    [first] = answer.data["ranking"]
    assert (first["publisher"], first["state"], first["change_kw"]) == ("site-3", "fresh", 2.0)
    assert first["reason"] == "its power rose by 2.00 kW to 3.00 kW while the portfolio should draw less"
    south = await api.call(f"{PORTFOLIOS}/vpp-south/flexibility", {"limit": "5"})
    assert south.data["ranking"] == []  # no schedule: nothing to steer to
    assert "1..100" in (await api.call(f"{PORTFOLIOS}/north/flexibility", {"limit": "101"})).error(
        400, "limit"
    )


async def test_advice_now_and_later_in_the_running_period(api: PortfolioApi) -> None:
    now = await api.call(f"{PORTFOLIOS}/north/advice")
    assert now.status == 200, now.text
    assert now.data["at"] == iso(pf.NOW)
    later = await api.call(f"{PORTFOLIOS}/north/advice", {"time": "2026-10-27T11:08:30+01:00"})
    assert later.status == 200, later.text
    # A minute on at 9 kW: 1.175 kWh measured, 6.5 minutes left for 0.325 kWh.
    assert later.data["at"] == "2026-10-27T10:08:30Z"
    assert later.data["measured_kwh"] == pytest.approx(1.175)
    assert later.data["required_kw"] == pytest.approx(3.0)
    naive = await api.call(f"{PORTFOLIOS}/north/advice", {"time": "2026-10-27T10:08:30"})
    assert "offset" in naive.error(400, "time")
    plus = await api.call(f"{PORTFOLIOS}/north/advice", {"time": "2026-10-27T11:08:30 01:00"})
    assert "%2B" in plus.error(400, "time")
    for outside in ("2026-10-27T10:15:00Z", "2026-10-27T10:07:00Z", "2026-10-28T10:00:00Z"):
        message = (await api.call(f"{PORTFOLIOS}/north/advice", {"time": outside})).error(422, "time")
        assert "not in the rest of the running period" in message
    assert "'x'" in (await api.call(f"{PORTFOLIOS}/x/advice")).error(404, "name")


# -- what was stored -------------------------------------------------------------------------


async def test_history_per_minute_and_per_period_from_the_database(api: PortfolioApi) -> None:
    minutes = await api.call(f"{PORTFOLIOS}/north/history")
    assert minutes.status == 200, minutes.text
    data = minutes.data
    assert (data["resolution"], data["seconds"], data["end"]) == ("1min", 60, iso(pf.NOW))
    # The minutes that ended: 09:45 to 10:06, six ticks each.
    records = data["records"]
    assert [r["start"] for r in records] == [iso(pf.START + timedelta(minutes=m)) for m in range(22)]
    assert {r["samples"] for r in records} == {6}
    assert (records[0]["mean_kw"], records[0]["min_kw"], records[0]["max_kw"]) == (7.0, 7.0, 7.0)
    assert records[0]["energy_kwh"] == pytest.approx(7.0 / 60)
    assert records[-1]["mean_kw"] == 9.0  # 10:06: site-4 still sending
    periods = await api.call(
        f"{PORTFOLIOS}/north/history",
        {"resolution": "period", "start": "2026-10-27T09:00:00Z", "end": "2026-10-27T11:00:00Z"},
    )
    [quarter] = periods.data["records"]  # 10:00-10:15 is still running
    assert (quarter["start"], quarter["samples"], periods.data["seconds"]) == (
        "2026-10-27T09:45:00Z",
        90,
        900,
    )
    assert quarter["energy_kwh"] == pytest.approx(7.0 / 4)
    cases = [
        ({"resolution": "5min"}, "resolution", "1min or period"),
        ({"start": "2026-10-27T10:00:00Z", "end": "2026-10-27T09:00:00Z"}, "end", "must be after start"),
        ({"start": "2026-10-20T10:00:00Z", "end": "2026-10-27T09:00:00Z"}, "end", "at most 2 days"),
        ({"resolution": "period", "start": "2026-08-01T00:00:00Z"}, "end", "at most 31 days"),
        ({"start": "2026-10-27T10:00:00"}, "start", "offset"),
        ({"end": "yesterday"}, "end", "ISO 8601"),
    ]
    for params, field, words in cases:
        assert words in (await api.call(f"{PORTFOLIOS}/north/history", params)).error(400, field)


async def test_periods_notified_live_settled_and_their_difference(api: PortfolioApi) -> None:
    answer = await api.call(f"{PORTFOLIOS}/north/periods/2026-10-27")
    assert answer.status == 200, answer.text
    periods = {p["number"]: p for p in answer.data["periods"]}
    assert len(periods) == 96
    closed = periods[44]  # 09:45-10:00 UTC: measured live, and every member's load profile stored
    assert (closed["start"], closed["notified_kwh"]) == ("2026-10-27T09:45:00Z", 1.5)
    assert (closed["settled_records"], closed["expected_records"]) == (4, 4)
    assert closed["complete"] is True
    assert closed["live_kwh"] == pytest.approx(1.75)
    assert closed["settled_kwh"] == pytest.approx(1.75)
    assert closed["difference_kwh"] == pytest.approx(0.0, abs=1e-6)
    assert closed["coverage"] == 1.0
    running = periods[45]
    assert (running["live_kwh"], running["settled_kwh"], running["complete"], running["difference_kwh"]) == (
        None, None, False, None
    )  # fmt: skip
    assert (periods[1]["settled_records"], periods[1]["coverage"]) == (0, None)
    south = await api.call(f"{PORTFOLIOS}/vpp-south/periods/2026-10-27")
    assert south.data["periods"][43]["notified_kwh"] is None
    assert south.data["periods"][43]["settled_kwh"] == pytest.approx((1.5 - 1.2) / 4)
    for bad in ("2026-13-01", "today", "27.10.2026"):
        assert "YYYY-MM-DD" in (await api.call(f"{PORTFOLIOS}/north/periods/{bad}")).error(400, "day")


# -- schedules -------------------------------------------------------------------------------


async def stored_schedules(api: PortfolioApi, name: str) -> tuple[list[date], Any]:
    return await api.repo.schedule_days(name), await api.repo.schedule(name, TOMORROW)


async def test_schedules_registered_read_and_listed(api: PortfolioApi) -> None:
    listing = await api.call(f"{PORTFOLIOS}/north/schedules")
    assert listing.status == 200, listing.text
    assert (listing.data["today"], listing.data["days"], listing.data["period_minutes"]) == (
        "2026-10-27", ["2026-10-27"], 15
    )  # fmt: skip
    assert [u["day"] for u in listing.data["upcoming"]][:2] == ["2026-10-26", "2026-10-27"]
    assert {u["periods"] for u in listing.data["upcoming"]} == {96}
    today = await api.call(f"{PORTFOLIOS}/north/schedules/2026-10-27")
    assert (today.data["total_kwh"], len(today.data["periods"])) == (96 * 1.5, 96)
    assert today.data["periods"][0] == {"number": 1, "start": "2026-10-26T23:00:00Z",
                                        "end": "2026-10-26T23:15:00Z", "energy_kwh": 1.5}  # fmt: skip
    values = [0.25 + (n % 8) * 0.125 for n in range(96)]
    path = f"{PORTFOLIOS}/vpp-south/schedules/{TOMORROW}"
    put = await api.call(path, method="PUT", json={"values": values})
    assert put.status == 201, put.text
    assert [p["energy_kwh"] for p in put.data["periods"]] == values
    assert (await api.call(path)).data == put.data
    kw = await api.call(
        path, method="PUT", json={"values": [4 * v for v in values], "unit": "kW", "replace": True}
    )
    assert kw.status == 200, kw.text
    assert [p["energy_kwh"] for p in kw.data["periods"]] == pytest.approx(values)
    assert (await api.call(f"{PORTFOLIOS}/vpp-south/schedules")).data["days"] == [str(TOMORROW)]
    missing = await api.call(f"{PORTFOLIOS}/vpp-south/schedules/2026-10-30")
    assert "no schedule registered for 2026-10-30" in missing.error(404, "day")


async def test_bad_schedules_are_refused_as_the_gateway_refuses_profiles_and_nothing_is_stored(
    api: PortfolioApi,
) -> None:
    path = f"{PORTFOLIOS}/vpp-south/schedules/{TOMORROW}"
    good = [0.5] * 96
    assert (await stored_schedules(api, "vpp-south"))[1] is not None
    # The cases of the gateway's test_bad_profiles_are_refused_and_leave_the_stored_one_unchanged:
    # its body's (tests/support/rest_contract.py), then those of the day and the portfolio.
    cases = [
        *profile_refusals(path, good),
        ("past day", f"{PORTFOLIOS}/vpp-south/schedules/2020-01-01", {"json": {"values": [1.0] * 96}},
         422, "day", ["2020-01-01"]),
        ("notified without replace", path, {"json": {"values": [2.0] * 96}}, 409, "replace",
         ["already notified"]),
        ("bad day in the path", f"{PORTFOLIOS}/vpp-south/schedules/2026-13-01", {"json": {"values": good}},
         400, "day", ["2026-13-01"]),
        ("unknown portfolio", f"{PORTFOLIOS}/nope/schedules/{TOMORROW}", {"json": {"values": good}}, 404,
         "name", ["'nope'"]),
    ]  # fmt: skip
    await all_refused(api.put, cases, lambda: stored_schedules(api, "vpp-south"), "schedule")
    bad_day = await api.call(f"{PORTFOLIOS}/vpp-south/schedules/tomorrow")
    bad_day.error(400, "day")


# -- defining portfolios -------------------------------------------------------------------------


async def test_a_portfolio_is_created_replaced_and_removed(api: PortfolioApi) -> None:
    path = f"{PORTFOLIOS}/pool-b"
    body = {"sites": ["site-1", "site-5"], "tags": ["north"], "period_minutes": 60, "limit_kw": 2.0}
    created = await api.call(path, method="PUT", json=body)
    assert created.status == 201, created.text
    assert created.data["definition"] == {
        "name": "pool-b", "period_minutes": 60, "timezone": "Europe/Vienna", "sites": ["site-1", "site-5"],
        "tags": ["north"], "description": "", "limit_kw": 2.0, "origin": "rest",
    }  # fmt: skip
    assert (created.data["members"], created.data["aggregate"]) == (5, None)  # no tick since
    assert [r.name for r in await api.repo.portfolios()] == ["pool-b", "vpp-south"]
    # An hourly portfolio's schedule: 24 hours, each within its limit of 2 kW.
    over = await api.call(f"{path}/schedules/{TOMORROW}", method="PUT", json={"values": [2.5] * 24})
    assert "beyond the limit of ±2 kW" in over.error(422, "values")
    hourly = await api.call(f"{path}/schedules/{TOMORROW}", method="PUT", json={"values": [1.5] * 24})
    assert (hourly.status, hourly.data["period_minutes"], len(hourly.data["periods"])) == (201, 60, 24)
    again = await api.call(path, method="PUT", json={**body, "name": "pool-b", "origin": "rest", "sites": []})
    assert again.status == 200, again.text
    assert (again.data["members"], again.data["definition"]["sites"]) == (4, [])
    shown = await api.call(path)
    assert (shown.data["definition"], shown.data["advice"]["state"]) == (
        again.data["definition"],
        "no-notification",
    )
    gone = await api.call(path, method="DELETE")
    assert (gone.status, gone.body) == (204, b"")
    assert "'pool-b'" in (await api.call(path)).error(404, "name")
    assert [r.name for r in await api.repo.portfolios()] == ["vpp-south"]
    assert "'pool-b'" in (await api.call(path, method="DELETE")).error(404, "name")


async def test_bad_definitions_are_refused_precisely_and_nothing_is_stored(api: PortfolioApi) -> None:
    path = f"{PORTFOLIOS}/pool-c"
    many = {"sites": [f"s{n:07}" for n in range(100_001)]}
    huge = json.dumps({"description": "x" * MAX_DEFINITION, "sites": ["a"]})
    cases: list[Refusal] = [
        ("not JSON", path, {"data": "{sites: [1]", "headers": AS_JSON}, 400, None, ["not valid JSON"]),
        ("not an object", path, {"json": ["site-1"]}, 400, None, ["object"]),
        ("wrong Content-Type", path, {"data": "{}", "headers": {"Content-Type": "text/plain"}}, 415, None,
         ["application/json"]),
        ("unknown key", path, {"json": {"sites": ["a"], "members": ["b"]}}, 400, "members", ["'members'"]),
        ("sites not an array", path, {"json": {"sites": "site-1"}}, 400, "sites", ["array"]),
        ("period as text", path, {"json": {"sites": ["a"], "period_minutes": "15"}}, 400, "period_minutes",
         ["number"]),
        ("limit as text", path, {"json": {"sites": ["a"], "limit_kw": "5"}}, 400, "limit_kw",
         ["number or null"]),
        ("another name", path, {"json": {"name": "pool-d", "sites": ["a"]}}, 400, "name", ["'pool-d'"]),
        ("a bad name", f"{PORTFOLIOS}/-pool", {"json": {"sites": ["a"]}}, 400, "name", ["'-pool'"]),
        ("no members", path, {"json": {"description": "empty"}}, 422, "sites", ["needs members"]),
        ("a period of 30", path, {"json": {"sites": ["a"], "period_minutes": 30}}, 422, "period_minutes",
         ["15, 60"]),
        ("an unknown zone", path, {"json": {"sites": ["a"], "timezone": "Mars/Olympus"}}, 422, "timezone",
         ["Mars/Olympus"]),
        ("a site twice", path, {"json": {"sites": ["a", "a"]}}, 422, "sites", ["twice"]),
        ("a bad site", path, {"json": {"sites": ["a/b"]}}, 422, "sites", ["sites[0]"]),
        ("too many sites", path, {"json": many}, 422, "sites", ["at most 100000"]),
        ("a negative limit", path, {"json": {"sites": ["a"], "limit_kw": -1}}, 422, "limit_kw", ["positive"]),
        ("origin config", path, {"json": {"sites": ["a"], "origin": "config"}}, 422, "origin", ["rest"]),
        ("the file's", f"{PORTFOLIOS}/north", {"json": {"tags": ["north"]}}, 409, "name",
         ["configuration file"]),
        ("too large", path, {"data": huge, "headers": AS_JSON}, 413, None, [str(MAX_DEFINITION)]),
    ]  # fmt: skip
    await all_refused(api.put, cases, api.repo.portfolios, "definition")
    assert "pool-c" not in api.scenario.service.portfolios
    assert "configuration file" in (await api.call(f"{PORTFOLIOS}/north", method="DELETE")).error(409, "name")
    assert (await api.call(f"{PORTFOLIOS}/north")).status == 200


# -- access ----------------------------------------------------------------------------------


async def test_with_a_token_writes_need_it_as_reads_do(api: PortfolioApi) -> None:
    s = api.scenario
    async with pf.serving(s.config, api.repo, s.clock, s.service, TOKEN) as server:
        guarded = Api(api.session, server.url.rstrip("/"), api.doc, api.repo, api.called)
        before = await api.repo.portfolios()
        refused = await guarded.call(f"{PORTFOLIOS}/pool-e", method="PUT", json={"sites": ["a"]})
        assert "Authorization: Bearer" in refused.error(401)
        wrong = await guarded.call(f"{PORTFOLIOS}/vpp-south", method="DELETE",
                                   headers={"Authorization": "Bearer nope"})  # fmt: skip
        assert wrong.error(401) == "wrong bearer token"
        schedule = await guarded.call(f"{PORTFOLIOS}/vpp-south/schedules/{TOMORROW}", method="PUT",
                                      json={"values": [1.0] * 96, "replace": True})  # fmt: skip
        schedule.error(401)
        (await guarded.call(f"{PORTFOLIOS}/north/live")).error(401)
        assert await api.repo.portfolios() == before
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        made = await guarded.call(f"{PORTFOLIOS}/pool-e", method="PUT", json={"sites": ["a"]}, headers=bearer)
        assert made.status == 201, made.text
        removed = await guarded.call(f"{PORTFOLIOS}/pool-e", method="DELETE", headers=bearer)
        assert removed.status == 204


async def test_without_a_portfolio_service_there_are_none(api: PortfolioApi) -> None:
    async with fleet.serving(fleet.config(), api.repo) as server:
        bare = Api(api.session, server.url.rstrip("/"), api.doc, api.repo, api.called)
        assert (await bare.call(PORTFOLIOS)).data == []
        assert "no portfolio service" in (await bare.call(f"{PORTFOLIOS}/north/live")).error(404, "name")
        put = await bare.call(f"{PORTFOLIOS}/north", method="PUT", json={"sites": ["a"]})
        put.error(404, "name")


async def test_every_portfolio_operation_was_called(
    api: PortfolioApi, request: pytest.FixtureRequest
) -> None:
    """Runs last: the module's requests covered every portfolio operation of the document."""
    if request.config.getoption("keyword") or request.config.getoption("markexpr"):
        pytest.skip("a subset of the module ran")
    assert operations(api.doc, PORTFOLIOS) - api.called == set()
