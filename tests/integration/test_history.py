"""OPC UA Historical Access over the archive, read by a real asyncua client.

A synthetic archive is written for ``meter1`` before the gateway starts, in a past window
around 2026-03-29 (the European DST change: that local day has 23 hours, its UTC day 96
load-profile periods). Every expected value is computed here from that input and the
semantics stated in :mod:`gateway.opcua.history` / :mod:`gateway.archive.aggregates`; the
live simulated meter only writes today's files, far from the window.

One gateway serves the whole module (read-only queries against a fixed archive).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from asyncua import ua

from gateway.archive.files import ArchiveWriter, Column
from gateway.opcua.history import PAGE_LIMIT
from tests.support.harness import Running, over_archive, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

UNSPECIFIED = ua.get_win_epoch()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- the synthetic archive ------------------------------------------------------------------

PERIOD = timedelta(minutes=15)
LP_ORIGIN = utc(2026, 3, 27)
#: Periods ending 10:15 ... 11:00 on 2026-03-28 are missing (the meter was off).
LP_GAP = (utc(2026, 3, 28, 10, 15), utc(2026, 3, 28, 11, 0))
LP_CHANNELS = ("1-0:1.29.0", "1-0:2.29.0", "1-0:3.29.0", "1-0:4.29.0")


def _lp_row(k: int) -> tuple[float, float, float, float]:
    return (0.25 * (1 + (k * 5) % 8), 0.5 * (k % 3), 0.125 * (k % 5), 0.0)


#: (period end, A+ of the period) of channel 1-0:1.29.0, three UTC days.
LP1: list[tuple[datetime, float]] = []
LP1_ROWS: list[tuple[datetime, int, tuple[float, ...]]] = []
for _k in range(1, 3 * 96 + 1):
    _t = LP_ORIGIN + _k * PERIOD
    if LP_GAP[0] <= _t <= LP_GAP[1]:
        continue
    LP1_ROWS.append((_t, 8 if _k % 10 == 0 else 0, _lp_row(_k)))
    LP1.append((_t, _lp_row(_k)[0]))

REG_ORIGIN = utc(2026, 3, 29)
REG_STEP = timedelta(minutes=10)
REG_COLUMNS = (
    Column("1-0:1.8.0", "kWh"),
    Column("1-0:2.8.0", "kWh"),
    Column("1-0:3.8.0", "kvarh"),
    Column("1-0:4.8.0", "kvarh"),
)


def _register(n: int) -> float:
    """A+ register after ``n`` steps: increments 0.25, 0.5, 0.75, 1.0, 0.25, ..."""
    return 1000.0 + sum(0.25 * (1 + i % 4) for i in range(n))


#: (time, value) of the register 1-0:1.8.0: every 10 minutes of 2026-03-29.
REG = [(REG_ORIGIN + n * REG_STEP, _register(n)) for n in range(144)]
#: A register read apart at 00:05 (only 1-0:2.8.0): not a sample of 1-0:1.8.0.
REG_APART = REG_ORIGIN + timedelta(minutes=5)

MIN_ORIGIN = utc(2026, 3, 29, 12)
#: Minutes 12:30 ... 12:34 have no record.
MIN_GAP = range(30, 35)


def _minute(m: int) -> tuple[float, float, float, int]:
    """(mean, min, max, count) of 1-0:1.7.0 in minute ``m`` after 12:00."""
    mean = 2.0 + 0.5 * (m % 5)
    return mean, mean - 0.25, mean + 0.75, 30 if m % 3 == 0 else 60


MINUTES = [(MIN_ORIGIN + timedelta(minutes=m), _minute(m)) for m in range(60) if m not in MIN_GAP]

#: (time, status, code): two events share 08:00:00.
EVENTS = [
    (utc(2026, 3, 28, 22, 0), 0, 1),
    (utc(2026, 3, 28, 22, 5, 30), 0, 2),
    (utc(2026, 3, 29, 1, 0), 0, 3),
    (utc(2026, 3, 29, 8, 0), 16, 40),
    (utc(2026, 3, 29, 8, 0), 16, 41),
    (utc(2026, 3, 29, 9, 30), 0, 76),
    (utc(2026, 3, 29, 9, 30, 5), 0, 82),
]
EVENT_NAMES = {1: ("Power down", 600), 2: ("Power up", 400), 3: ("Daylight saving time changed", 100)}
EVENT_NAMES |= {40: ("Terminal cover opened", 800), 41: ("Terminal cover closed", 500)}
EVENT_NAMES |= {76: ("Voltage sag L1", 500), 82: ("Voltage normal L1", 200)}


def write_archive(root: Path) -> None:
    writer = ArchiveWriter(root, "meter1")
    try:
        writer.append("lp1", [Column(c, "kWh") for c in LP_CHANNELS], LP1_ROWS)
        rows: list[tuple[datetime, int, tuple[float | None, ...]]] = []
        for n, (t, value) in enumerate(REG):
            rows.append((t, 0, (value, 20.0 + n, 300.0 + n, 5.0)))
            if t < REG_APART < t + REG_STEP:
                rows.append((REG_APART, 0, (None, 20.5, None, None)))
        writer.append("registers", REG_COLUMNS, rows)
        minute_columns = [
            Column(obis, unit, q)
            for obis, unit in (("1-0:1.7.0", "kW"), ("1-0:32.7.0", "V"))
            for q, unit in (("mean", unit), ("min", unit), ("max", unit), ("count", ""))
        ]
        minute_rows = []
        for t, (mean, low, high, count) in MINUTES:
            volts = 230.0 + 0.5 * (t.minute % 4)
            minute_rows.append((t, 0, (mean, low, high, float(count), volts, volts - 1, volts + 1, 60.0)))
        writer.append("minute", minute_columns, minute_rows)
        writer.append(
            "events", [Column("0-0:99.98.0", "", "code")], [(t, s, (float(c),)) for t, s, c in EVENTS]
        )
    finally:
        writer.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    root = tmp_path_factory.mktemp("history") / "archive"
    write_archive(root)
    async with running_gateway(over_archive(root)) as running:
        yield running


LP_NODE = "meter1.P.01.1-0:1.29.0"
REG_NODE = "meter1.1-0:1.8.0"
MIN_NODE = "meter1.1-0:1.7.0"


# -- helpers --------------------------------------------------------------------------------


def raw_details(
    start: datetime | None, end: datetime | None, n: int = 0, bounds: bool = False
) -> ua.ReadRawModifiedDetails:
    return ua.ReadRawModifiedDetails(
        IsReadModified=False,
        StartTime=start or UNSPECIFIED,
        EndTime=end or UNSPECIFIED,
        NumValuesPerNode=n,
        ReturnBounds=bounds,
    )


def processed_details(start: datetime, end: datetime, interval: timedelta, aggregate: int) -> Any:
    return ua.ReadProcessedDetails(
        StartTime=start,
        EndTime=end,
        ProcessingInterval=interval / timedelta(milliseconds=1),
        AggregateType=[ua.NodeId(aggregate)],
        AggregateConfiguration=ua.AggregateConfiguration(UseServerCapabilitiesDefaults=True),
    )


def at_time(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def pairs(values: Sequence[ua.DataValue]) -> list[tuple[datetime | None, Any]]:
    return [(at_time(v.SourceTimestamp), v.Value.Value) for v in values]


def status(v: ua.DataValue | ua.HistoryReadResult) -> int:
    return int(v.StatusCode.value)


def severity(code: int) -> int:
    """The StatusCode without its info bits (Good / Uncertain / Bad and the sub code)."""
    return code & 0xFFFF0000


async def read(node: Any, details: Any, cont: bytes | None = None) -> ua.HistoryReadResult:
    result: ua.HistoryReadResult = await node.history_read(details, cont)
    return result


async def read_pages(node: Any, details: Any) -> tuple[list[ua.DataValue], int]:
    """Every page of one request, following the continuation points; and how many pages."""
    values: list[ua.DataValue] = []
    cont: bytes | None = None
    pages = 0
    while True:
        result = await read(node, details, cont)
        assert ua.StatusCode(result.StatusCode.value).is_good(), result.StatusCode
        values += result.HistoryData.DataValues
        pages += 1
        cont = result.ContinuationPoint
        if not cont:
            return values, pages
        assert pages < 1000, "continuation points never end"


async def history_read(
    gw: Running, node_id: ua.NodeId, details: Any, cont: bytes | None = None, release: bool = False
) -> ua.HistoryReadResult:
    params = ua.HistoryReadParameters()
    params.HistoryReadDetails = details
    params.TimestampsToReturn = ua.TimestampsToReturn.Both
    params.ReleaseContinuationPoints = release
    params.NodesToRead.append(ua.HistoryReadValueId(NodeId=node_id, ContinuationPoint=cont))
    results: list[ua.HistoryReadResult] = await gw.client.uaclient.history_read(params)
    return results[0]


def window(
    series: Sequence[tuple[datetime, Any]], keep: Callable[[datetime], bool]
) -> list[tuple[datetime | None, Any]]:
    return [(t, v) for t, v in series if keep(t)]


# -- ReadRaw --------------------------------------------------------------------------------


async def test_raw_forward_is_start_inclusive_end_exclusive_in_time_order(gw: Running) -> None:
    start, end = utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0)
    result = await read(gw.node(LP_NODE), raw_details(start, end))
    assert status(result) == ua.StatusCodes.Good
    values = result.HistoryData.DataValues
    assert pairs(values) == window(LP1, lambda t: start <= t < end)
    assert len(values) == 8  # 00:00 (the period ending then) ... 01:45
    assert all(status(v) == ua.StatusCodes.Good for v in values)
    assert all(v.Value.VariantType == ua.VariantType.Double for v in values)

    # Registers: every sample of 1-0:1.8.0, not the line that only holds 1-0:2.8.0.
    result = await read(gw.node(REG_NODE), raw_details(REG_ORIGIN, REG_ORIGIN + timedelta(hours=1)))
    got = pairs(result.HistoryData.DataValues)
    assert got == window(REG, lambda t: t < REG_ORIGIN + timedelta(hours=1))
    assert REG_APART not in [t for t, _ in got]

    # Minute records: the minute mean, stamped at the minute's start; the gap stays a gap.
    result = await read(gw.node(MIN_NODE), raw_details(MIN_ORIGIN, MIN_ORIGIN + timedelta(hours=1)))
    assert pairs(result.HistoryData.DataValues) == [(t, rec[0]) for t, rec in MINUTES]


async def test_raw_reverse_when_start_is_after_end(gw: Running) -> None:
    start, end = utc(2026, 3, 29, 2, 0), utc(2026, 3, 29, 0, 0)
    result = await read(gw.node(LP_NODE), raw_details(start, end))
    expected = window(LP1, lambda t: end < t <= start)[::-1]
    assert pairs(result.HistoryData.DataValues) == expected
    assert expected[0][0] == start
    assert expected[-1][0] == end + PERIOD


async def test_raw_open_ended_reads_need_and_honour_num_values(gw: Running) -> None:
    node = gw.node(LP_NODE)
    start = utc(2026, 3, 28, 9, 50)  # just before the gap
    result = await read(node, raw_details(start, None, n=5))
    assert pairs(result.HistoryData.DataValues) == window(LP1, lambda t: t >= start)[:5]
    assert result.ContinuationPoint, "more values follow"

    end = utc(2026, 3, 28, 11, 20)  # just after the gap, not on a period end
    result = await read(node, raw_details(None, end, n=3))
    assert pairs(result.HistoryData.DataValues) == window(LP1, lambda t: t <= end)[::-1][:3]

    # Only one time and no NumValuesPerNode: the range is unbounded, which is not allowed.
    result = await read(node, raw_details(start, None))
    assert status(result) == ua.StatusCodes.BadHistoryOperationInvalid


#: Raw windows of channel 1-0:1.29.0 (no edge on a period end): across the gap, and
#: across the midnight that separates two day files.
RAW_WINDOWS = {
    "gap": (utc(2026, 3, 28, 8, 5), utc(2026, 3, 28, 13, 5)),
    "midnight": (utc(2026, 3, 28, 22, 50), utc(2026, 3, 29, 1, 10)),
}


@pytest.mark.parametrize("size", [1, 7, 17])
@pytest.mark.parametrize("where", list(RAW_WINDOWS))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("bounds", [False, True], ids=["plain", "bounds"])
async def test_raw_pages_concatenate_to_the_unpaged_result(
    gw: Running, reverse: bool, bounds: bool, where: str, size: int
) -> None:
    node = gw.node(LP_NODE)
    start, end = RAW_WINDOWS[where]
    if reverse:
        start, end = end, start
    whole = await read(node, raw_details(start, end, bounds=bounds))
    assert not whole.ContinuationPoint
    paged, pages = await read_pages(node, raw_details(start, end, n=size, bounds=bounds))
    assert pairs(paged) == pairs(whole.HistoryData.DataValues)
    lo, hi = min(start, end), max(start, end)
    inside = window(LP1, (lambda t: lo < t <= hi) if reverse else (lambda t: lo <= t < hi))
    expected = inside[::-1] if reverse else inside
    if bounds:  # the values just outside the edges (none lies on an edge here)
        before = window(LP1, lambda t: t < lo)[-1]
        after = window(LP1, lambda t: t > hi)[0]
        expected = [after, *expected, before] if reverse else [before, *expected, after]
    assert pairs(paged) == expected
    # Full pages only, and no empty page at the end (size 17 leaves the end bound alone).
    assert pages == -(-len(expected) // size)


async def test_raw_pages_of_one_value_each(gw: Running) -> None:
    node = gw.node(REG_NODE)
    start, end = REG_ORIGIN, REG_ORIGIN + timedelta(hours=2)
    paged, pages = await read_pages(node, raw_details(start, end, n=1))
    assert pairs(paged) == window(REG, lambda t: start <= t < end)
    assert pages == 12


async def test_raw_return_bounds(gw: Running) -> None:
    node = gw.node(LP_NODE)
    # The start lies in the gap: the bound is the last value before it; the end lies on a
    # period end: that value is the end bound.
    start, end = utc(2026, 3, 28, 10, 7), utc(2026, 3, 28, 12, 0)
    result = await read(node, raw_details(start, end, bounds=True))
    got = pairs(result.HistoryData.DataValues)
    assert got[0] == (utc(2026, 3, 28, 10, 0), dict(LP1)[utc(2026, 3, 28, 10, 0)])
    assert got[1:-1] == window(LP1, lambda t: start <= t < end)
    assert got[-1] == (end, dict(LP1)[end])
    assert all(status(v) == ua.StatusCodes.Good for v in result.HistoryData.DataValues)

    # A start on a stored value: that value is its own bound, not repeated.
    start = utc(2026, 3, 28, 12, 0)
    result = await read(node, raw_details(start, start + timedelta(hours=1), bounds=True))
    got = pairs(result.HistoryData.DataValues)
    assert got == window(LP1, lambda t: start <= t <= start + timedelta(hours=1))

    # Nothing before the archive's first value: BadBoundNotFound, stamped at the start.
    start, end = utc(2026, 3, 26, 23, 0), utc(2026, 3, 27, 1, 0)
    result = await read(node, raw_details(start, end, bounds=True))
    values = result.HistoryData.DataValues
    assert status(values[0]) == ua.StatusCodes.BadBoundNotFound
    assert at_time(values[0].SourceTimestamp) == start
    assert values[0].Value.Value is None
    assert pairs(values[1:]) == window(LP1, lambda t: start <= t <= end)

    # Reverse from the archive's start: the far bound (before the end time) is not found.
    start, end = utc(2026, 3, 27, 1, 0), utc(2026, 3, 26, 20, 0)
    result = await read(node, raw_details(start, end, bounds=True))
    values = result.HistoryData.DataValues
    assert pairs(values[:-1]) == window(LP1, lambda t: t <= start)[::-1]
    assert status(values[-1]) == ua.StatusCodes.BadBoundNotFound
    assert at_time(values[-1].SourceTimestamp) == end


async def test_raw_read_of_an_empty_range_is_good_no_data(gw: Running) -> None:
    result = await read(gw.node(LP_NODE), raw_details(utc(2026, 3, 28, 10, 1), utc(2026, 3, 28, 10, 59)))
    assert status(result) == ua.StatusCodes.GoodNoData
    assert result.HistoryData.DataValues == []
    assert not result.ContinuationPoint


async def test_foreign_or_damaged_continuation_points_are_refused_and_release_succeeds(
    gw: Running,
) -> None:
    node = gw.node(LP_NODE)
    details = raw_details(utc(2026, 3, 29), utc(2026, 3, 30), n=10)
    first = await read(node, details)
    cont = first.ContinuationPoint
    assert cont
    # Garbage, and a point that belongs to another request (other times, other node).
    assert status(await read(node, details, b"not a point")) == ua.StatusCodes.BadContinuationPointInvalid
    other = raw_details(utc(2026, 3, 28), utc(2026, 3, 30), n=10)
    assert status(await read(node, other, cont)) == ua.StatusCodes.BadContinuationPointInvalid
    reg = gw.node("meter1.P.01.1-0:2.29.0")
    assert status(await read(reg, details, cont)) == ua.StatusCodes.BadContinuationPointInvalid
    # Released: Good and nothing returned.
    released = await history_read(gw, node.nodeid, details, cont, release=True)
    assert status(released) == ua.StatusCodes.Good
    assert not released.ContinuationPoint
    assert not (released.HistoryData and released.HistoryData.DataValues)
    # The point still names the next page (stateless): the rest follows without a repeat.
    rest = await read(node, details, cont)
    day = window(LP1, lambda t: utc(2026, 3, 29) <= t < utc(2026, 3, 30))
    assert pairs(first.HistoryData.DataValues) == day[:10]
    assert pairs(rest.HistoryData.DataValues) == day[10:20]


async def test_nodes_without_history_refuse_history_read(gw: Running) -> None:
    node = gw.node("meter1.Diagnostics.Cycles")
    result = await read(node, raw_details(utc(2026, 3, 29), utc(2026, 3, 30)))
    assert status(result) == ua.StatusCodes.BadHistoryOperationUnsupported
    access = await node.read_attribute(ua.AttributeIds.AccessLevel)
    assert not access.Value.Value & ua.AccessLevel.HistoryRead.mask


# -- ReadProcessed --------------------------------------------------------------------------


def lp_intervals(
    start: datetime, end: datetime, step: timedelta
) -> list[tuple[datetime, datetime, list[float]]]:
    """The period values per processing interval: a period ending at t covers [t - 15 min, t)."""
    out = []
    a = start
    while a < end:
        b = min(a + step, end)
        out.append((a, b, [v for t, v in LP1 if a <= t - PERIOD < b]))
        a = b
    return out


AVERAGE = ua.ObjectIds.AggregateFunction_Average
CALCULATED, INTERPOLATED, RAW, PARTIAL, MULTI_VALUE = 0x0401, 0x0402, 0x0400, 0x0004, 0x0010


async def test_processed_load_profile_aggregates_with_a_partial_last_interval(gw: Running) -> None:
    node = gw.node(LP_NODE)
    start, end, step = utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 30), timedelta(hours=1)
    expected = lp_intervals(start, end, step)
    assert [len(v) for _, _, v in expected] == [4, 4, 2]

    cases: list[tuple[str, int, Callable[[list[float]], float], int]] = [
        ("Average", AVERAGE, lambda v: sum(v) / len(v), CALCULATED),
        # Calculated: the extreme is never on the interval's start (a period's stamp is its end).
        ("Minimum", ua.ObjectIds.AggregateFunction_Minimum, min, CALCULATED),
        ("Maximum", ua.ObjectIds.AggregateFunction_Maximum, max, CALCULATED),
        ("Count", ua.ObjectIds.AggregateFunction_Count, len, CALCULATED),
        ("Total", ua.ObjectIds.AggregateFunction_Total, sum, CALCULATED),
        ("Start", ua.ObjectIds.AggregateFunction_Start, lambda v: v[0], RAW),
        ("End", ua.ObjectIds.AggregateFunction_End, lambda v: v[-1], RAW),
    ]
    for name, aggregate, fn, bits in cases:
        result = await read(node, processed_details(start, end, step, aggregate))
        assert status(result) == ua.StatusCodes.Good, name
        values = result.HistoryData.DataValues
        assert [v.Value.Value for v in values] == pytest.approx([fn(v) for _, _, v in expected]), name
        assert [status(v) for v in values] == [bits, bits, bits | PARTIAL], name
        if name == "Start":  # the stored value with its own time stamp (a period end)
            assert [at_time(v.SourceTimestamp) for v in values] == [a + PERIOD for a, _, _ in expected]
        elif name == "End":
            assert [at_time(v.SourceTimestamp) for v in values] == [b for _, b, _ in expected]
        else:  # stamped at the interval's start
            assert [at_time(v.SourceTimestamp) for v in values] == [a for a, _, _ in expected]
        if name == "Count":
            assert all(v.Value.VariantType == ua.VariantType.Int32 for v in values)


async def test_processed_interval_without_data_is_bad_no_data_and_count_zero(gw: Running) -> None:
    node = gw.node(LP_NODE)
    start, end, step = utc(2026, 3, 28, 9, 0), utc(2026, 3, 28, 12, 0), timedelta(hours=1)
    expected = lp_intervals(start, end, step)
    assert [len(v) for _, _, v in expected] == [4, 0, 4]
    result = await read(node, processed_details(start, end, step, AVERAGE))
    values = result.HistoryData.DataValues
    assert [status(v) for v in values] == [CALCULATED, ua.StatusCodes.BadNoData, CALCULATED]
    assert values[1].Value.Value is None
    assert at_time(values[1].SourceTimestamp) == utc(2026, 3, 28, 10, 0)
    assert values[0].Value.Value == pytest.approx(sum(expected[0][2]) / 4)

    result = await read(node, processed_details(start, end, step, ua.ObjectIds.AggregateFunction_Count))
    assert [v.Value.Value for v in result.HistoryData.DataValues] == [4, 0, 4]
    assert severity(status(result.HistoryData.DataValues[1])) == ua.StatusCodes.Good

    # An interval half covered (10:30 - 11:30: the periods from 11:00 on) is Uncertain.
    start = utc(2026, 3, 28, 10, 30)
    result = await read(node, processed_details(start, start + step, step, AVERAGE))
    (value,) = result.HistoryData.DataValues
    assert status(value) == ua.StatusCodes.UncertainDataSubNormal | CALCULATED
    assert value.Value.Value == pytest.approx(sum(lp_intervals(start, start + step, step)[0][2]) / 2)


async def test_processed_unsupported_aggregate_and_invalid_requests(gw: Running) -> None:
    node = gw.node(LP_NODE)
    start, end, step = utc(2026, 3, 29), utc(2026, 3, 29, 2), timedelta(hours=1)
    sdev = ua.ObjectIds.AggregateFunction_StandardDeviationSample
    result = await read(node, processed_details(start, end, step, sdev))
    assert status(result) == ua.StatusCodes.BadAggregateNotSupported
    result = await read(node, processed_details(start, start, step, AVERAGE))
    assert status(result) == ua.StatusCodes.BadHistoryOperationInvalid


async def test_processed_reverse_intervals_run_back_from_the_start_time(gw: Running) -> None:
    node = gw.node(LP_NODE)
    start, end, step = utc(2026, 3, 29, 2, 30), utc(2026, 3, 29, 0, 0), timedelta(hours=1)
    result = await read(node, processed_details(start, end, step, ua.ObjectIds.AggregateFunction_Total))
    values = result.HistoryData.DataValues
    # [01:30, 02:30), [00:30, 01:30), [00:00, 00:30) - the last one partial.
    expected = [
        lp_intervals(utc(2026, 3, 29, 1, 30), start, step)[0],
        lp_intervals(utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30), step)[0],
        lp_intervals(end, utc(2026, 3, 29, 0, 30), step)[0],
    ]
    assert [at_time(v.SourceTimestamp) for v in values] == [a for a, _, _ in expected]
    assert [v.Value.Value for v in values] == pytest.approx([sum(v) for _, _, v in expected])
    assert [status(v) for v in values] == [CALCULATED, CALCULATED, CALCULATED | PARTIAL]


async def test_processed_register_delta_and_delta_bounds(gw: Running) -> None:
    node = gw.node(REG_NODE)
    value = dict(REG)

    def reg_at(t: datetime) -> float:
        """Linear between the two samples around ``t``."""
        before = max(s for s in value if s <= t)
        after = min(s for s in value if s >= t)
        if before == after:
            return value[t]
        share = (t - before) / (after - before)
        return value[before] + share * (value[after] - value[before])

    start, step = REG_ORIGIN, timedelta(hours=1)
    result = await read(
        node, processed_details(start, start + 3 * step, step, ua.ObjectIds.AggregateFunction_Delta)
    )
    values = result.HistoryData.DataValues
    # Last minus first sample inside each hour (xx:00 ... xx:50).
    expected = [value[start + i * step + 5 * REG_STEP] - value[start + i * step] for i in range(3)]
    assert [v.Value.Value for v in values] == pytest.approx(expected)
    assert [status(v) for v in values] == [CALCULATED] * 3

    # DeltaBounds over intervals starting off the samples: interpolated edges, and the
    # consecutive deltas add up to the whole range's.
    start = REG_ORIGIN + timedelta(minutes=4)
    bounds = ua.ObjectIds.AggregateFunction_DeltaBounds
    result = await read(node, processed_details(start, start + 3 * step, step, bounds))
    values = result.HistoryData.DataValues
    expected = [reg_at(start + (i + 1) * step) - reg_at(start + i * step) for i in range(3)]
    assert [v.Value.Value for v in values] == pytest.approx(expected)
    assert sum(v.Value.Value for v in values) == pytest.approx(reg_at(start + 3 * step) - reg_at(start))
    assert [status(v) for v in values] == [CALCULATED] * 3

    # Total of a counter means nothing: refused per interval.
    total = ua.ObjectIds.AggregateFunction_Total
    result = await read(node, processed_details(start, start + step, step, total))
    assert status(result.HistoryData.DataValues[0]) == ua.StatusCodes.BadAggregateInvalidInputs


def extreme_bits(pairs: Sequence[tuple[datetime, float]], start: datetime, pick: Any) -> int:
    """Minimum / Maximum's historian bits (OPC 10000-13 §5.4.3.10): Raw when the extreme is
    on the interval's start, else Calculated; MultiValue when it occurs more than once."""
    best = pick(v for _, v in pairs)
    at = [t for t, v in pairs if v == best]
    return (RAW if at[0] == start else CALCULATED) | (MULTI_VALUE if len(at) > 1 else 0)


