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

Profiles are kept per delivery day as the async front (:mod:`gateway.market.desk`)
loads and stores them: this class does no I/O, so it can run in the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from gateway.errors import MarketInputError
from gateway.market.advice import Advice, compute_advice
from gateway.market.periods import MarketCalendar, SettlementPeriod
from gateway.market.profiles import NotifiedProfile, make_profile
from gateway.meter.model import Quality, Snapshot
from gateway.obis import Obis

#: Reads further apart than this around a period start (an outage) give no start value:
#: interpolating across it would assume a power nobody measured.
MAX_GAP = timedelta(minutes=2)
IMPORT_ENERGY = Obis.parse("1-0:1.8.0")
EXPORT_ENERGY = Obis.parse("1-0:2.8.0")
IMPORT_POWER = Obis.parse("1-0:1.7.0")
EXPORT_POWER = Obis.parse("1-0:2.7.0")


def interpolate(t0: datetime, v0: float, t1: datetime, v1: float, at: datetime) -> float | None:
    """A register's value at ``at`` from the reads ``(t0, v0)`` and ``(t1, v1)`` around it,
    linearly; None when ``at`` is not between them or they are more than :data:`MAX_GAP`
    apart. The value at a settlement period's start, as every market service takes it
    (the gateway's per meter, the head-end's per portfolio member)."""
    if not t0 <= at <= t1 or t1 - t0 > MAX_GAP:
        return None
    span = (t1 - t0).total_seconds()
    share = 0.0 if span <= 0 else (at - t0).total_seconds() / span
    return v0 + share * (v1 - v0)


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
    """Notified profiles and the imbalance advice of one meter (one delivery point)."""

    def __init__(
        self, calendar: MarketCalendar, *, allow_past: bool = False, limit_kw: float | None = None
    ) -> None:
        self.calendar = calendar
        self.allow_past = allow_past
        self.limit_kw = limit_kw
        self._profiles: dict[date, NotifiedProfile | None] = {}
        self._last_read: _Read | None = None
        self._period: SettlementPeriod | None = None
        self._at_start: float | None = None
        self._power_kw: float | None = None
        self._last_time: datetime | None = None
        self.advice: Advice | None = None

    # -- profiles -----------------------------------------------------------------------

    def loaded(self, day: date) -> bool:
        """Whether ``day``'s profile (or its absence) is known here."""
        return day in self._profiles

    def keeps(self, day: date, today: date) -> bool:
        """Whether ``day`` is worth keeping in memory: yesterday, today or tomorrow (the days
        the advice can need). Others are read from disk when asked for, so a client asking
        for many days does not grow the gateway's memory."""
        return abs((day - today).days) <= 1

    def remember(self, day: date, profile: NotifiedProfile | None) -> None:
        """Keep ``day``'s stored profile (None: none notified)."""
        self._profiles[day] = profile

    def forget_before(self, day: date) -> None:
        """Drop the profiles of days before ``day``."""
        for old in [d for d in self._profiles if d < day]:
            del self._profiles[old]

    def profile(self, day: date) -> NotifiedProfile | None:
        """The profile of ``day`` as remembered (None: none notified, or not loaded)."""
        return self._profiles.get(day)

    def prepare(
        self,
        day: object,
        values: list[object],
        unit: str,
        *,
        now: datetime,
        existing: NotifiedProfile | None,
        replace: bool = False,
    ) -> NotifiedProfile:
        """Validate a profile for ``day`` against ``existing``, the one stored for that day;
        raise MarketInputError if it is refused."""
        if not isinstance(day, date) or isinstance(day, datetime):
            raise MarketInputError(f"day must be a date, got {day!r}", field="day")
        return make_profile(
            self.calendar, day, values, unit, now=now, existing=existing, replace=replace,
            allow_past=self.allow_past, limit_kw=self.limit_kw,
        )  # fmt: skip

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
        self._enter(period)
        if read is not None:
            self._take(read, period)
        self._last_time = now
        self.advice = self._advise(now)
        return self.advice

    def resume(self, reads: Sequence[tuple[datetime, float]], now: datetime) -> None:
        """Take net register reads (time, kWh) archived before a restart, oldest first.

        The running period's start value is then interpolated from them exactly as from
        live reads, so after a short restart (a power cut of the box) the advice goes on at
        once instead of saying no-measurement until the next period.
        """
        period = self.calendar.period_at(now)
        self._enter(period)
        for t, net_kwh in reads:
            if t <= now:
                self._take(_Read(t, net_kwh), period)

    def _enter(self, period: SettlementPeriod) -> None:
        if period != self._period:
            # A new period: its start value is known once a read before and one after it exist.
            self._at_start = None
            self._period = period
            self.forget_before(period.day - timedelta(days=1))

    def _take(self, read: _Read, period: SettlementPeriod) -> None:
        before = self._last_read
        if before is not None and read.time <= before.time:
            return
        if self._at_start is None and before is not None:
            self._at_start = interpolate(before.time, before.net_kwh, read.time, read.net_kwh, period.start)
        self._last_read = read

    def advice_at(self, at: datetime) -> Advice:
        """The advice at ``at``: now or later in the running period, the current power held until then.

        Raises MarketInputError (out of range) for an instant before the last snapshot or
        beyond the running period: the measurement of another period is not known here.
        """
        if at.tzinfo is None:
            raise MarketInputError(f"the time must say its offset, got {at.isoformat()}", field="time")
        last, period = self._last_time, self._period
        if last is not None and period is not None and not last <= at < period.end:
            raise MarketInputError(
                f"{at.isoformat()} is not in the rest of the running period "
                f"[{last.isoformat()}, {period.end.isoformat()})",
                out_of_range=True,
                field="time",
            )
        return self._advise(at)

    def advice_now(self, now: datetime) -> Advice:
        """The advice at ``now`` from what is known, whichever period ``now`` falls in."""
        return self._advise(now)

    def _advise(self, at: datetime) -> Advice:
        period = self.calendar.period_at(at)
        return compute_advice(
            self.calendar,
            self.profile(period.day),
            at,
            net_energy_at_start_kwh=self._at_start if period == self._period else None,
            net_energy_now_kwh=self._energy_now(at),
            current_kw=self._power_kw,
        )

    def _energy_now(self, now: datetime) -> float | None:
        last = self._last_read
        if last is None:
            return None
        since_h = max(0.0, (now - last.time).total_seconds()) / 3600
        return last.net_kwh + (self._power_kw or 0.0) * since_h
