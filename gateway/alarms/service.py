"""The alarm service: the evaluators of every meter and of the gateway, fed by the rooms
that own the facts, publishing each condition notification to the adapters and the
journal, and answering the operators' Acknowledge / Confirm / AddComment.

Protocol-neutral: OPC UA (conditions, events, ConditionRefresh) and the web page (the
list with an acknowledge button) are listeners and callers of this one service.

* A meter's poller feeds :meth:`listener` (every snapshot: voltages, frequency, clock
  deviation, link state; every event of the event log).
* :meth:`run` looks at the gateway every :data:`CHECK_S`: the archive's disk (free space,
  days left at the rate seen, failed writes), the own certificate, the uplink.
* At start the journal gives back the conditions still retained (unacknowledged): an
  operator's work survives a restart. One that was active is restored as cleared
  ("cleared at restart") and raised again if its cause still holds - except those the
  meter's event log drives (a terminal cover, a power down), which stay as they were
  until the meter's next event says otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.alarms.condition import Condition, ConditionError, Notification
from gateway.alarms.journal import AlarmJournal
from gateway.alarms.table import EVENT_ALARMS, GatewayAlarms, MeterAlarms
from gateway.clock import Clock
from gateway.config import AlarmConfig
from gateway.errors import ArchiveError
from gateway.meter.feed import Delivery
from gateway.meter.model import EventRecord, LinkState, ProfileData, Snapshot, fresh_value
from gateway.obis import FREQUENCY, PHASE_VOLTAGES

log = logging.getLogger(__name__)

#: How old a Good value may be and still be judged: a shared line reads some values every
#: few seconds (a stale one only delays a change by as much; a lost meter has no Good values).
FRESH_S = 10.0
#: Seconds between looks at the gateway's own state (disk, certificate, uplink).
CHECK_S = 10.0
#: How far back the journal is read for retained conditions at start.
RESTORE_SPAN = timedelta(days=60)
#: The alarms only the meter's event log sets and clears.
EVENT_DRIVEN = frozenset(name for name, _ in EVENT_ALARMS.values())
#: The source name of the gateway's own conditions.
GATEWAY = "gateway"

NotificationListener = Callable[[Notification], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DiskFacts:
    free_bytes: int
    total_bytes: int
    write_failed: bool


@dataclass(frozen=True, slots=True)
class UplinkFacts:
    connected: bool
    down_since: datetime | None


@dataclass
class Probes:
    """How the service sees the gateway (None: that part is not there)."""

    disk: Callable[[], DiskFacts] | None = None
    certificate: Callable[[], datetime | None] | None = None
    uplink: Callable[[], UplinkFacts] | None = None


class _MeterListener:
    """The poller listener of one meter: every snapshot and event, in order."""

    delivery = Delivery.EVERY

    def __init__(self, service: AlarmService, alarms: MeterAlarms) -> None:
        self.service = service
        self.alarms = alarms

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        r, at = snapshot.readings, snapshot.time
        d = snapshot.diagnostics
        notes = self.alarms.on_link(at, d.link is LinkState.LOST, d.last_error)
        if d.link is not LinkState.LOST:
            voltages = [fresh_value(r.get(o), at) for o in PHASE_VOLTAGES]
            notes += self.alarms.on_values(
                at, voltages, fresh_value(r.get(FREQUENCY), at), d.clock_deviation_s
            )
        await self.service.publish(notes)

    async def on_profile(self, meter_id: str, profile: ProfileData) -> None:
        return None

    async def on_events(self, meter_id: str, events: Sequence[EventRecord]) -> None:
        notes: list[Notification] = []
        for event in sorted(events, key=lambda e: e.time):
            notes += self.alarms.on_event(event.time, event.code)
        await self.service.publish(notes)


class AlarmService:
    """Every condition of the gateway and its meters (see the module's docstring)."""

    def __init__(
        self,
        settings: AlarmConfig,
        clock: Clock,
        meters: Sequence[str],
        journal: AlarmJournal | None = None,
        probes: Probes | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.journal = journal
        self.probes = probes or Probes()
        now = clock.now()
        self.meters = {m: MeterAlarms(m, settings, now) for m in meters}
        self.gateway = GatewayAlarms(settings, now)
        self.listeners: list[NotificationListener] = []
        self._disk_seen: tuple[datetime, int] | None = None  # (time, free bytes) at the first look
        self._lock = asyncio.Lock()  # notifications are published in the order they happen

    def listener(self, meter_id: str) -> _MeterListener:
        return _MeterListener(self, self.meters[meter_id])

    def conditions(self) -> list[Condition]:
        out = [c for m in self.meters.values() for c in m.conditions()]
        return out + self.gateway.conditions()

    def condition(self, source: str, name: str) -> Condition:
        """KeyError naming what is known when there is no such condition."""
        group = self.gateway if source == GATEWAY else self.meters.get(source)
        if group is None or name not in group.alarms:
            raise KeyError(f"no alarm {name!r} of {source!r}")
        return group.alarms[name].condition

    def retained(self) -> list[Notification]:
        """What ConditionRefresh and the web page show: every condition with Retain set."""
        return [n for c in self.conditions() if (n := c.refresh()) is not None]

    async def restore(self) -> int:
        """Retained conditions from the journal (see the module's docstring); how many."""
        if self.journal is None:
            return 0
        try:
            kept = await asyncio.to_thread(self.journal.latest, RESTORE_SPAN, self.clock.now())
        except ArchiveError as err:
            log.error("alarms: %s; starting without the retained ones", err)
            return 0
        restored = 0
        notes = []
        for (source, name), n in kept.items():
            if not n.retain:
                continue
            try:
                condition = self.condition(source, name)
            except KeyError:
                continue  # a meter no longer configured
            condition.restore(n)
            restored += 1
            if name in EVENT_DRIVEN:
                continue  # only the meter's next event ends it (a cover stays open over a restart)
            cleared = condition.clear(self.clock.now(), n.message + " (cleared at restart)")
            if cleared is not None:
                notes.append(cleared)
        await self.publish(notes)
        return restored

    async def publish(self, notes: Sequence[Notification]) -> None:
        if not notes:
            return
        async with self._lock:
            for n in notes:
                log.log(logging.WARNING if n.active else logging.INFO, "alarm %s/%s %s (severity %d): %s",
                        n.source, n.condition, n.reason, n.severity, n.message)  # fmt: skip
                if self.journal is not None:
                    try:
                        await asyncio.to_thread(self.journal.append, n)
                    except ArchiveError as err:
                        log.error("%s", err)  # the notification still goes out
                for listener in self.listeners:
                    try:
                        await listener(n)
                    except Exception:
                        log.exception("an alarm listener failed")

    # -- the operators -----------------------------------------------------------------

    async def answer(
        self, method: str, source: str, name: str, event_id: bytes, comment: str, user: str
    ) -> Notification:
        """An operator's ``Acknowledge``, ``Confirm`` or ``AddComment`` (OPC 10000-9 5.7.3,
        5.7.4, 5.5.5) on a condition; ConditionError (with the status name) or KeyError."""
        condition = self.condition(source, name)
        call = {"Acknowledge": condition.acknowledge, "Confirm": condition.confirm,
                "AddComment": condition.add_comment}[method]  # fmt: skip
        n = call(self.clock.now(), event_id, comment, user)
        await self.publish([n])
        return n

    def by_event_id(self, event_id: bytes) -> tuple[str, str]:
        """The (source, name) whose open episode or state holds ``event_id`` (web page)."""
        for c in self.conditions():
            if c.state.event_id == event_id or event_id in c.open_event_ids:
                return c.state.source, c.state.condition
        raise ConditionError("BadEventIdUnknown", "no condition has this EventId")

    # -- the gateway ---------------------------------------------------------------------

    async def check(self) -> None:
        """One look at the disk, the certificate and the uplink."""
        now = self.clock.now()
        notes: list[Notification] = []
        p = self.probes
        if p.disk is not None:
            try:
                disk = await asyncio.to_thread(p.disk)
            except OSError as err:
                log.error("alarms: cannot look at the archive's disk: %s", err)
            else:
                notes += self.gateway.on_disk(
                    now,
                    disk.free_bytes,
                    disk.total_bytes,
                    self._days_left(now, disk.free_bytes),
                    disk.write_failed,
                )
        if p.certificate is not None:
            try:
                not_after = await asyncio.to_thread(p.certificate)
            except (OSError, ValueError) as err:
                log.error("alarms: cannot read the own certificate: %s", err)
            else:
                if not_after is not None:
                    notes += self.gateway.on_certificate(now, not_after)
        if p.uplink is not None:
            try:
                up = p.uplink()
            except Exception:
                log.exception("alarms: cannot look at the uplink")
            else:
                notes += self.gateway.on_uplink(now, up.connected, up.down_since)
        await self.publish(notes)

    def _days_left(self, now: datetime, free: int) -> float | None:
        """Days until the disk is full at the rate the free space fell since the first look
        (None before an hour has passed, or while it does not fall)."""
        if self._disk_seen is None:
            self._disk_seen = (now, free)
            return None
        since, before = self._disk_seen
        if free > before:  # space came back (pruning, a file removed): measure from here
            self._disk_seen = (now, free)
            return None
        hours = (now - since).total_seconds() / 3600
        if hours < 1 or free == before:
            return None
        return free / ((before - free) / hours) / 24

    async def run(self) -> None:
        """Look at the gateway every :data:`CHECK_S` until cancelled."""
        while True:
            await self.check()
            await self.clock.sleep(CHECK_S)