async def test_processed_minute_records_aggregate_the_minute_means(gw: Running) -> None:
    """The raw values of a 1-second value are its minute means: Average, Minimum, Maximum
    and Count are theirs (the 1-second extremes are the MinuteMinimum/Maximum series)."""
    node = gw.node(MIN_NODE)
    step = timedelta(minutes=10)
    start, end = MIN_ORIGIN, MIN_ORIGIN + timedelta(hours=1)
    groups = [
        [(t, rec[0]) for t, rec in MINUTES if MIN_ORIGIN + i * step <= t < MIN_ORIGIN + (i + 1) * step]
        for i in range(6)
    ]
    starts = [MIN_ORIGIN + i * step for i in range(6)]
    assert [len(g) for g in groups] == [10, 10, 10, 5, 10, 10]
    # The 12:30 interval lacks five minutes of ten: Uncertain; the others are Good.
    uncertain = [0, 0, 0, ua.StatusCodes.UncertainDataSubNormal, 0, 0]
    cases: list[tuple[int, Callable[[list[tuple[datetime, float]]], float], list[int]]] = [
        (AVERAGE, lambda g: sum(v for _, v in g) / len(g), [u | CALCULATED for u in uncertain]),
        (
            ua.ObjectIds.AggregateFunction_Minimum,
            lambda g: min(v for _, v in g),
            [u | extreme_bits(g, a, min) for u, g, a in zip(uncertain, groups, starts, strict=True)],
        ),
        (
            ua.ObjectIds.AggregateFunction_Maximum,
            lambda g: max(v for _, v in g),
            [u | extreme_bits(g, a, max) for u, g, a in zip(uncertain, groups, starts, strict=True)],
        ),
        (ua.ObjectIds.AggregateFunction_Count, len, [u | CALCULATED for u in uncertain]),
    ]
    for aggregate, fn, codes in cases:
        result = await read(node, processed_details(start, end, step, aggregate))
        values = result.HistoryData.DataValues
        assert [v.Value.Value for v in values] == pytest.approx([fn(g) for g in groups]), aggregate
        assert [status(v) for v in values] == codes, aggregate


