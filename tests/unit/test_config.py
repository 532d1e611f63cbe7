"""Configuration: the example validates; every mistake names file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import MeterConfig, OpcUaLimits, demo_config, load_config, one_second_set
from gateway.errors import ConfigError
from gateway.obis import Obis

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smx.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_committed_example_is_valid() -> None:
    config = load_config(ROOT / "smx.example.toml")
    assert [m.id for m in config.meters] == ["meter1"]
    assert config.meters[0].url == "/dev/ttyUSB0"
    assert config.opcua.endpoint == "opc.tcp://127.0.0.1:4840/smx"


def test_several_meters_each_with_its_own_link(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
[[meters]]
id = "a"
url = "/dev/ttyUSB0"
[[meters]]
id = "b"
url = "socket://127.0.0.1:4059"
baudrate = 19200
values = ["1-0:32.7.0", "1-0:1.7.0"]
""",
        )
    )
    assert [(m.id, m.url) for m in config.meters] == [("a", "/dev/ttyUSB0"), ("b", "socket://127.0.0.1:4059")]
    assert config.meters[1].values == (Obis.parse("1-0:32.7.0"), Obis.parse("1-0:1.7.0"))
    # restricting values keeps the catalogue's priority order
    assert one_second_set(config.meters[1]) == (Obis.parse("1-0:1.7.0"), Obis.parse("1-0:32.7.0"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[meters]]\nid = "m"\nurl = "x"\nbaudrate = 9601\n',
            r"smx.toml: meters\[0\].baudrate: expected one of 300, .*19200, got 9601",
        ),
        (
            '[[meters]]\nid = "m"\nurl = "x"\nbaudrate = "fast"\n',
            r"meters\[0\].baudrate: expected int, got 'fast'",
        ),
        ('[[meters]]\nid = "m"\nurl = "x"\nbuadrate = 9600\n', r"meters\[0\].buadrate: unknown key"),
        ('[[meters]]\nurl = "x"\n', r"meters\[0\].id: expected an identifier"),
        ('[[meters]]\nid = "1bad"\nurl = "x"\n', r"meters\[0\].id: expected an identifier"),
        ('[[meters]]\nid = "m"\n', r"meters\[0\].url: expected a serial device path"),
        (
            '[[meters]]\nid = "m"\nurl = "x"\n[[meters]]\nid = "m"\nurl = "y"\n',
            r"meters\[1\].id: expected a unique id",
        ),
        (
            '[[meters]]\nid = "m"\nurl = "x"\nvalues = ["1-0:99.99.0"]\n',
            r"values\[0\]: expected an OBIS code of the catalogue",
        ),
        (
            '[[meters]]\nid = "m"\nurl = "x"\nloss_timeout_s = 0\n',
            r"loss_timeout_s: expected a positive number",
        ),
        (
            '[[meters]]\nid = "m"\nurl = "x"\nprotocol = "dlms-hdlc"\n',
            r"meters\[0\].protocol: expected one of dlms, dlms-mode-e, iec62056-21, got 'dlms-hdlc'",
        ),
        (
            '[[meters]]\nid = "m"\nurl = "x"\nreferencing = "short"\n',
            r"meters\[0\].referencing: expected one of ln, sn, got 'short'",
        ),
        (
            '[[meters]]\nid = "m"\nurl = "x"\nphysical_address = 200\n',
            r"meters\[0\].physical_address: expected an integer 0..127, got 200",
        ),
        (
            '[[meters]]\nid = "m"\nurl = "x"\nclient_address = 0\n',
            r"meters\[0\].client_address: expected an integer 1..127, got 0",
        ),
        (
            '[[meters]]\nid = "m"\nurl = "x"\nserver_address_size = 3\n',
            r"meters\[0\].server_address_size: expected one of 1, 2, 4, got 3",
        ),
        ('[opcua]\nport = 70000\n[[meters]]\nid = "m"\nurl = "x"\n', r"opcua.port: expected a port number"),
        (
            '[[meters]]\nid = "m"\nurl = "x"\ntimezone = "Europe/Wien"\n',
            r"meters\[0\].timezone: expected an IANA time zone name like 'Europe/Vienna'",
        ),
        (
            '[archive.keep_days]\nminute = -1\n[[meters]]\nid = "m"\nurl = "x"\n',
            r"archive.keep_days.minute: expected",
        ),
        (
            '[archive]\nkeep = 3\n[[meters]]\nid = "m"\nurl = "x"\n',
            r"archive.keep: unknown key",
        ),
        ("log_level = 'INFO'\n", r"smx.toml: meters: expected at least one \[\[meters\]\] table"),
        ("[[meters]\n", r"smx.toml: not valid TOML"),
    ],
)
def test_errors_name_file_key_and_expectation(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read"):
        load_config(tmp_path / "nope.toml")


def test_demo_config_runs_a_simulated_meter_on_loopback() -> None:
    config = demo_config()
    assert config.opcua.host == "127.0.0.1"
    (meter,) = config.meters
    assert meter.simulator is not None
    assert meter.simulator.host == "127.0.0.1"
    assert meter.url.startswith("socket://127.0.0.1:")


@pytest.mark.parametrize("field", ["address", "password"])
@pytest.mark.parametrize("value", ["12(34", "a!b", "x" * 33, "pass word"])
def test_texts_sent_inside_iec_messages_are_checked(tmp_path: Path, field: str, value: str) -> None:
    text = f'[[meters]]\nid = "m"\nurl = "x"\n{field} = "{value}"\n'
    with pytest.raises(ConfigError, match=rf"meters\[0\].{field}: expected at most 32 printable ASCII"):
        load_config(write(tmp_path, text))


def test_dlms_meter_and_its_simulator_share_the_line_speed(tmp_path: Path) -> None:
    text = """
[[meters]]
id = "zmd"
protocol = "dlms"
referencing = "sn"
baudrate = 19200
physical_address = 5000
server_address_size = 4
[meters.simulator]
referencing = "sn"
"""
    (meter,) = load_config(write(tmp_path, text)).meters
    assert (meter.protocol, meter.referencing, meter.physical_address) == ("dlms", "sn", 5000)
    assert meter.simulator is not None
    assert meter.simulator.hdlc_baudrate == 19200, "a direct HDLC line has one speed for both ends"
    assert meter.response_timeout == 0.5, "the DLMS default"
    iec = MeterConfig(id="m", url="x", protocol="iec62056-21")
    assert iec.response_timeout == 1.5, "IEC 62056-21 allows tr up to 1.5 s"
    assert MeterConfig(id="m", url="x", response_timeout_s=2.0).response_timeout == 2.0


def test_archive_section_sets_path_retention_and_backfill(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
[archive]
path = "/srv/smx/archive"
max_backfill_days = 10
[archive.keep_days]
lp1 = 3650
minute = 0
[[meters]]
id = "m"
url = "x"
timezone = "Europe/Vienna"
""",
        )
    )
    assert config.archive.path == "/srv/smx/archive"
    assert config.archive.max_backfill_days == 10.0
    assert config.archive.keep("lp1") == 3650
    assert config.archive.keep("minute") == 0  # forever
    assert config.archive.keep("events") == 731  # default kept
    assert config.meters[0].timezone == "Europe/Vienna"


def test_market_web_and_external_sections(tmp_path: Path) -> None:
    config = load_config(ROOT / "smx.example.toml")
    assert (config.market.period_minutes, config.market.timezone) == (15, "CET")
    assert (config.web.host, config.web.port) == ("127.0.0.1", 8080)
    assert [e.name for e in config.external] == ["spot_price", "renewable_share"]
    assert (config.external[0].low, config.external[0].high) == (-500.0, 4000.0)
    pulled = load_config(
        write(
            tmp_path,
            '[[external]]\nname = "price"\nsource = "https://example.org/p.json"\nfield = "data.0.price"\n'
            '[[meters]]\nid = "m"\nurl = "x"\n',
        )
    )
    assert pulled.external[0].source == "https://example.org/p.json"
    assert (pulled.external[0].low, pulled.external[0].high) == (None, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[market]\nperiod_minutes = 30\n", r"market.period_minutes: expected one of 15, 60, got 30"),
        ('[market]\ntimezone = "Mars/Olympus"\n', r"market.timezone: expected an IANA time zone name"),
        ("[web]\nport = 70000\n", r"web.port: expected a port number 0..65535, got 70000"),
        ('[[external]]\nname = "Spot Price"\n', r"external\[0\].name: expected a name like spot_price"),
        (
            '[[external]]\nname = "a"\n[[external]]\nname = "a"\n',
            r"external\[1\].name: expected a unique name",
        ),
        (
            '[[external]]\nname = "a"\nsource = "ftp://x"\n',
            r"external\[0\].source: expected an http\(s\):// URL",
        ),
        (
            '[[external]]\nname = "a"\nlow = 5\nhigh = 1\n',
            r"external\[0\].high: expected a number >= low \(5\)",
        ),
        ('[[external]]\nname = "a"\nfresh = 5\n', r"external\[0\].fresh: unknown key"),
    ],
)
def test_market_web_and_external_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text + '[[meters]]\nid = "m"\nurl = "x"\n'))


def test_a_configuration_file_is_production_unless_it_says_otherwise(tmp_path: Path) -> None:
    bare = load_config(write(tmp_path, '[[meters]]\nid = "m"\nurl = "x"\n')).security
    assert bare.profile == "production"
    assert bare.policies == ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
    assert bare.modes == ("SignAndEncrypt",)
    assert bare.anonymous is False
    assert (bare.pki, bare.users) == ("certs", "certs/users")
    demo = demo_config().security
    assert (demo.profile, demo.anonymous) == ("demo", True)
    assert (demo.pki, demo.users) == ("var/certs", "var/certs/users")
    tuned = load_config(
        write(
            tmp_path,
            '[security]\nprofile = "demo"\nmodes = ["Sign", "SignAndEncrypt"]\n'
            'policies = ["Basic256Sha256"]\n'
            'hostnames = ["smx-17.example.net", "10.88.0.17"]\nlogin_delay_s = 2\n'
            '[web]\nhttps = true\n[[meters]]\nid = "m"\nurl = "x"\n',
        )
    )
    assert tuned.security.anonymous is True  # the demo's default
    assert tuned.security.modes == ("Sign", "SignAndEncrypt")
    assert tuned.security.hostnames == ("smx-17.example.net", "10.88.0.17")
    assert tuned.security.login_delay_s == 2.0
    assert tuned.web.https is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[security]\nprofile = "open"\n', r"security.profile: expected one of production, demo"),
        ('[security]\npolicies = ["None"]\n', r"security.policies: expected a non-empty list of distinct"),
        ('[security]\npolicies = ["Basic128Rsa15"]\n', r"security.policies: expected a non-empty list"),
        ("[security]\npolicies = []\n", r"security.policies: expected a non-empty list"),
        ('[security]\nmodes = ["None"]\n', r"security.modes: expected a non-empty list of distinct names"),
        ('[security]\nanonymous = "yes"\n', r"security.anonymous: expected bool"),
        ("[security]\nhostnames = [1]\n", r"security.hostnames: expected a list of DNS names"),
        ("[security]\nlogin_delay_s = -1\n", r"security.login_delay_s: expected"),
        ('[security]\npassword = "x"\n', r"security.password: unknown key"),
    ],
)
def test_security_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text + '[[meters]]\nid = "m"\nurl = "x"\n'))


def test_opcua_limits(tmp_path: Path) -> None:
    example = load_config(ROOT / "smx.example.toml").opcua.limits
    assert example == OpcUaLimits()  # the example documents the defaults
    tuned = load_config(
        write(
            tmp_path,
            "[opcua.limits]\nmax_sessions = 5\nmin_publishing_interval_ms = 500\n"
            '[[meters]]\nid = "m"\nurl = "x"\n',
        )
    ).opcua.limits
    assert (tuned.max_sessions, tuned.min_publishing_interval_ms) == (5, 500.0)
    for text, message in (
        ("max_sessions = 0", r"opcua.limits.max_sessions: expected an integer 1..100000, got 0"),
        ("max_message_size = 1000", r"opcua.limits.max_message_size: expected an integer 65536..1073741824"),
        ("min_sampling_interval_ms = -1", r"opcua.limits.min_sampling_interval_ms: expected"),
        ("max_items = 3", r"opcua.limits.max_items: unknown key"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, f'[opcua.limits]\n{text}\n[[meters]]\nid = "m"\nurl = "x"\n'))


def test_opcua_node_cache(tmp_path: Path) -> None:
    assert load_config(ROOT / "smx.example.toml").opcua.node_cache == "var/cache"  # the default, documented
    text = '[opcua]\nnode_cache = ""\n[[meters]]\nid = "m"\nurl = "x"\n'
    assert load_config(write(tmp_path, text)).opcua.node_cache == ""  # kept in memory
    with pytest.raises(ConfigError, match=r"opcua.node_cache: expected"):
        load_config(write(tmp_path, '[opcua]\nnode_cache = 5\n[[meters]]\nid = "m"\nurl = "x"\n'))


def test_alarm_limits(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, '[alarms]\nnominal_v = 240\ndelay_s = 0\n[[meters]]\nid = "m"\nurl = "x"\n')
    )
    assert (config.alarms.nominal_v, config.alarms.delay_s, config.alarms.voltage_band_pct) == (
        240.0,
        0.0,
        10.0,
    )
    example = load_config(ROOT / "smx.example.toml")
    assert example.alarms == demo_config().alarms  # the example states the defaults


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[alarms]\nfrequency_low_hz = 51\n",
            r"alarms.frequency_low_hz: expected frequency_low_low_hz < low",
        ),
        (
            "[alarms]\nvoltage_outer_pct = 5\n",
            r"alarms.voltage_outer_pct: expected more than voltage_band_pct",
        ),
        ("[alarms]\ndelay_s = -1\n", r"alarms.delay_s: expected"),
        ("[alarms]\nvoltage_band = 10\n", r"alarms.voltage_band: unknown key"),
    ],
)
def test_alarm_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text + '[[meters]]\nid = "m"\nurl = "x"\n'))
