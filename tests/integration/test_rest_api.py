"""The REST API against its OpenAPI document: one running gateway, every answer checked.

Every request goes through :meth:`Api.call` (or :meth:`Api.stream` for the live feed), which
checks the answer against the served ``/api/openapi.json``: the path matches a documented
template and method, every query parameter sent is documented, the status is documented
for the operation, JSON answers say ``application/json``, hold strict JSON (no NaN) and
validate against the response schema, and an error body repeats the HTTP status. So the
whole module is the contract test; the tests add what each answer must say.

One gateway (the demo: simulated DLMS meter in-process) serves the module. Before it
starts, a few minutes of minute records and register samples are written to its archive
for the minutes just before the start, as if the gateway had been running then: the
recorder writes one register sample per minute once the minute is over, so a freshly
started gateway has no history of the last minutes to read yet. The synthetic registers
are far below the simulated meter's (which start at 12345 kWh), so live samples appended
after them keep the register increasing.

The gateway runs on a :class:`ScaledClock` at real speed (wall time), so the last test can
move time to a period boundary; it runs last for that reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from asyncua import ua
from yarl import URL

from gateway.archive.files import ArchiveWriter
from gateway.archive.minutes import MinuteAggregator, RegisterSampler
from gateway.clock import ScaledClock
from gateway.config import MeterConfig, one_second_set
from gateway.obis import CATALOGUE, Refresh
from gateway.security.users import Role, UserDb
from gateway.web.openapi import document
from tests.support.harness import PASSWORD, Running, add_user, demo, running_gateway
from tests.support.openapi_check import METHODS, check_document, resolve, validate
from tests.support.rest_contract import Answer, all_refused, check_answer, no_constant, profile_refusals
from tests.support.simulated_meter import as_modelled, expected_quality, modelled

pytestmark = pytest.mark.asyncio(loop_scope="module")

METER = "meter1"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
INFO = {str(i.obis): i for i in CATALOGUE}
#: Minutes of synthetic archive written before the gateway starts (ending the minute before).
RECENT_MINUTES = 8


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


# -- the synthetic archive of the minutes before the start ----------------------------------


def register_sample(k: int) -> float:
    """A+ register (kWh) of the k-th synthetic minute: well below the simulator's 12345 kWh."""
    return 100.0 + 0.25 * k


def power_mean(k: int) -> float:
    """Mean of 1-0:1.7.0 (kW) in the k-th synthetic minute."""
    return 1.5 + 0.25 * (k % 4)


@dataclass(frozen=True)
class Recent:
    """What was written: minute starts and (time, A+ value) register samples, oldest first."""

    minutes: list[datetime]
    registers: list[tuple[datetime, float]]


def write_recent_archive(root: Path, meter: MeterConfig, started: datetime) -> Recent:
    by_obis = {i.obis: i for i in CATALOGUE}
    minutes = MinuteAggregator([by_obis[o] for o in one_second_set(meter)])
    registers = RegisterSampler([i for i in CATALOGUE if i.refresh is Refresh.REGISTER])
    first = floor_minute(started) - timedelta(minutes=RECENT_MINUTES)
    starts = [first + timedelta(minutes=k) for k in range(RECENT_MINUTES)]
    minute_rows = []
    for k, t in enumerate(starts):
        values: list[float] = []
        for column in minutes.columns:
            mean = power_mean(k) if column.obis == "1-0:1.7.0" else 1.0
            values.append(
                {"mean": mean, "min": mean - 0.25, "max": mean + 0.25, "count": 60.0}[column.qualifier]
            )
        minute_rows.append((t, 0, tuple(values)))
    samples = [(t + timedelta(seconds=30), register_sample(k)) for k, t in enumerate(starts)]
    register_rows = [(t, 0, (a_plus, 1.0 + k, 2.0 + k, 3.0 + k)) for k, (t, a_plus) in enumerate(samples)]
    assert [c.obis for c in registers.columns] == ["1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0"]
    writer = ArchiveWriter(root, meter.id)
    try:
        writer.append("minute", minutes.columns, minute_rows)
        writer.append("registers", registers.columns, register_rows)
    finally:
        writer.close()
    return Recent(starts, samples)


# -- the contract-checking client -----------------------------------------------------------