async def test_processed_dst_day_has_96_quarter_hours_in_utc(gw: Running) -> None:
    start, end = utc(2026, 3, 29), utc(2026, 3, 30)
    berlin = ZoneInfo("Europe/Berlin")
    local_day = datetime(2026, 3, 30, tzinfo=berlin).astimezone(UTC) - datetime(
        2026, 3, 29, tzinfo=berlin
    ).astimezone(UTC)
    assert local_day == timedelta(hours=23)  # the window really is the DST change
    node = gw.node(LP_NODE)

    result = await read(node, raw_details(start, end))
    stamps = [at_time(v.SourceTimestamp) for v in result.HistoryData.DataValues]
    assert stamps == [start + i * PERIOD for i in range(96)]

    total = ua.ObjectIds.AggregateFunction_Total
    result = await read(node, processed_details(start, end, PERIOD, total))
    values = result.HistoryData.DataValues
    assert len(values) == 96
    assert [at_time(v.SourceTimestamp) for v in values] == [start + i * PERIOD for i in range(96)]
    assert [v.Value.Value for v in values] == [v for t, v in LP1 if start < t <= end]
    assert all(status(v) == CALCULATED for v in values)

    result = await read(node, processed_details(start, end, timedelta(days=1), total))
    (day,) = result.HistoryData.DataValues
    assert day.Value.Value == pytest.approx(sum(v for t, v in LP1 if start < t <= end))


