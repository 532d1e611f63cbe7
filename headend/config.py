"""The head-end's configuration: typed, frozen, from TOML, validated once (issue 17).

Read with the gateway's own table reader (:class:`gateway.config.Section`): every mistake
names the file, the key and what was expected; unknown keys are errors. ::

    profile = "production"        # "demo": plain mqtt:// and an anonymous broker allowed
    [broker]
    url = "mqtts://broker.example.net:8883"
    ca = "certs/fleet-ca.pem"
    certificate = "certs/headend.crt"
    key = "certs/headend.key"
    group = "smx-headend"         # the shared-subscription group: instances split the data
    prefix = "opcua"
    [storage]
    backend = "postgresql"        # or "sqlite" (one machine)
    dsn = "postgresql://smx@db.example.net/smx"
    password_file = "/etc/smx-headend/db-password"
    [http]
    listen = "127.0.0.1:8090"     # the REST API and the fleet page
    token_file = "/etc/smx-headend/api-token"   # needed off loopback: Authorization: Bearer
    [[sites]]
    publisher = "smx-17"
    timezone = "Europe/Vienna"    # completeness counts 92/96/100 periods on DST days there
    tags = ["brp-north", "vpp"]   # portfolios may take their members by tag
    [aggregation]                 # the portfolios' live aggregate (issue 18)
    stale_after_s = 30            # a member's power older than this is estimated, not summed
    [[portfolios]]                # more through REST, stored in the database
    name = "brp-north"
    period_minutes = 15
    timezone = "Europe/Vienna"
    tags = ["brp-north"]
    [opcua]                       # optional: the portfolios' OPC UA server (none without it)
    host = "0.0.0.0"
    port = 4840
    [security]                    # as the gateway's: production profile, PKI folder, users file
    pki = "certs"
    users = "certs/users"         # smx-gateway users --file certs/users add NAME --role operator
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.config import (
    OpcUaConfig,
    Section,
    SecurityConfig,
    broker_url,
    opcua_section,
    read_toml,
    security_section,
    topic_level,
    topic_prefix,
)
from gateway.errors import ConfigError, MarketInputError
from gateway.localtime import meter_zone
from headend.portfolio.model import TAG, Portfolio, parse_portfolio

PROFILES = ("production", "demo")
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    url: str = "mqtt://127.0.0.1:1883"
    ca: str = ""
    certificate: str = ""
    key: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    #: MQTT 5 shared subscription group (``$share/<group>/...``): instances of one group
    #: split the fleet's data messages between them.
    group: str = "smx-headend"
    prefix: str = "opcua"
    keepalive_s: int = 60


@dataclass(frozen=True, slots=True)
class StorageConfig:
    backend: str = "sqlite"
    #: SQLite: the database file.
    path: str = "var/headend.sqlite"
    #: PostgreSQL: a libpq URL without the password; the password from ``password_file``.
    dsn: str = ""
    password_file: str = ""


@dataclass(frozen=True, slots=True)
class CompletenessConfig:
    """How holes are found and asked for (``[completeness]``)."""

    #: Seconds between two checks of every site's today and yesterday.
    check_s: float = 60.0
    #: A missing period is asked for once it is this old (the box may still be sending it).
    grace_s: float = 3600.0
    #: At most one replay request per publisher this often, and this many a minute in all.
    per_publisher_s: float = 600.0
    total_per_minute: int = 60


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Where the REST API and the fleet page listen (``[http]``), and who may read them."""

    #: ``host:port`` (``[::1]:8090`` for IPv6); port 0 picks a free one (tests).
    listen: str = "127.0.0.1:8090"
    #: A file holding the bearer token every API request must carry; empty: no token. Needed
    #: for any address but loopback, since the API hands out every site's meter data.
    token_file: str = ""

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as its host and port; ValueError naming what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("host:port with a port 0..65535, like 127.0.0.1:8090")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("an IPv6 address in brackets, like [::1]:8090")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (a name other than localhost may resolve anywhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """What the head-end knows of a site beyond its messages."""

    publisher: str
    name: str = ""
    #: The site's local time zone: its days and their 92/96/100 periods.
    timezone: str = "Europe/Vienna"
    #: Tags portfolios take members by (a BRP portfolio, a VPP pool).
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AggregationConfig:
    """How the portfolios' live aggregate classes its members (``[aggregation]``; issue 18)."""

    #: A member's net power older than this is stale (estimated, not summed). Above the
    #: boxes' live interval (10 s by default) with room for a late message.
    stale_after_s: float = 30.0
    #: Nothing from a member for this long (or its Will): offline.
    offline_after_s: float = 300.0
    #: Below this coverage the advice says no-measurement (too little measured to steer).
    min_coverage: float = 0.5
    #: Seconds a bucket's lease lasts (renewed every third of it); a dead instance's buckets
    #: are taken over after it.
    lease_s: float = 6.0


#: The head-end's ``[opcua]`` defaults (the gateway's, named for the head-end).
HEADEND_OPCUA = OpcUaConfig(
    path="/smx-headend", application_uri="urn:smx:headend", server_name="SMX Head-end"
)

#: A site's time zone when its table does not say.
DEFAULT_ZONE = "Europe/Vienna"


@dataclass(frozen=True, slots=True)
class HeadendConfig:
    profile: str = "production"
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    sites: tuple[SiteConfig, ...] = ()
    completeness: CompletenessConfig = field(default_factory=CompletenessConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    log_level: str = "INFO"
    source: str = "<defaults>"
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    #: Portfolios of the configuration file (REST adds more, stored in the database).
    portfolios: tuple[Portfolio, ...] = ()
    #: The portfolios' OPC UA server (``[opcua]``, read as the gateway's); None: no server.
    opcua: OpcUaConfig | None = None
    #: Its certificates, users and policies (``[security]``, the gateway's table and defaults:
    #: the production profile, no None endpoint, no anonymous session).
    security: SecurityConfig = field(default_factory=SecurityConfig)
    #: ``sites`` by PublisherId (a fleet lists thousands; the completeness check asks for each).
    _by_publisher: dict[str, SiteConfig] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_publisher", {s.publisher: s for s in reversed(self.sites)})

    @property
    def demo(self) -> bool:
        return self.profile == "demo"

    def site(self, publisher: str) -> SiteConfig:
        """The site's configuration (the first listed), or the defaults for a site nobody listed."""
        return self._by_publisher.get(publisher) or SiteConfig(publisher)

    def tags(self) -> dict[str, tuple[str, ...]]:
        """Every listed site's tags, by PublisherId."""
        return {p: s.tags for p, s in self._by_publisher.items() if s.tags}


def _one_of(options: tuple[str, ...]) -> Any:
    return lambda v: None if v in options else f"one of {', '.join(options)}"


def _zone(value: str) -> str | None:
    try:
        zone = meter_zone(value)
    except ValueError:
        zone = None
    return None if zone is not None else "an IANA time zone like Europe/Vienna"


def _broker(sec: Section | None, demo: bool) -> BrokerConfig:
    d = BrokerConfig()
    if sec is None:
        if not demo:
            raise ConfigError(
                "[broker] is needed outside the demo profile (an mqtts:// URL, its CA and our certificate)"
            )
        return d

    cfg = BrokerConfig(
        url=sec.get("url", str, d.url, broker_url),
        ca=sec.get("ca", str, d.ca),
        certificate=sec.get("certificate", str, d.certificate),
        key=sec.get("key", str, d.key),
        username=sec.get("username", str, d.username),
        password=sec.get("password", str, d.password),
        group=sec.get("group", str, d.group, topic_level),
        prefix=sec.get("prefix", str, d.prefix, topic_prefix),
        keepalive_s=sec.get(
            "keepalive_s", int, d.keepalive_s, lambda v: None if 1 <= v <= 65535 else "1..65535"
        ),
    )
    if cfg.url.startswith("mqtt:") and not demo:
        raise sec.fail("url", "an mqtts:// URL (plain MQTT only in the demo profile)", cfg.url)
    if cfg.url.startswith("mqtts:") and not cfg.ca:
        raise sec.fail("ca", "the CA file (PEM) that signed the broker's certificate", None)
    if bool(cfg.certificate) != bool(cfg.key):
        raise sec.fail(
            "key" if cfg.certificate else "certificate", "both certificate and key, or neither", None
        )
    if not demo and not (cfg.certificate or cfg.username):
        raise sec.fail("certificate", "a client certificate (or a user name) outside the demo profile", None)
    sec.done()
    return cfg


def _storage(sec: Section | None) -> StorageConfig:
    d = StorageConfig()
    if sec is None:
        return d
    cfg = StorageConfig(
        backend=sec.get("backend", str, d.backend, _one_of(BACKENDS)),
        path=sec.get("path", str, d.path),
        dsn=sec.get("dsn", str, d.dsn),
        password_file=sec.get("password_file", str, d.password_file),
    )
    if cfg.backend == "postgresql":
        if not cfg.dsn.startswith(("postgresql://", "postgres://")):
            raise sec.fail("dsn", "a URL like postgresql://smx@db.example.net/smx", cfg.dsn)
        if urlsplit(cfg.dsn).password:
            raise sec.fail(
                "dsn", "a URL without the password (put it into password_file)", "<a URL with a password>"
            )
    elif not cfg.path:
        raise sec.fail("path", "the SQLite database file", cfg.path)
    sec.done()
    return cfg


def _completeness(sec: Section | None) -> CompletenessConfig:
    d = CompletenessConfig()
    if sec is None:
        return d

    def positive(v: float) -> str | None:
        return None if v > 0 else "a number > 0"

    cfg = CompletenessConfig(
        check_s=sec.get("check_s", float, d.check_s, positive),
        grace_s=sec.get("grace_s", float, d.grace_s, lambda v: None if v >= 0 else "a number >= 0"),
        per_publisher_s=sec.get("per_publisher_s", float, d.per_publisher_s, positive),
        total_per_minute=sec.get(
            "total_per_minute", int, d.total_per_minute, lambda v: None if v >= 1 else ">= 1"
        ),
    )
    sec.done()
    return cfg


def _http(sec: Section | None) -> HttpConfig:
    d = HttpConfig()
    if sec is None:
        return d

    def listen(value: str) -> str | None:
        try:
            split_listen(value)
        except ValueError as err:
            return str(err)
        return None

    cfg = HttpConfig(
        listen=sec.get("listen", str, d.listen, listen), token_file=sec.get("token_file", str, d.token_file)
    )
    if not cfg.token_file and not is_loopback(cfg.host):
        raise sec.fail(
            "token_file", f"a bearer token file to serve off loopback (listen = {cfg.listen!r})", None
        )
    sec.done()
    return cfg


def _aggregation(sec: Section | None) -> AggregationConfig:
    d = AggregationConfig()
    if sec is None:
        return d

    def positive(v: float) -> str | None:
        return None if v > 0 else "a number > 0"

    cfg = AggregationConfig(
        stale_after_s=sec.get("stale_after_s", float, d.stale_after_s, positive),
        offline_after_s=sec.get("offline_after_s", float, d.offline_after_s, positive),
        min_coverage=sec.get(
            "min_coverage", float, d.min_coverage, lambda v: None if 0 <= v <= 1 else "0..1"
        ),
        lease_s=sec.get("lease_s", float, d.lease_s, lambda v: None if v >= 1 else "a number >= 1"),
    )
    if cfg.offline_after_s < cfg.stale_after_s:
        raise sec.fail(
            "offline_after_s", f"at least stale_after_s ({cfg.stale_after_s:g})", cfg.offline_after_s
        )
    sec.done()
    return cfg


def _portfolios(raw: list[Any], source: str) -> tuple[Portfolio, ...]:
    out: list[Portfolio] = []
    for n, table in enumerate(raw):
        try:
            if isinstance(table, dict) and table.get("origin", "config") != "config":
                raise MarketInputError("origin: a portfolio of the file is of origin config", field="origin")
            portfolio = parse_portfolio(table, origin="config")
        except MarketInputError as err:
            raise ConfigError(f"{source}: portfolios[{n}]: {err}") from None
        if any(p.name == portfolio.name for p in out):
            raise ConfigError(f"{source}: portfolios[{n}].name: {portfolio.name!r} is defined twice")
        out.append(portfolio)
    return tuple(out)


def _tags(value: list[Any]) -> str | None:
    if not all(isinstance(t, str) and TAG.match(t) for t in value):
        return "tags of letters, digits, '_', '.', '-'"
    return None


def with_listen(config: HeadendConfig, listen: str) -> HeadendConfig:
    """``config`` with ``[http] listen`` replaced (``smx-headend run --listen``), checked as
    the file's value is: a valid address, and off loopback only with a token file."""
    try:
        host, _port = split_listen(listen)
    except ValueError as err:
        raise ConfigError(f"--listen {listen!r}: {err}") from None
    if not config.http.token_file and not is_loopback(host):
        raise ConfigError(f"--listen {listen!r}: serving off loopback needs [http] token_file")
    return replace(config, http=replace(config.http, listen=listen))


def parse_config(data: dict[str, Any], source: str) -> HeadendConfig:
    top = Section(source, "", data)
    profile = top.get("profile", str, "production", _one_of(PROFILES))
    log_level = top.get("log_level", str, "INFO", _one_of(("DEBUG", "INFO", "WARNING", "ERROR")))
    broker = _broker(top.table("broker"), profile == "demo")
    storage = _storage(top.table("storage"))
    completeness = _completeness(top.table("completeness"))
    http = _http(top.table("http"))
    aggregation = _aggregation(top.table("aggregation"))
    portfolios = _portfolios(top.get("portfolios", list, []), source)
    opc_sec, security_sec = top.table("opcua"), top.table("security")
    opcua = None if opc_sec is None else opcua_section(opc_sec, HEADEND_OPCUA)
    if opcua is None and security_sec is not None:
        raise ConfigError(f"{source}: security: only for the OPC UA server, which needs [opcua]")
    security = security_section(security_sec)
    sites = []
    for n, raw in enumerate(top.get("sites", list, [])):
        sec = Section(source, f"sites[{n}]", raw)
        publisher = sec.get("publisher", str, "", topic_level)
        if not publisher:
            raise sec.fail("publisher", "the site's PublisherId", None)
        sites.append(
            SiteConfig(
                publisher=publisher,
                name=sec.get("name", str, ""),
                timezone=sec.get("timezone", str, DEFAULT_ZONE, _zone),
                tags=tuple(str(t) for t in sec.get("tags", list, [], _tags)),
            )
        )
        sec.done()
    seen = [s.publisher for s in sites]
    for n, p in enumerate(seen):
        if p in seen[:n]:
            raise ConfigError(
                f"{source}: sites[{n}].publisher: expected a unique PublisherId, got duplicate {p!r}"
            )
    top.done()
    return HeadendConfig(
        profile, broker, storage, tuple(sites), completeness, http, log_level, source, aggregation,
        portfolios, opcua, security,
    )  # fmt: skip


def load_config(path: Path) -> HeadendConfig:
    """Read and validate ``path``; every failure is a :class:`ConfigError` naming the file."""
    return parse_config(read_toml(path), str(path))
