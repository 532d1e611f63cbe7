"""ReadRaw with and without bounding values, row by row as OPC 10000-11 §4.6 Table 1 gives it.

The table's historian holds values at 5:00, 5:02, 5:03, 5:05 and 5:06; every row (start,
end, NumValuesPerNode, ReturnBounds) lists what a read returns and whether a continuation
point follows. FIRST / LAST are ``BadBoundNotFound`` tuples stamped with the request's
start / end time (the unspecified time, 1601-01-01, for an open end). The archive's raw
query (what OPC UA HistoryRead and the REST API both translate) is asked each row on real
day files; the continuation point is followed to the end, which must never repeat or skip.

The rows with NumValuesPerNode 0 and an open end are not in the table: a read without an
end needs a limit here (refused, as tests/integration/test_history.py shows).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.archive.aggregates import BAD_BOUND_NOT_FOUND, GOOD
from gateway.archive.files import ArchiveReader, ArchiveWriter, Column
from gateway.archive.query import UNSPECIFIED_TIME, ArchiveQueries, RawQuery, SeriesKey, Span
from gateway.clock import ManualClock
from gateway.obis import Obis
from gateway.streams import StreamId

DAY = datetime(2026, 3, 10, tzinfo=UTC)


def at(hhmm: str) -> datetime:
    hours, minutes = hhmm.split(":")
    return DAY + timedelta(hours=int(hours), minutes=int(minutes))


STORED = ["5:00", "5:02", "5:03", "5:05", "5:06"]
FIRST, LAST, NONE = "FIRST", "LAST", ""

#: (start, end, NumValuesPerNode, bounds, returned, continuation point) - Table 1's rows.
TABLE_1: list[tuple[str, str, int, bool, list[str], bool]] = [
    ("5:00", "5:05", 0, True, ["5:00", "5:02", "5:03", "5:05"], False),
    ("5:00", "5:05", 0, False, ["5:00", "5:02", "5:03"], False),
    ("5:01", "5:04", 0, True, ["5:00", "5:02", "5:03", "5:05"], False),
    ("5:01", "5:04", 0, False, ["5:02", "5:03"], False),
    ("5:05", "5:00", 0, True, ["5:05", "5:03", "5:02", "5:00"], False),
    ("5:05", "5:00", 0, False, ["5:05", "5:03", "5:02"], False),
    ("5:04", "5:01", 0, True, ["5:05", "5:03", "5:02", "5:00"], False),
    ("5:04", "5:01", 0, False, ["5:03", "5:02"], False),
    ("4:59", "5:05", 0, True, [FIRST, "5:00", "5:02", "5:03", "5:05"], False),
    ("4:59", "5:05", 0, False, ["5:00", "5:02", "5:03"], False),
    ("5:01", "5:07", 0, True, ["5:00", "5:02", "5:03", "5:05", "5:06", LAST], False),
    ("5:01", "5:07", 0, False, ["5:02", "5:03", "5:05", "5:06"], False),
    ("5:00", "5:05", 3, True, ["5:00", "5:02", "5:03"], True),
    ("5:00", "5:05", 3, False, ["5:00", "5:02", "5:03"], False),
    ("5:01", "5:04", 3, True, ["5:00", "5:02", "5:03"], True),
    ("5:01", "5:04", 3, False, ["5:02", "5:03"], False),
    ("5:05", "5:00", 3, True, ["5:05", "5:03", "5:02"], True),
    ("5:05", "5:00", 3, False, ["5:05", "5:03", "5:02"], False),
    ("5:04", "5:01", 3, True, ["5:05", "5:03", "5:02"], True),
    ("5:04", "5:01", 3, False, ["5:03", "5:02"], False),
    ("4:59", "5:05", 3, True, [FIRST, "5:00", "5:02"], True),
    ("4:59", "5:05", 3, False, ["5:00", "5:02", "5:03"], False),
    ("5:01", "5:07", 3, True, ["5:00", "5:02", "5:03"], True),
    ("5:01", "5:07", 3, False, ["5:02", "5:03", "5:05"], True),
    ("5:00", NONE, 3, True, ["5:00", "5:02", "5:03"], True),
    ("5:00", NONE, 3, False, ["5:00", "5:02", "5:03"], True),
    ("5:00", NONE, 6, True, ["5:00", "5:02", "5:03", "5:05", "5:06", LAST], False),
    ("5:00", NONE, 6, False, ["5:00", "5:02", "5:03", "5:05", "5:06"], False),
    ("5:07", NONE, 6, True, ["5:06", LAST], False),
    ("5:07", NONE, 6, False, [], False),
    (NONE, "5:06", 3, True, ["5:06", "5:05", "5:03"], True),
    (NONE, "5:06", 3, False, ["5:06", "5:05", "5:03"], True),
    (NONE, "5:06", 6, True, ["5:06", "5:05", "5:03", "5:02", "5:00", FIRST], False),
    (NONE, "5:06", 6, False, ["5:06", "5:05", "5:03", "5:02", "5:00"], False),
    (NONE, "4:48", 6, True, ["5:00", FIRST], False),
    (NONE, "4:48", 6, False, [], False),
    ("4:48", "4:48", 0, True, [FIRST, "5:00"], False),
    ("4:48", "4:48", 0, False, [], False),
    ("4:48", "4:48", 1, True, [FIRST], True),
    ("4:48", "4:48", 1, False, [], False),
    ("4:48", "4:48", 2, True, [FIRST, "5:00"], False),
    ("5:00", "5:00", 0, True, ["5:00", "5:02"], False),
    ("5:00", "5:00", 0, False, ["5:00"], False),
    ("5:00", "5:00", 1, True, ["5:00"], True),
    ("5:00", "5:00", 1, False, ["5:00"], False),
    ("5:01", "5:01", 0, True, ["5:00", "5:02"], False),
    ("5:01", "5:01", 0, False, [], False),
    ("5:01", "5:01", 1, True, ["5:00"], True),
    ("5:01", "5:01", 1, False, [], False),
]

SERIES = SeriesKey("m1", StreamId.REGISTERS, Obis.parse("1-0:1.8.0"))


@pytest.fixture(scope="module")
def queries(tmp_path_factory: pytest.TempPathFactory) -> ArchiveQueries:
    root: Path = tmp_path_factory.mktemp("table1")
    writer = ArchiveWriter(root, "m1")
    try:
        rows = [(at(t), 0, (100.0 + k,)) for k, t in enumerate(STORED)]
        writer.append("registers", [Column("1-0:1.8.0", "kWh")], rows)
    finally:
        writer.close()
    q = ArchiveQueries(ManualClock(DAY + timedelta(days=1)))
    q.add_meter("m1", ArchiveReader(root, "m1"))
    return q


def expected(row: tuple[str, str, int, bool, list[str], bool]) -> list[tuple[datetime, float | None, int]]:
    start, end, _n, _bounds, returned, _more = row
    out: list[tuple[datetime, float | None, int]] = []
    for item in returned:
        if item == FIRST:
            out.append((at(start) if start else UNSPECIFIED_TIME, None, BAD_BOUND_NOT_FOUND))
        elif item == LAST:
            out.append((at(end) if end else UNSPECIFIED_TIME, None, BAD_BOUND_NOT_FOUND))
        else:
            out.append((at(item), 100.0 + STORED.index(item), GOOD))
    return out


@pytest.mark.parametrize(
    "row", TABLE_1, ids=[f"{r[0] or '-'}..{r[1] or '-'}/{r[2]}/{'b' if r[3] else 'n'}" for r in TABLE_1]
)
def test_table_1_row(queries: ArchiveQueries, row: tuple[str, str, int, bool, list[str], bool]) -> None:
    start, end, n, bounds, _returned, more = row
    query = RawQuery(SERIES, Span(at(start) if start else None, at(end) if end else None, n), bounds=bounds)
    page = queries.raw(query)
    assert [(r.time, r.value, r.status) for r in page.values] == expected(row)
    assert (page.cursor is not None) == more
    # Following the continuation points: the read goes on without repeating or skipping.
    seen = [(r.time, r.value) for r in page.values]
    cursor = page.cursor
    for _ in range(len(STORED) + 3):
        if cursor is None:
            break
        page = queries.raw(query, cursor)
        seen += [(r.time, r.value) for r in page.values]
        cursor = page.cursor
    assert cursor is None
    values = [t for t, v in seen if v is not None]
    assert len(values) == len(set(values)), "no value twice"
