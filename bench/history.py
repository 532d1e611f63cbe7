"""History bench: a year of one load-profile channel read over OPC UA, and the archive's write cost.

What is compared, in one run:

* **Read.** One year of 15-minute load profile 1 (35,040 periods x 4 channels, stamped at
  the period end) is written to SMX archive day files, and one month of minute records
  next to it. One channel's year is then read end to end by an asyncua client in its own
  process (``bench/history_client.py``: ``Node.read_raw_history``, ReturnBounds off,
  following continuation points, as a SCADA client on its own machine) from

  1. the SMX server: :class:`~gateway.opcua.history.ArchiveHistory` reading the day files;
  2. a plain asyncua server whose history storage is asyncua's own
     :class:`~asyncua.server.history_sql.HistorySQLite` holding the same 35,040 values
     (filled with its ``save_node_value``; the fill is timed only as a note);
  3. a plain asyncua server with asyncua's in-memory ``HistoryDict``: no storage cost at
     all, only asyncua's own DataValue path (the SMX packs its answers itself and reads
     the next page while the client decodes, see ``gateway/opcua/history_codec.py``).

  Each is read READS times. Reported: the client's wall time per read (median; it
  includes the client's decoding, which no server can make faster) and the server
  process's CPU time per read (what a history read costs the gateway's one slow core).
  The ratios are HistorySQLite's over each. Every read must return the same 35,040
  (time, value) pairs or the bench fails. Goal: SMX >= 5x faster.

* **Write.** One simulated day (86,400 snapshots) of the demo meter's 1-second set goes
  through :class:`~gateway.archive.minutes.MinuteAggregator` and
  :meth:`~gateway.archive.files.ArchiveWriter.append` (one append, i.e. one write + fsync,
  per finished minute), as the recorder does. The CPU time (``time.process_time``) of
  exactly those two calls is reported per 1-second snapshot and per value sample; making
  the snapshots is not counted, nor are the recorder's register sampler and its hop to a
  worker thread. Goal: < 0.1 ms CPU per 1-second sample. The other 29 days of the month
  are written as ready minute records (not timed as write cost).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.server.history import HistoryDict
from asyncua.server.history_sql import HistorySQLite

from gateway.archive.files import ArchiveReader, ArchiveWriter, Column, Record
from gateway.archive.minutes import STREAM as MINUTE_STREAM
from gateway.archive.minutes import MinuteAggregator
from gateway.archive.query import ArchiveQueries, SeriesKey
from gateway.clock import SystemClock
from gateway.config import OpcUaConfig, SecurityConfig, demo_config, one_second_set
from gateway.meter.model import Diagnostics, Quality, Reading, Snapshot
from gateway.obis import CATALOGUE, LOAD_PROFILE_1, Obis
from gateway.opcua.history import ArchiveHistory, install
from gateway.opcua.server import build_server
from gateway.security.auth import UserDirectory
from gateway.streams import StreamId

METER_ID = "meter1"
LP_STREAM = StreamId.LOAD_PROFILE_1
PERIOD = timedelta(minutes=15)
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
PERIODS = 35_040  # 365 days x 96 periods
MONTH_DAYS = 30
SIMULATED_SECONDS = 86_400  # the day fed through the aggregator, one snapshot a second
READS = 5
READ_GOAL = 5.0  # SMX read at least this many times faster than HistorySQLite
WRITE_GOAL_MS = 0.1  # CPU per 1-second sample
#: The channel read over OPC UA (A+ per period).
CHANNEL = Obis.parse("1-0:1.29.0")

log = logging.getLogger(__name__)


# -- data ------------------------------------------------------------------------------


def load_profile_year(root: Path) -> tuple[list[tuple[datetime, float]], float]:
    """Write a year of LP1 (4 channels + status), one append per day; return channel 1 and seconds."""
    rng = random.Random(2025)
    columns = tuple(Column(str(i.obis), i.unit) for i in LOAD_PROFILE_1)
    writer = ArchiveWriter(root, METER_ID)
    channel: list[tuple[datetime, float]] = []
    day: list[Record] = []
    started = time.perf_counter()
    for n in range(1, PERIODS + 1):
        end = YEAR_START + n * PERIOD
        values = tuple(round(rng.uniform(0.0, 0.8), 3) for _ in columns)
        day.append(Record(end, 8 if n % 997 == 0 else 0, values))
        channel.append((end, values[0]))
        if n % 96 == 0:
            writer.append(LP_STREAM, columns, day)
            day = []
    writer.close()
    return channel, time.perf_counter() - started


def _snapshots(objects: Sequence[Obis], units: Sequence[str], start: datetime, seconds: int) -> Any:
    """Snapshots of a steady 1-second cycle: every value read fresh every second."""
    rng = random.Random(7)
    base = [rng.uniform(1.0, 230.0) for _ in objects]
    pairs = list(zip(objects, units, base, strict=True))
    diagnostics = Diagnostics()
    for s in range(seconds):
        t = start + timedelta(seconds=s, milliseconds=250)
        wobble = math.sin(s / 60.0)
        readings = {o: Reading(o, b * (1.0 + 0.01 * wobble), u, t, Quality.GOOD) for o, u, b in pairs}
        yield Snapshot(METER_ID, t + timedelta(milliseconds=50), readings, diagnostics)


@dataclass(frozen=True, slots=True)
class WriteCost:
    snapshots: int
    values_per_snapshot: int
    cpu_s: float
    appends: int
    fsync_wall_s: list[float]
    rest_of_month_s: float
    minute_records: int


def minute_month(root: Path) -> WriteCost:
    """A day of 1-second snapshots through aggregator + writer (timed), then 29 days as records."""
    by_obis = {i.obis: i for i in CATALOGUE}
    objects = one_second_set(demo_config().meters[0])
    aggregator = MinuteAggregator([by_obis[o] for o in objects])
    writer = ArchiveWriter(root, METER_ID)
    columns = aggregator.columns
    cpu = 0.0
    appends = 0
    walls: list[float] = []
    units = [by_obis[o].unit for o in objects]
    clock = time.process_time
    for snapshot in _snapshots(objects, units, YEAR_START, SIMULATED_SECONDS):
        c0 = clock()
        records = aggregator.add(snapshot)
        if records:
            w0 = time.perf_counter()
            writer.append(MINUTE_STREAM, columns, records)
            walls.append(time.perf_counter() - w0)
            appends += 1
        cpu += clock() - c0
    c0 = clock()
    last = aggregator.flush()
    writer.append(MINUTE_STREAM, columns, last)
    cpu += clock() - c0
    appends += 1
    # The rest of the month straight as minute records (one append per day).
    rng = random.Random(11)
    started = time.perf_counter()
    for d in range(1, MONTH_DAYS):
        records = []
        for m in range(1440):
            t = YEAR_START + timedelta(days=d, minutes=m)
            values: list[float] = []
            for _ in objects:
                mean = rng.uniform(1.0, 230.0)
                values += [mean, mean * 0.99, mean * 1.01, 60.0]
            records.append(Record(t, 0, tuple(values)))
        writer.append(MINUTE_STREAM, columns, records)
    rest = time.perf_counter() - started
    writer.close()
    reader = ArchiveReader(root, METER_ID)
    mean_column = [(str(objects[0]), "mean")]
    stored = sum(1 for _ in reader.read_columns(MINUTE_STREAM, mean_column, YEAR_START, None))
    if stored != MONTH_DAYS * 1440:
        raise RuntimeError(f"minute stream holds {stored} records, expected {MONTH_DAYS * 1440}")
    return WriteCost(SIMULATED_SECONDS, len(objects), cpu, appends, walls, rest, stored)


# -- servers ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def smx_server(root: Path) -> AsyncIterator[tuple[str, ua.NodeId, ArchiveHistory]]:
    """The SMX OPC UA server with one historized LP1 channel read from the day files."""
    # The demo profile: the client reads anonymously over None, as the bench measures history
    # code, not encryption. Its certificate and (empty) users file live beside the archive.
    security = SecurityConfig(profile="demo", anonymous=True, pki=str(root.parent / "pki"),
                              users=str(root.parent / "users"))  # fmt: skip
    server = await build_server(
        OpcUaConfig(host="127.0.0.1", port=0, path="/bench"), security, UserDirectory(security.users)
    )
    ns = await server.register_namespace("urn:smx:bench")
    node_id = ua.NodeId("meter1.lp1.A+", ns)
    var = await server.nodes.objects.add_variable(node_id, "A+ per period", 0.0, ua.VariantType.Double)
    await var.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
    queries = ArchiveQueries(SystemClock())
    queries.add_meter(METER_ID, ArchiveReader(root, METER_ID))
    history = ArchiveHistory(queries)
    history.add_node(node_id, SeriesKey(METER_ID, LP_STREAM, CHANNEL))
    await install(server, history)
    await server.start()
    try:
        yield f"opc.tcp://127.0.0.1:{server.bserver.port}/bench", node_id, history
    finally:
        await server.stop()


async def fill_sqlite(
    path: Path, node_id: ua.NodeId, channel: Sequence[tuple[datetime, float]]
) -> HistorySQLite:
    """asyncua's HistorySQLite holding the channel, filled through its own save_node_value."""
    storage = HistorySQLite(str(path))
    await storage.init()
    # Fill speed is not what is compared: without this every one of the 35,040 commits
    # is an fsync. It changes nothing about how the data is stored or read.
    await storage._db.execute("PRAGMA synchronous=OFF")
    await storage.new_historized_node(node_id, period=None, count=0)
    for t, value in channel:
        dv = ua.DataValue(
            ua.Variant(value, ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.StatusCodes.Good),
            SourceTimestamp=t,
            ServerTimestamp=t,
        )
        await storage.save_node_value(node_id, dv)
    return storage


