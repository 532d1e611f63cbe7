"""Running the real gateway in a test: simulated meter on a loopback port, real transport,
real protocol code (IEC 62056-21 or DLMS/COSEM), real poller, real asyncua server, and real
asyncua clients."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncua import Client, ua
from cryptography.hazmat.primitives import serialization

from gateway.app import Gateway
from gateway.clock import Clock, SystemClock
from gateway.config import GatewayConfig, MeterConfig, demo_config
from gateway.opcua.ids import SMX_NAMESPACE
from gateway.security.pki import Pki, create_application_certificate, write_private_key
from gateway.security.users import Role, UserDb
from headend.config import BrokerConfig, CompletenessConfig, HeadendConfig, SiteConfig, StorageConfig
from headend.service import Headend
from headend.storage.sqlite import SqliteRepository

if TYPE_CHECKING:
    from gateway.simulator.server import SimulatedMeter
    from tests.support.broker import Broker

#: The test client's ApplicationUri (its certificate is made for it).
CLIENT_URI = "urn:smx:test-client"
#: Password of the users ``running_gateway(login=...)`` creates.
PASSWORD = "correct horse battery"
#: A gateway or head-end stops within seconds of its cancellation; a stop that has not
#: ended after this long never will (a lost cancellation leaves a loop running): the test
#: fails saying what still runs instead of hanging.
STOP_TIMEOUT = 120.0
_shared: Path | None = None


def remove_shared_pki() -> None:
    """Remove the PKI of :func:`shared_pki` (at the end of a test session)."""
    if _shared is not None:
        shutil.rmtree(_shared, ignore_errors=True)


def shared_pki() -> Path:
    """One PKI for the tests of this process: the gateway's key pair and a trusted client's
    are made once (RSA 2048 takes ~0.1 s), not for each of the hundreds of gateways started;
    beside it the OPC UA node cache (``node-cache``), made by the first gateway."""
    global _shared
    if _shared is None:
        _shared = Path(tempfile.mkdtemp(prefix="smx-test-pki-"))
        pki = Pki(_shared / "server")
        pki.create_folders()
        cert, key = create_application_certificate(
            CLIENT_URI, common_name="SMX test client", organization="tests"
        )
        write_private_key(_shared / "client.pem", key)
        der = cert.public_bytes(serialization.Encoding.DER)
        (_shared / "client.der").write_bytes(der)
        (pki.folder("trusted/certs") / "test-client.der").write_bytes(der)
    return _shared


async def secure_client(
    endpoint: str,
    user: str | None,
    password: str = PASSWORD,
    policy: str = "Basic256Sha256",
    mode: str = "SignAndEncrypt",
    server_certificate: Path | None = None,
) -> Client:
    """A client of the trusted test identity on a secure channel (not connected yet).

    With ``server_certificate`` the client knows the gateway's certificate beforehand (a
    production gateway opens no None channel to discover it); without, it asks GetEndpoints.
    """
    pki = shared_pki()
    client = Client(endpoint, timeout=10)
    client.application_uri = CLIENT_URI
    known = f",{server_certificate}" if server_certificate is not None else ""
    await client.set_security_string(f"{policy},{mode},{pki / 'client.der'},{pki / 'client.pem'}{known}")
    if user is not None:
        client.set_user(user)
        client.set_password(password)
    return client


def trust_test_client(pki_root: str | Path) -> None:
    """Put the test client's certificate into a PKI's trusted/ folder."""
    pki = Pki(pki_root)
    pki.create_folders()
    shutil.copyfile(shared_pki() / "client.der", pki.folder("trusted/certs") / "test-client.der")


def add_user(config: GatewayConfig | HeadendConfig, name: str, role: Role) -> None:
    """A user in the configuration's users file (the gateway's or the head-end's ``[security]``),
    with :data:`PASSWORD`."""
    db = UserDb.load(config.security.users)
    db.add(name, role, password=PASSWORD)
    Path(config.security.users).parent.mkdir(parents=True, exist_ok=True)
    db.save()


async def status_of(action: Any) -> str:
    """The StatusCode name ``action`` (an awaitable) raises, or "Good"."""
    try:
        await action
    except ua.UaStatusCodeError as err:
        return ua.StatusCode(err.code).name
    return "Good"


def awaiting(task: asyncio.Task[Any]) -> str:
    """Where ``task`` waits: its chain of coroutines down to what the innermost awaits (a
    suspended task's own stack has only its outermost frame)."""
    lines = [repr(task)]
    inner: Any = task.get_coro()
    while inner is not None:
        frame = getattr(inner, "cr_frame", None) or getattr(inner, "ag_frame", None)
        if frame is None:
            lines.append(f"    awaits {inner!r}")
            break
        lines.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        inner = getattr(inner, "cr_await", None) or getattr(inner, "ag_await", None)
    return "\n".join(lines)


async def stop_task(task: asyncio.Task[Any], what: str, timeout: float = STOP_TIMEOUT) -> None:
    """Cancel ``task`` and wait until it has ended (what it raised, but the cancellation,
    is raised here); AssertionError naming ``what`` and where every task still running
    waits if it has not ended within ``timeout`` s."""
    task.cancel()
    await asyncio.wait({task}, timeout=timeout)  # on timeout: no second cancellation
    if not task.done():
        others = sorted(asyncio.all_tasks() - {asyncio.current_task()}, key=lambda t: t.get_name())
        raise AssertionError(
            f"{what} did not stop within {timeout:g} s of its cancellation; tasks still running:\n"
            + "\n".join(awaiting(t) for t in others)
        )
    with contextlib.suppress(asyncio.CancelledError):
        await task


@dataclass
class Running:
    gateway: Gateway
    client: Client
    ns: int

    def node(self, identifier: str) -> Any:
        return self.client.get_node(ua.NodeId(identifier, self.ns))


#: The ways the gateway reaches the simulated meter (meter overrides of the demo).
MODES: dict[str, dict[str, Any]] = {
    "iec": {"protocol": "iec62056-21", "baudrate": 19200},
    "ln": {"protocol": "dlms", "referencing": "ln"},
    "sn": {"protocol": "dlms", "referencing": "sn"},
    "mode-e": {"protocol": "dlms-mode-e", "referencing": "ln"},
}


def demo(mode: str = "ln", **meter_overrides: Any) -> GatewayConfig:
    """The demo configuration (DLMS LN at 9600 Bd) reached in ``mode``, on an ephemeral OPC UA port."""
    config = demo_config()
    meter: MeterConfig = replace(config.meters[0], **{**MODES[mode], **meter_overrides})
    assert meter.simulator is not None
    meter = replace(meter, simulator=replace(meter.simulator, history_days=2.0))
    security = replace(config.security, pki=str(shared_pki() / "server"), login_delay_s=0.05)
    opcua = replace(config.opcua, port=0, node_cache=str(shared_pki() / "node-cache"))
    return replace(config, meters=(meter,), opcua=opcua, security=security)


@contextlib.asynccontextmanager
async def running_gateway(
    config: GatewayConfig, clock: Clock | None = None, *, login: Role | None = None
) -> AsyncIterator[Running]:
    """The gateway and a client: anonymous on the demo's None endpoint, or with ``login`` a
    user of that role (named after it) on a Basic256Sha256 SignAndEncrypt channel."""
    if login is not None:
        add_user(config, str(login), login)
        if not config.security.demo:  # the test client is trusted in the shared PKI only
            trust_test_client(config.security.pki)
    # Every gateway of the tests serves its web page on a port the OS picks.
    gateway = Gateway(replace(config, web=replace(config.web, port=0)), clock)
    task = asyncio.create_task(gateway.run())
    try:
        async with asyncio.timeout(30):
            ready = asyncio.create_task(gateway.ready.wait())
            done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                task.result()  # raises what stopped the gateway
        if login is None:
            client = Client(gateway.endpoint, timeout=10)
        else:
            own = Pki(config.security.pki).own_certificate
            client = await secure_client(gateway.endpoint, str(login), server_certificate=own)
        async with client:
            ns = await client.get_namespace_index(SMX_NAMESPACE)
            yield Running(gateway, client, ns)
    finally:
        await stop_task(task, "the gateway")


def over_archive(root: Path) -> GatewayConfig:
    """The demo configuration reading a prepared archive at ``root``, which it never prunes
    (the tests' archives lie in the past) and does not backfill far into."""
    config = demo()
    archive = replace(
        config.archive,
        path=str(root),
        keep_days=tuple((stream, 0) for stream, _ in config.archive.keep_days),
        max_backfill_days=0.5,
    )
    return replace(config, archive=archive)


async def meter_events(running: Running, meters: list[str]) -> asyncio.Queue[Any]:
    """A queue of the MeterEventType events (ns=SMX;i=1100) the objects of ``meters`` raise."""
    received: asyncio.Queue[Any] = asyncio.Queue()

    class Handler:
        def event_notification(self, event: Any) -> None:
            received.put_nowait(event)

    sub = await running.client.create_subscription(100, Handler())
    for meter in meters:
        await sub.subscribe_events(running.node(meter), ua.NodeId(1100, running.ns))
    return received


def plant_outage(sim: SimulatedMeter) -> datetime:
    """A power down and up logged by ``sim`` at its time now (events 1 and 2); that time."""
    sim.advance()
    down = sim.now()
    sim.physics.power_down(down)
    sim.physics.power_up(down)
    return down


async def power_down_event(received: asyncio.Queue[Any], down: datetime) -> Any:
    """The power-down event (code 1) of :func:`plant_outage` at ``down``, skipping older ones."""
    while True:
        event = await received.get()
        if event.EventCode == 1 and event.Time >= down.replace(microsecond=0):
            return event


class Collector:
    """Subscription handler that records every data change, per node."""

    def __init__(self) -> None:
        self.changes: dict[str, list[ua.DataValue]] = {}
        self._changed = asyncio.Event()

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        key = node.nodeid.Identifier
        self.changes.setdefault(key, []).append(data.monitored_item.Value)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds after some notification; fail after ``timeout``."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


async def subscribe(running: Running, identifiers: list[str], period_ms: float = 1000) -> Collector:
    """Subscribe with DataChangeTrigger StatusValueTimestamp: every new sample is reported."""
    collector = Collector()
    sub = await running.client.create_subscription(period_ms, collector)
    params = []
    for handle, identifier in enumerate(identifiers, start=1):
        item = ua.MonitoredItemCreateRequest()
        item.ItemToMonitor = ua.ReadValueId(
            NodeId=ua.NodeId(identifier, running.ns), AttributeId=ua.AttributeIds.Value
        )
        item.MonitoringMode = ua.MonitoringMode.Reporting
        item.RequestedParameters = ua.MonitoringParameters(
            ClientHandle=handle,
            SamplingInterval=period_ms,
            QueueSize=10,
            DiscardOldest=True,
            Filter=ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp),
        )
        params.append(item)
    results = await sub.create_monitored_items(params)
    for r in results:
        assert not isinstance(r, ua.StatusCode) or r.is_good(), r
    return collector


