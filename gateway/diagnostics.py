"""What the gateway says about each meter's poller and archive, declared once.

One row per diagnostic field: its OPC UA name (a variable of ``MeterDiagnosticsType`` in
the NodeSet, ``tools/gen_nodeset.py``), the attribute of
:class:`~gateway.meter.model.Diagnostics` / :class:`~gateway.archive.recorder.ArchiveStatus`
it shows (also its key in the REST API's JSON), its OPC UA built-in data type, and its
description. The NodeSet generator, the address space and the web views all read these
tables, so a field added here appears everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Field:
    #: BrowseName of the OPC UA variable.
    name: str
    #: The attribute shown, also the JSON key.
    attribute: str
    #: OPC UA built-in type (OPC 10000-6 §5.1.2): String, Double, UInt32 or UtcTime.
    data_type: str
    description: str


#: The poller's diagnostics (:class:`gateway.meter.model.Diagnostics`).
METER_FIELDS: tuple[Field, ...] = (
    Field("LinkState", "link", "String", "Meter link: connecting, online, degraded (reads failing), lost."),
    Field("CycleDuration", "cycle_duration_s", "Double", "Duration of the last poll cycle, seconds."),
    Field("BytesPerCycle", "bytes_per_cycle", "UInt32", "Bytes sent and received on the line in the last cycle."),
    Field("Cycles", "cycles", "UInt32", "Poll cycles run since start."),
    Field("LateCycles", "late_cycles", "UInt32", "Cycles that ended after the next one was due."),
    Field("SkippedCycles", "skipped_cycles", "UInt32",
          "Cycles whose 1-second values gave way to a long readout (profile, clock)."),
    Field("CommunicationErrors", "errors", "UInt32", "Failed exchanges with the meter since start."),
    Field("LastError", "last_error", "String", "The last communication error, in words."),
    Field("LastGoodRead", "last_good_read", "UtcTime", "Time of the last successful read."),
    Field("ClockDeviation", "clock_deviation_s", "Double",
          "Meter clock minus gateway clock, seconds (positive: meter ahead)."),
    Field("BaudRate", "baudrate", "UInt32", "Negotiated line speed, Bd."),
    Field("LineStations", "line_stations", "UInt32",
          "Meters polled over this meter's line (1: a line of its own; more: an RS485 multi-drop bus)."),
    Field("LineShare", "line_share", "Double",
          "Share of each poll cycle this meter gets on its line (the line's budget split)."),
)  # fmt: skip

#: The archive's state for one meter (:class:`gateway.archive.recorder.ArchiveStatus`).
ARCHIVE_FIELDS: tuple[Field, ...] = (
    Field("ArchiveState", "state", "String",
          "Archive of this meter: ok, disk-full (records wait in memory and are written when space returns) "
          "or error."),
    Field("ArchiveLastError", "last_error", "String",
          "The last archive write error, in words; empty if none since start."),
    Field("ArchiveRecordsWritten", "records_written", "UInt32", "Records written to the archive since start."),
    Field("ArchiveBacklog", "backlog", "UInt32",
          "Records waiting to be written to the archive (non-zero while writing fails)."),
    Field("ArchiveDropped", "dropped", "UInt32",
          "Records given up since start because too many waited for the disk (the oldest first)."),
)  # fmt: skip

#: The uplink to the fleet (:class:`gateway.uplink.status.UplinkStatus`), shown once per
#: gateway under ``SMX/Diagnostics/Uplink``.
UPLINK_FIELDS: tuple[Field, ...] = (
    Field("State", "state", "String", "Uplink: off, connecting, connected, or waiting to reconnect."),
    Field("Broker", "broker", "String", "The MQTT broker's URL."),
    Field("PublisherId", "publisher_id", "String", "The PublisherId of this gateway in the fleet's topics."),
    Field("AckMode", "ack", "String", "When a record counts as delivered: broker (PUBACK) or consumer (acknowledged)."),
    Field("LastConnected", "last_connected", "UtcTime", "When the last connection to the broker was made."),
    Field("LastError", "last_error", "String", "Why the last connection failed or ended, in words."),
    Field("Connects", "connects", "UInt32", "Connections made since start."),
    Field("MessagesSent", "messages_sent", "UInt32", "MQTT messages published since start."),
    Field("BytesSent", "bytes_sent", "Double", "Bytes of message payload published since start."),
    Field("LiveDropped", "live_dropped", "UInt32", "Live messages not sent while the link was down (not replayed)."),
)  # fmt: skip

#: One writer of one meter (:class:`gateway.uplink.status.WriterStatus`), an object per
#: writer below ``Uplink`` named ``<meter>.<writer>``.
UPLINK_WRITER_FIELDS: tuple[Field, ...] = (
    Field("DataSetWriterId", "writer_id", "UInt32", "The writer's DataSetWriterId in the PubSub messages."),
    Field("Backlog", "backlog", "UInt32", "Archived records not yet delivered (by the ack mode)."),
    Field("LastDelivered", "last_delivered", "UtcTime", "Time of the newest record the broker has taken."),
    Field("LastAcknowledged", "last_acknowledged", "UtcTime",
          "Time through which the consumer acknowledged storing everything (ack = consumer)."),
    Field("Messages", "messages", "UInt32", "Messages this writer published since start."),
    Field("Bytes", "bytes", "Double", "Bytes this writer published since start."),
)  # fmt: skip
