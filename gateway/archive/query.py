"""Questions to the archive, in plain Python types: one semantics for every adapter.

OPC UA HistoryRead (:mod:`gateway.opcua.history`) and the REST API
(:mod:`gateway.web.api`) translate their requests into these queries and the answers
back; what a read means is decided here once, following OPC 10000-11 (Historical Access)
and OPC 10000-13 (Aggregates), so both give the same values, bounds and aggregates.

* :class:`RawQuery` (§6.4.3 ReadRaw): forward when start < end (``start <= t < end``),
  reverse when start > end (``end < t <= start``) or only the end is given; an open end
  needs a limit. ``bounds`` adds the values at or outside the edges (``BadBoundNotFound``
  where there is none, stamped with the request's unspecified time at an open end),
  counted in the limit, as OPC 10000-11 §4.6 Table 1 gives them. Raw values are what the
  archive stores: the minute mean of a 1-second value (stamped at the minute's start;
  its minimum, maximum and sample count are series of their own), each register sample,
  each load-profile period (stamped at its end).
* :class:`ProcessedQuery` (§6.4.4 ReadProcessed): one aggregate of
  :mod:`gateway.archive.aggregates` per processing interval.
* :class:`AtTimeQuery` (§6.4.5 ReadAtTime): the stored value or, between two, stepped or
  interpolated as the stream's shape says.
* :class:`EventQuery` (§6.4.2 ReadEvent): the meter's event log.

A page holds at most the query's limit and never more than :data:`PAGE_LIMIT`; a cut
page carries a **cursor** naming the next value (its time and how many values of that
time were already sent), so pages never repeat or skip a value. Cursors are opaque bytes
holding the position and a digest of the query, so nothing is kept between pages and a
cursor of another query is refused (:attr:`Refusal.BAD_CURSOR`). The reads are
synchronous file reads: callers run them in a worker thread.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gateway.archive import aggregates
from gateway.archive.aggregates import (
    BAD_BOUND_NOT_FOUND,
    GOOD,
    Config,
    Result,
    Sample,
    Series,
)
from gateway.archive.files import ArchiveReader
from gateway.clock import Clock
from gateway.obis import Obis
from gateway.streams import EVENT_LOG, Shape, StreamId, stream

#: Most values (or events, or intervals) per series in one page.
#: Small pages keep a page's memory low on the box and let the next page be read while
#: the client decodes this one (``bench/history.py``: 2,000 was 1.8x faster end to end
#: than 10,000 for a year of one channel).
PAGE_LIMIT = 2_000
#: The event log's column in the archive: the event code under the log's logical name.
EVENT_COLUMN = (str(EVENT_LOG.cosem), "code")
_CP = struct.Struct("<4sIq8s")
_CP_MAGIC = b"SMX1"
#: ``skip`` of a cursor whose page is only the end bound.
_BOUND_ONLY = 0xFFFFFFFF
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The time of a bound at an open end of a read: the "not specified" time of the request
#: (OPC UA DateTime.MinValue, 1601-01-01).
UNSPECIFIED_TIME = datetime(1601, 1, 1, tzinfo=UTC)


class Refusal(enum.Enum):
    """Why a query gets no answer; each adapter says it in its own terms."""

    #: No history of that series here (OPC UA BadHistoryOperationUnsupported).
    NO_HISTORY = "no-history"
    #: A time range the read kind does not allow (BadHistoryOperationInvalid).
    INVALID_RANGE = "invalid-range"
    #: A cursor this query did not hand out (BadContinuationPointInvalid).
    BAD_CURSOR = "bad-cursor"
    #: An aggregate not in :data:`~gateway.archive.aggregates.AGGREGATES` (BadAggregateNotSupported).
    UNKNOWN_AGGREGATE = "unknown-aggregate"
    #: PercentDataGood / PercentDataBad outside 0..100 (BadAggregateConfigurationRejected).
    AGGREGATE_CONFIGURATION = "aggregate-configuration"
    #: A negative processing interval (BadInvalidArgument).
    INVALID_INTERVAL = "invalid-interval"


class QueryError(Exception):
    """A query that must be refused, and why."""

    def __init__(self, refusal: Refusal, message: str = "") -> None:
        super().__init__(message or refusal.value)
        self.refusal = refusal


#: The minute record's columns besides the mean, each a series of its own: the minute's
#: lowest and highest 1-second sample and how many samples it had.
MINUTE_DETAILS = ("min", "max", "count")


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One archived series: a meter, a stream, the OBIS code of its column and, for minute
    records, which of the record's columns (``""``: the mean, the value's own history;
    one of :data:`MINUTE_DETAILS`)."""

    meter_id: str
    stream: StreamId
    obis: Obis
    detail: str = ""

    def __post_init__(self) -> None:
        if self.detail and (
            self.detail not in MINUTE_DETAILS or stream(self.stream).shape is not Shape.MINUTE
        ):
            raise ValueError(f"{self.stream} has no series {self.detail!r}")

    @property
    def qualifier(self) -> str:
        """The archive column's qualifier: the minute record's ``mean`` or the detail asked for."""
        if stream(self.stream).shape is Shape.MINUTE:
            return self.detail or "mean"
        return ""


