"""OPC UA Alarms & Conditions (OPC 10000-9) over the alarm service (gateway/alarms/).

asyncua hosts condition nodes and carries events, but has no condition behaviour; what
is missing is built here, the clauses cited:

* **Condition instances** (5.5.2): one object of the alarm's standard type
  (``OffNormalAlarmType``, ``ExclusiveLimitAlarmType``, ...) per condition, in an
  ``Alarms`` folder below its source (the meter object, or the gateway object ``SMX``),
  with a ``HasCondition`` reference from the source (5.12 / 4.10).
* **Events**: every notification of the service is an event of the condition's type with
  the condition's fields (EventId, ConditionId, ConditionName, BranchId null, Retain,
  EnabledState, ActiveState, AckedState, ConfirmedState with their Ids and transition
  times, Severity, LastSeverity, Message, Comment, ClientUserId, Quality, and LimitState
  of the limit alarms), raised by the source object and by the Server object (clients
  such as UaExpert and node-opcua's alarm list subscribe to the Server object; asyncua
  does not pass events up the notifier hierarchy by itself).
* **Acknowledge / Confirm / AddComment** (5.7.3, 5.7.4, 5.5.5): callable on the condition
  (its own method nodes) and with the type's method and the ConditionId as ObjectId, as
  the standard allows; the operator role is needed (a viewer gets BadUserAccessDenied),
  the comment and the user are recorded; a wrong EventId answers BadEventIdUnknown.
* **ConditionRefresh / ConditionRefresh2** (5.5.7, 5.5.8, 4.5): RefreshStartEvent, the
  retained conditions' last events unchanged (same EventId and Time, 5.5.3), then
  RefreshEndEvent, to the calling session's own subscription only
  (BadSubscriptionIdInvalid otherwise).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from asyncua import Node, ua
from asyncua.common import events as ua_events

from gateway.alarms.condition import ConditionError, Notification, new_event_id
from gateway.alarms.service import GATEWAY, AlarmService
from gateway.alarms.table import (
    CERTIFICATE_EXPIRATION,
    EXCLUSIVE_DEVIATION,
    EXCLUSIVE_LIMIT,
    OFF_NORMAL,
    SYSTEM_OFF_NORMAL,
)
from gateway.opcua.address_space import AddressSpace
from gateway.opcua.guard import caller, caller_session
from gateway.opcua.history import ArchiveHistory
from gateway.security.users import Role

log = logging.getLogger(__name__)

TYPES = {
    OFF_NORMAL: ua.ObjectIds.OffNormalAlarmType,
    SYSTEM_OFF_NORMAL: ua.ObjectIds.SystemOffNormalAlarmType,
    EXCLUSIVE_LIMIT: ua.ObjectIds.ExclusiveLimitAlarmType,
    EXCLUSIVE_DEVIATION: ua.ObjectIds.ExclusiveDeviationAlarmType,
    CERTIFICATE_EXPIRATION: ua.ObjectIds.CertificateExpirationAlarmType,
}
#: ExclusiveLimitStateMachineType's states (5.8.18.3).
LIMIT_STATES = {
    "HighHigh": ua.ObjectIds.ExclusiveLimitStateMachineType_HighHigh,
    "High": ua.ObjectIds.ExclusiveLimitStateMachineType_High,
    "Low": ua.ObjectIds.ExclusiveLimitStateMachineType_Low,
    "LowLow": ua.ObjectIds.ExclusiveLimitStateMachineType_LowLow,
}
#: Condition classes (5.9): the gateway's own alarms are the system's, the meters' the process's.
SYSTEM_CLASS = (ua.ObjectIds.SystemConditionClassType, "System")
PROCESS_CLASS = (ua.ObjectIds.ProcessConditionClassType, "Process")
METHODS = {
    "Acknowledge": ua.ObjectIds.AcknowledgeableConditionType_Acknowledge,
    "Confirm": ua.ObjectIds.AcknowledgeableConditionType_Confirm,
    "AddComment": ua.ObjectIds.ConditionType_AddComment,
}
REFRESH = (ua.ObjectIds.ConditionType_ConditionRefresh, ua.ObjectIds.ConditionType_ConditionRefresh2)
#: Fields asyncua declares with a NodeId for a type; they are sent with these variant types.
_TIMES = ("ActiveState/TransitionTime", "AckedState/TransitionTime", "ConfirmedState/TransitionTime",
          "EnabledState/TransitionTime")  # fmt: skip
_SERVER = ua.NodeId(ua.ObjectIds.Server)


class AlarmNodes:
    """The conditions' nodes, events and methods (see the module's docstring)."""

    def __init__(
        self, space: AddressSpace, service: AlarmService, history: ArchiveHistory | None = None
    ) -> None:
        self.space = space
        self.service = service
        self.history = history
        self.server = space.server
        #: (source, condition name) -> its node, its event object, its source node.
        self.nodes: dict[tuple[str, str], ua.NodeId] = {}
        self._by_node: dict[ua.NodeId, tuple[str, str]] = {}
        self._events: dict[tuple[str, str], Any] = {}
        self._sources: dict[str, ua.NodeId] = {}
        self._refresh: dict[int, Any] = {}
        self._classes: dict[ua.NodeId, type[Any]] = {}

    async def add(self, sources: Mapping[str, ua.NodeId]) -> None:
        """Nodes for every condition of the service; ``sources`` maps a meter id to its object
        (the gateway's conditions go below the gateway object)."""
        with _subtypes_remembered(self.server):
            await self._add(sources)

    async def _add(self, sources: Mapping[str, ua.NodeId]) -> None:
        self._sources = {**sources, GATEWAY: self.space.nid("SMX")}
        isession = self.server.iserver.isession
        folders: dict[str, Node] = {}
        refs = []
        generates: set[tuple[ua.NodeId, ua.NodeId]] = set()
        for condition in self.service.conditions():
            n = condition.state
            source = self._sources[n.source]
            if n.source not in folders:
                folder_id = self.space.nid(f"{_prefix(n.source)}.Alarms")
                folders[n.source] = await self.server.get_node(source).add_folder(
                    folder_id, ua.QualifiedName("Alarms", self.space.ns)
                )
            type_id = ua.NodeId(TYPES[n.type_name])
            node = await folders[n.source].add_object(
                self.space.nid(f"{_prefix(n.source)}.Alarms.{n.condition}"),
                ua.QualifiedName(n.condition, self.space.ns),
                objecttype=type_id,
            )
            key = (n.source, n.condition)
            self.nodes[key] = node.nodeid
            self._by_node[node.nodeid] = key
            refs.append(_reference(source, node.nodeid, ua.ObjectIds.HasCondition))
            if (source, type_id) not in generates:
                generates.add((source, type_id))
                refs.append(_reference(source, type_id, ua.ObjectIds.GeneratesEvent))
            self._events[key] = await self._event_object(type_id, node.nodeid)
            methods = await node.get_children(
                refs=ua.ObjectIds.HasComponent, nodeclassmask=ua.NodeClass.Method
            )
            for child in methods:
                name = (await child.read_browse_name()).Name
                if name in METHODS:
                    self.server.link_method(child, self._method(name))
        for result in await isession.add_references(refs):
            result.check()
        for name, method_id in METHODS.items():  # called with the ConditionId as ObjectId
            self.server.link_method(self.server.get_node(ua.NodeId(method_id)), self._method(name))
        for method_id in REFRESH:
            self.server.link_method(self.server.get_node(ua.NodeId(method_id)), self._condition_refresh)
        for etype in (ua.ObjectIds.RefreshStartEventType, ua.ObjectIds.RefreshEndEventType):
            self._refresh[etype] = await ua_events.get_event_obj_from_type_node(
                self.server.get_node(ua.NodeId(etype))
            )
            self._refresh[etype].emitting_node = _SERVER
            self._refresh[etype].SourceNode = _SERVER
            self._refresh[etype].SourceName = "Server"
        for node_id in self._sources.values():
            await _add_notifier(self.server.get_node(node_id), ua.EventNotifier.SubscribeToEvents.mask)
        # The alarm journal is the event history of the Server object and the gateway object
        # (OPC 10000-11 4.3: HistoryRead on their EventNotifier).
        journal = self.service.journal
        if self.history is not None and journal is not None:

            def read(start: datetime | None, end: datetime | None) -> list[Notification]:
                return list(journal.read(start, end))

            for node_id in (_SERVER, self._sources[GATEWAY]):
                self.history.alarm_sources[node_id] = (read, self.event_of)
                notifier = ua.EventNotifier.SubscribeToEvents.mask | ua.EventNotifier.HistoryRead.mask
                await _add_notifier(self.server.get_node(node_id), notifier)
        else:
            await _add_notifier(self.server.get_node(_SERVER), ua.EventNotifier.SubscribeToEvents.mask)
        self.service.listeners.append(self.on_notification)

    async def _event_object(self, type_id: ua.NodeId, condition: ua.NodeId) -> Any:
        if type_id not in self._classes:
            prototype = await ua_events.get_event_obj_from_type_node(self.server.get_node(type_id))
            self._classes[type_id] = type(prototype)
        return self._new_event(self._classes[type_id], condition)

    @staticmethod
    def _new_event(cls: type[Any], condition: ua.NodeId) -> Any:
        event = cls()
        event.add_property("NodeId", condition, ua.VariantType.NodeId)  # the ConditionId
        for name in _TIMES:
            event.add_property(name, None, ua.VariantType.DateTime)
        event.add_property("LimitState/CurrentState", None, ua.VariantType.LocalizedText)
        event.add_property("LimitState/CurrentState/Id", None, ua.VariantType.NodeId)
        return event

    def event_of(self, n: Notification) -> Any:
        """A new event object of the notification (event history: read in worker threads,
        never the live object); None for a condition no longer configured."""
        live = self._events.get((n.source, n.condition))
        if live is None:
            return None
        return self._fill(n, self._new_event(type(live), self.nodes[(n.source, n.condition)]))

    def _fill(self, n: Notification, event: Any = None) -> Any:
        event = self._events[(n.source, n.condition)] if event is None else event
        system = n.source == GATEWAY or n.condition == "CommunicationLost"
        cls_id, cls_name = SYSTEM_CLASS if system else PROCESS_CLASS
        event.EventId = n.event_id
        event.Time = n.time
        event.ReceiveTime = self.space.clock.now()
        event.Message = ua.LocalizedText(n.message)
        event.Severity = n.severity
        event.SourceNode = self._sources[n.source]
        event.SourceName = n.source
        event.ConditionName = n.condition
        event.ConditionClassId = ua.NodeId(cls_id)
        event.ConditionClassName = ua.LocalizedText(cls_name)
        event.BranchId = ua.NodeId()
        event.Retain = n.retain
        event.LastSeverity = n.last_severity
        event.Comment = ua.LocalizedText(n.comment)
        event.ClientUserId = n.user
        event.Quality = ua.StatusCode(getattr(ua.StatusCodes, n.quality, ua.StatusCodes.Good))
        _two_state(event, "EnabledState", True, "Enabled", "Disabled", None)
        _two_state(event, "ActiveState", n.active, "Active", "Inactive", n.active_changed)
        _two_state(event, "AckedState", n.acked, "Acknowledged", "Unacknowledged", n.acked_at)
        _two_state(event, "ConfirmedState", n.confirmed, "Confirmed", "Unconfirmed", None)
        limit = LIMIT_STATES.get(n.limit)
        setattr(event, "LimitState/CurrentState", ua.LocalizedText(n.limit) if limit else None)
        setattr(event, "LimitState/CurrentState/Id", ua.NodeId(limit) if limit else None)
        return event

    async def on_notification(self, n: Notification) -> None:
        """Raise the notification as an event of its source and of the Server object."""
        event = self._fill(n)
        subscriptions = self.server.iserver.isession.subscription_service
        for emitter in (self._sources[n.source], _SERVER):
            event.emitting_node = emitter
            await subscriptions.trigger_event(event)

    # -- methods -------------------------------------------------------------------------

    def _method(self, name: str) -> Any:
        async def call(parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult | ua.StatusCode:
            user = caller()
            key = self._by_node.get(parent)
            if key is None:
                return ua.StatusCode(ua.StatusCodes.BadNodeIdInvalid)  # not a condition (5.7.3)
            if user.access is None or user.access < Role.OPERATOR:
                log.warning("OPC UA %s of %s/%s refused to %s: needs the operator role", name, *key, user)
                return ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)
            if len(args) != 2:
                few = len(args) < 2
                return ua.StatusCode(
                    ua.StatusCodes.BadArgumentsMissing if few else ua.StatusCodes.BadTooManyArguments
                )
            event_id, comment = args[0].Value, args[1].Value
            fits = (isinstance(event_id, bytes), isinstance(comment, ua.LocalizedText | None))
            if not all(fits):
                good, mismatch = ua.StatusCodes.Good, ua.StatusCodes.BadTypeMismatch
                return ua.CallMethodResult(
                    StatusCode=ua.StatusCode(ua.StatusCodes.BadInvalidArgument),
                    InputArgumentResults=[ua.StatusCode(good if ok else mismatch) for ok in fits],
                )
            text = (comment.Text or "") if comment is not None else ""
            try:
                await self.service.answer(name, key[0], key[1], event_id, text, user.name or "")
            except ConditionError as err:
                log.info("OPC UA %s of %s/%s by %s: %s", name, *key, user, err)
                return ua.StatusCode(getattr(ua.StatusCodes, err.status))
            return ua.StatusCode(ua.StatusCodes.Good)

        return call

    async def _condition_refresh(self, parent: ua.NodeId, *args: ua.Variant) -> ua.StatusCode:
        """5.5.7 (and 5.5.8 with a MonitoredItemId): the retained conditions again, to each
        event item of the caller's subscription that watches their source or the Server
        object, once, bracketed by RefreshStart/RefreshEnd to every such item regardless of
        its where clause (4.5: the bracket is not filtered)."""
        if not args or not isinstance(args[0].Value, int):
            return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        subscriptions = self.server.iserver.isession.subscription_service
        sub = subscriptions.subscriptions.get(args[0].Value)
        if sub is None or sub.session_id != caller_session():
            return ua.StatusCode(ua.StatusCodes.BadSubscriptionIdInvalid)
        items = sub.monitored_item_srv
        watched = {mid: node for node, mids in items._monitored_events.items() for mid in mids}
        mid = args[1].Value if len(args) > 1 else None
        if mid is not None:
            if mid not in watched:
                return ua.StatusCode(ua.StatusCodes.BadMonitoredItemIdInvalid)
            watched = {mid: watched[mid]}
        await self._bracket(ua.ObjectIds.RefreshStartEventType, items, watched)
        for n in self.service.retained():
            event = self._fill(n)
            for item, node in watched.items():
                if node in (self._sources[n.source], _SERVER):
                    event.emitting_node = node
                    await _deliver(items, item, event, filtered=True)
        await self._bracket(ua.ObjectIds.RefreshEndEventType, items, watched)
        return ua.StatusCode(ua.StatusCodes.Good)

    async def _bracket(self, etype: int, items: Any, watched: dict[int, ua.NodeId]) -> None:
        event = self._refresh[etype]
        event.EventId = new_event_id()
        event.Time = event.ReceiveTime = self.space.clock.now()
        event.Severity = 1
        start = etype == ua.ObjectIds.RefreshStartEventType
        event.Message = ua.LocalizedText(f"ConditionRefresh {'start' if start else 'end'}")
        for item in watched:
            await _deliver(items, item, event, filtered=False)


async def _deliver(items: Any, mid: int, event: Any, *, filtered: bool) -> None:
    """One event to one monitored item of a subscription (asyncua's own path applies the
    where clause always and goes by the emitting node only)."""
    mdata = items._monitored_items.get(mid)
    if mdata is None or not isinstance(mdata.filter, ua.EventFilter):
        return
    if filtered and mdata.where_clause_evaluator is not None and not mdata.where_clause_evaluator.eval(event):
        return
    fields = ua.EventFieldList(
        ClientHandle=mdata.client_handle, EventFields=event.to_event_fields(mdata.filter.SelectClauses)
    )
    await items.isub.enqueue_event(mid, fields, mdata.queue_size)


@contextlib.contextmanager
def _subtypes_remembered(server: Any) -> Iterator[None]:
    """asyncua's Browse works out a reference type's subtypes (a walk down the reference type
    hierarchy) again for every reference it looks at; instantiating the conditions' types
    browses the types' children thousands of times, which made this two thirds of the
    gateway's start (1.2 of 1.7 s on a PC). While the conditions are added no reference type
    is, so each walk's answer is kept until the end of the block. Without asyncua's
    ``ViewService._get_sub_ref`` (another asyncua version) nothing is kept."""
    view = server.iserver.view_service
    walk = getattr(view, "_get_sub_ref", None)
    if walk is None:
        yield
        return
    known: dict[ua.NodeId, tuple[ua.NodeId, ...]] = {}

    def remembered(ref: ua.NodeId) -> Iterator[ua.NodeId]:
        if ref not in known:
            known[ref] = tuple(walk(ref))  # its recursion comes back here
        return iter(known[ref])

    view._get_sub_ref = remembered
    try:
        yield
    finally:
        del view._get_sub_ref


async def _add_notifier(node: Node, bits: int) -> None:
    """Set EventNotifier bits, keeping those set (a meter object's HistoryRead)."""
    current = await node.read_attribute(ua.AttributeIds.EventNotifier)
    value = (current.Value.Value or 0) if current.Value is not None else 0
    await node.write_attribute(
        ua.AttributeIds.EventNotifier, ua.DataValue(ua.Variant(value | bits, ua.VariantType.Byte))
    )


def _prefix(source: str) -> str:
    """The NodeId prefix of a source's nodes: the meter id, or ``SMX`` for the gateway."""
    return "SMX" if source == GATEWAY else source


def _two_state(event: Any, name: str, value: bool, true: str, false: str, since: datetime | None) -> None:
    setattr(event, name, ua.LocalizedText(true if value else false))
    setattr(event, f"{name}/Id", value)
    setattr(event, f"{name}/TransitionTime", since)  # None: not known (sent as null)


def _reference(source: ua.NodeId, target: ua.NodeId, ref_type: int) -> ua.AddReferencesItem:
    ref = ua.AddReferencesItem()
    ref.IsForward = True
    ref.ReferenceTypeId = ua.NodeId(ref_type)
    ref.SourceNodeId = source
    ref.TargetNodeId = target
    ref.TargetNodeClass = (
        ua.NodeClass.Object if ref_type == ua.ObjectIds.HasCondition else ua.NodeClass.ObjectType
    )
    return ref