# -- ReadAtTime -----------------------------------------------------------------------------


async def test_read_at_time_stepped_interpolated_exact_and_before_the_data(gw: Running) -> None:
    lp = dict(LP1)
    t_lp = utc(2026, 3, 29, 0, 20)
    t_exact = utc(2026, 3, 29, 0, 30)
    details = ua.ReadAtTimeDetails(ReqTimes=[t_lp, t_exact, utc(2026, 3, 20)], UseSimpleBounds=True)
    result = await read(gw.node(LP_NODE), details)
    stepped, exact, early = result.HistoryData.DataValues
    assert stepped.Value.Value == lp[utc(2026, 3, 29, 0, 15)]  # the previous value holds
    assert status(stepped) == INTERPOLATED
    assert at_time(stepped.SourceTimestamp) == t_lp
    assert exact.Value.Value == lp[t_exact]
    assert status(exact) == RAW
    assert status(early) == ua.StatusCodes.BadNoData
    assert early.Value.Value is None

    reg = dict(REG)
    t = REG_ORIGIN + timedelta(minutes=4)
    before, after = reg[REG_ORIGIN], reg[REG_ORIGIN + REG_STEP]
    details = ua.ReadAtTimeDetails(ReqTimes=[t, REG_ORIGIN + REG_STEP], UseSimpleBounds=True)
    result = await read(gw.node(REG_NODE), details)
    between, on = result.HistoryData.DataValues
    assert between.Value.Value == pytest.approx(before + 0.4 * (after - before))
    assert status(between) == INTERPOLATED
    assert on.Value.Value == after
    assert status(on) == RAW


