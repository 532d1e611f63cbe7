"""The storage contract of the head-end (issue 17: "the same contract tests pass on SQLite
and PostgreSQL"): every test runs on both backends.

PostgreSQL is a real throwaway cluster (tests/support/postgres.py), one per test module,
started when the first PostgreSQL test needs it; each test has its own database, each
SQLite test its own file. Times are UTC throughout: a load-profile period's local day
(Europe/Vienna's 92- and 100-period days) needs nothing special from storage, shown below.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headend.storage import (
    SCHEMA_VERSION,
    AggregateRecord,
    Batch,
    Event,
    Lease,
    PeriodSum,
    PortfolioRecord,
    Repository,
    Sample,
    ScheduleRecord,
    SiteState,
    StorageError,
)
from headend.storage.postgres import PostgresRepository, partition_name
from headend.storage.sqlite import SqliteRepository
from tests.support.postgres import Cluster, postgres_cluster

pytestmark = pytest.mark.asyncio(loop_scope="module")

PERIOD = timedelta(minutes=15)
MINUTE = timedelta(minutes=1)
T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
VIENNA = ZoneInfo("Europe/Vienna")
_names = itertools.count()


class LazyCluster:
    """The module's PostgreSQL cluster, started by the first test that needs one (a run of
    the SQLite tests alone starts none) and stopped when the module ends."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._stack = contextlib.AsyncExitStack()
        self._cluster: Cluster | None = None

    async def get(self) -> Cluster:
        if self._cluster is None:
            self._cluster = await self._stack.enter_async_context(postgres_cluster(self.work))
        return self._cluster

    async def aclose(self) -> None:
        await self._stack.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LazyCluster]:
    lazy = LazyCluster(tmp_path_factory.mktemp("pg"))
    try:
        yield lazy
    finally:
        await lazy.aclose()


class Backend:
    """Makes repositories of one kind on the test's own database and closes them at the end."""

    def __init__(self, kind: str, make: Callable[[], Repository], raw: Callable[[str], Any]) -> None:
        self.kind = kind
        self._make = make
        self.raw = raw  # runs one SQL statement on the database outside any repository
        self.made: list[Repository] = []
        self.dsn = ""
        self.path = Path()
        self.cluster: Cluster | None = None

    def repository(self) -> Repository:
        repo = self._make()
        self.made.append(repo)
        return repo

    async def opened(self) -> Repository:
        repo = self.repository()
        await repo.open()
        return repo

    async def aclose(self) -> None:
        for repo in self.made:
            await repo.close()


@pytest_asyncio.fixture(loop_scope="module", params=["sqlite", "postgres"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, cluster: LazyCluster
) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "headend.db"

        async def raw_sqlite(sql: str) -> Any:
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
                return conn.execute(sql).fetchall()

        b = Backend("sqlite", lambda: SqliteRepository(path), raw_sqlite)
        b.path = path
        try:
            yield b
        finally:
            await b.aclose()
        return
    pg = await cluster.get()
    async with pg.database(f"t{next(_names)}") as dsn:

        async def raw_pg(sql: str) -> Any:
            conn = await asyncpg.connect(dsn)
            try:
                return await conn.fetch(sql)
            finally:
                await conn.close()

        b = Backend("postgres", lambda: PostgresRepository(dsn), raw_pg)
        b.dsn, b.cluster = dsn, pg
        try:
            yield b
        finally:
            await b.aclose()


def lp(
    start: datetime, n: int, *, fields: Sequence[str] = ("ActiveEnergyImport", "MeterStatus"),
    publisher: str = "smx-1", meter: str = "m1", stream: str = "lp1", step: timedelta = PERIOD,
    value: Callable[[int, str], float | None] = lambda i, f: float(i), status: int = 0,
) -> list[Sample]:  # fmt: skip
    """``n`` records of ``fields`` each, ``step`` apart from ``start``."""
    return [
        Sample(publisher, meter, stream, f, start + i * step, value(i, f), status)
        for i in range(n)
        for f in fields
    ]


async def everything(
    repo: Repository, publisher: str = "smx-1", meter: str = "m1", stream: str = "lp1"
) -> list[Sample]:
    return await repo.samples(
        publisher, meter, stream, datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)
    )


async def all_events(repo: Repository, publisher: str = "smx-1", meter: str = "m1") -> list[Event]:
    return await repo.events(
        publisher, meter, datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)
    )


# -- schema ---------------------------------------------------------------------------------------


async def test_schema_is_created_once_by_any_number_of_instances(backend: Backend) -> None:
    # Two head-end instances starting at once on an empty database, then one more later.
    a, b = backend.repository(), backend.repository()
    await asyncio.gather(a.open(), b.open())
    await a.open()  # again: nothing happens
    assert await a.store(Batch(lp(T0, 2))) == 4
    c = await backend.opened()
    assert await everything(c) == await everything(b) == lp(T0, 2)
    assert [tuple(r) for r in await backend.raw("SELECT version FROM schema_version")] == [(SCHEMA_VERSION,)]


async def test_a_newer_schema_is_refused(backend: Backend) -> None:
    await (await backend.opened()).close()
    await backend.raw(f"INSERT INTO schema_version (version, applied) VALUES ({SCHEMA_VERSION + 1}, 0)"
                      if backend.kind == "sqlite" else
                      f"INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION + 1})")  # fmt: skip
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        await backend.repository().open()


# -- round trip -----------------------------------------------------------------------------------


async def test_what_is_stored_reads_back_exactly(backend: Backend) -> None:
    repo = await backend.opened()
    samples = [
        Sample("smx-1", "m1", "lp1", "ActiveEnergyImport", T0, 1234.567891234, 0),
        Sample("smx-1", "m1", "lp1", "ReactiveEnergy", T0, None, 0x80050000),  # no value, Bad
        Sample("smx-1", "m1", "lp1", "MeterStatus", T0, 128.0, 0x40A40000),
        Sample("smx-1", "m1", "lp1", "Tiny", T0, 5e-324, 0xFFFFFFFF),  # the largest UInt32 status
        Sample("smx-1", "m1", "lp1", "Huge", T0, -1.7976931348623157e308, 0),
        Sample("smx-1", "m1", "minute", "VoltageL1_Samples", T0 + timedelta(microseconds=1), 60.0, 0),
        Sample("smx-2", "meter ü/2", "registers", "ActiveEnergyImportTotal", T0, 0.1 + 0.2, 0),
    ]
    events = [
        Event("smx-1", "m1", T0, 17, 800, "Power down — Spannungsausfall", 0x80),
        Event("smx-1", "m1", T0, 18, 100, "", 0),  # same time, another code
        Event("smx-1", "m1", T0 + timedelta(seconds=1), 17, 800, "again", 0xFFFFFFFF),
    ]
    assert await repo.store(Batch(samples, events)) == len(samples) + len(events)
    in_vienna = T0.astimezone(VIENNA)  # an aware time in any zone is the same instant
    got = await repo.samples("smx-1", "m1", "lp1", in_vienna, T0 + PERIOD)
    assert got == sorted(samples[:5], key=lambda s: s.field)
    assert all(s.time.utcoffset() == timedelta(0) for s in got)
    assert await everything(repo, "smx-1", "m1", "minute") == [samples[5]]
    assert await everything(repo, "smx-2", "meter ü/2", "registers") == [samples[6]]
    assert await all_events(repo) == events
    assert await repo.publishers_and_meters() == [("smx-1", "m1"), ("smx-2", "meter ü/2")]
    only = await repo.samples("smx-1", "m1", "lp1", T0, T0 + PERIOD, fields=["MeterStatus", "Huge", "nope"])
    assert [s.field for s in only] == ["Huge", "MeterStatus"]
    assert await repo.samples("smx-1", "m1", "lp1", T0, T0 + PERIOD, fields=[]) == []


