"""The market services and external data in the address space (DESIGN §4, §6).

Layout (browse path -> string NodeId)::

    Objects/SMX/Meters/<meter>/Market    <meter>.Market            MarketServicesType
      State, Recommendation, ...         <meter>.Market.State      live advice, every second
      RegisterProfile(Day, Values, Unit, Replace) -> (Periods, TotalEnergy)
      ComputeAdvice(Time) -> (State, Recommendation, PeriodStart, ...)
      ReadProfile(Day) -> (PeriodStarts, Energy)
    Objects/SMX/ExternalData/<name>      SMX.ExternalData.<name>   ExternalValueType (writable)

Methods refuse bad arguments the way OPC 10000-4 §5.11.2 describes: the call's status is
BadInvalidArgument (malformed: wrong length, NaN, wrong type, day already notified) or
BadOutOfRange (infinite, beyond a limit, a past day), the offending argument's
InputArgumentResults entry says why (BadTypeMismatch, BadInvalidArgument,
BadOutOfRange) and its InputArgumentDiagnosticInfos entry carries the message as
AdditionalInfo. Nothing is stored then.

Writes to external values go through a gate in front of asyncua's attribute service, so
a value is validated (finite, inside its bounds) before anything changes and lands with
the same rules as a REST PUT; a refused write answers BadTypeMismatch or BadOutOfRange.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AttributeService

from gateway.clock import Clock
from gateway.errors import ArchiveError, MarketInputError
from gateway.market.advice import Advice
from gateway.market.desk import MarketDesk
from gateway.market.external import ExternalData, ExternalState, ExternalValue
from gateway.market.profiles import NotifiedProfile
from gateway.meter.model import Snapshot
from gateway.opcua.address_space import AddressSpace
from gateway.opcua.guard import SessionUser, caller
from gateway.opcua.ids import EXTERNAL_VALUE_TYPE, MARKET_SERVICES_TYPE
from gateway.opcua.methods import (
    ADVICE_FIELDS,
    NUMBERS,
    REGISTER_ARGUMENTS,
    ArgumentError,
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
from gateway.opcua.nodes import variable_item
from gateway.opcua.units import eu_information
from gateway.security.users import Role

log = logging.getLogger(__name__)


#: The least role that may call each method (DESIGN §8); anonymous sessions call none.
METHOD_ROLES = {"RegisterProfile": Role.OPERATOR, "ComputeAdvice": Role.VIEWER, "ReadProfile": Role.VIEWER}


class MarketNodes:
    """The market and external-data nodes, the methods behind them, and their updates."""

    def __init__(self, space: AddressSpace, desk: MarketDesk, external: ExternalData, clock: Clock) -> None:
        self.space = space
        self.server: Server = space.server
        self.desk = desk
        self.external = external
        self.clock = clock
        #: Market object NodeId -> meter id (methods are called on the object).
        self._meter_of: dict[ua.NodeId, str] = {}
        self._external_nodes: dict[str, ua.NodeId] = {}
        self._by_node: dict[ua.NodeId, str] = {}
        self._stale: dict[str, bool | None] = {}

    # -- building ----------------------------------------------------------------------------

    async def add_market(self, meter_id: str) -> ua.NodeId:
        """``<meter>/Market``: the live advice, the profile days and the three methods."""
        space = self.space
        meter = self.server.get_node(space.nid(meter_id))
        market = await meter.add_object(
            space.nid(f"{meter_id}.Market"), ua.QualifiedName("Market", space.ns),
            objecttype=ua.NodeId(MARKET_SERVICES_TYPE, space.ns),
        )  # fmt: skip
        self._meter_of[market.nodeid] = meter_id
        for name, _vtype, unit, _take in ADVICE_FIELDS:
            node = self.server.get_node(space.nid(f"{meter_id}.Market.{name}"))
            if unit:
                await node.add_property(
                    ua.NodeId(f"{meter_id}.Market.{name}.EngineeringUnits", space.ns),
                    ua.QualifiedName("EngineeringUnits", 0), eu_information(unit),
                    datatype=ua.ObjectIds.EUInformation,
                )  # fmt: skip
            await node.write_value(ua.DataValue(ua.Variant(), StatusCode=_WAITING))
        minutes = self.server.get_node(space.nid(f"{meter_id}.Market.PeriodMinutes"))
        await minutes.write_value(ua.Variant(self.desk.calendar.period_minutes, ua.VariantType.UInt32))
        await self.write_days(meter_id, await self.desk.days(meter_id))
        for name, call in (
            ("RegisterProfile", self._register),
            ("ComputeAdvice", self._compute_advice),
            ("ReadProfile", self._read_profile),
        ):
            node = self.server.get_node(space.nid(f"{meter_id}.Market.{name}"))
            self.server.link_method(node, for_role(METHOD_ROLES[name], f"{meter_id}.Market.{name}", call))
        return market.nodeid

    async def add_external(self) -> None:
        """``SMX/ExternalData/<name>`` for each configured external value, writable."""
        space = self.space
        folder = self.server.get_node(space.nid("SMX.ExternalData"))
        for name, config in self.external.configs.items():
            nid = space.nid(f"SMX.ExternalData.{name}")
            prop = ua.NodeId(ua.ObjectIds.PropertyType)
            key = f"SMX.ExternalData.{name}"
            items = [
                variable_item(
                    folder.nodeid, nid, name, space.ns, ua.Variant(), data_type=ua.ObjectIds.Double,
                    type_def=ua.NodeId(EXTERNAL_VALUE_TYPE, space.ns), description=config.description or name,
                    writable=True,
                ),
                variable_item(
                    nid, space.nid(f"{key}.EngineeringUnits"), "EngineeringUnits", space.ns,
                    ua.Variant(eu_information(config.unit)), data_type=ua.ObjectIds.EUInformation,
                    type_def=prop, prop=True,
                ),
                variable_item(
                    nid, space.nid(f"{key}.FreshFor"), "FreshFor", space.ns,
                    ua.Variant(config.fresh_s, ua.VariantType.Double), data_type=ua.ObjectIds.Double,
                    type_def=prop, prop=True,
                    description="Seconds a value stays fresh after its time.",
                ),
                variable_item(
                    nid, space.nid(f"{key}.Origin"), "Origin", space.ns,
                    ua.Variant("", ua.VariantType.String), data_type=ua.ObjectIds.String, type_def=prop,
                    prop=True,
                    description="Where the value came from: rest, opcua or the source.",
                ),
            ]  # fmt: skip
            for item, result in zip(items, await self.server.iserver.isession.add_nodes(items), strict=True):
                if not result.StatusCode.is_good():
                    raise RuntimeError(f"adding {item.BrowseName} failed: {result.StatusCode}")
            node = self.server.get_node(nid)
            await node.write_value(ua.DataValue(ua.Variant(), StatusCode=_WAITING))
            self._external_nodes[name] = nid
            self._by_node[nid] = name
            self._stale[name] = None
        self.external.subscribe(self._on_external)
        gate = _WriteGate(self.server.iserver.aspace, self._write_external)
        self.server.iserver.attribute_service = gate

    # -- updating ----------------------------------------------------------------------------

    async def on_advice(self, snapshot: Snapshot, advice: Advice) -> None:
        """The market desk's advice listener (the latest advice of each meter)."""
        await self.write_advice(snapshot.meter_id, advice)

    async def write_advice(self, meter_id: str, advice: Advice) -> None:
        for name, dv in advice_values(advice, self.clock.now()):
            await self.server.write_attribute_value(self.space.nid(f"{meter_id}.Market.{name}"), dv)

    async def write_days(self, meter_id: str, days: Sequence[date]) -> None:
        texts = [d.isoformat() for d in days]
        await self.server.write_attribute_value(
            self.space.nid(f"{meter_id}.Market.NotifiedDays"),
            ua.DataValue(ua.Variant(texts, ua.VariantType.String, is_array=True)),
        )

    async def on_profile(self, meter_id: str, profile: NotifiedProfile) -> None:
        await self.write_days(meter_id, await self.desk.days(meter_id))

    def _on_external(self, value: ExternalValue) -> None:
        # Called inside ExternalData.put; the node is written by refresh_external right after.
        self._stale[value.name] = None

    async def refresh_external(self) -> None:
        """Write each external value whose value or staleness changed since the last call."""
        now = self.clock.now()
        for state in self.external.states(now):
            name = state.config.name
            if state.value is None or self._stale.get(name) == state.stale:
                continue
            self._stale[name] = state.stale
            await self._write_external_state(state, now)

    async def _write_external_state(self, state: ExternalState, now: datetime) -> None:
        assert state.value is not None
        name = state.config.name
        status = ua.StatusCode(
            ua.StatusCodes.UncertainLastUsableValue if state.stale else ua.StatusCodes.Good
        )
        dv = ua.DataValue(
            ua.Variant(state.value.value, ua.VariantType.Double),
            StatusCode=status,
            SourceTimestamp=state.value.time,
            ServerTimestamp=now,
        )
        await self.server.write_attribute_value(self._external_nodes[name], dv)
        origin = ua.Variant(state.value.origin, ua.VariantType.String)
        await self.server.write_attribute_value(
            self.space.nid(f"SMX.ExternalData.{name}.Origin"), ua.DataValue(origin)
        )

    async def _write_external(self, node_id: ua.NodeId, dv: ua.DataValue) -> ua.StatusCode | None:
        """The gate's handler: None for nodes that are not external values."""
        name = self._by_node.get(node_id)
        if name is None:
            return None
        variant = dv.Value
        if variant is None or variant.VariantType not in NUMBERS or isinstance(variant.Value, list):
            return ua.StatusCode(ua.StatusCodes.BadTypeMismatch)
        now = self.clock.now()
        try:
            self.external.put(name, variant.Value, now=now, time=dv.SourceTimestamp, origin="opcua")
        except MarketInputError as err:
            log.info("write to external value %s refused: %s", name, err)
            return ua.StatusCode(ua.StatusCodes.BadOutOfRange)
        await self.refresh_external()
        return ua.StatusCode()

    # -- methods -----------------------------------------------------------------------------

    def _meter(self, parent: ua.NodeId) -> str:
        meter_id = self._meter_of.get(parent)
        if meter_id is None:
            raise ArgumentError(-1, ua.StatusCodes.BadNodeIdInvalid, "not a Market object",
                                ua.StatusCodes.BadNodeIdInvalid)  # fmt: skip
        return meter_id

    async def _register(self, parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
        try:
            meter_id = self._meter(parent)
            day, values, unit, replace = register_arguments(args)
            try:
                profile, _replaced = await self.desk.register(meter_id, day, values, unit, replace=replace)
            except MarketInputError as err:
                raise from_market_error(err, REGISTER_ARGUMENTS) from err
            except ArchiveError as err:
                raise unavailable(err) from err
        except ArgumentError as err:
            log.info("RegisterProfile by %s refused: %s", caller(), err)
            return refused(err, len(args))
        log.info("RegisterProfile by %s: %s %s, %d periods", caller(), meter_id, day, len(profile.energy_kwh))
        return register_outputs(profile)

    async def _compute_advice(
        self, parent: ua.NodeId, *args: ua.Variant
    ) -> ua.CallMethodResult | list[ua.Variant]:
        try:
            meter_id = self._meter(parent)
            count(args, 1)
            moment = time_argument(args, 0)
            try:
                advice = await self.desk.advice_at(meter_id, moment)
            except MarketInputError as err:
                raise from_market_error(err, ("time",)) from err
        except ArgumentError as err:
            return refused(err, len(args))
        return advice_outputs(advice)

    async def _read_profile(
        self, parent: ua.NodeId, *args: ua.Variant
    ) -> ua.CallMethodResult | list[ua.Variant]:
        try:
            meter_id = self._meter(parent)
            count(args, 1)
            day = day_argument(args, 0)
            try:
                profile = await self.desk.load(meter_id, day)
            except ArchiveError as err:
                raise unavailable(err) from err
            if profile is None:
                raise ArgumentError(
                    0, ua.StatusCodes.BadNoData, f"no profile notified for {day}", ua.StatusCodes.BadNoData
                )
        except ArgumentError as err:
            return refused(err, len(args))
        return profile_outputs([p.start for p in self.desk.calendar.periods(day)], profile)


_WAITING = ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData)


