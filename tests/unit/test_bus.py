"""The owner of a multi-drop line (gateway/meter/bus.py) over in-memory ports."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import MeterTimeout, TransportError
from gateway.meter.bus import OWN_LINE, SharedLine
from gateway.transport import Framing
from gateway.transport.memory import MemoryTransport


class Ports:
    """Opens a fresh in-memory pair each time the line asks; keeps the far ends."""

    def __init__(self) -> None:
        self.far: list[MemoryTransport] = []
        self.opened = 0

    async def open(self) -> MemoryTransport:
        near, far = MemoryTransport.pair(9600, Framing.EIGHT_N_ONE)
        self.far.append(far)
        self.opened += 1
        return near


async def test_taps_share_one_port_and_a_session_closing_leaves_it_open() -> None:
    ports = Ports()
    line = SharedLine("/dev/ttyUSB0", ports.open, ["a", "b"])
    a, b = await line.tap(), await line.tap()
    await a.write(b"to a", timeout=1)
    await b.write(b"to b", timeout=1)
    assert ports.opened == 1
    assert await ports.far[0].read(timeout=1) == b"to ato b"
    await a.close()
    assert a.closed
    assert not b.closed
    with pytest.raises(TransportError, match="this meter's session on the line is closed"):
        await a.write(b"x", timeout=1)
    await ports.far[0].write(b"answer", timeout=1)
    assert await b.read(timeout=1) == b"answer"
    assert ports.opened == 1


async def test_a_silent_meter_leaves_the_port_but_a_broken_port_is_opened_again() -> None:
    ports = Ports()
    line = SharedLine("/dev/ttyUSB0", ports.open, ["a", "b"])
    a = await line.tap()
    with pytest.raises(MeterTimeout):
        await a.read(timeout=0.01)  # the meter's silence, not the port's fault
    b = await line.tap()
    assert ports.opened == 1
    await ports.far[0].close()  # the adapter is pulled
    with pytest.raises(TransportError):
        await b.read(timeout=1)
    assert a.closed
    assert b.closed
    c = await line.tap()
    assert ports.opened == 2
    assert not c.closed
    await line.close()
    assert c.closed


def test_shares_split_the_cycle_into_slots() -> None:
    line = SharedLine("/dev/ttyUSB0", Ports().open, ["a", "b", "c"])
    shares = line.shares
    assert [s.slot for s in shares.values()] == [0, 1, 2]
    assert all(s.stations == 3 for s in shares.values())
    assert shares["b"].fraction == pytest.approx(1 / 3)
    assert shares["c"].offset_s(1.5) == pytest.approx(1.0)
    assert shares["a"].lock is shares["c"].lock is not None
    assert (OWN_LINE.stations, OWN_LINE.slot, OWN_LINE.lock) == (1, 0, None)
    assert OWN_LINE.fraction == 1.0
    with pytest.raises(ValueError, match="distinct meters"):
        SharedLine("/dev/ttyUSB0", Ports().open, ["a", "a"])


async def test_turns_are_taken_one_at_a_time_in_order() -> None:
    line = SharedLine("/dev/ttyUSB0", Ports().open, ["a", "b"])
    order: list[str] = []
    inside = 0

    async def turn(meter: str, n: int) -> None:
        nonlocal inside
        async with line.shares[meter].turn():
            inside += 1
            assert inside == 1, "two meters on the line at once"
            order.append(f"{meter}{n}")
            await asyncio.sleep(0)  # an exchange: other tasks run, the line stays ours
            inside -= 1

    await asyncio.gather(*(turn(m, n) for n in range(3) for m in ("a", "b")))
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


async def test_a_line_of_its_own_has_no_turns_to_wait_for() -> None:
    async with OWN_LINE.turn(), OWN_LINE.turn():
        pass  # re-entrant: no lock at all