#: The PublisherId of :func:`publishing`'s gateway.
PUBLISHER = "smx-a"


def publishing(tmp_path: Path, broker: Broker, **upstream: object) -> GatewayConfig:
    """The demo gateway archiving in ``tmp_path`` and publishing to ``broker`` as PUBLISHER."""
    config = demo()
    up = replace(config.upstream, broker=broker.url, publisher_id=PUBLISHER, initial_days=1.0,
                 replay_messages_per_s=100.0, replay_bytes_per_s=4e6)  # fmt: skip
    return replace(
        config,
        archive=replace(config.archive, path=str(tmp_path / "archive")),
        upstream=replace(up, **upstream),  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def headend_instance(
    broker: Broker,
    db: Path,
    name: str,
    clock: Clock | None = None,
    completeness: CompletenessConfig | None = None,
    sites: tuple[SiteConfig, ...] = (),
) -> AsyncIterator[Headend]:
    """A head-end instance of shared-subscription group ``g`` on ``clock`` (the system's by
    default), storing into the SQLite file ``db``; connected when the block begins."""
    config = HeadendConfig(
        profile="demo",
        broker=BrokerConfig(url=broker.url, group="g"),
        storage=StorageConfig(backend="sqlite", path=str(db)),
        completeness=completeness or CompletenessConfig(),
        sites=sites,
    )
    repo = SqliteRepository(db)
    await repo.open()
    headend = Headend(config, repo, clock or SystemClock(), name=name)
    task = asyncio.create_task(headend.run())
    try:
        await asyncio.wait_for(headend.connected.wait(), 30)
        yield headend
    finally:
        try:
            await stop_task(task, f"head-end {name}")
        finally:
            await repo.close()