# -- events ---------------------------------------------------------------------------------


async def test_event_history_of_the_meter(gw: Running) -> None:
    meter = gw.node("meter1")
    event_type = gw.client.get_node(ua.NodeId(1100, gw.ns))
    start, end = utc(2026, 3, 28), utc(2026, 3, 30)
    events = await meter.read_event_history(start, end, evtypes=event_type)
    assert [(at_time(e.Time), e.EventCode) for e in events] == [(t, c) for t, _, c in EVENTS]
    for e, (_t, _s, code) in zip(events, EVENTS, strict=True):
        assert (e.Message.Text, e.Severity) == EVENT_NAMES[code]
        assert e.MeterId == "meter1"
        assert e.SourceName == "meter1"
        assert e.SourceNode == meter.nodeid
        assert e.EventType == event_type.nodeid
    # Every event has its own EventId, also the two of one second.
    assert len({e.EventId for e in events}) == len(EVENTS)
    # Read again: the same ids (a client de-duplicates by them).
    again = await meter.read_event_history(start, end, evtypes=event_type)
    assert [e.EventId for e in again] == [e.EventId for e in events]

    # Reverse: newest first; the end time is exclusive.
    events = await meter.read_event_history(
        utc(2026, 3, 29, 9, 30, 5), utc(2026, 3, 29, 1, 0), evtypes=event_type
    )
    assert [e.EventCode for e in events] == [
        c for t, _, c in EVENTS if utc(2026, 3, 29, 1) < t <= utc(2026, 3, 29, 9, 30, 5)
    ][::-1]


