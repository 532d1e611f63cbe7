"""One semantics, two adapters: OPC UA HistoryRead and the REST history give the same answers.

What a history read means is decided once, in :mod:`gateway.archive.query`; the OPC UA
adapter (:mod:`gateway.opcua.history`) and the REST adapter (:mod:`gateway.web.api`) only
translate. This module asks both adapters the same questions over the same archive and
compares the answers, page by page:

* raw reads, forward and reverse, with and without bounds, cut into pages smaller than
  the data (the pages must split at the same places and add up to the unpaged answer);
* processed reads of all ten aggregates, with a Partial last interval, a gap in the
  data (BadNoData intervals), reverse intervals, and more intervals than one page holds;
* the meter's event log, paged, forward and reverse.

A row is (time, value, StatusCode name). REST gives the name without the info bits; the
OPC UA StatusCode masked to its code part (``& 0xFFFF0000``) is named by asyncua, not by
the gateway's own table, so a wrong name in either place shows. Values are compared
exactly: a double goes through OPC UA's binary encoding and through JSON's shortest repr
unchanged. Every REST answer is also checked against the served OpenAPI document.

The synthetic archive (``meter1``, around 2026-03-28/29) is written before the gateway
starts; the live simulated meter only writes today's files, far from the window. One
gateway serves the whole module (read-only queries).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from asyncua import ua
from yarl import URL

from gateway.archive.files import ArchiveWriter, Column
from gateway.archive.query import PAGE_LIMIT
from tests.support.harness import Running, over_archive, running_gateway
from tests.support.openapi_check import match_path, response_schema, validate

pytestmark = pytest.mark.asyncio(loop_scope="module")

METER = "meter1"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- the synthetic archive ------------------------------------------------------------------
# Values like 0.1 * 3 (0.30000000000000004) are chosen on purpose: they survive only an
# exact encoding.

PERIOD = timedelta(minutes=15)
LP_CHANNELS = ("1-0:1.29.0", "1-0:2.29.0", "1-0:3.29.0", "1-0:4.29.0")
LP_FIRST = utc(2026, 3, 28, 0, 15)  # the first period end: nothing before it
#: Periods ending 10:15 ... 11:00 on 2026-03-28 are missing (the meter was off).
LP_GAP = (utc(2026, 3, 28, 10, 15), utc(2026, 3, 28, 11, 0))
LP_ROWS: list[tuple[datetime, int, tuple[float | None, ...]]] = []
for _k in range(120):  # until 2026-03-29 06:00, across midnight (two day files)
    _t = LP_FIRST + _k * PERIOD
    if not LP_GAP[0] <= _t <= LP_GAP[1]:
        LP_ROWS.append((_t, 0, (0.1 * (1 + (_k * 7) % 11), 0.2 * (_k % 3), 0.05 * (_k % 5), 0.0)))

REG_STEP = timedelta(minutes=10)
REG_FIRST = utc(2026, 3, 28, 20, 0)
#: No register samples from 01:00 to 01:50 on 2026-03-29.
REG_GAP = (utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 50))
#: A line holding only 1-0:2.8.0: not a sample of 1-0:1.8.0.
REG_APART = REG_FIRST + timedelta(minutes=5)
REG_COLUMNS = (
    Column("1-0:1.8.0", "kWh"),
    Column("1-0:2.8.0", "kWh"),
    Column("1-0:3.8.0", "kvarh"),
    Column("1-0:4.8.0", "kvarh"),
)
REG_ROWS: list[tuple[datetime, int, tuple[float | None, ...]]] = []
_register = 1000.0
for _n in range(49):  # until 2026-03-29 04:00
    _t = REG_FIRST + _n * REG_STEP
    _register += 0.1 * (1 + _n % 4)
    if not REG_GAP[0] <= _t <= REG_GAP[1]:
        REG_ROWS.append((_t, 0, (_register, 20.0 + _n, 300.0 + _n, 5.0)))
    if _t < REG_APART < _t + REG_STEP:
        REG_ROWS.append((REG_APART, 0, (None, 20.5, None, None)))

MIN_FIRST = utc(2026, 3, 29, 12, 0)
#: Minutes 12:30 ... 12:39 have no record (a whole ten-minute interval).
MIN_GAP = range(30, 40)
MINUTE_COLUMNS = [
    Column(obis, unit, q)
    for obis, unit in (("1-0:1.7.0", "kW"), ("1-0:32.7.0", "V"))
    for q, unit in (("mean", unit), ("min", unit), ("max", unit), ("count", ""))
]
MINUTE_ROWS: list[tuple[datetime, int, tuple[float | None, ...]]] = []
for _m in range(120):  # until 13:59
    if _m in MIN_GAP:
        continue
    _kw = 1.5 + 0.1 * (_m % 7)
    _volts = 230.0 + 0.1 * (_m % 9)
    _count = 30.0 if _m % 4 == 0 else 60.0
    MINUTE_ROWS.append(
        (MIN_FIRST + timedelta(minutes=_m), 0,
         (_kw, _kw - 0.3, _kw + 0.7, _count, _volts, _volts - 1.3, _volts + 0.7, _count))
    )  # fmt: skip

#: (time, status, code): three events share 2026-03-29 08:00:00, two share 09:30:05.
EVENTS = [
    (utc(2026, 3, 28, 21, 0), 0, 1),
    (utc(2026, 3, 28, 22, 5, 30), 0, 2),
    (utc(2026, 3, 28, 23, 59, 59), 0, 5),
    (utc(2026, 3, 29, 1, 0), 0, 3),
    (utc(2026, 3, 29, 8, 0), 16, 40),
    (utc(2026, 3, 29, 8, 0), 16, 41),
    (utc(2026, 3, 29, 8, 0), 16, 40),
    (utc(2026, 3, 29, 9, 30), 0, 76),
    (utc(2026, 3, 29, 9, 30, 5), 0, 82),
    (utc(2026, 3, 29, 9, 30, 5), 0, 76),
    (utc(2026, 3, 29, 11, 0), 0, 6),
]


def write_archive(root: Path) -> None:
    writer = ArchiveWriter(root, METER)
    try:
        writer.append("lp1", [Column(c, "kWh") for c in LP_CHANNELS], LP_ROWS)
        writer.append("registers", REG_COLUMNS, REG_ROWS)
        writer.append("minute", MINUTE_COLUMNS, MINUTE_ROWS)
        writer.append(
            "events", [Column("0-0:99.98.0", "", "code")], [(t, s, (float(c),)) for t, s, c in EVENTS]
        )
    finally:
        writer.close()


# -- the two clients ------------------------------------------------------------------------

#: (time, value, StatusCode name without info bits).
Row = tuple[datetime, Any, str]
#: (time, event code, severity, message).
EventRow = tuple[datetime, int, int, str]


@dataclass
class Series:
    """One archived series as each adapter names it."""

    name: str
    node: str  # OPC UA string NodeId (namespace of the SMX)
    obis: str  # REST path
    #: The stored (time, raw value) pairs, to check that a case really reads data.
    stored: list[tuple[datetime, float]]


LP = Series(
    "lp", f"{METER}.P.01.1-0:1.29.0", "1-0:1.29.0", [(t, v[0]) for t, _, v in LP_ROWS if v[0] is not None]
)
REG = Series(
    "registers", f"{METER}.1-0:1.8.0", "1-0:1.8.0", [(t, v[0]) for t, _, v in REG_ROWS if v[0] is not None]
)
VOLTS = Series(
    "minute", f"{METER}.1-0:32.7.0", "1-0:32.7.0", [(t, v[4]) for t, _, v in MINUTE_ROWS if v[4] is not None]
)
SERIES = {s.name: s for s in (LP, REG, VOLTS)}


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def duration(step: timedelta) -> str:
    """An ISO 8601 duration as the REST API takes it (PT1H, PT7M, PT1S)."""
    seconds = step.total_seconds()
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "PT" + (f"{hours:.0f}H" if hours else "") + (f"{minutes:.0f}M" if minutes else "")
    return text + (f"{seconds:g}S" if seconds else "")


def at_time(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def code_name(code: int) -> str:
    """asyncua's name of the StatusCode's code part (Severity, SubCode; no info bits)."""
    return str(ua.StatusCode(code & 0xFFFF0000).name)


@dataclass
class Both:
    running: Running
    http: aiohttp.ClientSession
    base: str
    doc: dict[str, Any]

    def nodeid(self, identifier: str) -> ua.NodeId:
        return ua.NodeId(identifier, self.running.ns)

    async def rest(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """GET ``path``; the answer must be 200 and match the served OpenAPI document."""
        async with self.http.get(URL(self.base + path, encoded=True), params=params) as resp:
            body = await resp.text()
            where = f"GET {path} {params} -> {resp.status}"
            assert resp.status == 200, f"{where}: {body[:600]}"
            found = match_path(self.doc, path)
            assert found is not None, f"{where}: no documented path template matches"
            template, _ = found
            operation = self.doc["paths"][template]["get"]
            documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            assert set(params) <= documented, f"{where}: undocumented query parameters"
            schema = response_schema(self.doc, template, "get", resp.status)
            data = await resp.json()
            problems = validate(data, schema, self.doc)
            assert problems == [], f"{where}: the answer does not match the document:\n" + "\n".join(problems)
            assert isinstance(data, dict)
            return data

    async def rest_pages(self, path: str, params: dict[str, str], key: str = "values") -> list[list[Any]]:
        """Every page of a REST read, following ``next`` cursors to the end."""
        pages: list[list[Any]] = []
        cursor: str | None = None
        while True:
            data = await self.rest(path, {**params, **({"cursor": cursor} if cursor else {})})
            pages.append(data[key])
            cursor = data["next"]
            if cursor is None:
                return pages
            assert len(pages) < 1000, "the cursors never end"

    async def opc_pages(self, identifier: str, details: Any) -> list[Any]:
        """Every page of an OPC UA HistoryRead, following continuation points to the end:
        the HistoryData of each."""
        pages: list[Any] = []
        cont: bytes | None = None
        while True:
            params = ua.HistoryReadParameters()
            params.HistoryReadDetails = details
            params.TimestampsToReturn = ua.TimestampsToReturn.Source
            params.ReleaseContinuationPoints = False  # asyncua's default is True
            params.NodesToRead.append(
                ua.HistoryReadValueId(NodeId=self.nodeid(identifier), ContinuationPoint=cont)
            )
            (result,) = await self.running.client.uaclient.history_read(params)
            assert ua.StatusCode(result.StatusCode.value).is_good(), result.StatusCode
            pages.append(result.HistoryData)
            cont = result.ContinuationPoint
            if not cont:
                return pages
            assert len(pages) < 1000, "continuation points never end"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def both(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Both]:
    root = tmp_path_factory.mktemp("adapters") / "archive"
    write_archive(root)
    async with running_gateway(over_archive(root)) as running:
        base = running.gateway.web_url.rstrip("/")
        async with aiohttp.ClientSession() as http:  # anonymous: the demo reads without a login
            async with http.get(base + "/api/openapi.json") as resp:
                assert resp.status == 200
                doc = await resp.json()
            yield Both(running, http, base, doc)


def opc_rows(pages: list[Any]) -> list[list[Row]]:
    return [
        [(at_time(v.SourceTimestamp), v.Value.Value, code_name(v.StatusCode.value)) for v in page.DataValues]
        for page in pages
    ]


def opc_codes(pages: list[Any]) -> list[int]:
    """The full StatusCodes (with info bits) of every value of every page."""
    return [int(v.StatusCode.value) for page in pages for v in page.DataValues]


def rest_rows(pages: list[list[dict[str, Any]]]) -> list[list[Row]]:
    return [[(parse_iso(v["time"]), v["value"], v["status"]) for v in page] for page in pages]


def flat(pages: list[list[Any]]) -> list[Any]:
    return [row for page in pages for row in page]


# -- raw ------------------------------------------------------------------------------------

#: Raw windows (start < end) per series; most edges lie off the stored times.
RAW_WINDOWS: dict[str, dict[str, tuple[datetime, datetime]]] = {
    "lp": {
        "gap": (utc(2026, 3, 28, 8, 5), utc(2026, 3, 28, 12, 5)),
        "midnight": (utc(2026, 3, 28, 22, 50), utc(2026, 3, 29, 1, 10)),
        "archive-start": (utc(2026, 3, 27, 23, 0), utc(2026, 3, 28, 1, 5)),
        "on-samples": (utc(2026, 3, 28, 12, 0), utc(2026, 3, 28, 13, 30)),
    },
    "registers": {
        "gap": (utc(2026, 3, 29, 0, 5), utc(2026, 3, 29, 2, 35)),
        "archive-start": (utc(2026, 3, 28, 19, 30), utc(2026, 3, 28, 21, 3)),
        "on-samples": (utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 0, 0)),
    },
    "minute": {
        "gap": (utc(2026, 3, 29, 12, 20, 30), utc(2026, 3, 29, 12, 50, 30)),
        "archive-start": (utc(2026, 3, 29, 11, 50), utc(2026, 3, 29, 12, 5, 30)),
    },
}
RAW_CASES = [(series, where) for series, windows in RAW_WINDOWS.items() for where in windows]
#: Values per page: smaller than every window's data.
RAW_LIMIT = 3


@pytest.mark.parametrize("bounds", [False, True], ids=["plain", "bounds"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize(("series", "where"), RAW_CASES, ids=[f"{s}-{w}" for s, w in RAW_CASES])
async def test_raw_reads_agree_page_by_page(
    both: Both, series: str, where: str, reverse: bool, bounds: bool
) -> None:
    s = SERIES[series]
    lo, hi = RAW_WINDOWS[series][where]
    start, end = (hi, lo) if reverse else (lo, hi)
    path = f"/api/meters/{METER}/history/{s.obis}"
    params = {"start": iso(start), "end": iso(end), **({"bounds": "true"} if bounds else {})}

    def details(n: int) -> ua.ReadRawModifiedDetails:
        return ua.ReadRawModifiedDetails(
            IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=n, ReturnBounds=bounds
        )

    opc_whole = opc_rows(await both.opc_pages(s.node, details(0)))
    rest_whole = rest_rows(await both.rest_pages(path, params))
    assert len(opc_whole) == len(rest_whole) == 1, "the whole window fits one page"
    assert rest_whole == opc_whole

    opc_paged = opc_rows(await both.opc_pages(s.node, details(RAW_LIMIT)))
    rest_paged = rest_rows(await both.rest_pages(path, {**params, "limit": str(RAW_LIMIT)}))
    assert rest_paged == opc_paged, "the pages differ (in content or where they split)"
    assert flat(opc_paged) == opc_whole[0]
    assert len(opc_paged) > 1, "the case must page"
    assert all(len(page) == RAW_LIMIT for page in opc_paged[:-1])

    # The case reads what it claims to: the stored values, and the bounds as stated in
    # gateway.archive.query (the value at or beyond each edge; one on the first edge is
    # not repeated; BadBoundNotFound where there is none).
    assert opc_whole[0] == expected_raw(s.stored, lo, hi, reverse, bounds)
    if where == "archive-start" and bounds:
        assert (lo, None, "BadBoundNotFound") in opc_whole[0]


def expected_raw(
    stored: list[tuple[datetime, float]], lo: datetime, hi: datetime, reverse: bool, bounds: bool
) -> list[Row]:
    inside = [(t, v, "Good") for t, v in stored if (lo < t <= hi if reverse else lo <= t < hi)]
    if reverse:
        inside.reverse()
    if not bounds:
        return inside
    at_or_before = [(t, v, "Good") for t, v in stored if t <= lo]
    at_or_after = [(t, v, "Good") for t, v in stored if t >= hi]
    low = at_or_before[-1] if at_or_before else (lo, None, "BadBoundNotFound")
    high = at_or_after[0] if at_or_after else (hi, None, "BadBoundNotFound")
    first, last = (high, low) if reverse else (low, high)
    return [*([] if first in inside else [first]), *inside, last]


# -- processed ------------------------------------------------------------------------------

AGGREGATES = {
    "average": "Average",
    "minimum": "Minimum",
    "maximum": "Maximum",
    "range": "Range",
    "count": "Count",
    "total": "Total",
    "delta": "Delta",
    "delta_bounds": "DeltaBounds",
    "start": "Start",
    "end": "End",
}


PARTIAL = 0x0004  # the historian info bit of an interval cut short


@dataclass(frozen=True)
class Processed:
    series: str
    start: datetime
    end: datetime
    step: timedelta
    #: What the case is meant to cover (checked on the OPC UA answer, which keeps the info
    #: bits): intervals without data (BadNoData), a last interval cut short (Partial).
    no_data: bool = False
    partial: bool = False


PROCESSED = {
    # 10:00-11:00 has no period (BadNoData); 12:00-12:20 is Partial.
    "lp-gap-partial": Processed(
        "lp", utc(2026, 3, 28, 8), utc(2026, 3, 28, 12, 20), timedelta(hours=1), no_data=True, partial=True
    ),
    # Laid back from 12:00: 11:00-12:00, 10:00-11:00 (BadNoData), ..., 07:40-08:00 (Partial).
    "lp-reverse": Processed(
        "lp", utc(2026, 3, 28, 12), utc(2026, 3, 28, 7, 40), timedelta(hours=1), no_data=True, partial=True
    ),
    "lp-off-grid-midnight": Processed(
        "lp", utc(2026, 3, 28, 22, 10), utc(2026, 3, 29, 2), timedelta(minutes=45), partial=True
    ),
    # 12:30-12:40 has no record; 13:00-13:07 is Partial.
    "minute-gap-partial": Processed(
        "minute",
        utc(2026, 3, 29, 12),
        utc(2026, 3, 29, 13, 7),
        timedelta(minutes=10),
        no_data=True,
        partial=True,
    ),
    "minute-reverse-off-grid": Processed(
        "minute",
        utc(2026, 3, 29, 13, 7, 30),
        utc(2026, 3, 29, 12, 1, 15),
        timedelta(minutes=7),
        no_data=True,
        partial=True,
    ),
    # 01:00-02:00 has no sample; 03:00-03:30 is Partial.
    "registers-gap-partial": Processed(
        "registers",
        utc(2026, 3, 28, 22),
        utc(2026, 3, 29, 3, 30),
        timedelta(hours=1),
        no_data=True,
        partial=True,
    ),
    "registers-off-samples": Processed(
        "registers", utc(2026, 3, 28, 22, 4), utc(2026, 3, 29, 2, 34), timedelta(minutes=50), partial=True
    ),
    # More intervals than one page: both adapters cut after PAGE_LIMIT, the rest (and the
    # half-second Partial interval) on a second page; the gap is in the first page.
    "minute-seconds-two-pages": Processed(
        "minute",
        utc(2026, 3, 29, 12, 29),
        utc(2026, 3, 29, 12, 29) + timedelta(seconds=PAGE_LIMIT + 0.5),
        timedelta(seconds=1),
        no_data=True,
        partial=True,
    ),
}


@pytest.mark.parametrize("aggregate", list(AGGREGATES))
@pytest.mark.parametrize("case", list(PROCESSED))
async def test_processed_reads_agree(both: Both, case: str, aggregate: str) -> None:
    c = PROCESSED[case]
    s = SERIES[c.series]
    node_aggregate = ua.NodeId(getattr(ua.ObjectIds, f"AggregateFunction_{AGGREGATES[aggregate]}"))
    details = ua.ReadProcessedDetails(
        StartTime=c.start,
        EndTime=c.end,
        ProcessingInterval=c.step / timedelta(milliseconds=1),
        AggregateType=[node_aggregate],
        AggregateConfiguration=ua.AggregateConfiguration(UseServerCapabilitiesDefaults=True),
    )
    opc = await both.opc_pages(s.node, details)
    params = {"start": iso(c.start), "end": iso(c.end), "aggregate": aggregate, "interval": duration(c.step)}
    rest = await both.rest_pages(f"/api/meters/{METER}/history/{s.obis}", params)
    assert rest_rows(rest) == opc_rows(opc), "the pages differ (in content or where they split)"

    # The case covers what it claims (on the OPC UA side, which keeps the info bits).
    codes = opc_codes(opc)
    intervals = -(-abs(c.end - c.start) // c.step)
    assert len(codes) == intervals
    assert len(opc) == -(-intervals // PAGE_LIMIT)
    if c.partial and aggregate == "count":  # Count has a Partial bit even for an empty interval
        assert codes[-1] & PARTIAL, "the last interval is Partial"
    assert not any(code & PARTIAL for code in codes[:-1]), "only the last interval is Partial"
    if c.no_data and aggregate in ("average", "minimum", "maximum", "range", "start", "end", "delta"):
        assert "BadNoData" in {code_name(code) for code in codes}
    if not (c.series == "registers" and aggregate == "total"):  # a counter has no Total
        assert any(value is not None for _, value, _ in flat(opc_rows(opc))), "the case reads data"


@pytest.mark.parametrize(("minute", "component", "column"), [
    ("min", "MinuteMinimum", 5), ("max", "MinuteMaximum", 6), ("samples", "MinuteSamples", 7),
])  # fmt: skip
async def test_minute_record_series_agree(both: Both, minute: str, component: str, column: int) -> None:
    """A 1-second value's minute records, column by column: REST ``minute=`` and the OPC UA
    history-only components give the archive's column, raw and aggregated."""
    start, end = MIN_FIRST, MIN_FIRST + timedelta(hours=1)
    node = f"{VOLTS.node}.{component}"
    path = f"/api/meters/{METER}/history/{VOLTS.obis}"
    raw = ua.ReadRawModifiedDetails(
        IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=0, ReturnBounds=False
    )
    opc = opc_rows(await both.opc_pages(node, raw))
    rest = rest_rows(await both.rest_pages(path, {"start": iso(start), "end": iso(end), "minute": minute}))
    assert rest == opc
    stored = [(t, v[column]) for t, _, v in MINUTE_ROWS if start <= t < end]
    assert [(t, value) for t, value, _ in flat(opc)] == stored

    step = timedelta(minutes=10)
    details = ua.ReadProcessedDetails(
        StartTime=start,
        EndTime=end,
        ProcessingInterval=step / timedelta(milliseconds=1),
        AggregateType=[ua.NodeId(ua.ObjectIds.AggregateFunction_Maximum)],
        AggregateConfiguration=ua.AggregateConfiguration(UseServerCapabilitiesDefaults=True),
    )
    opc = opc_rows(await both.opc_pages(node, details))
    params = {
        "start": iso(start),
        "end": iso(end),
        "aggregate": "maximum",
        "interval": "PT10M",
        "minute": minute,
    }
    assert rest_rows(await both.rest_pages(path, params)) == opc
    highest = [
        max((v for t, v in stored if a <= t < a + step), default=None)
        for a in (start + k * step for k in range(6))
    ]
    assert [value for _, value, _ in flat(opc)] == highest


