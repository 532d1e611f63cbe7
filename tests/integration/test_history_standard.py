"""Historical access checked as an integrator checks it (OPC 10000-11, OPC 10000-13).

A real asyncua client reads the raw values of a series and computes each aggregate from
them itself, by the standard's definitions and the spans the README states (a minute
record spans its minute, a load-profile value its period, ending at its stamp; a register
sample is a point); the gateway's ReadProcessed answers must be the same, for minute
records, a register and a load-profile channel, over aligned and unaligned intervals,
across a gap and across midnight. Then the minute records' min/max/sample-count series,
ReturnBounds on open-ended reads (Part 11 §4.6 Table 1) and event where clauses.

The archive is written here before the gateway starts, in a past window around
2026-03-28/29 midnight (UTC); one gateway serves the module (read-only queries).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua

from gateway.archive.files import ArchiveWriter, Column
from gateway.events import describe
from tests.support import part13
from tests.support.harness import Running, over_archive, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

UNSPECIFIED = ua.get_win_epoch()
MINUTE = timedelta(minutes=1)
PERIOD = timedelta(minutes=15)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


MIDNIGHT = utc(2026, 3, 29)

# -- the archive ----------------------------------------------------------------------------

#: Minute records of 1-0:1.7.0 from 23:30 to 00:40; 00:10 ... 00:13 are missing.
MINUTE_GAP = (MIDNIGHT + 10 * MINUTE, MIDNIGHT + 14 * MINUTE)


def _minute(k: int) -> tuple[float, float, float, float]:
    """(mean, min, max, samples) of minute ``k``: means repeat (ties for MultiValue)."""
    mean = 1.0 + 0.25 * ((k * 7) % 6)
    return mean, mean - 0.1 * (k % 4) - 0.05, mean + 0.2 * (k % 3) + 0.05, 30.0 if k % 5 == 0 else 60.0


MINUTES = [
    (t, _minute(k))
    for k in range(70)
    if not MINUTE_GAP[0] <= (t := MIDNIGHT - 30 * MINUTE + k * MINUTE) < MINUTE_GAP[1]
]

#: The A+ register every 10 minutes from 22:00 to 02:00; 23:20 ... 23:50 were not read.
REGISTER_GAP = (MIDNIGHT - timedelta(minutes=40), MIDNIGHT - timedelta(minutes=10))
REGISTERS = [
    (t, 500.0 + 0.5 * n + 0.125 * (n % 3))
    for n in range(25)
    if not REGISTER_GAP[0]
    <= (t := MIDNIGHT - timedelta(hours=2) + n * timedelta(minutes=10))
    <= REGISTER_GAP[1]
]

#: A+ per 15-minute period, periods ending 20:15 ... 04:00; those ending 23:00 ... 23:30 missing.
LP_GAP = (MIDNIGHT - timedelta(hours=1), MIDNIGHT - timedelta(minutes=30))
LP = [
    (t, 0.1 * (1 + (k * 5) % 7))
    for k in range(1, 32 + 1)
    if not LP_GAP[0] <= (t := MIDNIGHT - timedelta(hours=4) + k * PERIOD) <= LP_GAP[1]
]

#: (time, code) of the meter's event log.
EVENTS = [
    (MIDNIGHT - timedelta(hours=2), 1),
    (MIDNIGHT - timedelta(hours=2) + 40 * MINUTE, 2),
    (MIDNIGHT - timedelta(minutes=5), 17),
    (MIDNIGHT, 3),
    (MIDNIGHT + 20 * MINUTE, 40),
    (MIDNIGHT + 20 * MINUTE, 41),
    (MIDNIGHT + timedelta(hours=1), 76),
    (MIDNIGHT + timedelta(hours=1, seconds=5), 82),
    (MIDNIGHT + timedelta(hours=2), 17),
]


def write_archive(root: Path) -> None:
    writer = ArchiveWriter(root, "meter1")
    try:
        writer.append("lp1", [Column("1-0:1.29.0", "kWh")], [(t, 0, (v,)) for t, v in LP])
        writer.append("registers", [Column("1-0:1.8.0", "kWh")], [(t, 0, (v,)) for t, v in REGISTERS])
        columns = [Column("1-0:1.7.0", unit, q) for q, unit in (("mean", "kW"), ("min", "kW"), ("max", "kW"))]
        columns.append(Column("1-0:1.7.0", "", "count"))
        writer.append("minute", columns, [(t, 0, rec) for t, rec in MINUTES])
        writer.append("events", [Column("0-0:99.98.0", "", "code")], [(t, 0, (float(c),)) for t, c in EVENTS])
    finally:
        writer.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    root = tmp_path_factory.mktemp("history-standard") / "archive"
    write_archive(root)
    async with running_gateway(over_archive(root)) as running:
        yield running


# -- the client's side: raw values and the standard's aggregates over them ------------------


@dataclass(frozen=True)
class Series:
    """A historized node and the span of one of its raw values."""

    node: str
    span: part13.Span


MINUTE_SERIES = Series("meter1.1-0:1.7.0", part13.MINUTE_RECORD)
REGISTER_SERIES = Series("meter1.1-0:1.8.0", part13.REGISTER_SAMPLE)
LP_SERIES = Series("meter1.P.01.1-0:1.29.0", part13.period(PERIOD))
Expected = part13.Value
intervals = part13.intervals
AGGREGATES = part13.NAMES


def when(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


async def read_raw(gw: Running, node: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """Every raw value of ``[start, end)`` as the client reads them (all pages)."""
    details = ua.ReadRawModifiedDetails(
        IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=0, ReturnBounds=False
    )
    out: list[tuple[datetime, float]] = []
    cont: bytes | None = None
    while True:
        result = await gw.node(node).history_read(details, cont)
        for v in result.HistoryData.DataValues:
            t = when(v.SourceTimestamp)
            assert t is not None
            assert v.StatusCode.is_good()
            out.append((t, v.Value.Value))
        cont = result.ContinuationPoint
        if not cont:
            return out


async def read_processed(
    gw: Running, node: str, name: str, start: datetime, end: datetime, step: timedelta
) -> list[Expected]:
    details = ua.ReadProcessedDetails(
        StartTime=start,
        EndTime=end,
        ProcessingInterval=step / timedelta(milliseconds=1),
        AggregateType=[ua.NodeId(getattr(ua.ObjectIds, f"AggregateFunction_{name}"))],
        AggregateConfiguration=ua.AggregateConfiguration(UseServerCapabilitiesDefaults=True),
    )
    result = await gw.node(node).history_read(details)
    assert result.StatusCode.is_good(), (name, result.StatusCode)
    return [
        Expected(when(v.SourceTimestamp) or UNSPECIFIED, v.Value.Value, int(v.StatusCode.value))
        for v in result.HistoryData.DataValues
    ]


H, M = timedelta(hours=1), MINUTE
#: (series, start, end, processing interval): aligned and unaligned, a gap, midnight.
WINDOWS = {
    "minute-aligned-midnight-gap": (MINUTE_SERIES, MIDNIGHT - 20 * M, MIDNIGHT + 30 * M, 10 * M),
    "minute-unaligned": (MINUTE_SERIES, MIDNIGHT - 17.5 * M, MIDNIGHT + 23 * M, 7 * M),
    "register-aligned-gap-midnight": (REGISTER_SERIES, MIDNIGHT - 2 * H, MIDNIGHT + 2 * H, 30 * M),
    "register-unaligned": (REGISTER_SERIES, MIDNIGHT - 97 * M, MIDNIGHT + 71 * M, 25 * M),
    "lp-aligned-gap-midnight": (LP_SERIES, MIDNIGHT - 3 * H, MIDNIGHT + 3 * H, H),
    "lp-unaligned": (LP_SERIES, MIDNIGHT - 130 * M, MIDNIGHT + 95 * M, 40 * M),
}


@pytest.mark.parametrize("window", list(WINDOWS))
async def test_processed_aggregates_equal_what_the_client_computes_from_raw_values(
    gw: Running, window: str
) -> None:
    series, start, end, step = WINDOWS[window]
    # The raw values the client reads: the range and a span either side (a load-profile
    # value stamped after the end may belong to the last interval).
    margin = series.span.length or timedelta(0)
    raw = await read_raw(gw, series.node, start - margin, end + margin)
    periods = intervals(start, end, step)
    for name in AGGREGATES:
        got = await read_processed(gw, series.node, name, start, end, step)
        expected = [part13.aggregate(name, series.span, raw, a, b, step) for a, b in periods]
        assert [(g.time, g.status) for g in got] == [(e.time, e.status) for e in expected], name
        assert [g.value for g in got] == pytest.approx([e.value for e in expected]), name
    # The window exercises what it is named for.
    counts = [len([t for t, _ in raw if a <= series.span.start_of(t) < b]) for a, b in periods]
    if "gap" in window:
        assert min(counts) < max(counts), counts
    if "unaligned" in window:
        assert (end - start) % step, "the last interval is cut short"


# -- the minute records' columns as series of their own --------------------------------------


async def test_minute_details_are_browsable_historized_series_with_units(gw: Running) -> None:
    value = gw.node(MINUTE_SERIES.node)
    children = {(await c.read_browse_name()).Name: c for c in await value.get_children()}
    columns = {"MinuteMinimum": 1, "MinuteMaximum": 2, "MinuteSamples": 3}
    assert set(columns) <= set(children)
    start, end = MIDNIGHT - 30 * MINUTE, MIDNIGHT + 40 * MINUTE
    for name, column in columns.items():
        node = children[name]
        units = await (await node.get_child("0:EngineeringUnits")).read_value()
        assert units.DisplayName.Text == ("kW" if column < 3 else "1"), name
        assert (await node.read_attribute(ua.AttributeIds.Historizing)).Value.Value is True, name
        access = (await node.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value
        assert access & ua.AccessLevel.HistoryRead.mask, name
        assert not access & ua.AccessLevel.CurrentWrite.mask, name
        raw = await read_raw(gw, node.nodeid.Identifier, start, end)
        assert raw == [(t, rec[column]) for t, rec in MINUTES], name
    # The true 1-second extremes of an interval are the aggregates of these series.
    low = await read_processed(gw, MINUTE_SERIES.node + ".MinuteMinimum", "Minimum", start, end, 10 * MINUTE)
    expected = [
        min((r[1] for t, r in MINUTES if a <= t < b), default=None)
        for a, b in intervals(start, end, 10 * MINUTE)
    ]
    assert [g.value for g in low] == pytest.approx(expected)
    samples = await read_processed(gw, MINUTE_SERIES.node + ".MinuteSamples", "Count", start, end, 10 * M)
    expected_counts = [len([t for t, _ in MINUTES if a <= t < b]) for a, b in intervals(start, end, 10 * M)]
    assert [g.value for g in samples] == expected_counts  # raw values (records), not the samples behind


# -- ReturnBounds on open-ended reads (Part 11 §4.6, Table 1) --------------------------------


async def raw_bounds(
    gw: Running, start: datetime | None, end: datetime | None, n: int
) -> list[tuple[datetime, Any, int]]:
    details = ua.ReadRawModifiedDetails(
        IsReadModified=False,
        StartTime=start or UNSPECIFIED,
        EndTime=end or UNSPECIFIED,
        NumValuesPerNode=n,
        ReturnBounds=True,
    )
    result = await gw.node(LP_SERIES.node).history_read(details)
    assert result.StatusCode.is_good(), result.StatusCode
    return [
        (when(v.SourceTimestamp), v.Value.Value, int(v.StatusCode.value))
        for v in result.HistoryData.DataValues
    ]  # type: ignore[misc]


def good(pairs: Sequence[tuple[datetime, float]]) -> list[tuple[datetime, Any, int]]:
    return [(t, v, 0) for t, v in pairs]


async def test_open_ended_reads_with_bounds(gw: Running) -> None:
    first, last = LP[0][0], LP[-1][0]
    off = first + 5 * MINUTE  # between two stored values
    # StartTime only: forward; the bound at the start (the value at or before it) counts in
    # NumValuesPerNode.
    got = await raw_bounds(gw, off, None, 3)
    assert got == good([LP[0], LP[1], LP[2]])
    got = await raw_bounds(gw, LP[3][0], None, 3)
    assert got == good(LP[3:6])  # a value on the start is its own bound
    # ... and when the data run out first, the end bound is not found (LAST).
    got = await raw_bounds(gw, LP[-2][0] + MINUTE, None, 6)
    assert got[:-1] == good([LP[-2], LP[-1]])
    assert got[-1] == (UNSPECIFIED, None, ua.StatusCodes.BadBoundNotFound)
    # Before the first value: FIRST at the start, then the values.
    early = first - timedelta(hours=1)
    got = await raw_bounds(gw, early, None, 3)
    assert got == [(early, None, ua.StatusCodes.BadBoundNotFound), *good(LP[:2])]

    # EndTime only: reverse from the end; the bound is the value at or after it.
    got = await raw_bounds(gw, None, LP[5][0] - MINUTE, 3)
    assert got == good([LP[5], LP[4], LP[3]])
    got = await raw_bounds(gw, None, LP[5][0], 3)
    assert got == good([LP[5], LP[4], LP[3]])
    got = await raw_bounds(gw, None, LP[1][0], 6)  # runs out: FIRST
    assert got[:-1] == good([LP[1], LP[0]])
    assert got[-1] == (UNSPECIFIED, None, ua.StatusCodes.BadBoundNotFound)
    late = last + timedelta(hours=1)
    got = await raw_bounds(gw, None, late, 2)
    assert got == [(late, None, ua.StatusCodes.BadBoundNotFound), *good([LP[-1]])]


async def test_open_ended_bounds_page_with_continuation_points(gw: Running) -> None:
    """The bounds are values of the read: paged like them, never repeated or lost."""
    start = LP[-4][0] - MINUTE
    details = ua.ReadRawModifiedDetails(
        IsReadModified=False, StartTime=start, EndTime=UNSPECIFIED, NumValuesPerNode=2, ReturnBounds=True
    )
    node = gw.node(LP_SERIES.node)
    seen: list[tuple[datetime | None, Any, int]] = []
    cont: bytes | None = None
    for _ in range(10):
        result = await node.history_read(details, cont)
        seen += [
            (when(v.SourceTimestamp), v.Value.Value, int(v.StatusCode.value))
            for v in result.HistoryData.DataValues
        ]
        cont = result.ContinuationPoint
        if not cont:
            break
    assert seen == [*good(LP[-5:]), (UNSPECIFIED, None, ua.StatusCodes.BadBoundNotFound)]


# -- event history with where clauses --------------------------------------------------------


def field(ns: int, name: str) -> ua.SimpleAttributeOperand:
    op = ua.SimpleAttributeOperand()
    op.TypeDefinitionId = ua.NodeId(ua.ObjectIds.BaseEventType)
    op.BrowsePath = [ua.QualifiedName(name, ns)]
    op.AttributeId = ua.AttributeIds.Value
    return op


def literal(value: Any, vtype: ua.VariantType) -> ua.LiteralOperand:
    return ua.LiteralOperand(Value=ua.Variant(value, vtype))


def element(op: ua.FilterOperator, *operands: Any) -> ua.ContentFilterElement:
    return ua.ContentFilterElement(FilterOperator=op, FilterOperands=list(operands))


FO = ua.FilterOperator


async def read_events(
    gw: Running, where: list[ua.ContentFilterElement], n: int = 0
) -> tuple[int, list[tuple[datetime | None, int]]]:
    """(status, [(time, code)]) of the meter's events under ``where``, all pages of ``n``."""
    evfilter = ua.EventFilter(SelectClauses=[field(0, "Time"), field(gw.ns, "EventCode")])
    evfilter.WhereClause = ua.ContentFilter(Elements=where)
    details = ua.ReadEventDetails(
        StartTime=MIDNIGHT - timedelta(hours=6),
        EndTime=MIDNIGHT + timedelta(hours=6),
        NumValuesPerNode=n,
        Filter=evfilter,
    )
    rows: list[tuple[datetime | None, int]] = []
    cont: bytes | None = None
    for _ in range(len(EVENTS) + 2):
        params = ua.HistoryReadParameters()
        params.HistoryReadDetails = details
        params.TimestampsToReturn = ua.TimestampsToReturn.Source
        params.ReleaseContinuationPoints = False  # asyncua's default is True
        params.NodesToRead.append(
            ua.HistoryReadValueId(NodeId=gw.node("meter1").nodeid, ContinuationPoint=cont)
        )
        (result,) = await gw.client.uaclient.history_read(params)
        if not result.StatusCode.is_good():
            return int(result.StatusCode.value), rows
        rows += [(when(e.EventFields[0].Value), e.EventFields[1].Value) for e in result.HistoryData.Events]
        cont = result.ContinuationPoint
        if not cont:
            break
    return ua.StatusCodes.Good, rows


