"""Typed, frozen configuration from a TOML file, validated once.

Every problem is reported as a :class:`ConfigError` naming the file, the key path and
what was expected (``smx.toml: meters[0].baudrate: expected one of 300, ..., 19200, got 9601``).
Unknown keys are errors too: a typo must not silently fall back to a default.

With no file at all, :func:`demo_config` describes the demo: one simulated meter in the
same process, reached through the real transport and protocol code.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.localtime import meter_zone
from gateway.obis import CATALOGUE, Obis, ObisInfo, Refresh
from gateway.pubsub.topics import check_level, check_prefix
from gateway.streams import STREAMS

BAUDRATES = (300, 600, 1200, 2400, 4800, 9600, 19200)
#: ``dlms``: DLMS/COSEM over HDLC from the first byte (RS232/RS485 port, 8N1);
#: ``dlms-mode-e``: HDLC reached by an IEC 62056-21 sign-on (optical probe, mode E);
#: ``iec62056-21``: mode C programming mode, one R5 per value.
PROTOCOLS = ("dlms", "dlms-mode-e", "iec62056-21")
REFERENCING = ("ln", "sn")
_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """The built-in simulated meter (``smx-gateway run`` without a file, or ``simulate``)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: the OS picks a free port
    seed: int = 1
    speed: float = 1.0  # meter time runs this many times faster than real time
    drift_ppm: float = 0.0
    history_days: float = 40.0
    reaction_time_s: float = 0.02  # the identification's third letter tells the gateway
    max_baudrate: int = 19200  # announced by the identification's baud character
    serial_number: str = "54800102"
    #: DLMS: application contexts the simulated meter accepts ("ln", "sn" or "both").
    referencing: str = "both"
    #: DLMS: HDLC physical (lower) address of the simulated meter.
    physical_address: int = 17
    #: DLMS low-level security and IEC 62056-21 programming-mode password.
    password: str = "00000000"
    #: Speed of a direct HDLC line (a meter section's simulator defaults to its baudrate).
    hdlc_baudrate: int = 9600
    #: IEC 62056-21: profile and logbook stamps in this zone's local time with the season
    #: digit (IANA name, e.g. "Europe/Vienna"); "" = UTC stamps (season digit 2).
    timezone: str = ""
    #: DLMS multi-drop: the id of another simulated meter whose line this one joins as a
    #: further station (its own ``physical_address``, the same port); "" = a line of its own.
    on_line_of: str = ""
    #: The model's own sags and swells (2-60 s each) per week on average; 0 for none.
    disturbances_per_week: float = 4.0


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """One meter; its folder in the address space is ``id``. Meters with the same ``url``
    share one line (an RS485 multi-drop bus, DLMS meters told apart by HDLC address)."""

    id: str
    url: str
    name: str = ""
    protocol: str = "iec62056-21"
    #: IEC 62056-21 and mode E: highest speed to negotiate; direct HDLC: the line's speed.
    baudrate: int = 9600
    address: str = ""  # device address for the sign-on ("/?address!")
    #: IEC 62056-21 programming-mode password; DLMS low-level security ("" = none).
    password: str = "00000000"
    #: DLMS: Logical Name ("ln") or Short Name ("sn", Landis+Gyr ZMD/ZMG) referencing.
    referencing: str = "ln"
    #: DLMS: client SAP (16 = public client).
    client_address: int = 16
    #: DLMS: the server's HDLC address: logical device (upper), physical (lower), size.
    logical_device: int = 1
    physical_address: int = 17
    server_address_size: int = 2
    #: Wait for the first byte of an answer, from when the request has left the line;
    #: 0 = the protocol's default (:attr:`response_timeout`).
    response_timeout_s: float = 0.0
    loss_timeout_s: float = 10.0
    cycle_s: float = 1.0
    register_period_s: float = 5.0
    clock_period_s: float = 60.0
    profile_period_s: float = 900.0
    event_period_s: float = 900.0
    values: tuple[Obis, ...] = ()  # empty: every catalogue object the meter answers
    #: The meter this gateway simulates in-process (demo), or None for a real meter.
    simulator: SimulatorConfig | None = None
    #: The zone of the meter's local time (IANA name, e.g. "Europe/Vienna"), used for time
    #: stamps that do not say their offset: IEC 62056-21 stamps with season digit 0/1, DLMS
    #: date-times with an unspecified deviation. "" = such stamps are UTC.
    timezone: str = ""

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def line(self) -> str:
        """What names this meter's line: meters with the same one share it (a multi-drop bus)."""
        if self.simulator is not None:
            return f"simulated line of {self.simulator.on_line_of or self.id}"
        return self.url

    @property
    def response_timeout(self) -> float:
        """The configured response timeout, or the protocol's default.

        IEC 62056-21 allows a meter up to 1.5 s of reaction time. A DLMS meter on HDLC
        answers within a fraction of a second; waiting 0.5 s keeps a silent meter's
        values from looking fresh for more than 2 s while it is polled every second.
        """
        if self.response_timeout_s > 0:
            return self.response_timeout_s
        return 1.5 if self.protocol == "iec62056-21" else 0.5