async def test_minute_parameter_refusals(both: Both) -> None:
    path = f"{both.base}/api/meters/{METER}/history"
    window = {"start": iso(MIN_FIRST), "end": iso(MIN_FIRST + timedelta(hours=1))}
    for obis, minute, why in (
        ("1-0:32.7.0", "mean", "minute: expected one of min, max, samples"),
        ("1-0:1.8.0", "min", "is not a 1-second value"),
    ):
        async with both.http.get(
            URL(f"{path}/{obis}", encoded=True), params={**window, "minute": minute}
        ) as resp:
            assert resp.status == 400
            assert why in (await resp.json())["error"]


# -- events ---------------------------------------------------------------------------------

EVENT_WINDOWS = {
    # Pages of two split the three events of 08:00:00 and the two of 09:30:05.
    "all": (utc(2026, 3, 28), utc(2026, 3, 30), 2),
    # An edge on the shared second (inclusive start / exclusive far edge), pages of one.
    "shared-second": (utc(2026, 3, 29, 8), utc(2026, 3, 29, 9, 30, 5), 1),
    "midnight": (utc(2026, 3, 28, 22), utc(2026, 3, 29, 8, 0, 1), 3),
}


def _select(ns: int, *paths: tuple[int, str]) -> ua.EventFilter:
    evfilter = ua.EventFilter()
    for index, name in paths:
        op = ua.SimpleAttributeOperand()
        op.TypeDefinitionId = ua.NodeId(ua.ObjectIds.BaseEventType)
        op.BrowsePath = [ua.QualifiedName(name, index if index >= 0 else ns)]
        op.AttributeId = ua.AttributeIds.Value
        evfilter.SelectClauses.append(op)
    return evfilter


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("where", list(EVENT_WINDOWS))
async def test_event_reads_agree_page_by_page(both: Both, where: str, reverse: bool) -> None:
    lo, hi, limit = EVENT_WINDOWS[where]
    start, end = (hi, lo) if reverse else (lo, hi)
    evfilter = _select(both.running.ns, (0, "Time"), (-1, "EventCode"), (0, "Severity"), (0, "Message"))
    details = ua.ReadEventDetails(StartTime=start, EndTime=end, NumValuesPerNode=limit, Filter=evfilter)
    opc = [
        [
            (
                at_time(e.EventFields[0].Value),
                e.EventFields[1].Value,
                e.EventFields[2].Value,
                e.EventFields[3].Value.Text,
            )
            for e in page.Events
        ]
        for page in await both.opc_pages(METER, details)
    ]
    params = {"start": iso(start), "end": iso(end), "limit": str(limit)}
    rest = [
        [(parse_iso(e["time"]), e["code"], e["severity"], e["name"]) for e in page]
        for page in await both.rest_pages(f"/api/meters/{METER}/events", params, key="events")
    ]
    assert rest == opc, "the pages differ (in content, order or where they split)"

    inside = [(t, c) for t, _, c in EVENTS if (lo < t <= hi if reverse else lo <= t < hi)]
    assert [(t, c) for t, c, _, _ in flat(opc)] == (inside[::-1] if reverse else inside)
    assert len(opc) > 1, "the case must page"
    assert all(len(page) == limit for page in opc[:-1])