async def test_bad_input_is_refused_before_anything_is_written(backend: Backend) -> None:
    repo = await backend.opened()
    good = lp(T0, 3)
    bad = (
        (Sample("smx-1", "m1", "lp1", "A", T0.replace(tzinfo=None), 1.0, 0), "naive"),
        (Sample("smx-1", "m1", "lp1", "A", T0, math.nan, 0), "value nan"),
        (Sample("smx-1", "m1", "lp1", "A", T0, math.inf, 0), "value inf"),
        (Sample("smx-1", "m1", "lp1", "A\x00", T0, 1.0, 0), "NUL"),  # PostgreSQL's text has none
        (Sample("smx-1", "m\ud800", "lp1", "A", T0, 1.0, 0), "not valid Unicode"),  # JSON "\ud800"
    )
    for sample, problem in bad:
        with pytest.raises(ValueError, match=problem):
            await repo.store(Batch([*good, sample]))
    assert await everything(repo) == []
    with pytest.raises(ValueError, match="naive"):
        await repo.samples("smx-1", "m1", "lp1", T0.replace(tzinfo=None), T0)


async def test_a_failed_transaction_stores_nothing_of_the_batch(backend: Backend) -> None:
    repo = await backend.opened()
    # The samples are written first; the last event breaks the events' NOT NULL message.
    broken = Event("smx-1", "m9", T0, 1, 1, None, 0)  # type: ignore[arg-type]
    batch = Batch(lp(T0, 50, meter="m9"), [Event("smx-1", "m9", T0, 0, 1, "ok", 0), broken])
    with pytest.raises(StorageError, match=r"(?i)null"):
        await repo.store(batch)
    assert await everything(repo, meter="m9") == []
    assert await all_events(repo, meter="m9") == []
    assert await repo.publishers_and_meters() == []
    assert await repo.store(Batch(lp(T0, 1, meter="m9"))) == 2  # and the repository goes on


async def test_a_connection_lost_mid_use_costs_one_batch_at_most(backend: Backend) -> None:
    if backend.kind != "postgres":
        pytest.skip("the SQLite file has no connection to lose")
    repo = await backend.opened()
    assert await repo.store(Batch(lp(T0, 4))) == 8
    assert backend.cluster is not None
    admin = await asyncpg.connect(backend.cluster.admin_dsn)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'smx-headend'"
        )
    finally:
        await admin.close()
    # Whether the pool notices before or on use is a race of the socket: either the batch is
    # stored, or it fails whole with a StorageError; the next one is stored in any case.
    with contextlib.suppress(StorageError):
        await repo.store(Batch(lp(T0 + 4 * PERIOD, 4)))
    await repo.store(Batch(lp(T0 + 4 * PERIOD, 8)))
    assert await everything(repo) == lp(T0, 4) + lp(T0 + 4 * PERIOD, 8)


# -- idempotency ----------------------------------------------------------------------------------


async def test_a_replay_upserts_and_the_later_value_wins(backend: Backend) -> None:
    repo = await backend.opened()
    samples = lp(T0, 96)
    events = [Event("smx-1", "m1", T0 + i * PERIOD, 5, 500, f"e{i}", 0) for i in range(10)]
    assert await repo.store(Batch(samples, events)) == 192 + 10
    assert await repo.store(Batch(samples, events)) == 0  # identical: nothing new, nothing changed
    assert await everything(repo) == samples
    changed = [
        Sample("smx-1", "m1", "lp1", "ActiveEnergyImport", T0, 99.5, 0),  # a new value
        Sample("smx-1", "m1", "lp1", "MeterStatus", T0, 0.0, 0x40A40000),  # a new status only
        Sample("smx-1", "m1", "lp1", "ActiveEnergyImport", T0 + PERIOD, None, 0),  # the value gone
        Sample("smx-1", "m1", "lp1", "MeterStatus", T0 + PERIOD, 1.0, 0),  # as it was
    ]
    new_event = Event("smx-1", "m1", T0, 5, 900, "e0 corrected", 0)
    assert await repo.store(Batch(changed, [new_event, events[1]])) == 4
    got = {(s.field, s.time): s for s in await everything(repo)}
    assert len(got) == 192
    for s in changed:
        assert got[(s.field, s.time)] == s
    assert (await all_events(repo))[0] == new_event


async def test_a_key_twice_in_one_batch_keeps_the_last(backend: Backend) -> None:
    repo = await backend.opened()
    first = Sample("smx-1", "m1", "lp1", "A", T0, 1.0, 0)
    last = Sample("smx-1", "m1", "lp1", "A", T0.astimezone(VIENNA), 2.0, 0)  # same instant
    assert await repo.store(Batch([first, last])) == 1
    assert await everything(repo) == [last]


async def test_two_instances_storing_overlapping_batches_at_once_keep_each_key_once(backend: Backend) -> None:
    a, b = await backend.opened(), await backend.opened()
    counts: list[int] = []
    for round_ in range(4):
        start = T0 + round_ * 600 * PERIOD
        # Overlapping halves, in opposite orders: identical rows where they overlap.
        first = lp(start, 400)
        second = list(reversed(lp(start + 200 * PERIOD, 400, value=lambda i, f: float(i + 200))))
        counts += await asyncio.gather(a.store(Batch(first)), b.store(Batch(second)))
    stored = await everything(a)
    assert len(stored) == len({(s.field, s.time) for s in stored}) == 4 * 600 * 2
    assert sum(counts) == len(stored)  # each row counted once, by whichever instance was first
    assert stored == sorted(stored, key=lambda s: (s.time, s.field))