@dataclass
class Api:
    running: Running
    session: aiohttp.ClientSession
    doc: dict[str, Any]
    root: Path
    recent: Recent
    base: str

    @property
    def gateway(self) -> Any:
        return self.running.gateway

    def url(self, path: str) -> URL:
        return URL(self.base + path, encoded=True)

    async def call(self, method: str, path: str, **kw: Any) -> Answer:
        """Send a request and check the answer against the OpenAPI document."""
        async with self.session.request(method, self.url(path), **kw) as resp:
            body = await resp.read()
            _template, data = check_answer(self.doc, method, path, kw.get("params"), resp.status,
                                           resp.headers, body)  # fmt: skip
            return Answer(method, path, resp.status, resp.headers, body, data)

    @contextlib.asynccontextmanager
    async def stream(self, path: str, **kw: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET whose (non-JSON) body the caller reads incrementally; the head is checked."""
        async with self.session.get(self.url(path), **kw) as resp:
            check_answer(self.doc, "GET", path, kw.get("params"), resp.status, resp.headers, None)
            yield resp


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    root = tmp_path_factory.mktemp("rest") / "var" / "archive"
    config = demo(event_period_s=2.0)  # a planted meter event is read (and alarmed) at once
    started = datetime.now(UTC)
    recent = write_recent_archive(root, config.meters[0], started)
    users = str(root.parent.parent / "users")  # absolute: each test runs in its own directory
    config = replace(config, archive=replace(config.archive, path=str(root)),
                     security=replace(config.security, users=users))  # fmt: skip
    add_user(config, "viewer", Role.VIEWER)
    async with running_gateway(config, clock=ScaledClock(started), login=Role.OPERATOR) as running:
        poller = running.gateway.pollers[METER]
        async with asyncio.timeout(30):
            snapshot = await poller.wait_snapshot()
            while not as_modelled(snapshot):
                snapshot = await poller.wait_snapshot()
        base = running.gateway.web_url.rstrip("/")
        # unsafe: aiohttp keeps no cookies of IP-address hosts otherwise (browsers do).
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.get(base + "/api/openapi.json") as resp:
                assert resp.status == 200
                doc = await resp.json()
            rest = Api(running, session, doc, root, recent, base)
            # The module's requests are an operator's (the demo reads anonymously, writes need one).
            answer = await rest.call("POST", "/api/login", json={"user": "operator", "password": PASSWORD})
            assert answer.status == 200, answer.text
            yield rest


async def next_snapshot(api: Api) -> Any:
    return await api.gateway.pollers[METER].wait_snapshot()


# -- the document and the routes ------------------------------------------------------------


async def test_the_served_document_is_valid_and_matches_the_routes(api: Api) -> None:
    answer = await api.call("GET", "/api/openapi.json")
    assert answer.status == 200, answer.text
    doc = answer.data
    assert check_document(doc) == []
    assert doc == document()
    routes = {
        (route.method, route.resource.canonical)
        for route in api.gateway.web.api.app.router.routes()
        if route.resource is not None
        and route.resource.canonical not in ("/", "/static")
        and route.method != "HEAD"  # aiohttp adds one per GET
    }
    documented = {
        (method.upper(), template)
        for template, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }
    assert routes - documented == set(), "routes the document does not describe"
    assert documented - routes == set(), "documented operations the server does not have"


# -- index, meters, values ------------------------------------------------------------------


async def test_index_and_meters(api: Api) -> None:
    index = await api.call("GET", "/api")
    assert index.status == 200, index.text
    assert index.data["meters"] == [METER]
    assert index.data["opcua"] == api.gateway.endpoint
    assert index.data["openapi"] == "/api/openapi.json"
    assert index.data["market"] == {"period_minutes": 15, "timezone": "CET"}

    meters = await api.call("GET", "/api/meters")
    assert meters.status == 200, meters.text
    assert [m["id"] for m in meters.data] == [METER]

    meter = await api.call("GET", f"/api/meters/{METER}")
    assert meter.status == 200, meter.text
    assert meter.data == {**meters.data[0], "time": meter.data["time"], "status": meter.data["status"]}
    assert meter.data["name"] == "Simulated ZMD (demo)"
    assert meter.data["protocol"] == "dlms"
    assert meter.data["manufacturer"] == "LGZ"
    assert meter.data["serial_number"] == "54800102"
    assert ISO_Z.match(meter.data["time"])
    assert meter.data["status"]["link"] == "online"
    assert meter.data["status"]["baudrate"] == 9600
    assert meter.data["status"]["archive"]["state"] == "ok"

    unknown = await api.call("GET", "/api/meters/nope")
    message = unknown.error(404, "meter")
    assert "'nope'" in message
    assert METER in message


async def test_snapshot_has_every_value_with_its_unit_good_and_timed_where_the_meter_has_it(api: Api) -> None:
    answer = await api.call("GET", f"/api/meters/{METER}/snapshot")
    assert answer.status == 200, answer.text
    snap = answer.data
    assert snap["meter"] == METER
    assert ISO_Z.match(snap["time"]), snap["time"]
    by_obis = {v["obis"]: v for v in snap["values"]}
    assert set(by_obis) == set(INFO)
    for obis, value in by_obis.items():
        assert value["quality"] == expected_quality(INFO[obis].obis).value, value
        assert value["unit"] == INFO[obis].unit, value
        assert value["name"] == INFO[obis].name, value
        if not modelled(INFO[obis].obis):  # a catalogue row the simulated meter lacks: no value
            assert (value["value"], value["time"]) == (None, None), value
            continue
        assert isinstance(value["value"], int | float), value
        assert ISO_Z.match(value["time"]), value
    assert by_obis["1-0:1.8.0"]["unit"] == "kWh"
    assert by_obis["1-0:32.7.0"]["unit"] == "V"


async def test_one_value_and_its_errors(api: Api) -> None:
    answer = await api.call("GET", f"/api/meters/{METER}/values/1-0:32.7.0")
    assert answer.status == 200, answer.text
    assert answer.data["obis"] == "1-0:32.7.0"
    assert answer.data["unit"] == "V"
    assert answer.data["quality"] == "good"
    assert 200 <= answer.data["value"] <= 260

    unknown_meter = await api.call("GET", "/api/meters/nope/values/1-0:32.7.0")
    unknown_meter.error(404, "meter")
    unknown_obis = await api.call("GET", f"/api/meters/{METER}/values/1-0:99.99.0")
    assert "1-0:99.99.0" in unknown_obis.error(404, "obis")


@pytest.mark.parametrize("obis", ["abc", "1-0:999.7.0"])
async def test_malformed_obis_is_400(api: Api, obis: str) -> None:
    """A malformed OBIS code is the client's mistake: 400 JSON, not a 500 (Obis.parse
    raises a GatewayError, not a ValueError)."""
    answer = await api.call("GET", f"/api/meters/{METER}/values/{obis}")
    assert obis in answer.error(400, "obis")


async def test_malformed_obis_in_history_is_400(api: Api) -> None:
    """The same on the history route."""
    start = iso(datetime.now(UTC) - timedelta(minutes=5))
    answer = await api.call("GET", f"/api/meters/{METER}/history/abc", params={"start": start})
    answer.error(400, "obis")


# -- profiles -------------------------------------------------------------------------------


def profile_values(n: int, scale: float = 1.0) -> list[float]:
    """Net import per period: mostly drawn, some periods fed in."""
    return [round(scale * (0.2 + 0.05 * (i % 9) - (0.55 if i % 13 == 0 else 0.0)), 4) for i in range(n)]


async def calendar(api: Api) -> tuple[date, dict[date, int], list[date]]:
    """(today, {day: periods} of the upcoming days, notified days) from the API."""
    answer = await api.call("GET", f"/api/meters/{METER}/profiles")
    assert answer.status == 200, answer.text
    assert answer.data["period_minutes"] == 15
    assert answer.data["timezone"] == "CET"
    upcoming = {date.fromisoformat(u["day"]): u["periods"] for u in answer.data["upcoming"]}
    days = [date.fromisoformat(d) for d in answer.data["days"]]
    return date.fromisoformat(answer.data["today"]), upcoming, days


def notified_file(api: Api, day: date) -> Path:
    return api.root / METER / "notified" / f"{day.isoformat()}.csv"


def stored_values(api: Api, day: date) -> list[float]:
    """The values of the day's profile file (``time,status,value`` rows below the header)."""
    rows = [line.split(",") for line in notified_file(api, day).read_text().splitlines()]
    return [float(row[2]) for row in rows if row[0][:1].isdigit()]


