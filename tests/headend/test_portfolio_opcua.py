"""The portfolios over OPC UA (issue 18): the head-end's real asyncua server, built as the
gateway's (production profile, the guard, roles), over SQLite, with a real PortfolioService.

The service is driven in-process on a manual clock (2026-03-27, two days before the change
to summer time in Vienna): its members' live and register messages are fed as the ingest
hands them over, and each second is one :meth:`~PortfolioService.tick`; the server updates
its nodes after every tick. Clients: asyncua over SignAndEncrypt as a viewer and as an
operator, and node-opcua (``tests/node/client.mjs``) as the independent stack, a viewer
reading the live aggregate and calling ComputeAdvice, an operator registering a schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Client, ua
from cryptography.hazmat.primitives import serialization

from gateway.clock import ManualClock
from gateway.config import OpcUaConfig, SecurityConfig
from gateway.opcua.methods import ADVICE_FIELDS, advice_outputs
from gateway.security.pki import Pki
from gateway.security.users import Role
from gateway.uplink.writers import Writer
from headend.config import HeadendConfig, SiteConfig, StorageConfig
from headend.ingest import Accepted, Ingest, LiveSeen
from headend.opcua import AGGREGATE_FIELDS, NAMESPACE, PortfolioServer
from headend.portfolio.model import parse_portfolio
from headend.portfolio.service import PortfolioService
from headend.storage import Sample
from headend.storage.sqlite import SqliteRepository
from tests.support.harness import PASSWORD, add_user, secure_client, shared_pki, trust_test_client
from tests.support.node_opcua import NODE_DIR, client_identity, node_executable

pytestmark = pytest.mark.asyncio(loop_scope="module")

NAME = "north"
SITES = ("site-1", "site-2", "site-3")
#: The manual clock's start: two minutes before a period (09:00 UTC) on 2026-03-27.
START = datetime(2026, 3, 27, 8, 58, 0, tzinfo=UTC)
#: Seconds the service runs before the tests: minutes 08:58..09:00 and the period 08:45 close.
RUN_S = 185
TOMORROW, DST_DAY, PAST_DAY = date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 26)
NODE_URI = "urn:smx:node-opcua-test-client"
#: DateTime.MinValue: a time a client leaves unspecified.
NO_TIME = datetime(1601, 1, 1, tzinfo=UTC)


@dataclass
class Setup:
    service: PortfolioService
    server: PortfolioServer
    clock: ManualClock
    repo: SqliteRepository
    tmp: Path
    viewer: Client
    operator: Client
    ns: int
    node: str
    process: asyncio.subprocess.Process
    node_cert: Path
    node_key: Path

    async def tick(self, seconds: int = 1) -> None:
        """``seconds`` of the members' messages, a tick each; the server updated after each."""
        for _ in range(seconds):
            self.clock.advance(1)
            feed(self.service, self.clock.now())
            self.service.tick()
            await self.server.next_update()

    def nid(self, *parts: str) -> ua.NodeId:
        return ua.NodeId("/".join(("Portfolios", *parts)), self.ns)


def power(site: str, now: datetime) -> float:
    k = SITES.index(site) + 1 if site in SITES else 9
    return 1.0 * k + 0.01 * (now.second % 10)


