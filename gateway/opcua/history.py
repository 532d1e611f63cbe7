"""OPC UA Historical Access over the archive (OPC 10000-11; DESIGN §4): a translation.

What a history read means is decided in :mod:`gateway.archive.query`, for every adapter;
this module translates OPC UA's HistoryRead into those queries and their answers back:
the details structures into queries, unspecified times (DateTime minimum) into open
ends, refusals into StatusCodes, cursors into continuation points, results into
HistoryData packed by :mod:`gateway.opcua.history_codec`, and archived events into
MeterEventType events of the meter object with the client's select clauses, the ones its
where clause selects (:mod:`gateway.opcua.event_filter`, OPC 10000-4 §7.7; a clause with
an operator it does not know is refused with BadFilterOperatorUnsupported, never taken
as "everything").

:class:`ArchiveHistoryManager` answers every HistoryRead kind itself (asyncua's own
manager knows only ReadRaw and ReadEvent) and reads the next page ahead while the
client decodes this one. Continuation points are the queries' stateless cursors: a
client can abandon one without the server holding anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asyncua import Server, ua
from asyncua.common.events import Event, get_event_obj_from_type_node
from asyncua.server.history import HistoryManager

from gateway.archive import aggregates, query
from gateway.archive.aggregates import Config, Result
from gateway.archive.query import PAGE_LIMIT, ArchivedEvent, ArchiveQueries, Refusal, SeriesKey, Span
from gateway.events import describe
from gateway.opcua import event_filter
from gateway.opcua.history_codec import history_data, to_data_value
from gateway.opcua.history_read import (
    HistoryFault,
    ReadOnlyHistory,
    fault,
    no_updates,
    request_time,
    write_capabilities,
)

log = logging.getLogger(__name__)

#: Pages read ahead and kept for the continuation point that asks for them.
READ_AHEAD = 8
#: The status of each refusal of the archive's queries (OPC 10000-11 §6.3, 10000-4 §7.39).
REFUSALS: dict[Refusal, int] = {
    Refusal.NO_HISTORY: ua.StatusCodes.BadHistoryOperationUnsupported,
    Refusal.INVALID_RANGE: ua.StatusCodes.BadHistoryOperationInvalid,
    Refusal.BAD_CURSOR: ua.StatusCodes.BadContinuationPointInvalid,
    Refusal.UNKNOWN_AGGREGATE: ua.StatusCodes.BadAggregateNotSupported,
    Refusal.AGGREGATE_CONFIGURATION: ua.StatusCodes.BadAggregateConfigurationRejected,
    Refusal.INVALID_INTERVAL: ua.StatusCodes.BadInvalidArgument,
}
#: The standard AggregateFunction NodeIds (namespace 0) of the archive's aggregates.
AGGREGATE_NODES: dict[int, str] = {
    getattr(ua.ObjectIds, f"AggregateFunction_{name}"): name for name in aggregates.AGGREGATES
}


#: Reads the alarm journal: (from, to) -> notifications in time order (blocking).
AlarmRead = Callable[[datetime | None, datetime | None], list[Any]]


@dataclass(frozen=True, slots=True)
class EventSource:
    """A meter object whose events are the archived event log."""

    meter_id: str
    event_type: ua.NodeId


def _config(given: ua.AggregateConfiguration | None) -> Config:
    if given is None or given.UseServerCapabilitiesDefaults:
        return Config()
    return Config(percent_good=given.PercentDataGood, percent_bad=given.PercentDataBad)


class ArchiveHistory(ReadOnlyHistory):
    """The historized nodes and event sources: which archived series each one is."""

    WRITER = "SMX history is written by the archive recorder"

    def __init__(self, queries: ArchiveQueries) -> None:
        super().__init__(queries.page_limit)
        self.queries = queries
        self.nodes: dict[ua.NodeId, SeriesKey] = {}
        self.event_sources: dict[ua.NodeId, EventSource] = {}
        self._event_class: dict[ua.NodeId, type[Event]] = {}
        #: The server's address space, for OfType in where clauses (set with the first source).
        self._aspace: Any = None
        #: Nodes whose event history is the alarm journal: node -> (read, event of a notification).
        self.alarm_sources: dict[ua.NodeId, tuple[AlarmRead, Callable[[Any], Event | None]]] = {}

    def add_node(self, node_id: ua.NodeId, series: SeriesKey) -> None:
        self.nodes[node_id] = series

    async def add_event_source(self, server: Server, source: ua.NodeId, es: EventSource) -> None:
        self._aspace = server.iserver.aspace
        if es.event_type not in self._event_class:
            prototype = await get_event_obj_from_type_node(server.get_node(es.event_type))
            self._event_class[es.event_type] = type(prototype)
        self.event_sources[source] = es

    async def read_node_history(
        self, node_id: ua.NodeId, start: datetime | None, end: datetime | None, nb_values: int
    ) -> tuple[list[ua.DataValue], datetime | None]:
        """The interface's plain raw read (forward or reverse, no bounds), for other callers."""
        details = ua.ReadRawModifiedDetails(StartTime=start, EndTime=end, NumValuesPerNode=nb_values)
        values, _point = await asyncio.to_thread(self.read_raw, node_id, details, None)
        return [to_data_value(r) for r in values], None

    def _series(self, node_id: ua.NodeId) -> SeriesKey:
        series = self.nodes.get(node_id)
        if series is None:
            raise HistoryFault(ua.StatusCodes.BadHistoryOperationUnsupported)
        return series

    # -- the read kinds: details -> query -> answer ------------------------------------

    def read_raw(
        self, node_id: ua.NodeId, details: ua.ReadRawModifiedDetails, point: bytes | None
    ) -> tuple[list[Result], bytes | None]:
        span = Span(request_time(details.StartTime), request_time(details.EndTime), details.NumValuesPerNode)
        raw = query.RawQuery(self._series(node_id), span, bounds=bool(details.ReturnBounds))
        page = _answer(self.queries.raw, raw, point)
        return page.values, page.cursor

    def read_processed(
        self,
        node_id: ua.NodeId,
        details: ua.ReadProcessedDetails,
        aggregate: ua.NodeId,
        point: bytes | None,
    ) -> tuple[list[Result], bytes | None]:
        series = self._series(node_id)
        name = AGGREGATE_NODES.get(aggregate.Identifier) if aggregate.NamespaceIndex == 0 else None
        if name is None:
            raise HistoryFault(ua.StatusCodes.BadAggregateNotSupported)
        start, end = request_time(details.StartTime), request_time(details.EndTime)
        if start is None or end is None:
            raise HistoryFault(ua.StatusCodes.BadHistoryOperationInvalid)
        if details.ProcessingInterval < 0:
            raise HistoryFault(ua.StatusCodes.BadInvalidArgument)
        processed = query.ProcessedQuery(
            series, start, end, name, timedelta(milliseconds=details.ProcessingInterval),
            _config(details.AggregateConfiguration),
        )  # fmt: skip
        page = _answer(self.queries.processed, processed, point)
        return page.values, page.cursor

    def read_at_time(
        self, node_id: ua.NodeId, details: ua.ReadAtTimeDetails, point: bytes | None
    ) -> tuple[list[Result], bytes | None]:
        series = self._series(node_id)
        times = [request_time(t) for t in details.ReqTimes]
        if not times or any(t is None for t in times):
            raise HistoryFault(ua.StatusCodes.BadHistoryOperationInvalid)
        at_time = query.AtTimeQuery(series, tuple(t for t in times if t is not None))
        page = _answer(self.queries.at_time, at_time, point)
        return page.values, page.cursor

    def read_events(
        self, source: ua.NodeId, details: ua.ReadEventDetails, point: bytes | None
    ) -> tuple[list[ua.HistoryEventFieldList], bytes | None]:
        if source in self.alarm_sources:
            return self._alarm_events(source, details, point)
        es = self.event_sources.get(source)
        if es is None:
            raise HistoryFault(ua.StatusCodes.BadHistoryOperationUnsupported)
        select = list(details.Filter.SelectClauses) if details.Filter is not None else []
        span = Span(request_time(details.StartTime), request_time(details.EndTime), details.NumValuesPerNode)
        event_class = self._event_class[es.event_type]
        where = self._where(details)

        def keep(e: ArchivedEvent) -> bool:
            return where(_event(event_class, es, source, e))

        question = query.EventQuery(es.meter_id, span, context=repr((select, details.Filter)), keep=keep)
        page = _answer(self.queries.events, question, point)
        fields = [
            ua.HistoryEventFieldList(EventFields=_event(event_class, es, source, e).to_event_fields(select))
            for e in page.events
        ]
        return fields, page.cursor

    def _alarm_events(
        self, source: ua.NodeId, details: ua.ReadEventDetails, point: bytes | None
    ) -> tuple[list[ua.HistoryEventFieldList], bytes | None]:
        """The alarm journal's notifications in the span (forward or reverse), paged: the
        continuation point is the EventId of the first one not returned, checked against
        the question it continues."""
        read, to_event = self.alarm_sources[source]
        select = list(details.Filter.SelectClauses) if details.Filter is not None else []
        where = self._where(details)
        span = Span(request_time(details.StartTime), request_time(details.EndTime), details.NumValuesPerNode)
        try:
            reverse, first, last = span.direction()
        except query.QueryError as err:
            raise HistoryFault(REFUSALS[err.refusal]) from None
        # Part 11 6.4.2.1 as the archive's reads (query.Span): forward [start, end), reverse
        # (end, start] from the start backwards; meter events are journaled when read, with
        # the meter's time, so the journal is put in time order first.
        lo, hi = (last, first) if reverse else (first, last)
        if reverse:
            inside = [n for n in read(lo, hi) if (lo is None or n.time > lo) and n.time <= hi]
        else:
            inside = [n for n in read(lo, hi) if n.time >= lo and (hi is None or n.time < hi)]
        found = sorted(inside, key=lambda n: n.time, reverse=reverse)
        # None: a condition no longer configured (a meter removed).
        built = ((n, to_event(n)) for n in found)
        kept = [(n, e) for n, e in built if e is not None and where(e)]
        found = [n for n, _ in kept]
        events = {id(n): e for n, e in kept}
        digest = hashlib.blake2b(
            repr((source, first, last, reverse, select, details.Filter)).encode(), digest_size=8
        ).digest()
        begin = 0
        if point:
            if point[:8] != digest:
                raise HistoryFault(ua.StatusCodes.BadContinuationPointInvalid)
            begin = next((k for k, n in enumerate(found) if n.event_id == point[8:]), -1)
            if begin < 0:
                raise HistoryFault(ua.StatusCodes.BadContinuationPointInvalid)
        limit = min(span.limit or self.queries.page_limit, self.queries.page_limit)
        page = found[begin : begin + limit]
        more = found[begin + limit : begin + limit + 1]
        fields = [ua.HistoryEventFieldList(EventFields=events[id(n)].to_event_fields(select)) for n in page]
        return fields, (digest + more[0].event_id) if more else None

    def _where(self, details: ua.ReadEventDetails) -> Callable[[Event], bool]:
        """The where clause of the read as a test of an event; a clause that cannot be
        answered refuses the read (OPC 10000-4 §7.7.3, BadFilterOperatorUnsupported ...)."""
        where = details.Filter.WhereClause if details.Filter is not None else None
        if where is None or not where.Elements:
            return lambda _event: True
        try:
            event_filter.check(where)
        except event_filter.FilterError as err:
            raise HistoryFault(getattr(ua.StatusCodes, err.status)) from None
        evaluator = event_filter.SubscriptionFilter(log, self._aspace, where)
        test: Callable[[Event], bool] = evaluator.eval
        return test


