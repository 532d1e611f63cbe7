"""Fixtures that run the real gateway: simulated meter on a loopback port, real transport,
real protocol code (IEC 62056-21 or DLMS/COSEM), real poller, real asyncua server, and real
asyncua clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from asyncua import Client, ua

from gateway.app import Gateway
from gateway.clock import Clock
from gateway.config import GatewayConfig, MeterConfig, OpcUaConfig, SimulatorConfig, demo_config
from gateway.opcua.address_space import SMX_NAMESPACE


@pytest.fixture(autouse=True)
def _archive_in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own directory, so the archive (``var/archive``) starts empty
    and is removed with the test's temporary directory."""
    monkeypatch.chdir(tmp_path)


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
    return replace(config, meters=(meter,), opcua=replace(config.opcua, port=0))


@contextlib.asynccontextmanager
async def running_gateway(config: GatewayConfig, clock: Clock | None = None) -> AsyncIterator[Running]:
    # Every gateway of the tests serves its web page on a port the OS picks.
    gateway = Gateway(replace(config, web=replace(config.web, port=0)), clock)
    task = asyncio.create_task(gateway.run())
    try:
        async with asyncio.timeout(30):
            ready = asyncio.create_task(gateway.ready.wait())
            done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                task.result()  # raises what stopped the gateway
        client = Client(gateway.endpoint, timeout=10)
        async with client:
            ns = await client.get_namespace_index(SMX_NAMESPACE)
            yield Running(gateway, client, ns)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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


__all__ = [
    "MODES",
    "Collector",
    "OpcUaConfig",
    "Running",
    "SimulatorConfig",
    "demo",
    "pytest",
    "running_gateway",
    "subscribe",
]
