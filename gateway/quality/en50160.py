"""EN 50160 voltage characteristics of a public low-voltage supply, judged from what a
billing meter read once a second gives. Pure: plain numbers and datetimes in, a report out.

The criteria (EN 50160:2010, clause 4.2, low voltage):

* **power frequency** (4.2.1): the 10-second mean within 50 Hz ± 1 % during 99.5 % of a
  year and within +4 %/-6 % all the time. A week's share is reported; it fails the year's
  criterion only when its own means outside the band exceed the year's allowance (a week
  cannot prove a year; it can disprove it).
* **supply voltage variations** (4.2.2): of each week's 10-minute mean r.m.s. values, 95 %
  within Un ± 10 % and all within Un +10 %/-15 %; per phase, the verdict from the worst.
* **supply voltage unbalance** (4.2.5): 95 % of the week's 10-minute means of the negative
  sequence component within 2 % of the positive sequence. A billing meter gives the phase
  voltages' magnitudes, not their angles: the unbalance here is the negative over the
  positive sequence of the three 10-minute means taken 120° apart, an **approximation**
  (the angles' own unbalance is not seen).
* **interruptions** (4.2.4, 3.14): short up to 3 minutes, long beyond; **dips** and
  **swells** (4.2.6, 4.2.7, 3.20-3.21): indicative values only, so counted, not judged.

Where the numbers come from: the meter's 1-second r.m.s. values (the meter's own
measurement over a second or so) are aggregated into 10-minute values as IEC 61000-4-30
5.2.3 does, the square root of the mean of their squares (a value counts when at least
half of its seconds were read, :data:`MIN_SECONDS`), and its frequency into 10-second
means; dips, swells and interruptions are the meter's events
(threshold crossings it logs per phase, power down/up). A sag episode of the meter longer
than a minute is a slow variation, not a dip (EN 50160 3.20: 10 ms to 1 min): it is seen in
the 10-minute means and counted as an undervoltage (overvoltage for swells). Intervals
holding a dip, a swell or an interruption are *flagged* (IEC 61000-4-30, 4.7) and left out
of the variation, unbalance and frequency shares, as a class-A instrument's are.

What a class-A instrument (IEC 61000-4-30) measures that this cannot: r.m.s. over 10/12
cycles gap-free and synchronised to the mains, so every dip of 10 ms and its residual
voltage and duration to the half cycle (a meter's 1-second value averages a short dip
away, and its event thresholds and debounce are the manufacturer's); frequency from whole
cycles over exactly 10 s; flicker (Pst/Plt), harmonics and interharmonics, mains signalling
voltages, rapid voltage changes; the true negative-sequence unbalance from phasors; a
measurement uncertainty of 0.1 % of Udin. A week's verdict here is a screening, not a
compliance measurement.

Weeks run from Monday 00:00 to Monday 00:00 in the meter's zone (:func:`week_of`): across a
daylight-saving change the week has 167 or 169 hours, 1,002 or 1,014 10-minute intervals.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo

#: Seconds of a 10-minute aggregation interval and of a frequency mean (IEC 61000-4-30, 4.4, 5.1).
TEN_MINUTES_S = 600
TEN_SECONDS_S = 10
#: A 10-minute mean counts when at least half of its seconds had a value.
MIN_SECONDS = TEN_MINUTES_S // 2
#: 10-second means in a (365-day) year.
YEAR_10S = 365 * 86400 // TEN_SECONDS_S
#: A week is judged as a whole only with at least half of its 10-minute values.
MIN_COVERAGE = 0.5
#: EN 50160 3.14, 4.2.4: a short interruption lasts up to 3 minutes.
SHORT_INTERRUPTION_S = 180.0
#: EN 50160 3.20: a dip lasts 10 ms to 1 minute; a longer episode is a slow variation.
DIP_MAX_S = 60.0

#: The meter event codes read here (gateway/events.py).
POWER_DOWN, POWER_UP = 1, 2
SAG = {76: 0, 77: 1, 78: 2}
SWELL = {79: 0, 80: 1, 81: 2}
NORMAL = {82: 0, 83: 1, 84: 2}


@dataclass(frozen=True, slots=True)
class Limits:
    """The criteria's numbers (EN 50160:2010, 4.2, LV); ``un_v`` and ``fn_hz`` nominal."""

    un_v: float = 230.0
    fn_hz: float = 50.0
    band_pct: float = 10.0  # 4.2.2: Un +/- 10 % for 95 % of the week
    over_pct: float = 10.0  # 4.2.2: all within Un + 10 % ...
    under_pct: float = 15.0  # ... and Un - 15 %
    voltage_share_pct: float = 95.0
    f_band_pct: float = 1.0  # 4.2.1: 50 Hz +/- 1 % for 99.5 % of a year
    f_share_pct: float = 99.5
    f_over_pct: float = 4.0  # 4.2.1: +4 % / -6 % all the time
    f_under_pct: float = 6.0
    unbalance_pct: float = 2.0  # 4.2.5: 95 % of the week within 2 %
    unbalance_share_pct: float = 95.0


