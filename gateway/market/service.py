"""The market service of one delivery point: profiles in, advice out, every second.

Fed with the poller's snapshots, it keeps what the advice needs from the meter:

* the **net import energy** ``A+ - A-`` (1-0:1.8.0 minus 1-0:2.8.0, kWh) at each
  register read, and from it the value at the running period's start, interpolated
  between the reads just before and after the start (registers are read every few
  seconds, so the start is rarely a read);
* the energy **now**: the last register read plus the net power (1-0:1.7.0 minus
  1-0:2.7.0, kW) integrated since that read, so the measured energy moves every second
  and not only when the registers are read again;
* the **net power now**.

When the gateway starts in the middle of a period, the energy at its start is unknown
and the advice says so (``no-measurement``) until the next period begins: a guess would
steer the plant wrongly. Readings that are not Good are not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from gateway.errors import MarketInputError
from gateway.market.advice import Advice, compute_advice
from gateway.market.periods import MarketCalendar, SettlementPeriod
from gateway.market.profiles import NotifiedProfile, make_profile
from gateway.market.store import ProfileStore
from gateway.meter.model import Quality, Snapshot
from gateway.obis import Obis

#: Reads further apart than this around a period start (an outage) give no start value:
#: interpolating across it would assume a power nobody measured.
MAX_GAP = timedelta(minutes=2)
IMPORT_ENERGY = Obis.parse("1-0:1.8.0")
EXPORT_ENERGY = Obis.parse("1-0:2.8.0")
IMPORT_POWER = Obis.parse("1-0:1.7.0")
EXPORT_POWER = Obis.parse("1-0:2.7.0")


@dataclass(frozen=True, slots=True)
class _Read:
    time: datetime
    net_kwh: float


def _good(snapshot: Snapshot, obis: Obis) -> tuple[float, datetime] | None:
    reading = snapshot.readings.get(obis)
    if reading is None or reading.quality is not Quality.GOOD or reading.value is None:
        return None
    if reading.source_time is None:
        return None
    return reading.value, reading.source_time


class MarketService:
    """Notified profiles and the imbalance advice of one meter."""

    def __init__(self, calendar: MarketCalendar, store: ProfileStore) -> None:
        self.calendar = calendar
        self.store = store
        self._profiles: dict[date, NotifiedProfile | None] = {}
        self._last_read: _Read | None = None
        self._period: SettlementPeriod | None = None
        self._at_start: float | None = None
        self._power_kw: float | None = None
        self.advice: Advice | None = None

    # -- profiles -----------------------------------------------------------------------

    def profile(self, day: date) -> NotifiedProfile | None:
        if day not in self._profiles:
            self._profiles[day] = self.store.load(day)
        return self._profiles[day]

    def register(
        self,
        day: date,
        values: list[object],
        unit: str,
        *,
        now: datetime,
        replace: bool = False,
        allow_past: bool = False,
    ) -> NotifiedProfile:
        """Validate and store a profile; raise MarketInputError and store nothing if it is bad."""
        if not isinstance(day, date) or isinstance(day, datetime):
            raise MarketInputError(f"day must be a date, got {day!r}")
        profile = make_profile(
            self.calendar, day, values, unit, now=now, existing=self.profile(day), replace=replace,
            allow_past=allow_past,
        )  # fmt: skip
        self.store.save(profile, registered=now)
        self._profiles[day] = profile
        return profile

    # -- advice -------------------------------------------------------------------------

    def on_snapshot(self, snapshot: Snapshot) -> Advice:
        """Take the snapshot's registers and power; return the advice at the snapshot's time."""
        now = snapshot.time
        period = self.calendar.period_at(now)
        imported, exported = _good(snapshot, IMPORT_ENERGY), _good(snapshot, EXPORT_ENERGY)
        read = None
        if imported is not None and exported is not None:
            read = _Read(max(imported[1], exported[1]), imported[0] - exported[0])
        p_in, p_out = _good(snapshot, IMPORT_POWER), _good(snapshot, EXPORT_POWER)
        self._power_kw = None if p_in is None or p_out is None else p_in[0] - p_out[0]
        if period != self._period:
            # A new period: its start value is known once a read before and one after it exist.
            self._at_start = None
            self._period = period
        if read is not None and (self._last_read is None or read.time > self._last_read.time):
            before = self._last_read
            if (
                self._at_start is None
                and before is not None
                and before.time <= period.start <= read.time
                and read.time - before.time <= MAX_GAP
            ):
                span = (read.time - before.time).total_seconds()
                share = 0.0 if span <= 0 else (period.start - before.time).total_seconds() / span
                self._at_start = before.net_kwh + share * (read.net_kwh - before.net_kwh)
            self._last_read = read
        self.advice = compute_advice(
            self.calendar,
            self.profile(period.day),
            now,
            net_energy_at_start_kwh=self._at_start,
            net_energy_now_kwh=self._energy_now(now),
            current_kw=self._power_kw,
        )
        return self.advice

    def _energy_now(self, now: datetime) -> float | None:
        last = self._last_read
        if last is None:
            return None
        since_h = max(0.0, (now - last.time).total_seconds()) / 3600
        return last.net_kwh + (self._power_kw or 0.0) * since_h
