"""The SMX address space: instances of the NodeSet types, built from the OBIS catalogue.

Layout (browse path -> string NodeId in the SMX namespace)::

    Objects/SMX                          SMX                       SmxGatewayType
      Meters                             SMX.Meters                FolderType
        <meter>                          <meter>                   MeterType
          Manufacturer, Model, ...       <meter>.Manufacturer      properties
          Diagnostics                    <meter>.Diagnostics       MeterDiagnosticsType
          Instantaneous/Voltage L1       <meter>.1-0:32.7.0        ObisValueType (AnalogItemType)
          Energy/Active energy import    <meter>.1-0:1.8.0         ObisValueType
          LoadProfile1/<channel>         <meter>.P.01.1-0:1.29.0   ObisValueType (streams table)
          EventLog                       <meter>.EventLog          EventLogType

NodeIds depend only on the meter id and the OBIS code, never on folder layout, so a
SCADA configuration survives model changes. Nodes are added in bulk (one AddNodes call
per meter) because start-up time matters on a single slow core.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from asyncua import Server, ua

from gateway import __version__
from gateway.archive.recorder import ArchiveStatus
from gateway.clock import Clock, SystemClock
from gateway.config import MeterConfig, values_read
from gateway.diagnostics import ARCHIVE_FIELDS, METER_FIELDS, UPLINK_FIELDS, UPLINK_WRITER_FIELDS, Field
from gateway.events import describe
from gateway.meter.model import Diagnostics, EventRecord, MeterInfo, ProfileData, Quality, Reading, Snapshot
from gateway.obis import Kind, Obis, ObisInfo
from gateway.opcua.ids import (
    EVENT_LOG_TYPE,
    LOAD_PROFILE_TYPE,
    METER_EVENT_TYPE,
    METER_TYPE,
    OBIS_VALUE_TYPE,
    SMX_GATEWAY_TYPE,
    SMX_NAMESPACE,
)
from gateway.opcua.nodes import object_item, variable_item
from gateway.opcua.units import eu_information
from gateway.streams import EVENT_LOG, PROFILES, StreamId, value_stream
from gateway.streams import stream as stream_of
from gateway.uplink.status import UplinkStatus

NODESET = Path(__file__).resolve().parents[1] / "nodesets" / "smx.xml"

QUALITY_STATUS = {
    Quality.GOOD: ua.StatusCodes.Good,
    Quality.UNCERTAIN: ua.StatusCodes.UncertainLastUsableValue,
    Quality.BAD: ua.StatusCodes.BadCommunicationError,
    Quality.WAITING: ua.StatusCodes.BadWaitingForInitialData,
    Quality.UNSUPPORTED: ua.StatusCodes.BadConfigurationError,
}

#: The OPC UA type of each built-in type name of the diagnostic fields.
_VARIANT = {
    "String": ua.VariantType.String,
    "Double": ua.VariantType.Double,
    "UInt32": ua.VariantType.UInt32,
    "UtcTime": ua.VariantType.DateTime,
}
#: Diagnostics variables (gateway/diagnostics.py): browse name -> (attribute, variant type).
DIAGNOSTICS: dict[str, tuple[str, ua.VariantType]] = {
    f.name: (f.attribute, _VARIANT[f.data_type]) for f in METER_FIELDS
}
ARCHIVE_DIAGNOSTICS: dict[str, tuple[str, ua.VariantType]] = {
    f.name: (f.attribute, _VARIANT[f.data_type]) for f in ARCHIVE_FIELDS
}

#: The shared HistoricalConfiguration objects (OPC 10000-11 §5.2.2): how a node's history
#: is read between stored values. Energy registers and 1-second values are interpolated
#: (they change continuously); a load-profile value holds for its whole period (stepped).
HISTORY_CONFIGURATIONS = {"Interpolated": False, "Stepped": True}
#: The history-only components of a 1-second value: its minute records' columns besides the
#: mean (the value's own history), by archive detail -> (BrowseName, description, unit;
#: None: the value's unit; "": a number, UNECE "one"). Aggregates over the value use its
#: minute means; these hold what the 1-second samples were (gateway/archive/aggregates.py).
MINUTE_DETAIL_NODES = {
    "min": ("MinuteMinimum", "Lowest 1-second sample of each minute, stamped at the minute's start", None),
    "max": ("MinuteMaximum", "Highest 1-second sample of each minute, stamped at the minute's start", None),
    "count": ("MinuteSamples", "Number of 1-second samples behind each minute's record", ""),
}

IDENTITY = {
    "Manufacturer": "manufacturer",
    "Model": "model",
    "SerialNumber": "serial_number",
    "FirmwareVersion": "firmware",
    "Protocol": "protocol",
}


@dataclass(slots=True)
class MeterNodes:
    """NodeIds of one meter's instance, and what was last written (to skip unchanged values)."""

    meter: ua.NodeId
    values: dict[Obis, ua.NodeId] = field(default_factory=dict)
    refresh: dict[Obis, ua.NodeId] = field(default_factory=dict)
    diagnostics: dict[str, ua.NodeId] = field(default_factory=dict)
    identity: dict[str, ua.NodeId] = field(default_factory=dict)
    profiles: dict[StreamId, dict[Obis, ua.NodeId]] = field(default_factory=dict)
    profile_state: dict[StreamId, dict[str, ua.NodeId]] = field(default_factory=dict)
    event_log: dict[str, ua.NodeId] = field(default_factory=dict)
    written: dict[Obis, tuple[datetime | None, Quality]] = field(default_factory=dict)
    last_info: MeterInfo | None = None
    last_diag: Diagnostics | None = None
    profile_counts: dict[StreamId, int] = field(default_factory=dict)
    events_read: int = 0
    event_generator: Any = None
    #: Nodes with history: node -> (stream, OBIS code of the column, minute-record detail
    #: or ""); filled when historized.
    history: dict[ua.NodeId, tuple[StreamId, Obis, str]] = field(default_factory=dict)