async def _plain_server(path: str) -> tuple[Server, ua.NodeId]:
    """An asyncua server with asyncua's defaults (NoSecurity) and one historized variable."""
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:0/{path}")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace("urn:smx:bench")
    # Numeric NodeId: HistorySQLite names the table f"{ns}_{identifier!r}", and the quotes
    # of a string identifier's repr are refused by its SQL-injection check.
    node_id = ua.NodeId(1001, ns)
    var = await server.nodes.objects.add_variable(node_id, "A+ per period", 0.0, ua.VariantType.Double)
    await var.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
    return server, node_id


@contextlib.asynccontextmanager
async def sqlite_server(
    path: Path, channel: Sequence[tuple[datetime, float]]
) -> AsyncIterator[tuple[str, ua.NodeId, float, HistorySQLite]]:
    """A plain asyncua server (NoSecurity) whose history storage is HistorySQLite."""
    server, node_id = await _plain_server("bench-sqlite")
    started = time.perf_counter()
    storage = await fill_sqlite(path, node_id, channel)
    fill_s = time.perf_counter() - started
    # set_storage after init: the server already initialised its default storage; ours
    # was initialised above, and server.stop() closes it.
    server.iserver.history_manager.set_storage(storage)
    await server.start()
    try:
        yield f"opc.tcp://127.0.0.1:{server.bserver.port}/bench-sqlite", node_id, fill_s, storage
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def memory_server(channel: Sequence[tuple[datetime, float]]) -> AsyncIterator[tuple[str, ua.NodeId]]:
    """A plain asyncua server whose history is asyncua's HistoryDict: values in memory, so
    reading them costs asyncua's own DataValue handling and nothing for storage."""
    server, node_id = await _plain_server("bench-memory")
    storage = HistoryDict()
    await storage.new_historized_node(node_id, period=None, count=0)
    for t, value in channel:
        dv = ua.DataValue(ua.Variant(value, ua.VariantType.Double), SourceTimestamp=t, ServerTimestamp=t)
        await storage.save_node_value(node_id, dv)
    server.iserver.history_manager.set_storage(storage)
    await server.start()
    try:
        yield f"opc.tcp://127.0.0.1:{server.bserver.port}/bench-memory", node_id
    finally:
        await server.stop()