# -- ranges ---------------------------------------------------------------------------------------


async def test_ranges_are_half_open_and_ordered_by_time_then_field(backend: Backend) -> None:
    repo = await backend.opened()
    samples = lp(T0, 10, fields=("Z", "A", "M"))
    events = [Event("smx-1", "m1", T0 + i * PERIOD, c, 1, "", 0) for i in range(10) for c in (9, 2)]
    await repo.store(Batch(list(reversed(samples)), list(reversed(events))))
    got = await repo.samples("smx-1", "m1", "lp1", T0 + 2 * PERIOD, T0 + 5 * PERIOD)
    assert [(s.time, s.field) for s in got] == [
        (T0 + i * PERIOD, f) for i in (2, 3, 4) for f in ("A", "M", "Z")
    ]
    late = await repo.events("smx-1", "m1", T0 + 8 * PERIOD, T0 + 10 * PERIOD)
    assert [(e.time, e.code) for e in late] == [
        (T0 + 8 * PERIOD, 2), (T0 + 8 * PERIOD, 9), (T0 + 9 * PERIOD, 2), (T0 + 9 * PERIOD, 9),
    ]  # fmt: skip
    assert await repo.samples("smx-1", "m1", "lp1", T0 + PERIOD, T0 + PERIOD) == []
    assert await repo.samples("smx-1", "m1", "lp2", T0, T0 + 10 * PERIOD) == []  # another stream
    assert await repo.samples("smx-1", "m2", "lp1", T0, T0 + 10 * PERIOD) == []  # another meter


async def test_times_are_the_distinct_record_times(backend: Backend) -> None:
    repo = await backend.opened()
    await repo.store(
        Batch(
            lp(T0, 8, fields=("A", "B", "C")) + lp(T0, 3, stream="lp2"),
            [
                Event("smx-1", "m1", T0 + timedelta(seconds=s), c, 1, "", 0)
                for s in (5, 5, 70)
                for c in (1, 2)
            ],
        )
    )
    assert await repo.times("smx-1", "m1", "lp1", T0 + PERIOD, T0 + 4 * PERIOD) == [
        T0 + PERIOD, T0 + 2 * PERIOD, T0 + 3 * PERIOD,
    ]  # fmt: skip
    assert await repo.times("smx-1", "m1", "lp2", T0, T0 + 99 * PERIOD) == [T0, T0 + PERIOD, T0 + 2 * PERIOD]
    assert await repo.times("smx-1", "m1", "events", T0, T0 + PERIOD) == [
        T0 + timedelta(seconds=5), T0 + timedelta(seconds=70),
    ]  # fmt: skip
    assert await repo.times("smx-1", "m1", "minute", T0, T0 + PERIOD) == []


async def test_latest(backend: Backend) -> None:
    repo = await backend.opened()
    assert await repo.latest("smx-1", "m1", "lp1") is None
    assert await repo.latest("smx-1", "m1", "events") is None
    await repo.store(
        Batch(lp(T0, 5) + lp(T0 - timedelta(days=40), 1), [Event("smx-1", "m1", T0, 1, 1, "", 0)])
    )
    await repo.store(Batch(lp(T0 - timedelta(days=1), 3, stream="registers", step=MINUTE)))
    assert await repo.latest("smx-1", "m1", "lp1") == T0 + 4 * PERIOD
    assert await repo.latest("smx-1", "m1", "registers") == T0 - timedelta(days=1) + 2 * MINUTE
    assert await repo.latest("smx-1", "m1", "events") == T0
    assert await repo.latest("smx-1", "m2", "lp1") is None


# -- contiguity -----------------------------------------------------------------------------------


async def test_contiguous_through_stops_before_the_first_gap(backend: Backend) -> None:
    repo = await backend.opened()
    assert await repo.contiguous_through("smx-1", "m1", "lp1", T0, PERIOD) is None  # nothing at all
    present = [i for i in range(20) if i not in (7, 12, 13)]
    await repo.store(Batch([s for i in present for s in lp(T0 + i * PERIOD, 1)]))
    # An off-grid time (a meter's clock set mid-period) is no gap and no period either.
    await repo.store(Batch(lp(T0 + 7 * PERIOD + timedelta(minutes=3), 1)))
    assert await repo.contiguous_through("smx-1", "m1", "lp1", T0, PERIOD) == T0 + 6 * PERIOD
    assert await repo.contiguous_through("smx-1", "m1", "lp1", T0 + 8 * PERIOD, PERIOD) == T0 + 11 * PERIOD
    assert await repo.contiguous_through("smx-1", "m1", "lp1", T0 + 14 * PERIOD, PERIOD) == T0 + 19 * PERIOD
    # since itself missing:
    assert await repo.contiguous_through("smx-1", "m1", "lp1", T0 + 7 * PERIOD, PERIOD) is None
    assert await repo.contiguous_through("smx-1", "m1", "lp1", T0 + 19 * PERIOD, PERIOD) == T0 + 19 * PERIOD
    # The gap filled (a replay arrived): contiguous through the end.
    await repo.store(Batch([s for i in (7, 12, 13) for s in lp(T0 + i * PERIOD, 1)]))
    assert await repo.contiguous_through("smx-1", "m1", "lp1", T0, PERIOD) == T0 + 19 * PERIOD
    with pytest.raises(ValueError, match="step"):
        await repo.contiguous_through("smx-1", "m1", "lp1", T0, timedelta(0))


async def test_contiguous_minute_records(backend: Backend) -> None:
    repo = await backend.opened()
    start = datetime(2024, 5, 6, 0, 0, tzinfo=UTC)
    minutes = lp(start, 1440, stream="minute", step=MINUTE, fields=("VoltageL1", "VoltageL1_Min"))
    await repo.store(Batch([s for s in minutes if s.time != start + 1000 * MINUTE]))
    assert await repo.contiguous_through("smx-1", "m1", "minute", start, MINUTE) == start + 999 * MINUTE
    assert await repo.contiguous_through("smx-1", "m1", "minute", start + 1001 * MINUTE, MINUTE) == (
        start + 1439 * MINUTE
    )


async def test_contiguous_across_a_month_boundary(backend: Backend) -> None:
    # On PostgreSQL these periods live in two partitions (March and April, by UTC).
    repo = await backend.opened()
    start = datetime(2024, 3, 31, 22, 0, tzinfo=UTC)
    await repo.store(Batch(lp(start + 8 * PERIOD, 8)))  # April first, from another batch
    await repo.store(Batch(lp(start, 8)))
    assert await repo.contiguous_through("smx-1", "m1", "lp1", start, PERIOD) == start + 15 * PERIOD
    assert len(await repo.times("smx-1", "m1", "lp1", start, start + 16 * PERIOD)) == 16


