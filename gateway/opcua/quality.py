"""The EN 50160 weeks in OPC UA: a ``PowerQuality`` folder below each meter with the
running week and the last complete one (``RunningWeek``, ``LastWeek``), each a set of
variables a SCADA client can read, subscribe to and trend:

``WeekStart``, ``WeekEnd`` (UtcTime), ``Verdict`` (pass / fail / no data),
``TenMinuteMeans`` (UInt32), the shares in % of ``VoltageWithinBand`` (Un ±10 %),
``VoltageWithinLimits`` (+10/−15 %), ``FrequencyWithinBand`` (±1 %),
``FrequencyWithinLimits`` (+4/−6 %), ``UnbalanceWithinLimit`` (≤ 2 %, an approximation
from magnitudes), and the counts ``ShortInterruptions``, ``LongInterruptions``, ``Dips``,
``Swells`` (UInt32). A share is Bad (BadNoData) while the week has no mean to judge.

The numbers are refreshed every :data:`REFRESH_S` (a 10-minute mean is the finest step).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from gateway.clock import Clock
from gateway.errors import ArchiveError
from gateway.opcua.address_space import AddressSpace
from gateway.quality.en50160 import WeekReport
from gateway.quality.service import PowerQuality

log = logging.getLogger(__name__)

REFRESH_S = 600.0
WEEKS = (("RunningWeek", False), ("LastWeek", True))
#: Variable -> the criterion of the report it shows (shares and counts).
CRITERIA = {
    "VoltageWithinBand": "Voltage within Un ±10 %",
    "VoltageWithinLimits": "Voltage within Un +10 %/−15 %",
    "FrequencyWithinBand": "Frequency within 50 Hz ±1 %",
    "FrequencyWithinLimits": "Frequency within 50 Hz +4 %/−6 %",
    "UnbalanceWithinLimit": "Voltage unbalance ≤ 2 % (approximation)",
    "ShortInterruptions": "Short interruptions (≤ 3 min)",
    "LongInterruptions": "Long interruptions (> 3 min)",
    "Dips": "Voltage dips",
    "Swells": "Voltage swells",
}
COUNTS = ("ShortInterruptions", "LongInterruptions", "Dips", "Swells")
VARIABLES: tuple[tuple[str, ua.VariantType], ...] = (
    ("WeekStart", ua.VariantType.DateTime),
    ("WeekEnd", ua.VariantType.DateTime),
    ("Verdict", ua.VariantType.String),
    ("TenMinuteMeans", ua.VariantType.UInt32),
    *((name, ua.VariantType.UInt32 if name in COUNTS else ua.VariantType.Double) for name in CRITERIA),
)


_INITIAL: dict[ua.VariantType, Any] = {
    ua.VariantType.DateTime: datetime(1601, 1, 1, tzinfo=UTC),
    ua.VariantType.String: "",
    ua.VariantType.UInt32: 0,
    ua.VariantType.Double: 0.0,
}
_WAITING = ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData))


class QualityNodes:
    """The ``PowerQuality`` folders and their refresh (see the module's docstring)."""

    def __init__(self, space: AddressSpace, service: PowerQuality, clock: Clock) -> None:
        self.space = space
        self.service = service
        self.clock = clock

    def nid(self, meter_id: str, week: str, name: str = "") -> ua.NodeId:
        return self.space.nid(f"{meter_id}.PowerQuality.{week}" + (f".{name}" if name else ""))

    async def add(self) -> None:
        server = self.space.server
        for mid in self.service.meters():
            folder = await server.get_node(self.space.nid(mid)).add_folder(
                self.space.nid(f"{mid}.PowerQuality"), ua.QualifiedName("PowerQuality", self.space.ns)
            )
            for week, _last in WEEKS:
                node = await folder.add_object(self.nid(mid, week), ua.QualifiedName(week, self.space.ns))
                for name, vtype in VARIABLES:
                    browse = ua.QualifiedName(name, self.space.ns)
                    var = await node.add_variable(
                        self.nid(mid, week, name),
                        browse,
                        ua.Variant(_INITIAL[vtype], vtype),
                        varianttype=vtype,
                    )
                    await var.write_attribute(ua.AttributeIds.Value, _WAITING)
                    if name in CRITERIA and name not in COUNTS:
                        await var.write_attribute(
                            ua.AttributeIds.Description,
                            ua.DataValue(ua.Variant(ua.LocalizedText(f"{CRITERIA[name]}, % (EN 50160)"))),
                        )

    async def refresh(self) -> None:
        for mid in self.service.meters():
            for week, last in WEEKS:
                try:
                    report = await self.service.week(mid, last=last)
                except ArchiveError as err:
                    log.error("power quality of %s: %s", mid, err)
                    continue
                await self._write(mid, week, report)

    async def _write(self, mid: str, week: str, r: WeekReport) -> None:
        now = self.clock.now()
        values: dict[str, Any] = {
            "WeekStart": r.start, "WeekEnd": r.end, "Verdict": r.verdict.value, "TenMinuteMeans": r.valid,
        }  # fmt: skip
        for name, criterion in CRITERIA.items():
            measured = r.criterion(criterion).measured
            values[name] = None if measured is None else int(measured) if name in COUNTS else float(measured)
        for name, vtype in VARIABLES:
            value = values[name]
            known = value is not None
            dv = ua.DataValue(
                ua.Variant(value if known else _INITIAL[vtype], vtype),
                StatusCode=ua.StatusCode(ua.StatusCodes.Good if known else ua.StatusCodes.BadNoData),
                SourceTimestamp=now,
                ServerTimestamp=now,
            )
            await self.space.server.write_attribute_value(self.nid(mid, week, name), dv)

    async def run(self) -> None:
        while True:
            await self.refresh()
            await self.clock.sleep(REFRESH_S)
