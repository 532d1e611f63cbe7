"""Several meters on one box: two DLMS meters on one RS485 line, told apart by HDLC
address, and a third on a line of its own (issue 19 point 6).

The real gateway polls three simulated meters over real ``socket://`` transports: the
simulator answers as two stations on one port (its own physics, serial number, link and
association each), the gateway's one owner of that line shares its cycles between them.
Everything is checked through OPC UA and the archive.
"""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, GatewayConfig, parse_config
from gateway.meter.model import LinkState
from tests.support.harness import Running, demo, meter_events, plant_outage, power_down_event, running_gateway
from tests.support.simulated_meter import as_modelled

#: Meter id -> (HDLC physical address, serial number, the meter whose line it is on).
METERS = {"m1": (17, "54800101", ""), "m2": (18, "54800102", "m1"), "m3": (17, "54800103", "")}


def three_meters(tmp_path: Path) -> GatewayConfig:
    config = demo("ln")
    base = config.meters[0]
    assert base.simulator is not None
    meters = []
    for n, (mid, (address, serial, line)) in enumerate(METERS.items()):
        simulator = replace(
            base.simulator, seed=n + 1, serial_number=serial, physical_address=address, on_line_of=line,
            history_days=0.5,
        )  # fmt: skip
        meter = replace(base, id=mid, name=f"Meter {mid}", physical_address=address, simulator=simulator)
        meters.append(replace(meter, event_period_s=10.0))
    # An hour of backfill: at 9600 Bd two meters' 1-second sets fill most of the line.
    archive = replace(config.archive, path=str(tmp_path / "archive"), initial_backfill_days=1 / 24)
    return replace(config, meters=tuple(meters), archive=archive)


async def all_good(gw: Running, meter: str) -> bool:
    snapshot = gw.gateway.pollers[meter].snapshot
    if snapshot is None or snapshot.diagnostics.link is not LinkState.ONLINE:
        return False
    return as_modelled(snapshot)


async def until(gw: Running, predicate: Any, timeout: float) -> None:
    """Wait, snapshot by snapshot (of the meter on its own line), until ``predicate()`` holds."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await gw.gateway.pollers["m3"].wait_snapshot()


async def test_two_meters_on_one_line_and_a_third_on_its_own(tmp_path: Path) -> None:
    async with running_gateway(three_meters(tmp_path)) as gw:
        gateway = gw.gateway
        # One line for m1 and m2, its own for m3: two ports opened, two TCP connections.
        assert gateway.lines["m1"] is gateway.lines["m2"]
        assert "m3" not in gateway.lines
        sims = gateway.simulators
        assert sims["m2"].url == sims["m1"].url != sims["m3"].url

        async def every_meter_serves() -> bool:
            if not all([await all_good(gw, m) for m in METERS]):
                return False
            entries = [await gw.node(f"{m}.LoadProfile1.EntriesRead").read_value() for m in METERS]
            return all(n is not None and n > 0 for n in entries)

        await until(gw, every_meter_serves, 90)
        assert len(sims["m1"]._writers) == 1, "the two meters of the bus share one connection"

        # Each folder shows its own meter: the station at that HDLC address answered.
        for mid, (_address, serial, _line) in METERS.items():
            assert await gw.node(f"{mid}.SerialNumber").read_value() == serial
            voltage = await gw.node(f"{mid}.1-0:32.7.0").read_data_value()
            assert voltage.StatusCode.is_good()
            assert 200 < voltage.Value.Value < 260
        # The line's budget split is in the diagnostics.
        for mid, stations, share in (("m1", 2, 0.5), ("m2", 2, 0.5), ("m3", 1, 1.0)):
            assert await gw.node(f"{mid}.Diagnostics.LineStations").read_value() == stations
            assert await gw.node(f"{mid}.Diagnostics.LineShare").read_value() == share
            assert await gw.node(f"{mid}.Diagnostics.CommunicationErrors").read_value() == 0
        # Different households: the energy registers differ, each the one of its meter.
        energy = {m: (await gw.node(f"{m}.1-0:1.8.0").read_value()) for m in METERS}
        assert len(set(energy.values())) == 3
        for mid, value in energy.items():
            sim = sims[mid]
            sim.advance()
            assert value == pytest.approx(sim.physics.registers.a_plus, abs=0.1)

        # An event of the bus's second meter arrives as that meter's, and only its.
        received = await meter_events(gw, list(METERS))
        station = sims["m2"]
        down = plant_outage(station)
        async with asyncio.timeout(30):
            event = await power_down_event(received, down)
        assert event.MeterId == "m2"

        # A silent meter on the bus is lost; its neighbour keeps being read.
        station.faults.silent = True
        m1_errors = gateway.pollers["m1"].diagnostics.errors

        async def m2_lost() -> bool:
            snapshot = gateway.pollers["m2"].snapshot
            return snapshot is not None and snapshot.diagnostics.link is LinkState.LOST

        await until(gw, m2_lost, 60)
        assert await all_good(gw, "m1")
        assert gateway.pollers["m1"].diagnostics.errors == m1_errors
        station.faults.silent = False

        async def m2_back() -> bool:
            return await all_good(gw, "m2")

        await until(gw, m2_back, 60)

        # Each meter has its own archive.
        for mid in METERS:
            status = gateway.recorders[mid].status
            assert status.records_written > 0, mid
            assert (tmp_path / "archive" / mid).is_dir()


def load(text: str) -> GatewayConfig:
    return parse_config(tomllib.loads(text), "bus.toml")


BUS = """
[[meters]]
id = "a"
url = "/dev/ttyUSB0"
protocol = "dlms"
physical_address = 17

[[meters]]
id = "b"
url = "/dev/ttyUSB0"
protocol = "{protocol}"
physical_address = {address}
baudrate = {baudrate}
"""


@pytest.mark.parametrize(
    ("protocol", "address", "baudrate", "words"),
    [
        ("iec62056-21", 18, 9600, "meters[1].protocol: meters sharing a line must speak DLMS"),
        ("dlms-mode-e", 18, 9600, "a sign-on at 300 Bd would break the other meters' links"),
        ("dlms", 17, 9600, "meters[1].physical_address: expected an HDLC address of its own"),
        ("dlms", 18, 19200, "need one baudrate and cycle_s, got 19200 Bd"),
    ],
)
def test_meters_that_cannot_share_a_line_are_refused(
    protocol: str, address: int, baudrate: int, words: str
) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load(BUS.format(protocol=protocol, address=address, baudrate=baudrate))


def test_two_dlms_meters_on_one_port_share_its_line() -> None:
    a, b = load(BUS.format(protocol="dlms", address=18, baudrate=9600)).meters
    assert a.line == b.line == "/dev/ttyUSB0"


def test_a_simulated_station_must_join_a_simulated_line() -> None:
    text = """
[[meters]]
id = "a"
url = "/dev/ttyUSB0"
protocol = "dlms"

[[meters]]
id = "b"
protocol = "dlms"
physical_address = 18
[meters.simulator]
on_line_of = "a"
"""
    refused = r"meters\[1\].simulator.on_line_of: expected the id of a simulated meter"
    with pytest.raises(ConfigError, match=refused):
        load(text)