def _tz_timestamp(raw: bytes) -> datetime:
    return datetime.fromisoformat(raw.decode())


# -- reads -----------------------------------------------------------------------------


def _window() -> tuple[datetime, datetime]:
    """The year: from its start to just past the last period end (raw reads exclude EndTime)."""
    return YEAR_START, YEAR_START + PERIODS * PERIOD + timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Reads:
    """READS reads of the year by a client in its own process."""

    wall_s: list[float]  # per read, as the client saw it
    server_cpu_s: float  # CPU of this (the server's) process per read
    pairs: list[tuple[datetime, float]]


async def timed_reads(url: str, node_id: ua.NodeId) -> Reads:
    """Read the year READS times from a client process; measure the server process's CPU."""
    start, end = _window()
    with tempfile.TemporaryDirectory(prefix="smx-bench-client-") as tmp:
        out = Path(tmp) / "reads.json"
        cpu0 = time.process_time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.history_client", url, node_id.to_string(),
            start.isoformat(), end.isoformat(), str(READS), str(out),
        )  # fmt: skip
        await proc.wait()
        cpu = time.process_time() - cpu0
        if proc.returncode != 0:
            raise RuntimeError(f"{url}: history client failed ({proc.returncode})")
        result = json.loads(out.read_text(encoding="utf-8"))
    pairs = [(datetime.fromisoformat(t), float(v)) for t, v in result["pairs"]]
    return Reads(list(result["durations"]), cpu / READS, pairs)


def _check(
    label: str, pairs: Sequence[tuple[datetime, float]], expected: Sequence[tuple[datetime, float]]
) -> None:
    if len(pairs) != len(expected):
        raise RuntimeError(f"{label}: read {len(pairs)} values, expected {len(expected)}")
    for n, (got, want) in enumerate(zip(pairs, expected, strict=True)):
        if got != want:
            raise RuntimeError(f"{label}: value {n} is {got}, expected {want}")


# -- the bench -------------------------------------------------------------------------