def notified_folder(api: Api) -> dict[str, bytes]:
    folder = api.root / METER / "notified"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


async def ensure_profile(api: Api, day: date, values: list[float]) -> None:
    answer = await api.call(
        "PUT", f"/api/meters/{METER}/profiles/{day}", json={"values": values, "replace": True}
    )
    assert answer.status in (200, 201), answer.text


async def test_put_profile_for_tomorrow_and_read_it_back(api: Api) -> None:
    today, upcoming, days = await calendar(api)
    assert today in upcoming
    tomorrow = today + timedelta(days=1)
    assert upcoming[tomorrow] in (92, 96, 100)
    assert tomorrow not in days
    values = profile_values(upcoming[tomorrow])

    put = await api.call("PUT", f"/api/meters/{METER}/profiles/{tomorrow}", json={"values": values})
    assert put.status == 201, put.text
    assert put.data["meter"] == METER
    assert put.data["day"] == tomorrow.isoformat()
    assert put.data["unit"] == "kWh"
    assert put.data["period_minutes"] == 15
    assert [p["energy_kwh"] for p in put.data["periods"]] == values
    assert [p["number"] for p in put.data["periods"]] == list(range(1, len(values) + 1))
    assert put.data["total_kwh"] == sum(values)
    for before, after in zip(put.data["periods"], put.data["periods"][1:], strict=False):
        assert before["end"] == after["start"]
        assert parse_iso(before["end"]) - parse_iso(before["start"]) == timedelta(minutes=15)

    get = await api.call("GET", f"/api/meters/{METER}/profiles/{tomorrow}")
    assert get.status == 200, get.text
    assert get.data == put.data

    _, _, days = await calendar(api)
    assert tomorrow in days
    stored = notified_file(api, tomorrow)
    assert stored.is_file()
    text = stored.read_text()
    assert text.startswith(f"# smx-archive 1 stream=notified meter={METER}")
    assert stored_values(api, tomorrow) == values

    missing = await api.call("GET", f"/api/meters/{METER}/profiles/{today + timedelta(days=5)}")
    missing.error(404, "day")


async def test_bad_profiles_are_refused_and_leave_the_stored_one_unchanged(api: Api) -> None:
    today, upcoming, _ = await calendar(api)
    tomorrow = today + timedelta(days=1)
    n = upcoming[tomorrow]
    good = profile_values(n)
    await ensure_profile(api, tomorrow, good)
    path = f"/api/meters/{METER}/profiles/{tomorrow}"
    # The body's refusals (tests/support/rest_contract.py: the head-end's schedules refuse the
    # same), then those of the day and the meter.
    cases = [
        *profile_refusals(path, good),
        ("past day", f"/api/meters/{METER}/profiles/2020-01-01", {"json": {"values": profile_values(96)}},
         422, "day", ["2020-01-01"]),
        ("notified without replace", path, {"json": {"values": profile_values(n, 2.0)}}, 409, "replace",
         ["already notified"]),
        ("bad day in the path", f"/api/meters/{METER}/profiles/2026-13-01", {"json": {"values": good}},
         400, "day", ["2026-13-01"]),
        ("unknown meter", f"/api/meters/nope/profiles/{tomorrow}", {"json": {"values": good}}, 404, "meter",
         ["'nope'"]),
    ]  # fmt: skip

    async def put(where: str, request: dict[str, Any]) -> Answer:
        return await api.call("PUT", where, **request)

    async def stored() -> object:
        return notified_folder(api)

    await all_refused(put, cases, stored, "profile")

    bad_day = await api.call("GET", f"/api/meters/{METER}/profiles/tomorrow")
    bad_day.error(400, "day")
    get = await api.call("GET", path)
    assert [p["energy_kwh"] for p in get.data["periods"]] == good