@dataclass(frozen=True, slots=True)
class Span:
    """What a raw or event read takes (§6.4.2.1, §6.4.3.1): from ``start`` towards ``end``,
    forward when start < end, reverse when start > end or only the end is given."""

    #: None: open (at most one end, and then a limit is needed).
    start: datetime | None
    end: datetime | None
    #: Most records per page, 0: :data:`PAGE_LIMIT`.
    limit: int = 0

    def direction(self) -> tuple[bool, datetime, datetime | None]:
        """(reverse, the end the read starts from, the end it stops at or None)."""
        start, end = self.start, self.end
        if start is None and end is None:
            raise QueryError(Refusal.INVALID_RANGE, "a read needs a start or an end")
        if (start is None or end is None) and self.limit == 0:
            raise QueryError(Refusal.INVALID_RANGE, "an open-ended read needs a limit")
        if start is None:
            assert end is not None
            return True, end, None
        return end is not None and start > end, start, end


@dataclass(frozen=True, slots=True)
class RawQuery:
    """The stored values of a series (§6.4.3 ReadRaw), with the values at the edges if ``bounds``."""

    series: SeriesKey
    span: Span
    bounds: bool = False


@dataclass(frozen=True, slots=True)
class ProcessedQuery:
    """One aggregate per processing interval of a series (§6.4.4 ReadProcessed)."""

    series: SeriesKey
    start: datetime
    end: datetime
    #: An aggregate name of :data:`~gateway.archive.aggregates.AGGREGATES` (``"Average"``).
    aggregate: str
    #: Processing interval; one spanning the range (or 0) is one interval (§6.4.4).
    interval: timedelta
    config: Config = field(default_factory=Config)


@dataclass(frozen=True, slots=True)
class AtTimeQuery:
    """The values of a series at given instants (§6.4.5 ReadAtTime)."""

    series: SeriesKey
    times: tuple[datetime, ...]


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A meter's archived event log (§6.4.2 ReadEvent)."""

    meter_id: str
    span: Span
    #: Anything else the adapter's answer depends on (OPC UA select and where clauses): a
    #: cursor from a query with another context is refused.
    context: str = ""
    #: Which events the adapter wants (an OPC UA where clause); None: all. Pages count
    #: only the events kept.
    keep: Callable[[ArchivedEvent], bool] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ArchivedEvent:
    """One entry of a meter's event log as archived."""

    time: datetime
    code: int
    status: int
    #: Its place among the events of the same time stamp, in file order (1, 2, ...): with
    #: the time and code it identifies the event.
    rank: int


