"""The head-end's REST API against its OpenAPI document, on SQLite and on PostgreSQL.

Every request goes through :meth:`Api.call` (tests/support/headend_api.py), which checks
the answer against the served ``/api/openapi.json`` (tests/support/openapi_check.py): the
path matches a documented template and method, every query parameter sent is documented,
the status is documented for the operation, JSON answers validate against their schema,
an error body repeats the status. So the module is the contract test of the fleet's
operations (the portfolios' are tests/headend/test_portfolio_rest.py's); the tests add
what each answer must say.

The fleet is tests/support/fleet.py: three sites, a hole, a power down, a DST day, written
with the repository's own ``store()``; the API's clock stands still, so nothing waits.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from gateway.clock import ManualClock
from headend.web.api import read_token
from headend.web.openapi import document
from tests.support import fleet
from tests.support.headend_api import Api, operations, repository
from tests.support.openapi_check import METHODS, check_document

pytestmark = pytest.mark.asyncio(loop_scope="module")

M1 = f"/api/sites/smx-1/meters/{fleet.METER}"
TOKEN = "t0ken-for-the-fleet-0123456789"
#: The portfolios' operations are tests/headend/test_portfolio_rest.py's.
PORTFOLIOS = "/api/portfolios"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgres"])
async def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    work = tmp_path_factory.mktemp(f"rest-{request.param}")
    async with contextlib.AsyncExitStack() as stack:
        repo = await stack.enter_async_context(repository(request.param, work, "rest"))
        await fleet.fill(repo)
        server = await stack.enter_async_context(fleet.serving(fleet.config(), repo))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        async with session.get(server.url + "api/openapi.json") as resp:
            assert resp.status == 200
            doc = await resp.json()
        yield Api(session, server.url.rstrip("/"), doc, repo)


# -- the document and the routes -----------------------------------------------------------


async def test_the_served_document_is_valid_and_matches_the_routes(api: Api) -> None:
    answer = await api.call("/api/openapi.json")
    assert answer.status == 200, answer.text
    assert check_document(answer.data) == []
    assert answer.data == document()
    from headend.config import parse_config
    from headend.web.api import FleetApi

    app = FleetApi(parse_config({"profile": "demo"}, "x"), api.repo, ManualClock(fleet.NOW)).app
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical not in ("/", "/static")
        and route.method != "HEAD"  # aiohttp adds one per GET
    }
    documented = {
        (method.upper(), template) for template, item in answer.data["paths"].items() for method in item
        if method in METHODS
    }  # fmt: skip
    assert routes - documented == set(), "routes the document does not describe"
    assert documented - routes == set(), "documented operations the server does not have"


async def test_the_page_and_an_unknown_route(api: Api) -> None:
    async with api.session.get(api.base + "/") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert "/static/app.js" in await resp.text()
    async with api.session.get(api.base + "/api/nothing") as resp:
        assert resp.status == 404
        assert await resp.json() == {"status": 404, "error": "no route /api/nothing"}
        assert resp.headers["Cache-Control"] == "no-store"


# -- sites ---------------------------------------------------------------------------------


async def test_every_site_with_its_state_and_seven_days(api: Api) -> None:
    answer = await api.call("/api/sites")
    assert answer.status == 200, answer.text
    sites = {s["publisher"]: s for s in answer.data}
    assert list(sites) == ["smx-1", "smx-2", "smx-3"]
    one, two, three = sites["smx-1"], sites["smx-2"], sites["smx-3"]
    assert (one["name"], one["timezone"], one["state"], one["backlog"]) == (
        "Vienna 1",
        "Europe/Vienna",
        "online",
        3,
    )
    assert one["last_seen"] == "2026-10-27T09:59:55Z"
    assert one["rate"] == 0.75
    assert [d["day"] for d in one["completeness"]] == [d.isoformat() for d in fleet.WEEK]
    by_day = {d["day"]: d for d in one["completeness"]}
    assert by_day["2026-10-24"] == {"day": "2026-10-24", "periods": 96, "expected": 96, "stored": 92,
                                    "not_recorded": 0, "percent": 100 * 92 / 96}  # fmt: skip
    assert by_day["2026-10-25"]["periods"] == 100  # the clocks went back
    assert by_day["2026-10-25"]["percent"] == 100.0
    # Today: 11:00 in Vienna, 44 quarter hours due, all there.
    assert (by_day["2026-10-27"]["expected"], by_day["2026-10-27"]["percent"]) == (44, 100.0)
    down = {d["day"]: d for d in two["completeness"]}["2026-10-26"]
    assert (down["stored"], down["not_recorded"], down["percent"]) == (92, 4, 100.0)
    assert two["state"] == "offline"
    assert two["completeness"][-1]["expected"] == 40  # 10:00 in London
    assert three["state"] == "unknown"
    assert three["last_seen"] is None
    assert {d["percent"] for d in three["completeness"]} == {None}


async def test_one_site_and_its_meters(api: Api) -> None:
    answer = await api.call("/api/sites/smx-1")
    assert answer.status == 200, answer.text
    assert answer.data["info"] == {"version": "1.0"}
    [meter] = answer.data["meters"]
    assert meter["meter"] == fleet.METER
    assert meter["latest"] == {
        "lp1": "2026-10-27T10:00:00Z", "lp2": None, "minute": "2026-10-27T09:59:00Z", "registers": None,
        "events": "2026-10-27T09:30:00Z",
    }  # fmt: skip
    assert (await api.call("/api/sites/smx-3")).data["meters"] == []
    message = (await api.call("/api/sites/smx-9")).error(404, "publisher")
    assert "'smx-9'" in message


# -- records -------------------------------------------------------------------------------


async def test_a_local_day_of_load_profile(api: Api) -> None:
    answer = await api.call(f"{M1}/profile", {"stream": "lp1", "day": "2026-10-25"})
    assert answer.status == 200, answer.text
    data = answer.data
    assert data["fields"] == ["AMinusPerPeriod", "APlusPerPeriod", "MeterStatus"]
    # 00:15 CEST to 24:00 CET: 100 periods, stamped at their end.
    assert len(data["records"]) == 100
    assert data["records"][0]["time"] == "2026-10-24T22:15:00Z"
    assert data["records"][-1]["time"] == "2026-10-25T23:00:00Z"
    first = data["records"][0]
    assert first["values"] == {"AMinusPerPeriod": 0.0, "APlusPerPeriod": 0.25 + 6 * 0.125, "MeterStatus": 0.0}
    assert first["status"] == 0
    ranged = await api.call(
        f"{M1}/profile", {"from": "2026-10-24T08:00:00Z", "to": "2026-10-24T10:00:00+00:00"}
    )
    assert [r["time"][11:16] for r in ranged.data["records"]] == ["08:00", "09:15", "09:30", "09:45"]
    assert (ranged.data["from"], ranged.data["to"]) == ("2026-10-24T08:00:00Z", "2026-10-24T10:00:00Z")
    lp2 = await api.call(f"{M1}/profile", {"stream": "lp2", "day": "2026-10-25"})
    assert (lp2.status, lp2.data["records"], lp2.data["fields"]) == (200, [], [])


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({}, "from", "required"),
        ({"from": "2026-10-24T00:00:00Z"}, "to", "required"),
        ({"from": "yesterday", "to": "2026-10-24T00:00:00Z"}, "from", "expected an ISO 8601 time"),
        ({"from": "2026-10-24T00:00:00", "to": "2026-10-25T00:00:00Z"}, "from", "offset"),
        ({"from": "2026-10-24T00:00:00 01:00", "to": "2026-10-25T00:00:00Z"}, "from", "%2B"),
        ({"from": "2026-10-25T00:00:00Z", "to": "2026-10-24T00:00:00Z"}, "to", "must be after from"),
        ({"from": "2026-10-24T00:00:00Z", "to": "2026-10-24T00:00:00Z"}, "to", "must be after from"),
        ({"from": "2026-08-01T00:00:00Z", "to": "2026-10-24T00:00:00Z"}, "to", "at most 31 days"),
        ({"from": "0001-01-01T00:00:00+01:00", "to": "2026-10-24T00:00:00Z"}, "from", "out of range"),
        ({"day": "2026-10-24", "from": "2026-10-24T00:00:00Z"}, "day", "not both"),
        ({"day": "24.10.2026"}, "day", "YYYY-MM-DD"),
        ({"day": "2026-02-30"}, "day", "YYYY-MM-DD"),
        ({"day": "2026-10-24", "stream": "lp9"}, "stream", "lp1, lp2"),
        ({"day": "2026-10-24", "stream": "minute"}, "stream", "lp1, lp2"),
    ],
)
async def test_a_bad_range_is_a_400_naming_it(
    api: Api, params: dict[str, str], field: str, words: str
) -> None:
    message = (await api.call(f"{M1}/profile", params)).error(400, field)
    assert words in message


async def test_unknown_sites_and_meters_are_404(api: Api) -> None:
    day = {"day": "2026-10-24"}
    for path in ("profile", "minute", "events", "completeness"):
        assert "'smx-9'" in (await api.call(f"/api/sites/smx-9/meters/m/{path}", day)).error(404, "publisher")
        message = (await api.call(f"/api/sites/smx-1/meters/nope/{path}", day)).error(404, "meter")
        assert "'nope'" in message
        assert fleet.METER in message  # the known ones
    assert "no meter" in (await api.call("/api/sites/smx-3/meters/m/profile", day)).error(404, "meter")


async def test_minute_records_and_their_shorter_bound(api: Api) -> None:
    answer = await api.call(f"{M1}/minute", {"from": "2026-10-27T09:55:00Z", "to": "2026-10-27T10:00:00Z"})
    assert answer.status == 200, answer.text
    assert answer.data["stream"] == "minute"
    assert answer.data["fields"] == ["PowerMax", "PowerMean"]
    assert [r["time"] for r in answer.data["records"]] == [f"2026-10-27T09:{m}:00Z" for m in range(55, 60)]
    assert answer.data["records"][0]["values"] == {"PowerMax": None, "PowerMean": 1.5}
    too_long = await api.call(f"{M1}/minute", {"from": "2026-10-20T00:00:00Z", "to": "2026-10-27T00:00:00Z"})
    assert "at most 2 days" in too_long.error(400, "to")


async def test_events_in_a_range(api: Api) -> None:
    answer = await api.call(
        f"{M1}/events", {"from": "2026-10-27T00:00:00+01:00", "to": "2026-10-28T00:00:00Z"}
    )
    assert answer.status == 200, answer.text
    assert answer.data["events"] == [
        {
            "time": "2026-10-27T08:00:00Z",
            "code": 61,
            "severity": 2,
            "message": "PowerDown",
            "meter_status": 128,
        },
        {"time": "2026-10-27T09:30:00Z", "code": 62, "severity": 1, "message": "PowerUp", "meter_status": 0},
    ]
    late = await api.call(f"{M1}/events", {"from": "2026-10-27T09:00:00Z", "to": "2026-10-27T10:00:00Z"})
    assert [e["code"] for e in late.data["events"]] == [62]
    assert "required" in (await api.call(f"{M1}/events")).error(400, "from")


# -- completeness and export ---------------------------------------------------------------


async def test_completeness_of_a_day_lists_what_is_missing_and_what_was_never_recorded(api: Api) -> None:
    hole = await api.call(f"{M1}/completeness", {"day": "2026-10-24"})
    assert hole.status == 200, hole.text
    assert hole.data == {
        "publisher": "smx-1", "meter": fleet.METER, "day": "2026-10-24", "timezone": "Europe/Vienna",
        "periods": 96, "expected": 96, "stored": 92,
        "missing": [f"2026-10-24T{t}:00Z" for t in ("08:15", "08:30", "08:45", "09:00")],
        "not_recorded": [], "percent": 100 * 92 / 96,
    }  # fmt: skip
    down = await api.call(f"/api/sites/smx-2/meters/{fleet.METER}/completeness", {"day": "2026-10-26"})
    assert (down.data["missing"], len(down.data["not_recorded"]), down.data["percent"]) == ([], 4, 100.0)
    assert down.data["not_recorded"][0] == "2026-10-26T05:15:00Z"  # London is on GMT again
    today = await api.call(f"{M1}/completeness", {"day": "2026-10-27"})
    assert (today.data["periods"], today.data["expected"], today.data["missing"]) == (96, 44, [])
    later = await api.call(f"{M1}/completeness", {"day": "2026-10-28"})
    assert (later.data["expected"], later.data["percent"]) == (0, None)
    assert "required" in (await api.call(f"{M1}/completeness")).error(400, "day")
    assert "YYYY-MM-DD" in (await api.call(f"{M1}/completeness", {"day": "tomorrow"})).error(400, "day")


async def test_the_day_export_is_the_csv_of_smx_headend_export(api: Api) -> None:
    answer = await api.call("/api/export", {"day": "2026-10-24"})
    assert answer.status == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/csv")
    assert 'filename="smx-headend-2026-10-24.csv"' in answer.headers["Content-Disposition"]
    text = answer.body.decode()
    assert "smx-1 meter1: zone Europe/Vienna, 96 periods, 92 stored, 4 missing" in text
    rows = list(csv.DictReader(io.StringIO("\n".join(x for x in text.splitlines() if not x.startswith("#")))))
    assert {r["site"] for r in rows} == {"smx-1", "smx-2"}
    assert [r["flag"] for r in rows if r["site"] == "smx-1"].count("missing") == 4
    one = await api.call("/api/export", [("day", "2026-10-26"), ("site", "smx-2")])
    lines = [x for x in one.body.decode().splitlines() if not x.startswith("#")][1:]
    assert len(lines) == 96
    assert sum(x.endswith(",not-recorded") for x in lines) == 4
    assert "'smx-9'" in (await api.call("/api/export", {"day": "2026-10-26", "site": "smx-9"})).error(
        404, "site"
    )
    assert "required" in (await api.call("/api/export")).error(400, "day")


# -- the token -----------------------------------------------------------------------------


async def test_with_a_token_file_every_api_request_needs_the_bearer_token(api: Api, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    # Production, and a token: on loopback here (tests listen nowhere else); off it, the token is a must.
    broker = {"url": "mqtts://b:8883", "ca": "c", "certificate": "c", "key": "k"}
    http = {"listen": "127.0.0.1:0", "token_file": str(token_file)}
    cfg = fleet.config(profile="production", http=http, broker=broker)
    async with fleet.serving(cfg, api.repo, read_token(str(token_file))) as server:
        guarded = Api(api.session, server.url.rstrip("/"), api.doc, api.repo, api.called)
        missing = await guarded.call("/api/sites")
        assert "Authorization: Bearer" in missing.error(401)
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await guarded.call("/api/sites/smx-1", headers={"Authorization": "Bearer nope"})
        assert wrong.error(401) == "wrong bearer token"
        basic = await guarded.call("/api/sites", headers={"Authorization": "Basic dXNlcjpwdw=="})
        basic.error(401)
        right = await guarded.call("/api/sites", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status == 200, right.text
        assert len(right.data) == 3
        # What the API is, and the page that asks for the token, are no secret.
        assert (await guarded.call("/api/openapi.json")).status == 200
        async with api.session.get(server.url) as resp:
            assert resp.status == 200


async def test_a_token_file_must_hold_a_token(tmp_path: Path) -> None:
    from gateway.errors import ConfigError

    path = tmp_path / "token"
    with pytest.raises(ConfigError, match="cannot read it"):
        read_token(str(path))
    path.write_text("short\n")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        read_token(str(path))
    path.write_text(f"  {TOKEN}\n")
    assert read_token(str(path)) == TOKEN


async def test_every_documented_operation_was_called(api: Api, request: pytest.FixtureRequest) -> None:
    """Runs last: the module's requests covered every operation of the document."""
    if request.config.getoption("keyword") or request.config.getoption("markexpr"):
        pytest.skip("a subset of the module ran")
    documented = operations(api.doc) - operations(api.doc, PORTFOLIOS)
    assert documented - api.called == set()