def _answer(read: Any, question: Any, point: bytes | None) -> Any:
    """``read(question, point)``, its refusal as the StatusCode OPC UA answers with."""
    try:
        return read(question, point or None)
    except query.QueryError as err:
        raise HistoryFault(REFUSALS[err.refusal]) from None


def _event(event_class: type[Event], es: EventSource, source: ua.NodeId, e: ArchivedEvent) -> Event:
    info = describe(e.code)
    event = event_class()
    # The same archived event always has the same EventId (meter, time, code, rank).
    event.EventId = hashlib.blake2b(
        f"{es.meter_id}|{e.time.isoformat()}|{e.code}|{e.rank}".encode(), digest_size=16
    ).digest()
    event.EventType = es.event_type
    event.SourceNode = source
    event.SourceName = es.meter_id
    event.Time = e.time
    event.ReceiveTime = e.time
    event.Message = ua.LocalizedText(info.name)
    event.Severity = info.severity
    # The MeterEventType fields are not attributes of a fresh instance of the class
    # asyncua built from the type node (only of its prototype): add them with their
    # types, or selecting them fails.
    event.add_property("EventCode", e.code, ua.VariantType.UInt16)
    event.add_property("MeterId", es.meter_id, ua.VariantType.String)
    return event


class ArchiveHistoryManager(HistoryManager):  # type: ignore[misc]  # asyncua is untyped for mypy
    """asyncua's HistoryRead entry point, answering from :class:`ArchiveHistory`."""

    def __init__(self, iserver: Any, storage: ArchiveHistory) -> None:
        super().__init__(iserver)
        self.storage: ArchiveHistory = storage
        self._ahead: OrderedDict[tuple[str, str, int, bytes], asyncio.Future[ua.HistoryReadResult]] = (
            OrderedDict()
        )

    async def read_history(self, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        details = params.HistoryReadDetails
        nodes = list(params.NodesToRead)
        if params.TimestampsToReturn not in (
            ua.TimestampsToReturn.Source, ua.TimestampsToReturn.Server, ua.TimestampsToReturn.Both,
        ):  # fmt: skip
            return [fault(ua.StatusCodes.BadTimestampsToReturnInvalid) for _ in nodes]
        # The archive keeps one time per record, the meter's: there is no server time
        # stamp to return (ServerTimestampSupported is false), so "Both" gets the source
        # stamp, and "Server" alone is refused (OPC 10000-11 §6.3, BadTimestampNotSupported).
        if params.TimestampsToReturn == ua.TimestampsToReturn.Server and not isinstance(
            details, ua.ReadEventDetails
        ):
            return [fault(ua.StatusCodes.BadTimestampNotSupported) for _ in nodes]
        if isinstance(details, ua.ReadProcessedDetails) and len(details.AggregateType) != len(nodes):
            return [fault(ua.StatusCodes.BadAggregateListMismatch) for _ in nodes]
        results = []
        for n, rv in enumerate(nodes):
            if params.ReleaseContinuationPoints:
                # Stateless points: only a page read ahead may be held, and is dropped.
                if rv.ContinuationPoint:
                    self._ahead.pop(_ahead_key(details, rv, n), None)
                results.append(ua.HistoryReadResult(StatusCode=ua.StatusCode(ua.StatusCodes.Good)))
                continue
            try:
                result = await self._page(details, rv, n)
            except HistoryFault as refusal:
                results.append(fault(refusal.status))
                continue
            results.append(result)
            if result.ContinuationPoint:
                self._read_ahead(details, rv, n, result.ContinuationPoint)
        return results

    async def _page(self, details: Any, rv: ua.HistoryReadValueId, n: int) -> ua.HistoryReadResult:
        ahead = self._ahead.pop(_ahead_key(details, rv, n), None) if rv.ContinuationPoint else None
        if ahead is not None:
            return await ahead
        return await asyncio.to_thread(self._read_one, details, rv, n, ua.TimestampsToReturn.Source)

    def _read_ahead(self, details: Any, rv: ua.HistoryReadValueId, n: int, point: bytes) -> None:
        """Start reading and encoding the next page while the client decodes this one.

        A client asks for page after page and waits for each; without this, the archive
        read of every page sits between two of the client's decodes. The page is kept
        (at most :data:`READ_AHEAD` of them, oldest dropped) until the client asks for it
        with that continuation point, or releases it.
        """
        following = ua.HistoryReadValueId(
            NodeId=rv.NodeId, IndexRange=rv.IndexRange, DataEncoding=rv.DataEncoding, ContinuationPoint=point
        )
        future = asyncio.ensure_future(
            asyncio.to_thread(self._read_one, details, following, n, ua.TimestampsToReturn.Source)
        )
        future.add_done_callback(_unread_fault_is_no_error)
        self._ahead[_ahead_key(details, following, n)] = future
        while len(self._ahead) > READ_AHEAD:
            self._ahead.popitem(last=False)

    def _read_one(
        self, details: Any, rv: ua.HistoryReadValueId, n: int, stamps: ua.TimestampsToReturn
    ) -> ua.HistoryReadResult:
        point = rv.ContinuationPoint or None
        if rv.IndexRange and not isinstance(details, ua.ReadEventDetails):
            raise HistoryFault(ua.StatusCodes.BadIndexRangeNoData)  # scalar values only
        result = ua.HistoryReadResult(StatusCode=ua.StatusCode(ua.StatusCodes.Good))
        if isinstance(details, ua.ReadRawModifiedDetails):
            if details.IsReadModified:
                raise HistoryFault(ua.StatusCodes.BadHistoryOperationUnsupported)  # nothing is ever modified
            values, cont = self.storage.read_raw(rv.NodeId, details, point)
        elif isinstance(details, ua.ReadProcessedDetails):
            values, cont = self.storage.read_processed(rv.NodeId, details, details.AggregateType[n], point)
        elif isinstance(details, ua.ReadAtTimeDetails):
            values, cont = self.storage.read_at_time(rv.NodeId, details, point)
        elif isinstance(details, ua.ReadEventDetails):
            events, cont = self.storage.read_events(rv.NodeId, details, point)
            result.HistoryData = ua.HistoryEvent(Events=events)
            result.ContinuationPoint = cont
            return result
        else:
            raise HistoryFault(ua.StatusCodes.BadHistoryOperationUnsupported)
        # Packed here, sent as it is: see gateway/opcua/history_codec.py.
        result.HistoryData = history_data(values, stamps)
        result.ContinuationPoint = cont
        if not values and cont is None and isinstance(details, ua.ReadRawModifiedDetails):
            result.StatusCode = ua.StatusCode(ua.StatusCodes.GoodNoData)
        return result

    def update_history(self, params: ua.HistoryUpdateParameters) -> list[ua.HistoryUpdateResult]:
        # The archive is the meter's record: no client rewrites it.
        return no_updates(params)


def _ahead_key(details: Any, rv: ua.HistoryReadValueId, n: int) -> tuple[str, str, int, bytes]:
    """A page read ahead is for the same node, request details and continuation point."""
    return rv.NodeId.to_string(), repr(details), n, bytes(rv.ContinuationPoint or b"")


def _unread_fault_is_no_error(future: asyncio.Future[ua.HistoryReadResult]) -> None:
    if not future.cancelled():
        future.exception()  # a page never asked for may fail unseen (mark it retrieved)


#: HistoryServerCapabilities (OPC 10000-11 §5.4.2) as the SMX fills them in.
CAPABILITIES: dict[str, tuple[Any, ua.VariantType]] = {
    "AccessHistoryDataCapability": (True, ua.VariantType.Boolean),
    "AccessHistoryEventsCapability": (True, ua.VariantType.Boolean),
    "MaxReturnDataValues": (PAGE_LIMIT, ua.VariantType.UInt32),
    "MaxReturnEventValues": (PAGE_LIMIT, ua.VariantType.UInt32),
    "InsertDataCapability": (False, ua.VariantType.Boolean),
    "ReplaceDataCapability": (False, ua.VariantType.Boolean),
    "UpdateDataCapability": (False, ua.VariantType.Boolean),
    "DeleteRawCapability": (False, ua.VariantType.Boolean),
    "DeleteAtTimeCapability": (False, ua.VariantType.Boolean),
    "InsertEventCapability": (False, ua.VariantType.Boolean),
    "ReplaceEventCapability": (False, ua.VariantType.Boolean),
    "UpdateEventCapability": (False, ua.VariantType.Boolean),
    "DeleteEventCapability": (False, ua.VariantType.Boolean),
    "InsertAnnotationCapability": (False, ua.VariantType.Boolean),
    "ServerTimestampSupported": (False, ua.VariantType.Boolean),
}


async def install(server: Server, storage: ArchiveHistory) -> ArchiveHistoryManager:
    """Make ``storage`` answer the server's HistoryRead and announce what it can do."""
    manager = ArchiveHistoryManager(server.iserver, storage)
    server.iserver.history_manager = manager
    await write_capabilities(server, CAPABILITIES)
    refs = []
    for folder in (ua.ObjectIds.HistoryServerCapabilities_AggregateFunctions,
                   ua.ObjectIds.Server_ServerCapabilities_AggregateFunctions):  # fmt: skip
        for aggregate in AGGREGATE_NODES:
            ref = ua.AddReferencesItem()
            ref.SourceNodeId = ua.NodeId(folder)
            ref.ReferenceTypeId = ua.NodeId(ua.ObjectIds.Organizes)
            ref.IsForward = True
            ref.TargetNodeId = ua.NodeId(aggregate)
            ref.TargetNodeClass = ua.NodeClass.Object
            refs.append(ref)
    for result in await server.iserver.isession.add_references(refs):
        if not result.is_good() and result.value != ua.StatusCodes.BadDuplicateReferenceNotAllowed:
            raise RuntimeError(f"announcing an aggregate function failed: {result}")
    return manager