def feed(service: PortfolioService, now: datetime) -> None:
    """What the ingest hands the service each second: every member's live net power; and at
    each whole minute their energy registers."""
    for site in (*SITES, "site-9"):
        service.on_live(LiveSeen(site, "meter1", now, {"ActivePowerImport": power(site, now),
                                                       "ActivePowerExport": 0.0}))  # fmt: skip
        if now.second == 0:
            hours = (now - START).total_seconds() / 3600
            energy = 100.0 + power(site, now) * hours
            samples = tuple(
                Sample(site, "meter1", str(Writer.REGISTERS), field, now, value)
                for field, value in (("ActiveEnergyImport", energy), ("ActiveEnergyExport", 0.0))
            )
            service.on_registers(Accepted(site, "meter1", str(Writer.REGISTERS), 3, now, samples))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    tmp = tmp_path_factory.mktemp("portfolio-opcua")
    node = await node_executable()
    # node-opcua loads for seconds: started first, it waits for its jobs on stdin.
    process = await asyncio.create_subprocess_exec(
        node, "client.mjs", cwd=NODE_DIR, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    repo = SqliteRepository(tmp / "headend.sqlite")
    server: PortfolioServer | None = None
    try:
        config = HeadendConfig(
            profile="demo",
            storage=StorageConfig(backend="sqlite", path=str(tmp / "headend.sqlite")),
            sites=tuple(SiteConfig(site, tags=("north",)) for site in SITES),
            portfolios=(parse_portfolio({"name": NAME, "tags": ["north"]}, origin="config"),),
            opcua=OpcUaConfig(port=0, path="/smx-headend", application_uri="urn:smx:headend:test",
                              server_name="SMX Head-end (test)", node_cache=str(shared_pki() / "node-cache")),
            # The production profile (the default): secure endpoints only, no anonymous session.
            security=SecurityConfig(pki=str(tmp / "pki"), users=str(tmp / "users"), login_delay_s=0.05),
        )  # fmt: skip
        add_user(config, "viewer", Role.VIEWER)
        add_user(config, "operator", Role.OPERATOR)
        trust_test_client(config.security.pki)
        node_cert, node_key, node_certificate = client_identity(tmp, "node-client", NODE_URI)
        (Pki(config.security.pki).folder("trusted/certs") / "node-opcua-client.der").write_bytes(
            node_certificate.public_bytes(serialization.Encoding.DER)
        )
        await repo.open()
        clock = ManualClock(START)
        service = PortfolioService(config, repo, clock, Ingest(), name="h1")
        await service.reload()
        await service.own_buckets()  # the only instance: every bucket, every member
        # Today's schedule (the advice steers by it): 1.5 kWh a quarter hour, 6 kW.
        await service.register_schedule(NAME, START.date(), [1.5] * 96)
        assert config.opcua is not None
        server = PortfolioServer(service, config.opcua, config.security)
        await server.start()
        runner = asyncio.create_task(server.run())
        own = Pki(config.security.pki).own_certificate
        viewer = await secure_client(server.endpoint, "viewer", server_certificate=own)
        operator = await secure_client(server.endpoint, "operator", server_certificate=own)
        async with viewer, operator:
            ns = await viewer.get_namespace_index(NAMESPACE)
            setup = Setup(service, server, clock, repo, tmp, viewer, operator, ns, node, process,
                          node_cert, node_key)  # fmt: skip
            await setup.tick(RUN_S)
            await service.saved()
            await setup.tick(3)  # the last closed minute's record is read once stored
            yield setup
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if server is not None:
            await server.stop()
        await repo.close()


async def call(client: Client, setup: Setup, method: str, *args: ua.Variant, name: str = NAME) -> Any:
    request = ua.CallMethodRequest(
        ObjectId=setup.nid(name), MethodId=setup.nid(name, method), InputArguments=list(args)
    )
    (result,) = await client.uaclient.call([request])
    return result


def register_args(day: object, values: Any, unit: str = "kWh", replace: bool = False) -> list[ua.Variant]:
    values_arg = values if isinstance(values, ua.Variant) else ua.Variant(values, ua.VariantType.Double)
    return [
        ua.Variant(str(day), ua.VariantType.String),
        values_arg,
        ua.Variant(unit, ua.VariantType.String),
        ua.Variant(replace, ua.VariantType.Boolean),
    ]


def message(result: Any, index: int) -> str:
    return str(result.InputArgumentDiagnosticInfos[index].AdditionalInfo)


def utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        return utc(a) == utc(b)
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9)
    return bool(a == b)


# -- the server ----------------------------------------------------------------------------


