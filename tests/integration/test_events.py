"""Meter events reach OPC UA clients as MeterEventType events of the meter object."""

from __future__ import annotations

import asyncio

from tests.support.harness import demo, meter_events, plant_outage, power_down_event, running_gateway


async def test_power_outage_in_the_meter_log_is_raised_as_events_with_the_meters_time() -> None:
    async with running_gateway(demo(event_period_s=2.0)) as gw:
        received = await meter_events(gw, ["meter1"])
        down = plant_outage(gw.gateway.simulators["meter1"])
        async with asyncio.timeout(20):
            event = await power_down_event(received, down)
            up = await received.get()
        state = await gw.node("meter1.EventLog.LastEventName").read_value()
    assert event.Message.Text == "Power down"
    assert event.Severity == 600
    assert event.MeterId == "meter1"
    assert abs((event.Time - down).total_seconds()) < 1.0, "the meter's time stamp, not the time of reading"
    assert up.EventCode == 2
    assert state == "Power up"