def unbalance_pct(a: float, b: float, c: float) -> float:
    """Negative over positive sequence in %, from three phase-to-neutral magnitudes taken
    120° apart (IEC 61000-4-30, 5.7: u2 = U2 / U1 of the symmetrical components; with the
    angles ideal, U1 = (a + b + c) / 3 and |U2| = sqrt(a² + b² + c² - ab - bc - ca) / 3).
    The approximation: a real supply's angles deviate too, and that unbalance is not seen."""
    total = a + b + c
    if total <= 0:
        return math.nan
    return 100.0 * math.sqrt(max(0.0, a * a + b * b + c * c - a * b - b * c - c * a)) / total


@dataclass(frozen=True, slots=True)
class TenMinutes:
    """One 10-minute interval's aggregates: the interval's start (UTC), the seconds with a
    voltage, the mean r.m.s. voltage per phase (None where the phase had no value), and
    the interval's 10-second frequency means: how many, how many within ±1 % and within
    +4/-6 %."""

    start: datetime
    seconds: int
    u_mean: tuple[float | None, ...]
    f_means: int = 0
    f_in_band: int = 0
    f_in_limits: int = 0

    @property
    def valid(self) -> bool:
        return self.seconds >= MIN_SECONDS

    @property
    def unbalance_pct(self) -> float | None:
        """The approximation of the module's docstring; None for fewer than three phases."""
        if len(self.u_mean) != 3 or any(u is None for u in self.u_mean):
            return None
        a, b, c = (u or 0.0 for u in self.u_mean)
        return unbalance_pct(a, b, c)


class TenMinuteAggregator:
    """Folds 1-second values into :class:`TenMinutes` (intervals on the clock's 10 minutes,
    which are the same in every zone whose offset is a multiple of 10 minutes) and 10-second
    frequency means. Fed in time order; a value older than the open interval is ignored."""

    def __init__(self, phases: int = 3, limits: Limits | None = None) -> None:
        self.phases = phases
        self.limits = limits or Limits()
        f = self.limits
        self._band = (f.fn_hz * (1 - f.f_band_pct / 100), f.fn_hz * (1 + f.f_band_pct / 100))
        self._limits = (f.fn_hz * (1 - f.f_under_pct / 100), f.fn_hz * (1 + f.f_over_pct / 100))
        self._interval: int | None = None  # epoch second of the open interval's start
        self._reset()

    def _reset(self) -> None:
        self._sums = [0.0] * self.phases
        self._counts = [0] * self.phases
        self._seconds = 0
        self._f_bin: int | None = None
        self._f_sum = 0.0
        self._f_n = 0
        self._f_means = self._f_in_band = self._f_in_limits = 0

    def add(self, t: datetime, voltages: Sequence[float | None], frequency: float | None) -> list[TenMinutes]:
        """One second's values; the intervals that ``t`` closed (usually none)."""
        second = int(t.timestamp())
        start = second - second % TEN_MINUTES_S
        closed: list[TenMinutes] = []
        if self._interval is None:
            self._interval = start
        elif start < self._interval:
            return closed  # out of order: the interval it belongs to is closed
        elif start > self._interval:
            closed.append(self._close())
            self._interval = start
        seen = False
        for k, u in enumerate(voltages[: self.phases]):
            if u is not None and math.isfinite(u):
                self._sums[k] += u * u
                self._counts[k] += 1
                seen = True
        self._seconds += seen
        if frequency is not None and math.isfinite(frequency):
            b = second // TEN_SECONDS_S
            if b != self._f_bin:
                self._close_f_bin()
                self._f_bin = b
            self._f_sum += frequency
            self._f_n += 1
        return closed

    def _bin_counts(self) -> tuple[int, int, int]:
        """The open 10-second bin as (means, within ±1 %, within +4/-6 %)."""
        if not self._f_n:
            return 0, 0, 0
        mean = self._f_sum / self._f_n
        return 1, int(self._band[0] <= mean <= self._band[1]), int(self._limits[0] <= mean <= self._limits[1])

    def _close_f_bin(self) -> None:
        means, band, limits = self._bin_counts()
        self._f_means += means
        self._f_in_band += band
        self._f_in_limits += limits
        self._f_sum, self._f_n = 0.0, 0

    def _record(self) -> TenMinutes:
        assert self._interval is not None
        means, band, limits = self._bin_counts()
        return TenMinutes(
            start=datetime.fromtimestamp(self._interval, UTC),
            seconds=self._seconds,
            u_mean=tuple(
                math.sqrt(s / n) if n else None for s, n in zip(self._sums, self._counts, strict=True)
            ),
            f_means=self._f_means + means,
            f_in_band=self._f_in_band + band,
            f_in_limits=self._f_in_limits + limits,
        )

    def _close(self) -> TenMinutes:
        record = self._record()
        self._reset()
        return record

    def flush(self) -> TenMinutes | None:
        """The open interval as it stands (for the running week), without closing it."""
        return None if self._interval is None else self._record()