@dataclass(frozen=True, slots=True)
class Page:
    """One page of values and where the next one starts."""

    values: list[Result]
    #: Where the next page starts; None: this was the last.
    cursor: bytes | None = None


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of events and where the next one starts."""

    events: list[ArchivedEvent]
    cursor: bytes | None = None


@dataclass(frozen=True, slots=True)
class _Position:
    """Where the next page starts: at ``time``, after ``skip`` values of that time."""

    time: datetime
    skip: int


def _micros(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()


def _pack(position: _Position, digest: bytes) -> bytes:
    return _CP.pack(_CP_MAGIC, position.skip, _micros(position.time), digest)


def _unpack(cursor: bytes, digest: bytes) -> _Position:
    try:
        magic, skip, micros, found = _CP.unpack(cursor)
        if magic != _CP_MAGIC or found != digest:
            raise ValueError("not this query's")
        return _Position(_EPOCH + timedelta(microseconds=micros), skip)
    except (struct.error, ValueError, OverflowError):
        raise QueryError(Refusal.BAD_CURSOR, "not a cursor of this query") from None


def _series_digest(key: SeriesKey) -> tuple[str, str, str, str]:
    return key.meter_id, str(key.stream), str(key.obis), key.detail


def _value(s: Sample) -> Result:
    return Result(s.time, s.value, GOOD)


def _no_bound(t: datetime) -> Result:
    return Result(t, None, BAD_BOUND_NOT_FOUND)


class ArchiveQueries:
    """Answers queries from the archive day files of the meters added."""

    def __init__(self, clock: Clock, page_limit: int = PAGE_LIMIT) -> None:
        self.clock = clock
        self.page_limit = page_limit
        self._readers: dict[str, ArchiveReader] = {}

    def add_meter(self, meter_id: str, reader: ArchiveReader) -> None:
        self._readers[meter_id] = reader

    def has_meter(self, meter_id: str) -> bool:
        return meter_id in self._readers

    def _reader(self, meter_id: str) -> ArchiveReader:
        reader = self._readers.get(meter_id)
        if reader is None:
            raise QueryError(Refusal.NO_HISTORY, f"no archive of meter {meter_id!r}")
        return reader

    def _shape(self, key: SeriesKey) -> Shape:
        shape = stream(key.stream).shape
        if shape is None:
            raise QueryError(Refusal.NO_HISTORY, f"{key.stream} is not a series of values")
        return shape

    def period(self, key: SeriesKey) -> timedelta:
        """The time one sample of the series covers: a profile's capture period as the meter
        gave it (else the stream's default), a minute for minute records."""
        spec = stream(key.stream)
        if spec.shape is Shape.PERIOD:
            found = self._reader(key.meter_id).capture_period(key.stream)
            return found or spec.period or aggregates.MINUTE
        return aggregates.MINUTE

    # -- samples ------------------------------------------------------------------------

    def samples(
        self, key: SeriesKey, start: datetime | None, end: datetime | None, *, reverse: bool = False
    ) -> Iterator[Sample]:
        """Stored samples with ``start <= time <= end`` (None: open), in time order or
        reversed: the raw values, as :meth:`raw` returns them."""
        for t, value in self._values(key, start, end, reverse=reverse):
            yield Sample(t, value)

    def _values(
        self, key: SeriesKey, start: datetime | None, end: datetime | None, *, reverse: bool = False
    ) -> Iterator[tuple[datetime, float]]:
        """(time, raw value) of the stored samples (a year of a channel is 35,040 of them)."""
        reader = self._reader(key.meter_id)
        self._shape(key)
        for t, _status, (value,) in reader.read_columns(
            key.stream, [(str(key.obis), key.qualifier)], start, end, reverse=reverse
        ):
            if value is not None:
                yield t, value

    def _neighbour(self, key: SeriesKey, t: datetime, *, before: bool, inclusive: bool) -> Sample | None:
        """The nearest sample before (or after) ``t``."""
        it = self.samples(key, None, t, reverse=True) if before else self.samples(key, t, None)
        for s in it:
            if inclusive or s.time != t:
                return s
        return None

    def _series(self, key: SeriesKey, lo: datetime, hi: datetime, margin: timedelta) -> Series:
        """The samples from ``lo - margin`` to ``hi + margin``, plus the nearest one beyond
        each end (for bounds and interpolation)."""
        inside = list(self.samples(key, lo - margin, hi + margin))
        before = self._neighbour(key, lo - margin, before=True, inclusive=False)
        after = self._neighbour(key, hi + margin, before=False, inclusive=False)
        samples = [*([before] if before else []), *inside, *([after] if after else [])]
        shape = self._shape(key)
        return Series(samples, shape, self.period(key), shape.stepped)

    # -- raw ----------------------------------------------------------------------------

    def raw(self, q: RawQuery, cursor: bytes | None = None) -> Page:
        reverse, first, last = q.span.direction()
        self._shape(q.series)
        digest = _digest("raw", *_series_digest(q.series), first, last, reverse, q.bounds)
        position = _unpack(cursor, digest) if cursor else None
        limit = min(q.span.limit or self.page_limit, self.page_limit)
        out: list[Result] = []
        key = q.series

        # Bounding values (§4.6, Table 1): the value at or beyond each end of the range,
        # ``BadBoundNotFound`` where there is none. An open end has no time to find a value
        # at: when the data run out before the limit, its bound is "not found", stamped
        # with the unspecified time the request gave (DateTime.MinValue).
        if position is None and q.bounds:
            edge = self._neighbour(key, first, before=not reverse, inclusive=True)
            if edge is None:
                out.append(_no_bound(first))
            elif edge.time != first:
                out.append(_value(edge))  # one on the edge is the range's first value anyway
        if position is None or position.skip != _BOUND_ONLY:
            begin = first if position is None else position.time
            skip = 0 if position is None else position.skip
            it = self._values(key, last, begin, reverse=True) if reverse else self._values(key, begin, last)
            run_time, run = None, 0
            skip_at = None if position is None else position.time
            exclusive = last if first != last else None  # the far edge is exclusive
            append = out.append
            for t, value in it:
                if t == exclusive:
                    break
                if t == run_time:
                    run += 1
                else:
                    run_time, run = t, 1
                if t == skip_at and run <= skip:
                    continue
                if len(out) >= limit:
                    return Page(out, _pack(_Position(t, run - 1), digest))
                append(Result(t, value, GOOD))
        if q.bounds:
            if len(out) >= limit:
                return Page(out, _pack(_Position(first if last is None else last, _BOUND_ONLY), digest))
            if last is None:
                out.append(_no_bound(UNSPECIFIED_TIME))
            else:
                # Start = end asks for the one value at that time: its end bound is the next.
                edge = self._neighbour(key, last, before=reverse, inclusive=first != last)
                out.append(_no_bound(last) if edge is None else _value(edge))
        return Page(out)

    # -- processed ----------------------------------------------------------------------

    def processed(self, q: ProcessedQuery, cursor: bytes | None = None) -> Page:
        if q.aggregate not in aggregates.AGGREGATES:
            known = ", ".join(aggregates.AGGREGATES)
            raise QueryError(Refusal.UNKNOWN_AGGREGATE, f"no aggregate {q.aggregate!r} (known: {known})")
        if q.start == q.end:
            raise QueryError(Refusal.INVALID_RANGE, "start and end must differ")
        if q.interval < aggregates.ZERO:
            raise QueryError(Refusal.INVALID_INTERVAL, "the processing interval must not be negative")
        config = q.config
        if not (0 <= config.percent_good <= 100 and 0 <= config.percent_bad <= 100):
            raise QueryError(Refusal.AGGREGATE_CONFIGURATION, "PercentDataGood/Bad must be 0..100")
        shape = self._shape(q.series)
        start, end = q.start, q.end
        reverse = start > end
        step = q.interval
        if step >= abs(end - start):
            step = aggregates.ZERO  # one interval: the whole range (§6.4.4)
        digest = _digest("processed", *_series_digest(q.series), start, end, step, q.aggregate, config)
        first = start if cursor is None else _unpack(cursor, digest).time
        now = self.clock.now()
        periods = aggregates.intervals(first, end, step, now, reverse=reverse, limit=self.page_limit + 1)
        more: datetime | None = None
        if len(periods) > self.page_limit:
            periods = periods[: self.page_limit]
            more = periods[-1].start if reverse else periods[-1].end
        if not periods:
            return Page([])
        lo = min(p.start for p in periods)
        hi = max(p.end for p in periods)
        # Samples whose span touches [lo, hi): a profile period reaches back its length.
        margin = self.period(q.series) if shape is Shape.PERIOD else aggregates.MINUTE
        series = self._series(q.series, lo, hi, margin)
        results = aggregates.compute(q.aggregate, series, periods, now, config)
        return Page(results, None if more is None else _pack(_Position(more, 0), digest))

    # -- at time ------------------------------------------------------------------------

    def at_time(self, q: AtTimeQuery, cursor: bytes | None = None) -> Page:
        if not q.times:
            raise QueryError(Refusal.INVALID_RANGE, "no times asked for")
        self._shape(q.series)
        digest = _digest("at-time", *_series_digest(q.series), q.times)
        offset = 0 if cursor is None else _unpack(cursor, digest).skip
        page = q.times[offset : offset + self.page_limit]
        series = self._series(q.series, min(page), max(page), aggregates.ZERO)
        keys = [s.time for s in series.samples]
        values = [aggregates.value_at(series, t, keys) for t in page]
        done = offset + len(page)
        return Page(values, None if done >= len(q.times) else _pack(_Position(q.times[0], done), digest))

    # -- events -------------------------------------------------------------------------

    def events(self, q: EventQuery, cursor: bytes | None = None) -> EventPage:
        reader = self._reader(q.meter_id)
        reverse, first, last = q.span.direction()
        digest = _digest("events", q.meter_id, first, last, reverse, q.context)
        position = _unpack(cursor, digest) if cursor else None
        limit = min(q.span.limit or self.page_limit, self.page_limit)
        begin = first if position is None else position.time
        lo, hi = (last, begin) if reverse else (begin, last)
        rows = reader.read_columns(EVENT_LOG.id, [EVENT_COLUMN], lo, hi, reverse=reverse)
        out: list[ArchivedEvent] = []
        skip = 0 if position is None else position.skip
        # Events of one time stamp are taken together: an event's rank among them is
        # counted in file order, whichever way the read goes.
        for t, group in itertools.groupby(rows, key=lambda row: row[0]):
            if last is not None and t == last:
                break  # the far edge is exclusive
            same = list(group)
            for run, (_t, status, (code,)) in enumerate(same, start=1):
                if position is not None and t == position.time and run <= skip:
                    continue
                rank = len(same) + 1 - run if reverse else run
                event = ArchivedEvent(t, int(code or 0), status or 0, rank)
                if q.keep is not None and not q.keep(event):
                    continue
                if len(out) >= limit:
                    return EventPage(out, _pack(_Position(t, run - 1), digest))
                out.append(event)
        return EventPage(out)