class AddressSpace:
    """Creates the SMX nodes and writes meter data into them through the fast path."""

    def __init__(self, server: Server, clock: Clock | None = None) -> None:
        self.server = server
        self.clock = clock or SystemClock()
        self.ns = 0
        self.meters: dict[str, MeterNodes] = {}
        self.meters_folder = ua.NodeId()
        self.history_configuration: dict[bool, ua.NodeId] = {}
        self._uplink_written: dict[str, Any] = {}

    def nid(self, text: str) -> ua.NodeId:
        return ua.NodeId(text, self.ns)

    def nid_type(self, number: int) -> ua.NodeId:
        """A type of the SMX NodeSet (numeric NodeId in the SMX namespace)."""
        return ua.NodeId(number, self.ns)

    async def load_model(self) -> None:
        """Import the NodeSet and create the gateway object ``Objects/SMX``."""
        await self.server.import_xml(str(NODESET))
        self.ns = await self.server.get_namespace_index(SMX_NAMESPACE)
        objects = self.server.nodes.objects
        gateway = await objects.add_object(
            self.nid("SMX"), ua.QualifiedName("SMX", self.ns), objecttype=ua.NodeId(SMX_GATEWAY_TYPE, self.ns)
        )
        await gateway.write_attribute(
            ua.AttributeIds.Description,
            ua.DataValue(ua.Variant(ua.LocalizedText("SMX Smart Meter eXtension gateway"))),
        )
        self.meters_folder = self.nid("SMX.Meters")
        await self.server.get_node(self.nid("SMX.SoftwareVersion")).write_value(__version__)

    async def add_history_configurations(self) -> None:
        """``SMX/HistoryConfiguration/{Interpolated,Stepped}``: referenced by historized nodes.

        One shared HistoricalDataConfigurationType object per kind instead of one per node
        keeps the address space small on a slow core; OPC UA clients follow the
        HasHistoricalConfiguration reference either way.
        """
        folder = await self.server.get_node(self.nid("SMX")).add_folder(
            self.nid("SMX.HistoryConfiguration"), ua.QualifiedName("HistoryConfiguration", self.ns)
        )
        for name, stepped in HISTORY_CONFIGURATIONS.items():
            config = await folder.add_object(
                self.nid(f"SMX.HistoryConfiguration.{name}"),
                ua.QualifiedName(name, self.ns),
                objecttype=ua.NodeId(ua.ObjectIds.HistoricalDataConfigurationType),
            )
            stepped_node = await config.get_child("0:Stepped")
            await stepped_node.write_value(stepped)
            aggregate = await config.get_child("0:AggregateConfiguration")
            for child, value, vtype in (
                ("0:TreatUncertainAsBad", True, ua.VariantType.Boolean),
                ("0:PercentDataBad", 100, ua.VariantType.Byte),
                ("0:PercentDataGood", 100, ua.VariantType.Byte),
                ("0:UseSlopedExtrapolation", False, ua.VariantType.Boolean),
            ):
                await (await aggregate.get_child(child)).write_value(ua.Variant(value, vtype))
            self.history_configuration[stepped] = config.nodeid

    # -- building ----------------------------------------------------------------------------

    async def add_meter(self, config: MeterConfig, *, history: bool = False) -> MeterNodes:
        """Instantiate a MeterType object for ``config`` with one node per catalogue object.

        With ``history`` (an archive is configured), the values, the load-profile channels
        and the meter's events are readable with HistoryRead (DESIGN §4).
        """
        if history and not self.history_configuration:
            await self.add_history_configurations()
        mid = config.id
        meter = await self.server.get_node(self.meters_folder).add_object(
            self.nid(mid),
            ua.QualifiedName(mid, self.ns),
            objecttype=ua.NodeId(METER_TYPE, self.ns),
            instantiate_optional=False,  # profiles and event log are added below, per meter
        )
        await meter.write_attribute(
            ua.AttributeIds.DisplayName, ua.DataValue(ua.Variant(ua.LocalizedText(config.display_name)))
        )
        nodes = MeterNodes(meter.nodeid)
        nodes.diagnostics = {
            name: self.nid(f"{mid}.Diagnostics.{name}") for name in (*DIAGNOSTICS, *ARCHIVE_DIAGNOSTICS)
        }
        nodes.identity = {name: self.nid(f"{mid}.{name}") for name in IDENTITY}
        items: list[ua.AddNodesItem] = []
        for info in values_read(config):
            folder = self.nid(f"{mid}.{'Energy' if info.kind is Kind.ENERGY else 'Instantaneous'}")
            node_id = self.nid(f"{mid}.{info.obis}")
            nodes.values[info.obis] = node_id
            nodes.refresh[info.obis] = self.nid(f"{mid}.{info.obis}.RefreshPeriod")
            items += self._obis_variable(folder, node_id, info, historizing=history, refresh=True)
            if history:
                nodes.history[node_id] = (value_stream(info), info.obis, "")
                if value_stream(info) is StreamId.MINUTE:
                    for detail, (name, text, unit) in MINUTE_DETAIL_NODES.items():
                        detail_id = self.nid(f"{node_id.Identifier}.{name}")
                        unit_text = info.unit if unit is None else unit
                        items += self._detail_variable(node_id, detail_id, name, text, unit_text)
                        nodes.history[detail_id] = (StreamId.MINUTE, info.obis, detail)
        for profile in PROFILES:
            name = profile.folder
            profile_id = self.nid(f"{mid}.{name}")
            items.append(self._object(meter.nodeid, profile_id, name, LOAD_PROFILE_TYPE))
            items += self._state_variables(profile_id, f"{mid}.{name}", LOAD_PROFILE_STATE)
            state = {n: self.nid(f"{mid}.{name}.{n}") for n, _ in LOAD_PROFILE_STATE}
            nodes.profile_state[profile.id] = state
            nodes.profiles[profile.id] = {}
            for info in profile.channels:
                # The IEC 62056-21 name of the profile keeps the NodeIds of earlier versions.
                node_id = self.nid(f"{mid}.{profile.iec}.{info.obis}")
                nodes.profiles[profile.id][info.obis] = node_id
                items += self._obis_variable(profile_id, node_id, info, historizing=history, refresh=False)
                if history:
                    nodes.history[node_id] = (profile.id, info.obis, "")
        log_id = self.nid(f"{mid}.{EVENT_LOG.folder}")
        items.append(self._object(meter.nodeid, log_id, EVENT_LOG.folder, EVENT_LOG_TYPE))
        items += self._state_variables(log_id, f"{mid}.{EVENT_LOG.folder}", EVENT_LOG_STATE)
        nodes.event_log = {n: self.nid(f"{mid}.{EVENT_LOG.folder}.{n}") for n, _ in EVENT_LOG_STATE}
        # Meter events are raised by the meter object (EventNotifier set by the generator).
        nodes.event_generator = await self.server.get_event_generator(
            ua.NodeId(METER_EVENT_TYPE, self.ns), meter
        )
        results = await self.server.iserver.isession.add_nodes(items)
        for item, result in zip(items, results, strict=True):
            if not result.StatusCode.is_good():
                raise RuntimeError(f"adding {item.BrowseName} failed: {result.StatusCode}")
        if history:
            await self._link_history(nodes)
        # Nothing has been read yet: say so instead of a Good null (OPC 10000-4 §7.34.2).
        waiting = ua.DataValue(
            ua.Variant(), StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData)
        )
        for node_id in (*nodes.values.values(), *(n for p in nodes.profiles.values() for n in p.values())):
            await self._write(node_id, waiting)
        self.meters[mid] = nodes
        return nodes

    async def _link_history(self, nodes: MeterNodes) -> None:
        """HasHistoricalConfiguration from each historized node; HistoryRead on the meter's events."""
        refs = []
        for node_id, (stream, _obis, _detail) in nodes.history.items():
            ref = ua.AddReferencesItem()
            ref.SourceNodeId = node_id
            ref.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasHistoricalConfiguration)
            ref.IsForward = True
            shape = stream_of(stream).shape
            ref.TargetNodeId = self.history_configuration[shape is not None and shape.stepped]
            ref.TargetNodeClass = ua.NodeClass.Object
            refs.append(ref)
        for result in await self.server.iserver.isession.add_references(refs):
            if not result.is_good():
                raise RuntimeError(f"adding a HasHistoricalConfiguration reference failed: {result}")
        meter = self.server.get_node(nodes.meter)
        notifier = ua.EventNotifier.SubscribeToEvents.mask | ua.EventNotifier.HistoryRead.mask
        await meter.write_attribute(
            ua.AttributeIds.EventNotifier, ua.DataValue(ua.Variant(notifier, ua.VariantType.Byte))
        )

    def _object(self, parent: ua.NodeId, node_id: ua.NodeId, name: str, type_id: int) -> ua.AddNodesItem:
        return object_item(parent, node_id, name, self.ns, ua.NodeId(type_id, self.ns))

    def _obis_variable(
        self, parent: ua.NodeId, node_id: ua.NodeId, info: ObisInfo, *, historizing: bool, refresh: bool
    ) -> list[ua.AddNodesItem]:
        value = variable_item(
            parent,
            node_id,
            info.browse_name,
            self.ns,
            ua.Variant(),
            data_type=ua.ObjectIds.Double,
            type_def=ua.NodeId(OBIS_VALUE_TYPE, self.ns),
            display=info.name,
            description=f"{info.description} (OBIS {info.obis})",
            historizing=historizing,
        )
        # Its properties (OPC 10000-8 §5.3.2 AnalogItemType; ObisValueType): name, value, type.
        properties = [
            ("EngineeringUnits", ua.Variant(eu_information(info.unit)), ua.ObjectIds.EUInformation, ""),
            ("EURange", ua.Variant(ua.Range(Low=info.eu_low, High=info.eu_high)), ua.ObjectIds.Range, ""),
            ("ObisCode", ua.Variant(str(info.obis), ua.VariantType.String), ua.ObjectIds.String, ""),
        ]
        if refresh:
            text = "Measured time between two reads of this value, seconds"
            properties.append(("RefreshPeriod", ua.Variant(), ua.ObjectIds.Double, text))
        prop_type = ua.NodeId(ua.ObjectIds.PropertyType)
        return [value] + [
            variable_item(
                node_id,
                self.nid(f"{node_id.Identifier}.{name}"),
                name,
                self.ns,
                variant,
                data_type=data_type,
                type_def=prop_type,
                prop=True,
                description=description,
            )
            for name, variant, data_type, description in properties
        ]

    def _detail_variable(
        self, parent: ua.NodeId, node_id: ua.NodeId, name: str, text: str, unit: str
    ) -> list[ua.AddNodesItem]:
        """A history-only component of a 1-second value: one column of its minute records."""
        value = variable_item(
            parent,
            node_id,
            name,
            self.ns,
            ua.Variant(),
            data_type=ua.ObjectIds.Double,
            type_def=ua.NodeId(ua.ObjectIds.BaseDataVariableType),
            description=text,
            historizing=True,
            current=False,
        )
        units = variable_item(
            node_id,
            self.nid(f"{node_id.Identifier}.EngineeringUnits"),
            "EngineeringUnits",
            self.ns,
            ua.Variant(eu_information(unit)),
            data_type=ua.ObjectIds.EUInformation,
            type_def=ua.NodeId(ua.ObjectIds.PropertyType),
            prop=True,
        )
        return [value, units]

    def _state_variables(
        self, parent: ua.NodeId, prefix: str, spec: Sequence[tuple[str, ua.VariantType]]
    ) -> list[ua.AddNodesItem]:
        return [
            variable_item(
                parent,
                self.nid(f"{prefix}.{name}"),
                name,
                self.ns,
                ua.Variant(),
                data_type=_DATA_TYPE[vtype],
                type_def=ua.NodeId(ua.ObjectIds.BaseDataVariableType),
            )
            for name, vtype in spec
        ]

    async def add_uplink(self, writers: Sequence[tuple[str, str]]) -> None:
        """``SMX/Diagnostics/Uplink``: the uplink's state (gateway/diagnostics.py UPLINK_FIELDS)
        and an object per writer, ``<meter>.<writer>`` (UPLINK_WRITER_FIELDS)."""
        smx = self.nid("SMX")
        folder = self.nid("SMX.Diagnostics")
        uplink = self.nid("SMX.Diagnostics.Uplink")
        items = [
            self._folder(smx, folder, "Diagnostics"),
            self._folder(folder, uplink, "Uplink", type_id=ua.ObjectIds.BaseObjectType),
            *self._field_variables(uplink, "SMX.Diagnostics.Uplink", UPLINK_FIELDS),
        ]
        for meter_id, writer in writers:
            name = f"{meter_id}.{writer}"
            node = self.nid(f"SMX.Diagnostics.Uplink.{name}")
            items.append(self._folder(uplink, node, name, type_id=ua.ObjectIds.BaseObjectType))
            items += self._field_variables(node, f"SMX.Diagnostics.Uplink.{name}", UPLINK_WRITER_FIELDS)
        results = await self.server.iserver.isession.add_nodes(items)
        for item, result in zip(items, results, strict=True):
            if not result.StatusCode.is_good():
                raise RuntimeError(f"adding {item.BrowseName} failed: {result.StatusCode}")

    def _folder(
        self, parent: ua.NodeId, node_id: ua.NodeId, name: str, type_id: int = ua.ObjectIds.FolderType
    ) -> ua.AddNodesItem:
        item = self._object(parent, node_id, name, 0)
        item.TypeDefinition = ua.NodeId(type_id)
        if type_id == ua.ObjectIds.FolderType:
            item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.Organizes)
        return item

    def _field_variables(
        self, parent: ua.NodeId, prefix: str, fields: Sequence[Field]
    ) -> list[ua.AddNodesItem]:
        return [
            variable_item(
                parent,
                self.nid(f"{prefix}.{f.name}"),
                f.name,
                self.ns,
                ua.Variant(),
                data_type=_DATA_TYPE[_VARIANT[f.data_type]],
                type_def=ua.NodeId(ua.ObjectIds.BaseDataVariableType),
                description=f.description,
            )
            for f in fields
        ]

    async def write_uplink_status(self, status: UplinkStatus) -> None:
        """Show the uplink's state; only what changed is written."""
        now = self.clock.now()
        rows: list[tuple[str, Field, Any]] = [
            (f"SMX.Diagnostics.Uplink.{f.name}", f, getattr(status, f.attribute)) for f in UPLINK_FIELDS
        ]
        for w in status.writers:
            prefix = f"SMX.Diagnostics.Uplink.{w.meter_id}.{w.writer}"
            rows += [(f"{prefix}.{f.name}", f, getattr(w, f.attribute)) for f in UPLINK_WRITER_FIELDS]
        for node, f, value in rows:
            if self._uplink_written.get(node, ...) == value:
                continue
            self._uplink_written[node] = value
            if value is None:
                dv = ua.DataValue(
                    ua.Variant(), StatusCode=ua.StatusCode(ua.StatusCodes.BadNoData), ServerTimestamp=now
                )
            else:
                vtype = _VARIANT[f.data_type]
                dv = _dv(ua.Variant(float(value) if vtype is ua.VariantType.Double else value, vtype), now)
            await self._write(self.nid(node), dv)

    # -- updating ----------------------------------------------------------------------------

    async def write_snapshot(self, snapshot: Snapshot) -> None:
        """Write what changed since the last snapshot (newly read values and status changes)."""
        nodes = self.meters[snapshot.meter_id]
        now = self.clock.now()
        for obis, reading in snapshot.readings.items():
            node_id = nodes.values.get(obis)
            if node_id is None:
                continue
            stamp = (reading.source_time, reading.quality)
            if nodes.written.get(obis) == stamp:
                continue
            nodes.written[obis] = stamp
            await self._write(node_id, _reading_value(reading, now))
            if reading.refresh_s is not None and obis in nodes.refresh:
                await self._write(
                    nodes.refresh[obis], _dv(ua.Variant(reading.refresh_s, ua.VariantType.Double), now)
                )
        if snapshot.diagnostics != nodes.last_diag:
            await self._write_diagnostics(nodes, snapshot.diagnostics, now)
            nodes.last_diag = snapshot.diagnostics
        if snapshot.info != nodes.last_info:
            for name, attr in IDENTITY.items():
                value = ua.Variant(str(getattr(snapshot.info, attr)), ua.VariantType.String)
                await self._write(nodes.identity[name], _dv(value, now))
            nodes.last_info = snapshot.info

    async def _write_diagnostics(self, nodes: MeterNodes, diag: Diagnostics, now: datetime) -> None:
        for name, (attr, vtype) in DIAGNOSTICS.items():
            value: Any = getattr(diag, attr)
            if value is None:
                dv = ua.DataValue(
                    ua.Variant(),
                    StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData),
                    ServerTimestamp=now,
                )
            else:
                if name == "LinkState":
                    value = value.value
                dv = _dv(ua.Variant(value, vtype), now)
            await self._write(nodes.diagnostics[name], dv)

    async def write_archive_status(self, meter_id: str, status: ArchiveStatus) -> None:
        """Show the archive's state (disk full, backlog) on the meter's diagnostics."""
        nodes = self.meters[meter_id]
        now = self.clock.now()
        for name, (attr, vtype) in ARCHIVE_DIAGNOSTICS.items():
            await self._write(nodes.diagnostics[name], _dv(ua.Variant(getattr(status, attr), vtype), now))

    async def write_profile(self, meter_id: str, profile: ProfileData) -> None:
        """Show the last period of a profile readout on its channel variables."""
        nodes = self.meters[meter_id]
        channels = nodes.profiles.get(profile.stream)
        if channels is None or not profile.entries:
            return
        last = profile.entries[-1]
        now = self.clock.now()
        for (obis, _unit), value in zip(profile.channels, last.values, strict=False):
            node_id = next((n for o, n in channels.items() if o.matches(obis)), None)
            if node_id is None:
                continue
            status = ua.StatusCodes.Good if value is not None else ua.StatusCodes.BadNoData
            dv = ua.DataValue(
                ua.Variant() if value is None else ua.Variant(value, ua.VariantType.Double),
                StatusCode=ua.StatusCode(status),
                SourceTimestamp=last.end,
                ServerTimestamp=now,
            )
            await self._write(node_id, dv)
        state = nodes.profile_state[profile.stream]
        count = nodes.profile_counts.get(profile.stream, 0) + len(profile.entries)
        nodes.profile_counts[profile.stream] = count
        await self._write(
            state["CapturePeriod"], _dv(ua.Variant(float(profile.period_s), ua.VariantType.Double), now)
        )
        await self._write(state["LastEntryTime"], _dv(ua.Variant(last.end, ua.VariantType.DateTime), now))
        await self._write(state["LastStatus"], _dv(ua.Variant(last.status, ua.VariantType.UInt32), now))
        await self._write(state["EntriesRead"], _dv(ua.Variant(count, ua.VariantType.UInt32), now))

    async def write_events(self, meter_id: str, events: Iterable[EventRecord]) -> None:
        """Raise each meter event as a MeterEventType event of the meter object, with the
        meter's time stamp, and show the last one on the EventLog variables."""
        nodes = self.meters[meter_id]
        events = sorted(events, key=lambda e: e.time)
        if not events:
            return
        generator = nodes.event_generator
        for event in events:
            info = describe(event.code)
            generator.event.EventCode = ua.Variant(event.code, ua.VariantType.UInt16)
            generator.event.MeterId = ua.Variant(meter_id, ua.VariantType.String)
            generator.event.Severity = info.severity
            await generator.trigger(time_attr=event.time, message=info.name)
        last = events[-1]
        nodes.events_read += len(events)
        now = self.clock.now()
        ids = nodes.event_log
        await self._write(ids["LastEventTime"], _dv(ua.Variant(last.time, ua.VariantType.DateTime), now))
        await self._write(ids["LastEventCode"], _dv(ua.Variant(last.code, ua.VariantType.UInt16), now))
        name = ua.Variant(describe(last.code).name, ua.VariantType.String)
        await self._write(ids["LastEventName"], _dv(name, now))
        await self._write(ids["EventsRead"], _dv(ua.Variant(nodes.events_read, ua.VariantType.UInt32), now))

    async def _write(self, node_id: ua.NodeId, dv: ua.DataValue) -> None:
        await self.server.write_attribute_value(node_id, dv)


