"""The head-end's storage: plain record types and the one small repository interface (issue 17).

Two backends implement :class:`Repository` and pass the same contract tests
(``tests/headend/test_storage_contract.py``): :mod:`headend.storage.postgres` (asyncpg,
tables partitioned by month) for production and :mod:`headend.storage.sqlite` (stdlib
sqlite3 in WAL mode) as the embedded default for one machine.

What is stored
--------------
The gateway's uplink writers (``gateway/uplink/writers.py``) publish per record:

* ``minute``, ``registers``, ``lp1``, ``lp2``: numeric fields. Each field of each record
  is one :class:`Sample`, keyed by (publisher, meter, stream, field, time); ``stream`` is
  the writer's name, ``status`` the DataSetMessage Status (an OPC UA StatusCode,
  OPC 10000-4 §7.39; 0 is Good, and it is a UInt32, so the backends keep it in 64 bits).
* ``events``: one :class:`Event` per record (EventCode, Severity, Message, MeterStatus),
  keyed by (publisher, meter, time, code).
* ``live`` is not stored (it is not replayed either: its history is the minute records).

Portfolios (issue 18) keep beside them: their definitions (:class:`PortfolioRecord`, those
made through REST), their notified schedules per delivery day (:class:`ScheduleRecord`,
a replaced one kept for the audit), the aggregate's history (:class:`AggregateRecord`, 1-min
and per settlement period) and the leases (:class:`Lease`) through which the instances of
a group share the portfolio buckets (one owner at a time).

Every write is idempotent: a replayed record upserts (the later value wins), so the
uplink's at-least-once delivery and the head-end's replay requests never duplicate a row.
Times are timezone-aware datetimes; the backends keep and return them in UTC (a load
profile period's local day is the completeness check's business, not storage's).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from gateway.errors import GatewayError

#: The stream name of the events writer: :meth:`Repository.latest` and
#: :meth:`Repository.times` answer it from the events table.
EVENTS = "events"
#: The schema this code writes; ``open`` refuses a database with a newer one.
SCHEMA_VERSION = 1


class StorageError(GatewayError):
    """The database could not be reached or refused an operation. The message says which
    database (a DSN with its password masked) and why; the cause is chained."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One numeric field of one record of a writer (``minute``, ``registers``, ``lp1``, ``lp2``)."""

    publisher: str
    meter: str
    stream: str
    field: str
    time: datetime
    #: None: the record had no value for the field (the meter gave none).
    value: float | None
    #: The DataSetMessage Status (OPC UA StatusCode, UInt32; 0 Good).
    status: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """One record of the ``events`` writer."""

    publisher: str
    meter: str
    time: datetime
    code: int
    severity: int
    message: str
    meter_status: int


@dataclass(frozen=True, slots=True)
class Batch:
    """What one :meth:`Repository.store` writes in one transaction."""

    samples: Sequence[Sample] = ()
    events: Sequence[Event] = ()


@dataclass(frozen=True, slots=True)
class SiteState:
    """A site (one gateway, one PublisherId) as the status messages describe it."""

    publisher: str
    #: ``online``/``offline`` (or what the ingest chooses to call it).
    state: str
    last_seen: datetime | None
    #: Records the box reports it still has to send (its cyclic status, SMX extension).
    backlog: int
    info: dict[str, str] = field(default_factory=dict)
    #: Messages per second the box published between its last two cyclic status reports.
    rate: float = 0.0


