"""Load (issue 7): 50 OPC UA sessions with 30 monitored items each, plus clients
connecting and disconnecting in a loop, against the whole gateway.

Three processes as on a box (``tests/support/processes.py``): the simulated meter, ``smx-gateway
run`` and the clients (``tests/support/load_clients.py``). The load runs for a minute after the
sessions are subscribed (``python -m bench load`` runs ten); the gateway's memory is read
from ``/proc`` at every 10-second tick of the clients, its cycle counters over OPC UA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Client, ua

from bench.load import CHURN, ITEMS, SESSIONS, run_load
from gateway.opcua.ids import SMX_NAMESPACE
from tests.support.harness import shared_pki

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("load")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def load(work: Path) -> dict[str, Any]:
    return await run_load(
        work, minutes=1.5, node_cache=str(shared_pki() / "node-cache"), after=_still_serving
    )


async def _still_serving(endpoint: str) -> dict[str, Any]:
    """A newcomer after the load: connects and reads a Good voltage."""
    async with Client(endpoint, timeout=10) as client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        value = await client.get_node(ua.NodeId("meter1.1-0:32.7.0", ns)).read_data_value()
    return {"newcomer status": value.StatusCode.name, "newcomer value": value.Value.Value}


async def test_every_session_gets_every_item_each_second_without_error(load: dict[str, Any]) -> None:
    assert load["sessions"] == SESSIONS
    assert load["items"] == SESSIONS * ITEMS
    assert load["errors"] == 0, load["first errors"]
    # Every session hears from the gateway each second (publishing interval 1000 ms).
    assert load["longest silence s"] <= 2.5
    assert load["connects in loop"] >= CHURN * 20


async def test_no_late_or_skipped_cycle_under_load(load: dict[str, Any]) -> None:
    assert load["cycles"] >= 0.95 * load["minutes"] * 60
    assert load["late cycles"] == 0
    assert load["skipped cycles"] == 0


async def test_memory_does_not_grow_after_warm_up(load: dict[str, Any]) -> None:
    assert load["RSS growth %"] <= 5.0, load["rss_samples"]


async def test_the_gateway_serves_a_newcomer_after_the_load(load: dict[str, Any]) -> None:
    assert load["newcomer status"] == "Good"
    assert 200 < load["newcomer value"] < 260
