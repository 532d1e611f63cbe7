"""External energy data: one validation for every path in, staleness by the value's own
time, and sources pulled from a JSON file or a loopback HTTP server."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.clock import ManualClock
from gateway.config import ExternalConfig
from gateway.errors import ArchiveError, MarketInputError
from gateway.market.external import ExternalData
from gateway.market.sources import SourceError, SourcePuller, parse, pick
from gateway.market.store import ExternalStore
from tests.support.loopback import serve

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PRICE = ExternalConfig("spot_price", "EUR/MWh", "Day-ahead price", fresh_s=3600, low=-500, high=4000)


def test_a_value_is_fresh_until_its_time_plus_fresh_s() -> None:
    data = ExternalData((PRICE,))
    assert data.state("spot_price", NOW).stale  # never received
    data.put("spot_price", 87.5, now=NOW, origin="rest")
    assert not data.state("spot_price", NOW + timedelta(seconds=3600)).stale
    later = data.state("spot_price", NOW + timedelta(seconds=3601))
    assert later.stale
    assert later.age_s == 3601
    assert later.value is not None
    assert later.value.value == 87.5  # the last value stays, marked
    old = data.put("spot_price", 90, now=NOW, time=NOW - timedelta(hours=2), origin="rest")
    assert old.time == NOW - timedelta(hours=2)
    assert data.state("spot_price", NOW).stale


@pytest.mark.parametrize(
    ("value", "message", "out_of_range"),
    [
        (math.nan, "nan is not a finite value", False),
        (math.inf, "inf is not a finite value", True),
        (5000, "5000 EUR/MWh is outside [-500, 4000]", True),
        ("87", "expected a number, got str '87'", False),
        (True, "expected a number, got bool True", False),
    ],
)
def test_bad_values_are_refused_and_the_old_one_stays(
    value: object, message: str, out_of_range: bool
) -> None:
    data = ExternalData((PRICE,))
    data.put("spot_price", 50, now=NOW, origin="rest")
    with pytest.raises(MarketInputError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        data.put("spot_price", value, now=NOW, origin="rest")
    assert err.value.out_of_range is out_of_range
    assert err.value.field == "value"
    state = data.state("spot_price", NOW)
    assert state.value is not None
    assert state.value.value == 50


def test_naive_or_far_future_times_and_unknown_names_are_refused() -> None:
    data = ExternalData((PRICE,))
    with pytest.raises(MarketInputError, match="must say its offset"):
        data.put("spot_price", 1, now=NOW, time=datetime(2026, 11, 26, 12), origin="rest")
    with pytest.raises(MarketInputError, match="further ahead than the value stays fresh"):
        data.put("spot_price", 1, now=NOW, time=NOW + timedelta(hours=2), origin="rest")
    with pytest.raises(KeyError, match="no external value 'price' \\(known: spot_price\\)"):
        data.put("price", 1, now=NOW, origin="rest")


def test_pick_follows_keys_and_indexes() -> None:
    doc = {"data": [{"price": 81.2, "start": "2026-11-26T12:00:00Z"}, {"price": 90.0}]}
    assert pick(doc, "data.0.price") == 81.2
    assert pick(doc, "data.-1.price") == 90.0
    with pytest.raises(SourceError, match="index 5 is outside a list of 2"):
        pick(doc, "data.5.price")
    with pytest.raises(SourceError, match="no 'cost' in the document"):
        pick(doc, "data.0.cost")
    config = ExternalConfig("p", field="data.0.price", time_field="data.0.start")
    value, at = parse(config, json.dumps(doc).encode())
    assert (value, at) == (81.2, datetime(2026, 11, 26, 12, tzinfo=UTC))
    with pytest.raises(SourceError, match="not JSON"):
        parse(config, b"<html>")


async def test_file_and_http_sources_are_pulled_and_failures_shown(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    source = tmp_path / "share.json"
    share = ExternalConfig("renewable_share", "%", source=str(source), field="now", low=0, high=100)
    price = ExternalConfig("spot_price", "EUR/MWh", field="data.0.price", time_field="data.0.start")
    served = {"data": [{"price": 81.2, "start": "2026-11-26T11:00:00Z"}]}

    async def prices(request: web.Request) -> web.Response:
        return web.json_response(served)

    app = web.Application()
    app.router.add_get("/prices.json", prices)
    async with serve(app) as base:
        price = ExternalConfig(price.name, price.unit, source=f"{base}prices.json",
                               field=price.field, time_field=price.time_field)  # fmt: skip
        data = ExternalData((share, price))
        puller = SourcePuller(data, clock)
        async with aiohttp.ClientSession() as session:
            assert not await puller.pull(session, share)  # no file yet
            assert "cannot read" in data.state("renewable_share", NOW).source_error
            source.write_text(json.dumps({"now": 140}))
            assert not await puller.pull(session, share)  # refused like a REST PUT
            assert "outside [0, 100]" in data.state("renewable_share", NOW).source_error
            source.write_text(json.dumps({"now": 63.5}))
            assert await puller.pull(session, share)
            state = data.state("renewable_share", NOW)
            assert (state.value and state.value.value, state.source_error) == (63.5, "")
            assert await puller.pull(session, price)
            got = data.state("spot_price", NOW)
            assert got.value is not None
            assert (got.value.value, got.value.time, got.age_s) == (81.2, NOW - timedelta(hours=1), 3600)
            assert got.value.origin.startswith("http://127.0.0.1")
            bad = ExternalConfig("spot_price", source=f"{base}missing.json")
            assert not await puller.pull(session, bad)
            assert data.state("spot_price", NOW).source_error == "HTTP 404 Not Found"


async def test_a_source_sent_in_chunks_or_hostile_is_handled() -> None:
    """A document that arrives in several chunks is read whole; one that breaks the JSON
    parser (deep nesting) is a source error, not a stopped gateway."""
    padding = " " * 200_000  # several TCP segments and chunks

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in ('{"value":', padding, " 42.5", padding, "}"):
            await response.write(part.encode())
        await response.write_eof()
        return response

    async def hostile(request: web.Request) -> web.Response:
        return web.Response(text="[" * 100_000 + "]" * 100_000, content_type="application/json")

    app = web.Application()
    app.router.add_get("/chunked.json", chunked)
    app.router.add_get("/hostile.json", hostile)
    async with serve(app) as base:
        good = ExternalConfig("spot_price", source=f"{base}chunked.json")
        bad = ExternalConfig("renewable_share", source=f"{base}hostile.json")
        data = ExternalData((good, bad))
        puller = SourcePuller(data, ManualClock(NOW))
        async with aiohttp.ClientSession() as session:
            assert await puller.pull(session, good)
            assert not await puller.pull(session, bad)
        value = data.state("spot_price", NOW).value
        assert value is not None
        assert value.value == 42.5
        assert "RecursionError" in data.state("renewable_share", NOW).source_error


def test_values_survive_a_restart_and_the_new_configuration_is_respected(tmp_path: Path) -> None:
    share = ExternalConfig("renewable_share", "%", low=0, high=100)
    data = ExternalData((PRICE, share))
    data.put("spot_price", 87.5, now=NOW, time=NOW - timedelta(minutes=5), origin="rest")
    data.put("renewable_share", 63.0, now=NOW, origin="opcua")
    store = ExternalStore(tmp_path)
    store.save(data.values())
    # After the restart the price's bounds were narrowed and renewable_share was removed.
    narrowed = ExternalConfig("spot_price", "EUR/MWh", low=-500, high=80)
    again = ExternalData((narrowed, ExternalConfig("co2", "g/kWh")))
    assert again.restore(store.load()) == 0
    again = ExternalData((PRICE,))
    assert again.restore(store.load()) == 1
    state = again.state("spot_price", NOW + timedelta(minutes=5))
    assert state.value == data.state("spot_price", NOW).value  # value, times and origin
    assert state.age_s == 600
    (tmp_path / "external.json").write_text("{not json")
    with pytest.raises(ArchiveError, match=r"external\.json: unreadable external values"):
        store.load()
    assert ExternalStore(tmp_path / "none").load() == []