async def test_production_profile_secure_endpoints_only(setup: Setup) -> None:
    assert setup.server.server is not None
    endpoints = await setup.server.server.get_endpoints()
    assert {e.SecurityMode for e in endpoints} == {ua.MessageSecurityMode.SignAndEncrypt}
    assert all(not e.SecurityPolicyUri.endswith("#None") for e in endpoints)
    anonymous = Client(setup.server.endpoint, timeout=10)
    with pytest.raises((ua.UaError, OSError, asyncio.TimeoutError)):
        async with anonymous:
            pass


async def test_a_portfolio_object_holds_the_aggregate_the_advice_and_the_methods(setup: Setup) -> None:
    portfolios = setup.viewer.get_node(ua.NodeId("Portfolios", setup.ns))
    (north,) = await portfolios.get_children()
    assert north.nodeid == setup.nid(NAME)
    names = {(await c.read_browse_name()).Name for c in await north.get_children()}
    wanted = {f[0] for f in AGGREGATE_FIELDS} | {f[0] for f in ADVICE_FIELDS}
    wanted |= {"NetPowerMinute", "NetPowerPeriod", "RegisterSchedule", "ComputeAdvice", "ReadSchedule"}
    assert wanted <= names
    units = {"NetPower": "KWT", "Energy": "KWH", "RemainingTime": "SEC", "Coverage": "C62",
             "NotifiedEnergy": "KWH", "NetPowerMinute": "KWT"}  # fmt: skip
    for variable, code in units.items():
        node = setup.viewer.get_node(setup.nid(NAME, variable))
        assert (await node.read_type_definition()) == ua.NodeId(ua.ObjectIds.AnalogUnitType)
        eu = await node.get_child("0:EngineeringUnits")
        info = await eu.read_value()
        assert info.UnitId == int.from_bytes(code.encode(), "big"), variable
    minutes = await setup.viewer.get_node(setup.nid(NAME, "PeriodMinutes")).read_value()
    assert minutes == 15


async def test_the_live_aggregate_is_the_service_s(setup: Setup) -> None:
    aggregate = setup.service.aggregate(NAME)
    assert aggregate is not None
    assert aggregate.members == len(SITES)
    assert aggregate.fresh == len(SITES)
    for variable, _vtype, _unit, take, _description in AGGREGATE_FIELDS:
        dv = await setup.viewer.get_node(setup.nid(NAME, variable)).read_data_value()
        assert dv.StatusCode.is_good(), variable
        assert same(dv.Value.Value, take(aggregate)), (variable, dv.Value.Value, take(aggregate))
        assert utc(dv.SourceTimestamp) == aggregate.time
    net = await setup.viewer.get_node(setup.nid(NAME, "NetPower")).read_value()
    assert net == pytest.approx(sum(power(s, aggregate.time) for s in SITES))
    assert net == aggregate.net_kw
    advice = await setup.service.advice(NAME)
    state = await setup.viewer.get_node(setup.nid(NAME, "State")).read_value()
    assert state == advice.advice.state.value == "advised"
    notified = await setup.viewer.get_node(setup.nid(NAME, "NotifiedEnergy")).read_value()
    assert notified == 1.5
    recommendation = await setup.viewer.get_node(setup.nid(NAME, "Recommendation")).read_value()
    assert recommendation == advice.text


# -- methods -------------------------------------------------------------------------------