# --------------------------------------------------------------------------- events


class Kind(enum.Enum):
    """What an episode of the meter's events is, in EN 50160's words (clause 3)."""

    DIP = "dip"
    SWELL = "swell"
    UNDERVOLTAGE = "undervoltage"  # a sag longer than a dip: a slow variation
    OVERVOLTAGE = "overvoltage"
    SHORT_INTERRUPTION = "short interruption"
    LONG_INTERRUPTION = "long interruption"


@dataclass(frozen=True, slots=True)
class Episode:
    """A disturbance from ``start`` to ``end`` (None: still going at the end of what was read)."""

    kind: Kind
    start: datetime
    end: datetime | None
    phases: tuple[int, ...] = ()

    @property
    def flags(self) -> bool:
        """IEC 61000-4-30, 4.7: dips, swells and interruptions flag their intervals."""
        return self.kind not in (Kind.UNDERVOLTAGE, Kind.OVERVOLTAGE)


def episodes(events: Iterable[tuple[datetime, int]], until: datetime) -> list[Episode]:
    """Dips, swells, slow variations and interruptions from the meter's events (UTC time,
    code) in time order. Per-phase episodes that overlap are one polyphase event (IEC
    61000-4-30, 5.4.2.2: it starts when the first phase crosses, ends when the last returns)."""
    found: list[Episode] = []
    down: datetime | None = None
    open_: dict[tuple[bool, int], datetime] = {}  # (is swell, phase) -> start
    phase_runs: list[tuple[bool, datetime, datetime | None, int]] = []
    for at, code in sorted(events, key=lambda e: e[0]):
        if code == POWER_DOWN:
            if down is None:
                down = at
            # the supply is gone: a sag or swell under way ends here, the outage is counted
            # as the interruption it is (not as a minutes-long undervoltage on top)
            for (swell, phase), begun in sorted(open_.items(), key=lambda kv: kv[1]):
                phase_runs.append((swell, begun, at, phase))
            open_.clear()
        elif code == POWER_UP:
            if down is not None:
                found.append(_interruption(down, at))
                down = None
        elif code in SAG or code in SWELL:
            swell, phase = (True, SWELL[code]) if code in SWELL else (False, SAG[code])
            open_.setdefault((swell, phase), at)
        elif code in NORMAL:
            phase = NORMAL[code]
            for swell in (False, True):
                if (swell, phase) in open_:
                    phase_runs.append((swell, open_.pop((swell, phase)), at, phase))
    if down is not None:
        found.append(Episode(Kind.LONG_INTERRUPTION, down, None))
    for (swell, phase), begun in open_.items():
        phase_runs.append((swell, begun, None, phase))
    for swell in (False, True):
        runs = sorted((r for r in phase_runs if r[0] is swell), key=lambda r: r[1])
        merged: list[tuple[datetime, datetime | None, set[int]]] = []
        for _, begun, ended, phase in runs:
            if merged and (merged[-1][1] is None or begun <= merged[-1][1]):
                b, e, phases = merged[-1]
                later = None if e is None or ended is None else max(e, ended)
                merged[-1] = (b, later, phases | {phase})
            else:
                merged.append((begun, ended, {phase}))
        for begun, ended, phases in merged:
            lasted = ((ended or until) - begun).total_seconds()
            short = lasted <= DIP_MAX_S and ended is not None
            kind = (
                (Kind.SWELL if short else Kind.OVERVOLTAGE)
                if swell
                else (Kind.DIP if short else Kind.UNDERVOLTAGE)
            )
            found.append(Episode(kind, begun, ended, tuple(sorted(phases))))
    return sorted(found, key=lambda e: (e.start, e.kind.value))


