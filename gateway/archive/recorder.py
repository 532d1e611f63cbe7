"""The archive recorder: a poller listener that writes one meter's data to its day files.

Theory of operation
-------------------
The poller calls ``on_snapshot`` every second and ``on_profile`` / ``on_events`` when a
readout brings entries. These only fold values (minute records, register samples) and
put records in a per-stream backlog; they never wait for the disk, so a slow SD card
cannot delay the meter's 1-second cycle. One writer task (:meth:`run`) empties the
backlog stream by stream through :class:`~gateway.archive.files.AsyncArchive` (worker
threads). A failed write (disk full, read-only file system) leaves the records in the
backlog, sets the status to ``disk-full`` or ``error`` (logged once), and is retried when
new data arrives after :data:`RETRY_S`; the files keep exactly what they had, and writing
resumes by itself when space returns. The backlog is bounded per stream
(:data:`MAX_BACKLOG` records, oldest given up first, counted as ``dropped``): the meter's
profiles and events can be read again, minute records cannot, but memory is 512 MB.

Streams: ``minute`` (mean/min/max/count of each 1-second value), ``registers`` (energy
registers, one sample per register and minute), ``lp1`` / ``lp2`` (load profiles with the
meter's status word), ``events`` (event log: status word and event code).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from gateway.archive.files import AsyncArchive, Column, Record
from gateway.archive.minutes import REGISTER_STREAM, MinuteAggregator, RegisterSampler
from gateway.archive.minutes import STREAM as MINUTE_STREAM
from gateway.clock import Clock
from gateway.config import ArchiveConfig, MeterConfig, one_second_set, register_set
from gateway.errors import ArchiveError
from gateway.meter.model import EventRecord, ProfileData, Snapshot, fresh_value
from gateway.obis import CATALOGUE, FREQUENCY, PHASE_VOLTAGES, Obis
from gateway.quality.en50160 import TenMinuteAggregator, TenMinutes
from gateway.streams import EVENT_LOG, Origin, StreamId
from gateway.streams import STREAMS as ALL_STREAMS

log = logging.getLogger(__name__)

#: The event log's column: the event code under the event log's logical name.
EVENT_COLUMNS = (Column(str(EVENT_LOG.cosem), "", "code"),)
#: The streams a recorder writes (the notified profiles are the market's).
STREAMS = tuple(s.id for s in ALL_STREAMS if s.origin not in (Origin.MARKET, Origin.REPORT))
#: Seconds between retries of a failed write.
RETRY_S = 10.0
#: Records kept per stream while writing fails (a week of minute records).
MAX_BACKLOG = 7 * 1440


#: EN 50160's inputs (gateway/archive/quality.py writes and reads their records).
PQ_COLUMNS = (
    *(Column(str(o), "V", "mean10min") for o in PHASE_VOLTAGES),
    Column(str(PHASE_VOLTAGES[0]), "s", "seconds"),
    Column(str(FREQUENCY), "", "means10s"),
    Column(str(FREQUENCY), "", "within1pct"),
    Column(str(FREQUENCY), "", "within4-6pct"),
)


def pq_record(r: TenMinutes) -> Record:
    """A 10-minute aggregate as a ``pq10`` line."""
    u = (*r.u_mean, None, None, None)[:3]
    counts = (float(r.seconds), float(r.f_means), float(r.f_in_band), float(r.f_in_limits))
    return Record(r.start, None, (*u, *counts))


@dataclass(frozen=True, slots=True)
class ArchiveStatus:
    """What the archive of one meter is doing, published as diagnostics."""

    #: ``ok``, ``disk-full`` (no space left: writing resumes by itself) or ``error``.
    state: str = "ok"
    last_error: str = ""
    records_written: int = 0
    #: Records waiting for the disk.
    backlog: int = 0
    #: Records given up because the backlog was full.
    dropped: int = 0


@dataclass(slots=True)
class _Pending:
    columns: tuple[Column, ...]
    records: list[Record]


StatusListener = Callable[[ArchiveStatus], Awaitable[None]]


class ArchiveRecorder:
    """Writes one meter's minute records, register samples, profiles and events."""

    def __init__(
        self,
        archive: AsyncArchive,
        meter: MeterConfig,
        config: ArchiveConfig,
        clock: Clock,
        on_status: StatusListener | None = None,
    ) -> None:
        self.archive = archive
        self.meter_id = meter.id
        self.config = config
        self._clock = clock
        self._on_status = on_status
        by_obis = {i.obis: i for i in CATALOGUE}
        self.minutes = MinuteAggregator([by_obis[o] for o in one_second_set(meter)])
        self.registers = RegisterSampler(register_set(meter))
        # EN 50160's aggregates, where the meter's 1-second set has a voltage or the frequency.
        read = set(one_second_set(meter))
        self.quality = TenMinuteAggregator() if read & {*PHASE_VOLTAGES, FREQUENCY} else None
        # A value counts once, when it was measured: a slow or shared line reads some values
        # every few cycles, and the cycles between carry them over.
        self._pq_window_s = max(2.0, 2 * meter.cycle_s)
        self._pq_counted: dict[Obis, datetime] = {}
        self._backlog: dict[str, deque[_Pending]] = {}
        self._wake = asyncio.Event()
        self._retry_at = 0.0
        self._failing = False
        self._pruned: date | None = None
        self.status = ArchiveStatus()
        self._published: ArchiveStatus | None = None
        #: Set after every writer pass that left nothing behind (tests wait on it).
        self.idle = asyncio.Event()
        self.idle.set()
        #: Told the stream of every successful write (the uplink reads on from its cursor).
        self.written: list[Callable[[str, str], None]] = []

    # -- poller listener ----------------------------------------------------------------

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        self._submit(MINUTE_STREAM, self.minutes.columns, self.minutes.add(snapshot))
        self._submit(REGISTER_STREAM, self.registers.columns, self.registers.add(snapshot))
        if self.quality is not None:
            u = [self._measured(snapshot, o) for o in PHASE_VOLTAGES]
            closed = self.quality.add(snapshot.time, u, self._measured(snapshot, FREQUENCY))
            self._submit(StreamId.QUALITY, PQ_COLUMNS, [pq_record(c) for c in closed])
        if self._backlog and not self._wake.is_set() and self._clock.monotonic() >= self._retry_at:
            self._wake.set()  # retry a failed write once the pause is over

    def _measured(self, snapshot: Snapshot, obis: Obis) -> float | None:
        """A value for EN 50160's aggregates: read recently, and not counted before."""
        reading = snapshot.readings.get(obis)
        value = fresh_value(reading, snapshot.time, self._pq_window_s)
        if value is None or reading is None or reading.source_time is None:
            return None
        if self._pq_counted.get(obis) == reading.source_time:
            return None
        self._pq_counted[obis] = reading.source_time
        return value

    async def on_profile(self, meter_id: str, profile: ProfileData) -> None:
        stream = profile.stream
        if profile.period_s > 0:  # history aggregates need the meter's own capture period
            self.archive.reader.note_period(stream, timedelta(seconds=profile.period_s))
        columns = tuple(Column(str(obis), unit) for obis, unit in profile.channels)
        self._submit(stream, columns, [Record(e.end, e.status, e.values) for e in profile.entries])

    async def on_events(self, meter_id: str, events: Sequence[EventRecord]) -> None:
        records = [Record(e.time, e.status, (float(e.code),)) for e in sorted(events, key=lambda e: e.time)]
        self._submit(EVENT_LOG.id, EVENT_COLUMNS, records)

    # -- writer -------------------------------------------------------------------------

    def _submit(self, stream: str, columns: Sequence[Column], records: list[Record]) -> None:
        if not records:
            return
        queue = self._backlog.setdefault(stream, deque())
        if queue and queue[-1].columns == tuple(columns):
            queue[-1].records.extend(records)
        else:
            queue.append(_Pending(tuple(columns), list(records)))
        self._trim(stream, queue)
        self.idle.clear()
        if not self._failing or self._clock.monotonic() >= self._retry_at:
            self._wake.set()

    def _trim(self, stream: str, queue: deque[_Pending]) -> None:
        excess = sum(len(p.records) for p in queue) - MAX_BACKLOG
        dropped = 0
        while excess > 0 and queue:
            head = queue[0]
            cut = min(excess, len(head.records))
            del head.records[:cut]
            excess -= cut
            dropped += cut
            if not head.records:
                queue.popleft()
        if dropped:
            log.error(
                "archive of %s: %s backlog full, %d oldest records given up", self.meter_id, stream, dropped
            )
            self.status = replace(self.status, dropped=self.status.dropped + dropped)

    async def repair(self) -> None:
        """Cut torn last lines left by a power cut, before anything else reads or writes;
        then publish the status, so the diagnostics show the archive from the start."""
        for stream in STREAMS:
            try:
                await self.archive.repair(stream)
            except ArchiveError as err:
                log.error("archive of %s: %s", self.meter_id, err)
                self._failing = True  # "ok" again after the next pass that writes
                self.status = replace(self.status, state="error", last_error=str(err))
        await self._publish()

    async def run(self) -> None:
        """Write the backlog whenever there is some; only cancellation ends it."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.write_pending()

    async def write_pending(self) -> None:
        """One pass: prune once per UTC day, then write every stream's backlog in order."""
        today = self._clock.now().date()
        if self._pruned != today:
            await self._prune(today)
        for stream in list(self._backlog):
            queue = self._backlog[stream]
            while queue:
                item = queue[0]
                try:
                    written = await self.archive.append(stream, item.columns, item.records)
                except ArchiveError as err:
                    self._failed(err)
                    break
                except ValueError as err:  # a record that cannot be a line: a bug, never retried
                    log.error("archive of %s: %s records refused: %s", self.meter_id, stream, err)
                    queue.popleft()
                    continue
                queue.popleft()
                self.status = replace(self.status, records_written=self.status.records_written + written)
                for tell in self.written:
                    tell(self.meter_id, stream)
            else:
                del self._backlog[stream]
        if not self._backlog and self._failing:
            self._failing = False
            log.warning("archive of %s: writing again", self.meter_id)
            self.status = replace(self.status, state="ok")
        self.status = replace(
            self.status, backlog=sum(len(p.records) for q in self._backlog.values() for p in q)
        )
        await self._publish()
        if not self._backlog:
            self.idle.set()

    def _failed(self, err: ArchiveError) -> None:
        cause = err.__cause__
        full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
        state = "disk-full" if full else "error"
        if not self._failing:
            log.error("archive of %s: %s; live data goes on, records wait in memory", self.meter_id, err)
        self._failing = True
        self._retry_at = self._clock.monotonic() + RETRY_S
        self.status = replace(self.status, state=state, last_error=str(err))

    async def _prune(self, today: date) -> None:
        for stream in STREAMS:
            keep = self.config.keep(stream)
            if keep <= 0:
                continue
            try:
                removed = await self.archive.prune(stream, keep, today)
            except ArchiveError as err:
                log.error("archive of %s: pruning %s failed: %s", self.meter_id, stream, err)
                return
            if removed:
                what = "archive of %s: %s: removed %d day file(s) older than %d days"
                log.info(what, self.meter_id, stream, len(removed), keep)
        self._pruned = today

    async def _publish(self) -> None:
        if self._on_status is not None and self.status != self._published:
            self._published = self.status
            await self._on_status(self.status)

    async def close(self) -> None:
        """Write the minute in progress and whatever waits, then close the files."""
        self._submit(MINUTE_STREAM, self.minutes.columns, self.minutes.flush())
        self._submit(REGISTER_STREAM, self.registers.columns, self.registers.flush())
        try:
            await self.write_pending()
        finally:
            await self.archive.close()
