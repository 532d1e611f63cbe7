"""An independent OPC UA stack against the gateway's production security profile (issue 6).

node-opcua's client (Node.js, ``tests/node``; installed here with ``npm ci`` from its lock
file) talks to the real gateway in the production profile: Basic256Sha256,
Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss with SignAndEncrypt only, no None endpoint,
no anonymous session, no None channel even for discovery (the production default). Each
side trusts the other through its own trust list: the node client's certificate (made
with :func:`gateway.security.pki.create_application_certificate` for its ApplicationUri) is in the
gateway's ``trusted/certs``, the gateway's ``own/certs/smx.der`` in node-opcua's
``trusted/certs``.

Over Basic256Sha256 and Aes256_Sha256_RsaPss, as an operator (UserName token), node-opcua
browses Objects → SMX → Meters → meter1 → Instantaneous, reads and subscribes to the
voltage L1, reads its minute history and calls ComputeAdvice, RegisterProfile and
ReadProfile. A viewer is refused RegisterProfile; a client certificate the gateway does not
trust is refused and kept in ``rejected/``.

The history: raw minute means of the voltage and of its history-only components
(MinuteMinimum, MinuteMaximum, MinuteSamples: the records' min, max and sample count
columns), and the aggregates Average, Minimum, Maximum, Count, Total, Delta, Start and End
with node-opcua's ``readAggregateValue`` over intervals that are whole, a minute short or
empty. Each aggregate must be the one computed from node-opcua's own raw values by the
gateway's rules (``gateway/archive/aggregates.py``, OPC 10000-13), status bits included,
and asyncua must read the same answers.

Without a None channel a client cannot fetch the gateway's certificate with GetEndpoints,
so node-opcua is given it as a file (as an administrator hands it out) and the script
checks it against node-opcua's trust list first (node-opcua does not check a certificate
it is given). node-opcua's usual way, GetEndpoints on a None channel and its own trust
check, is exercised on a second gateway with ``[security] discovery = true``.

All jobs run at once in one Node.js process, started while the gateways start (loading
node-opcua takes seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Client, ua
from asyncua.crypto import security_policies
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.app import Gateway
from gateway.archive.files import ArchiveWriter, Column
from gateway.config import GatewayConfig
from gateway.meter.model import Quality
from gateway.opcua.ids import SMX_NAMESPACE
from gateway.security.pki import Pki, thumbprint
from gateway.security.users import Role
from tests.support.harness import PASSWORD, add_user, demo
from tests.support.node_opcua import NODE_DIR, client_identity, node_executable

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: The node client's ApplicationUri (its certificate is made for it).
NODE_URI = "urn:smx:node-opcua-test-client"
STRANGER_URI = "urn:smx:node-opcua-stranger"
POLICIES = ("Basic256Sha256", "Aes256_Sha256_RsaPss")
METER = "meter1"
VOLTAGE = "1-0:32.7.0"
#: The minute records of the voltage L1 archived before the gateway starts
#: (``archive_minutes``), one per minute of the window read back: (mean, min, max, count of
#: 1-second samples), None for a minute without a record. Four processing intervals of
#: :data:`INTERVAL_MINUTES`: all minutes; one missing (Uncertain); none (BadNoData); all.
#: The extremes lie inside the intervals, on their start, and more than once.
RECORDS: list[tuple[float, float, float, float] | None] = [
    (229.0, 226.5, 230.25, 60),
    (231.5, 230.75, 233.0, 30),
    (227.25, 226.0, 229.5, 60),
    (231.5, 229.0, 232.75, 60),
    (230.0, 224.75, 231.25, 30),
    (232.5, 231.0, 234.0, 60),
    (228.75, 227.25, 230.5, 60),
    None,
    (231.0, 226.5, 232.25, 30),
    (229.5, 228.0, 231.75, 60),
    *[None] * 5,
    (227.5, 225.5, 229.0, 60),
    (229.25, 227.75, 230.5, 30),
    (230.75, 229.5, 232.0, 60),
    (226.5, 225.5, 228.25, 60),
    (228.0, 226.25, 229.75, 60),
]
MINUTES = len(RECORDS)
INTERVAL_MINUTES = 5
#: The history read of the voltage: its own raw values and its components' (the minute
#: records' min, max and count columns, history-only nodes ``<voltage>.MinuteMinimum``...),
#: and the aggregates (node suffix, aggregate) over the same window and interval.
RAW_SERIES = ("", ".MinuteMinimum", ".MinuteMaximum", ".MinuteSamples")
AGGREGATES = ("Average", "Minimum", "Maximum", "Count", "Total", "Delta", "Start", "End")
PROCESSED = (
    *(("", a) for a in AGGREGATES),
    (".MinuteMinimum", "Minimum"),
    (".MinuteMaximum", "Maximum"),
)


# -- node-opcua ---------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> str:
    """The ``node`` executable, with tests/node/node_modules installed from the lock file."""
    return await node_executable()


# -- the gateways -------------------------------------------------------------------------


class Records(logging.Handler):
    """The gateway's security log (what it refused and why), kept for the assertions."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class Setup:
    #: The production gateway and the one that also answers GetEndpoints on a None channel.
    gateway: Gateway
    discovering: Gateway
    tmp: Path
    client_cert: Path
    client_key: Path
    #: A client the gateway does not trust: its certificate and files.
    stranger: x509.Certificate
    stranger_cert: Path
    stranger_key: Path
    #: (minute start, (mean, min, max, count)) of the archived voltage records, and the
    #: window read back.
    minutes: list[tuple[datetime, tuple[float, float, float, float]]]
    window: tuple[datetime, datetime]
    today: date
    #: node-opcua, started early: it loads while the gateways start and waits for its jobs.
    process: asyncio.subprocess.Process
    log: Records

    def pki(self, gateway: Gateway) -> Pki:
        return Pki(gateway.config.security.pki)

    def stored(self, day: date) -> Path:
        return Path(self.gateway.config.archive.path) / METER / "notified" / f"{day}.csv"

    def market_day(self, offset: int) -> tuple[date, list[float]]:
        """A future delivery day and a profile for it (92, 96 or 100 values)."""
        assert self.gateway.desk is not None
        day = self.today + timedelta(days=offset)
        n = self.gateway.desk.calendar.periods_in(day)
        return day, [round(0.1 * offset + 0.01 * (i % 9), 3) for i in range(n)]