@pytest.mark.parametrize(("day", "periods"), [("2024-03-31", 92), ("2024-10-27", 100), ("2024-05-06", 96)])
async def test_a_local_day_across_a_dst_change_is_just_utc_periods(
    backend: Backend, day: str, periods: int
) -> None:
    """Europe/Vienna's day of the spring change has 92 periods, of the autumn change 100: the
    day's bounds are local midnights, converted to UTC; storage only ever sees UTC times."""
    repo = await backend.opened()
    local_start = datetime.fromisoformat(day).replace(tzinfo=VIENNA)
    start = local_start.astimezone(UTC)
    end = (local_start + timedelta(days=1)).replace(tzinfo=VIENNA).astimezone(UTC)
    assert (end - start) // PERIOD == periods
    # A load profile period is stamped at its end: the day's first is 00:15 local.
    ends = [start + (i + 1) * PERIOD for i in range(periods)]
    await repo.store(Batch([s for t in ends for s in lp(t, 1)]))
    assert await repo.times("smx-1", "m1", "lp1", start + PERIOD, end + PERIOD) == ends
    assert await repo.contiguous_through("smx-1", "m1", "lp1", ends[0], PERIOD) == end
    # The local clock's view of the same instants: repeated (autumn) or skipped (spring) hours.
    local = [t.astimezone(VIENNA) for t in ends]
    assert len({t.replace(tzinfo=None) for t in local}) == min(periods, 96)


# -- partitions, months ---------------------------------------------------------------------------


async def test_a_batch_spanning_months_new_and_old_makes_their_partitions(backend: Backend) -> None:
    repo = await backend.opened()
    times = [
        datetime(2024, 1, 31, 23, 45, tzinfo=UTC),
        datetime(2024, 2, 1, 0, 0, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2099, 12, 1, tzinfo=UTC),
    ]
    batch = Batch(
        [s for t in times for s in lp(t, 1)],
        [Event("smx-1", "m1", t, 1, 1, "", 0) for t in times],
    )
    assert await repo.store(batch) == 12
    assert [s.time for s in await everything(repo)][::2] == sorted(times)
    assert [e.time for e in await all_events(repo)] == sorted(times)
    if backend.kind == "postgres":
        rows = await backend.raw(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'samples'::regclass ORDER BY 1"
        )
        assert [r[0] for r in rows] == sorted(partition_name("samples", (t.year, t.month)) for t in times)


async def test_two_instances_making_the_same_new_month_at_once(backend: Backend) -> None:
    """Both instances see the month for the first time and make its partition in the same
    moment; the one that loses the race takes the other's (PostgreSQL: no error)."""
    for month in range(1, 13):
        a, b = await backend.opened(), await backend.opened()
        start = datetime(2031, month, 1, tzinfo=UTC)
        first, second = lp(start, 10, meter="a"), lp(start, 10, meter="b")
        assert list(await asyncio.gather(a.store(Batch(first)), b.store(Batch(second)))) == [20, 20]
        await a.close()
        await b.close()
    repo = await backend.opened()
    assert len(await everything(repo, meter="a")) == len(await everything(repo, meter="b")) == 12 * 20


# -- sites ----------------------------------------------------------------------------------------


async def test_sites_are_upserted(backend: Backend) -> None:
    repo = await backend.opened()
    assert await repo.sites() == []
    b = SiteState("smx-b", "online", T0, 12, {"firmware": "0.1.0", "zone": "Europe/Vienna"})
    a = SiteState("smx-a", "offline", None, 0)
    await repo.save_site(b)
    await repo.save_site(a)
    assert await repo.sites() == [a, b]
    b2 = SiteState("smx-b", "offline", T0 + MINUTE, 0, {}, 2.5)
    await repo.save_site(b2)
    assert await repo.sites() == [a, b2]


async def test_last_seen_never_goes_back(backend: Backend) -> None:
    """Two instances saw the box at different times and save in any order."""
    repo = await backend.opened()
    await repo.save_site(SiteState("smx-a", "online", T0 + MINUTE, 5, rate=0.5))
    await repo.save_site(SiteState("smx-a", "online", T0, 4, rate=0.25))
    assert await repo.sites() == [SiteState("smx-a", "online", T0 + MINUTE, 4, rate=0.25)]
    # A state without a time (the Will) keeps the time the box was last seen.
    await repo.save_site(SiteState("smx-a", "offline", None, 4))
    assert await repo.sites() == [SiteState("smx-a", "offline", T0 + MINUTE, 4)]
    await repo.save_site(SiteState("smx-b", "offline", None, 0))
    await repo.save_site(SiteState("smx-b", "online", T0, 0))
    assert (await repo.sites())[1].last_seen == T0


async def test_many_sites_are_saved_at_once_the_last_state_of_each_winning(backend: Backend) -> None:
    first, second = await backend.opened(), await backend.opened()
    many = [SiteState(f"smx-{n:03d}", "online", T0 + n * MINUTE, n, rate=n / 10) for n in range(200)]
    await first.save_sites([*many, SiteState("smx-007", "offline", T0, 0)])  # given twice: the last wins
    # Two instances saving overlapping sites in opposite orders at once: no deadlock.
    later = [SiteState(s.publisher, "online", T0 + 300 * MINUTE, 1) for s in many]
    await asyncio.gather(second.save_sites(later[::-1]), first.save_sites(later[:100]))
    got = {s.publisher: s for s in await first.sites()}
    assert len(got) == 200
    assert got["smx-007"] == SiteState("smx-007", "online", T0 + 300 * MINUTE, 1)
    await first.save_sites([])


# -- claims ---------------------------------------------------------------------------------------


async def test_a_claim_is_given_once_per_interval_per_publisher_and_task(backend: Backend) -> None:
    repo = await backend.opened()
    every = timedelta(minutes=10)
    assert await repo.claim("smx-1", "replay", T0, every)
    assert not await repo.claim("smx-1", "replay", T0 + 5 * MINUTE, every)  # asked 5 minutes ago
    assert await repo.claim("smx-1", "check", T0 + 5 * MINUTE, every)  # another task
    assert await repo.claim("smx-2", "replay", T0 + 5 * MINUTE, every)  # another publisher
    assert await repo.claim("smx-1", "replay", T0 + every, every)
    assert not await repo.claim("smx-1", "replay", T0 + every + MINUTE, every)
    with pytest.raises(ValueError, match="naive"):
        await repo.claim("smx-1", "replay", T0.replace(tzinfo=None), every)