def _select(ns: int, *paths: tuple[int, str]) -> ua.EventFilter:
    evfilter = ua.EventFilter()
    for index, name in paths:
        op = ua.SimpleAttributeOperand()
        op.TypeDefinitionId = ua.NodeId(ua.ObjectIds.BaseEventType)
        op.BrowsePath = [ua.QualifiedName(name, index if index >= 0 else ns)]
        op.AttributeId = ua.AttributeIds.Value
        evfilter.SelectClauses.append(op)
    return evfilter


async def test_event_history_with_select_clauses_pages_one_event_at_a_time(gw: Running) -> None:
    meter = gw.node("meter1")
    evfilter = _select(gw.ns, (-1, "EventCode"), (0, "Time"), (0, "Severity"), (-1, "MeterId"))
    start, end = utc(2026, 3, 28), utc(2026, 3, 30)
    details = ua.ReadEventDetails(StartTime=start, EndTime=end, NumValuesPerNode=1, Filter=evfilter)
    rows: list[list[ua.Variant]] = []
    cont: bytes | None = None
    while True:
        result = await history_read(gw, meter.nodeid, details, cont)
        assert status(result) == ua.StatusCodes.Good
        assert len(result.HistoryData.Events) <= 1
        rows += [e.EventFields for e in result.HistoryData.Events]
        cont = result.ContinuationPoint
        if not cont:
            break
        assert len(rows) <= len(EVENTS)
    assert [[f.Value for f in row[:2]] for row in rows] == [[c, t] for t, _, c in EVENTS]
    assert [row[2].Value for row in rows] == [EVENT_NAMES[c][1] for _, _, c in EVENTS]
    assert all(row[3].Value == "meter1" for row in rows)
    assert all(row[0].VariantType == ua.VariantType.UInt16 for row in rows)

    # Two events of one second: a page boundary between them neither repeats nor skips.
    details = ua.ReadEventDetails(
        StartTime=utc(2026, 3, 29, 8, 0), EndTime=end, NumValuesPerNode=1, Filter=evfilter
    )
    first = await history_read(gw, meter.nodeid, details)
    second = await history_read(gw, meter.nodeid, details, first.ContinuationPoint)
    assert [
        first.HistoryData.Events[0].EventFields[0].Value,
        second.HistoryData.Events[0].EventFields[0].Value,
    ] == [40, 41]

    # A foreign continuation point.
    other = ua.ReadEventDetails(
        StartTime=start, EndTime=end, NumValuesPerNode=2, Filter=_select(gw.ns, (0, "Time"))
    )
    refused = await history_read(gw, meter.nodeid, other, first.ContinuationPoint)
    assert status(refused) == ua.StatusCodes.BadContinuationPointInvalid


