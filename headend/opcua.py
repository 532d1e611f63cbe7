"""The portfolios over OPC UA (issue 18; DESIGN §12): the head-end's one OPC UA adapter.

The server is the gateway's (:func:`gateway.opcua.server.build_server`): the same guard in
front of asyncua, the same policies, identity tokens, limits and roles, the users file and
PKI folder of ``[security]``. Layout (browse path -> string NodeId in :data:`NAMESPACE`)::

    Objects/Portfolios                    Portfolios                   FolderType
      <name>                              Portfolios/<name>            BaseObjectType
        NetPower, MeasuredPower, ...      Portfolios/<name>/NetPower   the live aggregate, every second
        State, Recommendation, ...        Portfolios/<name>/State      the live advice (the gateway's fields)
        NetPowerMinute, NetPowerPeriod    .../NetPowerMinute           HistoryRead: the stored records
        RegisterSchedule(Day, Values, Unit, Replace) -> (Periods, TotalEnergy)          operator
        ComputeAdvice(Time) -> (State, Recommendation, PeriodStart, ...)                viewer
        ReadSchedule(Day) -> (PeriodStarts, Energy)                                     viewer

A name may hold '.', so the NodeIds join their parts with '/', which no name holds. The
methods are the gateway's RegisterProfile, ComputeAdvice and ReadProfile on a portfolio:
the same arguments, outputs and refusals (:mod:`gateway.opcua.methods`). The values are
written after each of the service's ticks with the aggregate's time as SourceTimestamp;
portfolios defined or removed at run time (REST, any instance) appear and go at the next
tick after the service re-read them (every :data:`~headend.portfolio.service.RELOAD_S`).

History: ``NetPowerMinute`` and ``NetPowerPeriod`` hold the mean net power of the last
closed minute and settlement period; HistoryRead (raw) on them reads the aggregate records
of the database (:meth:`~headend.portfolio.service.PortfolioService.history`), each stamped
at its interval's start, forward or reverse, with continuation points that are the next
record's time (stateless: nothing is held for a client).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import ua
from asyncua.server.history import HistoryManager

from gateway.config import OpcUaConfig, SecurityConfig
from gateway.errors import MarketInputError
from gateway.opcua.guard import caller
from gateway.opcua.history_read import (
    HistoryFault,
    ReadOnlyHistory,
    fault,
    no_updates,
    request_time,
    write_capabilities,
)
from gateway.opcua.methods import (
    ADVICE_FIELDS,
    REGISTER_ARGUMENTS,
    ArgumentError,
    MethodCall,
    advice_outputs,
    advice_values,
    count,
    day_argument,
    for_role,
    from_market_error,
    profile_outputs,
    refused,
    register_arguments,
    register_outputs,
    time_argument,
    unavailable,
)
from gateway.opcua.nodes import object_item, variable_item
from gateway.opcua.server import SmxServer, build_server
from gateway.opcua.units import eu_information
from gateway.security.auth import UserDirectory
from gateway.security.users import Role
from headend.portfolio.aggregate import Aggregate, PortfolioAdvice
from headend.portfolio.model import Portfolio
from headend.portfolio.service import PortfolioService
from headend.storage import AggregateRecord, StorageError, from_micros, to_micros

log = logging.getLogger(__name__)

#: The namespace of the head-end's nodes.
NAMESPACE = "http://smx-gateway.org/UA/Headend/"
PRODUCT_NAME = "SMX head-end"
ROOT = "Portfolios"

#: The live aggregate: browse name, variant type, unit (None: not an analog value), how to
#: take it from an Aggregate, description.
AGGREGATE_FIELDS: tuple[tuple[str, ua.VariantType, str | None, Callable[[Aggregate], Any], str], ...] = (
    ("NetPower", ua.VariantType.Double, "kW", lambda a: a.net_kw,
     "Measured plus estimated net import power (positive: drawn from the grid)."),
    ("MeasuredPower", ua.VariantType.Double, "kW", lambda a: a.measured_kw,
     "Sum of the fresh members' net import power."),
    ("EstimatedPower", ua.VariantType.Double, "kW", lambda a: a.estimated_kw,
     "Stale and offline members' power, estimated from their last 15 minutes."),
    ("Uncertainty", ua.VariantType.Double, "kW", lambda a: a.uncertainty_kw,
     "How far the estimated power may be off."),
    ("Coverage", ua.VariantType.Double, "", lambda a: a.coverage,
     "The fresh members' share of the portfolio's recent consumption, 0..1."),
    ("Members", ua.VariantType.UInt32, None, lambda a: a.members, "Member sites."),
    ("Fresh", ua.VariantType.UInt32, None, lambda a: a.fresh, "Members whose net power is fresh (summed)."),
    ("Stale", ua.VariantType.UInt32, None, lambda a: a.stale,
     "Members whose net power is stale (estimated)."),
    ("Offline", ua.VariantType.UInt32, None, lambda a: a.offline, "Members offline (estimated)."),
    ("Energy", ua.VariantType.Double, "kWh", lambda a: a.energy_kwh,
     "Net import energy of the running settlement period so far, measured and estimated."),
    ("EnergyUncertainty", ua.VariantType.Double, "kWh", lambda a: a.energy_uncertainty_kwh,
     "How far the energy so far may be off (the estimated part)."),
    ("How", ua.VariantType.String, None, lambda a: a.how, "How the aggregate was formed, in words."),
)  # fmt: skip
#: Beside the gateway's advice fields: how far the projected imbalance may be off.
ADVICE_UNCERTAINTY = "ImbalanceUncertainty"
#: The historized variables: browse name -> what their records are.
HISTORY = {
    "NetPowerMinute": "Mean net import power of each minute (the last closed one; HistoryRead: stored "
    "minutes).",
    "NetPowerPeriod": "Mean net import power of each settlement period (the last closed one; HistoryRead: "
    "stored periods).",
}
#: The most values one HistoryRead answer holds (then a continuation point).
PAGE_LIMIT = 1000
#: HistoryServerCapabilities (OPC 10000-11 §5.4.2) as the head-end fills them in.
CAPABILITIES: dict[str, tuple[Any, ua.VariantType]] = {
    "AccessHistoryDataCapability": (True, ua.VariantType.Boolean),
    "MaxReturnDataValues": (PAGE_LIMIT, ua.VariantType.UInt32),
    "ServerTimestampSupported": (False, ua.VariantType.Boolean),
}
#: A closed interval's record not yet in the database is looked for again after this long.
RECORD_RETRY = timedelta(seconds=2)

#: The least role that may call each method (DESIGN §8); anonymous sessions call none.
METHOD_ROLES = {"RegisterSchedule": Role.OPERATOR, "ComputeAdvice": Role.VIEWER, "ReadSchedule": Role.VIEWER}
_SCALAR, _ARRAY = ua.ValueRank.Scalar, ua.ValueRank.OneDimension
#: Method arguments: name, data type, value rank, description.
_ARGUMENTS: dict[str, tuple[tuple[tuple[str, int, int, str], ...], tuple[tuple[str, int, int, str], ...]]] = {
    "RegisterSchedule": (
        (
            ("Day", ua.ObjectIds.String, _SCALAR, "Delivery day in the portfolio's zone, YYYY-MM-DD."),
            ("Values", ua.ObjectIds.Double, _ARRAY,
             "One value per settlement period of the day (92/96/100 quarter hours or 23/24/25 hours), "
             "net import: positive = drawn from the grid, negative = fed in."),
            ("Unit", ua.ObjectIds.String, _SCALAR,
             "'kWh' (energy per period) or 'kW' (average power per period); stored as kWh."),
            ("Replace", ua.ObjectIds.Boolean, _SCALAR, "Replace a schedule already registered for the day."),
        ),
        (
            ("Periods", ua.ObjectIds.UInt32, _SCALAR, "Number of settlement periods stored."),
            ("TotalEnergy", ua.ObjectIds.Double, _SCALAR, "Sum of the stored schedule, kWh."),
        ),
    ),
    "ComputeAdvice": (
        (
            ("Time", ua.ObjectIds.UtcTime, _SCALAR,
             "Instant of the running period to advise for, the current power held until then; "
             "null (DateTime.MinValue) = now."),
        ),
        tuple(
            (name, ua.ObjectIds.UtcTime if vtype == ua.VariantType.DateTime else int(vtype.value), _SCALAR,
             f"{name} ({unit}); NaN when the state has no such value." if unit else name)
            for name, vtype, unit, _take in ADVICE_FIELDS
        ),
    ),
    "ReadSchedule": (
        (("Day", ua.ObjectIds.String, _SCALAR, "Delivery day, YYYY-MM-DD."),),
        (
            ("PeriodStarts", ua.ObjectIds.UtcTime, _ARRAY, "Start of each settlement period of the day."),
            ("Energy", ua.ObjectIds.Double, _ARRAY, "Registered net import energy per period, kWh."),
        ),
    ),
}  # fmt: skip
_DATA_TYPE = {
    ua.VariantType.String: ua.ObjectIds.String,
    ua.VariantType.Double: ua.ObjectIds.Double,
    ua.VariantType.UInt32: ua.ObjectIds.UInt32,
    ua.VariantType.DateTime: ua.ObjectIds.UtcTime,
}
_WAITING = ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData)
#: The earliest record a reverse read without a StartTime looks back to, and the open end.
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)


@dataclass(slots=True)
class _Nodes:
    """One portfolio's nodes."""

    portfolio: Portfolio
    object: ua.NodeId
    #: Per historized variable: the start of the record last written as its value.
    closed: dict[str, datetime | None] = field(default_factory=dict)
    #: Per historized variable: when its record was looked for last (it may not be stored yet).
    looked: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)


