"""Meter event codes: a declarative table, code -> readable name and OPC UA severity.

Codes 1-5 and 40/41 follow the standard event log numbering common to DLMS meters
(IDIS/DSMR style); 76-84 (voltage quality per phase) are the SMX simulator's own codes.
Manufacturer tables for real meters extend this table, they do not replace it.
Severity is the OPC UA event Severity (OPC 10000-5 BaseEventType: 1 lowest ... 1000
highest): tampering and outages high, routine clock events low.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventInfo:
    name: str
    severity: int


EVENTS: dict[int, EventInfo] = {
    1: EventInfo("Power down", 600),
    2: EventInfo("Power up", 400),
    3: EventInfo("Daylight saving time changed", 100),
    4: EventInfo("Clock adjusted (old time)", 200),
    5: EventInfo("Clock adjusted (new time)", 200),
    40: EventInfo("Terminal cover opened", 800),
    41: EventInfo("Terminal cover closed", 500),
    76: EventInfo("Voltage sag L1", 500),
    77: EventInfo("Voltage sag L2", 500),
    78: EventInfo("Voltage sag L3", 500),
    79: EventInfo("Voltage swell L1", 500),
    80: EventInfo("Voltage swell L2", 500),
    81: EventInfo("Voltage swell L3", 500),
    82: EventInfo("Voltage normal L1", 200),
    83: EventInfo("Voltage normal L2", 200),
    84: EventInfo("Voltage normal L3", 200),
}


def describe(code: int) -> EventInfo:
    """The table entry, or a generic one naming the unknown code."""
    return EVENTS.get(code, EventInfo(f"Meter event {code}", 300))