async def test_replace_and_kw_profiles(api: Api) -> None:
    today, upcoming, _ = await calendar(api)
    tomorrow = today + timedelta(days=1)
    n = upcoming[tomorrow]
    await ensure_profile(api, tomorrow, profile_values(n))
    path = f"/api/meters/{METER}/profiles/{tomorrow}"
    first = notified_file(api, tomorrow).read_bytes()

    doubled = profile_values(n, 2.0)
    replaced = await api.call("PUT", path, json={"values": doubled, "replace": True})
    assert replaced.status == 200, replaced.text
    assert [p["energy_kwh"] for p in replaced.data["periods"]] == doubled
    get = await api.call("GET", path)
    assert get.data == replaced.data
    assert notified_file(api, tomorrow).read_bytes() != first
    assert stored_values(api, tomorrow) == doubled
    kept = sorted(p.name for p in notified_file(api, tomorrow).parent.glob(f"{tomorrow}.csv.replaced-*"))
    assert kept, "the replaced profile is kept beside the new one"

    kw = [round(1.0 + 0.1 * (i % 12) - (3.0 if i % 17 == 0 else 0.0), 3) for i in range(n)]
    in_kw = await api.call("PUT", path, json={"values": kw, "unit": "kW", "replace": True})
    assert in_kw.status == 200, in_kw.text
    assert in_kw.data["unit"] == "kWh"
    energies = [p["energy_kwh"] for p in in_kw.data["periods"]]
    assert energies == pytest.approx([v * 0.25 for v in kw], rel=1e-12)
    assert in_kw.data["total_kwh"] == pytest.approx(sum(v * 0.25 for v in kw), rel=1e-9)
    get = await api.call("GET", path)
    assert get.data == in_kw.data
    assert stored_values(api, tomorrow) == energies


# -- advice ---------------------------------------------------------------------------------


async def test_advice_follows_the_profile_of_the_running_day(api: Api) -> None:
    # Right after a snapshot: clear of the boundary window of the last test.
    await next_snapshot(api)
    advice = await api.call("GET", f"/api/meters/{METER}/advice")
    assert advice.status == 200, advice.text
    assert advice.data["meter"] == METER

    today, upcoming, _ = await calendar(api)
    values = profile_values(upcoming[today], 1.5)
    await ensure_profile(api, today, values)
    await next_snapshot(api)
    advice = await api.call("GET", f"/api/meters/{METER}/advice")
    assert advice.status == 200, advice.text
    # Started mid-period: no measurement until a period start has been seen ("closing" if
    # the call falls in a period's last seconds after one was).
    assert advice.data["state"] in ("advised", "no-measurement", "closing"), advice.data
    period = advice.data["period"]
    assert period["day"] == today.isoformat()
    assert advice.data["notified_kwh"] == values[period["number"] - 1]
    assert parse_iso(period["start"]) <= parse_iso(advice.data["at"]) < parse_iso(period["end"])
    assert advice.data["remaining_s"] == pytest.approx(
        (parse_iso(period["end"]) - parse_iso(advice.data["at"])).total_seconds(), abs=0.01
    )

    later = iso(parse_iso(period["end"]) + timedelta(hours=1))
    beyond = await api.call("GET", f"/api/meters/{METER}/advice", params={"at": later})
    assert "running period" in beyond.error(422, "at")
    garbage = await api.call("GET", f"/api/meters/{METER}/advice", params={"at": "garbage"})
    assert "'garbage'" in garbage.error(400, "at")
    naive = await api.call("GET", f"/api/meters/{METER}/advice", params={"at": "2026-01-01T10:00:00"})
    naive.error(400, "at")
    unknown = await api.call("GET", "/api/meters/nope/advice")
    unknown.error(404, "meter")


# -- history and events ---------------------------------------------------------------------


async def test_raw_register_history(api: Api) -> None:
    now = datetime.now(UTC)
    start = now - timedelta(minutes=5)
    params = {"start": iso(start), "end": iso(now)}
    answer = await api.call("GET", f"/api/meters/{METER}/history/1-0:1.8.0", params=params)
    assert answer.status == 200, answer.text
    assert answer.data["aggregate"] is None
    assert answer.data["unit"] == "kWh"
    assert answer.data["next"] is None
    samples = [(parse_iso(v["time"]), v["value"]) for v in answer.data["values"]]
    written = [(t, v) for t, v in api.recent.registers if start <= t <= now]
    assert len(written) >= 3
    assert samples[: len(written)] == written
    assert all(v["status"] == "Good" for v in answer.data["values"])
    times = [t for t, _ in samples]
    values = [v for _, v in samples]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    assert values == sorted(values), "a register never decreases"


async def test_history_pages_follow_cursors(api: Api) -> None:
    start = api.recent.minutes[0]
    end = api.recent.registers[-1][0] + timedelta(seconds=1)
    base = {"start": iso(start), "end": iso(end)}
    path = f"/api/meters/{METER}/history/1-0:1.8.0"
    whole = await api.call("GET", path, params=base)
    assert whole.status == 200, whole.text
    assert [(parse_iso(v["time"]), v["value"]) for v in whole.data["values"]] == api.recent.registers

    paged: list[Any] = []
    cursor: str | None = None
    for _ in range(3 * RECENT_MINUTES):
        params = {**base, "limit": "1", **({"cursor": cursor} if cursor else {})}
        page = await api.call("GET", path, params=params)
        assert page.status == 200, page.text
        assert len(page.data["values"]) <= 1
        paged += page.data["values"]
        cursor = page.data["next"]
        if cursor is None:
            break
        if len(paged) == 1:
            assert isinstance(cursor, str)
            assert cursor
    assert cursor is None, "the cursors never end"
    assert paged == whole.data["values"]