async def test_an_operator_registers_a_schedule_and_reads_it_back(setup: Setup) -> None:
    values = [0.5 + 0.01 * (i % 7) for i in range(96)]
    result = await call(setup.operator, setup, "RegisterSchedule", *register_args(TOMORROW, values))
    assert result.StatusCode.is_good(), result
    periods, total = (v.Value for v in result.OutputArguments)
    assert periods == 96
    assert total == pytest.approx(sum(values))
    stored = await setup.repo.schedule(NAME, TOMORROW)
    assert stored is not None
    assert list(stored.energy_kwh) == pytest.approx(values)
    read = await call(setup.viewer, setup, "ReadSchedule", ua.Variant(str(TOMORROW), ua.VariantType.String))
    assert read.StatusCode.is_good()
    starts, energy = (v.Value for v in read.OutputArguments)
    assert energy == pytest.approx(values)
    assert [utc(t) for t in starts] == [
        p.start for p in setup.service.portfolio(NAME).calendar.periods(TOMORROW)
    ]
    # Average kW per period, replacing on purpose.
    again = await call(
        setup.operator, setup, "RegisterSchedule", *register_args(TOMORROW, [2.0] * 96, "kW", True)
    )
    assert again.StatusCode.is_good()
    assert again.OutputArguments[1].Value == pytest.approx(0.5 * 96)


async def test_the_dst_day_has_92_periods(setup: Setup) -> None:
    wrong = await call(setup.operator, setup, "RegisterSchedule", *register_args(DST_DAY, [0.1] * 96))
    assert wrong.StatusCode.name == "BadInvalidArgument"
    assert "2026-03-29 has 92 settlement periods of 15 min, got 96 values" in message(wrong, 1)
    assert await setup.repo.schedule(NAME, DST_DAY) is None
    right = await call(setup.operator, setup, "RegisterSchedule", *register_args(DST_DAY, [0.1] * 92))
    assert right.StatusCode.is_good(), right
    assert right.OutputArguments[0].Value == 92
    read = await call(setup.viewer, setup, "ReadSchedule", ua.Variant(str(DST_DAY), ua.VariantType.String))
    starts = [utc(t) for t in read.OutputArguments[0].Value]
    assert len(starts) == 92
    assert starts[0] == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # Vienna's midnight, CET
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize(
    ("case", "args", "index", "status", "argument_status", "text"),
    [
        ("wrong length", register_args(TOMORROW, [0.1] * 95), 1, "BadInvalidArgument", "BadInvalidArgument",
         "2026-03-28 has 96 settlement periods of 15 min, got 95 values"),
        ("nan", register_args(TOMORROW, [0.1] * 4 + [math.nan] + [0.1] * 91), 1, "BadInvalidArgument",
         "BadInvalidArgument", "period 5: NaN is not a value"),
        ("infinite", register_args(TOMORROW, [0.1] * 4 + [math.inf] + [0.1] * 91), 1, "BadOutOfRange",
         "BadOutOfRange", "period 5: inf is not a finite value"),
        ("a string", register_args(TOMORROW, ua.Variant(["0.1"] * 96, ua.VariantType.String)), 1,
         "BadInvalidArgument", "BadTypeMismatch", "Values: expected an array of Double, got String[]"),
        ("unit MW", register_args(TOMORROW, [0.1] * 96, "MW"), 2, "BadInvalidArgument", "BadInvalidArgument",
         "unit must be one of kWh, kW, got 'MW'"),
        ("past day", register_args(PAST_DAY, [0.1] * 96), 0, "BadOutOfRange", "BadOutOfRange",
         "2026-03-26 is over"),
        ("no replace", register_args(TOMORROW, [0.1] * 96), 3, "BadInvalidArgument", "BadInvalidArgument",
         "already notified; replacing it needs the replace flag"),
    ],
)  # fmt: skip
async def test_refused_schedules_say_why_and_change_nothing(
    setup: Setup, case: str, args: list[ua.Variant], index: int, status: str, argument_status: str, text: str
) -> None:
    first = await call(
        setup.operator, setup, "RegisterSchedule", *register_args(TOMORROW, [0.3] * 96, "kWh", True)
    )
    assert first.StatusCode.is_good()
    before = (await setup.repo.schedule(NAME, TOMORROW), await setup.repo.schedule(NAME, PAST_DAY))
    result = await call(setup.operator, setup, "RegisterSchedule", *args)
    assert result.StatusCode.name == status, case
    assert result.InputArgumentResults[index].name == argument_status
    assert text in message(result, index)
    assert (await setup.repo.schedule(NAME, TOMORROW), await setup.repo.schedule(NAME, PAST_DAY)) == before