# -- what the server announces --------------------------------------------------------------


async def test_history_capabilities_and_aggregate_functions(gw: Running) -> None:
    def cap(name: str) -> Any:
        return gw.client.get_node(ua.NodeId(getattr(ua.ObjectIds, f"HistoryServerCapabilities_{name}")))

    assert await cap("AccessHistoryDataCapability").read_value() is True
    assert await cap("ServerTimestampSupported").read_value() is False
    assert await cap("AccessHistoryEventsCapability").read_value() is True
    assert await cap("MaxReturnDataValues").read_value() == PAGE_LIMIT
    assert await cap("InsertDataCapability").read_value() is False
    folder = gw.client.get_node(ua.NodeId(ua.ObjectIds.HistoryServerCapabilities_AggregateFunctions))
    listed = {child.nodeid for child in await folder.get_children()}
    for name in ("Average", "Minimum", "Maximum", "Count", "Total", "Delta", "DeltaBounds", "Start", "End"):
        assert ua.NodeId(getattr(ua.ObjectIds, f"AggregateFunction_{name}")) in listed, name
    assert ua.NodeId(ua.ObjectIds.AggregateFunction_StandardDeviationSample) not in listed


@pytest.mark.parametrize("identifier", [LP_NODE, REG_NODE, MIN_NODE])
async def test_historized_nodes_announce_history_read(gw: Running, identifier: str) -> None:
    node = gw.node(identifier)
    access = (await node.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value
    user = (await node.read_attribute(ua.AttributeIds.UserAccessLevel)).Value.Value
    assert access & ua.AccessLevel.HistoryRead.mask
    assert user & ua.AccessLevel.HistoryRead.mask
    assert (await node.read_attribute(ua.AttributeIds.Historizing)).Value.Value is True
    notifier = (await gw.node("meter1").read_attribute(ua.AttributeIds.EventNotifier)).Value.Value
    assert notifier & ua.EventNotifier.HistoryRead.mask


async def test_processed_pages_past_the_page_limit_keep_the_partial_last_interval(gw: Running) -> None:
    node = gw.node(LP_NODE)
    step = timedelta(seconds=1)
    start = utc(2026, 3, 29)
    # The second page is only the last, half-second interval.
    end = start + PAGE_LIMIT * step + timedelta(milliseconds=500)
    count = ua.ObjectIds.AggregateFunction_Count
    values, pages = await read_pages(node, processed_details(start, end, step, count))
    assert pages == 2
    stamps = [start + i * step for i in range(PAGE_LIMIT + 1)]
    assert [at_time(v.SourceTimestamp) for v in values] == stamps
    # A period belongs to the second its span starts in: one at each quarter hour.
    keys = {t - PERIOD for t, _ in LP1}
    assert [v.Value.Value for v in values] == [1 if t in keys else 0 for t in stamps]
    assert [status(v) & PARTIAL for v in values] == [0] * PAGE_LIMIT + [PARTIAL]


async def test_raw_read_at_one_instant_returns_the_value_stored_then(gw: Running) -> None:
    t = utc(2026, 3, 29, 0, 30)
    result = await read(gw.node(LP_NODE), raw_details(t, t))
    assert pairs(result.HistoryData.DataValues) == [(t, dict(LP1)[t])]


async def test_one_request_for_several_nodes_and_the_time_stamps_asked_for(gw: Running) -> None:
    start, end = utc(2026, 3, 29), utc(2026, 3, 29, 1)
    params = ua.HistoryReadParameters()
    params.HistoryReadDetails = raw_details(start, end)
    params.TimestampsToReturn = ua.TimestampsToReturn.Source
    params.ReleaseContinuationPoints = False  # asyncua's default is True
    for identifier in (LP_NODE, "meter1.Diagnostics.Cycles", REG_NODE):
        params.NodesToRead.append(ua.HistoryReadValueId(NodeId=gw.node(identifier).nodeid))
    lp, diag, reg = await gw.client.uaclient.history_read(params)
    assert pairs(lp.HistoryData.DataValues) == window(LP1, lambda t: start <= t < end)
    assert status(diag) == ua.StatusCodes.BadHistoryOperationUnsupported
    assert pairs(reg.HistoryData.DataValues) == window(REG, lambda t: start <= t < end)
    assert all(v.ServerTimestamp is None for v in [*lp.HistoryData.DataValues, *reg.HistoryData.DataValues])

    # The archive keeps the meter's time only: "Both" gets it as the source stamp, and
    # a server stamp alone is not offered (ServerTimestampSupported is false).
    params.TimestampsToReturn = ua.TimestampsToReturn.Both
    lp, _diag, _reg = await gw.client.uaclient.history_read(params)
    assert pairs(lp.HistoryData.DataValues) == window(LP1, lambda t: start <= t < end)
    assert all(v.ServerTimestamp is None for v in lp.HistoryData.DataValues)
    params.TimestampsToReturn = ua.TimestampsToReturn.Server
    results = await gw.client.uaclient.history_read(params)
    assert [status(r) for r in results] == [ua.StatusCodes.BadTimestampNotSupported] * 3

    params.TimestampsToReturn = ua.TimestampsToReturn.Neither
    results = await gw.client.uaclient.history_read(params)
    assert [status(r) for r in results] == [ua.StatusCodes.BadTimestampsToReturnInvalid] * 3


async def test_event_ids_do_not_depend_on_the_read_direction(gw: Running) -> None:
    meter = gw.node("meter1")
    event_type = gw.client.get_node(ua.NodeId(1100, gw.ns))
    start, end = utc(2026, 3, 28), utc(2026, 3, 30)
    forward = await meter.read_event_history(start, end, evtypes=event_type)
    backward = await meter.read_event_history(end, start, evtypes=event_type)
    assert [e.EventCode for e in backward] == [c for _, _, c in EVENTS][::-1]
    assert {e.EventCode: e.EventId for e in backward} == {e.EventCode: e.EventId for e in forward}
    # Paged one event at a time, backwards: still the same ids, none twice, none missed.
    details = ua.ReadEventDetails(
        StartTime=end,
        EndTime=start,
        NumValuesPerNode=1,
        Filter=_select(gw.ns, (-1, "EventCode"), (0, "EventId")),
    )
    paged: list[tuple[int, bytes]] = []
    cont: bytes | None = None
    while True:
        result = await history_read(gw, meter.nodeid, details, cont)
        paged += [(e.EventFields[0].Value, e.EventFields[1].Value) for e in result.HistoryData.Events]
        cont = result.ContinuationPoint
        if not cont:
            break
        assert len(paged) <= len(EVENTS)
    assert paged == [(e.EventCode, e.EventId) for e in forward][::-1]
    # A window that starts at the shared second: the same ids again.
    later = await meter.read_event_history(utc(2026, 3, 29, 8), end, evtypes=event_type)
    assert {e.EventCode: e.EventId for e in later}.items() <= {
        e.EventCode: e.EventId for e in forward
    }.items()


async def test_processed_honours_the_clients_aggregate_configuration(gw: Running) -> None:
    node = gw.node(MIN_NODE)
    start, step = MIN_ORIGIN + timedelta(minutes=30), timedelta(minutes=10)  # half covered
    details = processed_details(start, start + step, step, AVERAGE)
    (value,) = (await read(node, details)).HistoryData.DataValues
    assert severity(status(value)) == ua.StatusCodes.UncertainDataSubNormal  # server default: 100 %
    details.AggregateConfiguration = ua.AggregateConfiguration(
        UseServerCapabilitiesDefaults=False, PercentDataGood=50, PercentDataBad=50
    )
    (value,) = (await read(node, details)).HistoryData.DataValues
    assert status(value) == CALCULATED
    group = [rec for t, rec in MINUTES if start <= t < start + step]
    assert value.Value.Value == pytest.approx(sum(m for m, *_ in group) / len(group))
    details.AggregateConfiguration = ua.AggregateConfiguration(
        UseServerCapabilitiesDefaults=False, PercentDataGood=101, PercentDataBad=50
    )
    result = await read(node, details)
    assert status(result) == ua.StatusCodes.BadAggregateConfigurationRejected


async def test_archive_diagnostics_are_published_from_the_start(gw: Running) -> None:
    """The meter's diagnostics show the archive's state before its first minute is written."""
    assert await gw.node("meter1.Diagnostics.ArchiveState").read_value() == "ok"
    assert await gw.node("meter1.Diagnostics.ArchiveLastError").read_value() == ""
    assert await gw.node("meter1.Diagnostics.ArchiveBacklog").read_value() == 0