@pytest.mark.parametrize("garbage", ["Zm9vYmFy", "bm90LWEtY3Vyc29y", "!!!", "@", "%%%%"])
async def test_history_garbage_cursor_is_400(api: Api, garbage: str) -> None:
    """A cursor the API did not return is refused. "!!!", "@", "%%%%" would decode to
    nothing with a lenient base64 decoder, i.e. silently the first page again, and a client
    following cursors would loop."""
    now = datetime.now(UTC)
    params = {"start": iso(now - timedelta(minutes=10)), "end": iso(now), "limit": "1", "cursor": garbage}
    bad = await api.call("GET", f"/api/meters/{METER}/history/1-0:1.8.0", params=params)
    assert "cursor" in bad.error(400, "cursor")


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"aggregate": "average", "interval": "1e-9"}, "interval", "from 1 ms to 100 years"),
        ({"aggregate": "average", "interval": "1e20"}, "interval", "from 1 ms to 100 years"),
        ({"aggregate": "average", "interval": "PT0.0000001S"}, "interval", "from 1 ms to 100 years"),
        ({"limit": "\u00b2"}, "limit", "expected an integer 1..2000"),
        ({"start": "0001-01-01T00:00:00+01:00"}, "start", "out of range"),
        ({"start": "2026-11-26T10:00:00 01:00"}, "start", "write a '+' in a query as %2B"),
    ],
)
async def test_extreme_query_values_are_400_not_500(
    api: Api, params: dict[str, str], field: str, words: str
) -> None:
    now = datetime.now(UTC)
    query = {"start": iso(now - timedelta(minutes=10)), "end": iso(now), **params}
    bad = await api.call("GET", f"/api/meters/{METER}/history/1-0:1.7.0", params=query)
    assert words in bad.error(400, field)


async def test_extreme_event_cursor_and_day_are_400(api: Api) -> None:
    cursor = base64.urlsafe_b64encode(f"{-(10**18)}:0".encode()).decode().rstrip("=")
    params = {"start": iso(datetime.now(UTC) - timedelta(days=1)), "cursor": cursor}
    bad = await api.call("GET", f"/api/meters/{METER}/events", params=params)
    bad.error(400, "cursor")
    for day in ("0001-01-01", "9999-12-31"):
        far = await api.call("PUT", f"/api/meters/{METER}/profiles/{day}", json={"values": [1.0] * 96})
        assert "expected a day in 2000..2099" in far.error(400, "day")


async def test_aggregated_history(api: Api) -> None:
    minutes = api.recent.minutes
    start, end = minutes[2], minutes[-1] + timedelta(minutes=1)
    params = {"start": iso(start), "end": iso(end), "aggregate": "average", "interval": "PT1M"}
    answer = await api.call("GET", f"/api/meters/{METER}/history/1-0:1.7.0", params=params)
    assert answer.status == 200, answer.text
    assert answer.data["aggregate"] == "average"
    assert answer.data["unit"] == "kW"
    values = answer.data["values"]
    assert [parse_iso(v["time"]) for v in values] == minutes[2:]
    names = {name for name in dir(ua.StatusCodes) if not name.startswith("_")}
    for value in values:
        assert value["status"] in names, value
    assert all(v["status"].startswith("Good") for v in values), values
    assert [v["value"] for v in values] == pytest.approx([power_mean(k) for k in range(2, RECENT_MINUTES)])

    seconds = await api.call(
        "GET", f"/api/meters/{METER}/history/1-0:1.7.0", params={**params, "interval": "60"}
    )
    assert seconds.data["values"] == values


async def test_history_errors(api: Api) -> None:
    path = f"/api/meters/{METER}/history/1-0:1.8.0"
    start = iso(datetime.now(UTC) - timedelta(minutes=5))
    missing = await api.call("GET", path)
    assert "required" in missing.error(400, "start")
    bad_start = await api.call("GET", path, params={"start": "yesterday"})
    bad_start.error(400, "start")
    bad_aggregate = await api.call(
        "GET", path, params={"start": start, "aggregate": "median", "interval": "PT1M"}
    )
    assert "'median'" in bad_aggregate.error(400, "aggregate")
    no_interval = await api.call("GET", path, params={"start": start, "aggregate": "average"})
    no_interval.error(400, "interval")
    bad_interval = await api.call(
        "GET", path, params={"start": start, "aggregate": "average", "interval": "1h"}
    )
    bad_interval.error(400, "interval")
    bad_limit = await api.call("GET", path, params={"start": start, "limit": "0"})
    bad_limit.error(400, "limit")
    bad_bounds = await api.call("GET", path, params={"start": start, "bounds": "yes"})
    bad_bounds.error(400, "bounds")
    unknown = await api.call("GET", f"/api/meters/{METER}/history/1-0:99.99.0", params={"start": start})
    assert "1-0:99.99.0" in unknown.error(404, "obis")
    unknown_meter = await api.call("GET", "/api/meters/nope/history/1-0:1.8.0", params={"start": start})
    unknown_meter.error(404, "meter")


async def test_events(api: Api) -> None:
    start = iso(datetime.now(UTC) - timedelta(days=3))
    answer = await api.call("GET", f"/api/meters/{METER}/events", params={"start": start})
    assert answer.status == 200, answer.text
    assert answer.data["meter"] == METER
    times = [parse_iso(e["time"]) for e in answer.data["events"]]
    assert times == sorted(times)
    missing = await api.call("GET", f"/api/meters/{METER}/events")
    missing.error(400, "start")
    bad_limit = await api.call("GET", f"/api/meters/{METER}/events", params={"start": start, "limit": "x"})
    bad_limit.error(400, "limit")


# -- external data --------------------------------------------------------------------------