async def test_of_instances_claiming_at_once_exactly_one_gets_it(backend: Backend) -> None:
    first, second = await backend.opened(), await backend.opened()
    every = timedelta(seconds=60)
    for n in range(20):
        when = T0 + n * every
        got = await asyncio.gather(*(r.claim("smx-1", "check", when, every) for r in (first, second)))
        assert sorted(got) == [False, True], (n, got)


# -- portfolios (issue 18): leases ----------------------------------------------------------------

TTL = timedelta(seconds=30)
SECOND = timedelta(seconds=1)


async def test_a_lease_is_renewed_by_its_owner_and_refused_to_another_until_it_expires(
    backend: Backend,
) -> None:
    repo = await backend.opened()
    assert await repo.lease("bucket/0", "h-1", T0, TTL)
    assert await repo.leases("bucket/") == [Lease("bucket/0", "h-1", T0 + TTL)]
    assert not await repo.lease("bucket/0", "h-2", T0 + 10 * SECOND, TTL)
    assert await repo.lease("bucket/0", "h-1", T0 + 10 * SECOND, TTL)  # renewed
    until = T0 + 10 * SECOND + TTL
    assert await repo.leases("bucket/") == [Lease("bucket/0", "h-1", until)]
    assert not await repo.lease("bucket/0", "h-2", until - timedelta(microseconds=1), TTL)
    assert await repo.lease("bucket/0", "h-2", until.astimezone(VIENNA), TTL)  # expires <= now
    assert not await repo.lease("bucket/0", "h-1", until + SECOND, TTL)  # the former owner lost it
    assert await repo.leases("bucket/") == [Lease("bucket/0", "h-2", until + TTL)]
    with pytest.raises(ValueError, match="naive"):
        await repo.lease("bucket/0", "h-2", T0.replace(tzinfo=None), TTL)


async def test_of_owners_leasing_one_free_name_at_once_exactly_one_gets_it(backend: Backend) -> None:
    instances = [await backend.opened() for _ in range(4)]
    for n in range(10):
        name = f"bucket/{n}"
        got = await asyncio.gather(*(r.lease(name, f"h-{i}", T0, TTL) for i, r in enumerate(instances)))
        assert sorted(got) == [False, False, False, True], (n, got)
        holder = f"h-{got.index(True)}"
        assert await instances[0].leases(name) == [Lease(name, holder, T0 + TTL)]
        # Expired: free again, and again exactly one of them gets it.
        later = T0 + TTL
        got = await asyncio.gather(*(r.lease(name, f"h-{i}", later, TTL) for i, r in enumerate(instances)))
        assert sorted(got) == [False, False, False, True], (n, got)


async def test_a_lease_is_released_by_its_owner_only(backend: Backend) -> None:
    repo = await backend.opened()
    assert await repo.lease("bucket/0", "h-1", T0, TTL)
    await repo.release("bucket/0", "h-2")  # not h-2's: left alone
    assert await repo.leases("") == [Lease("bucket/0", "h-1", T0 + TTL)]
    await repo.release("bucket/0", "h-1")
    assert await repo.leases("") == []
    assert await repo.lease("bucket/0", "h-2", T0 + SECOND, TTL)  # free before the old expiry
    await repo.release("nothing", "h-1")  # nothing to give up: no error


async def test_leases_are_listed_by_prefix_and_name_expired_ones_included(backend: Backend) -> None:
    repo = await backend.opened()
    names = ["bucket/2", "bucket/10", "bucket/Z", "bucket/a", "bucket/ä", "bucket_x", "heartbeat/h-1", "b%1"]
    for name in names:
        assert await repo.lease(name, "h-1", T0, TTL)
    assert await repo.lease("bucket/1", "h-2", T0 - timedelta(days=1), TTL)  # long expired
    got = await repo.leases("bucket/")
    # By code point (as Python sorts), whatever the database's collation.
    assert [x.name for x in got] == ["bucket/1", "bucket/10", "bucket/2", "bucket/Z", "bucket/a", "bucket/ä"]
    assert got[0] == Lease("bucket/1", "h-2", T0 - timedelta(days=1) + TTL)
    # A prefix is plain text: no LIKE wildcards ('_' is not any character, '%' not any text).
    assert [x.name for x in await repo.leases("bucket_")] == ["bucket_x"]
    assert [x.name for x in await repo.leases("b%")] == ["b%1"]
    assert await repo.leases("%") == []
    assert [x.name for x in await repo.leases("heartbeat/")] == ["heartbeat/h-1"]
    assert len(await repo.leases("")) == len(names) + 1


# -- portfolios (issue 18): definitions -----------------------------------------------------------


def definition(n: int) -> dict[str, Any]:
    return {
        "members": [{"publisher": f"smx-{i}", "meter": "m1", "share": 1 / 3} for i in range(n)],
        "settlement_minutes": 15,
        "name": "Wärmepumpen Süd",
        # Numbers JSON and Python keep exactly (jsonb would print 1e300 as a 301-digit integer).
        "limits": {"max_kw": 1e300, "min_kw": -0.1, "zero": 0, "none": None, "flag": True},
    }


async def test_portfolios_are_saved_replaced_listed_and_deleted(backend: Backend) -> None:
    repo = await backend.opened()
    assert await repo.portfolios() == []
    b = PortfolioRecord("pf-b", definition(1), T0)
    a = PortfolioRecord("pf-a", definition(2), T0.astimezone(VIENNA))  # the same instant
    await repo.save_portfolio(b)
    await repo.save_portfolio(a)
    assert await repo.portfolios() == [a, b]
    assert all(p.updated.utcoffset() == timedelta(0) for p in await repo.portfolios())
    a2 = PortfolioRecord("pf-a", {"members": []}, T0 + MINUTE)
    await repo.save_portfolio(a2)
    assert await repo.portfolios() == [a2, b]
    assert await repo.delete_portfolio("pf-a")
    assert not await repo.delete_portfolio("pf-a")
    assert not await repo.delete_portfolio("pf-never")
    assert await repo.portfolios() == [b]


# -- portfolios (issue 18): schedules -------------------------------------------------------------

DAY = date(2024, 5, 7)


def schedule(day: date = DAY, n: int = 96, *, portfolio: str = "pf-a", shift: float = 0.0,
             registered: datetime = T0) -> ScheduleRecord:  # fmt: skip
    # Full-precision floats (and a negative: net export), not round numbers.
    return ScheduleRecord(
        portfolio, day, 15, tuple(math.sin(i) * 1000 / 3 + shift for i in range(n)), registered
    )


async def count_schedules(backend: Backend) -> int:
    rows = await backend.raw("SELECT count(*) FROM schedules")
    return int(rows[0][0])


