"""Meter events reach OPC UA clients as MeterEventType events of the meter object."""

from __future__ import annotations

import asyncio
from typing import Any

from asyncua import ua

from tests.support.harness import demo, running_gateway


async def test_power_outage_in_the_meter_log_is_raised_as_events_with_the_meters_time() -> None:
    async with running_gateway(demo(event_period_s=2.0)) as gw:
        received: asyncio.Queue[Any] = asyncio.Queue()

        class Handler:
            def event_notification(self, event: Any) -> None:
                received.put_nowait(event)

        meter = gw.node("meter1")
        sub = await gw.client.create_subscription(100, Handler())
        await sub.subscribe_events(meter, ua.NodeId(1100, gw.ns))
        sim = gw.gateway.simulators["meter1"]
        sim.advance()
        down = sim.now()
        sim.physics.power_down(down)
        sim.physics.power_up(down)
        async with asyncio.timeout(20):
            while True:
                event = await received.get()
                if event.EventCode == 1 and event.Time >= down.replace(microsecond=0):
                    break
            up = await received.get()
        state = await gw.node("meter1.EventLog.LastEventName").read_value()
    assert event.Message.Text == "Power down"
    assert event.Severity == 600
    assert event.MeterId == "meter1"
    assert abs((event.Time - down).total_seconds()) < 1.0, "the meter's time stamp, not the time of reading"
    assert up.EventCode == 2
    assert state == "Power up"