def production(tmp: Path, client: x509.Certificate, *, discovery: bool) -> GatewayConfig:
    """The demo meter behind a production security profile, with its own PKI and users (the
    event log read every 2 s, so that an alarm planted in the meter arrives at once)."""
    base = demo(event_period_s=2.0)
    security = replace(
        base.security,
        profile="production",
        anonymous=False,
        discovery=discovery,
        policies=("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"),
        modes=("SignAndEncrypt",),
        pki=str(tmp / "pki"),
        users=str(tmp / "users"),
    )
    config = replace(
        base,
        security=security,
        archive=replace(base.archive, path=str(tmp / "archive")),
        web=replace(base.web, port=0),
    )
    add_user(config, "operator", Role.OPERATOR)
    add_user(config, "viewer", Role.VIEWER)
    pki = Pki(security.pki)
    pki.create_folders()
    (pki.folder("trusted/certs") / "node-opcua-client.der").write_bytes(
        client.public_bytes(serialization.Encoding.DER)
    )
    return config


def archive_minutes(
    root: Path, now: datetime
) -> tuple[datetime, list[tuple[datetime, tuple[float, float, float, float]]]]:
    """Minute records of the voltage L1 (:data:`RECORDS`) for the minutes before the
    gateway starts: the window's start and the records written.

    The gateway writes a minute record when the minute is over, so a fresh one has no
    history yet; these give the history reads known values (mean, min, max, count of
    the 1-second samples, as the recorder writes them). The window ends a minute before
    the one the gateway starts in (its own first record is of that minute or later).
    """
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES + 1)
    records = [(start + timedelta(minutes=k), r) for k, r in enumerate(RECORDS) if r is not None]
    columns = [
        Column(VOLTAGE, unit, q) for q, unit in (("mean", "V"), ("min", "V"), ("max", "V"), ("count", ""))
    ]
    writer = ArchiveWriter(root, METER)
    try:
        writer.append("minute", columns, [(t, 0, tuple(map(float, r))) for t, r in records])
    finally:
        writer.close()
    return start, records


