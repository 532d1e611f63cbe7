"""The embedded storage backend: one SQLite file in WAL mode (issue 17, "SQLite as the
embedded default for one machine").

* **One connection, one thread.** sqlite3 calls block; every call of this repository runs
  on its own single-thread executor, so the event loop never waits on the disk and the
  connection is only ever used from the thread that made it (sqlite3's own rule).
* **WAL** (``journal_mode=WAL``, ``synchronous=NORMAL``): readers (the REST interface, the
  completeness check) never block the writer; a commit is one WAL append, durable once
  checkpointed; a power cut loses at most the last commits, never consistency, and the
  uplink replays what was not acknowledged (acks follow commits). ``busy_timeout`` lets two
  repositories on one file (two head-end instances on one machine) wait for each other.
* **Times as integer microseconds since 1970 UTC**: SQLite has no time type; text would
  sort wrongly across offsets and precisions, REAL would round; an integer is exact at the
  resolution of Python's datetime and PostgreSQL's timestamptz, compares and sorts as a
  number, and the primary key's range scans use it directly.
* Tables ``WITHOUT ROWID``: the primary key is the table's order, so a range of one
  meter's stream is one contiguous read and needs no second index.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from headend.storage import (
    EVENTS,
    SCHEMA_VERSION,
    AggregateRecord,
    Batch,
    Event,
    Lease,
    PeriodSum,
    PortfolioRecord,
    Sample,
    ScheduleRecord,
    SiteState,
    StorageError,
    by_publisher,
    check_texts,
    definition_json,
    from_micros,
    meters_of,
    prepared,
    schedule_values,
    step_micros,
    to_micros,
    unique_aggregates,
)

T = TypeVar("T")

#: How long a statement waits for another connection's write lock (milliseconds): longer
#: than any one batch takes, so two instances on one file queue instead of failing.
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
    # The key's column order (time before field) serves the range queries, ordered by
    # time then field, straight from the primary key.
    """CREATE TABLE IF NOT EXISTS samples (
        publisher TEXT NOT NULL, meter TEXT NOT NULL, stream TEXT NOT NULL,
        time INTEGER NOT NULL, field TEXT NOT NULL, value REAL, status INTEGER NOT NULL,
        PRIMARY KEY (publisher, meter, stream, time, field)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS events (
        publisher TEXT NOT NULL, meter TEXT NOT NULL, time INTEGER NOT NULL, code INTEGER NOT NULL,
        severity INTEGER NOT NULL, message TEXT NOT NULL, meter_status INTEGER NOT NULL,
        PRIMARY KEY (publisher, meter, time, code)
    ) WITHOUT ROWID""",
    # Who has stored anything: a DISTINCT over the samples would read them all.
    """CREATE TABLE IF NOT EXISTS meters (
        publisher TEXT NOT NULL, meter TEXT NOT NULL, PRIMARY KEY (publisher, meter)
    ) WITHOUT ROWID""",
    # Who did which periodic task for a publisher last (Repository.claim).
    """CREATE TABLE IF NOT EXISTS claims (
        publisher TEXT NOT NULL, task TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (publisher, task)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS sites (
        publisher TEXT PRIMARY KEY, state TEXT NOT NULL, last_seen INTEGER,
        backlog INTEGER NOT NULL, info TEXT NOT NULL, rate REAL NOT NULL
    )""",
    # Portfolios (issue 18). Who holds a shared thing until when (Repository.lease).
    """CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires INTEGER NOT NULL
    ) WITHOUT ROWID""",
    # Definitions and schedules are rowid tables: their rows (JSON, a day's values) are larger
    # than WITHOUT ROWID suits.
    """CREATE TABLE IF NOT EXISTS portfolios (
        name TEXT PRIMARY KEY, definition TEXT NOT NULL, updated INTEGER NOT NULL
    )""",
    # Every schedule saved, numbered 1, 2, .. per (portfolio, day): the highest version is
    # the current one, the lower ones the replaced (the audit trail). day: ISO text, sorts.
    """CREATE TABLE IF NOT EXISTS schedules (
        portfolio TEXT NOT NULL, day TEXT NOT NULL, version INTEGER NOT NULL,
        period_minutes INTEGER NOT NULL, energy_kwh TEXT NOT NULL, registered INTEGER NOT NULL,
        PRIMARY KEY (portfolio, day, version)
    )""",
    """CREATE TABLE IF NOT EXISTS aggregates (
        portfolio TEXT NOT NULL, seconds INTEGER NOT NULL, start INTEGER NOT NULL,
        mean_kw REAL NOT NULL, min_kw REAL NOT NULL, max_kw REAL NOT NULL, coverage REAL NOT NULL,
        energy_kwh REAL NOT NULL, uncertainty_kwh REAL NOT NULL, samples INTEGER NOT NULL,
        PRIMARY KEY (portfolio, seconds, start)
    ) WITHOUT ROWID""",
)
_UPSERT_SAMPLE = """
    INSERT INTO samples (publisher, meter, stream, time, field, value, status) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (publisher, meter, stream, time, field) DO UPDATE
    SET value = excluded.value, status = excluded.status
    WHERE samples.value IS NOT excluded.value OR samples.status IS NOT excluded.status
"""
_UPSERT_EVENT = """
    INSERT INTO events (publisher, meter, time, code, severity, message, meter_status)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (publisher, meter, time, code) DO UPDATE
    SET severity = excluded.severity, message = excluded.message, meter_status = excluded.meter_status
    WHERE events.severity IS NOT excluded.severity OR events.message IS NOT excluded.message
       OR events.meter_status IS NOT excluded.meter_status
"""


class SqliteRepository:
    """:class:`~headend.storage.Repository` on one SQLite file (``":memory:"`` works too,
    for one repository)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqliteRepository({self.path!r})"

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            raise StorageError(f"{self!r} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    async def _write_many(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        """``sql`` for each of ``rows``, in one write transaction (none without rows)."""

        def write(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                conn.executemany(sql, rows)

        if rows:
            await self._run(write)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._conn is not None
        try:
            return fn(self._conn)
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite {self.path}: {exc}") from exc

    async def open(self) -> None:
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smx-sqlite")
        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(executor, self._connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    def _connect(self) -> sqlite3.Connection:
        try:
            # isolation_level None: no implicit transactions; store() says BEGIN itself.
            conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite {self.path}: cannot open: {exc}") from exc
        try:
            # The busy timeout first: switching to WAL needs a lock another instance may hold.
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _switch_to_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            # IMMEDIATE: take the write lock now, so two instances creating the schema at
            # once queue on the busy timeout instead of one failing on a lock upgrade.
            with _immediate(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
                row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
                if row[0] is None:
                    conn.execute(
                        "INSERT INTO schema_version VALUES (?, ?)",
                        (SCHEMA_VERSION, to_micros(datetime.now().astimezone())),
                    )
                elif row[0] > SCHEMA_VERSION:
                    raise StorageError(
                        f"SQLite {self.path}: schema version {row[0]} is newer than this head-end's "
                        f"{SCHEMA_VERSION}"
                    )
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"SQLite {self.path}: cannot open: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._run(_checkpoint_and_close)
        finally:
            self._executor.shutdown(wait=False)
            self._executor = None
            self._conn = None

    async def store(self, batch: Batch) -> int:
        samples, events = prepared(batch)
        if not samples and not events:
            return 0
        sample_rows = [
            (s.publisher, s.meter, s.stream, to_micros(s.time), s.field, s.value, s.status) for s in samples
        ]
        event_rows = [
            (e.publisher, e.meter, to_micros(e.time), e.code, e.severity, e.message, e.meter_status)
            for e in events
        ]
        meters = meters_of(samples, events)

        def write(conn: sqlite3.Connection) -> int:
            with _immediate(conn):
                conn.executemany("INSERT OR IGNORE INTO meters VALUES (?, ?)", meters)
                # total_changes counts only rows an upsert inserted or really updated (its
                # WHERE skips identical replays), not the meters above.
                before = conn.total_changes
                conn.executemany(_UPSERT_SAMPLE, sample_rows)
                conn.executemany(_UPSERT_EVENT, event_rows)
                return conn.total_changes - before

        return await self._run(write)

    async def samples(
        self,
        publisher: str,
        meter: str,
        stream: str,
        start: datetime,
        end: datetime,
        fields: Sequence[str] | None = None,
    ) -> list[Sample]:
        args: list[object] = [publisher, meter, stream, to_micros(start), to_micros(end)]
        only = ""
        if fields is not None:
            if not fields:
                return []
            only = f" AND field IN ({', '.join('?' * len(fields))})"
            args.extend(fields)
        sql = (
            "SELECT time, field, value, status FROM samples"
            " WHERE publisher = ? AND meter = ? AND stream = ? AND time >= ? AND time < ?"
            f"{only} ORDER BY time, field"
        )
        rows = await self._run(lambda c: c.execute(sql, args).fetchall())
        return [Sample(publisher, meter, stream, f, from_micros(t), v, st) for t, f, v, st in rows]

    async def events(self, publisher: str, meter: str, start: datetime, end: datetime) -> list[Event]:
        sql = (
            "SELECT time, code, severity, message, meter_status FROM events"
            " WHERE publisher = ? AND meter = ? AND time >= ? AND time < ? ORDER BY time, code"
        )
        args = (publisher, meter, to_micros(start), to_micros(end))
        rows = await self._run(lambda c: c.execute(sql, args).fetchall())
        return [Event(publisher, meter, from_micros(t), code, sev, msg, ms) for t, code, sev, msg, ms in rows]

    async def times(
        self, publisher: str, meter: str, stream: str, start: datetime, end: datetime
    ) -> list[datetime]:
        where, args = _stream_where(publisher, meter, stream)
        sql = f"SELECT DISTINCT time FROM {where} AND time >= ? AND time < ? ORDER BY time"
        args += (to_micros(start), to_micros(end))
        rows = await self._run(lambda c: c.execute(sql, args).fetchall())
        return [from_micros(t) for (t,) in rows]

    async def contiguous_through(
        self, publisher: str, meter: str, stream: str, since: datetime, step: timedelta
    ) -> datetime | None:
        step_us = step_micros(step)
        since_us = to_micros(since)
        where, args = _stream_where(publisher, meter, stream)
        # k numbers the grid times since..; the stored ones, ascending and distinct, are
        # numbered again by row_number from 0: k >= rn always, and k = rn exactly for the
        # contiguous prefix, so its end is the largest k with k = rn (one pass, no gaps list).
        sql = (
            "SELECT max(k) FROM (SELECT k, row_number() OVER (ORDER BY k) - 1 AS rn FROM ("
            f"  SELECT DISTINCT (time - ?) / ? AS k FROM {where} AND time >= ? AND (time - ?) % ? = 0"
            ")) WHERE k = rn"
        )
        full = (since_us, step_us, *args, since_us, since_us, step_us)
        k = await self._run(lambda c: c.execute(sql, full).fetchone()[0])
        return None if k is None else since + k * step

    async def latest(self, publisher: str, meter: str, stream: str) -> datetime | None:
        where, args = _stream_where(publisher, meter, stream)
        sql = f"SELECT time FROM {where} ORDER BY time DESC LIMIT 1"
        row = await self._run(lambda c: c.execute(sql, args).fetchone())
        return None if row is None else from_micros(row[0])

    async def save_site(self, site: SiteState) -> None:
        await self.save_sites([site])

    async def save_sites(self, sites: Sequence[SiteState]) -> None:
        sites = by_publisher(sites)
        rows = [
            (
                site.publisher,
                site.state,
                None if site.last_seen is None else to_micros(site.last_seen),
                site.backlog,
                json.dumps(site.info, sort_keys=True),
                site.rate,
            )
            for site in sites
        ]
        # SQLite's two-argument max() is NULL if either is: the COALESCEs keep the known one.
        sql = (
            "INSERT INTO sites VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (publisher) DO UPDATE SET"
            " state = excluded.state,"
            " last_seen = max(coalesce(sites.last_seen, excluded.last_seen),"
            " coalesce(excluded.last_seen, sites.last_seen)),"
            " backlog = excluded.backlog, info = excluded.info, rate = excluded.rate"
        )
        await self._write_many(sql, rows)

    async def sites(self) -> list[SiteState]:
        sql = "SELECT publisher, state, last_seen, backlog, info, rate FROM sites ORDER BY publisher"
        rows = await self._run(lambda c: c.execute(sql).fetchall())
        return [
            SiteState(p, st, None if seen is None else from_micros(seen), backlog, json.loads(info), rate)
            for p, st, seen, backlog, info, rate in rows
        ]

    async def claim(self, publisher: str, task: str, now: datetime, every: timedelta) -> bool:
        at, before = to_micros(now), to_micros(now - every)
        sql = (
            "INSERT INTO claims VALUES (?, ?, ?) ON CONFLICT (publisher, task) DO UPDATE"
            " SET at = excluded.at WHERE claims.at <= ? RETURNING 1"
        )
        row = await self._run(lambda c: c.execute(sql, (publisher, task, at, before)).fetchone())
        return row is not None

    async def publishers_and_meters(self) -> list[tuple[str, str]]:
        rows = await self._run(
            lambda c: c.execute("SELECT publisher, meter FROM meters ORDER BY 1, 2").fetchall()
        )
        return [(p, m) for p, m in rows]

    # -- portfolios (issue 18) --------------------------------------------------------------

    async def lease(self, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        check_texts(name, owner)
        at, until = to_micros(now), to_micros(now + ttl)
        # One statement: SQLite's write lock makes it atomic between instances on one file.
        sql = (
            "INSERT INTO leases VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
            " SET owner = excluded.owner, expires = excluded.expires"
            " WHERE leases.owner = excluded.owner OR leases.expires <= ? RETURNING 1"
        )
        # fetchall: the statement runs to its end, so its implicit transaction commits now.
        rows = await self._run(lambda c: c.execute(sql, (name, owner, until, at)).fetchall())
        return bool(rows)

    async def release(self, name: str, owner: str) -> None:
        sql = "DELETE FROM leases WHERE name = ? AND owner = ?"
        await self._run(lambda c: c.execute(sql, (name, owner)))

    async def leases(self, prefix: str) -> list[Lease]:
        # substr, not LIKE: a prefix's '%' and '_' are plain characters.
        sql = "SELECT name, owner, expires FROM leases WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name"
        rows = await self._run(lambda c: c.execute(sql, (prefix,)).fetchall())
        return [Lease(n, o, from_micros(e)) for n, o, e in rows]

    async def save_portfolio(self, record: PortfolioRecord) -> None:
        row = (record.name, definition_json(record), to_micros(record.updated))
        sql = (
            "INSERT INTO portfolios VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
            " SET definition = excluded.definition, updated = excluded.updated"
        )
        await self._run(lambda c: c.execute(sql, row))

    async def delete_portfolio(self, name: str) -> bool:
        sql = "DELETE FROM portfolios WHERE name = ?"
        deleted = await self._run(lambda c: c.execute(sql, (name,)).rowcount)
        return deleted > 0

    async def portfolios(self) -> list[PortfolioRecord]:
        sql = "SELECT name, definition, updated FROM portfolios ORDER BY name"
        rows = await self._run(lambda c: c.execute(sql).fetchall())
        return [PortfolioRecord(n, json.loads(d), from_micros(u)) for n, d, u in rows]

    async def save_schedule(self, record: ScheduleRecord) -> None:
        values = json.dumps(schedule_values(record))  # a float's repr reads back exactly
        args = (record.portfolio, record.day.isoformat(), record.period_minutes, values,
                to_micros(record.registered))  # fmt: skip
        # The next version in the same statement, under SQLite's write lock: two instances
        # saving one day at once get 1 and 2, never one number twice.
        sql = (
            "INSERT INTO schedules (portfolio, day, version, period_minutes, energy_kwh, registered)"
            " SELECT ?1, ?2, coalesce(max(version), 0) + 1, ?3, ?4, ?5 FROM schedules"
            " WHERE portfolio = ?1 AND day = ?2"
        )
        await self._run(lambda c: c.execute(sql, args))

    async def schedule(self, portfolio: str, day: date) -> ScheduleRecord | None:
        sql = (
            "SELECT period_minutes, energy_kwh, registered FROM schedules"
            " WHERE portfolio = ? AND day = ? ORDER BY version DESC LIMIT 1"
        )
        row = await self._run(lambda c: c.execute(sql, (portfolio, day.isoformat())).fetchone())
        if row is None:
            return None
        minutes, values, registered = row
        return ScheduleRecord(portfolio, day, minutes, tuple(json.loads(values)), from_micros(registered))

    async def schedule_days(self, portfolio: str) -> list[date]:
        sql = "SELECT DISTINCT day FROM schedules WHERE portfolio = ? ORDER BY day"
        rows = await self._run(lambda c: c.execute(sql, (portfolio,)).fetchall())
        return [date.fromisoformat(d) for (d,) in rows]

    async def save_aggregates(self, records: Sequence[AggregateRecord]) -> None:
        rows = [
            (r.portfolio, r.seconds, to_micros(r.start), r.mean_kw, r.min_kw, r.max_kw, r.coverage,
             r.energy_kwh, r.uncertainty_kwh, r.samples)
            for r in unique_aggregates(records)
        ]  # fmt: skip
        sql = "INSERT INTO aggregates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        await self._write_many(sql, rows)

    async def aggregates(
        self, portfolio: str, seconds: int, start: datetime, end: datetime
    ) -> list[AggregateRecord]:
        sql = (
            "SELECT start, mean_kw, min_kw, max_kw, coverage, energy_kwh, uncertainty_kwh, samples"
            " FROM aggregates WHERE portfolio = ? AND seconds = ? AND start >= ? AND start < ? ORDER BY start"
        )
        args = (portfolio, seconds, to_micros(start), to_micros(end))
        rows = await self._run(lambda c: c.execute(sql, args).fetchall())
        return [AggregateRecord(portfolio, seconds, from_micros(t), *rest) for t, *rest in rows]

    async def period_sums(
        self, publishers: Sequence[str], stream: str, import_field: str, export_field: str,
        start: datetime, end: datetime,
    ) -> list[PeriodSum]:  # fmt: skip
        args = (import_field, export_field, json.dumps(list(publishers)), stream, to_micros(start),
                to_micros(end))  # fmt: skip
        if not publishers:
            return []
        # The publishers as one JSON parameter (json_each): any number of them, where an IN
        # list of parameters stops at SQLite's limit of variables. Through the meters table,
        # so each meter's stream is one range of the samples' primary key; CROSS JOIN keeps
        # meters the outer loop (a plain JOIN was planned as a scan of all of each publisher's
        # samples). total() is 0.0 over NULLs only: a missing value counts 0.
        sql = (
            "SELECT s.time, total(CASE WHEN s.field = ?1 THEN s.value END),"
            " total(CASE WHEN s.field = ?2 THEN s.value END), count(DISTINCT s.publisher)"
            " FROM meters AS m CROSS JOIN samples AS s ON s.publisher = m.publisher AND s.meter = m.meter"
            " WHERE m.publisher IN (SELECT value FROM json_each(?3)) AND s.stream = ?4"
            " AND s.field IN (?1, ?2) AND s.time > ?5 AND s.time <= ?6"
            " GROUP BY s.time ORDER BY s.time"
        )
        rows = await self._run(lambda c: c.execute(sql, args).fetchall())
        return [PeriodSum(from_micros(t), imp, exp, n) for t, imp, exp, n in rows]


def _stream_where(publisher: str, meter: str, stream: str) -> tuple[str, tuple[object, ...]]:
    """``<table> WHERE <the stream>`` and its arguments: ``events`` is its own table."""
    if stream == EVENTS:
        return "events WHERE publisher = ? AND meter = ?", (publisher, meter)
    return "samples WHERE publisher = ? AND meter = ? AND stream = ?", (publisher, meter, stream)


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the write lock at its start (BEGIN IMMEDIATE): committed
    at the end, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """``journal_mode=WAL``, also while another instance opens the same new file: that switch
    needs the file to itself and, unlike other statements, fails at once with "database is
    locked" instead of waiting on the busy timeout (seen in about 1 of 60 simultaneous
    opens). So: retried with a short pause, on this worker thread, until the file is in WAL
    mode (whoever switched it) or the busy timeout has passed."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            continue
        if str(mode).lower() not in ("wal", "memory"):  # ":memory:" has no WAL and needs none
            raise sqlite3.OperationalError(f"journal_mode is {mode}, not WAL")
        return


def _checkpoint_and_close(conn: sqlite3.Connection) -> None:
    # TRUNCATE: everything into the main file and the WAL emptied, so the file alone is the
    # database (a copy or backup of it after close is complete).
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
