"""Writes nodesets/smx.xml, the SMX information model (OPC UA NodeSet2).

The NodeSet is committed and loaded at start with asyncua's ``import_xml``. It is written
by this script so that the repeated declarations (a MeterType's Diagnostics object
declares the same variables as MeterDiagnosticsType) cannot drift apart. Run
``python tools/gen_nodeset.py`` after editing; ``tests/unit/test_nodeset.py`` checks
that the committed file is what this script writes.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

NAMESPACE = "http://smx-gateway.org/UA/"
TARGET = Path(__file__).resolve().parents[1] / "nodesets" / "smx.xml"

ALIASES = {
    "Boolean": "i=1",
    "UInt16": "i=5",
    "UInt32": "i=7",
    "Double": "i=11",
    "String": "i=12",
    "DateTime": "i=13",
    "UtcTime": "i=294",
    "Organizes": "i=35",
    "HasModellingRule": "i=37",
    "HasTypeDefinition": "i=40",
    "HasSubtype": "i=45",
    "HasProperty": "i=46",
    "HasComponent": "i=47",
}
MANDATORY, OPTIONAL = "i=78", "i=80"
BASE_OBJECT, FOLDER, BASE_EVENT = "i=58", "i=61", "i=2041"
BASE_VARIABLE, PROPERTY, ANALOG_ITEM = "i=63", "i=68", "i=2368"

DIAGNOSTICS = (
    ("LinkState", "String", "Meter link: connecting, online, degraded (reads failing), lost."),
    ("CycleDuration", "Double", "Duration of the last poll cycle, seconds."),
    ("BytesPerCycle", "UInt32", "Bytes sent and received on the line in the last cycle."),
    ("Cycles", "UInt32", "Poll cycles run since start."),
    ("LateCycles", "UInt32", "Cycles that ended after the next one was due."),
    ("SkippedCycles", "UInt32", "Cycles whose 1-second values gave way to a long readout (profile, clock)."),
    ("CommunicationErrors", "UInt32", "Failed exchanges with the meter since start."),
    ("LastError", "String", "The last communication error, in words."),
    ("LastGoodRead", "UtcTime", "Time of the last successful read."),
    ("ClockDeviation", "Double", "Meter clock minus gateway clock, seconds (positive: meter ahead)."),
    ("BaudRate", "UInt32", "Negotiated line speed, Bd."),
    (
        "ArchiveState",
        "String",
        "Archive of this meter: ok, disk-full (records wait in memory and are written when space returns) "
        "or error.",
    ),
    ("ArchiveLastError", "String", "The last archive write error, in words; empty if none since start."),
    ("ArchiveRecordsWritten", "UInt32", "Records written to the archive since start."),
    (
        "ArchiveBacklog",
        "UInt32",
        "Records waiting to be written to the archive (non-zero while writing fails).",
    ),
)
IDENTITY = (
    ("Manufacturer", "Manufacturer (FLAG id from the identification message, e.g. LGZ)."),
    ("Model", "Meter model from the identification message."),
    ("SerialNumber", "Serial number (OBIS 0-0:96.1.0 / C.1.0)."),
    ("FirmwareVersion", "Firmware version from the identification message."),
    ("Protocol", "Protocol used to read the meter."),
)


class NodeSet:
    def __init__(self) -> None:
        self.out: list[str] = []

    def _refs(self, refs: list[tuple[str, str, bool]]) -> str:
        lines = ["    <References>"]
        for kind, target, forward in refs:
            back = "" if forward else ' IsForward="false"'
            lines.append(f'      <Reference ReferenceType="{kind}"{back}>{target}</Reference>')
        lines.append("    </References>")
        return "\n".join(lines)

    def _node(self, tag: str, attrs: str, name: str, desc: str, refs: list[tuple[str, str, bool]]) -> None:
        self.out.append(
            f"  <{tag} {attrs}>\n    <DisplayName>{name}</DisplayName>\n"
            f"    <Description>{escape(desc)}</Description>\n{self._refs(refs)}\n  </{tag}>"
        )

    def object_type(self, i: int, name: str, parent: str, desc: str) -> None:
        attrs = f'NodeId="ns=1;i={i}" BrowseName="1:{name}"'
        self._node("UAObjectType", attrs, name, desc, [("HasSubtype", parent, False)])

    def variable_type(self, i: int, name: str, parent: str, data_type: str, desc: str) -> None:
        attrs = f'NodeId="ns=1;i={i}" BrowseName="1:{name}" DataType="{data_type}" ValueRank="-1"'
        self._node("UAVariableType", attrs, name, desc, [("HasSubtype", parent, False)])

    def variable(
        self,
        i: int,
        name: str,
        parent: int,
        data_type: str,
        desc: str,
        *,
        prop: bool = False,
        rule: str = MANDATORY,
    ) -> None:
        attrs = (
            f'NodeId="ns=1;i={i}" BrowseName="1:{name}" ParentNodeId="ns=1;i={parent}" '
            f'DataType="{data_type}" AccessLevel="1" UserAccessLevel="1"'
        )
        refs = [
            ("HasTypeDefinition", PROPERTY if prop else BASE_VARIABLE, True),
            ("HasModellingRule", rule, True),
            ("HasProperty" if prop else "HasComponent", f"ns=1;i={parent}", False),
        ]
        self._node("UAVariable", attrs, name, desc, refs)

    def object(self, i: int, name: str, parent: int, type_def: str, desc: str, rule: str = MANDATORY) -> None:
        attrs = f'NodeId="ns=1;i={i}" BrowseName="1:{name}" ParentNodeId="ns=1;i={parent}"'
        refs = [
            ("HasTypeDefinition", type_def, True),
            ("HasModellingRule", rule, True),
            ("HasComponent", f"ns=1;i={parent}", False),
        ]
        self._node("UAObject", attrs, name, desc, refs)

    def render(self) -> str:
        aliases = "\n".join(f'    <Alias Alias="{k}">{v}</Alias>' for k, v in ALIASES.items())
        head = f"""<?xml version="1.0" encoding="utf-8"?>