@dataclass(frozen=True, slots=True)
class PortfolioRecord:
    """A portfolio defined through REST: its name and its definition as JSON-able data
    (:func:`headend.portfolio.model.parse_portfolio` reads it back)."""

    name: str
    definition: dict[str, Any]
    updated: datetime


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A portfolio's notified schedule of one delivery day: net import energy per settlement
    period, kWh (as the gateway's notified profiles, ``gateway/market/profiles.py``)."""

    portfolio: str
    day: date
    period_minutes: int
    energy_kwh: tuple[float, ...]
    registered: datetime


@dataclass(frozen=True, slots=True)
class AggregateRecord:
    """The portfolio aggregate over one interval ``[start, start + seconds)``: 60 (a minute)
    or the settlement period (900/3600). Powers in kW (net import), energy in kWh."""

    portfolio: str
    seconds: int
    start: datetime
    mean_kw: float
    min_kw: float
    max_kw: float
    #: Mean coverage over the interval (0..1: the fresh members' share of recent consumption).
    coverage: float
    #: The interval's net energy as the live aggregate measured and estimated it.
    energy_kwh: float
    #: How far the estimated part (stale members) may be off, kWh.
    uncertainty_kwh: float
    #: How many 1-second aggregates the interval holds.
    samples: int


@dataclass(frozen=True, slots=True)
class PeriodSum:
    """The load-profile energy of a set of sites at one period end (``lp1``: billing)."""

    time: datetime
    import_kwh: float
    export_kwh: float
    #: How many of the asked publishers have a record at that time.
    sites: int


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds ``name`` until ``expires`` (a portfolio bucket, an instance's heartbeat)."""

    name: str
    owner: str
    expires: datetime


class Repository(Protocol):
    """The storage interface the head-end's ingest, acknowledgements, completeness check,
    REST interface and export use. Both backends implement it; the contract tests hold
    them to the same behaviour."""

    async def open(self) -> None:
        """Connect and create the schema if it is missing (idempotent; several instances
        may open one database at once). Raises :class:`StorageError`."""

    async def close(self) -> None:
        """Release the connections; the repository cannot be used afterwards."""

    async def store(self, batch: Batch) -> int:
        """Write ``batch`` in ONE transaction (all of it or nothing) and return the rows
        inserted or changed: a replayed identical row counts 0, a changed value replaces
        the stored one and counts 1. Raises ValueError for a naive time or a non-finite
        value (before anything is written), :class:`StorageError` for the database."""

    async def samples(
        self,
        publisher: str,
        meter: str,
        stream: str,
        start: datetime,
        end: datetime,
        fields: Sequence[str] | None = None,
    ) -> list[Sample]:
        """The samples with ``start <= time < end`` (of ``fields`` only, if given),
        ordered by time, then field."""

    async def events(self, publisher: str, meter: str, start: datetime, end: datetime) -> list[Event]:
        """The events with ``start <= time < end``, ordered by time, then code."""

    async def times(
        self, publisher: str, meter: str, stream: str, start: datetime, end: datetime
    ) -> list[datetime]:
        """The distinct record times of a stream (``events`` included) in ``[start, end)``,
        ascending: what the completeness check compares with the expected periods."""

    async def contiguous_through(
        self, publisher: str, meter: str, stream: str, since: datetime, step: timedelta
    ) -> datetime | None:
        """The last time T >= ``since`` such that every time ``since + k * step`` up to T
        is stored; None when ``since`` itself is not. For the acknowledgements of the
        regular streams (``lp1``/``lp2``: 15-minute periods, ``minute``); times off that
        grid are ignored. Irregular streams (``events``, ``registers``) use :meth:`latest`."""

    async def latest(self, publisher: str, meter: str, stream: str) -> datetime | None:
        """The newest record time of a stream (``events`` included), None when empty."""

    async def save_site(self, site: SiteState) -> None:
        """Insert or replace a site's state; ``last_seen`` never goes back (instances that
        saw the box at different times may save in any order)."""

    async def save_sites(self, sites: Sequence[SiteState]) -> None:
        """:meth:`save_site` of each, in one transaction (a batch's boxes at once)."""

    async def sites(self) -> list[SiteState]:
        """Every site's state, ordered by publisher."""

    async def publishers_and_meters(self) -> list[tuple[str, str]]:
        """Every (publisher, meter) that has stored anything, ordered."""

    async def claim(self, publisher: str, task: str, now: datetime, every: timedelta) -> bool:
        """Whether this instance may do ``task`` for ``publisher`` at ``now``: True (and
        ``now`` recorded) when no instance claimed it after ``now - every``; atomic, so of
        several instances asking at once exactly one gets it. The instances of a group
        share the completeness checks and pace the replay requests this way."""

    # -- portfolios (issue 18) --------------------------------------------------------------

    async def lease(self, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` for ``owner`` until ``now + ttl``: True when it was
        free, expired (``expires <= now``) or already ``owner``'s; atomic (of several owners
        asking at once exactly one gets a free lease)."""

    async def release(self, name: str, owner: str) -> None:
        """Give up ``name`` if ``owner`` holds it (another's lease is left alone)."""

    async def leases(self, prefix: str) -> list[Lease]:
        """Every lease whose name starts with ``prefix``, expired ones included, by name."""

    async def save_portfolio(self, record: PortfolioRecord) -> None:
        """Insert or replace a portfolio's definition."""

    async def delete_portfolio(self, name: str) -> bool:
        """Remove a portfolio's definition (its schedules and history stay); whether it existed."""

    async def portfolios(self) -> list[PortfolioRecord]:
        """Every stored portfolio definition, by name."""

    async def save_schedule(self, record: ScheduleRecord) -> None:
        """Store a schedule; one already stored for the portfolio and day is kept as replaced
        (the audit trail) and this one becomes the current."""

    async def schedule(self, portfolio: str, day: date) -> ScheduleRecord | None:
        """The current schedule of ``portfolio`` for ``day``, None when none is stored."""

    async def schedule_days(self, portfolio: str) -> list[date]:
        """The delivery days with a current schedule, oldest first."""

    async def save_aggregates(self, records: Sequence[AggregateRecord]) -> None:
        """Store aggregate records in one transaction; a record already stored for the
        (portfolio, seconds, start) is kept (the first instance to write it wins)."""

    async def aggregates(
        self, portfolio: str, seconds: int, start: datetime, end: datetime
    ) -> list[AggregateRecord]:
        """The records of ``seconds`` with ``start <= record.start < end``, oldest first."""

    async def period_sums(
        self, publishers: Sequence[str], stream: str, import_field: str, export_field: str,
        start: datetime, end: datetime,
    ) -> list[PeriodSum]:  # fmt: skip
        """Per record time in ``(start, end]`` (load-profile periods are stamped at their
        end), the sum over ``publishers`` (every meter of each) of ``import_field`` and of
        ``export_field`` in ``stream`` (a missing value counts 0), and how many publishers
        had a record then; ordered by time."""


def to_micros(t: datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware datetime, exactly (no float on the way)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()}: storage needs an aware time (UTC)")
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    """The UTC datetime of :func:`to_micros`."""
    return _EPOCH + timedelta(microseconds=us)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def step_micros(step: timedelta) -> int:
    """The grid step of :meth:`Repository.contiguous_through` in microseconds (it must be a
    positive whole number of them: the backends do integer arithmetic on it)."""
    us = step // timedelta(microseconds=1)
    if us <= 0 or timedelta(microseconds=us) != step:
        raise ValueError(f"step {step}: not a positive whole number of microseconds")
    return us


def prepared(batch: Batch) -> tuple[list[Sample], list[Event]]:
    """``batch`` checked and ready for one upsert statement per table.

    * Times must be aware (a naive time would be read as the server's local time by one
      backend and as UTC by another), values finite or None: SQLite stores NaN as NULL, so
      a NaN could not round-trip the same on both backends (and no meter measures one).
    * A key given twice keeps its last row: the later value wins, as it does across
      batches, and PostgreSQL refuses ``ON CONFLICT DO UPDATE`` touching one row twice.
    * Rows are sorted by key, so two instances writing overlapping batches take their row
      locks in the same order and cannot deadlock each other.
    """
    texts: set[str] = set()
    samples: dict[tuple[str, str, str, datetime, str], Sample] = {}
    for s in batch.samples:
        to_micros(s.time)
        if s.value is not None and not math.isfinite(s.value):
            raise ValueError(f"{s.publisher}/{s.meter}/{s.stream}/{s.field} at {s.time}: value {s.value}")
        samples[(s.publisher, s.meter, s.stream, s.time.astimezone(UTC), s.field)] = s
        texts.update((s.publisher, s.meter, s.stream, s.field))
    events: dict[tuple[str, str, datetime, int], Event] = {}
    for e in batch.events:
        to_micros(e.time)
        events[(e.publisher, e.meter, e.time.astimezone(UTC), e.code)] = e
        texts.update((e.publisher, e.meter, e.message))
    # Names repeat across a batch: each distinct one is checked once.
    for text in texts:
        _check_text(text)
    return [samples[k] for k in sorted(samples)], [events[k] for k in sorted(events)]


def _check_text(text: str) -> None:
    """PostgreSQL's text holds no NUL and only valid UTF-8 (no lone surrogates, which a JSON
    ``\\ud800`` escape can produce); SQLite would take both. Refused on both backends alike."""
    if not isinstance(text, str):
        return  # the database's NOT NULL (or type) check answers, inside the transaction
    if "\x00" in text:
        raise ValueError(f"text with a NUL character: {text!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"text that is not valid Unicode: {text!r}") from None


def check_texts(*texts: str) -> None:
    """Names a backend writes (a portfolio's, a lease's and its owner's) refused alike on
    both backends, as :func:`prepared` refuses a batch's (a NUL, invalid Unicode)."""
    for text in texts:
        _check_text(text)


def definition_json(record: PortfolioRecord) -> str:
    """``record`` checked (its name, an aware ``updated``) and its definition as JSON text.

    Kept as text on both backends, so it reads back exactly as saved: jsonb would print its
    numbers anew (``1e300`` comes back an integer) and refuses NUL characters. Non-finite
    numbers are refused (ValueError): ``NaN`` is not JSON, and not a definition's."""
    check_texts(record.name)
    to_micros(record.updated)
    return json.dumps(record.definition, allow_nan=False)


def schedule_values(record: ScheduleRecord) -> list[float]:
    """``record`` checked (its portfolio's name, an aware ``registered``, finite energies)
    and its energies as floats (an int given comes back a float, as on PostgreSQL)."""
    check_texts(record.portfolio)
    to_micros(record.registered)
    values = [float(v) for v in record.energy_kwh]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"schedule {record.portfolio} {record.day}: a non-finite energy")
    return values


def unique_aggregates(records: Sequence[AggregateRecord]) -> list[AggregateRecord]:
    """``records`` checked (aware starts, finite values: SQLite would store a NaN as NULL)
    and ready for one insert-or-ignore: a key given twice keeps its FIRST record (the first
    writer wins, within a batch as across instances), sorted by key (one lock order)."""
    first: dict[tuple[str, int, datetime], AggregateRecord] = {}
    for r in records:
        to_micros(r.start)
        values = (r.mean_kw, r.min_kw, r.max_kw, r.coverage, r.energy_kwh, r.uncertainty_kwh)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"aggregate {r.portfolio}/{r.seconds} at {r.start}: a non-finite value")
        check_texts(r.portfolio)
        first.setdefault((r.portfolio, r.seconds, r.start.astimezone(UTC)), r)
    return [first[k] for k in sorted(first)]


def by_publisher(sites: Sequence[SiteState]) -> list[SiteState]:
    """The last state given of each site, sorted: one row each (PostgreSQL refuses an
    upsert touching a row twice) in one lock order (two instances cannot deadlock)."""
    return [s for _p, s in sorted({s.publisher: s for s in sites}.items())]


def meters_of(samples: Sequence[Sample], events: Sequence[Event]) -> list[tuple[str, str]]:
    """The (publisher, meter) pairs of a batch, sorted (the lock order, as in :func:`prepared`)."""
    return sorted({(s.publisher, s.meter) for s in samples} | {(e.publisher, e.meter) for e in events})
