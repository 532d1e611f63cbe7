"""One member site of a portfolio as the head-end sees it (pure; issue 18).

From the box's uplink (``gateway/uplink/writers.py``) the head-end gets, per site:

* ``live`` — the 1-second values every ``live_interval_s`` (1 s to 15 s), key frames and
  delta frames (a delta frame leaves out what did not change): the net power is
  ``ActivePowerImport - ActivePowerExport`` (1-0:1.7.0 minus 1-0:2.7.0, kW);
* ``registers`` — the energy registers once a minute: the net energy
  ``ActiveEnergyImport - ActiveEnergyExport`` (1-0:1.8.0 minus 1-0:2.8.0, kWh).

The energy at an instant is taken as the gateway's market service takes it
(``gateway/market/service.py``): between two register reads at most ``MAX_GAP`` apart it
is interpolated (:func:`~gateway.market.service.interpolate`); after the last read it is
that read plus the live power integrated since (each value held until the next). A
settlement period's start value is therefore *provisional* (integrated) until the first
register read after the start arrives, then *final* (interpolated).

A member also keeps its **recent profile**: per minute of the last :data:`RECENT` the sum
of its net power and of its magnitude. The portfolio's coverage weighs members by it, a
stale member's power is estimated from it, and the flexibility ranking compares the power
now with it.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.market.service import MAX_GAP, interpolate

#: How far back the recent profile reaches.
RECENT = timedelta(minutes=15)
#: Live samples kept at most for integration (pruned to those since the last but one register
#: read, about two minutes at 1-s live; this bounds a member whose registers stopped).
SAMPLES_KEPT = 256
#: Register reads kept (one a minute: the running period's start stays bracketed a while).
READS_KEPT = 8
#: The live fields of the net power and the register fields of the net energy (the
#: BrowseNames of 1-0:1.7.0, 1-0:2.7.0, 1-0:1.8.0, 1-0:2.8.0 in gateway/obis.py).
POWER_IMPORT, POWER_EXPORT = "ActivePowerImport", "ActivePowerExport"
ENERGY_IMPORT, ENERGY_EXPORT = "ActiveEnergyImport", "ActiveEnergyExport"
_MINUTE = timedelta(minutes=1)


@dataclass(slots=True)
class _Minute:
    start: datetime
    total: float = 0.0
    magnitude: float = 0.0
    count: int = 0


@dataclass(slots=True)
class Member:
    """A member site: its latest net power, its register reads, its recent profile."""

    publisher: str
    #: The last Good value of each live power field (delta frames leave unchanged ones out).
    fields: dict[str, float] = field(default_factory=dict)
    #: The latest net power (kW) and its time; None until import and export are both known.
    power: float | None = None
    power_time: datetime | None = None
    #: Live net power samples (time, kW), oldest first.
    samples: deque[tuple[datetime, float]] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    #: Register reads (time, net kWh), oldest first; the last few only.
    reads: list[tuple[datetime, float]] = field(default_factory=list)
    #: Integral of the samples from the last read's time to the last sample's time, kWh.
    _acc: float = 0.0
    minutes: deque[_Minute] = field(default_factory=deque)
    #: What the site's status messages said: False after its Will or a clean stop.
    online: bool = True
    #: (period start, energy there, final) as last computed.
    _start: tuple[datetime, float | None, bool] | None = None

    # -- input ----------------------------------------------------------------------------

    def live(self, time: datetime, values: dict[str, float | None]) -> bool:
        """Take a live message's Good power fields (``None``: not Good, forgotten). Returns
        whether the net power is known afterwards. Older than the latest: ignored."""
        if self.power_time is not None and time <= self.power_time:
            return self.power is not None
        for name in (POWER_IMPORT, POWER_EXPORT):
            if name in values:
                v = values[name]
                if v is None:
                    self.fields.pop(name, None)
                else:
                    self.fields[name] = v
        imported, exported = self.fields.get(POWER_IMPORT), self.fields.get(POWER_EXPORT)
        if imported is None or exported is None:
            self.power, self.power_time = None, time
            return False
        net = imported - exported
        self._integrate(time, net)
        self.power, self.power_time = net, time
        self.samples.append((time, net))
        self._profile(time, net)
        return True

    def _integrate(self, time: datetime, net: float) -> None:
        if not self.reads:
            return
        anchor = self.reads[-1][0]
        if time <= anchor:
            return
        if self.samples:
            last_time, last = self.samples[-1]
            # The last value held from the later of its time and the anchor until now.
            self._acc += last * (time - max(last_time, anchor)).total_seconds() / 3600
        else:
            # The first value after the read: taken as held since the read (the gateway holds
            # the current power the same way between its register reads).
            self._acc += net * (time - anchor).total_seconds() / 3600

    def register(self, time: datetime, net_kwh: float) -> None:
        """Take a register read (net import energy, kWh). Reads may come late (a replay),
        out of order, or twice; the last :data:`READS_KEPT` are kept."""
        times = [t for t, _v in self.reads]
        i = bisect.bisect_left(times, time)
        if i < len(times) and times[i] == time:
            self.reads[i] = (time, net_kwh)
        else:
            self.reads.insert(i, (time, net_kwh))
        del self.reads[:-READS_KEPT]
        if self.reads[-1][0] == time:
            self._acc = self._integral(time, self.samples[-1][0]) if self.samples else 0.0
            if len(self.reads) > 1:
                # Samples before the previous read are needed no more (a start between the
                # last two reads is interpolated): a fleet's members keep a minute or two each.
                keep_from = self.reads[-2][0]
                while len(self.samples) > 1 and self.samples[1][0] <= keep_from:
                    self.samples.popleft()
        cached = self._start
        if cached is not None and not cached[2]:
            # A provisional start value may now be interpolated (or first known); the reads
            # around the start are still here, since the start is asked for every second.
            value = self.energy_at(cached[0])
            if value is not None:
                self._start = (cached[0], value, any(t >= cached[0] for t, _v in self.reads))

    def _profile(self, time: datetime, net: float) -> None:
        start = time.replace(second=0, microsecond=0)
        if not self.minutes or self.minutes[-1].start < start:
            self.minutes.append(_Minute(start))
        bucket = self.minutes[-1]
        if bucket.start == start:
            bucket.total += net
            bucket.magnitude += abs(net)
            bucket.count += 1
        while self.minutes and self.minutes[0].start <= time - RECENT:
            self.minutes.popleft()

    # -- questions ------------------------------------------------------------------------

    def fresh(self, now: datetime, stale_after: timedelta) -> bool:
        """Whether its net power is known and at most ``stale_after`` old."""
        return self.power is not None and self.power_time is not None and now - self.power_time <= stale_after

    def recent(self, now: datetime) -> tuple[float, float] | None:
        """(mean net power, mean magnitude) of the last :data:`RECENT`, kW; None if nothing."""
        total = magnitude = 0.0
        count = 0
        for m in self.minutes:
            if m.start > now - RECENT:
                total += m.total
                magnitude += m.magnitude
                count += m.count
        return None if count == 0 else (total / count, magnitude / count)

    def change(self, now: datetime, minutes: int) -> float | None:
        """The power now minus its mean of the minute ``minutes`` ago (kW): how far the site
        moved lately; None without both."""
        if self.power is None:
            return None
        then = (now - minutes * _MINUTE).replace(second=0, microsecond=0)
        for m in self.minutes:
            if m.start >= then and m.count:
                return self.power - m.total / m.count
        return None

    def _integral(self, start: datetime, end: datetime) -> float:
        """The samples' integral over ``[start, end]``, each held until the next, kWh."""
        if end <= start or not self.samples:
            return 0.0
        total = 0.0
        held: float | None = None
        at = start
        for t, v in self.samples:
            if t <= start:
                held = v
                continue
            if t >= end:
                break
            total += (v if held is None else held) * (t - at).total_seconds() / 3600
            held, at = v, t
        if held is not None:
            total += held * (end - at).total_seconds() / 3600
        return total

    def energy_at(self, at: datetime) -> float | None:
        """The net energy register (kWh) at ``at``: interpolated between the reads around it,
        or the last read before it plus the live power integrated since; None before the
        first read (or in a gap longer than MAX_GAP)."""
        times = [t for t, _v in self.reads]
        i = bisect.bisect_right(times, at)
        if i == 0:
            return None
        t0, v0 = self.reads[i - 1]
        if t0 == at:
            return v0
        if i < len(self.reads):
            t1, v1 = self.reads[i]
            return interpolate(t0, v0, t1, v1, at)
        if self.samples and at >= self.samples[-1][0] and t0 <= self.samples[-1][0]:
            # The common question (now): the running integral, then the last value held.
            last_time, last = self.samples[-1]
            return v0 + self._acc + last * (at - max(last_time, t0)).total_seconds() / 3600
        if len(self.samples) == SAMPLES_KEPT and self.samples[0][0] > t0:
            return None  # the samples since that read are no longer all here: not measured
        return v0 + self._integral(t0, at)

    def energy_at_start(self, start: datetime) -> tuple[float | None, bool]:
        """(energy at a period's start, whether final): final once interpolated between two
        reads around it; provisional (integrated) before; remembered per start."""
        cached = self._start
        if cached is not None and cached[0] == start:
            return cached[1], cached[2]
        value = self.energy_at(start)
        final = value is not None and any(t >= start for t, _v in self.reads)
        self._start = (start, value, final)
        return value, final

    @property
    def known_until(self) -> datetime | None:
        """The time of its last live value (its energy beyond that is not measured)."""
        return self.power_time if self.power is not None else None


def net_energy(values: dict[str, float | None]) -> float | None:
    """The net energy of a register message's fields (kWh), None unless both are there."""
    imported, exported = values.get(ENERGY_IMPORT), values.get(ENERGY_EXPORT)
    if imported is None or exported is None:
        return None
    return imported - exported


__all__ = ["MAX_GAP", "RECENT", "Member", "net_energy"]