@dataclass(frozen=True, slots=True)
class OpcUaLimits:
    """What OPC UA clients may take of a Raspberry Pi class box (``[opcua.limits]``).

    Beyond a limit the client gets the Bad status OPC 10000-4 names for it; intervals and
    sizes below a minimum are revised up, as the standard lets a server do.
    """

    #: Sessions at once (BadTooManySessions beyond).
    max_sessions: int = 64
    #: Subscriptions of one session (BadTooManySubscriptions beyond).
    max_subscriptions_per_session: int = 8
    #: Subscriptions of all sessions together (BadTooManySubscriptions beyond).
    max_subscriptions: int = 256
    #: Monitored items of one subscription (BadTooManyMonitoredItems beyond).
    max_monitored_items: int = 1000
    #: Publishing and sampling intervals are revised up to this (ms): the values change each second.
    min_publishing_interval_ms: float = 100.0
    min_sampling_interval_ms: float = 100.0
    #: Largest request or response message (bytes; BadRequestTooLarge / BadResponseTooLarge beyond).
    max_message_size: int = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OpcUaConfig:
    host: str = "127.0.0.1"
    port: int = 4840
    path: str = "/smx"
    application_uri: str = "urn:smx:gateway"
    server_name: str = "SMX Gateway"
    #: The standard OPC UA nodes on disk, read on demand (gateway/opcua/node_cache.py):
    #: ~50 MiB less memory and ~2 s faster starts after the first; "" keeps them in memory.
    node_cache: str = "var/cache"
    limits: OpcUaLimits = field(default_factory=OpcUaLimits)

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{self.path}"


#: Archive streams and how many UTC days each keeps by default (DESIGN §5, gateway/streams.py).
ARCHIVE_STREAMS: dict[str, int] = {str(s.id): s.keep_days for s in STREAMS}


@dataclass(frozen=True, slots=True)
class ArchiveConfig:
    """Where the archive lives and what it keeps (``[archive]``)."""

    #: Directory of the day files; relative paths are relative to the working directory.
    #: Empty: no archive (and no history over OPC UA).
    path: str = "var/archive"
    #: Days kept per stream (0 = forever); streams not named keep their default.
    keep_days: tuple[tuple[str, int], ...] = tuple(ARCHIVE_STREAMS.items())
    #: How far back the first start (empty archive) reads the meter's profiles and events.
    initial_backfill_days: float = 1.0
    #: The furthest back a gap is filled from the meter after a restart or an outage (the
    #: meter's own buffer depth limits it too).
    max_backfill_days: float = 40.0

    def keep(self, stream: str) -> int:
        return dict(self.keep_days).get(stream, ARCHIVE_STREAMS.get(stream, 0))


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """Settlement periods and notified profiles (``[market]``, DESIGN §6)."""

    #: Length of a settlement period, minutes (15 or 60).
    period_minutes: int = 15
    #: The market's local time zone: delivery days start at its midnight. "CET" is the
    #: IANA zone of Central European Time with the EU's summer time rules.
    timezone: str = "CET"
    #: Accept a profile for a delivery day that is already over (corrections, tests).
    allow_past: bool = False
    #: Refuse profiles whose average power exceeds this in either direction (kW); 0 = no limit.
    limit_kw: float = 0.0


#: What an external value's name may look like (it is a REST path segment and a BrowseName).
EXTERNAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