async def test_a_replaced_schedule_is_kept_and_the_newest_is_current(backend: Backend) -> None:
    repo = await backend.opened()
    first = schedule()
    await repo.save_schedule(first)
    assert await repo.schedule("pf-a", DAY) == first
    second = schedule(shift=1.5, registered=T0 + MINUTE)
    await repo.save_schedule(second)
    assert await repo.schedule("pf-a", DAY) == second
    assert await count_schedules(backend) == 2  # the replaced one kept for the audit
    # Another day, another portfolio: neither replaces anything.
    await repo.save_schedule(schedule(DAY + timedelta(days=2)))
    await repo.save_schedule(schedule(DAY + timedelta(days=1), portfolio="pf-b"))
    assert await repo.schedule("pf-a", DAY) == second
    assert await repo.schedule_days("pf-a") == [DAY, DAY + timedelta(days=2)]
    assert await repo.schedule_days("pf-b") == [DAY + timedelta(days=1)]
    assert await repo.schedule_days("pf-never") == []
    assert await repo.schedule("pf-a", DAY + timedelta(days=1)) is None  # pf-b's day only
    assert await repo.schedule("pf-never", DAY) is None
    # Saved again as it was first: current again, and one more in the audit.
    await repo.save_schedule(first)
    assert await repo.schedule("pf-a", DAY) == first
    assert await count_schedules(backend) == 5


@pytest.mark.parametrize(("day", "periods"), [("2024-03-31", 92), ("2024-10-27", 100)])
async def test_a_schedule_of_a_dst_day_round_trips_exactly(backend: Backend, day: str, periods: int) -> None:
    repo = await backend.opened()
    record = schedule(date.fromisoformat(day), periods)
    extremes = (5e-324, -1.7976931348623157e308, 0.1 + 0.2, -0.0)
    record = replace(record, energy_kwh=record.energy_kwh[:-4] + extremes)
    await repo.save_schedule(record)
    got = await repo.schedule("pf-a", record.day)
    assert got == record
    assert got is not None
    assert len(got.energy_kwh) == periods
    assert [v.hex() for v in got.energy_kwh] == [v.hex() for v in record.energy_kwh]  # bit for bit
    # Whole numbers given come back as floats.
    await repo.save_schedule(replace(record, energy_kwh=(1, 2)))
    got = await repo.schedule("pf-a", record.day)
    assert got is not None
    assert got.energy_kwh == (1.0, 2.0)
    assert all(type(v) is float for v in got.energy_kwh)


async def test_instances_saving_one_day_at_once_keep_every_schedule(backend: Backend) -> None:
    a, b = await backend.opened(), await backend.opened()
    saved = [schedule(shift=i, registered=T0 + i * SECOND) for i in range(10)]
    await asyncio.gather(*((a, b)[i % 2].save_schedule(s) for i, s in enumerate(saved)))
    assert await count_schedules(backend) == 10
    assert await a.schedule("pf-a", DAY) in saved
    assert await a.schedule("pf-a", DAY) == await b.schedule("pf-a", DAY)


# -- portfolios (issue 18): aggregates ------------------------------------------------------------


def aggregate(i: int, *, seconds: int = 60, portfolio: str = "pf-a", x: float = 0.0) -> AggregateRecord:
    start = T0 + i * timedelta(seconds=seconds)
    kw = 100 / 3 + i + x
    return AggregateRecord(portfolio, seconds, start, kw, kw - 0.1, kw + 0.7, 0.95, kw * seconds / 3600,
                           0.01 * i, seconds)  # fmt: skip


async def test_aggregates_are_kept_as_first_written_and_read_by_half_open_range(backend: Backend) -> None:
    repo = await backend.opened()
    minutes = [aggregate(i) for i in range(6)]
    await repo.save_aggregates(minutes[:5][::-1])
    # Written again with other values (another instance, late): the first record stays.
    await repo.save_aggregates([aggregate(2, x=50.0), minutes[5]])
    assert await repo.aggregates("pf-a", 60, T0, T0 + 6 * MINUTE) == minutes
    assert await repo.aggregates("pf-a", 60, T0 + MINUTE, T0 + 3 * MINUTE) == minutes[1:3]
    assert await repo.aggregates("pf-a", 60, T0 + MINUTE, T0 + MINUTE) == []
    # Another interval length and another portfolio at the same starts are their own.
    period = aggregate(0, seconds=900)
    other = aggregate(0, portfolio="pf-b", x=7.0)
    await repo.save_aggregates([period, other])
    assert await repo.aggregates("pf-a", 900, T0, T0 + PERIOD) == [period]
    assert await repo.aggregates("pf-a", 60, T0, T0 + 6 * MINUTE) == minutes
    assert await repo.aggregates("pf-b", 60, T0.astimezone(VIENNA), T0 + MINUTE) == [other]
    # A key twice in one batch: its first record, as across batches.
    await repo.save_aggregates([aggregate(9, x=1.0), aggregate(9, x=2.0)])
    assert await repo.aggregates("pf-a", 60, T0 + 9 * MINUTE, T0 + 10 * MINUTE) == [aggregate(9, x=1.0)]
    await repo.save_aggregates([])
    got = await repo.aggregates("pf-a", 60, T0, T0 + 6 * MINUTE)
    assert all(r.start.utcoffset() == timedelta(0) for r in got)
    with pytest.raises(ValueError, match="naive"):
        await repo.aggregates("pf-a", 60, T0.replace(tzinfo=None), T0)


async def test_instances_writing_overlapping_aggregates_at_once_keep_one_each(backend: Backend) -> None:
    a, b = await backend.opened(), await backend.opened()
    mine = [aggregate(i, x=1.0) for i in range(0, 300)]
    theirs = [aggregate(i, x=2.0) for i in range(100, 400)][::-1]
    await asyncio.gather(a.save_aggregates(mine), b.save_aggregates(theirs))
    got = await a.aggregates("pf-a", 60, T0, T0 + 400 * MINUTE)
    assert [r.start for r in got] == [T0 + i * MINUTE for i in range(400)]
    assert got[:100] == mine[:100]
    assert got[300:] == theirs[:100][::-1]
    assert all(r in (aggregate(i, x=1.0), aggregate(i, x=2.0)) for i, r in enumerate(got))


# -- portfolios (issue 18): period sums -----------------------------------------------------------

IMPORT, EXPORT = "ActiveEnergyImport", "ActiveEnergyExport"