class PortfolioServer:
    """The head-end's OPC UA server: one object per portfolio, updated after every tick."""

    def __init__(self, service: PortfolioService, opcua: OpcUaConfig, security: SecurityConfig) -> None:
        # The PKI, the users file and the node cache are found relative to the working
        # directory at start, as the gateway's.
        self.service = service
        self.opcua = replace(opcua, node_cache=os.path.abspath(opcua.node_cache) if opcua.node_cache else "")
        self.security = replace(security, pki=os.path.abspath(security.pki),
                                users=os.path.abspath(security.users))  # fmt: skip
        self.users = UserDirectory(self.security.users, login_delay_s=security.login_delay_s)
        self.server: SmxServer | None = None
        self.ns = 0
        self.endpoint = self.opcua.endpoint
        self.nodes: dict[str, _Nodes] = {}
        self.history = RecordHistory(service)
        self._updated = asyncio.Event()

    def nid(self, *parts: str) -> ua.NodeId:
        return ua.NodeId("/".join((ROOT, *parts)), self.ns)

    # -- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the server and the portfolios' nodes, and listen."""
        server = await build_server(self.opcua, self.security, self.users, product_name=PRODUCT_NAME)
        self.server = server
        if not await self.users.count():
            log.warning("no users in %s: nobody can log in to the portfolios' OPC UA server; add one with: "
                        "smx-gateway users --file %s add NAME --role operator",
                        self.security.users, self.security.users)  # fmt: skip
        self.ns = await server.register_namespace(NAMESPACE)
        await server.nodes.objects.add_folder(ua.NodeId(ROOT, self.ns), ua.QualifiedName(ROOT, self.ns))
        await install_history(server, self.history)
        await self.update()
        await server.start()
        bserver = getattr(server, "bserver", None)
        host, port = getattr(bserver, "hostname", self.opcua.host), getattr(bserver, "port", self.opcua.port)
        self.endpoint = f"opc.tcp://{host}:{port}{self.opcua.path}"
        log.info("portfolios over OPC UA at %s", self.endpoint)

    async def run(self) -> None:
        """Update the nodes after every tick of the service; only cancellation ends it."""
        while True:
            await self.service.next_tick()
            try:
                await self.update()
            except Exception:  # a node that cannot be written must not stop the server
                log.exception("portfolios over OPC UA: update failed")

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def next_update(self) -> None:
        """Wait until the nodes were updated once more (tests)."""
        await self._updated.wait()

    # -- updating ---------------------------------------------------------------------------

    async def update(self) -> None:
        """Portfolios added, changed, removed; then every portfolio's values."""
        wanted = self.service.portfolios
        for name in [n for n, nodes in self.nodes.items() if wanted.get(n) != nodes.portfolio]:
            await self._remove(name)
        for name, portfolio in wanted.items():
            if name not in self.nodes:
                await self._add(portfolio)
        for name in list(self.nodes):
            await self._write(name)
        self._updated.set()
        self._updated = asyncio.Event()

    async def _write(self, name: str) -> None:
        aggregate = self.service.aggregates.get(name)
        if aggregate is None:
            return
        now = self.service.clock.now()
        for field_name, vtype, _unit, take, _desc in AGGREGATE_FIELDS:
            value = ua.Variant(take(aggregate), vtype)
            await self._set(self.nid(name, field_name), ua.DataValue(value, SourceTimestamp=aggregate.time,
                                                                     ServerTimestamp=now))  # fmt: skip
        try:
            advice = await self.service.advice(name)
        except (StorageError, MarketInputError, KeyError) as err:
            log.warning("portfolio %s: no advice over OPC UA: %s", name, err)
        else:
            await self._write_advice(name, advice, now)
        await self._write_closed(name, aggregate)

    async def _write_advice(self, name: str, portfolio_advice: PortfolioAdvice, now: datetime) -> None:
        advice = replace(portfolio_advice.advice, text=portfolio_advice.text)
        for field_name, dv in advice_values(advice, now):
            await self._set(self.nid(name, field_name), dv)
        uncertainty = ua.Variant(portfolio_advice.uncertainty_kwh, ua.VariantType.Double)
        dv = ua.DataValue(uncertainty, SourceTimestamp=advice.at, ServerTimestamp=now)
        await self._set(self.nid(name, ADVICE_UNCERTAINTY), dv)

    async def _write_closed(self, name: str, aggregate: Aggregate) -> None:
        """The last closed minute's and period's records as the historized variables' values."""
        nodes = self.nodes[name]
        minute = aggregate.time.replace(second=0, microsecond=0)
        period_start = aggregate.period_start
        previous = nodes.portfolio.calendar.period_at(period_start - timedelta(microseconds=1)).start
        for variable, seconds, start, end in (
            ("NetPowerMinute", 60, minute - timedelta(minutes=1), minute),
            ("NetPowerPeriod", nodes.portfolio.period_minutes * 60, previous, period_start),
        ):
            written = nodes.closed.get(variable)
            if written is not None and written >= start:
                continue
            looked = nodes.looked.get(variable)
            if looked is not None and looked[0] == start and aggregate.time - looked[1] < RECORD_RETRY:
                continue
            nodes.looked[variable] = (start, aggregate.time)
            try:
                records = await self.service.history(name, seconds, start, end)
            except StorageError as err:
                log.warning("portfolio %s: %s not read: %s", name, variable, err)
                continue
            if records:
                r = records[-1]
                await self._set(self.nid(name, variable), _record_value(r, self.service.clock.now()))
                nodes.closed[variable] = r.start

    async def _set(self, node_id: ua.NodeId, dv: ua.DataValue) -> None:
        assert self.server is not None
        await self.server.write_attribute_value(node_id, dv)

    # -- building ---------------------------------------------------------------------------

    async def _add(self, portfolio: Portfolio) -> None:
        server = self.server
        assert server is not None
        name = portfolio.name
        obj = self.nid(name)
        items = [
            object_item(ua.NodeId(ROOT, self.ns), obj, name, self.ns, ua.NodeId(ua.ObjectIds.BaseObjectType),
                        reference=ua.ObjectIds.Organizes,
                        description=portfolio.description or f"Portfolio {name}")
        ]  # fmt: skip
        for field_name, vtype, unit, _take, description in AGGREGATE_FIELDS:
            items += self._variable(name, field_name, vtype, unit, description)
        for field_name, vtype, unit, _advice in ADVICE_FIELDS:
            items += self._variable(name, field_name, vtype, unit if vtype == ua.VariantType.Double else None,
                                    f"The advice of the running period: {field_name}.")  # fmt: skip
        items += self._variable(
            name, ADVICE_UNCERTAINTY, ua.VariantType.Double, "kWh",
            "How far the projected imbalance may be off (the estimated members).",
        )  # fmt: skip
        for variable, description in HISTORY.items():
            items += self._variable(
                name, variable, ua.VariantType.Double, "kW", description, historizing=True
            )
        items.append(
            variable_item(obj, self.nid(name, "PeriodMinutes"), "PeriodMinutes", self.ns,
                          ua.Variant(portfolio.period_minutes, ua.VariantType.UInt32),
                          data_type=ua.ObjectIds.UInt32, type_def=ua.NodeId(ua.ObjectIds.PropertyType),
                          description="Settlement period length, minutes (15 or 60).", prop=True)
        )  # fmt: skip
        try:
            await self._build(portfolio, items)
        except BaseException:
            # Nothing half-built stays behind: the next update tries the whole portfolio again.
            await server.delete_nodes([server.get_node(obj)], recursive=True)
            raise
        self.history.nodes[self.nid(name, "NetPowerMinute")] = (name, 60)
        self.history.nodes[self.nid(name, "NetPowerPeriod")] = (name, portfolio.period_minutes * 60)
        self.nodes[name] = _Nodes(portfolio, obj)
        log.info("portfolio %s over OPC UA", name)

    async def _build(self, portfolio: Portfolio, items: list[ua.AddNodesItem]) -> None:
        server = self.server
        assert server is not None
        name = portfolio.name
        results = await server.iserver.isession.add_nodes(items)
        for added, result in zip(items, results, strict=True):
            if not result.StatusCode.is_good():
                raise RuntimeError(
                    f"adding {added.BrowseName} of portfolio {name} failed: {result.StatusCode}"
                )
        waiting = [f[0] for f in AGGREGATE_FIELDS] + [f[0] for f in ADVICE_FIELDS]
        for variable in (*waiting, ADVICE_UNCERTAINTY, *HISTORY):
            await self._set(self.nid(name, variable), ua.DataValue(ua.Variant(), StatusCode=_WAITING))
        node = server.get_node(self.nid(name))
        for method, (inputs, outputs) in _ARGUMENTS.items():
            await node.add_method(
                self.nid(name, method), ua.QualifiedName(method, self.ns),
                for_role(METHOD_ROLES[method], f"{name}.{method}", self._method(name, method)),
                [_argument(*a) for a in inputs], [_argument(*a) for a in outputs],
            )  # fmt: skip

    async def _remove(self, name: str) -> None:
        server = self.server
        assert server is not None
        nodes = self.nodes.pop(name)
        for variable in HISTORY:
            self.history.nodes.pop(self.nid(name, variable), None)
        await server.delete_nodes([server.get_node(nodes.object)], recursive=True)
        log.info("portfolio %s no longer over OPC UA", name)

    def _variable(
        self, name: str, browse: str, vtype: ua.VariantType, unit: str | None, description: str,
        *, historizing: bool = False,
    ) -> list[ua.AddNodesItem]:  # fmt: skip
        """A variable of a portfolio: an AnalogUnitType with EngineeringUnits if it has a unit
        (OPC 10000-8 §5.3.2: the unit is known, a range is not), else a BaseDataVariable."""
        node_id = self.nid(name, browse)
        analog = unit is not None
        type_def = ua.NodeId(ua.ObjectIds.AnalogUnitType if analog else ua.ObjectIds.BaseDataVariableType)
        items = [
            variable_item(self.nid(name), node_id, browse, self.ns, ua.Variant(),
                          data_type=_DATA_TYPE[vtype], type_def=type_def, description=description,
                          historizing=historizing)
        ]  # fmt: skip
        if unit is not None:
            items.append(
                variable_item(node_id, self.nid(name, browse, "EngineeringUnits"), "EngineeringUnits",
                              self.ns, ua.Variant(eu_information(unit)), data_type=ua.ObjectIds.EUInformation,
                              type_def=ua.NodeId(ua.ObjectIds.PropertyType), description=f"{unit or 'one'}",
                              prop=True)
            )  # fmt: skip
        return items

    # -- methods ----------------------------------------------------------------------------

    def _method(self, name: str, method: str) -> MethodCall:
        call = {
            "RegisterSchedule": self._register,
            "ComputeAdvice": self._compute_advice,
            "ReadSchedule": self._read_schedule,
        }[method]

        async def bound(parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
            nodes = self.nodes.get(name)
            if nodes is None or parent != nodes.object:
                # asyncua calls any method on any object: this one is its portfolio's only.
                err = ArgumentError(-1, ua.StatusCodes.BadMethodInvalid, f"not a method of {parent}",
                                    ua.StatusCodes.BadMethodInvalid)  # fmt: skip
                return refused(err, len(args))
            return await call(name, *args)

        return bound

    async def _register(self, name: str, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
        try:
            day, values, unit, replace_flag = register_arguments(args)
            try:
                profile, _replaced = await self.service.register_schedule(
                    name, day, values, unit, replace=replace_flag
                )
            except MarketInputError as err:
                raise from_market_error(err, REGISTER_ARGUMENTS) from err
            except (StorageError, KeyError) as err:
                raise unavailable(err) from err
        except ArgumentError as err:
            log.info("RegisterSchedule by %s refused: %s", caller(), err)
            return refused(err, len(args))
        log.info("RegisterSchedule by %s: %s %s, %d periods", caller(), name, day, len(profile.energy_kwh))
        return register_outputs(profile)

    async def _compute_advice(self, name: str, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
        try:
            count(args, 1)
            moment = time_argument(args, 0)
            try:
                advice = await self.service.advice(name, moment)
            except MarketInputError as err:
                raise from_market_error(err, ("time",)) from err
            except (StorageError, KeyError) as err:
                raise unavailable(err) from err
        except ArgumentError as err:
            return refused(err, len(args))
        return advice_outputs(replace(advice.advice, text=advice.text))

    async def _read_schedule(self, name: str, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
        try:
            count(args, 1)
            day = day_argument(args, 0)
            try:
                calendar = self.service.portfolio(name).calendar
                profile = await self.service.schedule(name, day)
            except (StorageError, KeyError) as err:
                raise unavailable(err) from err
            if profile is None:
                raise ArgumentError(0, ua.StatusCodes.BadNoData, f"no schedule registered for {day}",
                                    ua.StatusCodes.BadNoData)  # fmt: skip
        except ArgumentError as err:
            return refused(err, len(args))
        return profile_outputs([p.start for p in calendar.periods(day)], profile)


def _argument(name: str, data_type: int, rank: int, description: str) -> ua.Argument:
    return ua.Argument(
        Name=name,
        DataType=ua.NodeId(data_type),
        ValueRank=rank,
        ArrayDimensions=[0] if rank == _ARRAY else [],
        Description=ua.LocalizedText(description),
    )


def _record_value(record: AggregateRecord, now: datetime) -> ua.DataValue:
    return ua.DataValue(ua.Variant(record.mean_kw, ua.VariantType.Double), SourceTimestamp=record.start,
                        ServerTimestamp=now)  # fmt: skip


# -- history --------------------------------------------------------------------------------


class RecordHistory(ReadOnlyHistory):
    """The historized variables' values: the portfolio's aggregate records in the database."""

    WRITER = "the portfolio service writes the aggregate records"

    def __init__(self, service: PortfolioService) -> None:
        super().__init__(PAGE_LIMIT)
        self.service = service
        #: Node -> (portfolio, the records' seconds).
        self.nodes: dict[ua.NodeId, tuple[str, int]] = {}

    async def read_node_history(
        self, node_id: ua.NodeId, start: datetime | None, end: datetime | None, nb_values: int
    ) -> tuple[list[ua.DataValue], datetime | None]:
        """The interface's plain raw read (for other callers): the values and the next
        record's time, or None when there are no more."""
        values, following = await self.read(node_id, window(start, end), nb_values)
        if following is None:
            return values, None
        return values, following.high - _TICK if following.reverse else following.low

    async def read(
        self, node_id: ua.NodeId, span: Window, nb_values: int
    ) -> tuple[list[ua.DataValue], Window | None]:
        """The records of ``span`` (at most ``nb_values``, 0: :data:`PAGE_LIMIT`) and, if
        more are left, the window they are in (the continuation point)."""
        where = self.nodes.get(node_id)
        if where is None:
            raise HistoryFault(ua.StatusCodes.BadHistoryOperationUnsupported)
        name, seconds = where
        limit = min(nb_values, PAGE_LIMIT) if nb_values > 0 else PAGE_LIMIT
        read = self._reverse if span.reverse else self._forward
        found = await read(name, seconds, span.low, span.high, limit + 1)
        values = [
            ua.DataValue(ua.Variant(r.mean_kw, ua.VariantType.Double), SourceTimestamp=r.start)
            for r in found[:limit]
        ]
        if len(found) <= limit:
            return values, None
        following = found[limit].start
        if span.reverse:
            return values, replace(span, high=following + _TICK)
        return values, replace(span, low=following)

    async def _forward(
        self, name: str, seconds: int, lo: datetime, hi: datetime, wanted: int
    ) -> list[AggregateRecord]:
        """The first ``wanted`` records in [lo, hi), read in growing windows (a record per
        ``seconds`` at most: the first window holds them unless the history has gaps)."""
        out: list[AggregateRecord] = []
        span = timedelta(seconds=seconds * wanted)
        while lo < hi and len(out) < wanted:
            upto = min(hi, lo + span)
            out += await self.service.history(name, seconds, lo, upto)
            lo, span = upto, span * 2
        return out[:wanted]

    async def _reverse(
        self, name: str, seconds: int, lo: datetime, hi: datetime, wanted: int
    ) -> list[AggregateRecord]:
        """The last ``wanted`` records in [lo, hi), newest first, in growing windows."""
        out: list[AggregateRecord] = []
        span = timedelta(seconds=seconds * wanted)
        while lo < hi and len(out) < wanted:
            since = max(lo, hi - span)
            out += reversed(await self.service.history(name, seconds, since, hi))
            hi, span = since, span * 2
        return out[:wanted]


@dataclass(frozen=True, slots=True)
class Window:
    """What a raw read reads: the records in [low, high), oldest or (reverse) newest first."""

    low: datetime
    high: datetime
    reverse: bool

    _POINT = struct.Struct("<?qq")

    def point(self) -> bytes:
        """The continuation point: this window itself (nothing is held for the client)."""
        return self._POINT.pack(self.reverse, to_micros(self.low), to_micros(self.high))

    @classmethod
    def of_point(cls, point: bytes) -> Window:
        try:
            reverse, low, high = cls._POINT.unpack(point)
        except struct.error:
            raise HistoryFault(ua.StatusCodes.BadContinuationPointInvalid) from None
        return cls(from_micros(low), from_micros(high), bool(reverse))


def window(start: datetime | None, end: datetime | None) -> Window:
    """A raw read's window (OPC 10000-11 §6.4.3.2): forward from StartTime (included) to
    EndTime (excluded) or open; in reverse when StartTime is after EndTime (StartTime
    included, EndTime not) or not given (newest first, before EndTime)."""
    begin, finish = request_time(start), request_time(end)
    if begin is None and finish is None:
        raise HistoryFault(ua.StatusCodes.BadHistoryOperationInvalid)
    if begin is None:
        assert finish is not None
        return Window(_EPOCH, finish, True)
    if finish is None or begin <= finish:
        return Window(begin, finish or _FOREVER, False)
    return Window(finish + _TICK, begin + _TICK, True)


class RecordHistoryManager(HistoryManager):  # type: ignore[misc]  # asyncua is untyped for mypy
    """asyncua's HistoryRead (raw, continuation points as the next record's time) with a
    status for what it does not do instead of an empty answer."""

    def __init__(self, iserver: Any, storage: RecordHistory) -> None:
        super().__init__(iserver)
        self.storage: RecordHistory = storage

    async def read_history(self, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        details = params.HistoryReadDetails
        results = []
        for rv in params.NodesToRead:
            if params.ReleaseContinuationPoints:
                results.append(
                    ua.HistoryReadResult(StatusCode=ua.StatusCode(ua.StatusCodes.Good))
                )  # stateless
            elif not isinstance(details, ua.ReadRawModifiedDetails) or details.IsReadModified:
                results.append(fault(ua.StatusCodes.BadHistoryOperationUnsupported))
            elif params.TimestampsToReturn == ua.TimestampsToReturn.Server:
                results.append(fault(ua.StatusCodes.BadTimestampNotSupported))  # records have one time
            elif rv.IndexRange:
                results.append(fault(ua.StatusCodes.BadIndexRangeNoData))  # scalar values only
            else:
                try:
                    result = await self._raw(details, rv)
                except HistoryFault as refusal:
                    results.append(fault(refusal.status))
                    continue
                except StorageError as err:
                    log.warning("HistoryRead of %s: %s", rv.NodeId.to_string(), err)
                    results.append(fault(ua.StatusCodes.BadResourceUnavailable))
                    continue
                results.append(result)
        return results

    async def _raw(
        self, details: ua.ReadRawModifiedDetails, rv: ua.HistoryReadValueId
    ) -> ua.HistoryReadResult:
        if rv.ContinuationPoint:
            span = Window.of_point(bytes(rv.ContinuationPoint))
        else:
            span = window(details.StartTime, details.EndTime)
        values, following = await self.storage.read(rv.NodeId, span, details.NumValuesPerNode)
        return ua.HistoryReadResult(
            StatusCode=ua.StatusCode(
                ua.StatusCodes.Good if values or following else ua.StatusCodes.GoodNoData
            ),
            ContinuationPoint=None if following is None else following.point(),
            HistoryData=ua.HistoryData(DataValues=values),
        )

    def update_history(self, params: ua.HistoryUpdateParameters) -> list[ua.HistoryUpdateResult]:
        return no_updates(params)


async def install_history(server: SmxServer, storage: RecordHistory) -> RecordHistoryManager:
    """Make ``storage`` answer the server's HistoryRead and say what it can do."""
    manager = RecordHistoryManager(server.iserver, storage)
    server.iserver.history_manager = manager
    await write_capabilities(server, CAPABILITIES)
    return manager


__all__: Sequence[str] = ("NAMESPACE", "PortfolioServer", "RecordHistory")