@dataclass(frozen=True, slots=True)
class ExternalConfig:
    """One external energy value (``[[external]]``): a price, a renewable share, a forecast."""

    name: str
    unit: str = ""
    description: str = ""
    #: The value is stale this many seconds after its time (its source time, or when received).
    fresh_s: float = 3600.0
    #: "" = pushed (REST PUT, OPC UA write); ``http://``/``https://`` URL or a file path = pulled.
    source: str = ""
    #: Pull period of a source, seconds.
    pull_s: float = 300.0
    #: Where the value is in the source's JSON document: dotted keys / list indexes ("data.0.price").
    field: str = "value"
    #: Where the value's time (ISO 8601) is in the document; "" = the time it was pulled.
    time_field: str = ""
    #: Values outside [low, high] are refused (None: no bound).
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The local web page and REST API (``[web]``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    #: Serve HTTPS with the gateway's own certificate (the OPC UA one, ``[security] pki``).
    https: bool = False


#: The uplink's writers (gateway/uplink/writers.py), in table order.
UPLINK_WRITERS = ("live", "minute", "registers", "lp1", "lp2", "events")
ACK_MODES = ("broker", "consumer")


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """The uplink to the fleet: OPC UA PubSub JSON over MQTT (``[upstream]``, README
    "Uplink to the fleet"). Off unless ``broker`` is set."""

    #: ``mqtts://host:8883`` (TLS); ``mqtt://`` (plain) only in the demo profile.
    broker: str = ""
    #: CA file (PEM) the broker's certificate must chain to.
    ca: str = ""
    #: Client certificate and key (PEM); "" = the gateway's own (``[security] pki``).
    certificate: str = ""
    key: str = ""
    #: Optional MQTT user name and password (never logged).
    username: str = ""
    password: str = field(default="", repr=False)
    #: "" = derived from ``[opcua] application_uri`` (its last segment).
    publisher_id: str = ""
    prefix: str = "opcua"
    #: Seconds between two live messages (1-900); every ``key_frame_count``-th is a key frame.
    live_interval_s: int = 10
    key_frame_count: int = 6
    #: Seconds between two cyclic ``ua-status`` reports (retained; with the box's backlog
    #: and messages sent, so a head-end sees how far behind it is).
    status_interval_s: int = 60
    #: ``broker``: the cursor moves on PUBACK; ``consumer``: on the consumer's acknowledgement.
    ack: str = "broker"
    #: Consumer mode: one message per writer waits for its acknowledgement; none within
    #: this long, and it is sent again.
    ack_timeout_s: float = 60.0
    #: MQTT keepalive; a silent link is noticed within one keepalive (a probe every half).
    keepalive_s: int = 60
    #: Reconnect delays: random in [1, min(max, first * 2^attempt)] s ("full jitter": a
    #: fleet that lost its broker at once comes back spread over the window).
    reconnect_first_s: float = 30.0
    reconnect_max_s: float = 300.0
    #: Replay of the backlog: at most this many messages and bytes a second, ``batch``
    #: records per NetworkMessage, gzip (``application/json+gzip``) if ``compress``.
    replay_messages_per_s: float = 5.0
    replay_bytes_per_s: float = 16384.0
    batch: int = 60
    compress: bool = False
    #: A writer without a cursor (first start) begins this many days back.
    initial_days: float = 1.0
    writers: tuple[str, ...] = UPLINK_WRITERS

    @property
    def enabled(self) -> bool:
        return bool(self.broker)


#: OPC UA security policies the gateway can offer (OPC 10000-7 profiles); ``None`` is demo-only.
SECURE_POLICIES = ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
SECURITY_MODES = ("Sign", "SignAndEncrypt")
PROFILES = ("production", "demo")


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """Certificates, users and what OPC UA offers (``[security]``, DESIGN §8).

    The *production* profile (the default of every configuration file) offers only the
    policies below with the modes below, never the None policy, and no anonymous session
    unless ``anonymous`` is set (read-only even then). The *demo* profile (``make run``)
    adds a None endpoint for browsing with anonymous, read-only sessions.
    """

    profile: str = "production"
    #: PKI folders (own certificate, trusted/, issuers/, rejected/); created on first start.
    pki: str = "certs"
    #: The users file (``smx-gateway users add``); missing = no users yet.
    users: str = "certs/users"
    policies: tuple[str, ...] = SECURE_POLICIES
    modes: tuple[str, ...] = ("SignAndEncrypt",)
    #: Anonymous sessions (read, browse, subscribe, history; never write or call).
    anonymous: bool = False
    #: Open a None channel for GetEndpoints/FindServers only (clients that discover the
    #: endpoints and the server certificate first, like UaExpert). Off: the client must be
    #: given the gateway's certificate (``certs/own/certs/smx.der``).
    discovery: bool = False
    #: DNS names and IP addresses clients use for the box, put into a new certificate.
    hostnames: tuple[str, ...] = ()
    #: A refused login answers after this long (guessing costs time; see also the lockout).
    login_delay_s: float = 1.0

    @property
    def demo(self) -> bool:
        return self.profile == "demo"


@dataclass(frozen=True, slots=True)
class AlarmConfig:
    """The alarms' limits (``[alarms]``; the table is README "Alarms and power quality")."""

    #: Nominal phase voltage Un (EN 50160: 230 V) and the bands around it, in %.
    nominal_v: float = 230.0
    voltage_band_pct: float = 10.0
    voltage_outer_pct: float = 15.0
    voltage_deadband_v: float = 2.0
    frequency_low_hz: float = 49.5
    frequency_high_hz: float = 50.5
    frequency_low_low_hz: float = 47.0
    frequency_high_high_hz: float = 52.0
    frequency_deadband_hz: float = 0.05
    #: OnDelay and OffDelay of the value alarms: a shorter excursion raises nothing.
    delay_s: float = 10.0
    clock_limit_s: float = 10.0
    certificate_days: float = 60.0
    disk_free_pct: float = 10.0
    disk_days: float = 7.0
    uplink_down_s: float = 600.0


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    meters: tuple[MeterConfig, ...]
    opcua: OpcUaConfig = field(default_factory=OpcUaConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    market: MarketConfig = field(default_factory=MarketConfig)
    external: tuple[ExternalConfig, ...] = ()
    web: WebConfig = field(default_factory=WebConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    alarms: AlarmConfig = field(default_factory=AlarmConfig)
    log_level: str = "INFO"
    source: str = "<built-in demo>"


def demo_config() -> GatewayConfig:
    """The configuration of ``make run``: one in-process simulated meter over socket://."""
    return GatewayConfig(
        # The demo profile: a None endpoint for browsing (read-only), the secure ones for users.
        # Its certificates and users live in var/ with the demo's archive.
        security=SecurityConfig(
            profile="demo", anonymous=True, discovery=True, pki="var/certs", users="var/certs/users"
        ),
        meters=(
            MeterConfig(
                id="meter1",
                name="Simulated ZMD (demo)",
                url="socket://127.0.0.1:0",  # the port is filled in once the simulator listens
                # DLMS/COSEM LN over HDLC at 9600 Bd: the whole 1-second set in one
                # GET-WITH-LIST each second; see README "Line budget".
                protocol="dlms",
                referencing="ln",
                baudrate=9600,
                simulator=SimulatorConfig(hdlc_baudrate=9600),
            ),
        ),
        # Fed by REST PUT or an OPC UA write until a source is configured (README "External data").
        external=(
            ExternalConfig(
                "spot_price",
                "EUR/MWh",
                "Day-ahead price of the running hour",
                fresh_s=3600.0,
                low=-500,
                high=4000,
            ),
            ExternalConfig(
                "renewable_share",
                "%",
                "Share of renewables in the grid mix now",
                fresh_s=900.0,
                low=0,
                high=100,
            ),
        ),
    )


class Section:
    """Reads one TOML table, remembering the key path for error messages (also the
    head-end's configuration reads its tables with it)."""

    def __init__(self, source: str, path: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: {path or 'top level'}: expected a table, got {_kind(data)}")
        self.source, self.path, self.data = source, path, dict(data)
        self._used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, expected: str, got: Any) -> ConfigError:
        return ConfigError(f"{self.source}: {self._key(key)}: expected {expected}, got {got!r}")

    def get(self, key: str, kind: type[T], default: T, check: Callable[[T], str | None] | None = None) -> T:
        self._used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, kind.__name__, value)
        if check is not None and (problem := check(value)) is not None:
            raise self.fail(key, problem, value)
        return value

    def table(self, key: str) -> Section | None:
        self._used.add(key)
        if key not in self.data:
            return None
        return Section(self.source, self._key(key), self.data[key])

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            known = ", ".join(sorted(self._used))
            raise ConfigError(f"{self.source}: {self._key(unknown[0])}: unknown key (known: {known})")


def _kind(value: Any) -> str:
    return type(value).__name__


def _positive(value: float) -> str | None:
    return None if value > 0 else "a positive number"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "a number >= 0 (0: the protocol's default)"


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "a port number 0..65535"


def _one_of(options: tuple[Any, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in options else "one of " + ", ".join(str(o) for o in options)

    return check


def _iec_text(limit: int) -> Callable[[str], str | None]:
    """Text that travels inside an IEC 62056-21 message: printable ASCII, no delimiters."""

    def check(value: str) -> str | None:
        ok = len(value) <= limit and all(32 < ord(ch) < 127 and ch not in "()/!*" for ch in value)
        return None if ok else f"at most {limit} printable ASCII characters without ( ) / ! *"

    return check


def _zone(value: str) -> str | None:
    try:
        meter_zone(value)
    except ValueError:
        return "an IANA time zone name like 'Europe/Vienna' (or empty for UTC)"
    return None


def _range(low: int, high: int) -> Callable[[int], str | None]:
    def check(value: int) -> str | None:
        return None if low <= value <= high else f"an integer {low}..{high}"

    return check


def _simulator(sec: Section, line_baudrate: int, physical_address: int) -> SimulatorConfig:
    d = SimulatorConfig()
    cfg = SimulatorConfig(
        host=sec.get("host", str, d.host),
        port=sec.get("port", int, d.port, _port),
        seed=sec.get("seed", int, d.seed),
        speed=sec.get("speed", float, d.speed, _positive),
        drift_ppm=sec.get("drift_ppm", float, d.drift_ppm),
        history_days=sec.get("history_days", float, d.history_days, _positive),
        reaction_time_s=sec.get("reaction_time_s", float, d.reaction_time_s, _positive),
        max_baudrate=sec.get("max_baudrate", int, d.max_baudrate, _one_of(BAUDRATES)),
        serial_number=sec.get("serial_number", str, d.serial_number),
        referencing=sec.get("referencing", str, d.referencing, _one_of(("ln", "sn", "both"))),
        physical_address=sec.get("physical_address", int, physical_address, _range(0, 0x3FFF)),
        password=sec.get("password", str, d.password, _iec_text(32)),
        hdlc_baudrate=sec.get("hdlc_baudrate", int, line_baudrate, _one_of(BAUDRATES)),
        timezone=sec.get("timezone", str, d.timezone, _zone),
        on_line_of=sec.get("on_line_of", str, d.on_line_of),
        disturbances_per_week=sec.get("disturbances_per_week", float, d.disturbances_per_week, _non_negative),
    )
    sec.done()
    return cfg


def _meter(sec: Section) -> MeterConfig:
    ident = sec.get(
        "id", str, "", lambda v: None if _ID_RE.match(v) else "an identifier [A-Za-z][A-Za-z0-9_-]*"
    )
    if not ident:
        raise sec.fail("id", "an identifier (the meter's folder name)", None)
    d = MeterConfig(id=ident, url="")
    baudrate = sec.get("baudrate", int, d.baudrate, _one_of(BAUDRATES))
    size = sec.get("server_address_size", int, d.server_address_size, _one_of((1, 2, 4)))
    physical_limit = {1: 0, 2: 0x7F, 4: 0x3FFF}[size]
    physical_address = sec.get(
        "physical_address", int, d.physical_address if size > 1 else 0, _range(0, physical_limit)
    )
    sim_sec = sec.table("simulator")
    # The simulated meter answers at the meter's HDLC address unless told otherwise.
    simulator = _simulator(sim_sec, baudrate, physical_address or 17) if sim_sec is not None else None
    url = sec.get("url", str, "socket://127.0.0.1:0" if simulator else "")
    if not url:
        raise sec.fail("url", "a serial device path or a socket://host:port URL", None)
    values: list[Obis] = []
    known = {i.obis for i in CATALOGUE}
    for n, text in enumerate(sec.get("values", list, [])):
        key = f"values[{n}]"
        if not isinstance(text, str):
            raise sec.fail(key, "an OBIS code string", text)
        try:
            obis = Obis.parse(text)
        except Exception as err:
            raise sec.fail(key, "an OBIS code like '1-0:32.7.0'", text) from err
        if obis not in known:
            raise sec.fail(key, "an OBIS code of the catalogue (see gateway/obis.py)", text)
        values.append(obis)
    cfg = MeterConfig(
        id=ident,
        url=url,
        name=sec.get("name", str, ""),
        protocol=sec.get("protocol", str, d.protocol, _one_of(PROTOCOLS)),
        baudrate=baudrate,
        address=sec.get("address", str, d.address, _iec_text(32)),
        password=sec.get("password", str, d.password, _iec_text(32)),
        referencing=sec.get("referencing", str, d.referencing, _one_of(REFERENCING)),
        client_address=sec.get("client_address", int, d.client_address, _range(1, 0x7F)),
        logical_device=sec.get(
            "logical_device", int, d.logical_device, _range(0, 0x7F if size < 4 else 0x3FFF)
        ),
        physical_address=physical_address,
        server_address_size=size,
        response_timeout_s=sec.get("response_timeout_s", float, d.response_timeout_s, _non_negative),
        loss_timeout_s=sec.get("loss_timeout_s", float, d.loss_timeout_s, _positive),
        cycle_s=sec.get("cycle_s", float, d.cycle_s, _positive),
        register_period_s=sec.get("register_period_s", float, d.register_period_s, _positive),
        clock_period_s=sec.get("clock_period_s", float, d.clock_period_s, _positive),
        profile_period_s=sec.get("profile_period_s", float, d.profile_period_s, _positive),
        event_period_s=sec.get("event_period_s", float, d.event_period_s, _positive),
        values=tuple(values),
        simulator=simulator,
        timezone=sec.get("timezone", str, d.timezone, _zone),
    )
    sec.done()
    return cfg


def parse_config(data: Mapping[str, Any], source: str) -> GatewayConfig:
    """Validate an already-parsed TOML document."""
    top = Section(source, "", data)
    log_level = top.get("log_level", str, "INFO", _one_of(("DEBUG", "INFO", "WARNING", "ERROR")))
    opcua = opcua_section(top.table("opcua"))
    archive = _archive(top.table("archive"))
    market = _market(top.table("market"))
    web = _web(top.table("web"))
    security = security_section(top.table("security"))
    upstream = _upstream(top.table("upstream"), security)
    alarms = _alarms(top.table("alarms"))
    raw_external = top.get("external", list, [])
    external = tuple(_external(Section(source, f"external[{n}]", e)) for n, e in enumerate(raw_external))
    names = [e.name for e in external]
    for n, name in enumerate(names):
        if name in names[:n]:
            raise ConfigError(f"{source}: external[{n}].name: expected a unique name, got duplicate {name!r}")
    raw_meters = top.get("meters", list, [])
    if not raw_meters:
        raise top.fail("meters", "at least one [[meters]] table", None)
    meters = tuple(_meter(Section(source, f"meters[{n}]", m)) for n, m in enumerate(raw_meters))
    seen: set[str] = set()
    for n, m in enumerate(meters):
        if m.id in seen:
            raise ConfigError(f"{source}: meters[{n}].id: expected a unique id, got duplicate {m.id!r}")
        seen.add(m.id)
    _check_lines(meters, source)
    top.done()
    return GatewayConfig(
        meters=meters, opcua=opcua, archive=archive, market=market, external=external, web=web,
        security=security, upstream=upstream, alarms=alarms, log_level=log_level, source=source,
    )  # fmt: skip


def _check_lines(meters: Sequence[MeterConfig], source: str) -> None:
    """Meters sharing a line (a multi-drop bus) must be able to: DLMS over HDLC directly
    (IEC 62056-46; a 300 Bd sign-on of IEC 62056-21 or mode E would break the others'
    links), one speed and cycle, and each its own HDLC server address."""
    by_id = {m.id: (n, m) for n, m in enumerate(meters)}
    for n, m in enumerate(meters):
        target = m.simulator.on_line_of if m.simulator is not None else ""
        if target:
            host = by_id.get(target)
            if host is None or host[1].simulator is None or host[1].simulator.on_line_of:
                raise ConfigError(
                    f"{source}: meters[{n}].simulator.on_line_of: expected the id of a simulated meter "
                    f"with a line of its own, got {target!r}"
                )
    lines: dict[str, list[tuple[int, MeterConfig]]] = {}
    for n, m in enumerate(meters):
        lines.setdefault(m.line, []).append((n, m))
    for stations in lines.values():
        if len(stations) < 2:
            continue
        first = stations[0][1]
        addresses: dict[tuple[int, int, int], str] = {}
        for n, m in stations:
            where = f"{source}: meters[{n}]"
            if m.protocol != "dlms":
                raise ConfigError(
                    f"{where}.protocol: meters sharing a line must speak DLMS over HDLC directly "
                    f"('dlms'; a sign-on at 300 Bd would break the other meters' links), got {m.protocol!r}"
                )
            if (m.baudrate, m.cycle_s) != (first.baudrate, first.cycle_s):
                raise ConfigError(
                    f"{where}: meters sharing a line need one baudrate and cycle_s, got {m.baudrate} Bd / "
                    f"{m.cycle_s} s beside {first.id}'s {first.baudrate} Bd / {first.cycle_s} s"
                )
            address = (m.logical_device, m.physical_address, m.server_address_size)
            other = addresses.setdefault(address, m.id)
            if other != m.id:
                raise ConfigError(
                    f"{where}.physical_address: expected an HDLC address of its own on the line, got "
                    f"{m.physical_address} (logical device {m.logical_device}) as {other!r} has"
                )
        simulated = [m.simulator.physical_address for _, m in stations if m.simulator is not None]
        if len(set(simulated)) != len(simulated):
            raise ConfigError(
                f"{source}: the simulated meters on {first.id}'s line need physical addresses of their own, "
                f"got {simulated}"
            )


def opcua_section(sec: Section | None, defaults: OpcUaConfig | None = None) -> OpcUaConfig:
    """``[opcua]`` (and ``[opcua.limits]``) over ``defaults`` (the gateway's unless given;
    the head-end reads its own ``[opcua]`` with it)."""
    d = defaults or OpcUaConfig()
    if sec is None:
        return d
    cfg = OpcUaConfig(
        host=sec.get("host", str, d.host),
        port=sec.get("port", int, d.port, _port),
        path=sec.get("path", str, d.path, lambda v: None if v.startswith("/") else "a path like /smx"),
        application_uri=sec.get("application_uri", str, d.application_uri),
        server_name=sec.get("server_name", str, d.server_name),
        node_cache=sec.get("node_cache", str, d.node_cache),
        limits=_limits(sec.table("limits")),
    )
    sec.done()
    return cfg


def _limits(sec: Section | None) -> OpcUaLimits:
    d = OpcUaLimits()
    if sec is None:
        return d
    at_least_one = _range(1, 100_000)
    cfg = OpcUaLimits(
        max_sessions=sec.get("max_sessions", int, d.max_sessions, at_least_one),
        max_subscriptions_per_session=sec.get(
            "max_subscriptions_per_session", int, d.max_subscriptions_per_session, at_least_one
        ),
        max_subscriptions=sec.get("max_subscriptions", int, d.max_subscriptions, at_least_one),
        max_monitored_items=sec.get("max_monitored_items", int, d.max_monitored_items, at_least_one),
        min_publishing_interval_ms=sec.get(
            "min_publishing_interval_ms", float, d.min_publishing_interval_ms, _non_negative
        ),
        min_sampling_interval_ms=sec.get(
            "min_sampling_interval_ms", float, d.min_sampling_interval_ms, _non_negative
        ),
        max_message_size=sec.get("max_message_size", int, d.max_message_size, _range(65_536, 1 << 30)),
    )
    sec.done()
    return cfg


def _market(sec: Section | None) -> MarketConfig:
    d = MarketConfig()
    if sec is None:
        return d
    cfg = MarketConfig(
        period_minutes=sec.get("period_minutes", int, d.period_minutes, _one_of((15, 60))),
        timezone=sec.get("timezone", str, d.timezone, _market_zone),
        allow_past=sec.get("allow_past", bool, d.allow_past),
        limit_kw=sec.get(
            "limit_kw", float, d.limit_kw, lambda v: None if v >= 0 else "a number >= 0 (0: no limit)"
        ),
    )
    sec.done()
    return cfg


def _market_zone(value: str) -> str | None:
    return "an IANA time zone name like 'CET' or 'Europe/Vienna'" if not value or _zone(value) else None


def _web(sec: Section | None) -> WebConfig:
    d = WebConfig()
    if sec is None:
        return d
    cfg = WebConfig(
        enabled=sec.get("enabled", bool, d.enabled),
        host=sec.get("host", str, d.host),
        port=sec.get("port", int, d.port, _port),
        https=sec.get("https", bool, d.https),
    )
    sec.done()
    return cfg


def security_section(sec: Section | None) -> SecurityConfig:
    """``[security]`` (also the head-end's, for its OPC UA server)."""
    d = SecurityConfig()
    if sec is None:
        return d
    profile = sec.get("profile", str, d.profile, _one_of(PROFILES))

    def names(key: str, options: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
        value = sec.get(key, list, list(default))
        if not value or any(v not in options for v in value) or len(set(value)) != len(value):
            raise sec.fail(key, f"a non-empty list of distinct names from {', '.join(options)}", value)
        return tuple(value)

    hostnames = sec.get("hostnames", list, [])
    if not all(isinstance(h, str) and h and " " not in h for h in hostnames):
        raise sec.fail("hostnames", "a list of DNS names or IP addresses", hostnames)
    cfg = SecurityConfig(
        profile=profile,
        pki=sec.get("pki", str, d.pki, lambda v: None if v else "a folder"),
        users=sec.get("users", str, d.users, lambda v: None if v else "a file path"),
        policies=names("policies", SECURE_POLICIES, d.policies),
        modes=names("modes", SECURITY_MODES, d.modes),
        anonymous=sec.get("anonymous", bool, profile == "demo"),
        discovery=sec.get("discovery", bool, profile == "demo"),
        hostnames=tuple(hostnames),
        login_delay_s=sec.get("login_delay_s", float, d.login_delay_s, _non_negative),
    )
    sec.done()
    return cfg


def topic_level(value: str) -> str | None:
    """Why ``value`` cannot be one MQTT topic level (a PublisherId, a group), None if it can."""
    try:
        check_level(value, "name") if value else None
    except ValueError:
        return "one MQTT topic level: text without / + # or NUL"
    return None


def topic_prefix(value: str) -> str | None:
    """Why ``value`` cannot be a topic prefix (one or more levels), None if it can."""
    try:
        check_prefix(value)
    except ValueError:
        return "MQTT topic levels like opcua or fleet/opcua (no + # or empty level)"
    return None


def broker_url(value: str) -> str | None:
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        return "a URL like mqtts://broker.example.net:8883"
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname or url.path not in ("", "/") or port == 0:
        return "a URL like mqtts://broker.example.net:8883"
    return None


def _upstream(sec: Section | None, security: SecurityConfig) -> UpstreamConfig:
    d = UpstreamConfig()
    if sec is None:
        return d

    writers = sec.get("writers", list, list(d.writers))
    if not writers or any(w not in UPLINK_WRITERS for w in writers) or len(set(writers)) != len(writers):
        raise sec.fail(
            "writers", f"a non-empty list of distinct names from {', '.join(UPLINK_WRITERS)}", writers
        )
    broker = sec.get("broker", str, d.broker, lambda v: broker_url(v) if v else None)
    cfg = UpstreamConfig(
        broker=broker,
        ca=sec.get("ca", str, d.ca),
        certificate=sec.get("certificate", str, d.certificate),
        key=sec.get("key", str, d.key),
        username=sec.get("username", str, d.username),
        password=sec.get("password", str, d.password),
        publisher_id=sec.get("publisher_id", str, d.publisher_id, topic_level),
        prefix=sec.get("prefix", str, d.prefix, topic_prefix),
        live_interval_s=sec.get("live_interval_s", int, d.live_interval_s, _range(1, 900)),
        key_frame_count=sec.get("key_frame_count", int, d.key_frame_count, _range(1, 10_000)),
        status_interval_s=sec.get("status_interval_s", int, d.status_interval_s, _range(1, 3600)),
        ack=sec.get("ack", str, d.ack, _one_of(ACK_MODES)),
        ack_timeout_s=sec.get("ack_timeout_s", float, d.ack_timeout_s, _positive),
        keepalive_s=sec.get("keepalive_s", int, d.keepalive_s, _range(1, 65535)),
        reconnect_first_s=sec.get("reconnect_first_s", float, d.reconnect_first_s, _positive),
        reconnect_max_s=sec.get("reconnect_max_s", float, d.reconnect_max_s, _positive),
        replay_messages_per_s=sec.get("replay_messages_per_s", float, d.replay_messages_per_s, _positive),
        replay_bytes_per_s=sec.get("replay_bytes_per_s", float, d.replay_bytes_per_s, _positive),
        batch=sec.get("batch", int, d.batch, _range(1, 1440)),
        compress=sec.get("compress", bool, d.compress),
        initial_days=sec.get("initial_days", float, d.initial_days, _non_negative),
        writers=tuple(writers),
    )
    if cfg.reconnect_max_s < cfg.reconnect_first_s:
        raise sec.fail("reconnect_max_s", f"a number >= reconnect_first_s ({cfg.reconnect_first_s:g})",
                       cfg.reconnect_max_s)  # fmt: skip
    if cfg.broker.startswith("mqtts:") and not cfg.ca:
        raise sec.fail("ca", "the CA file (PEM) that signed the broker's certificate", None)
    if cfg.broker.startswith("mqtt:") and not security.demo:
        raise sec.fail("broker", "an mqtts:// URL (plain MQTT only in the demo profile)", cfg.broker)
    if bool(cfg.certificate) != bool(cfg.key):
        raise sec.fail(
            "key" if cfg.certificate else "certificate", "both certificate and key, or neither", None
        )
    sec.done()
    return cfg


def _source(value: str) -> str | None:
    if value.startswith(("http://", "https://")) or (value and "://" not in value):
        return None
    return "an http(s):// URL or a file path"


def _external(sec: Section) -> ExternalConfig:
    name = sec.get("name", str, "", lambda v: None if EXTERNAL_NAME.match(v) else "a name like spot_price")
    if not name:
        raise sec.fail("name", "a name like spot_price", None)
    d = ExternalConfig(name)
    low = sec.get("low", float, float("-inf"), lambda v: "a number" if math.isnan(v) else None)
    high = sec.get("high", float, float("inf"), lambda v: "a number" if math.isnan(v) else None)
    if low > high:
        raise sec.fail("high", f"a number >= low ({low:g})", high)
    cfg = ExternalConfig(
        name=name,
        unit=sec.get("unit", str, d.unit),
        description=sec.get("description", str, d.description),
        fresh_s=sec.get("fresh_s", float, d.fresh_s, _positive),
        source=sec.get("source", str, d.source, lambda v: None if not v else _source(v)),
        pull_s=sec.get("pull_s", float, d.pull_s, _positive),
        field=sec.get("field", str, d.field, lambda v: None if v else "a key like value or data.0.price"),
        time_field=sec.get("time_field", str, d.time_field),
        low=None if low == float("-inf") else low,
        high=None if high == float("inf") else high,
    )
    sec.done()
    return cfg


def _alarms(sec: Section | None) -> AlarmConfig:
    d = AlarmConfig()
    if sec is None:
        return d
    values = {
        f.name: sec.get(f.name, float, getattr(d, f.name), _non_negative if f.name.endswith("deadband_v")
                        or f.name.endswith("deadband_hz") or f.name == "delay_s" else _positive)
        for f in fields(AlarmConfig)
    }  # fmt: skip
    sec.done()
    cfg = AlarmConfig(**values)
    if (
        not cfg.frequency_low_low_hz
        < cfg.frequency_low_hz
        < cfg.frequency_high_hz
        < cfg.frequency_high_high_hz
    ):
        raise sec.fail("frequency_low_hz", "frequency_low_low_hz < low < high < frequency_high_high_hz",
                       cfg.frequency_low_hz)  # fmt: skip
    if not cfg.voltage_band_pct < cfg.voltage_outer_pct:
        raise sec.fail("voltage_outer_pct", "more than voltage_band_pct", cfg.voltage_outer_pct)
    return cfg


def _archive(sec: Section | None) -> ArchiveConfig:
    d = ArchiveConfig()
    if sec is None:
        return d
    path = sec.get("path", str, d.path)
    keep = dict(d.keep_days)
    keep_sec = sec.table("keep_days")
    if keep_sec is not None:
        for stream in ARCHIVE_STREAMS:
            keep[stream] = keep_sec.get(stream, int, keep[stream], _non_negative)
        keep_sec.done()
    initial = sec.get("initial_backfill_days", float, d.initial_backfill_days, _positive)
    backfill = sec.get("max_backfill_days", float, d.max_backfill_days, _positive)
    sec.done()
    return ArchiveConfig(
        path=path, keep_days=tuple(keep.items()), initial_backfill_days=initial, max_backfill_days=backfill
    )


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document of ``path``; a :class:`ConfigError` naming the file if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from err
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err


def load_config(path: Path) -> GatewayConfig:
    """Read and validate ``path``; every failure is a :class:`ConfigError` naming the file."""
    return parse_config(read_toml(path), str(path))


def values_read(meter: MeterConfig) -> tuple[ObisInfo, ...]:
    """The catalogue rows of what the gateway reads from ``meter``: its ``values``, else all."""
    return tuple(i for i in CATALOGUE if not meter.values or i.obis in meter.values)


def one_second_set(meter: MeterConfig) -> tuple[Obis, ...]:
    """The objects the poller tries to read every cycle, in priority order."""
    rows = [i for i in values_read(meter) if i.refresh is Refresh.SECOND]
    return tuple(i.obis for i in sorted(rows, key=lambda i: i.priority))


def register_set(meter: MeterConfig) -> tuple[ObisInfo, ...]:
    """The energy registers read from ``meter`` every few seconds, in catalogue order."""
    return tuple(i for i in values_read(meter) if i.refresh is Refresh.REGISTER)
