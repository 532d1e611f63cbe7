"""Composition root: one TaskGroup owns every long-lived task (DESIGN §2).

``Gateway.run()`` starts, in order: the in-process simulated meters of the demo (if any),
the OPC UA server with the SMX model and one MeterType object per meter, and one poller
per meter. The pollers publish into the address space. Cancelling ``run()`` stops all of
it; the OPC UA server is stopped last so clients see Bad values rather than a hang.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from gateway.clock import Clock, SystemClock
from gateway.config import GatewayConfig, MeterConfig
from gateway.errors import GatewayError
from gateway.meter.dlms import DlmsMeter, DlmsSession, DlmsSettings, Referencing
from gateway.meter.iec21 import Iec21Meter, Iec21Session
from gateway.meter.model import EventRecord, ProfileData, Snapshot
from gateway.meter.poller import MeterLink, Poller
from gateway.opcua.address_space import AddressSpace
from gateway.opcua.server import build_server
from gateway.protocols.hdlc import HdlcAddress
from gateway.simulator.server import SimulatedMeter, simulator_from_config
from gateway.transport import Framing, open_serial

log = logging.getLogger(__name__)

MeterLinkFactory = Callable[[], Awaitable[MeterLink]]
#: Pause before a crashed poller is restarted (clock seconds).
RESTART_S = 5.0


class OpcUaPublisher:
    """Poller listener that writes into the address space."""

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
    )


def link_factory(meter: MeterConfig) -> MeterLinkFactory:
    """A function that opens a fresh transport + session for ``meter``."""
    if meter.protocol in ("dlms", "dlms-mode-e"):
        settings = dlms_settings(meter)

        async def connect_dlms() -> MeterLink:
            # The session sets the line itself (8N1 at once, or 300 Bd 7E1 for mode E).
            transport = await open_serial(
                meter.url, baudrate=meter.baudrate, framing=Framing.EIGHT_N_ONE,
                timeout=meter.response_timeout,
            )  # fmt: skip
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
        return Iec21Meter(session)

    return connect


class Gateway:
    """The whole gateway for one configuration."""

    def __init__(self, config: GatewayConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.simulators: dict[str, SimulatedMeter] = {}
        self.pollers: dict[str, Poller] = {}
        self.space: AddressSpace | None = None
        self.endpoint = ""
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
                sim = simulator_from_config(meter.simulator, self.clock)
                await sim.start()
                self.simulators[meter.id] = sim
                meter = replace(meter, url=sim.url)
                log.info("simulated meter %s listening on %s", meter.id, sim.url)
            meters.append(meter)
        server = await build_server(self.config.opcua)
        self.space = AddressSpace(server, self.clock)
        await self.space.load_model()
        for meter in meters:
            await self.space.add_meter(meter)
        publisher = OpcUaPublisher(self.space)
        try:
            await server.start()
        except OSError as err:
            endpoint = self.config.opcua.endpoint
            raise GatewayError(f"cannot serve OPC UA at {endpoint}: {err.strerror or err}") from err
        try:
            self.endpoint = _endpoint_of(server, self.config.opcua.path)
            for meter in meters:
                self.pollers[meter.id] = Poller(meter, link_factory(meter), self.clock, [publisher])
            self.ready.set()
            async with asyncio.TaskGroup() as tasks:
                for poller in self.pollers.values():
                    tasks.create_task(self._supervise(poller), name=f"poller-{poller.config.id}")
        finally:
            await server.stop()

    async def _supervise(self, poller: Poller) -> None:
        """Keep a poller running: a bug in one meter's path must not stop the others or OPC UA."""
        while True:
            try:
                await poller.run()
            except Exception:
                log.exception("poller of meter %s failed; restart in %.0f s", poller.config.id, RESTART_S)
                await self.clock.sleep(RESTART_S)


def _endpoint_of(server: object, path: str) -> str:
    """The URL clients use, with the port the OS chose when the config asked for port 0."""
    bserver = getattr(server, "bserver", None)
    host = getattr(bserver, "hostname", "127.0.0.1")
    port = getattr(bserver, "port", 0)
    return f"opc.tcp://{host}:{port}{path}"
