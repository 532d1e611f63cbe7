"""The market services' async front: what the OPC UA, REST and web adapters call.

One :class:`~gateway.market.service.MarketService` per meter (one delivery point) does the
arithmetic in the event loop; the profile files are read and written in worker threads
(:class:`~gateway.market.store.ProfileStore` is synchronous). Registrations of one meter
are serialised by a lock, so two clients notifying the same day at once cannot both pass
the "already notified" check. The desk is a poller listener that needs every snapshot
(the energy at a period's start): each snapshot updates the advice, which is posted with
the snapshot to the advice listeners (the address space, the live page) through mailboxes
(:mod:`gateway.meter.feed`): a slow one never holds up the advice of the next second.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Protocol

from gateway.archive.files import ArchiveReader
from gateway.archive.minutes import REGISTER_STREAM
from gateway.clock import Clock
from gateway.config import MarketConfig
from gateway.errors import ArchiveError, MarketInputError
from gateway.localtime import meter_zone
from gateway.market.advice import Advice
from gateway.market.periods import MarketCalendar
from gateway.market.profiles import NotifiedProfile
from gateway.market.service import EXPORT_ENERGY, IMPORT_ENERGY, MAX_GAP, MarketService
from gateway.market.store import ProfileStore
from gateway.meter.feed import Delivery, Mailbox, Outbox, delivery_of
from gateway.meter.model import EventRecord, ProfileData, Snapshot

log = logging.getLogger(__name__)

ProfileListener = Callable[[str, NotifiedProfile], Awaitable[None]]


class AdviceListener(Protocol):
    """A consumer of the advice, with the snapshot it was computed from. A ``delivery``
    attribute (:class:`~gateway.meter.feed.Delivery`) may ask for every one; by default
    only the latest of each meter is delivered."""

    async def on_advice(self, snapshot: Snapshot, advice: Advice) -> None: ...


class MarketDesk:
    """Profiles and advice of every meter, for the adapters."""

    def __init__(
        self, config: MarketConfig, root: Path | str, meter_ids: Sequence[str], clock: Clock
    ) -> None:
        zone = meter_zone(config.timezone)
        if zone is None:
            raise ValueError("the market needs a time zone (its delivery days start at local midnight)")
        self.config = config
        self.calendar = MarketCalendar(zone, config.period_minutes)
        self.clock = clock
        limit = config.limit_kw or None
        self.services = {
            mid: MarketService(self.calendar, allow_past=config.allow_past, limit_kw=limit)
            for mid in meter_ids
        }
        self.stores = {mid: ProfileStore(root, mid, self.calendar, config.timezone) for mid in meter_ids}
        self._locks = {mid: asyncio.Lock() for mid in meter_ids}
        #: Where the advice goes: a mailbox per listener, never awaited.
        self.outbox = Outbox()
        self._advice_listeners: list[tuple[AdviceListener, Mailbox]] = []
        self.profile_listeners: list[ProfileListener] = []

    def add_advice_listener(self, listener: AdviceListener) -> None:
        delivery = delivery_of(listener) if hasattr(listener, "delivery") else Delivery.LATEST
        mailbox = self.outbox.add(f"advice to {type(listener).__name__}", delivery)
        self._advice_listeners.append((listener, mailbox))

    async def run(self) -> None:
        """Deliver the advice to its listeners; only cancellation ends it."""
        await self.outbox.run()

    def service(self, meter_id: str) -> MarketService:
        try:
            return self.services[meter_id]
        except KeyError:
            raise KeyError(f"no meter {meter_id!r} (known: {', '.join(self.services)})") from None

    async def load(self, meter_id: str, day: date) -> NotifiedProfile | None:
        """The stored profile of ``day``: remembered for the days around today, else read."""
        service = self.service(meter_id)
        if service.loaded(day):
            return service.profile(day)
        profile = await asyncio.to_thread(self.stores[meter_id].load, day)
        # A registration may have stored a newer profile while the file was being read.
        if not service.loaded(day) and service.keeps(day, self.calendar.day_of(self.clock.now())):
            service.remember(day, profile)
        return profile

    async def register(
        self, meter_id: str, day: object, values: list[object], unit: str = "kWh", *, replace: bool = False
    ) -> tuple[NotifiedProfile, bool]:
        """Validate and store a profile; MarketInputError (nothing stored) if it is refused.
        Returns the stored profile and whether it replaced one."""
        service = self.service(meter_id)
        async with self._locks[meter_id]:
            existing = None
            if isinstance(day, date) and not isinstance(day, datetime):
                existing = await self.load(meter_id, day)
            now = self.clock.now()
            profile = service.prepare(day, values, unit, now=now, existing=existing, replace=replace)
            await asyncio.to_thread(self.stores[meter_id].save, profile, now)
            if service.loaded(profile.day) or service.keeps(profile.day, self.calendar.day_of(now)):
                service.remember(profile.day, profile)
        log.info(
            "meter %s: profile for %s registered (%.3f kWh)", meter_id, profile.day, sum(profile.energy_kwh)
        )
        for listener in self.profile_listeners:
            await listener(meter_id, profile)
        return profile, existing is not None

    async def days(self, meter_id: str) -> list[date]:
        """Delivery days with a stored profile, oldest first."""
        self.service(meter_id)
        return await asyncio.to_thread(self.stores[meter_id].days)

    async def advice_at(self, meter_id: str, at: datetime | None = None) -> Advice:
        """The advice now, or at a later instant of the running period (current power held)."""
        service = self.service(meter_id)
        moment = at or self.clock.now()
        if moment.tzinfo is None:
            raise MarketInputError(f"the time must say its offset, got {moment.isoformat()}", field="time")
        await self.load(meter_id, self.calendar.day_of(moment))
        # "Now" may already be in the next period before its first snapshot: that period's advice.
        return service.advice_now(moment) if at is None else service.advice_at(moment)

    async def resume(self, meter_id: str, reader: ArchiveReader) -> int:
        """Feed the register samples archived around the running period's start to the
        service (see :meth:`MarketService.resume`); returns how many were found."""
        service = self.service(meter_id)
        now = self.clock.now()
        period = self.calendar.period_at(now)
        columns = [(str(IMPORT_ENERGY), ""), (str(EXPORT_ENERGY), "")]

        def read() -> list[tuple[datetime, float]]:
            rows = reader.read_columns(REGISTER_STREAM, columns, period.start - MAX_GAP, now)
            return [(t, a_plus - a_minus) for t, _status, (a_plus, a_minus) in rows
                    if a_plus is not None and a_minus is not None]  # fmt: skip

        reads = await asyncio.to_thread(read)
        service.resume(reads, now)
        return len(reads)

    def listener(self, meter_id: str) -> _DeskListener:
        """The poller listener that feeds ``meter_id``'s snapshots to its service."""
        return _DeskListener(self, meter_id)

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        meter_id = snapshot.meter_id
        service = self.service(meter_id)
        day = self.calendar.day_of(snapshot.time)
        if not service.loaded(day):
            try:
                await self.load(meter_id, day)
            except ArchiveError as err:
                # Advice without the profile says "no notification", which is what can be used.
                log.error("meter %s: %s", meter_id, err)
                service.remember(day, None)
        advice = service.on_snapshot(snapshot)
        for listener, mailbox in self._advice_listeners:
            mailbox.post(functools.partial(listener.on_advice, snapshot, advice), key=meter_id)


class _DeskListener:
    def __init__(self, desk: MarketDesk, meter_id: str) -> None:
        self.desk = desk
        self.meter_id = meter_id

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        await self.desk.on_snapshot(snapshot)

    async def on_profile(self, meter_id: str, profile: ProfileData) -> None:
        return None

    async def on_events(self, meter_id: str, events: Sequence[EventRecord]) -> None:
        return None