def events_where(keep: Callable[[int], bool]) -> list[tuple[datetime | None, int]]:
    return [(t, c) for t, c in EVENTS if keep(c)]


async def test_event_history_where_clauses_select_exactly_the_matching_events(gw: Running) -> None:
    ns = gw.ns
    code, severity = field(ns, "EventCode"), field(0, "Severity")
    u16 = ua.VariantType.UInt16
    cases: list[tuple[str, list[ua.ContentFilterElement], Callable[[int], bool]]] = [
        ("EventCode == 17", [element(FO.Equals, code, literal(17, u16))], lambda c: c == 17),
        (
            "Severity >= 500",
            [element(FO.GreaterThanOrEqual, severity, literal(500, u16))],
            lambda c: describe(c).severity >= 500,
        ),
        (
            "Severity < 400",
            [element(FO.LessThan, severity, literal(400, u16))],
            lambda c: describe(c).severity < 400,
        ),
        (
            "EventCode InList (1, 40, 82)",
            [element(FO.InList, code, literal(1, u16), literal(40, u16), literal(82, u16))],
            lambda c: c in (1, 40, 82),
        ),
        (
            "Severity > 300 And EventCode <= 40",
            [
                element(FO.And, ua.ElementOperand(Index=1), ua.ElementOperand(Index=2)),
                element(FO.GreaterThan, severity, literal(300, u16)),
                element(FO.LessThanOrEqual, code, literal(40, u16)),
            ],
            lambda c: describe(c).severity > 300 and c <= 40,
        ),
        (
            "EventCode == 3 Or Not (Severity > 200)",
            [
                element(FO.Or, ua.ElementOperand(Index=1), ua.ElementOperand(Index=2)),
                element(FO.Equals, code, literal(3, u16)),
                element(FO.Not, ua.ElementOperand(Index=3)),
                element(FO.GreaterThan, severity, literal(200, u16)),
            ],
            lambda c: c == 3 or not describe(c).severity > 200,
        ),
        (
            "OfType MeterEventType",
            [element(FO.OfType, ua.LiteralOperand(Value=ua.Variant(ua.NodeId(1100, ns))))],
            lambda c: True,
        ),
        (
            "OfType BaseEventType (a supertype)",
            [element(FO.OfType, ua.LiteralOperand(Value=ua.Variant(ua.NodeId(ua.ObjectIds.BaseEventType))))],
            lambda c: True,
        ),
        (
            "OfType AuditEventType",
            [element(FO.OfType, ua.LiteralOperand(Value=ua.Variant(ua.NodeId(ua.ObjectIds.AuditEventType))))],
            lambda c: False,
        ),
    ]
    for name, where, keep in cases:
        expected = events_where(keep)
        assert (await read_events(gw, where)) == (ua.StatusCodes.Good, expected), name
        # Paged one event at a time: the same events, none repeated or skipped.
        assert (await read_events(gw, where, n=1)) == (ua.StatusCodes.Good, expected), name
    assert len(events_where(lambda c: c == 17)) == 2
    assert 0 < len(events_where(lambda c: describe(c).severity >= 500)) < len(EVENTS)


async def test_an_unsupported_where_operator_is_refused(gw: Running) -> None:
    where = [element(FO.Like, field(0, "Message"), literal("Power%", ua.VariantType.String))]
    status, rows = await read_events(gw, where)
    assert (status, rows) == (ua.StatusCodes.BadFilterOperatorUnsupported, [])
    where = [element(FO.BitwiseAnd, field(gw.ns, "EventCode"), literal(1, ua.VariantType.UInt16))]
    assert (await read_events(gw, where))[0] == ua.StatusCodes.BadFilterOperatorUnsupported