def _interruption(down: datetime, up: datetime) -> Episode:
    short = (up - down).total_seconds() <= SHORT_INTERRUPTION_S
    return Episode(Kind.SHORT_INTERRUPTION if short else Kind.LONG_INTERRUPTION, down, up)


# --------------------------------------------------------------------------- the week


def week_of(t: datetime, zone: tzinfo | None) -> tuple[datetime, datetime]:
    """The week holding ``t``: Monday 00:00 to the next Monday 00:00 in ``zone`` (UTC for
    None), as UTC instants - 167 or 169 hours across a daylight-saving change."""
    local = t.astimezone(zone or UTC)
    monday = local.date() - timedelta(days=local.weekday())
    start = datetime.combine(monday, time(0), tzinfo=zone or UTC)
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=zone or UTC)
    return start.astimezone(UTC), end.astimezone(UTC)


class Verdict(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no data"


@dataclass(frozen=True, slots=True)
class Criterion:
    """One line of the report: what was measured, against what, and the verdict."""

    name: str
    clause: str
    measured: float | None  # a share in %, a worst value, a count
    limit: str
    verdict: Verdict | None  # None: reported, not judged (dips, swells)
    unit: str = "%"


@dataclass(frozen=True, slots=True)
class WeekReport:
    """EN 50160 statistics of one week at one connection point."""

    start: datetime
    end: datetime
    intervals: int  # 10-minute intervals the week has (1,008; 1,002 or 1,014 across DST)
    valid: int  # with a mean of enough seconds
    flagged: int  # of those, holding a dip, swell or interruption (left out of the shares)
    criteria: tuple[Criterion, ...]
    episodes: tuple[Episode, ...] = field(default=())

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    def criterion(self, name: str) -> Criterion:
        return next(c for c in self.criteria if c.name == name)

    @property
    def verdict(self) -> Verdict:
        """Fail if a criterion fails; pass if all judged pass and the week has at least
        :data:`MIN_COVERAGE` of its 10-minute values (a few hours cannot speak for a week)."""
        judged = [c.verdict for c in self.criteria if c.verdict is not None]
        if Verdict.FAIL in judged:
            return Verdict.FAIL
        if Verdict.PASS not in judged or self.valid < MIN_COVERAGE * self.intervals:
            return Verdict.NO_DATA
        return Verdict.PASS


def _share(good: int, total: int) -> float | None:
    return 100.0 * good / total if total else None


def _judged(name: str, clause: str, share: float | None, needed: float, of: str) -> Criterion:
    verdict = Verdict.NO_DATA if share is None else Verdict.PASS if share >= needed else Verdict.FAIL
    return Criterion(name, clause, share, f"≥ {needed:g} % {of}", verdict)


def _year(share: float | None, outside: int, lim: Limits) -> Criterion:
    """4.2.1's ±1 % holds for 99.5 % of a **year**: a week proves nothing by itself, it fails
    the year only when its own 10-s means outside the band already exceed the year's
    allowance (0.5 % of a year's 3,153,600 means: 15,768, about 44 hours)."""
    allowance = round(YEAR_10S * (100.0 - lim.f_share_pct) / 100.0)
    verdict = Verdict.NO_DATA if share is None else Verdict.FAIL if outside > allowance else Verdict.PASS
    limit = f"≥ {lim.f_share_pct:g} % of a year's 10-s means (a week fails beyond {allowance} outside)"
    return Criterion("Frequency within 50 Hz ±1 %", "4.2.1", share, limit, verdict)


def _counted(name: str, clause: str, found: Sequence[Episode], kind: Kind) -> Criterion:
    """Dips, swells, interruptions: EN 50160 gives indicative values only - counted, not judged."""
    return Criterion(name, clause, sum(e.kind is kind for e in found), "indicative", None, "")


def week_report(
    records: Iterable[TenMinutes],
    events: Iterable[tuple[datetime, int]],
    start: datetime,
    end: datetime,
    limits: Limits | None = None,
) -> WeekReport:
    """The week [start, end) from its 10-minute records and the meter's events (UTC, code;
    events from before ``start`` may be given so that an episode open at the start is seen)."""
    lim = limits or Limits()
    found = [e for e in episodes(events, end) if (e.end is None or e.end > start) and e.start < end]
    spans = [(e.start, e.end or end) for e in found if e.flags]
    ten = timedelta(seconds=TEN_MINUTES_S)
    inside = sorted((r for r in records if start <= r.start < end), key=lambda r: r.start)
    valid = [r for r in inside if r.valid]
    clean = [r for r in valid if not any(b < r.start + ten and r.start < e for b, e in spans)]
    lo, hi = lim.un_v * (1 - lim.band_pct / 100), lim.un_v * (1 + lim.band_pct / 100)
    floor, ceiling = lim.un_v * (1 - lim.under_pct / 100), lim.un_v * (1 + lim.over_pct / 100)
    in_band: list[float] = []  # per phase, % of its means
    in_limits: list[float] = []
    for k in range(max((len(r.u_mean) for r in clean), default=0)):
        values = [u for r in clean if len(r.u_mean) > k and (u := r.u_mean[k]) is not None]
        if values:
            in_band.append(100.0 * sum(lo <= u <= hi for u in values) / len(values))
            in_limits.append(100.0 * sum(floor <= u <= ceiling for u in values) / len(values))
    band_worst = min(in_band, default=None)
    limits_worst = min(in_limits, default=None)
    unbalances = [x for r in clean if (x := r.unbalance_pct) is not None]
    u2_share = _share(sum(x <= lim.unbalance_pct for x in unbalances), len(unbalances))
    f_total = sum(r.f_means for r in clean)
    f_share = _share(sum(r.f_in_band for r in clean), f_total)
    f_outside = f_total - sum(r.f_in_band for r in clean)
    f_all = _share(sum(r.f_in_limits for r in clean), f_total)
    means, seconds = "of 10-min means", "of 10-s means"
    criteria = (
        _judged("Voltage within Un ±10 %", "4.2.2", band_worst, lim.voltage_share_pct, means),
        _judged("Voltage within Un +10 %/−15 %", "4.2.2", limits_worst, 100.0, means),
        _year(f_share, f_outside, lim),
        _judged("Frequency within 50 Hz +4 %/−6 %", "4.2.1", f_all, 100.0, seconds),
        _judged("Voltage unbalance ≤ 2 % (approximation)", "4.2.5", u2_share, lim.unbalance_share_pct, means),
        _counted("Short interruptions (≤ 3 min)", "4.2.4", found, Kind.SHORT_INTERRUPTION),
        _counted("Long interruptions (> 3 min)", "4.2.4", found, Kind.LONG_INTERRUPTION),
        _counted("Voltage dips", "4.2.6", found, Kind.DIP),
        _counted("Voltage swells", "4.2.7", found, Kind.SWELL),
        _counted("Undervoltages > 1 min", "4.2.2", found, Kind.UNDERVOLTAGE),
        _counted("Overvoltages > 1 min", "4.2.2", found, Kind.OVERVOLTAGE),
    )
    return WeekReport(
        start=start,
        end=end,
        intervals=int((end - start).total_seconds()) // TEN_MINUTES_S,
        valid=len(valid),
        flagged=len(valid) - len(clean),
        criteria=criteria,
        episodes=tuple(found),
    )


def report_csv(report: WeekReport) -> str:
    """The week as CSV (RFC 4180, ``;``-free): one line per criterion, then the coverage."""
    lines = ["criterion,clause,measured,unit,limit,verdict"]
    for c in report.criteria:
        measured = "" if c.measured is None else (f"{c.measured:.3f}" if c.unit else f"{c.measured:g}")
        verdict = "" if c.verdict is None else c.verdict.value
        lines.append(",".join(_csv(x) for x in (c.name, c.clause, measured, c.unit, c.limit, verdict)))
    lines.append(f"week start (UTC),,{report.start.isoformat()},,,")
    lines.append(f"week end (UTC),,{report.end.isoformat()},,,")
    lines.append(f"10-minute intervals,,{report.intervals},,,")
    lines.append(f"10-minute means,,{report.valid},,,")
    lines.append(f"flagged means (left out),,{report.flagged},,,")
    return "\r\n".join(lines) + "\r\n"


def _csv(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(ch in text for ch in ',"\r\n') else text
