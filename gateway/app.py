"""Composition root: one TaskGroup owns every long-lived task (DESIGN §2).

``Gateway.run()`` starts, in order: the in-process simulated meters of the demo (if any),
the OPC UA server with the SMX model, one MeterType object (with its Market object) per
meter and the external values, the web page and REST API, and one poller per meter with
its archive recorder. Each snapshot goes to the address space, the archive, the market
desk (advice) and the live page, in that order. Cancelling ``run()`` stops all of it; the
web server and then the OPC UA server are stopped last so clients see Bad values rather
than a hang.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from gateway.alarms.journal import AlarmJournal
from gateway.alarms.service import AlarmService, DiskFacts, Probes, UplinkFacts
from gateway.archive.files import AsyncArchive
from gateway.archive.query import ArchiveQueries, SeriesKey
from gateway.archive.recorder import ArchiveRecorder, ArchiveStatus
from gateway.clock import Clock, SystemClock
from gateway.config import GatewayConfig, MeterConfig
from gateway.errors import ArchiveError, GatewayError
from gateway.localtime import meter_zone
from gateway.market.desk import MarketDesk
from gateway.market.external import ExternalData
from gateway.market.sources import SourcePuller
from gateway.market.store import ExternalStore
from gateway.meter.bus import OWN_LINE, SharedLine
from gateway.meter.dlms import DlmsMeter, DlmsSession, DlmsSettings, Referencing
from gateway.meter.feed import Delivery
from gateway.meter.iec21 import Iec21Meter, Iec21Session
from gateway.meter.model import EventRecord, ProfileData, Snapshot
from gateway.meter.poller import MeterLink, Poller, PollerListener
from gateway.opcua.address_space import AddressSpace, MeterNodes
from gateway.opcua.administration import AdminNodes
from gateway.opcua.alarms import AlarmNodes
from gateway.opcua.history import ArchiveHistory, EventSource, install
from gateway.opcua.ids import METER_EVENT_TYPE
from gateway.opcua.market import MarketNodes
from gateway.opcua.quality import QualityNodes
from gateway.opcua.server import build_server
from gateway.protocols.hdlc import HdlcAddress
from gateway.quality.service import PowerQuality
from gateway.reload import ReloadPlan, plan
from gateway.security.auth import UserDirectory
from gateway.security.pki import Pki
from gateway.streams import READOUTS
from gateway.transport import Framing, Transport, open_serial
from gateway.uplink.service import Uplink
from gateway.web.api import WebApi, WebServer, WebServices

if TYPE_CHECKING:
    from gateway.simulator.server import SimulatedMeter

log = logging.getLogger(__name__)

MeterLinkFactory = Callable[[], Awaitable[MeterLink]]
#: A poller that has published no snapshot for this long (and at least ten of its cycles)
#: is hung: its loop no longer turns (the service manager's watchdog then restarts us).
HUNG_AFTER_S = 60.0
#: Pause before a crashed poller is restarted (clock seconds).
RESTART_S = 5.0
#: Where notified profiles go when no archive is configured (they must be durable).
DEFAULT_ARCHIVE = "var/archive"


class OpcUaPublisher:
    """Poller listener that writes into the address space."""

    #: Values show the present: a snapshot still waiting for a busy server is replaced.
    delivery = Delivery.LATEST

    def __init__(self, space: AddressSpace) -> None:
        self.space = space

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        await self.space.write_snapshot(snapshot)

    async def on_profile(self, meter_id: str, profile: ProfileData) -> None:
        await self.space.write_profile(meter_id, profile)

    async def on_events(self, meter_id: str, events: Sequence[EventRecord]) -> None:
        await self.space.write_events(meter_id, events)


def dlms_settings(meter: MeterConfig) -> DlmsSettings:
    """The DLMS session settings of a meter's configuration."""
    size = meter.server_address_size
    server = HdlcAddress(meter.logical_device, None if size == 1 else meter.physical_address, size)
    return DlmsSettings(
        referencing=Referencing(meter.referencing),
        client_address=meter.client_address,
        server_address=server,
        password=meter.password,
        mode_e=meter.protocol == "dlms-mode-e",
        baudrate=meter.baudrate,
        device_address=meter.address,
        response_timeout=meter.response_timeout,
        zone=meter_zone(meter.timezone),
    )