async def test_a_viewer_may_not_register(setup: Setup) -> None:
    before = await setup.repo.schedule(NAME, TOMORROW)
    values = [9.0] * 96
    result = await call(
        setup.viewer, setup, "RegisterSchedule", *register_args(TOMORROW, values, "kWh", True)
    )
    assert result.StatusCode.name == "BadUserAccessDenied"
    assert await setup.repo.schedule(NAME, TOMORROW) == before


async def test_compute_advice_is_the_service_s(setup: Setup) -> None:
    now = ua.Variant(datetime(1601, 1, 1, tzinfo=UTC), ua.VariantType.DateTime)
    result = await call(setup.viewer, setup, "ComputeAdvice", now)
    assert result.StatusCode.is_good(), result
    advice = await setup.service.advice(NAME)  # the clock stands still between ticks
    expected = advice_outputs(replace(advice.advice, text=advice.text))
    got = [v.Value for v in result.OutputArguments]
    assert all(same(a, b.Value) for a, b in zip(got, expected, strict=True)), (got, expected)
    # Later in the running period, the current power held; beyond it refused.
    period_end = advice.advice.period.end
    later = await call(setup.viewer, setup, "ComputeAdvice",
                       ua.Variant(period_end - timedelta(minutes=1), ua.VariantType.DateTime))  # fmt: skip
    assert later.StatusCode.is_good()
    assert later.OutputArguments[6].Value == pytest.approx(60.0)  # RemainingTime, s
    beyond = await call(setup.viewer, setup, "ComputeAdvice",
                        ua.Variant(period_end + timedelta(minutes=1), ua.VariantType.DateTime))  # fmt: skip
    assert beyond.StatusCode.name == "BadOutOfRange"
    assert "is not in the rest of the running period" in message(beyond, 0)


async def test_a_method_is_its_portfolio_s_only(setup: Setup) -> None:
    request = ua.CallMethodRequest(
        ObjectId=ua.NodeId("Portfolios", setup.ns), MethodId=setup.nid(NAME, "ReadSchedule"),
        InputArguments=[ua.Variant(str(TOMORROW), ua.VariantType.String)],
    )  # fmt: skip
    (result,) = await setup.viewer.uaclient.call([request])
    assert result.StatusCode.name == "BadMethodInvalid"


# -- history -------------------------------------------------------------------------------


async def history_page(
    setup: Setup, variable: str, start: datetime, end: datetime, count: int,
    point: bytes | None = None,
) -> ua.HistoryReadResult:  # fmt: skip
    details = ua.ReadRawModifiedDetails(
        IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=count, ReturnBounds=False
    )
    params = ua.HistoryReadParameters(
        HistoryReadDetails=details,
        TimestampsToReturn=ua.TimestampsToReturn.Source,
        ReleaseContinuationPoints=False,
        NodesToRead=[ua.HistoryReadValueId(NodeId=setup.nid(NAME, variable), ContinuationPoint=point)],
    )
    (result,) = await setup.viewer.uaclient.history_read(params)
    return result


async def every_page(
    setup: Setup, variable: str, start: datetime, end: datetime, count: int
) -> tuple[list[tuple[datetime, float]], int]:
    values: list[tuple[datetime, float]] = []
    pages, point = 0, None
    while True:
        result = await history_page(setup, variable, start, end, count, point)
        assert result.StatusCode.is_good(), result.StatusCode
        pages += 1
        values += [(utc(dv.SourceTimestamp), dv.Value.Value) for dv in result.HistoryData.DataValues]
        point = result.ContinuationPoint
        if not point:
            return values, pages