async def test_period_sums_add_the_asked_publishers_meters_per_period_end(backend: Backend) -> None:
    repo = await backend.opened()
    values: dict[tuple[str, str], Callable[[int], tuple[float | None, float | None]]] = {
        ("p1", "m1"): lambda k: (float(k), 0.5),
        ("p1", "m2"): lambda k: (2.0 * k, 0.25),
        # p2's import is missing (NULL) at period 2 on both meters.
        ("p2", "m1"): lambda k: (None if k == 2 else 100.0 * k, 1.0),
        ("p2", "m2"): lambda k: (None if k == 2 else 1000.0 * k, 2.0),
        ("p3", "m1"): lambda k: (1e6, 1e6),  # not asked
    }
    samples = []
    for (publisher, meter), value in values.items():
        for k in range(6):  # period ends T0 .. T0 + 5 periods
            if publisher == "p2" and k == 3:
                continue  # p2 sent nothing for period 3
            imp, exp = value(k)
            t = T0 + k * PERIOD
            samples += [
                Sample(publisher, meter, "lp1", IMPORT, t, imp),
                Sample(publisher, meter, "lp1", EXPORT, t, exp),
                Sample(publisher, meter, "lp1", "MeterStatus", t, 1e6),  # another field
                Sample(publisher, meter, "lp2", IMPORT, t, 1e6),  # the field in another stream
            ]
    await repo.store(Batch(samples))
    got = await repo.period_sums(["p1", "p2", "p9"], "lp1", IMPORT, EXPORT, T0, T0 + 4 * PERIOD)
    # (T0, T0 + 4 periods]: period ends 1 to 4; all sums exact in binary.
    assert got == [
        PeriodSum(T0 + 1 * PERIOD, 1 + 2 + 100 + 1000, 3.75, 2),
        PeriodSum(T0 + 2 * PERIOD, 2 + 4, 3.75, 2),  # p2's NULLs count 0, p2 still counted
        PeriodSum(T0 + 3 * PERIOD, 3 + 6, 0.75, 1),  # p2 missing
        PeriodSum(T0 + 4 * PERIOD, 4 + 8 + 400 + 4000, 3.75, 2),
    ]
    assert all(type(s.import_kwh) is float and type(s.export_kwh) is float for s in got)
    assert all(s.time.utcoffset() == timedelta(0) for s in got)
    only_nulls = await repo.period_sums(["p2"], "lp1", IMPORT, EXPORT, T0 + PERIOD, T0 + 2 * PERIOD)
    assert only_nulls == [PeriodSum(T0 + 2 * PERIOD, 0.0, 3.0, 1)]
    # A publisher given twice counts once; no publishers, an unknown stream: nothing.
    twice = await repo.period_sums(["p1", "p1"], "lp1", IMPORT, EXPORT, T0, T0 + PERIOD)
    assert twice == [PeriodSum(T0 + PERIOD, 3.0, 0.75, 1)]
    assert await repo.period_sums([], "lp1", IMPORT, EXPORT, T0, T0 + 9 * PERIOD) == []
    assert await repo.period_sums(["p1"], "lp9", IMPORT, EXPORT, T0, T0 + 9 * PERIOD) == []
    with pytest.raises(ValueError, match="naive"):
        await repo.period_sums([], "lp1", IMPORT, EXPORT, T0.replace(tzinfo=None), T0)


async def test_period_sums_of_many_publishers(backend: Backend) -> None:
    """More publishers than SQLite takes parameters in one statement (32,766)."""
    repo = await backend.opened()
    await repo.store(Batch([Sample(f"p{i}", "m1", "lp1", IMPORT, T0 + PERIOD, 0.5) for i in range(3)]))
    many = [f"p{i}" for i in range(40_000)]
    assert await repo.period_sums(many, "lp1", IMPORT, EXPORT, T0, T0 + PERIOD) == [
        PeriodSum(T0 + PERIOD, 1.5, 0.0, 3)
    ]


# -- portfolios (issue 18): input and schema ------------------------------------------------------


async def test_bad_portfolio_input_is_refused_alike_before_anything_is_written(backend: Backend) -> None:
    repo = await backend.opened()
    naive = T0.replace(tzinfo=None)
    with pytest.raises(ValueError, match="naive"):
        await repo.save_portfolio(PortfolioRecord("pf-a", {}, naive))
    with pytest.raises(ValueError, match="JSON"):
        await repo.save_portfolio(PortfolioRecord("pf-a", {"max_kw": math.nan}, T0))
    with pytest.raises(ValueError, match="NUL"):  # PostgreSQL's text has none
        await repo.save_portfolio(PortfolioRecord("pf\x00a", {}, T0))
    with pytest.raises(ValueError, match="naive"):
        await repo.save_schedule(schedule(registered=naive))
    with pytest.raises(ValueError, match="non-finite"):
        await repo.save_schedule(replace(schedule(), energy_kwh=(1.0, math.inf)))
    with pytest.raises(ValueError, match="naive"):
        await repo.save_aggregates([aggregate(0), replace(aggregate(1), start=naive)])
    with pytest.raises(ValueError, match="non-finite"):  # SQLite would store a NaN as NULL
        await repo.save_aggregates([aggregate(0), replace(aggregate(1), coverage=math.nan)])
    with pytest.raises(ValueError, match="not valid Unicode"):
        await repo.lease("bucket/\ud800", "h-1", T0, TTL)
    assert await repo.portfolios() == []
    assert await repo.schedule_days("pf-a") == []
    assert await repo.aggregates("pf-a", 60, T0, T0 + PERIOD) == []
    assert await repo.leases("") == []


async def test_a_database_made_before_portfolios_gets_their_tables_on_open(backend: Backend) -> None:
    """The portfolio tables are additive: a database of issue 17's schema (same version)
    gets them when a head-end of this version opens it."""
    await (await backend.opened()).close()
    for table in ("leases", "portfolios", "schedules", "aggregates"):
        await backend.raw(f"DROP TABLE {table}")
    repo = await backend.opened()
    await repo.save_portfolio(PortfolioRecord("pf-a", {}, T0))
    assert await repo.portfolios() == [PortfolioRecord("pf-a", {}, T0)]
    assert [tuple(r) for r in await backend.raw("SELECT version FROM schema_version")] == [(SCHEMA_VERSION,)]


# -- volume ---------------------------------------------------------------------------------------


async def test_a_big_batch_is_stored_and_counted(backend: Backend) -> None:
    repo = await backend.opened()
    # 50,000 samples: 25 fields of 2,000 minute records (over a month boundary, on PostgreSQL
    # into two partitions).
    fields = [f"F{i:02d}" for i in range(25)]
    start = datetime(2024, 6, 30, 12, 0, tzinfo=UTC)
    samples = lp(start, 2000, fields=fields, stream="minute", step=MINUTE, value=lambda i, f: i * 0.5)
    assert len(samples) == 50_000
    assert await repo.store(Batch(samples)) == 50_000
    assert await repo.store(Batch(samples)) == 0
    got = await everything(repo, stream="minute")
    assert len(got) == 50_000
    assert got == samples
    assert await repo.contiguous_through("smx-1", "m1", "minute", start, MINUTE) == start + 1999 * MINUTE