async def live(gateway: Gateway, task: asyncio.Task[None]) -> None:
    """Until the gateway serves and has read the voltage from the meter."""
    ready = asyncio.create_task(gateway.ready.wait())
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()  # raises what stopped the gateway
    while True:
        snapshot = await gateway.pollers[METER].wait_snapshot()
        if any(str(o) == VOLTAGE and r.quality is Quality.GOOD for o, r in snapshot.readings.items()):
            return


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(node: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    tmp = tmp_path_factory.mktemp("node-opcua")
    process = await asyncio.create_subprocess_exec(
        node,
        "client.mjs",
        cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    log = Records()
    security_log = logging.getLogger("gateway.opcua.guard")
    security_log.addHandler(log)
    tasks: list[asyncio.Task[None]] = []
    try:
        client_cert, client_key, client = client_identity(tmp, "client", NODE_URI)
        stranger_cert, stranger_key, stranger = client_identity(tmp, "stranger", STRANGER_URI)
        configs = [
            production(tmp / name, client, discovery=name == "discovering")
            for name in ("main", "discovering")
        ]
        start, minutes = archive_minutes(Path(configs[0].archive.path), datetime.now(UTC))
        gateway, discovering = gateways = [Gateway(config) for config in configs]
        tasks += [asyncio.create_task(g.run()) for g in gateways]
        # A bound, not a punctuality claim: two gateways' start (certificates, NodeSet,
        # history) on a loaded 2-core runner can take tens of seconds.
        async with asyncio.timeout(120):
            await asyncio.gather(*(live(g, t) for g, t in zip(gateways, tasks, strict=True)))
        assert gateway.space is not None
        assert gateway.desk is not None
        endpoints = await gateway.space.server.get_endpoints()
        assert {(e.SecurityPolicyUri.rsplit("#", 1)[1], e.SecurityMode) for e in endpoints} == {
            (p, ua.MessageSecurityMode.SignAndEncrypt) for p in configs[0].security.policies
        }, "a production profile: secure endpoints only"
        yield Setup(
            gateway=gateway,
            discovering=discovering,
            tmp=tmp,
            client_cert=client_cert,
            client_key=client_key,
            stranger=stranger,
            stranger_cert=stranger_cert,
            stranger_key=stranger_key,
            minutes=minutes,
            window=(start, start + timedelta(minutes=MINUTES)),
            today=gateway.desk.calendar.day_of(gateway.clock.now()),
            process=process,
            log=log,
        )
    finally:
        security_log.removeHandler(log)
        if process.returncode is None:
            process.kill()
            await process.wait()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- the node client's jobs -------------------------------------------------------------------

#: Full jobs by name: (policy, market day offset of the profile it registers).
FULL_JOBS = {policy: (policy, offset) for offset, policy in enumerate(POLICIES, start=1)}
VIEWER_DAY = 3


def jobs(setup: Setup) -> dict[str, dict[str, Any]]:
    """What node-opcua does: one client, secure channel and session per job, all at once."""
    start, end = setup.window

    def job(name: str, steps: list[str], *, gateway: Gateway | None = None, **options: Any) -> dict[str, Any]:
        """A job as the operator over Basic256Sha256 against the production gateway,
        trusting it and given its certificate, unless ``options`` say otherwise."""
        gateway = gateway or setup.gateway
        own = setup.pki(gateway).own_certificate
        pki_root = setup.tmp / "node-pki" / name
        (pki_root / "trusted" / "certs").mkdir(parents=True)
        if options.pop("trust_gateway", True):
            shutil.copy(own, pki_root / "trusted" / "certs" / own.name)
        spec = {
            "endpoint": gateway.endpoint,
            "securityPolicy": "Basic256Sha256",
            "securityMode": "SignAndEncrypt",
            "applicationUri": NODE_URI,
            "certificateFile": str(setup.client_cert),
            "privateKeyFile": str(setup.client_key),
            "pkiRoot": str(pki_root),
            "serverCertificateFile": str(own),
            "user": {"name": "operator", "password": PASSWORD},
            "namespaceUri": SMX_NAMESPACE,
            "meter": METER,
            "voltage": VOLTAGE,
            "notifications": 3,
            "steps": steps,
        }
        return spec | options

    result = {}
    for name, (policy, offset) in FULL_JOBS.items():
        day, values = setup.market_day(offset)
        result[name] = job(
            name,
            ["browse", "read", "subscribe", "history", "advice", "register", "readProfile"],
            securityPolicy=policy,
            history={
                "node": f"{METER}.{VOLTAGE}",
                "start": start.isoformat(),
                "end": end.isoformat(),
                "intervalMs": INTERVAL_MINUTES * 60_000,
                "raw": list(RAW_SERIES),
                "processed": [list(p) for p in PROCESSED],
            },
            register={"day": day.isoformat(), "values": values, "unit": "kWh", "replace": False},
            readProfile={"day": day.isoformat()},
        )
    day, values = setup.market_day(VIEWER_DAY)
    result["viewer"] = job(
        "viewer",
        ["register", "readProfile"],
        user={"name": "viewer", "password": PASSWORD},
        register={"day": day.isoformat(), "values": values, "unit": "kWh", "replace": False},
        readProfile={"day": day.isoformat()},
    )
    result["alarms"] = job(
        "alarms", ["alarms"], alarms={"condition": "TerminalCover", "comment": "node-opcua ack"}
    )
    result["stranger"] = job(
        "stranger",
        ["read"],
        applicationUri=STRANGER_URI,
        certificateFile=str(setup.stranger_cert),
        privateKeyFile=str(setup.stranger_key),
    )
    result["Aes128_Sha256_RsaOaep"] = job(
        "Aes128_Sha256_RsaOaep", ["read"], securityPolicy="Aes128_Sha256_RsaOaep"
    )
    result["untrusted_gateway"] = job("untrusted_gateway", ["read"], trust_gateway=False)
    result["no_discovery"] = job("no_discovery", ["read"], serverCertificateFile=None)
    result["discovery"] = job("discovery", ["read"], gateway=setup.discovering, serverCertificateFile=None)
    result["discovery_untrusted"] = job(
        "discovery_untrusted",
        ["read"],
        gateway=setup.discovering,
        serverCertificateFile=None,
        trust_gateway=False,
    )
    return result


@dataclass
class Report:
    results: dict[str, dict[str, Any]]
    #: node-opcua's warnings and errors.
    stderr: str

    def ok(self, name: str) -> dict[str, Any]:
        result = self.results[name]
        assert result["ok"], f"{name} stopped at {result['step']}: {result.get('error')}\n{self.stderr}"
        return result

    def refused(self, name: str) -> dict[str, Any]:
        result = self.results[name]
        assert not result["ok"], f"{name} was not refused"
        return result


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def report(setup: Setup) -> Report:
    """Every job's result, from the one run of tests/node/client.mjs; a terminal cover
    alarm is planted in the meter first (the alarms job refreshes and acknowledges it)."""
    await planted_cover_alarm(setup.gateway)
    stdin = json.dumps({"jobs": jobs(setup)}).encode()
    async with asyncio.timeout(60):
        out, err = await setup.process.communicate(stdin)
    lines = out.decode().strip().splitlines()
    assert lines, f"client.mjs printed nothing (exit {setup.process.returncode}):\n{err.decode()}"
    return Report(json.loads(lines[-1]), err.decode(errors="replace"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def asyncua_history(setup: Setup, report: Report) -> dict[tuple[str, str], list[Answer]]:
    """node-opcua's history reads (:data:`RAW_SERIES`, :data:`PROCESSED`) made with asyncua,
    as the operator with the node client's identity over Basic256Sha256 (once node-opcua is done)."""
    client = Client(setup.gateway.endpoint, timeout=10)
    client.application_uri = NODE_URI
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256,
        str(setup.client_cert),
        str(setup.client_key),
        server_certificate=str(setup.pki(setup.gateway).own_certificate),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    client.set_user("operator")
    client.set_password(PASSWORD)
    start, end = setup.window
    reads: list[tuple[tuple[str, str], Any]] = [
        (
            (s, "Raw"),
            ua.ReadRawModifiedDetails(
                IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=0, ReturnBounds=False
            ),
        )
        for s in RAW_SERIES
    ]
    for suffix, aggregate in PROCESSED:
        details = ua.ReadProcessedDetails(
            StartTime=start,
            EndTime=end,
            ProcessingInterval=INTERVAL_MINUTES * 60_000,
            AggregateType=[ua.NodeId(getattr(ua.ObjectIds, f"AggregateFunction_{aggregate}"))],
            AggregateConfiguration=ua.AggregateConfiguration(UseServerCapabilitiesDefaults=True),
        )
        reads.append(((suffix, aggregate), details))
    out: dict[tuple[str, str], list[Answer]] = {}
    async with client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        for (suffix, aggregate), details in reads:
            result = await client.get_node(ua.NodeId(f"{METER}.{VOLTAGE}{suffix}", ns)).history_read(details)
            assert result.StatusCode.is_good(), (suffix, aggregate)
            assert not result.ContinuationPoint, (suffix, aggregate)
            out[suffix, aggregate] = [
                (
                    v.SourceTimestamp.replace(tzinfo=UTC),
                    v.Value.Value,
                    v.StatusCode.value,
                    v.Value.VariantType.name,
                )
                for v in result.HistoryData.DataValues
            ]
    return out


async def planted_cover_alarm(gateway: Gateway) -> None:
    """The meter's terminal cover opened now, until its alarm is active in the gateway."""
    sim = gateway.simulators[METER]
    sim.advance()
    planted = sim.now()
    sim.physics.open_terminal_cover(planted)
    assert gateway.alarms is not None
    condition = gateway.alarms.condition(METER, "TerminalCover")
    async with asyncio.timeout(30):
        while not (condition.state.active and condition.state.time >= planted.replace(microsecond=0)):
            await gateway.pollers[METER].wait_snapshot()


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- history by the rules -----------------------------------------------------------------

#: A history value: source time stamp, value (None: none), StatusCode and value type.
Answer = tuple[datetime, float | None, int, str]
GOOD = ua.StatusCodes.Good
UNCERTAIN = ua.StatusCodes.UncertainDataSubNormal
BAD_NO_DATA = ua.StatusCodes.BadNoData
#: The historian bits of an aggregate's StatusCode (OPC 10000-4 §7.39.2).
RAW, CALCULATED, MULTI_VALUE = 0x0400, 0x0401, 0x0010
#: The calculated aggregates of an interval's raw values (Total: each minute mean stands
#: for its whole minute, value x seconds).
CALCULATIONS: dict[str, Callable[[list[float]], float]] = {
    "Average": lambda values: sum(values) / len(values),
    "Count": len,
    "Total": lambda values: sum(values) * 60.0,
    "Delta": lambda values: values[-1] - values[0],
}


def history_of(history: dict[str, Any], kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    """node-opcua's raw reads by (node suffix, "Raw"), its processed ones by (suffix, aggregate)."""
    return {(read["node"], read.get("aggregate", "Raw")): read for read in history[kind]}


def answers(read: dict[str, Any]) -> list[Answer]:
    return [
        (when(v["sourceTimestamp"]), v["value"], int(v["statusCode"]["value"]), v["dataType"])
        for v in read["values"]
    ]


def intervals(values: list[tuple[datetime, Any]], start: datetime) -> list[list[tuple[datetime, Any]]]:
    """The values of each processing interval [a, a + step): a <= t < a + step."""
    step = timedelta(minutes=INTERVAL_MINUTES)
    return [
        [(t, v) for t, v in values if start + i * step <= t < start + (i + 1) * step]
        for i in range(MINUTES // INTERVAL_MINUTES)
    ]


def expected(aggregate: str, raw: list[Answer], start: datetime) -> list[Answer]:
    """The aggregate of each interval from the raw values, by the gateway's documented rules
    (gateway/archive/aggregates.py, OPC 10000-13 §5.4.3): Average the mean of the raw values,
    Minimum / Maximum the extreme stamped at the interval's start (Raw when it lies there,
    else Calculated; MultiValue when it occurs more than once), Count their number (Int32),
    Total their sum times 60 s (each minute mean stands for its minute), Delta last - first,
    Start / End the first / last raw value with its own time stamp. Good when every minute
    of the interval has a record, UncertainDataSubNormal when some are missing; an interval
    without values is BadNoData (Count: 0, Good)."""
    out: list[Answer] = []
    step = timedelta(minutes=INTERVAL_MINUTES)
    for i, group in enumerate(intervals([(t, v) for t, v, _s, _type in raw], start)):
        a = start + i * step
        values = [v for _t, v in group]
        if not group:
            out.append(
                (a, 0, GOOD | CALCULATED, "Int32") if aggregate == "Count" else (a, None, BAD_NO_DATA, "Null")
            )
            continue
        severity = GOOD if len(group) == INTERVAL_MINUTES else UNCERTAIN
        if aggregate in ("Minimum", "Maximum"):
            best = (min if aggregate == "Minimum" else max)(values)
            at = [t for t, v in group if v == best]
            bits = (RAW if at[0] == a else CALCULATED) | (MULTI_VALUE if len(at) > 1 else 0)
            out.append((a, best, severity | bits, "Double"))
        elif aggregate in ("Start", "End"):
            t, v = group[0] if aggregate == "Start" else group[-1]
            out.append((t, v, severity | RAW, "Double"))
        else:
            value = CALCULATIONS[aggregate](values)
            out.append((a, value, severity | CALCULATED, "Int32" if aggregate == "Count" else "Double"))
    return out


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_secure_session_browse_read_and_subscribe(report: Report, setup: Setup, policy: str) -> None:
    result = report.ok(policy)
    connect = result["connect"]
    assert connect["securityPolicy"] == f"http://opcfoundation.org/UA/SecurityPolicy#{policy}"
    assert connect["securityMode"] == "SignAndEncrypt"
    server_der = setup.pki(setup.gateway).own_certificate.read_bytes()
    assert connect["serverCertificateThumbprint"] == hashlib.sha1(server_der).hexdigest()
    assert result["serverTrust"] == "Good"

    # Browsed Objects -> SMX -> Meters -> meter1 -> Instantaneous -> the voltage L1.
    browse = result["browse"]
    ns = result["namespaceIndex"]
    assert setup.gateway.space is not None
    server_node = setup.gateway.space.server.get_node(ua.NodeId(f"{METER}.{VOLTAGE}", ns))
    assert browse["nodeId"] == f"ns={ns};s={METER}.{VOLTAGE}"
    assert browse["folderNodeId"] == f"ns={ns};s={METER}.Instantaneous"
    assert browse["browseName"] == (await server_node.read_browse_name()).Name
    assert browse["browseNamespace"] == ns
    assert browse["displayName"] == "Voltage L1"
    assert browse["nodeClass"] == ua.NodeClass.Variable
    assert browse["children"] >= 10
    assert browse["engineeringUnits"] == {"displayName": "V", "unitId": int.from_bytes(b"VLT", "big")}

    read = result["read"]
    assert read["statusCode"]["name"] == "Good"
    assert 200.0 <= read["value"] <= 260.0
    assert abs(when(read["sourceTimestamp"]) - datetime.now(UTC)) < timedelta(seconds=60)

    notifications = result["subscription"]["notifications"]
    assert all(n["statusCode"]["name"] == "Good" for n in notifications)
    assert all(200.0 <= n["value"] <= 260.0 for n in notifications)
    stamps = [when(n["sourceTimestamp"]) for n in notifications]
    assert len(set(stamps)) >= 3, "the sample at creation and two new ones"
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("policy", POLICIES)
async def test_history_read_raw_and_processed(report: Report, setup: Setup, policy: str) -> None:
    """node-opcua's raw values are the archived records; each aggregate it reads is the one
    computed from those raw values by the gateway's rules (OPC 10000-13)."""
    raw = history_of(report.ok(policy)["history"], "raw")
    for suffix, column in zip(RAW_SERIES, range(4), strict=True):
        read = raw[suffix, "Raw"]
        assert read["statusCode"]["name"] == "Good", suffix
        assert not read["continuation"], suffix
        # The minute's mean, min, max and count, stamped at the minute's start.
        assert [(t, v) for t, v, _s, _type in answers(read)] == [(t, r[column]) for t, r in setup.minutes]
        assert all(s == GOOD and type_ == "Double" for _t, _v, s, type_ in answers(read)), suffix

    processed = history_of(report.ok(policy)["history"], "processed")
    for suffix, aggregate in PROCESSED:
        read = processed[suffix, aggregate]
        assert read["statusCode"]["name"] == "Good", (suffix, aggregate)
        assert not read["continuation"], (suffix, aggregate)
        got = answers(read)
        want = expected(aggregate, answers(raw[suffix, "Raw"]), setup.window[0])
        what = f"{aggregate} of {VOLTAGE}{suffix}: {read['values']}"
        assert [(t, s, type_) for t, _v, s, type_ in got] == [(t, s, type_) for t, _v, s, type_ in want], what
        assert [v for _t, v, _s, _type in got] == pytest.approx([v for _t, v, _s, _type in want]), what
        # The names node-opcua gives the statuses: the severity, then the historian bits.
        names = [v["statusCode"]["name"].split("#")[0] for v in read["values"]]
        assert names == [ua.StatusCode(s & 0xFFFF0000).name for _t, _v, s, _type in want], what

    # The intervals as the records lay them out: Good, Uncertain (a minute missing),
    # BadNoData (no minute), Good.
    severities = [s & 0xFFFF0000 for _t, _v, s, _type in answers(processed["", "Average"])]
    assert severities == [GOOD, UNCERTAIN, BAD_NO_DATA, GOOD]
    # Minimum over MinuteMinimum: the least 1-second sample of each interval's minutes.
    groups = intervals([(t, r) for t, r in setup.minutes], setup.window[0])
    assert [v for _t, v, _s, _type in answers(processed[".MinuteMinimum", "Minimum"])] == [
        min(r[1] for _t, r in g) if g else None for g in groups
    ]
    assert [v for _t, v, _s, _type in answers(processed[".MinuteMaximum", "Maximum"])] == [
        max(r[2] for _t, r in g) if g else None for g in groups
    ]


@pytest.mark.parametrize("policy", POLICIES)
async def test_node_opcua_and_asyncua_read_the_same_history(
    report: Report, asyncua_history: dict[tuple[str, str], list[Answer]], policy: str
) -> None:
    """The same reads with asyncua, another client stack: the same answers."""
    history = report.ok(policy)["history"]
    node_opcua = history_of(history, "raw") | history_of(history, "processed")
    assert node_opcua.keys() == asyncua_history.keys()
    for key, read in node_opcua.items():
        assert answers(read) == asyncua_history[key], key


@pytest.mark.parametrize("policy", POLICIES)
async def test_market_methods(report: Report, setup: Setup, policy: str) -> None:
    result = report.ok(policy)
    methods = result["methods"]
    assert setup.gateway.desk is not None
    assert setup.gateway.space is not None
    calendar = setup.gateway.desk.calendar

    advice = methods["advice"]
    assert advice["statusCode"]["name"] == "Good"
    declared = await setup.gateway.space.server.get_node(
        ua.NodeId(f"{METER}.Market.ComputeAdvice.OutputArguments", result["namespaceIndex"])
    ).read_value()
    out = advice["outputs"]
    assert list(out) == [a.Name for a in declared]
    assert when(out["PeriodEnd"]) - when(out["PeriodStart"]) == calendar.period
    assert 0 < out["RemainingTime"] <= calendar.period.total_seconds()
    # The net power now (NaN only if the last read of a power failed).
    assert out["CurrentPower"] == "NaN" or abs(out["CurrentPower"]) < 100
    # No profile for today: no numbers (NaN), not zeros.
    assert out["State"] == "no-notification"
    assert out["NotifiedEnergy"] == "NaN"

    day, values = setup.market_day(FULL_JOBS[policy][1])
    register = methods["register"]
    assert register["statusCode"]["name"] == "Good", register
    assert register["outputs"]["Periods"] == len(values) == calendar.periods_in(day)
    assert register["outputs"]["TotalEnergy"] == pytest.approx(sum(values))
    assert setup.stored(day).exists()

    profile = methods["readProfile"]
    assert profile["statusCode"]["name"] == "Good"
    assert profile["outputs"]["Energy"] == pytest.approx(values)
    assert [when(t) for t in profile["outputs"]["PeriodStarts"]] == [p.start for p in calendar.periods(day)]


async def test_the_third_policy_serves_too(report: Report) -> None:
    result = report.ok("Aes128_Sha256_RsaOaep")
    assert result["connect"]["securityPolicy"].endswith("#Aes128_Sha256_RsaOaep")
    assert result["read"]["statusCode"]["name"] == "Good"
    assert 200.0 <= result["read"]["value"] <= 260.0


async def test_a_viewer_may_not_register_a_profile(report: Report, setup: Setup) -> None:
    methods = report.ok("viewer")["methods"]
    assert methods["register"]["statusCode"]["name"] == "BadUserAccessDenied"
    day, _values = setup.market_day(VIEWER_DAY)
    assert not setup.stored(day).exists()
    # Read-only methods are the viewer's: ReadProfile answers (nothing notified that day).
    assert methods["readProfile"]["statusCode"]["name"] == "BadNoData"


async def test_an_untrusted_client_certificate_is_refused_and_kept(report: Report, setup: Setup) -> None:
    result = report.refused("stranger")
    assert result["step"] == "connect"
    assert "rejected by server" in result["error"]
    stranger = thumbprint(setup.stranger)
    assert any(
        "secure channel refused, BadCertificateUntrusted" in m and stranger[:8] in m
        for m in setup.log.messages
    ), setup.log.messages
    assert stranger in setup.pki(setup.gateway).certificates("rejected/certs")


async def test_node_opcua_refuses_an_untrusted_gateway(report: Report, setup: Setup) -> None:
    # Given the certificate: the script's trust-list check refuses it.
    given = report.refused("untrusted_gateway")
    assert given["step"] == "trust"
    assert given["serverTrust"] == "BadCertificateUntrusted"
    # Discovered with GetEndpoints: node-opcua's own check refuses it.
    discovered = report.refused("discovery_untrusted")
    assert discovered["step"] == "connect"
    assert "BadCertificateUntrusted" in discovered["error"], discovered["error"]
    for name in ("untrusted_gateway", "discovery_untrusted"):
        rejected = setup.tmp / "node-pki" / name / "rejected"
        assert any(p.is_file() for p in rejected.rglob("*")), (
            f"{name}: node-opcua keeps the certificate it refused"
        )


async def test_production_serves_no_discovery_on_a_none_channel(report: Report, setup: Setup) -> None:
    result = report.refused("no_discovery")
    assert result["step"] == "connect"
    assert any(
        "secure channel refused, BadSecurityPolicyRejected" in m and "#None is not offered" in m
        for m in setup.log.messages
    ), setup.log.messages


async def test_node_opcua_discovers_the_certificate_when_discovery_is_on(
    report: Report, setup: Setup
) -> None:
    result = report.ok("discovery")
    assert "serverTrust" not in result  # node-opcua fetched and checked the certificate itself
    server_der = setup.pki(setup.discovering).own_certificate.read_bytes()
    assert result["connect"]["serverCertificateThumbprint"] == hashlib.sha1(server_der).hexdigest()
    assert result["read"]["statusCode"]["name"] == "Good"
    assert 200.0 <= result["read"]["value"] <= 260.0


async def test_node_opcua_refreshes_and_acknowledges_an_alarm(report: Report, setup: Setup) -> None:
    alarms = report.ok("alarms")["alarms"]
    assert alarms["refreshStatus"]["name"] == "Good"
    (shown,) = [e for e in alarms["refreshed"] if e["ConditionName"] == "TerminalCover"]
    assert shown["EventType"] == f"ns=0;i={ua.ObjectIds.OffNormalAlarmType}"
    assert (
        shown["ConditionId"]
        == f"ns={setup.gateway.space.ns if setup.gateway.space else 0};s={METER}.Alarms.TerminalCover"
    )
    assert (shown["Retain"], shown["ActiveState.Id"], shown["AckedState.Id"]) == (True, True, False)
    assert (shown["Severity"], shown["SourceName"]) == (900, METER)
    assert alarms["ackStatus"]["name"] == "Good"
    acked = alarms["acked"]
    assert (acked["ClientUserId"], acked["Comment"], acked["AckedState.Id"]) == (
        "operator",
        "node-opcua ack",
        True,
    )
    assert setup.gateway.alarms is not None
    state = setup.gateway.alarms.condition(METER, "TerminalCover").state
    assert (state.acked, state.user, state.comment) == (True, "operator", "node-opcua ack")