#: asyncua's own default for writes without a session (the server itself).
_SERVER_USER = User(role=UserRole.Admin)
WriteHandler = Callable[[ua.NodeId, ua.DataValue], Awaitable["ua.StatusCode | None"]]


class _WriteGate(AttributeService):  # type: ignore[misc]  # asyncua is untyped for mypy
    """asyncua's attribute service with writes to external values routed through validation."""

    def __init__(self, aspace: Any, handler: WriteHandler) -> None:
        super().__init__(aspace)
        self._handler = handler

    async def write(self, params: ua.WriteParameters, user: User = _SERVER_USER) -> list[ua.StatusCode]:
        results: list[ua.StatusCode] = []
        for item in params.NodesToWrite:
            status = None
            if isinstance(user, SessionUser) and (user.access is None or user.access < Role.OPERATOR):
                # Only sessions reach here with a SessionUser; the role ruleset refuses the
                # Write service below operator already, this keeps it true for every path.
                log.warning("OPC UA write refused to %s: needs the operator role", user)
                status = ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)
            elif item.AttributeId == ua.AttributeIds.Value:
                status = await self._handler(item.NodeId, item.Value)
            if status is None:
                status = (await super().write(ua.WriteParameters(NodesToWrite=[item]), user))[0]
            results.append(status)
        return results