def link_factory(meter: MeterConfig, line: SharedLine | None = None) -> MeterLinkFactory:
    """A function that opens a fresh transport + session for ``meter`` (on ``line``, the
    multi-drop bus it shares with other meters, if given)."""
    if meter.protocol in ("dlms", "dlms-mode-e"):
        settings = dlms_settings(meter)

        async def connect_dlms() -> MeterLink:
            # The session sets the line itself (8N1 at once, or 300 Bd 7E1 for mode E).
            transport = await (line.tap() if line is not None else open_port(meter))
            return DlmsMeter(DlmsSession(transport, settings))

        return connect_dlms

    async def connect() -> MeterLink:
        transport = await open_serial(
            meter.url, baudrate=300, framing=Framing.SEVEN_E_ONE, timeout=meter.response_timeout
        )
        session = Iec21Session(
            transport,
            address=meter.address,
            password=meter.password,
            max_baudrate=meter.baudrate,
            response_timeout=meter.response_timeout,
        )
        return Iec21Meter(session, meter_zone(meter.timezone))

    return connect


async def open_port(meter: MeterConfig) -> Transport:
    """The serial port (or socket URL) of a DLMS meter's line, 8N1 at its speed."""
    return await open_serial(
        meter.url, baudrate=meter.baudrate, framing=Framing.EIGHT_N_ONE, timeout=meter.response_timeout
    )


def shared_lines(meters: Sequence[MeterConfig]) -> list[SharedLine]:
    """The multi-drop lines among ``meters`` (the configuration checked that they may
    share them); a meter alone on its line has none."""
    by_line: dict[str, list[MeterConfig]] = {}
    for meter in meters:
        by_line.setdefault(meter.line, []).append(meter)
    return [
        SharedLine(stations[0].url, functools.partial(open_port, stations[0]), [m.id for m in stations])
        for stations in by_line.values()
        if len(stations) > 1
    ]


