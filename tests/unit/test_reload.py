"""What a SIGHUP may change while the gateway runs (gateway/reload.py): the table of live
settings, everything else named as needing a restart."""

from __future__ import annotations

from dataclasses import replace

from gateway.config import ExternalConfig, GatewayConfig, demo_config
from gateway.reload import ReloadPlan, plan

BASE = replace(demo_config(), external=(ExternalConfig("spot_price", "EUR/MWh", source="/srv/price.json"),))


def _external(**changes: object) -> GatewayConfig:
    return replace(BASE, external=(replace(BASE.external[0], **changes),))


def test_nothing_changed_is_nothing_to_do() -> None:
    assert plan(BASE, replace(BASE, source="/etc/smx/smx.toml")) == ReloadPlan()
    assert not plan(BASE, BASE).applies


def test_the_market_rules_and_how_external_values_are_pulled_apply_live() -> None:
    market = replace(BASE.market, limit_kw=50.0, allow_past=True)
    assert plan(BASE, replace(BASE, market=market)) == ReloadPlan(("market.allow_past", "market.limit_kw"))
    got = plan(BASE, _external(source="https://example.net/price", pull_s=60.0, high=500.0))
    assert got == ReloadPlan(
        ("external.spot_price.source", "external.spot_price.pull_s", "external.spot_price.high")
    )
    assert got.applies
    assert plan(BASE, replace(BASE, log_level="DEBUG")) == ReloadPlan(("log_level",))


def test_what_shapes_nodes_lines_or_sockets_needs_a_restart() -> None:
    meter = replace(BASE.meters[0], baudrate=19200)
    cases = {
        "meters[meter1].baudrate": replace(BASE, meters=(meter,)),
        "meters[meter2] (added)": replace(BASE, meters=(*BASE.meters, replace(meter, id="meter2"))),
        "opcua.port": replace(BASE, opcua=replace(BASE.opcua, port=4841)),
        "market.timezone": replace(BASE, market=replace(BASE.market, timezone="Europe/London")),
        "external.spot_price.unit": _external(unit="ct/kWh"),
        "external.co2 (added)": replace(BASE, external=(*BASE.external, ExternalConfig("co2", "g/kWh"))),
        "security.users": replace(BASE, security=replace(BASE.security, users="/elsewhere/users")),
    }
    for name, loaded in cases.items():
        got = plan(BASE, loaded)
        assert got.restart == (name,), (name, got)
        assert not got.applies


def test_all_or_nothing_a_restart_anywhere_applies_nothing() -> None:
    loaded = replace(BASE, market=replace(BASE.market, limit_kw=5.0), web=replace(BASE.web, port=8081))
    got = plan(BASE, loaded)
    assert (got.live, got.restart) == (("market.limit_kw",), ("web.port",))
    assert not got.applies
