"""What the uplink shows of itself (OPC UA ``Diagnostics/Uplink``, REST, the web page).

Plain values, no MQTT: the adapters import this, never the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class WriterStatus:
    """One writer of one meter, as the diagnostics show it."""

    meter_id: str
    writer: str
    writer_id: int
    #: Archived records not yet with the fleet (by the ack mode); 0 for the live writer.
    backlog: int = 0
    #: Time of the newest record the broker took / the consumer acknowledged.
    last_delivered: datetime | None = None
    last_acknowledged: datetime | None = None
    messages: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class UplinkStatus:
    """The uplink as the diagnostics show it (OPC UA ``Diagnostics/Uplink``, REST, web page)."""

    #: ``off``, ``connecting``, ``connected`` or ``waiting`` (to reconnect).
    state: str = "off"
    broker: str = ""
    publisher_id: str = ""
    ack: str = "broker"
    last_connected: datetime | None = None
    last_error: str = ""
    connects: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    #: Live messages not sent because the link was down (they are not replayed).
    live_dropped: int = 0
    writers: tuple[WriterStatus, ...] = ()