async def test_external_data_by_rest_and_in_opcua(api: Api) -> None:
    listing = await api.call("GET", "/api/external")
    assert listing.status == 200, listing.text
    by_name = {e["name"]: e for e in listing.data}
    assert set(by_name) == {"spot_price", "renewable_share"}
    for entry in by_name.values():
        assert entry["stale"] is True, entry
        assert entry["value"] is None, entry
        assert entry["age_s"] is None, entry
    assert by_name["spot_price"]["unit"] == "EUR/MWh"
    assert by_name["renewable_share"]["fresh_s"] == 900

    put = await api.call("PUT", "/api/external/spot_price", json={"value": 55.5})
    assert put.status == 200, put.text
    assert put.data["value"] == 55.5
    assert put.data["stale"] is False
    assert put.data["origin"] == "rest"
    assert put.data["age_s"] >= 0
    assert ISO_Z.match(put.data["time"])
    assert ISO_Z.match(put.data["received"])
    get = await api.call("GET", "/api/external/spot_price")
    assert get.data["value"] == 55.5
    assert get.data["stale"] is False
    assert get.data["age_s"] >= 0

    hour_ago = iso(datetime.now(UTC) - timedelta(hours=1))
    old = await api.call("PUT", "/api/external/renewable_share", json={"value": 42, "time": hour_ago})
    assert old.status == 200, old.text
    assert old.data["value"] == 42
    assert old.data["stale"] is True
    assert old.data["time"] == hour_ago
    assert old.data["age_s"] == pytest.approx(3600, abs=30)

    json_type = {"Content-Type": "application/json"}
    high = await api.call("PUT", "/api/external/spot_price", json={"value": 5000})
    assert "5000" in high.error(422, "value")
    nan = await api.call("PUT", "/api/external/spot_price", data='{"value": NaN}', headers=json_type)
    nan.error(422, "value")
    text = await api.call("PUT", "/api/external/spot_price", json={"value": "55.5"})
    text.error(400, "value")
    boolean = await api.call("PUT", "/api/external/spot_price", json={"value": True})
    boolean.error(400, "value")
    bad_time = await api.call("PUT", "/api/external/spot_price", json={"value": 1, "time": "noon"})
    bad_time.error(400, "time")
    ahead = iso(datetime.now(UTC) + timedelta(days=1))
    future = await api.call("PUT", "/api/external/spot_price", json={"value": 1, "time": ahead})
    future.error(422, "time")
    unknown_key = await api.call("PUT", "/api/external/spot_price", json={"value": 1, "unit": "EUR"})
    unknown_key.error(400, "unit")
    wrong_type = await api.call(
        "PUT", "/api/external/spot_price", data="55.5", headers={"Content-Type": "text/plain"}
    )
    wrong_type.error(415)
    unknown = await api.call("PUT", "/api/external/gas_price", json={"value": 1})
    assert "'gas_price'" in unknown.error(404, "name")
    unknown_get = await api.call("GET", "/api/external/gas_price")
    unknown_get.error(404, "name")
    still = await api.call("GET", "/api/external/spot_price")
    assert still.data["value"] == 55.5, "a refused value changed the stored one"

    node = api.running.node("SMX.ExternalData.spot_price")
    async with asyncio.timeout(15):
        while True:
            value = await node.read_data_value()
            if value.Value.Value == 55.5 and value.StatusCode.is_good():
                break
            await next_snapshot(api)


# -- archive files --------------------------------------------------------------------------


async def archive_listing(api: Api) -> list[dict[str, Any]]:
    answer = await api.call("GET", f"/api/meters/{METER}/archive")
    assert answer.status == 200, answer.text
    assert answer.data["meter"] == METER
    return list(answer.data["files"])


async def download_matches_disk(api: Api, entry: dict[str, Any]) -> None:
    """The download equals the file; a file being appended to is compared when it held still."""
    path = api.root / METER / entry["stream"] / entry["name"]
    for _ in range(10):
        before = path.read_bytes()
        answer = await api.call("GET", entry["url"])
        assert answer.status == 200, answer.text
        if path.read_bytes() == before:
            assert answer.body == before, entry
            assert entry["name"] in answer.headers["Content-Disposition"]
            return
        await next_snapshot(api)
    raise AssertionError(f"{path} never held still for a download")


async def test_archive_listing_and_downloads(api: Api) -> None:
    today, upcoming, _ = await calendar(api)
    tomorrow = today + timedelta(days=1)
    await ensure_profile(api, tomorrow, profile_values(upcoming[tomorrow]))
    async with asyncio.timeout(60):
        files = await archive_listing(api)
        while not any(f["stream"] == "lp1" for f in files):
            await next_snapshot(api)
            files = await archive_listing(api)
    streams = {f["stream"] for f in files}
    assert {"notified", "lp1", "minute", "registers"} <= streams
    for entry in files:
        assert entry["url"] == f"/api/meters/{METER}/archive/{entry['stream']}/{entry['name']}"
        assert entry["name"] == f"{entry['day']}.csv"
        path = api.root / METER / entry["stream"] / entry["name"]
        assert path.is_file()
        assert entry["size"] <= path.stat().st_size
    assert not any(".replaced-" in f["name"] for f in files)
    for entry in files:
        await download_matches_disk(api, entry)

    notified = next(f for f in files if f["stream"] == "notified" and f["day"] == tomorrow.isoformat())
    data = notified_file(api, tomorrow).read_bytes()
    assert len(data) > 100
    part = await api.call("GET", notified["url"], headers={"Range": "bytes=10-99"})
    assert part.status == 206, part.text
    assert part.body == data[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(data)}"
    tail = await api.call("GET", notified["url"], headers={"Range": "bytes=-20"})
    assert tail.status == 206, tail.text
    assert tail.body == data[-20:]
    assert tail.headers["Content-Range"] == f"bytes {len(data) - 20}-{len(data) - 1}/{len(data)}"

    base = f"/api/meters/{METER}/archive"
    stream = await api.call("GET", f"{base}/nope/{notified['name']}")
    assert "'nope'" in stream.error(404, "stream")
    for name in ("..%2F..%2Fetc%2Fpasswd", "x.csv", "2020-01-01.csv", "..%2F..%2Fmeter1%2Fnotified%2Fx.csv"):
        answer = await api.call("GET", f"{base}/lp1/{name}")
        assert answer.status == 404, answer.text
        assert b"root:" not in answer.body
    unknown_meter = await api.call("GET", "/api/meters/nope/archive")
    unknown_meter.error(404, "meter")