# -- backend specific -----------------------------------------------------------------------------


async def test_the_sqlite_file_survives_close_and_open(backend: Backend) -> None:
    if backend.kind != "sqlite":
        pytest.skip("SQLite's file")
    repo = await backend.opened()
    await repo.store(Batch(lp(T0, 96), [Event("smx-1", "m1", T0, 1, 1, "x", 0)]))
    await repo.save_site(SiteState("smx-1", "online", T0, 3, {"a": "b"}))
    await repo.close()
    # Checkpointed: the WAL is empty or gone, the main file alone holds everything.
    wal = backend.path.with_name(backend.path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    uri = f"file:{backend.path}?immutable=1"  # reads the main file only, ignoring any WAL
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as plain:
        assert plain.execute("SELECT count(*) FROM samples").fetchone() == (192,)
    again = await backend.opened()
    assert await everything(again) == lp(T0, 96)
    assert len(await all_events(again)) == 1
    assert await again.sites() == [SiteState("smx-1", "online", T0, 3, {"a": "b"})]
    assert await again.store(Batch(lp(T0, 96))) == 0


async def test_postgres_refusals_are_clear_and_keep_the_password_secret(backend: Backend) -> None:
    if backend.kind != "postgres":
        pytest.skip("PostgreSQL's login")
    assert backend.cluster is not None
    wrong = "not-the-Secret-0815"
    repo = PostgresRepository(backend.cluster.dsn_for("smx", password=wrong), connect_timeout=10)
    with pytest.raises(StorageError) as refused:
        await repo.open()
    message = str(refused.value)
    assert "password authentication failed" in message
    assert backend.cluster.user in message
    assert f"127.0.0.1:{backend.cluster.port}" in message
    assert wrong not in message
    assert backend.cluster.password not in message
    assert wrong not in repr(repo)
    # Nobody listening: also a StorageError, also without the password.
    closed = PostgresRepository(f"postgresql://u:{wrong}@127.0.0.1:1/x", connect_timeout=10)
    with pytest.raises(StorageError, match="cannot connect") as refused:
        await closed.open()
    assert wrong not in str(refused.value)
    with pytest.raises(StorageError, match="not open"):
        await closed.store(Batch(lp(T0, 1)))


@pytest.mark.parametrize("method", ["copy", "unnest"])
async def test_postgres_writes_the_same_by_copy_and_by_unnest(backend: Backend, method: str) -> None:
    """``auto`` picks by batch size; each way on its own, events and samples, new and changed."""
    if backend.kind != "postgres":
        pytest.skip("PostgreSQL's write methods")
    repo = PostgresRepository(backend.dsn, write_method=method)  # type: ignore[arg-type]
    backend.made.append(repo)
    await repo.open()
    samples = lp(T0, 30, fields=("A", "B", "C"), value=lambda i, f: None if i % 7 == 0 else i / 3)
    events = [Event("smx-1", "m1", T0 + i * MINUTE, i % 3, 500, f"ä{i}", i) for i in range(20)]
    assert await repo.store(Batch(samples, events)) == 110
    assert await repo.store(Batch(samples, events)) == 0
    assert await repo.store(Batch(samples[:5], [replace(events[0], message="new")])) == 0 + 1
    assert await everything(repo) == samples
    assert await all_events(repo) == [replace(events[0], message="new"), *events[1:]]


# -- property -------------------------------------------------------------------------------------

_BASE = datetime(2024, 3, 30, tzinfo=UTC)
_sample = st.builds(
    Sample,
    publisher=st.sampled_from(["p1", "p2"]),
    meter=st.sampled_from(["m1", "m2"]),
    stream=st.sampled_from(["lp1", "minute"]),
    field=st.sampled_from(["A", "B", "Ä_Min", "x" * 70]),
    # Microseconds and two months (a partition boundary on PostgreSQL), in steps that collide.
    time=st.integers(0, 60 * 24 * 62).map(lambda m: _BASE + m * MINUTE)
    | st.integers(0, 10**13).map(lambda us: _BASE + timedelta(microseconds=us)),
    value=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    status=st.sampled_from([0, 0x40A40000, 0x80050000, 0xFFFFFFFF]),
)
_event = st.builds(
    Event,
    publisher=st.sampled_from(["p1", "p2"]),
    meter=st.sampled_from(["m1", "m2"]),
    time=st.integers(0, 100).map(lambda m: _BASE + m * MINUTE),
    code=st.integers(0, 3),
    severity=st.integers(1, 1000),
    message=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
    meter_status=st.integers(0, 0xFFFFFFFF),
)
_batches = st.lists(
    st.builds(Batch, st.lists(_sample, max_size=30), st.lists(_event, max_size=5)), min_size=1, max_size=4
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=_batches)
async def test_random_batches_round_trip_as_the_last_writer_left_them(
    backend: Backend, batches: list[Batch]
) -> None:
    """Against a model (a dict per key, the last row wins): what is read back and what each
    store counts. One database for all examples: each example writes under its own names."""
    repo = backend.made[0] if backend.made else await backend.opened()
    run = f"r{next(_names)}-"
    model: dict[tuple[Any, ...], Sample] = {}
    events: dict[tuple[Any, ...], Event] = {}
    for batch in batches:
        renamed = Batch([_renamed(s, run) for s in batch.samples], [_renamed(e, run) for e in batch.events])
        expected = 0
        mine: dict[tuple[Any, ...], Sample | Event] = {}
        for s in renamed.samples:
            mine[("s", s.publisher, s.meter, s.stream, s.field, s.time)] = s
        for e in renamed.events:
            mine[("e", e.publisher, e.meter, e.time, e.code)] = e
        for key, row in mine.items():
            table: dict[tuple[Any, ...], Any] = model if key[0] == "s" else events
            if table.get(key) != row:
                expected += 1
            table[key] = row
        assert await repo.store(renamed) == expected
    for publisher, meter, stream in itertools.product(["p1", "p2"], ["m1", "m2"], ["lp1", "minute"]):
        want = sorted(
            (
                s
                for s in model.values()
                if (s.publisher, s.meter, s.stream) == (run + publisher, meter, stream)
            ),
            key=lambda s: (s.time, s.field),
        )
        assert await everything(repo, run + publisher, meter, stream) == want
    for publisher, meter in itertools.product(["p1", "p2"], ["m1", "m2"]):
        want_events = sorted(
            (e for e in events.values() if (e.publisher, e.meter) == (run + publisher, meter)),
            key=lambda e: (e.time, e.code),
        )
        assert await all_events(repo, run + publisher, meter) == want_events


def _renamed(row: Any, run: str) -> Any:
    return replace(row, publisher=run + row.publisher)