async def test_history_of_the_minutes_and_periods_from_the_database(setup: Setup) -> None:
    lo, hi = START - timedelta(hours=1), START + timedelta(hours=1)
    minutes = [(r.start, r.mean_kw) for r in await setup.repo.aggregates(NAME, 60, lo, hi)]
    assert [t for t, _ in minutes] == [START + timedelta(minutes=k) for k in range(3)]  # 08:58 .. 09:00
    # Page by page (two a page), forward and in reverse, as stored.
    forward, pages = await every_page(setup, "NetPowerMinute", lo, hi, 2)
    assert forward == minutes
    assert pages == 2
    reverse, _pages = await every_page(setup, "NetPowerMinute", hi, lo, 3)
    assert reverse == minutes[::-1]
    newest, _pages = await every_page(setup, "NetPowerMinute", NO_TIME, hi, 1)  # back from EndTime
    assert newest == minutes[::-1]
    window, _pages = await every_page(setup, "NetPowerMinute", minutes[0][0], minutes[2][0], 0)
    assert window == minutes[0:2]  # StartTime included, EndTime not
    (period,) = [(r.start, r.mean_kw) for r in await setup.repo.aggregates(NAME, 900, lo, hi)]
    periods, _pages = await every_page(setup, "NetPowerPeriod", lo, hi, 0)
    assert periods == [period]
    assert period[0] == datetime(2026, 3, 27, 8, 45, tzinfo=UTC)
    # The variables' values: the last closed minute's and period's records.
    last_minute = await setup.viewer.get_node(setup.nid(NAME, "NetPowerMinute")).read_data_value()
    assert (utc(last_minute.SourceTimestamp), last_minute.Value.Value) == minutes[-1]
    last_period = await setup.viewer.get_node(setup.nid(NAME, "NetPowerPeriod")).read_data_value()
    assert (utc(last_period.SourceTimestamp), last_period.Value.Value) == period
    empty = await history_page(setup, "NetPowerMinute", hi, hi + timedelta(hours=1), 0)
    assert empty.StatusCode.name == "GoodNoData"
    live = await history_page(setup, "NetPower", lo, hi, 0)
    assert live.StatusCode.name == "BadHistoryOperationUnsupported"
    garbled = await history_page(setup, "NetPowerMinute", lo, hi, 0, b"not a point")
    assert garbled.StatusCode.name == "BadContinuationPointInvalid"


# -- portfolios come and go ----------------------------------------------------------------


async def test_portfolios_defined_and_removed_at_run_time_come_and_go(setup: Setup) -> None:
    await setup.service.define({"name": "south", "sites": ["site-9"]})
    await setup.tick()
    members = await setup.viewer.get_node(setup.nid("south", "Members")).read_value()
    assert members == 1
    assert await setup.viewer.get_node(setup.nid("south", "NetPower")).read_value() == pytest.approx(
        power("site-9", setup.clock.now())
    )
    await setup.service.remove("south")
    await setup.tick()
    portfolios = setup.viewer.get_node(ua.NodeId("Portfolios", setup.ns))
    assert [c.nodeid for c in await portfolios.get_children()] == [setup.nid(NAME)]
    with pytest.raises(ua.UaStatusCodeError, match="BadNodeIdUnknown"):
        await setup.viewer.get_node(setup.nid("south", "Members")).read_value()


# -- node-opcua -----------------------------------------------------------------------------