class Gateway:
    """The whole gateway for one configuration."""

    def __init__(self, config: GatewayConfig, clock: Clock | None = None) -> None:
        # The PKI and the users file are found relative to the working directory at start,
        # as documented, whatever the process does later.
        security = config.security
        security = replace(security, pki=os.path.abspath(security.pki), users=os.path.abspath(security.users))
        opcua = config.opcua
        if opcua.node_cache:
            opcua = replace(opcua, node_cache=os.path.abspath(opcua.node_cache))
        # As loaded, to compare a reloaded file with (the paths above are made absolute).
        self._security_as_loaded, self._opcua_as_loaded = config.security, config.opcua
        config = replace(config, security=security, opcua=opcua)
        self.config = config
        self.clock = clock or SystemClock()
        self.simulators: dict[str, SimulatedMeter] = {}
        self.pollers: dict[str, Poller] = {}
        #: The multi-drop lines (DESIGN §3), and the same by the id of each meter on one.
        self.buses: list[SharedLine] = []
        self.lines: dict[str, SharedLine] = {}
        self.space: AddressSpace | None = None
        self.recorders: dict[str, ArchiveRecorder] = {}
        #: The archive's questions (history) for every adapter; None without an archive.
        self.queries: ArchiveQueries | None = None
        self.history: ArchiveHistory | None = None
        self.desk: MarketDesk | None = None
        self.external = ExternalData(config.external)
        self.puller = SourcePuller(self.external, self.clock)
        #: The users file, shared by OPC UA and the web (DESIGN §8).
        self.users = UserDirectory(config.security.users, login_delay_s=config.security.login_delay_s)
        self.market_nodes: MarketNodes | None = None
        #: The alarm conditions of the gateway and its meters (DESIGN §14).
        self.alarms: AlarmService | None = None
        #: EN 50160 weeks of the meters (DESIGN §14); None without an archive.
        self.quality: PowerQuality | None = None
        self.quality_nodes: QualityNodes | None = None
        self.meter_nodes: dict[str, MeterNodes] = {}
        self.web: WebServer | None = None
        #: The uplink to the fleet's broker (``[upstream]``); None when not configured.
        self.uplink: Uplink | None = None
        self.endpoint = ""
        self.web_url = ""
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Run until cancelled."""
        try:
            await self._run()
        finally:
            for sim in self.simulators.values():
                await sim.stop()

    async def _run(self) -> None:
        meters = []
        for meter in self.config.meters:
            if meter.simulator is not None:
                from gateway.simulator.server import simulator_from_config  # only for a simulated meter

                sim = simulator_from_config(meter.simulator, self.clock)
                host = self.simulators.get(meter.simulator.on_line_of)
                if host is not None:
                    host.add_station(sim)  # a further meter on that simulated line
                else:
                    await sim.start()
                self.simulators[meter.id] = sim
                meter = replace(meter, url=(host or sim).url)
                log.info("simulated meter %s listening on %s, HDLC physical address %d",
                         meter.id, meter.url, sim.physical_address)  # fmt: skip
            meters.append(meter)
        server = await build_server(self.config.opcua, self.config.security, self.users)
        if not await self.users.count():
            log.warning(
                "no users in %s: only %s; add one with: smx-gateway users --file %s add NAME --role operator",
                self.config.security.users,
                "anonymous read-only sessions" if self.config.security.anonymous else "nobody can log in",
                self.config.security.users,
            )
        self.space = AddressSpace(server, self.clock)
        await self.space.load_model()
        root = Path(self.config.archive.path) if self.config.archive.path else None
        if root is not None:
            self.queries = ArchiveQueries(self.clock)
            self.history = ArchiveHistory(self.queries)
        self.desk = MarketDesk(
            self.config.market, root or DEFAULT_ARCHIVE, [m.id for m in meters], self.clock
        )
        self.external_store = ExternalStore(root or DEFAULT_ARCHIVE)
        try:
            restored = self.external.restore(await asyncio.to_thread(self.external_store.load))
            if restored:
                log.info("%d external value(s) kept from before the restart", restored)
        except ArchiveError as err:
            log.error("%s; starting without them", err)
        self.market_nodes = MarketNodes(self.space, self.desk, self.external, self.clock)
        for meter in meters:
            nodes = await self.space.add_meter(meter, history=root is not None)
            self.meter_nodes[meter.id] = nodes
            if root is not None:
                await self._add_archive(root, meter, nodes)
            await self.market_nodes.add_market(meter.id)
        await self.market_nodes.add_external()
        await AdminNodes(self.space, Pki(self.config.security.pki)).add()
        self.alarms = AlarmService(
            self.config.alarms, self.clock, [m.id for m in meters],
            AlarmJournal(root) if root is not None else None, self._probes(root),
        )  # fmt: skip
        if root is not None:
            zones = {m.id: meter_zone(m.timezone) for m in meters}
            self.quality = PowerQuality(self.recorders, zones, self.clock)
            self.quality_nodes = QualityNodes(self.space, self.quality, self.clock)
            await self.quality_nodes.add()
        await AlarmNodes(self.space, self.alarms, self.history).add(
            {mid: n.meter for mid, n in self.meter_nodes.items()}
        )
        self.desk.add_advice_listener(self.market_nodes)
        self.desk.profile_listeners.append(self.market_nodes.on_profile)
        if self.history is not None:
            await install(server, self.history)
        publisher = OpcUaPublisher(self.space)
        try:
            await server.start()
        except OSError as err:
            endpoint = self.config.opcua.endpoint
            raise GatewayError(f"cannot serve OPC UA at {endpoint}: {err.strerror or err}") from err
        try:
            self.endpoint = _endpoint_of(server, self.config.opcua.path)
            api = WebApi(self._web_services(root)) if self.config.web.enabled else None
            if api is not None:
                api.on_external.append(self.market_nodes.refresh_external)
                self.desk.add_advice_listener(api.hub)
                tls = None
                web_host = self.config.web.host
                if not self.config.web.https and web_host not in ("127.0.0.1", "::1", "localhost"):
                    log.warning("the web page is served over plain HTTP on %s: logins cross the network "
                                "readable; set [web] https = true", web_host)  # fmt: skip
                if self.config.web.https:
                    tls = await asyncio.to_thread(Pki(self.config.security.pki).tls_server_context)
                self.web = WebServer(api, self.config.web.host, self.config.web.port, tls)
                try:
                    await self.web.start()
                except OSError as err:
                    raise GatewayError(str(err.strerror or err)) from err
                self.web_url = self.web.url
            if self.config.upstream.enabled:
                readers = {mid: r.archive.reader for mid, r in self.recorders.items()}
                self.uplink = Uplink(replace(self.config, meters=tuple(meters)), self.clock, readers)
                for writing in self.recorders.values():
                    writing.written.append(self.uplink.archived)
                await self.uplink.prepare()
                await self.space.add_uplink([(w.meter_id, w.writer) for w in self.uplink.status().writers])
                self.uplink.status_listeners.append(self.space.write_uplink_status)
            self.buses = shared_lines(meters)
            self.lines = {mid: bus for bus in self.buses for mid in bus.shares}
            for bus in self.buses:
                log.info("line %s shared by meters %s", bus.name, ", ".join(bus.shares))
            for meter in meters:
                recorder = self.recorders.get(meter.id)
                line = self.lines.get(meter.id)
                listeners: list[PollerListener] = [
                    publisher, *([recorder] if recorder else []), self.desk.listener(meter.id),
                    *([self.uplink] if self.uplink else []), self.alarms.listener(meter.id),
                ]  # fmt: skip
                poller = Poller(
                    meter, link_factory(meter, line), self.clock, listeners,
                    initial_span=timedelta(days=self.config.archive.initial_backfill_days),
                    max_backfill=timedelta(days=self.config.archive.max_backfill_days),
                    share=line.shares[meter.id] if line is not None else OWN_LINE,
                )  # fmt: skip
                if recorder is not None:
                    await recorder.repair()
                    await self.desk.resume(meter.id, recorder.archive.reader)
                    for readout in READOUTS:
                        last = await recorder.archive.last_time(readout.id)
                        if last is not None:
                            poller.resume(readout.id, last)
                self.pollers[meter.id] = poller
            restored = await self.alarms.restore()
            if restored:
                log.info("%d alarm(s) awaiting acknowledgement kept from before the restart", restored)
            self.ready.set()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._keep_running("alarms", self.alarms.run), name="alarms")
                if self.quality is not None:
                    tasks.create_task(self._keep_running("power quality", self.quality.run), name="quality")
                if self.quality_nodes is not None:
                    refresh = self._keep_running("power quality nodes", self.quality_nodes.run)
                    tasks.create_task(refresh, name="pq-nodes")
                for poller in self.pollers.values():
                    what = f"poller of meter {poller.config.id}"
                    tasks.create_task(self._keep_running(what, poller.run), name=f"poller-{poller.config.id}")
                for mid, recorder in self.recorders.items():
                    tasks.create_task(recorder.run(), name=f"archive-{mid}")
                tasks.create_task(self.desk.run(), name="market-advice")
                if self.uplink is not None:
                    tasks.create_task(self._keep_running("uplink", self.uplink.run), name="uplink")
                tasks.create_task(
                    self._keep_running("external data", self._watch_external), name="external-data"
                )
                tasks.create_task(
                    self._keep_running("external sources", self.puller.run), name="external-sources"
                )
        finally:
            for bus in self.buses:
                await bus.close()  # the pollers have closed their sessions
            if self.web is not None:
                await self.web.stop()
            for recorder in self.recorders.values():
                try:
                    await recorder.close()  # the minute in progress is true, if incomplete
                except Exception:
                    log.exception("closing the archive of %s failed", recorder.meter_id)
            await server.stop()

    def reload(self, loaded: GatewayConfig) -> ReloadPlan:
        """Take what may change while running from ``loaded`` (a configuration file read
        again), all or nothing (:mod:`gateway.reload`): applied only if nothing in it needs
        a restart. Says what it did or why not."""
        running = replace(self.config, security=self._security_as_loaded, opcua=self._opcua_as_loaded)
        todo = plan(running, loaded)
        if todo.restart:
            log.warning("configuration not reloaded: %s need(s) a restart; nothing applied",
                        ", ".join(todo.restart))  # fmt: skip
            return todo
        if not todo.live:
            log.info("configuration reloaded: nothing changed")
            return todo
        market = loaded.market
        for service in self.desk.services.values() if self.desk else ():
            service.allow_past, service.limit_kw = market.allow_past, market.limit_kw or None
        if self.desk is not None:
            self.desk.config = market
        if loaded.external != self.config.external:
            self.external.configs = {c.name: c for c in loaded.external}
            self.puller.reconfigure()
        self.config = replace(
            self.config, market=market, external=loaded.external, log_level=loaded.log_level
        )
        log.info("configuration reloaded: %s", ", ".join(todo.live))
        return todo

    def hung(self, after_s: float | None = None) -> list[str]:
        """What is not alive: each poller whose loop published no snapshot for ``after_s``
        (default :data:`HUNG_AFTER_S`, or ten of its cycles if longer). A lost meter is not
        hung: its poller still publishes every cycle (its values Bad) and keeps trying. The
        words stay the same while it lasts (the watchdog says a change only)."""
        out = []
        for mid, poller in self.pollers.items():
            limit = max(HUNG_AFTER_S, 10 * poller.config.cycle_s) if after_s is None else after_s
            silent = poller.silent_s()
            if silent is not None and silent > limit:
                out.append(f"poller of meter {mid}: no snapshot for over {limit:.0f} s")
        return out

    async def _add_archive(self, root: Path, meter: MeterConfig, nodes: MeterNodes) -> None:
        """The meter's recorder, and its nodes' history read from the same files."""
        assert self.space is not None
        assert self.history is not None
        assert self.queries is not None
        space = self.space
        archive = AsyncArchive(root, meter.id)
        self.queries.add_meter(meter.id, archive.reader)

        async def status_changed(status: ArchiveStatus) -> None:
            await space.write_archive_status(meter.id, status)

        self.recorders[meter.id] = ArchiveRecorder(
            archive, meter, self.config.archive, self.clock, status_changed
        )
        for node_id, (stream, obis, detail) in nodes.history.items():
            self.history.add_node(node_id, SeriesKey(meter.id, stream, obis, detail))
        source = EventSource(meter.id, space.nid_type(METER_EVENT_TYPE))
        await self.history.add_event_source(space.server, nodes.meter, source)

    def _probes(self, root: Path | None) -> Probes:
        """How the alarm service sees the archive's disk, the own certificate and the uplink."""
        own = Pki(self.config.security.pki).own_certificate
        down_since: list[datetime | None] = [None]

        def disk() -> DiskFacts:
            assert root is not None
            where = root.absolute()
            while not where.exists():  # the archive's folder is made at the first write
                where = where.parent
            st = os.statvfs(where)
            failed = any(r.status.state != "ok" for r in self.recorders.values())
            return DiskFacts(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, failed)

        def certificate() -> datetime | None:
            if not own.exists():
                return None
            return x509.load_der_x509_certificate(own.read_bytes()).not_valid_after_utc

        def uplink() -> UplinkFacts:
            assert self.uplink is not None
            connected = self.uplink.status().state == "connected"
            if connected:
                down_since[0] = None
            elif down_since[0] is None:
                down_since[0] = self.clock.now()
            return UplinkFacts(connected, down_since[0])

        return Probes(
            disk=disk if root is not None else None,
            certificate=certificate,
            uplink=uplink if self.config.upstream.enabled else None,
        )

    def _web_services(self, root: Path | None) -> WebServices:
        """What the web adapter may use of this gateway."""
        assert self.desk is not None

        def archive_status(meter_id: str) -> ArchiveStatus | None:
            recorder = self.recorders.get(meter_id)
            return recorder.status if recorder is not None else None

        return WebServices(
            config=self.config, clock=self.clock, users=self.users, desk=self.desk, external=self.external,
            history=self.queries, archive_root=root, archive_status=archive_status, endpoint=self.endpoint,
            uplink_status=lambda: self.uplink.status() if self.uplink is not None else None,
            alarms=self.alarms, quality=self.quality,
        )  # fmt: skip

    async def _watch_external(self) -> None:
        """Once a second, show external values that turned stale (or were put) in OPC UA, and
        keep the values that changed on disk (a pushed value survives a restart)."""
        assert self.market_nodes is not None
        kept = {v.name: v for v in self.external.values()}
        while True:
            await self.market_nodes.refresh_external()
            latest = {v.name: v for v in self.external.values()}
            if latest != kept:
                try:
                    await asyncio.to_thread(self.external_store.save, list(latest.values()))
                    kept = latest
                except ArchiveError as err:
                    log.error("%s", err)  # tried again at the next change; the values stay in memory
            await self.clock.sleep(1.0)

    async def _keep_running(self, what: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run`` again after a failure: a bug in one meter's path or in the external data
        must not stop the other meters or OPC UA."""
        while True:
            try:
                await run()
                return
            except Exception:
                log.exception("%s failed; restart in %.0f s", what, RESTART_S)
                await self.clock.sleep(RESTART_S)


def _endpoint_of(server: object, path: str) -> str:
    """The URL clients use, with the port the OS chose when the config asked for port 0."""
    bserver = getattr(server, "bserver", None)
    host = getattr(bserver, "hostname", "127.0.0.1")
    port = getattr(bserver, "port", 0)
    return f"opc.tcp://{host}:{port}{path}"