<!--
  SMX information model (OPC UA NodeSet2), written by tools/gen_nodeset.py.

  Types for the gateway, a meter, its diagnostics, load profiles, the event log and the
  meter events. Instances are created by gateway/opcua/address_space.py from the OBIS
  catalogue (gateway/obis.py); every OBIS value is an ObisValueType variable (a subtype of
  AnalogItemType) with a string NodeId "<meter>.<OBIS code>".
-->
<UANodeSet xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xmlns:uax="http://opcfoundation.org/UA/2008/02/Types.xsd" \
xmlns="http://opcfoundation.org/UA/2011/03/UANodeSet.xsd">
  <NamespaceUris>
    <Uri>{NAMESPACE}</Uri>
  </NamespaceUris>
  <Models>
    <Model ModelUri="{NAMESPACE}" Version="0.1.0" PublicationDate="2026-11-26T00:00:00Z">
      <RequiredModel ModelUri="http://opcfoundation.org/UA/" Version="1.05.03" \
PublicationDate="2023-12-15T00:00:00Z"/>
    </Model>
  </Models>
  <Aliases>
{aliases}
  </Aliases>"""
        return "\n".join([head, *self.out, "</UANodeSet>"]) + "\n"


def build() -> str:
    ns = NodeSet()
    ns.object_type(
        1001, "SmxGatewayType", BASE_OBJECT, "An SMX gateway: the meters it reads and its own state."
    )
    ns.object(1002, "Meters", 1001, FOLDER, "One MeterType object per configured meter.")
    ns.variable(1003, "SoftwareVersion", 1001, "String", "Version of the SMX gateway software.", prop=True)

    ns.object_type(1010, "MeterType", BASE_OBJECT, "An electricity meter read over its serial interface.")
    for n, (name, desc) in enumerate(IDENTITY):
        ns.variable(1011 + n, name, 1010, "String", desc, prop=True)
    ns.object(
        1016, "Diagnostics", 1010, "ns=1;i=1050", "Diagnostics of the poller that owns this meter's line."
    )
    for n, (name, data_type, desc) in enumerate(DIAGNOSTICS):
        ns.variable(1121 + n, name, 1016, data_type, desc)
    ns.object(
        1030, "Instantaneous", 1010, FOLDER, "Instantaneous values (u, i, p, q, power factor, frequency)."
    )
    ns.object(1031, "Energy", 1010, FOLDER, "Energy registers (A+, A-, R+, R-).")
    profile_1 = "Load profile 1: energy per capture period (A+, A-, R+, R-)."
    ns.object(1032, "LoadProfile1", 1010, "ns=1;i=1080", profile_1, rule=OPTIONAL)
    profile_2 = "Load profile 2: mean voltages and currents per capture period."
    ns.object(1033, "LoadProfile2", 1010, "ns=1;i=1080", profile_2, rule=OPTIONAL)
    ns.object(1034, "EventLog", 1010, "ns=1;i=1090", "The meter's event log.", rule=OPTIONAL)

    ns.object_type(1050, "MeterDiagnosticsType", BASE_OBJECT, "Diagnostics of a meter poller.")
    for n, (name, data_type, desc) in enumerate(DIAGNOSTICS):
        ns.variable(1051 + n, name, 1050, data_type, desc)

    ns.object_type(
        1080,
        "LoadProfileType",
        BASE_OBJECT,
        "A load profile (COSEM ProfileGeneric / IEC 62056-21 P.01, P.02): one ObisValueType channel per "
        "captured object; each channel's value is that of the last period read, stamped with the period's end.",
    )
    ns.variable(1081, "CapturePeriod", 1080, "Double", "Capture period, seconds.")
    ns.variable(1082, "LastEntryTime", 1080, "UtcTime", "End of the last period read from the meter.")
    ns.variable(
        1083, "LastStatus", 1080, "UInt32", "Status word of the last period read (meter-specific bits)."
    )
    ns.variable(1084, "EntriesRead", 1080, "UInt32", "Entries read from the meter since start.")

    ns.object_type(
        1090, "EventLogType", BASE_OBJECT, "The meter's event log (COSEM event log / IEC 62056-21 P.98)."
    )
    ns.variable(1091, "LastEventTime", 1090, "UtcTime", "Time of the last event read.")
    ns.variable(1092, "LastEventCode", 1090, "UInt16", "Code of the last event read.")
    ns.variable(1093, "LastEventName", 1090, "String", "The last event, in words.")
    ns.variable(1094, "EventsRead", 1090, "UInt32", "Events read from the meter since start.")

    ns.object_type(
        1100, "MeterEventType", BASE_EVENT, "An entry of a meter's event log, with the meter's time."
    )
    ns.variable(1101, "EventCode", 1100, "UInt16", "The meter's event code.", prop=True)
    ns.variable(1102, "MeterId", 1100, "String", "Id of the meter (its folder name).", prop=True)

    ns.variable_type(
        1110,
        "ObisValueType",
        ANALOG_ITEM,
        "Double",
        "A value of an OBIS object read from a meter: an AnalogItem with EngineeringUnits (UNECE) and "
        "EURange, named by its OBIS code.",
    )
    ns.variable(1111, "ObisCode", 1110, "String", "OBIS code (IEC 62056-61), A-B:C.D.E*F.", prop=True)
    refresh = "Measured time between two reads of this value, seconds."
    ns.variable(1112, "RefreshPeriod", 1110, "Double", refresh, prop=True, rule=OPTIONAL)
    return ns.render()


if __name__ == "__main__":
    TARGET.write_text(build(), encoding="utf-8")
    print(f"wrote {TARGET}")
