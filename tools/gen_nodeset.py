"""Writes gateway/nodesets/smx.xml, the SMX information model (OPC UA NodeSet2).

The NodeSet is committed and loaded at start with asyncua's ``import_xml``. It is written
by this script so that the repeated declarations (a MeterType's Diagnostics object
declares the same variables as MeterDiagnosticsType) cannot drift apart. Run
``python tools/gen_nodeset.py`` after editing; ``tests/unit/test_nodeset.py`` checks
that the committed file is what this script writes.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from gateway.diagnostics import ARCHIVE_FIELDS, METER_FIELDS
from gateway.opcua import ids
from gateway.opcua.ids import SMX_NAMESPACE as NAMESPACE

TARGET = Path(__file__).resolve().parents[1] / "gateway" / "nodesets" / "smx.xml"

ALIASES = {
    "Boolean": "i=1",
    "UInt16": "i=5",
    "UInt32": "i=7",
    "Double": "i=11",
    "Argument": "i=296",
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

#: Poller fields added after the archive's were numbered: numbered after them, so that
#: every NodeId a client may have kept stays what it was.
LATER_FIELDS = ("LineStations", "LineShare")
#: Every diagnostic field, the poller's and the archive's (gateway/diagnostics.py).
DIAGNOSTICS = tuple(
    (f.name, f.data_type, f.description)
    for f in (
        *(f for f in (*METER_FIELDS, *ARCHIVE_FIELDS) if f.name not in LATER_FIELDS),
        *(f for f in METER_FIELDS if f.name in LATER_FIELDS),
    )
)
#: Live advice of the running settlement period (DESIGN §6): name, type, unit, description.
ADVICE = (
    ("State", "String", "", "advised, no-notification (no profile for this period), closing (last seconds) or "
     "no-measurement (energy at the period start not known, e.g. started mid-period)."),
    ("Recommendation", "String", "", "The advice in plain words, e.g. 'reduce by 1.8 kW to 4.2 kW for the "
     "remaining 12 minutes'."),
    ("PeriodStart", "UtcTime", "", "Start of the running settlement period."),
    ("PeriodEnd", "UtcTime", "", "End of the running settlement period."),
    ("NotifiedEnergy", "Double", "kWh", "Notified net import energy of the period (negative: net export)."),
    ("MeasuredEnergy", "Double", "kWh", "Net import energy measured since the period start (A+ minus A-)."),
    ("RemainingTime", "Double", "s", "Time left in the period."),
    ("RequiredPower", "Double", "kW", "Average net import power to hold for the rest of the period to land "
     "on the notified energy."),
    ("CurrentPower", "Double", "kW", "Net import power now (P+ minus P-)."),
    ("ProjectedImbalance", "Double", "kWh", "Measured minus notified energy at the period end if the current "
     "power is held (positive: more drawn than notified)."),
    ("CorrectionPower", "Double", "kW", "Required minus current power: positive = draw more or feed in less."),
)  # fmt: skip
#: Method arguments: name, type, value rank (-1 scalar, 1 array), description.
REGISTER_IN = (
    ("Day", "String", -1, "Delivery day in the market's local time, YYYY-MM-DD."),
    ("Values", "Double", 1, "One value per settlement period of the day (92/96/100 quarter hours or 23/24/25 "
     "hours), net import: positive = drawn from the grid, negative = fed in."),
    ("Unit", "String", -1, "'kWh' (energy per period) or 'kW' (average power per period); stored as kWh."),
    ("Replace", "Boolean", -1, "Replace a profile already notified for the day (otherwise refused)."),
)  # fmt: skip
REGISTER_OUT = (
    ("Periods", "UInt32", -1, "Number of settlement periods stored."),
    ("TotalEnergy", "Double", -1, "Sum of the stored profile, kWh."),
)
ADVICE_IN = (
    ("Time", "UtcTime", -1, "Instant of the running period to advise for, assuming the current power is held "
     "until then; null (DateTime.MinValue) = now."),
)  # fmt: skip
ADVICE_OUT = tuple(
    (name, data_type, -1, f"{desc} NaN when the state has no such value." if data_type == "Double" else desc)
    for name, data_type, _unit, desc in ADVICE
)
READ_IN = (("Day", "String", -1, "Delivery day, YYYY-MM-DD."),)
READ_OUT = (
    ("PeriodStarts", "UtcTime", 1, "Start of each settlement period of the day."),
    ("Energy", "Double", 1, "Notified net import energy per period, kWh."),
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
        array: bool = False,
    ) -> None:
        rank = ' ValueRank="1"' if array else ""
        attrs = (
            f'NodeId="ns=1;i={i}" BrowseName="1:{name}" ParentNodeId="ns=1;i={parent}" '
            f'DataType="{data_type}"{rank} AccessLevel="1" UserAccessLevel="1"'
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

    def method(
        self,
        i: int,
        name: str,
        parent: int,
        desc: str,
        inputs: tuple[tuple[str, str, int, str], ...],
        outputs: tuple[tuple[str, str, int, str], ...],
    ) -> None:
        """A method with InputArguments (i+1) and OutputArguments (i+2) properties (OPC 10000-3 §5.7)."""
        attrs = f'NodeId="ns=1;i={i}" BrowseName="1:{name}" ParentNodeId="ns=1;i={parent}"'
        refs = [
            ("HasProperty", f"ns=1;i={i + 1}", True),
            ("HasProperty", f"ns=1;i={i + 2}", True),
            ("HasModellingRule", MANDATORY, True),
            ("HasComponent", f"ns=1;i={parent}", False),
        ]
        self._node("UAMethod", attrs, name, desc, refs)
        for n, (prop, arguments) in enumerate((("InputArguments", inputs), ("OutputArguments", outputs))):
            attrs = (
                f'NodeId="ns=1;i={i + 1 + n}" BrowseName="{prop}" ParentNodeId="ns=1;i={i}" DataType="Argument" '
                f'ValueRank="1" ArrayDimensions="{len(arguments)}"'
            )
            refs = [
                ("HasTypeDefinition", PROPERTY, True),
                ("HasModellingRule", MANDATORY, True),
                ("HasProperty", f"ns=1;i={i}", False),
            ]
            self._node("UAVariable", attrs, prop, f"{prop} of {name}.", refs)
            body = "".join(
                "\n        <uax:ExtensionObject><uax:TypeId><uax:Identifier>i=297</uax:Identifier></uax:TypeId>"
                f"<uax:Body><uax:Argument><uax:Name>{arg}</uax:Name><uax:DataType><uax:Identifier>"
                f"{ALIASES[data_type]}</uax:Identifier></uax:DataType><uax:ValueRank>{rank}</uax:ValueRank>"
                "<uax:ArrayDimensions /><uax:Description>"
                f"<uax:Text>{escape(text)}"
                "</uax:Text></uax:Description></uax:Argument></uax:Body></uax:ExtensionObject>"
                for arg, data_type, rank, text in arguments
            )
            value = f"    <Value>\n      <uax:ListOfExtensionObject>{body}\n      </uax:ListOfExtensionObject>\n    </Value>"
            self.out[-1] = self.out[-1].replace("\n  </UAVariable>", f"\n{value}\n  </UAVariable>")

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


THUMBPRINT_IN = (("Thumbprint", "String", -1, "SHA-1 thumbprint in hex, or a unique prefix of 8+ digits."),)
SUBJECT_OUT = (("Subject", "String", -1, "Subject of the certificate moved."),)
CERTIFICATES_OUT = (
    ("Trusted", "String", 1, "Trusted client certificates: thumbprint, subject, valid until."),
    ("Rejected", "String", 1, "Rejected (unknown) client certificates, kept for an administrator."),
)


def build() -> str:
    ns = NodeSet()
    ns.object_type(
        ids.SMX_GATEWAY_TYPE,
        "SmxGatewayType",
        BASE_OBJECT,
        "An SMX gateway: the meters it reads and its own state.",
    )
    ns.object(
        ids.GATEWAY_METERS,
        "Meters",
        ids.SMX_GATEWAY_TYPE,
        FOLDER,
        "One MeterType object per configured meter.",
    )
    ns.variable(
        ids.GATEWAY_SOFTWARE_VERSION,
        "SoftwareVersion",
        ids.SMX_GATEWAY_TYPE,
        "String",
        "Version of the SMX gateway software.",
        prop=True,
    )
    external = "External energy data (prices, renewable shares): one ExternalValueType variable per value."
    ns.object(ids.GATEWAY_EXTERNAL_DATA, "ExternalData", ids.SMX_GATEWAY_TYPE, FOLDER, external)

    ns.object_type(
        ids.METER_TYPE, "MeterType", BASE_OBJECT, "An electricity meter read over its serial interface."
    )
    for n, (name, desc) in enumerate(IDENTITY):
        ns.variable(ids.METER_IDENTITY + n, name, ids.METER_TYPE, "String", desc, prop=True)
    ns.object(
        ids.METER_DIAGNOSTICS,
        "Diagnostics",
        ids.METER_TYPE,
        f"ns=1;i={ids.METER_DIAGNOSTICS_TYPE}",
        "Diagnostics of the poller that owns this meter's line.",
    )
    for n, (name, data_type, desc) in enumerate(DIAGNOSTICS):
        ns.variable(ids.METER_DIAGNOSTICS_FIELDS + n, name, ids.METER_DIAGNOSTICS, data_type, desc)
    ns.object(
        ids.METER_INSTANTANEOUS,
        "Instantaneous",
        ids.METER_TYPE,
        FOLDER,
        "Instantaneous values (u, i, p, q, power factor, frequency).",
    )
    ns.object(ids.METER_ENERGY, "Energy", ids.METER_TYPE, FOLDER, "Energy registers (A+, A-, R+, R-).")
    profile_1 = "Load profile 1: energy per capture period (A+, A-, R+, R-)."
    ns.object(
        ids.METER_LOAD_PROFILE_1,
        "LoadProfile1",
        ids.METER_TYPE,
        f"ns=1;i={ids.LOAD_PROFILE_TYPE}",
        profile_1,
        rule=OPTIONAL,
    )
    profile_2 = "Load profile 2: mean voltages and currents per capture period."
    ns.object(
        ids.METER_LOAD_PROFILE_2,
        "LoadProfile2",
        ids.METER_TYPE,
        f"ns=1;i={ids.LOAD_PROFILE_TYPE}",
        profile_2,
        rule=OPTIONAL,
    )
    ns.object(
        ids.METER_EVENT_LOG,
        "EventLog",
        ids.METER_TYPE,
        f"ns=1;i={ids.EVENT_LOG_TYPE}",
        "The meter's event log.",
        rule=OPTIONAL,
    )
    market = "Market services of the meter's delivery point: notified profiles and imbalance advice."
    ns.object(
        ids.METER_MARKET,
        "Market",
        ids.METER_TYPE,
        f"ns=1;i={ids.MARKET_SERVICES_TYPE}",
        market,
        rule=OPTIONAL,
    )

    ns.object_type(
        ids.METER_DIAGNOSTICS_TYPE, "MeterDiagnosticsType", BASE_OBJECT, "Diagnostics of a meter poller."
    )
    for n, (name, data_type, desc) in enumerate(DIAGNOSTICS):
        ns.variable(ids.DIAGNOSTICS_TYPE_FIELDS + n, name, ids.METER_DIAGNOSTICS_TYPE, data_type, desc)

    ns.object_type(
        ids.LOAD_PROFILE_TYPE,
        "LoadProfileType",
        BASE_OBJECT,
        "A load profile (COSEM ProfileGeneric / IEC 62056-21 P.01, P.02): one ObisValueType channel per "
        "captured object; each channel's value is that of the last period read, stamped with the period's end.",
    )
    ns.variable(
        ids.LOAD_PROFILE_CAPTURE_PERIOD,
        "CapturePeriod",
        ids.LOAD_PROFILE_TYPE,
        "Double",
        "Capture period, seconds.",
    )
    ns.variable(
        ids.LOAD_PROFILE_LAST_ENTRY_TIME,
        "LastEntryTime",
        ids.LOAD_PROFILE_TYPE,
        "UtcTime",
        "End of the last period read from the meter.",
    )
    ns.variable(
        ids.LOAD_PROFILE_LAST_STATUS,
        "LastStatus",
        ids.LOAD_PROFILE_TYPE,
        "UInt32",
        "Status word of the last period read (meter-specific bits).",
    )
    ns.variable(
        ids.LOAD_PROFILE_ENTRIES_READ,
        "EntriesRead",
        ids.LOAD_PROFILE_TYPE,
        "UInt32",
        "Entries read from the meter since start.",
    )

    ns.object_type(
        ids.EVENT_LOG_TYPE,
        "EventLogType",
        BASE_OBJECT,
        "The meter's event log (COSEM event log / IEC 62056-21 P.98).",
    )
    ns.variable(
        ids.EVENT_LOG_LAST_EVENT_TIME,
        "LastEventTime",
        ids.EVENT_LOG_TYPE,
        "UtcTime",
        "Time of the last event read.",
    )
    ns.variable(
        ids.EVENT_LOG_LAST_EVENT_CODE,
        "LastEventCode",
        ids.EVENT_LOG_TYPE,
        "UInt16",
        "Code of the last event read.",
    )
    ns.variable(
        ids.EVENT_LOG_LAST_EVENT_NAME,
        "LastEventName",
        ids.EVENT_LOG_TYPE,
        "String",
        "The last event, in words.",
    )
    ns.variable(
        ids.EVENT_LOG_EVENTS_READ,
        "EventsRead",
        ids.EVENT_LOG_TYPE,
        "UInt32",
        "Events read from the meter since start.",
    )

    ns.object_type(
        ids.METER_EVENT_TYPE,
        "MeterEventType",
        BASE_EVENT,
        "An entry of a meter's event log, with the meter's time.",
    )
    ns.variable(
        ids.METER_EVENT_CODE,
        "EventCode",
        ids.METER_EVENT_TYPE,
        "UInt16",
        "The meter's event code.",
        prop=True,
    )
    ns.variable(
        ids.METER_EVENT_METER_ID,
        "MeterId",
        ids.METER_EVENT_TYPE,
        "String",
        "Id of the meter (its folder name).",
        prop=True,
    )

    ns.variable_type(
        ids.OBIS_VALUE_TYPE,
        "ObisValueType",
        ANALOG_ITEM,
        "Double",
        "A value of an OBIS object read from a meter: an AnalogItem with EngineeringUnits (UNECE) and "
        "EURange, named by its OBIS code.",
    )
    ns.variable(
        ids.OBIS_VALUE_CODE,
        "ObisCode",
        ids.OBIS_VALUE_TYPE,
        "String",
        "OBIS code (IEC 62056-61), A-B:C.D.E*F.",
        prop=True,
    )
    refresh = "Measured time between two reads of this value, seconds."
    ns.variable(
        ids.OBIS_VALUE_REFRESH_PERIOD,
        "RefreshPeriod",
        ids.OBIS_VALUE_TYPE,
        "Double",
        refresh,
        prop=True,
        rule=OPTIONAL,
    )

    ns.object_type(
        ids.MARKET_SERVICES_TYPE,
        "MarketServicesType",
        BASE_OBJECT,
        "Market services of one delivery point (DESIGN §6): notified profiles of net import energy per "
        "settlement period, and the imbalance advice for the running period, recomputed every second.",
    )
    for n, (name, data_type, unit, desc) in enumerate(ADVICE):
        ns.variable(
            ids.MARKET_ADVICE + n,
            name,
            ids.MARKET_SERVICES_TYPE,
            data_type,
            f"{desc} ({unit})" if unit else desc,
        )
    ns.variable(
        ids.MARKET_PERIOD_MINUTES,
        "PeriodMinutes",
        ids.MARKET_SERVICES_TYPE,
        "UInt32",
        "Settlement period length, minutes (15 or 60).",
        prop=True,
    )
    ns.variable(
        ids.MARKET_NOTIFIED_DAYS,
        "NotifiedDays",
        ids.MARKET_SERVICES_TYPE,
        "String",
        "Delivery days with a notified profile (YYYY-MM-DD).",
        array=True,
    )
    ns.method(
        ids.MARKET_REGISTER_PROFILE, "RegisterProfile", ids.MARKET_SERVICES_TYPE,
        "Notify a profile for a delivery day. Refused with BadInvalidArgument (wrong length, not a number, a day "
        "already notified without Replace) or BadOutOfRange (infinite, beyond the limit, a past day); the "
        "message is in the argument's diagnostic info. Nothing stored changes when refused.",
        REGISTER_IN, REGISTER_OUT,
    )  # fmt: skip
    ns.method(
        ids.MARKET_COMPUTE_ADVICE, "ComputeAdvice", ids.MARKET_SERVICES_TYPE,
        "The imbalance advice now, or at a later instant of the running period if the current power is held.",
        ADVICE_IN, ADVICE_OUT,
    )  # fmt: skip
    ns.method(
        ids.MARKET_READ_PROFILE,
        "ReadProfile",
        ids.MARKET_SERVICES_TYPE,
        "The notified profile of a delivery day.",
        READ_IN,
        READ_OUT,
    )

    ns.object_type(
        ids.ADMINISTRATION_TYPE,
        "AdministrationType",
        BASE_OBJECT,
        "Administration of the gateway (admin role only; every call is logged): the trust list of its OPC UA "
        "clients, as `smx-gateway certs` on the box.",
    )
    ns.method(
        ids.ADMINISTRATION_LIST_CERTIFICATES, "ListCertificates", ids.ADMINISTRATION_TYPE,
        "The trusted and the rejected client certificates: thumbprint, subject, end of validity.",
        (), CERTIFICATES_OUT,
    )  # fmt: skip
    ns.method(
        ids.ADMINISTRATION_TRUST_CERTIFICATE, "TrustCertificate", ids.ADMINISTRATION_TYPE,
        "Trust a rejected client certificate (from rejected/ to trusted/); its client connects at its next "
        "attempt. BadNotFound in the argument's result when no single rejected certificate matches.",
        THUMBPRINT_IN, SUBJECT_OUT,
    )  # fmt: skip
    ns.method(
        ids.ADMINISTRATION_REJECT_CERTIFICATE, "RejectCertificate", ids.ADMINISTRATION_TYPE,
        "Stop trusting a client certificate (from trusted/ to rejected/); new connections with it are refused.",
        THUMBPRINT_IN, SUBJECT_OUT,
    )  # fmt: skip

    ns.variable_type(
        ids.EXTERNAL_VALUE_TYPE,
        "ExternalValueType",
        BASE_VARIABLE,
        "Double",
        "An external value fed by a write, REST PUT or a configured source. SourceTimestamp is the value's "
        "time; the status turns UncertainLastUsableValue once it is older than FreshFor, and is "
        "BadWaitingForInitialData until a first value arrives.",
    )
    ns.variable(
        ids.EXTERNAL_VALUE_FRESH_FOR,
        "FreshFor",
        ids.EXTERNAL_VALUE_TYPE,
        "Double",
        "Seconds a value stays fresh after its time.",
        prop=True,
    )
    ns.variable(
        ids.EXTERNAL_VALUE_ORIGIN,
        "Origin",
        ids.EXTERNAL_VALUE_TYPE,
        "String",
        "Where the value came from: rest, opcua or the source.",
        prop=True,
    )
    return ns.render()


if __name__ == "__main__":
    TARGET.write_text(build(), encoding="utf-8")
    print(f"wrote {TARGET}")