async def test_node_opcua_reads_the_aggregate_calls_compute_advice_and_registers(setup: Setup) -> None:
    """node-opcua, SignAndEncrypt over Basic256Sha256: a viewer browses to the portfolio, reads
    its net power and calls ComputeAdvice; an operator registers a schedule; a viewer may not."""
    assert setup.server.server is not None
    own = Pki(setup.server.security.pki).own_certificate
    day = date(2026, 3, 30)
    values = [round(0.2 + 0.01 * (i % 5), 3) for i in range(96)]

    def job(name: str, user: str, steps: list[str]) -> dict[str, Any]:
        pki_root = setup.tmp / "node-pki" / name
        (pki_root / "trusted" / "certs").mkdir(parents=True)
        shutil.copy(own, pki_root / "trusted" / "certs" / own.name)
        return {
            "endpoint": setup.server.endpoint, "securityPolicy": "Basic256Sha256",
            "securityMode": "SignAndEncrypt", "applicationUri": NODE_URI,
            "certificateFile": str(setup.node_cert), "privateKeyFile": str(setup.node_key),
            "pkiRoot": str(pki_root), "serverCertificateFile": str(own),
            "user": {"name": user, "password": PASSWORD}, "namespaceUri": NAMESPACE,
            "browsePath": ["Portfolios", NAME], "target": f"Portfolios/{NAME}/NetPower",
            "methodObject": f"Portfolios/{NAME}",
            "methodNames": {"advice": "ComputeAdvice", "register": "RegisterSchedule",
                            "readProfile": "ReadSchedule"},
            "register": {"day": day.isoformat(), "values": values, "unit": "kWh", "replace": False},
            "readProfile": {"day": day.isoformat()}, "steps": steps,
        }  # fmt: skip

    jobs = {
        "viewer": job("viewer", "viewer", ["browse", "read", "advice", "register"]),
        "operator": job("operator", "operator", ["register", "readProfile"]),
    }
    # The clock stands still while node-opcua runs: what it reads is the aggregate now.
    aggregate = setup.service.aggregate(NAME)
    advice = await setup.service.advice(NAME)
    async with asyncio.timeout(60):
        out, err = await setup.process.communicate(json.dumps({"jobs": jobs}).encode())
    lines = out.decode().strip().splitlines()
    assert lines, f"client.mjs printed nothing (exit {setup.process.returncode}):\n{err.decode()}"
    report = json.loads(lines[-1])
    viewer, operator = report["viewer"], report["operator"]
    assert viewer["ok"], f"{viewer['step']}: {viewer.get('error')}\n{err.decode()}"
    assert operator["ok"], f"{operator['step']}: {operator.get('error')}\n{err.decode()}"
    assert viewer["connect"]["securityPolicy"].endswith("#Basic256Sha256")
    assert viewer["connect"]["securityMode"] == "SignAndEncrypt"

    assert viewer["browse"]["nodeId"] == f"ns={setup.ns};s=Portfolios/{NAME}/NetPower"
    assert viewer["browse"]["engineeringUnits"] == {
        "displayName": "kW",
        "unitId": int.from_bytes(b"KWT", "big"),
    }
    assert aggregate is not None
    read = viewer["read"]
    assert read["statusCode"]["name"] == "Good"
    assert read["value"] == aggregate.net_kw
    assert datetime.fromisoformat(read["sourceTimestamp"].replace("Z", "+00:00")) == aggregate.time

    computed = viewer["methods"]["advice"]
    assert computed["statusCode"]["name"] == "Good"
    outputs = computed["outputs"]
    assert list(outputs) == [f[0] for f in ADVICE_FIELDS]
    a = replace(advice.advice, text=advice.text)
    assert outputs["State"] == a.state.value
    assert outputs["Recommendation"] == a.text
    assert outputs["PeriodStart"] == a.period.start.isoformat().replace("+00:00", ".000Z")
    assert outputs["RemainingTime"] == pytest.approx(a.remaining_s)
    for name, _vtype, _unit, take in ADVICE_FIELDS[4:]:
        value = take(a)
        assert outputs[name] == ("NaN" if value is None else pytest.approx(value)), name

    assert viewer["methods"]["register"]["statusCode"]["name"] == "BadUserAccessDenied"
    registered = operator["methods"]["register"]
    assert registered["statusCode"]["name"] == "Good"
    assert registered["outputs"]["Periods"] == 96
    assert registered["outputs"]["TotalEnergy"] == pytest.approx(sum(values))
    assert operator["methods"]["readProfile"]["outputs"]["Energy"] == pytest.approx(values)
    stored = await setup.repo.schedule(NAME, day)
    assert stored is not None
    assert list(stored.energy_kwh) == pytest.approx(values)