def _verdict(ratio: float) -> str:
    return "PASS" if ratio >= READ_GOAL else "FAIL"


async def measure_history() -> dict[str, list[dict[str, Any]]]:
    """Fill both stores, read the year through each server, measure the archive write cost."""
    # Python 3.11's default "timestamp" converter cannot parse the "+00:00" that sqlite3
    # stores for the timezone-aware datetimes asyncua uses, so HistorySQLite's reads raise
    # ValueError. Registering datetime.fromisoformat (C code, faster than the default)
    # makes them work; if anything it favours HistorySQLite.
    sqlite3.register_converter("timestamp", _tz_timestamp)
    tmp = Path(tempfile.mkdtemp(prefix="smx-bench-history-"))
    try:
        root = tmp / "archive"
        channel, lp_fill_s = load_profile_year(root)
        cost = await asyncio.to_thread(minute_month, root)
        async with smx_server(root) as (url, node_id, _history):
            smx = await timed_reads(url, node_id)
        _check("SMX archive", smx.pairs, channel)
        async with sqlite_server(tmp / "history.db", channel) as (url, node_id, sqlite_fill_s, _storage):
            sql = await timed_reads(url, node_id)
        _check("asyncua HistorySQLite", sql.pairs, channel)
        async with memory_server(channel) as (url, node_id):
            mem = await timed_reads(url, node_id)
        _check("asyncua HistoryDict", mem.pairs, channel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sql_wall = statistics.median(sql.wall_s)

    def row(label: str, r: Reads, goal: bool) -> dict[str, Any]:
        wall = statistics.median(r.wall_s)
        wall_ratio, cpu_ratio = sql_wall / wall, sql.server_cpu_s / r.server_cpu_s
        return {
            "measure": label,
            "wall_median_s": wall,
            "wall_runs_s": " ".join(f"{t:.3f}" for t in r.wall_s),
            "server_cpu_s": r.server_cpu_s,
            "values": len(r.pairs),
            "sqlite/x wall": wall_ratio,
            "sqlite/x cpu": cpu_ratio,
            "goal": f">= {READ_GOAL:g}x" if goal else "",
            "verdict": f"wall {_verdict(wall_ratio)}, cpu {_verdict(cpu_ratio)}" if goal else "",
        }

    reads = [
        row("read 1 year LP channel: SMX archive", smx, goal=True),
        row("read 1 year LP channel: asyncua HistorySQLite", sql, goal=False),
        row("  reference: asyncua HistoryDict (values in memory)", mem, goal=False),
    ]
    per_snapshot_ms = cost.cpu_s / cost.snapshots * 1000
    per_value_ms = per_snapshot_ms / cost.values_per_snapshot
    month_samples = MONTH_DAYS * 86_400
    writes = [
        {
            "measure": f"archive write CPU per 1-s snapshot ({cost.values_per_snapshot} values)",
            "result": f"{per_snapshot_ms:.4f} ms",
            "goal": f"< {WRITE_GOAL_MS:g} ms",
            "verdict": "PASS" if per_snapshot_ms < WRITE_GOAL_MS else "FAIL",
        },
        {
            "measure": "archive write CPU per value sample",
            "result": f"{per_value_ms:.5f} ms",
            "goal": f"< {WRITE_GOAL_MS:g} ms",
            "verdict": "PASS" if per_value_ms < WRITE_GOAL_MS else "FAIL",
        },
        {
            "measure": f"  measured: {cost.snapshots} snapshots (1 simulated day), aggregator.add + append",
            "result": f"{cost.cpu_s:.2f} s CPU",
            "goal": "",
            "verdict": "",
        },
        {
            "measure": "  extrapolated: a 30-day month of 1-s snapshots",
            "result": f"{per_snapshot_ms * month_samples / 1000:.0f} s CPU",
            "goal": "",
            "verdict": "",
        },
        {
            "measure": f"  minute append (write + fsync) wall, median of {len(cost.fsync_wall_s)}",
            "result": f"{statistics.median(cost.fsync_wall_s) * 1000:.3f} ms",
            "goal": "",
            "verdict": "",
        },
    ]
    fills = [
        {
            "store": "SMX archive: 1 year LP1, 4 channels, 365 appends",
            "seconds": lp_fill_s,
            "records": PERIODS,
        },
        {
            "store": f"SMX archive: {MONTH_DAYS - 1} days of minute records, 1 append per day",
            "seconds": cost.rest_of_month_s,
            "records": cost.minute_records,
        },
        {
            "store": "asyncua HistorySQLite: 1 channel via save_node_value (synchronous=OFF)",
            "seconds": sqlite_fill_s,
            "records": len(channel),
        },
    ]
    return {"history_reads": reads, "history_writes": writes, "history_fills": fills}
