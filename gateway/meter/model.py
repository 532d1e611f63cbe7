"""Values the poller publishes: readings, snapshots, profile entries, events.

These are the only types the adapters (OPC UA, later archive, market, web) see from the
meter side; they know nothing about the protocol that produced them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from gateway.obis import Obis
from gateway.streams import StreamId


class Quality(enum.Enum):
    """How far a published value can be trusted (mapped to OPC UA StatusCodes)."""

    GOOD = "good"
    #: The last read failed; the value is the last one read (UncertainLastUsableValue).
    UNCERTAIN = "uncertain"
    #: The meter is declared lost (BadCommunicationError).
    BAD = "bad"
    #: Never read yet (BadWaitingForInitialData).
    WAITING = "waiting"
    #: The meter has no such object, or gives it in another unit (BadConfigurationError).
    UNSUPPORTED = "unsupported"


class LinkState(enum.Enum):
    """The poller's view of the meter link."""

    CONNECTING = "connecting"  # no successful read yet
    ONLINE = "online"
    DEGRADED = "degraded"  # reads failing, not yet declared lost
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one OBIS object as last read."""

    obis: Obis
    value: float | None
    unit: str
    #: Time of measurement (gateway UTC clock at the moment the answer arrived).
    source_time: datetime | None
    quality: Quality
    #: Measured time between successful reads of this value, seconds (None: not yet known).
    refresh_s: float | None = None


def fresh_value(reading: Reading | None, at: datetime, within_s: float = 2.0) -> float | None:
    """The value of a reading measured in the cycle of ``at`` (Good, finite, at most
    ``within_s`` old); None for a value carried over from an earlier cycle or not read."""
    if reading is None or reading.quality is not Quality.GOOD or reading.source_time is None:
        return None
    value = reading.value
    if value is None or not math.isfinite(value):
        return None
    return value if (at - reading.source_time).total_seconds() <= within_s else None


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """The poller's diagnostics for one meter, all visible in the address space."""

    link: LinkState = LinkState.CONNECTING
    cycle_duration_s: float = 0.0
    bytes_per_cycle: int = 0
    cycles: int = 0
    late_cycles: int = 0
    #: Cycles whose 1-second values gave way to a long readout (profile piece, clock).
    skipped_cycles: int = 0
    errors: int = 0
    last_error: str = ""
    last_good_read: datetime | None = None
    #: Meter clock minus gateway clock, seconds (positive: the meter is ahead).
    clock_deviation_s: float | None = None
    baudrate: int = 0
    #: Meters polled over this meter's line (1: a line of its own; more: a multi-drop bus).
    line_stations: int = 1
    #: Share of each cycle this meter's poller plans with (1 / line_stations).
    line_share: float = 1.0


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """Identity of the meter (OPC UA properties of the meter object)."""

    manufacturer: str = ""
    model: str = ""
    serial_number: str = ""
    firmware: str = ""
    protocol: str = ""
    baudrate: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything known about one meter after one cycle."""

    meter_id: str
    time: datetime
    readings: Mapping[Obis, Reading]
    diagnostics: Diagnostics
    info: MeterInfo = field(default_factory=MeterInfo)


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    """One row of a load profile: the values of one capture period, stamped at its end (UTC)."""

    end: datetime
    status: int
    values: tuple[float | None, ...]


@dataclass(frozen=True, slots=True)
class ProfileData:
    """Entries of one profile with their channel description."""

    stream: StreamId  # which load profile (streams.PROFILES)
    channels: tuple[tuple[Obis, str], ...]  # (obis, unit)
    #: The meter's capture period, seconds.
    period_s: int
    entries: tuple[ProfileEntry, ...]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of the meter's event log."""

    time: datetime
    code: int
    status: int