_DATA_TYPE = {
    ua.VariantType.String: ua.ObjectIds.String,
    ua.VariantType.Double: ua.ObjectIds.Double,
    ua.VariantType.UInt32: ua.ObjectIds.UInt32,
    ua.VariantType.UInt16: ua.ObjectIds.UInt16,
    ua.VariantType.DateTime: ua.ObjectIds.UtcTime,
}

LOAD_PROFILE_STATE = (
    ("CapturePeriod", ua.VariantType.Double),
    ("LastEntryTime", ua.VariantType.DateTime),
    ("LastStatus", ua.VariantType.UInt32),
    ("EntriesRead", ua.VariantType.UInt32),
)
EVENT_LOG_STATE = (
    ("LastEventTime", ua.VariantType.DateTime),
    ("LastEventCode", ua.VariantType.UInt16),
    ("LastEventName", ua.VariantType.String),
    ("EventsRead", ua.VariantType.UInt32),
)


def _dv(value: ua.Variant, now: datetime) -> ua.DataValue:
    return ua.DataValue(value, SourceTimestamp=now, ServerTimestamp=now)


def _reading_value(reading: Reading, now: datetime) -> ua.DataValue:
    value = ua.Variant() if reading.value is None else ua.Variant(reading.value, ua.VariantType.Double)
    return ua.DataValue(
        value,
        StatusCode=ua.StatusCode(QUALITY_STATUS[reading.quality]),
        SourceTimestamp=reading.source_time or now,
        ServerTimestamp=now,
    )
