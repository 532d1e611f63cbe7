"""The head-end's configuration: secure by default, every mistake named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from headend.config import load_config, parse_config, with_listen

SECURE = {
    "broker": {
        "url": "mqtts://broker.example.net:8883",
        "ca": "ca.pem",
        "certificate": "h.crt",
        "key": "h.key",
    },
    "storage": {"backend": "postgresql", "dsn": "postgresql://smx@db.example.net/smx", "password_file": "pw"},
    "sites": [{"publisher": "smx-17", "timezone": "Europe/Vienna", "name": "Vienna 17"}],
}


def test_a_production_configuration() -> None:
    config = parse_config(SECURE, "headend.toml")
    assert config.broker.group == "smx-headend"
    assert config.storage.backend == "postgresql"
    assert config.site("smx-17").name == "Vienna 17"
    assert config.site("smx-99").timezone == "Europe/Vienna"  # unlisted sites get the defaults
    assert "secret" not in repr(
        parse_config({**SECURE, "broker": {**SECURE["broker"], "password": "secret"}}, "x")
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"broker": {"url": "mqtt://broker:1883"}}, "plain MQTT only in the demo profile"),
        ({"broker": {"url": "mqtts://broker:8883"}}, "broker.ca"),
        ({"broker": {"url": "mqtts://b:8883", "ca": "c"}}, "client certificate"),
        ({"broker": {"url": "https://b"}}, "broker.url"),
        ({"broker": {**SECURE["broker"], "group": "a/b"}}, "broker.group"),
        ({"storage": {"backend": "postgresql", "dsn": "postgresql://smx:pw@db/smx"}}, "without the password"),
        ({"storage": {"backend": "oracle"}}, "storage.backend"),
        (
            {"sites": [{"publisher": "smx-17", "timezone": "Mars/Olympus"}]},
            "sites.0..timezone|sites\\[0\\].timezone",
        ),
        ({"sites": [{"publisher": "a"}, {"publisher": "a"}]}, "unique"),
        ({"color": "red"}, "color"),
        ({"http": {"listen": "0.0.0.0:8090"}}, "http.token_file: expected a bearer token file"),
        ({"http": {"listen": "[::]:8090"}}, "http.token_file"),
        ({"http": {"listen": "headend.example.net:8090"}}, "http.token_file"),
        ({"http": {"listen": "127.0.0.1"}}, "http.listen: expected host:port"),
        ({"http": {"listen": "127.0.0.1:70000"}}, "port 0..65535"),
        ({"http": {"listen": "::1:8090"}}, "IPv6 address in brackets"),
        ({"http": {"listen": "127.0.0.1:8090", "tls": True}}, "http.tls"),
    ],
)
def test_mistakes_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**SECURE, **change}, "headend.toml")


def test_without_a_broker_only_the_demo_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[broker\] is needed"):
        parse_config({}, "x")
    demo = parse_config({"profile": "demo"}, "x")
    assert demo.broker.url == "mqtt://127.0.0.1:1883"
    assert demo.storage.backend == "sqlite"
    path = tmp_path / "headend.toml"
    path.write_text('profile = "demo"\n[storage]\npath = "x.sqlite"\n')
    assert load_config(path).storage.path == "x.sqlite"
    path.write_text("profile = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_the_committed_example_is_valid_and_states_the_defaults() -> None:
    from headend.config import CompletenessConfig, HttpConfig

    example = load_config(Path(__file__).resolve().parents[2] / "headend.example.toml")
    assert example.storage.backend == "postgresql"
    assert example.completeness == CompletenessConfig()
    assert example.site("smx-17").timezone == "Europe/Vienna"
    assert example.http == HttpConfig()


def test_the_api_listens_on_loopback_unless_a_token_guards_it() -> None:
    from headend.config import HttpConfig

    assert parse_config(SECURE, "x").http == HttpConfig("127.0.0.1:8090", "")
    for listen, host, port in [("localhost:0", "localhost", 0), ("[::1]:8090", "::1", 8090)]:
        http = parse_config({**SECURE, "http": {"listen": listen}}, "x").http
        assert (http.host, http.port) == (host, port)
    # Off loopback in either profile only with a token (it hands out every site's data).
    for profile in ("production", "demo"):
        with pytest.raises(ConfigError, match="token_file"):
            parse_config({**SECURE, "profile": profile, "http": {"listen": "0.0.0.0:8090"}}, "x")
    guarded = parse_config({**SECURE, "http": {"listen": "0.0.0.0:8090", "token_file": "t"}}, "x").http
    assert (guarded.host, guarded.port, guarded.token_file) == ("0.0.0.0", 8090, "t")


def test_run_listen_overrides_http_with_the_same_checks(tmp_path: Path) -> None:
    config = parse_config({"profile": "demo"}, "x")
    assert with_listen(config, "127.0.0.1:0").http.listen == "127.0.0.1:0"
    with pytest.raises(ConfigError, match="off loopback needs \\[http\\] token_file"):
        with_listen(config, "0.0.0.0:8090")
    with pytest.raises(ConfigError, match="--listen 'nowhere'"):
        with_listen(config, "nowhere")
    token = tmp_path / "token"
    token.write_text("a-token-of-the-fleet-page\n")
    guarded = parse_config({"profile": "demo", "http": {"token_file": str(token)}}, "x")
    assert with_listen(guarded, "0.0.0.0:8090").http.listen == "0.0.0.0:8090"


def test_the_portfolio_opcua_server_is_off_unless_configured_and_secure_by_default() -> None:
    from gateway.config import SecurityConfig
    from headend.config import HEADEND_OPCUA

    assert parse_config(SECURE, "x").opcua is None
    config = parse_config({**SECURE, "opcua": {"port": 4841, "limits": {"max_sessions": 8}}}, "x")
    assert config.opcua is not None
    assert (config.opcua.port, config.opcua.path, config.opcua.application_uri) == (
        4841, "/smx-headend", HEADEND_OPCUA.application_uri,
    )  # fmt: skip
    assert config.opcua.limits.max_sessions == 8
    # [security] is the gateway's table with its defaults: production, no None endpoint, no anonymous.
    assert config.security == SecurityConfig()
    assert not config.security.demo
    assert not config.security.anonymous
    custom = parse_config({**SECURE, "opcua": {}, "security": {"pki": "pki", "users": "pki/users"}}, "x")
    assert (custom.security.pki, custom.security.users) == ("pki", "pki/users")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"security": {"pki": "pki"}}, r"security: only for the OPC UA server, which needs \[opcua\]"),
        ({"opcua": {"path": "smx"}}, "opcua.path: expected a path like /smx"),
        ({"opcua": {"colour": 1}}, "opcua.colour: unknown key"),
        ({"opcua": {}, "security": {"policies": ["None"]}}, "security.policies"),
        ({"opcua": {}, "security": {"profile": "lax"}}, "security.profile"),
    ],
)
def test_opcua_and_security_mistakes_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**SECURE, **change}, "headend.toml")