# -- live feed ------------------------------------------------------------------------------


async def next_event(resp: aiohttp.ClientResponse) -> tuple[str, Any]:
    """The next Server-Sent Event: (name, parsed data)."""
    name, data = "message", []
    while True:
        raw = await resp.content.readline()
        assert raw, "the live feed ended"
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                return name, json.loads("\n".join(data), parse_constant=no_constant)
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)


def live_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """The Snapshot schema with the live feed's status, advice and external keys."""
    snapshot = resolve(doc, "#/components/schemas/Snapshot")
    extra = {
        "status": {"$ref": "#/components/schemas/Diagnostics"},
        "advice": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Advice"}]},
        "external": {"type": "array", "items": {"$ref": "#/components/schemas/External"}},
    }
    return {
        **snapshot,
        "properties": {**snapshot["properties"], **extra},
        "required": [*snapshot["required"], *extra],
    }


async def test_alarms_are_listed_and_acknowledged_by_an_operator(api: Api) -> None:
    sim = api.gateway.simulators[METER]
    sim.advance()
    planted = sim.now()
    sim.physics.open_terminal_cover(planted)
    condition = api.gateway.alarms.condition(METER, "TerminalCover")
    async with asyncio.timeout(30):
        while not (condition.state.active and condition.state.time >= planted.replace(microsecond=0)):
            await next_snapshot(api)
    listed = (await api.call("GET", "/api/alarms")).data["alarms"]
    (cover,) = [a for a in listed if a["condition"] == "TerminalCover"]
    assert (cover["source"], cover["type"], cover["severity"]) == (METER, "OffNormalAlarmType", 900)
    assert (cover["active"], cover["acknowledged"], cover["retain"]) == (True, False, True)
    assert [a["severity"] for a in listed] == sorted((a["severity"] for a in listed), reverse=True)
    path = f"/api/alarms/{METER}/TerminalCover/acknowledge"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        viewer = replace(api, session=other)
        await viewer.call("POST", "/api/login", json={"user": "viewer", "password": PASSWORD})
        assert "operator" in (await viewer.call("POST", path, json={"event_id": cover["event_id"]})).error(
            403
        )
    assert "hex" in (await api.call("POST", path, json={"event_id": "not hex"})).error(400)
    assert "BadEventIdUnknown" in (await api.call("POST", path, json={"event_id": "00" * 16})).error(422)
    body = {"event_id": cover["event_id"]}
    unknown = await api.call("POST", f"/api/alarms/{METER}/TerminalCover/silence", json=body)
    assert "known: acknowledge" in unknown.error(404)
    assert "no alarm" in (await api.call("POST", f"/api/alarms/{METER}/Nope/acknowledge", json=body)).error(
        404
    )
    acked = await api.call("POST", path, json={"event_id": cover["event_id"], "comment": "on site"})
    assert acked.status == 200, acked.text
    assert (acked.data["acknowledged"], acked.data["user"], acked.data["comment"]) == (
        True,
        "operator",
        "on site",
    )
    again = await api.call("POST", path, json={"event_id": cover["event_id"]})
    assert "BadConditionBranchAlreadyAcked" in again.error(409)
    assert condition.state.acked


async def test_power_quality_of_the_running_week(api: Api) -> None:
    answer = await api.call("GET", f"/api/meters/{METER}/power-quality")
    week = answer.data
    assert week["week"] == "running"
    start, end = parse_iso(week["start"]), parse_iso(week["end"])
    assert start <= api.gateway.clock.now() < end
    assert week["hours"] in (167, 168, 169)
    names = [c["name"] for c in week["criteria"]]
    assert names[:2] == ["Voltage within Un ±10 %", "Voltage within Un +10 %/−15 %"]
    last = (await api.call("GET", f"/api/meters/{METER}/power-quality", params={"week": "last"})).data
    assert parse_iso(last["end"]) == start
    assert "week" in (
        await api.call("GET", f"/api/meters/{METER}/power-quality", params={"week": "next"})
    ).error(400)
    csv = await api.call("GET", f"/api/meters/{METER}/power-quality.csv")
    assert csv.status == 200
    assert csv.headers["Content-Type"].startswith("text/csv")
    assert csv.body.decode().startswith("criterion,clause,measured,unit,limit,verdict\r\n")


