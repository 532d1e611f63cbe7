"""Issue 3 point 5: a DLMS meter that misbehaves is named precisely and recovered from.

The gateway runs the demo (DLMS LN over HDLC at 9600 Bd) against the simulated meter; each
test turns one fault on, waits until the fault shows in the meter's diagnostics (LastError,
values no longer Good), turns it off and waits until every value the meter has is Good
again - the same gateway process and OPC UA session throughout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from asyncua import ua

from gateway.simulator.server import SimulatedMeter
from tests.support.harness import Running, demo, running_gateway, subscribe
from tests.support.simulated_meter import as_modelled

VOLTAGE = "meter1.1-0:32.7.0"


async def _drop(sim: SimulatedMeter) -> None:
    await sim.drop_connections()  # the next association meets the changed meter


def _exception(sim: SimulatedMeter) -> Callable[[], None]:
    sim.faults.exception_answers = 3

    def undo() -> None:
        sim.faults.exception_answers = 0

    return undo


def _password(sim: SimulatedMeter) -> Callable[[], None]:
    sim.password = "87654321"

    def undo() -> None:
        sim.password = "00000000"

    return undo


def _context(sim: SimulatedMeter) -> Callable[[], None]:
    sim.referencing = "sn"  # the gateway asks for Logical Name referencing

    def undo() -> None:
        sim.referencing = "both"

    return undo


def _corrupt(sim: SimulatedMeter) -> Callable[[], None]:
    sim.faults.corrupt_answers = 2

    def undo() -> None:
        sim.faults.corrupt_answers = 0

    return undo


def _silent(sim: SimulatedMeter) -> Callable[[], None]:
    sim.faults.silent = True

    def undo() -> None:
        sim.faults.silent = False

    return undo


FAULTS: dict[str, tuple[Callable[[SimulatedMeter], Callable[[], None]], bool, str]] = {
    # name: (turn on, needs a new association to show, words of LastError)
    "exception": (_exception, False, "exception: service-not-allowed / operation-not-possible"),
    "wrong-password": (_password, True, "authentication-failure (wrong password)"),
    "refused-association": (_context, True, "application-context-name-not-supported"),
    "bad-fcs": (_corrupt, False, "CS"),  # HCS or FCS, whichever byte was hit
    "silence": (_silent, False, "did not answer within"),
}


async def _good(gw: Running, timeout: float) -> None:
    poller = gw.gateway.pollers["meter1"]
    async with asyncio.timeout(timeout):
        while True:
            snapshot = await poller.wait_snapshot()
            if as_modelled(snapshot):
                return


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_is_named_and_recovered_without_restart(fault: str) -> None:
    turn_on, reassociate, words = FAULTS[fault]
    async with running_gateway(demo(loss_timeout_s=30.0)) as gw:
        sim = gw.gateway.simulators["meter1"]
        await _good(gw, timeout=30)
        collector = await subscribe(gw, [VOLTAGE], period_ms=100)
        errors_before = await gw.node("meter1.Diagnostics.CommunicationErrors").read_value()
        undo = turn_on(sim)
        if reassociate:
            await _drop(sim)

        def status() -> int | None:
            values = collector.changes.get(VOLTAGE)
            return values[-1].StatusCode.value if values else None

        await collector.wait_for(lambda: status() == ua.StatusCodes.UncertainLastUsableValue, timeout=15)
        # A changed meter shows when the gateway associates again (after the dropped line).
        poller = gw.gateway.pollers["meter1"]
        async with asyncio.timeout(15):
            while words not in (await poller.wait_snapshot()).diagnostics.last_error:
                pass
        last_error = await gw.node("meter1.Diagnostics.LastError").read_value()
        errors = await gw.node("meter1.Diagnostics.CommunicationErrors").read_value()
        undo()
        await _good(gw, timeout=30)
        assert await gw.node("meter1.Diagnostics.LinkState").read_value() == "online"
    assert words in last_error, last_error
    assert errors > errors_before