async def test_logins_roles_and_refusals(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """The same users and roles as OPC UA: anonymous reads (demo), viewers read, operators write."""
    # A day of the market's calendar no other test of the module registers (they use
    # tomorrow; a day counted in UTC was the market's tomorrow from 23:00 UTC on).
    today, _upcoming, _days = await calendar(api)
    tomorrow = (today + timedelta(days=3)).isoformat()
    body = {"values": [0.1] * 100}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        guest = replace(api, session=other)
        session = await guest.call("GET", "/api/session")
        assert session.data == {"user": None, "role": None, "anonymous_read": True}
        assert (await guest.call("GET", f"/api/meters/{METER}/snapshot")).status == 200
        # Writing needs a login: 401 with a scheme browsers answer with no password dialog of their own.
        refused = await guest.call("PUT", f"/api/meters/{METER}/profiles/{tomorrow}", json=body)
        assert "log in" in refused.error(401)
        assert refused.headers["WWW-Authenticate"].startswith("SMX-Login")
        assert "log in" in (await guest.call("PUT", "/api/external/spot_price", json={"value": 1})).error(401)

        # A wrong password: 401 after the configured delay, logged with who and why.
        caplog.set_level("WARNING", logger="gateway.security.auth")
        wrong = await guest.call("POST", "/api/login", json={"user": "viewer", "password": "not it at all"})
        assert "wrong" in wrong.error(401)
        assert "login of 'viewer' refused: wrong password" in caplog.text
        assert "smx_session" not in {c.key for c in other.cookie_jar}

        # A viewer reads but may not write (403 names the role needed); nothing is stored.
        ok = await guest.call("POST", "/api/login", json={"user": "viewer", "password": PASSWORD})
        assert ok.data == {"user": "viewer", "role": "viewer", "anonymous_read": True}
        cookie = ok.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP here; HTTPS sets it (test_web_security)
        assert (await guest.call("GET", "/api/session")).data["user"] == "viewer"
        # API answers are nobody's cache entry.
        assert ok.headers["Cache-Control"] == "no-store"
        assert ok.headers["X-Content-Type-Options"] == "nosniff"
        # A second login replaces the session: the first token is worth nothing afterwards.
        first = cookie.split("=", 1)[1].split(";")[0]
        again = await guest.call("POST", "/api/login", json={"user": "viewer", "password": PASSWORD})
        assert again.status == 200
        old = await guest.call("GET", "/api/session", cookies={"smx_session": first})
        assert old.data["user"] is None
        forbidden = await guest.call("PUT", f"/api/meters/{METER}/profiles/{tomorrow}", json=body)
        assert "needs the operator role" in forbidden.error(403)
        assert (await guest.call("GET", f"/api/meters/{METER}/profiles/{tomorrow}")).status == 404
        put = await guest.call("PUT", "/api/external/spot_price", json={"value": 1})
        assert "needs the operator role" in put.error(403)

        # Logged out: anonymous again, the old cookie is worth nothing.
        current = again.headers["Set-Cookie"].split("=", 1)[1].split(";")[0]
        out = await guest.call("POST", "/api/logout")
        assert out.data["user"] is None
        stale = await guest.call("PUT", "/api/external/spot_price", json={"value": 1},
                                 cookies={"smx_session": current})  # fmt: skip
        stale.error(401)

    # Scripts may send Basic authentication (a header, never the URL) instead of the cookie.
    async with aiohttp.ClientSession() as script:
        basic = replace(api, session=script)
        auth = {"Authorization": aiohttp.encode_basic_auth("operator", PASSWORD)}
        answer = await basic.call("PUT", "/api/external/spot_price", json={"value": 77.5}, headers=auth)
        assert answer.status == 200, answer.text
        assert answer.data["value"] == 77.5
        bad = {"Authorization": aiohttp.encode_basic_auth("operator", "wrong password!")}
        (await basic.call("PUT", "/api/external/spot_price", json={"value": 1}, headers=bad)).error(401)
        garbage = await basic.call("GET", "/api/session", headers={"Authorization": "Basic %%%"})
        assert "malformed" in garbage.error(401)

    # Login bodies are checked like every other body.
    assert "password" in (await api.call("POST", "/api/login", json={"user": "x"})).error(400)
    (await api.call("POST", "/api/login", data="user=x&password=y")).error(415)


async def test_a_removed_user_is_logged_out(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.security.auth.RECHECK_S", 0.0)  # look at the file before every request
    users = api.gateway.config.security.users
    add_user(api.gateway.config, "leaving", Role.OPERATOR)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        client = replace(api, session=other)
        ok = await client.call("POST", "/api/login", json={"user": "leaving", "password": PASSWORD})
        assert ok.data["role"] == "operator"
        db = UserDb.load(users)
        db.set_role("leaving", Role.VIEWER)
        db.save()
        assert (await client.call("GET", "/api/session")).data["role"] == "viewer"
        (await client.call("PUT", "/api/external/spot_price", json={"value": 3})).error(403)
        db.remove("leaving")
        db.save()
        assert (await client.call("GET", "/api/session")).data["user"] is None
        (await client.call("PUT", "/api/external/spot_price", json={"value": 3})).error(401)


async def test_live_feed(api: Api) -> None:
    schema = live_schema(api.doc)
    async with api.stream("/api/live") as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-cache"
        async with asyncio.timeout(15):
            name, first = await next_event(resp)
            assert name == "snapshot"
            assert validate(first, schema, api.doc) == []
            assert first["meter"] == METER
            assert {e["name"] for e in first["external"]} == {"spot_price", "renewable_share"}
            times = [parse_iso(first["time"])]
            while len(times) < 3:
                name, data = await next_event(resp)
                assert name == "snapshot"
                assert validate(data, schema, api.doc) == []
                if data["meter"] == METER:
                    times.append(parse_iso(data["time"]))
    assert times == sorted(times), times
    assert len(set(times)) == len(times), times


# -- last: moves the gateway's clock --------------------------------------------------------


async def test_advice_right_after_a_period_boundary(api: Api) -> None:
    """The advice *now* (no ``at``) after a period has ended but before the next snapshot
    is the new period's, not a 422 for an ``at`` the client never sent. The clock is moved
    to just past the period end right after a snapshot, so the request lands in that window."""
    clock = api.gateway.clock
    assert isinstance(clock, ScaledClock)
    snapshot = await next_snapshot(api)
    period_end = api.gateway.desk.calendar.period_at(snapshot.time).end
    clock.jump((period_end - clock.now()).total_seconds() + 0.05)
    answer = await api.call("GET", f"/api/meters/{METER}/advice")
    assert answer.status == 200, answer.text
    assert parse_iso(answer.data["period"]["start"]) == period_end
    assert math.isclose(answer.data["remaining_s"], 900 - 0.05, abs_tol=1.0)
