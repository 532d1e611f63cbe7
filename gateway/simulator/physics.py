"""Physics and memory of the simulated meter: a three-phase household with a PV system.

Pure and deterministic: no asyncio, no I/O, no wall clock. Every function takes the
time as an argument (aware datetimes, UTC inside), so the same seed and time always give
the same values and the whole history can be regenerated.

Two layers:

* :class:`HouseholdModel` - what flows through the meter at a time ``t``: per-phase
  voltage, current, active and reactive power, and the supply frequency. Values are
  piecewise constant per UTC second; everything random comes from a 64-bit hash of
  (seed, time bucket), never from a stateful generator.
* :class:`MeterPhysics` - what a Landis+Gyr-ZMD-like meter makes of it: energy registers
  A+, A-, R+, R- integrated exactly from the model's powers, 15-minute load profiles,
  an event log, and the fault knobs (power down/up, clock set, terminal cover).

:class:`MeterClock` is the meter's own quartz clock (offset and drift against a base
:class:`~gateway.clock.Clock`); the simulator feeds its ``now()`` to :class:`MeterPhysics`.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from gateway.clock import Clock
from gateway.events import describe

__all__ = [
    "EVENT_NAMES",
    "DisturbanceKind",
    "EventCode",
    "HouseholdModel",
    "Instant",
    "LoadProfile1Entry",
    "LoadProfile2Entry",
    "MeterClock",
    "MeterEvent",
    "MeterPhysics",
    "PhaseState",
    "ProfileStatus",
    "Registers",
    "VoltageDisturbance",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_US = 1_000_000  # microseconds per second
_US_PER_H = 3_600_000_000
_HOUR_S = 3600
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_U16 = 1.0 / 65536.0
_U8 = 1.0 / 256.0


def _to_us(t: datetime) -> int:
    """Integer microseconds since the Unix epoch: exact, so period arithmetic never drifts."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"time must be timezone-aware, got {t!r}")
    return (t - _EPOCH) // _ONE_US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _mix(x: int) -> int:
    """splitmix64 finaliser; unlike ``hash()`` it is specified, so values never change."""
    x &= _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class PhaseState:
    """One phase at one instant. Powers are signed: + import, - export."""

    voltage_v: float
    current_a: float
    active_kw: float
    reactive_kvar: float
    power_factor: float  # |P| / S of this phase, 1.0 when S == 0

    @property
    def active_import_kw(self) -> float:
        return self.active_kw if self.active_kw > 0.0 else 0.0

    @property
    def active_export_kw(self) -> float:
        return -self.active_kw if self.active_kw < 0.0 else 0.0

    @property
    def reactive_import_kvar(self) -> float:
        return self.reactive_kvar if self.reactive_kvar > 0.0 else 0.0

    @property
    def reactive_export_kvar(self) -> float:
        return -self.reactive_kvar if self.reactive_kvar < 0.0 else 0.0


_DEAD_PHASE = PhaseState(0.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Instant:
    """The three phases and the frequency at one time.

    Import/export of the totals follow the meter's net (vector-sum) rule: the 3-phase
    total is import when positive and export when negative, exactly as the energy
    registers integrate it.
    """

    time: datetime
    phases: tuple[PhaseState, PhaseState, PhaseState]
    frequency_hz: float

    @property
    def active_kw(self) -> float:
        """Net active power, + import / - export."""
        a, b, c = self.phases
        return a.active_kw + b.active_kw + c.active_kw

    @property
    def reactive_kvar(self) -> float:
        a, b, c = self.phases
        return a.reactive_kvar + b.reactive_kvar + c.reactive_kvar

    @property
    def active_import_kw(self) -> float:
        p = self.active_kw
        return p if p > 0.0 else 0.0

    @property
    def active_export_kw(self) -> float:
        p = self.active_kw
        return -p if p < 0.0 else 0.0

    @property
    def reactive_import_kvar(self) -> float:
        q = self.reactive_kvar
        return q if q > 0.0 else 0.0

    @property
    def reactive_export_kvar(self) -> float:
        q = self.reactive_kvar
        return -q if q < 0.0 else 0.0

    @property
    def power_factor(self) -> float:
        """Total power factor |P| / S, 1.0 when S == 0."""
        s = math.hypot(self.active_kw, self.reactive_kvar)
        return abs(self.active_kw) / s if s > 0.0 else 1.0


@dataclass(frozen=True, slots=True)
class Registers:
    """Energy registers: A+ / A- in kWh, R+ / R- in kvarh (full float precision)."""

    a_plus: float
    a_minus: float
    r_plus: float
    r_minus: float

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.a_plus, self.a_minus, self.r_plus, self.r_minus)


class ProfileStatus(enum.IntFlag):
    """Status byte of a load profile entry.

    The bit layout follows the widely used IDIS/DSMR "AMR profile status" byte. This
    simulator produces POWER_DOWN (the period overlaps a supply interruption) and
    CLOCK_ADJUSTED (the clock was set during the period); the other bits are defined so
    the protocol layer can name them.
    """

    NONE = 0
    CRITICAL_ERROR = 0x01
    CLOCK_INVALID = 0x02
    DATA_NOT_VALID = 0x04
    DAYLIGHT_SAVING = 0x08
    CLOCK_ADJUSTED = 0x20
    POWER_DOWN = 0x80


class EventCode(enum.IntEnum):
    """Event log codes as used by this simulator.

    1-5 and 40/41 follow the numbering of the IDIS/DSMR standard event log as commonly
    implemented by DLMS meters; the voltage-quality codes 76-84 are this simulator's own.
    """

    POWER_DOWN = 1
    POWER_UP = 2
    DAYLIGHT_SAVING_CHANGE = 3
    CLOCK_ADJUSTED_OLD = 4
    CLOCK_ADJUSTED_NEW = 5
    TERMINAL_COVER_OPENED = 40
    TERMINAL_COVER_CLOSED = 41
    UNDER_VOLTAGE_L1 = 76
    UNDER_VOLTAGE_L2 = 77
    UNDER_VOLTAGE_L3 = 78
    OVER_VOLTAGE_L1 = 79
    OVER_VOLTAGE_L2 = 80
    OVER_VOLTAGE_L3 = 81
    VOLTAGE_NORMAL_L1 = 82
    VOLTAGE_NORMAL_L2 = 83
    VOLTAGE_NORMAL_L3 = 84


#: Event code -> text the meter stores with it: the gateway's table (gateway/events.py).
EVENT_NAMES: dict[EventCode, str] = {code: describe(code).name for code in EventCode}
_UNDER = (EventCode.UNDER_VOLTAGE_L1, EventCode.UNDER_VOLTAGE_L2, EventCode.UNDER_VOLTAGE_L3)
_OVER = (EventCode.OVER_VOLTAGE_L1, EventCode.OVER_VOLTAGE_L2, EventCode.OVER_VOLTAGE_L3)
_NORMAL = (EventCode.VOLTAGE_NORMAL_L1, EventCode.VOLTAGE_NORMAL_L2, EventCode.VOLTAGE_NORMAL_L3)


@dataclass(frozen=True, slots=True)
class MeterEvent:
    """One entry of the event log."""

    time: datetime
    code: int
    name: str


@dataclass(frozen=True, slots=True)
class LoadProfile1Entry:
    """Energy of one capture period (kWh / kvarh), stamped with the period END."""

    end: datetime
    status: ProfileStatus
    a_plus: float
    a_minus: float
    r_plus: float
    r_minus: float


@dataclass(frozen=True, slots=True)
class LoadProfile2Entry:
    """Mean voltages (V) and currents (A) over the powered part of one capture period.

    A period without supply at all has all means 0.
    """

    end: datetime
    status: ProfileStatus
    u1: float
    u2: float
    u3: float
    i1: float
    i2: float
    i3: float


class DisturbanceKind(enum.Enum):
    SAG = "sag"  # below 207 V (230 V - 10 %)
    SWELL = "swell"  # above 253 V (230 V + 10 %)


@dataclass(frozen=True, slots=True)
class VoltageDisturbance:
    """A sag or swell of the supply: voltage ``level_v`` on ``phases`` (1..3) in [start, end)."""

    start: datetime
    end: datetime
    kind: DisturbanceKind
    phases: tuple[int, ...]
    level_v: float


# --------------------------------------------------------------------------- household

# Raw per-second state, a plain tuple because it is built ~100k times per simulated day:
# (u1, u2, u3, i1, i2, i3, p1, p2, p3, q1, q2, q3, f)
_Raw = tuple[float, float, float, float, float, float, float, float, float, float, float, float, float]
# Per-minute slow state: (load kW x3, Q/P ratio x3, PV kW per phase, base voltage x3, frequency)
_Minute = tuple[float, float, float, float, float, float, float, float, float, float, float]
# Per-day: (cloudiness 0..1, sunrise local h, day length h, PV peak kW today, weekend)
_Day = tuple[float, float, float, float, bool]
# Per-10-minute knot of the smooth noises: (voltage offset x3 in [-1,1], frequency [-1,1], cloud [0,1])
_Knot = tuple[float, float, float, float, float]
# Per-15-minute block: (tan phi of base load (signed), tan phi of other loads, appliance kW x3,
#                       appliance first minute x3, appliance end minute x3)
_Block = tuple[float, float, float, float, float, int, int, int, int, int, int]
# A disturbance in integer seconds: (start, end, level V, phase indices 0..2, is sag)
_Dist = tuple[int, int, float, tuple[int, ...], bool]

# Load split over the phases: the base (fridge, standby) sits mostly on L1, the rest of
# the household less evenly than a perfect 1/3 each - real installations are unbalanced.
_BASE_SPLIT = (0.45, 0.30, 0.25)
_SHAPE_SPLIT = (0.42, 0.33, 0.25)
_NOMINAL_V = 231.0
_SAG_V, _SWELL_V = 207.0, 253.0  # the meter's own thresholds: 230 V -/+ 10 %
_LINE_R_OHM = 0.35  # service cable resistance: import lowers, export raises the voltage
_DROP_V_PER_KW = _LINE_R_OHM * 1000.0 / 230.0
_SOLAR_NOON_H = 12.25  # CET solar noon for central Europe (~10 deg E)
_NO_DIST: tuple[_Dist, ...] = ()


def _gauss(h: float, centre: float, width: float) -> float:
    d = abs(h - centre)
    d = min(d, 24.0 - d)  # wrap around midnight
    return math.exp(-0.5 * (d / width) ** 2)


def _shape_at(h: float, weekend: bool) -> float:
    """Household load above the base per kW of evening peak, at local hour ``h``."""
    if weekend:
        return 0.65 * _gauss(h, 9.0, 1.3) + 0.45 * _gauss(h, 13.0, 1.2) + 1.0 * _gauss(h, 19.0, 1.4)
    return 0.75 * _gauss(h, 7.0, 0.8) + 0.2 * _gauss(h, 12.5, 1.0) + 1.0 * _gauss(h, 19.2, 1.3)


def _udaily_at(h: float) -> float:
    # The whole feeder sags with the evening peak and rises with midday PV.
    return 1.5 * _gauss(h, 13.0, 2.5) - 3.0 * _gauss(h, 19.0, 2.0) + 0.8 * _gauss(h, 3.5, 2.5)


# Per local minute of the day: (weekday, weekend) load shape, and the daily voltage swing.
_SHAPE = tuple([_shape_at(m / 60.0, weekend) for m in range(1440)] for weekend in (False, True))
_UDAILY = [_udaily_at(m / 60.0) for m in range(1440)]


class HouseholdModel:
    """Deterministic household with PV behind a three-phase meter.

    * Load: night base ``base_kw`` plus a daily curve with a smaller morning and a larger
      evening peak (weekends: later morning, more at midday), unbalanced over the
      phases, per-second noise of +-4 % per phase and appliances (kettle, oven, washing
      machine) switching on one phase for a few minutes, more likely when people are up.
      Power factor 0.90-0.98 inductive; in some quarter hours (mostly at night, when
      electronics dominate) the base load is capacitive, so R- moves a little.
    * PV: ``pv_peak_kw`` balanced over the three phases at unity power factor, a sine
      bell between sunrise and sunset (day length and height follow the season), daily
      cloudiness from the seed with passing clouds; sunny noons export.
    * Voltage: ~231 V, a daily swing, slow per-phase drift, the drop (or rise) over the
      service cable from the phase's own power, +-0.4 V noise, and rare deterministic
      sags (150-199 V) and swells (255-262 V) of 2-60 s, ``disturbances_per_week`` on average.
    * Frequency: 50 Hz with a slow drift of at most +-0.035 Hz and +-0.004 Hz noise.

    Local time for the daily shape is UTC + ``utc_offset_h`` (fixed, no DST).
    """

    def __init__(
        self,
        seed: int = 1,
        pv_peak_kw: float = 6.0,
        base_kw: float = 0.35,
        *,
        evening_peak_kw: float = 1.0,
        utc_offset_h: float = 1.0,
        disturbances_per_week: float = 4.0,
    ) -> None:
        if pv_peak_kw < 0 or base_kw <= 0 or evening_peak_kw < 0:
            raise ValueError("pv_peak_kw and evening_peak_kw must be >= 0, base_kw > 0")
        if disturbances_per_week < 0:
            raise ValueError("disturbances_per_week must be >= 0")
        self._seed = seed
        self._pv_peak_kw = pv_peak_kw
        self._base_kw = base_kw
        self._evening_peak_kw = evening_peak_kw
        self._off = round(utc_offset_h * 3600)  # local = UTC + this many seconds
        # Probability of a disturbance starting in a given hour, as a 16-bit threshold.
        self._dist_threshold = min(65536, round(disturbances_per_week / 168.0 * 65536))
        root = _mix(seed * _GOLDEN + 0x5EED)
        self._k_sec = _mix(root + 1)
        self._k_sec2 = _mix(root + 2)
        self._k_day = _mix(root + 3)
        self._k_knot = _mix(root + 4)
        self._k_knot2 = _mix(root + 5)
        self._k_block = _mix(root + 6)
        self._k_block2 = _mix(root + 7)
        self._k_dist = _mix(root + 8)
        self._shape = tuple([evening_peak_kw * x for x in table] for table in _SHAPE)
        self._udaily = _UDAILY
        # One-slot caches: access is nearly always sequential in time.
        self._m_idx = -(1 << 62)
        self._m_val: _Minute = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        self._d_idx = -(1 << 62)
        self._d_val: _Day = (0.0, 0.0, 0.0, 0.0, False)
        self._k_idx = -(1 << 62)
        zero: _Knot = (0.0, 0.0, 0.0, 0.0, 0.0)
        self._k_val: tuple[_Knot, _Knot] = (zero, zero)
        self._b_idx = -(1 << 62)
        self._b_val: _Block = (0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0, 0)
        self._h_idx = -(1 << 62)
        self._h_val: tuple[_Dist, ...] = _NO_DIST
        self._r_idx = -(1 << 62)
        self._r_val: _Raw = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        # Supply conditions a test plants (seconds): voltage (start, end, level, phase
        # indices) and frequency (start, end, Hz).
        self._planted_u: list[tuple[int, int, float, tuple[int, ...]]] = []
        self._planted_f: list[tuple[int, int, float]] = []

    # ---- public API

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def pv_peak_kw(self) -> float:
        return self._pv_peak_kw

    @property
    def base_kw(self) -> float:
        return self._base_kw

    @property
    def evening_peak_kw(self) -> float:
        return self._evening_peak_kw

    @property
    def utc_offset_s(self) -> int:
        return self._off

    def instant(self, t: datetime) -> Instant:
        """The state at ``t`` (values are constant within each UTC second)."""
        return self._instant_at(_to_us(t) // _US, t)

    def plant(
        self,
        start: datetime,
        end: datetime,
        *,
        voltage: float | None = None,
        phases: tuple[int, ...] = (1, 2, 3),
        frequency: float | None = None,
    ) -> None:
        """A supply condition in [start, end): the voltage of ``phases`` (1..3) near
        ``voltage`` (with the model's small noise) and/or the frequency at ``frequency``.
        A meter logs a planted voltage below 207 V or above 253 V as a sag or swell."""
        a, b = _to_us(start) // _US, -(-_to_us(end) // _US)
        if b <= a or any(p not in (1, 2, 3) for p in phases):
            raise ValueError("plant needs start < end and phases among 1, 2, 3")
        if voltage is not None:
            self._planted_u.append((a, b, float(voltage), tuple(p - 1 for p in phases)))
        if frequency is not None:
            self._planted_f.append((a, b, float(frequency)))
        self._r_idx = -(1 << 62)  # the one-slot cache may hold a second of the span

    def planted_voltages(self) -> list[tuple[int, int, float, tuple[int, ...]]]:
        """The planted voltages (start, end in UTC seconds, level, phase indices)."""
        return list(self._planted_u)

    def cloudiness(self, t: datetime) -> float:
        """Cloudiness of the local day containing ``t``: 0 clear sky ... 1 overcast."""
        return self._day(self._local_day(_to_us(t) // _US))[0]

    def disturbances_between(self, start: datetime, end: datetime) -> list[VoltageDisturbance]:
        """Sags and swells overlapping [start, end), in order of start."""
        a, b = _to_us(start) // _US, -(-_to_us(end) // _US)
        out: list[VoltageDisturbance] = []
        for hour in range(a // _HOUR_S - 1, b // _HOUR_S + 1):
            for s0, s1, level, phases, sag in self._starting_in_hour(hour):
                if s0 < b and s1 > a:
                    kind = DisturbanceKind.SAG if sag else DisturbanceKind.SWELL
                    phase_numbers = tuple(p + 1 for p in phases)
                    out.append(
                        VoltageDisturbance(_from_us(s0 * _US), _from_us(s1 * _US), kind, phase_numbers, level)
                    )
        return out

    # ---- slow layers (cached)

    def _local_day(self, sec: int) -> int:
        return (sec + self._off) // 86400

    def _day(self, d: int) -> _Day:
        if d == self._d_idx:
            return self._d_val
        doy = (date(1970, 1, 1) + timedelta(days=d)).timetuple().tm_yday
        season = math.sin(2.0 * math.pi * (doy - 80) / 365.25)  # +1 midsummer, -1 midwinter
        day_len = 12.0 + 4.2 * season
        sunrise = _SOLAR_NOON_H - day_len / 2.0
        pv_today = self._pv_peak_kw * (0.7 + 0.3 * season)
        h = _mix(self._k_day + d * _GOLDEN)
        cloud = ((h & 0xFFFF) * _U16) ** 2  # about 45 % of days are (nearly) clear
        weekend = (d + 3) % 7 >= 5  # 1970-01-01 was a Thursday
        self._d_idx, self._d_val = d, (cloud, sunrise, day_len, pv_today, weekend)
        return self._d_val

    def _knot(self, k: int) -> _Knot:
        h = _mix(self._k_knot + k * _GOLDEN)
        h2 = _mix(self._k_knot2 + k * _GOLDEN)
        return (
            (h & 0xFFFF) * (2 * _U16) - 1.0,
            ((h >> 16) & 0xFFFF) * (2 * _U16) - 1.0,
            ((h >> 32) & 0xFFFF) * (2 * _U16) - 1.0,
            (h >> 48) * (2 * _U16) - 1.0,
            (h2 & 0xFFFF) * _U16,
        )

    def _knots(self, k: int) -> tuple[_Knot, _Knot]:
        if k != self._k_idx:
            if k == self._k_idx + 1:
                self._k_val = (self._k_val[1], self._knot(k + 1))
            else:
                self._k_val = (self._knot(k), self._knot(k + 1))
            self._k_idx = k
        return self._k_val

    def _block(self, blk: int, mod: int, weekend: bool) -> _Block:
        if blk == self._b_idx:
            return self._b_val
        h = _mix(self._k_block + blk * _GOLDEN)
        h2 = _mix(self._k_block2 + blk * _GOLDEN)
        night = mod < 360
        capacitive = (h & 0xFFFF) * _U16 < (0.3 if night else 0.05)
        pf_base = 0.90 + 0.05 * ((h >> 16) & 0xFF) * _U8
        pf_load = 0.92 + 0.06 * ((h >> 24) & 0xFF) * _U8
        tan_base = math.sqrt(1.0 - pf_base * pf_base) / pf_base * (-1.0 if capacitive else 1.0)
        tan_load = math.sqrt(1.0 - pf_load * pf_load) / pf_load
        # Appliances: more likely when the household is active (normalised daily shape).
        activity = self._shape[weekend][mod] / max(self._evening_peak_kw, 1e-9)
        p_on = 0.01 + 0.12 * min(activity, 1.0)
        kws = [0.0, 0.0, 0.0]
        firsts = [0, 0, 0]
        ends = [0, 0, 0]
        for ph in range(3):
            bits = (h2 >> (21 * ph)) & 0x1FFFFF
            if (bits & 0xFF) * _U8 < p_on:
                kws[ph] = 0.8 + 1.6 * ((bits >> 8) & 0x1F) / 31.0
                firsts[ph] = ((bits >> 13) & 0xF) % 12
                ends[ph] = min(15, firsts[ph] + 3 + ((bits >> 17) & 0xF))
        val: _Block = (
            tan_base,
            tan_load,
            kws[0],
            kws[1],
            kws[2],
            firsts[0],
            firsts[1],
            firsts[2],
            ends[0],
            ends[1],
            ends[2],
        )
        self._b_idx, self._b_val = blk, val
        return val

    def _minute(self, lm: int) -> _Minute:
        """Slow state of local minute ``lm`` (minutes since the epoch in local time)."""
        d, mod = divmod(lm, 1440)
        cloud, sunrise, day_len, pv_today, weekend = self._day(d)
        k, kf = divmod(lm, 10)
        ka, kb = self._knots(k)
        w = kf / 10.0
        w = w * w * (3.0 - 2.0 * w)  # smoothstep between knots
        v = 1.0 - w
        tan_base, tan_load, ak1, ak2, ak3, f1, f2, f3, e1, e2, e3 = self._block(
            lm // 15, mod - mod % 15, weekend
        )
        bm = mod % 15
        shape = self._shape[weekend][mod]
        base = self._base_kw
        loads = []
        ratios = []
        for ph, ak, first, end in ((0, ak1, f1, e1), (1, ak2, f2, e2), (2, ak3, f3, e3)):
            b = base * _BASE_SPLIT[ph]
            o = shape * _SHAPE_SPLIT[ph] + (ak if first <= bm < end else 0.0)
            p = b + o
            loads.append(p)
            ratios.append((b * tan_base + o * tan_load) / p)
        h = mod / 60.0
        x = (h - sunrise) / day_len
        pv = 0.0
        if 0.0 < x < 1.0 and pv_today > 0.0:
            clouds = v * ka[4] + w * kb[4]
            pv = pv_today * math.sin(math.pi * x) ** 1.5 * (1.0 - 0.85 * cloud * (0.35 + 0.65 * clouds)) / 3.0
        u0 = _NOMINAL_V + self._udaily[mod]
        return (
            loads[0],
            loads[1],
            loads[2],
            ratios[0],
            ratios[1],
            ratios[2],
            pv,
            u0 + 2.5 * (v * ka[0] + w * kb[0]),
            u0 + 2.5 * (v * ka[1] + w * kb[1]),
            u0 + 2.5 * (v * ka[2] + w * kb[2]),
            50.0 + 0.035 * (v * ka[3] + w * kb[3]),
        )

    def _starting_in_hour(self, hour: int) -> tuple[_Dist, ...]:
        h = _mix(self._k_dist + hour * _GOLDEN)
        if (h & 0xFFFF) >= self._dist_threshold:
            return _NO_DIST
        start = hour * _HOUR_S + ((h >> 16) & 0xFFFF) % _HOUR_S
        end = start + 2 + ((h >> 32) & 0xFF) % 59
        sag = (h >> 40) & 3 != 0  # three sags for every swell
        phases: tuple[int, ...] = (0, 1, 2) if (h >> 42) & 1 else (((h >> 43) & 0xFF) % 3,)
        level = 150.0 + ((h >> 51) & 0xFF) % 50 if sag else 255.0 + ((h >> 59) & 0x7)
        return ((start, end, float(level), phases, sag),)

    def _overlapping_hour(self, hour: int) -> tuple[_Dist, ...]:
        if hour != self._h_idx:
            t0 = hour * _HOUR_S
            spill = tuple(dd for dd in self._starting_in_hour(hour - 1) if dd[1] > t0)
            self._h_idx, self._h_val = hour, spill + self._starting_in_hour(hour)
        return self._h_val

    # ---- per second

    def _raw(self, sec: int) -> _Raw:
        """The state of UTC second ``sec`` as a plain tuple (the integrator's fast path)."""
        if sec == self._r_idx:  # instant() then advance_to() ask for the same second
            return self._r_val
        lm = (sec + self._off) // 60
        if lm != self._m_idx:
            self._m_val = self._minute(lm)
            self._m_idx = lm
        l1, l2, l3, r1, r2, r3, pv, ub1, ub2, ub3, fb = self._m_val
        h = _mix(self._k_sec + sec * _GOLDEN)
        h2 = _mix(self._k_sec2 + sec * _GOLDEN)
        a1 = l1 * (0.96 + 0.08 * _U16 * (h & 0xFFFF))
        a2 = l2 * (0.96 + 0.08 * _U16 * ((h >> 16) & 0xFFFF))
        a3 = l3 * (0.96 + 0.08 * _U16 * ((h >> 32) & 0xFFFF))
        pv *= 0.99 + 0.02 * _U16 * (h >> 48)
        p1, p2, p3 = a1 - pv, a2 - pv, a3 - pv
        q1, q2, q3 = a1 * r1, a2 * r2, a3 * r3
        u1 = ub1 - _DROP_V_PER_KW * p1 + 0.8 * _U16 * (h2 & 0xFFFF) - 0.4
        u2 = ub2 - _DROP_V_PER_KW * p2 + 0.8 * _U16 * ((h2 >> 16) & 0xFFFF) - 0.4
        u3 = ub3 - _DROP_V_PER_KW * p3 + 0.8 * _U16 * ((h2 >> 32) & 0xFFFF) - 0.4
        f = fb + 0.008 * _U16 * (h2 >> 48) - 0.004
        dists = self._overlapping_hour(sec // _HOUR_S)
        if dists:
            for s0, s1, level, phases, _sag in dists:
                if s0 <= sec < s1:
                    if 0 in phases:
                        u1 = level + (u1 - ub1) * 0.2
                    if 1 in phases:
                        u2 = level + (u2 - ub2) * 0.2
                    if 2 in phases:
                        u3 = level + (u3 - ub3) * 0.2
        for s0, s1, level, phases in self._planted_u:
            if s0 <= sec < s1:
                if 0 in phases:
                    u1 = level + (u1 - ub1) * 0.2
                if 1 in phases:
                    u2 = level + (u2 - ub2) * 0.2
                if 2 in phases:
                    u3 = level + (u3 - ub3) * 0.2
        for s0, s1, hz in self._planted_f:
            if s0 <= sec < s1:
                f = hz
        self._r_idx = sec
        self._r_val = (
            u1,
            u2,
            u3,
            math.hypot(p1, q1) * 1000.0 / u1,
            math.hypot(p2, q2) * 1000.0 / u2,
            math.hypot(p3, q3) * 1000.0 / u3,
            p1,
            p2,
            p3,
            q1,
            q2,
            q3,
            f,
        )
        return self._r_val

    def _instant_at(self, sec: int, when: datetime) -> Instant:
        u1, u2, u3, i1, i2, i3, p1, p2, p3, q1, q2, q3, f = self._raw(sec)
        return Instant(when, (_phase(u1, i1, p1, q1), _phase(u2, i2, p2, q2), _phase(u3, i3, p3, q3)), f)


def _phase(u: float, i: float, p: float, q: float) -> PhaseState:
    s = math.hypot(p, q)
    return PhaseState(u, i, p, q, abs(p) / s if s > 0.0 else 1.0)


# --------------------------------------------------------------------------- meter


class MeterPhysics:
    """Registers, load profiles and event log of the meter, driven by meter time.

    Every time passed in or returned is meter time (what the meter's own clock, a
    :class:`MeterClock`, says), so clock offset and drift show up in the data as they
    would on a real meter.

    Integration: the power is piecewise constant on a grid of ``step_s`` (aligned to the
    Unix epoch), taking the model's value at the start of each step; each register adds
    ``P * dt`` of the 3-phase total (A+ if the total is > 0, A- if < 0; R+/R- likewise on
    Q). Segments are cut at period ends and at the target time, so the registers are the
    exact integral up to any time, and at ``step_s = 1`` the powers :meth:`instant`
    publishes integrate exactly to the register increase. ``advance_to`` jumps longer
    than ``fine_window_s`` integrate everything but the last ``fine_window_s`` at
    ``history_step_s``.

    History: on construction the meter lives through ``history_days`` before ``start``
    (from the period boundary at or before ``start - history_days``) at
    ``history_step_s``, including a scripted power outage, a terminal cover opening and
    the model's sags/swells. The registers are then anchored so that they equal
    ``initial_registers`` at ``start``: the history integrates backwards from them. If a
    register would have been negative at the beginning of the history, the oldest
    entries are dropped (the meter "was installed" later).

    Registers are held as (value at the start of the open period) + (energy of the open
    period), so ``register(b) - register(a)`` equals the sum of the load profile 1 deltas
    of the periods between the period ends ``a`` and ``b`` up to float rounding.

    Memory: load profile entries whose period end lies within ``history_days`` of the
    current time, and the last ``event_depth`` events. Range queries take entries and
    events with a time in ``(start, end]``; entries carry their period END time, so
    ``(a, b]`` with aligned ``a``, ``b`` returns exactly the periods inside ``[a, b]``.
    Buffers are kept in capture order: after the clock is set backwards, times are no
    longer monotonic (as in a real meter's profile buffer).
    """

    def __init__(
        self,
        model: HouseholdModel,
        start: datetime,
        *,
        history_days: float = 40.0,
        step_s: float = 1.0,
        history_step_s: float = 60.0,
        initial_registers: tuple[float, float, float, float] | Registers = (12345.0, 2345.0, 3456.0, 456.0),
        period_minutes: int = 15,
        fine_window_s: float = 86400.0,
        event_depth: int = 500,
        history_events: bool = True,
    ) -> None:
        if history_days < 0:
            raise ValueError("history_days must be >= 0")
        if step_s <= 0 or history_step_s <= 0 or fine_window_s < 0:
            raise ValueError("step_s and history_step_s must be > 0, fine_window_s >= 0")
        if period_minutes <= 0 or 1440 % period_minutes:
            raise ValueError("period_minutes must divide a day")
        initial = (
            initial_registers.as_tuple() if isinstance(initial_registers, Registers) else initial_registers
        )
        if len(initial) != 4 or any(v < 0 for v in initial):
            raise ValueError("initial_registers must be four values >= 0")
        self._model = model
        self._step = max(1, round(step_s * _US))
        self._hstep = max(1, round(history_step_s * _US))
        self._period = period_minutes * 60 * _US
        self._history_us = round(history_days * 86400 * _US)
        self._fine_us = round(fine_window_s * _US)
        self._lp1: deque[LoadProfile1Entry] = deque()
        self._lp2: deque[LoadProfile2Entry] = deque()
        self._events: deque[MeterEvent] = deque(maxlen=event_depth)
        self._powered = True
        self._cover_open = False

        start_us = _to_us(start)
        begin = (start_us - self._history_us) // self._period * self._period
        self._s = begin
        self._p_end = begin + self._period
        self._status = ProfileStatus.NONE
        # Open period: energies (kWh/kvarh), then hour-weighted sums of U and I, powered hours.
        self._acc: tuple[float, ...] = (0.0,) * 11
        self._closed = [0.0, 0.0, 0.0, 0.0]  # registers at the start of the open period
        for when, action in self._history_script(begin, start_us) if history_events else []:
            self._run(when, self._hstep)
            action(when)
        self._run(start_us, self._hstep)
        self._anchor(initial)

    # ---- public API

    @property
    def model(self) -> HouseholdModel:
        return self._model

    @property
    def now(self) -> datetime:
        """The meter time up to which everything has been integrated."""
        return _from_us(self._s)

    @property
    def period(self) -> timedelta:
        return timedelta(microseconds=self._period)

    @property
    def powered(self) -> bool:
        return self._powered

    @property
    def terminal_cover_open(self) -> bool:
        return self._cover_open

    @property
    def registers(self) -> Registers:
        c, a = self._closed, self._acc
        return Registers(c[0] + a[0], c[1] + a[1], c[2] + a[2], c[3] + a[3])

    @property
    def load_profile_1(self) -> tuple[LoadProfile1Entry, ...]:
        return tuple(self._lp1)

    @property
    def load_profile_2(self) -> tuple[LoadProfile2Entry, ...]:
        return tuple(self._lp2)

    @property
    def events(self) -> tuple[MeterEvent, ...]:
        return tuple(self._events)

    def advance_to(self, t: datetime) -> None:
        """Integrate from :attr:`now` to ``t``, closing every period crossed."""
        self._advance_us(_to_us(t))

    def instant(self, t: datetime | None = None) -> Instant:
        """What the meter measures now (after advancing to ``t`` if given).

        The value is the one the integrator uses for the current step; during a power
        outage all phases are dead and the frequency is 0.
        """
        if t is not None:
            self.advance_to(t)
        when = _from_us(self._s)
        if not self._powered:
            return Instant(when, (_DEAD_PHASE, _DEAD_PHASE, _DEAD_PHASE), 0.0)
        return self._model._instant_at(self._s // self._step * self._step // _US, when)

    def profile1_between(self, start: datetime, end: datetime) -> list[LoadProfile1Entry]:
        """Load profile 1 entries with period end in (start, end], in capture order."""
        return [e for e in self._lp1 if start < e.end <= end]

    def profile2_between(self, start: datetime, end: datetime) -> list[LoadProfile2Entry]:
        """Load profile 2 entries with period end in (start, end], in capture order."""
        return [e for e in self._lp2 if start < e.end <= end]

    def events_between(self, start: datetime, end: datetime) -> list[MeterEvent]:
        """Events with a time in (start, end], in capture order."""
        return [e for e in self._events if start < e.time <= end]

    def power_down(self, t: datetime) -> None:
        """Supply lost at ``t``: no energy, dead phases; periods get POWER_DOWN. No-op if down."""
        self.advance_to(t)
        self._power_down(self._s)

    def power_up(self, t: datetime) -> None:
        """Supply back at ``t``. No-op if powered."""
        self.advance_to(t)
        self._power_up(self._s)

    def open_terminal_cover(self, t: datetime) -> None:
        """Terminal cover removed at ``t`` (event 40). No-op if already open."""
        self.advance_to(t)
        self._open_cover(self._s)

    def close_terminal_cover(self, t: datetime) -> None:
        """Terminal cover closed at ``t`` (event 41). No-op if already closed."""
        self.advance_to(t)
        self._close_cover(self._s)

    def set_clock(self, old: datetime, new: datetime) -> None:
        """The meter clock is set from ``old`` (>= :attr:`now`) to ``new`` (either direction).

        Logs events 4 (at ``old``) and 5 (at ``new``) and flags CLOCK_ADJUSTED on the period
        in progress. If ``new`` lies in another period, the period in progress is closed
        at once (stamped with its regular end) and the period containing ``new`` opens
        with the flag. A forward jump skips time (no energy, no entries for skipped
        periods); a backward jump lives through the same meter times again.
        """
        self.advance_to(old)
        o, n = self._s, _to_us(new)
        self._log(o, EventCode.CLOCK_ADJUSTED_OLD)
        self._status |= ProfileStatus.CLOCK_ADJUSTED
        new_end = n // self._period * self._period + self._period
        if new_end != self._p_end:
            self._close_period()
            self._p_end = new_end
            self._status |= ProfileStatus.CLOCK_ADJUSTED
        self._s = n
        self._log(n, EventCode.CLOCK_ADJUSTED_NEW)
        self._prune()

    # ---- integration

    def _advance_us(self, t: int) -> None:
        if t < self._s:
            raise ValueError(f"cannot advance backwards: {_from_us(t)} < {_from_us(self._s)}")
        if t - self._s > self._fine_us:
            self._run(t - self._fine_us, self._hstep)
        self._run(t, self._step)

    def _run(self, t_end: int, step: int) -> None:
        while self._s < t_end:
            seg_end = min(t_end, self._p_end)
            if self._powered:
                self._integrate(self._s, seg_end, step)
                self._log_disturbances(self._s, seg_end)
            self._s = seg_end
            if seg_end == self._p_end:
                self._close_period()
                self._prune()

    def _integrate(self, t: int, t_end: int, step: int) -> None:
        raw = self._model._raw
        ap, am, rp, rm, su1, su2, su3, si1, si2, si3, hours = self._acc
        while t < t_end:
            k = t // step * step
            nxt = k + step
            if nxt > t_end:
                nxt = t_end
            u1, u2, u3, i1, i2, i3, p1, p2, p3, q1, q2, q3, _f = raw(k // _US)
            dt = (nxt - t) / _US_PER_H
            p = p1 + p2 + p3
            if p > 0.0:
                ap += p * dt
            else:
                am -= p * dt
            q = q1 + q2 + q3
            if q > 0.0:
                rp += q * dt
            else:
                rm -= q * dt
            su1 += u1 * dt
            su2 += u2 * dt
            su3 += u3 * dt
            si1 += i1 * dt
            si2 += i2 * dt
            si3 += i3 * dt
            hours += dt
            t = nxt
        self._acc = (ap, am, rp, rm, su1, su2, su3, si1, si2, si3, hours)

    def _close_period(self) -> None:
        ap, am, rp, rm, su1, su2, su3, si1, si2, si3, hours = self._acc
        end = _from_us(self._p_end)
        self._lp1.append(LoadProfile1Entry(end, self._status, ap, am, rp, rm))
        if hours > 0.0:
            self._lp2.append(
                LoadProfile2Entry(
                    end,
                    self._status,
                    su1 / hours,
                    su2 / hours,
                    su3 / hours,
                    si1 / hours,
                    si2 / hours,
                    si3 / hours,
                )
            )
        else:
            self._lp2.append(LoadProfile2Entry(end, self._status, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
        c = self._closed
        # Same float additions as the `registers` property, so a reading taken just
        # before the close equals the one just after it.
        self._closed = [c[0] + ap, c[1] + am, c[2] + rp, c[3] + rm]
        self._acc = (0.0,) * 11
        self._status = ProfileStatus.NONE if self._powered else ProfileStatus.POWER_DOWN
        self._p_end += self._period

    def _prune(self) -> None:
        cutoff = _from_us(self._s - self._history_us)
        while self._lp1 and self._lp1[0].end <= cutoff:
            self._lp1.popleft()
            self._lp2.popleft()

    # ---- events

    def _log(self, us: int, code: EventCode) -> None:
        self._events.append(MeterEvent(_from_us(us), int(code), EVENT_NAMES[code]))

    def _log_disturbances(self, a: int, b: int) -> None:
        """Log sag/swell starts and ends that fall in (a, b] (µs)."""
        model = self._model
        found: list[tuple[int, EventCode]] = []
        for hour in range(a // _US_PER_H - 1, b // _US_PER_H + 1):
            for s0, s1, _level, phases, sag in model._starting_in_hour(hour):
                t0, t1 = s0 * _US, s1 * _US
                if a < t0 <= b:
                    found.extend((t0, (_UNDER if sag else _OVER)[p]) for p in phases)
                if a < t1 <= b:
                    found.extend((t1, _NORMAL[p]) for p in phases)
        for s0, s1, level, phases in model.planted_voltages():
            codes = _UNDER if level < _SAG_V else _OVER if level > _SWELL_V else None
            if codes is None:
                continue  # within the band: nothing for the meter to log
            t0, t1 = s0 * _US, s1 * _US
            if a < t0 <= b:
                found.extend((t0, codes[p]) for p in phases)
            if a < t1 <= b:
                found.extend((t1, _NORMAL[p]) for p in phases)
        for us, code in sorted(found):
            self._log(us, code)

    def _power_down(self, us: int) -> None:
        if self._powered:
            self._powered = False
            self._status |= ProfileStatus.POWER_DOWN
            self._log(us, EventCode.POWER_DOWN)

    def _power_up(self, us: int) -> None:
        if not self._powered:
            self._powered = True
            self._status |= ProfileStatus.POWER_DOWN  # the open period saw the outage
            self._log(us, EventCode.POWER_UP)

    def _open_cover(self, us: int) -> None:
        if not self._cover_open:
            self._cover_open = True
            self._log(us, EventCode.TERMINAL_COVER_OPENED)

    def _close_cover(self, us: int) -> None:
        if self._cover_open:
            self._cover_open = False
            self._log(us, EventCode.TERMINAL_COVER_CLOSED)

    # ---- history

    def _history_script(self, begin: int, end: int) -> list[tuple[int, Callable[[int], None]]]:
        """Scripted history events: one outage of 3-40 min and one cover opening of 5-30 min."""
        span = end - begin
        if span <= 0:
            return []
        h = _mix(_mix(self._model.seed * _GOLDEN + 0x415) + begin // _US)
        minute = 60 * _US

        def at(fraction_bits: int) -> int:
            # Somewhere in the middle half of the history, on a whole minute.
            t = begin + span // 4 + (span // 2) * (fraction_bits & 0xFFFF) // 0x10000
            return t // minute * minute

        down = at(h)
        up = down + (3 + ((h >> 16) & 0xFF) % 38) * minute
        opened = at(h >> 24)
        closed = opened + (5 + ((h >> 40) & 0xFF) % 26) * minute
        script: list[tuple[int, Callable[[int], None]]] = []
        if up < end:  # never leave the meter dead (or the cover open) at `start`
            script += [(down, self._power_down), (up, self._power_up)]
        if closed < end:
            script += [(opened, self._open_cover), (closed, self._close_cover)]
        return sorted(script, key=lambda item: item[0])

    def _anchor(self, initial: tuple[float, float, float, float]) -> None:
        """Make the registers at the current time equal ``initial``; trim impossible history."""
        acc = self._acc
        if any(acc[i] > initial[i] for i in range(4)):
            # Even the period in progress needs more than the registers hold: the meter
            # starts counting now.
            self._acc = (0.0,) * 11
            self._lp1.clear()
            self._lp2.clear()
            self._events.clear()
            self._closed = list(initial)
            return
        self._closed = [_anchor_base(initial[i], acc[i]) for i in range(4)]
        at_begin = list(self._closed)
        for e in self._lp1:
            at_begin[0] -= e.a_plus
            at_begin[1] -= e.a_minus
            at_begin[2] -= e.r_plus
            at_begin[3] -= e.r_minus
        dropped = False
        while self._lp1 and min(at_begin) < 0.0:
            e = self._lp1.popleft()
            self._lp2.popleft()
            at_begin[0] += e.a_plus
            at_begin[1] += e.a_minus
            at_begin[2] += e.r_plus
            at_begin[3] += e.r_minus
            dropped = True
        if dropped:
            first = self._lp1[0].end - self.period if self._lp1 else _from_us(self._s)
            kept = [ev for ev in self._events if ev.time > first]
            self._events.clear()
            self._events.extend(kept)


def _anchor_base(target: float, acc: float) -> float:
    """A base with ``base + acc == target`` exactly when floats allow (a few ulps of search)."""
    base = target - acc
    for _ in range(8):
        total = base + acc
        if total == target:
            break
        base = math.nextafter(base, math.inf if total < target else -math.inf)
    return base


# --------------------------------------------------------------------------- clock


class MeterClock(Clock):
    """The meter's quartz clock: ``base.now() + offset_s + drift_ppm * 1e-6 * elapsed``.

    ``elapsed`` is base-clock seconds since construction (or the last :meth:`set`).
    Timed waits are delegated to the base clock, scaled by the drift so that ``sleep(1)``
    lasts one second of this clock.
    """

    def __init__(self, base: Clock, offset_s: float = 0.0, drift_ppm: float = 0.0) -> None:
        if not -1e5 < drift_ppm < 1e5:
            raise ValueError("drift_ppm must be within +-100000")
        self._base = base
        self._offset = offset_s
        self._rate = 1.0 + drift_ppm * 1e-6
        self._drift_ppm = drift_ppm
        self._m0 = base.monotonic()
        self._mono_base = 0.0  # this clock's monotonic value at _m0

    @property
    def base(self) -> Clock:
        return self._base

    @property
    def drift_ppm(self) -> float:
        return self._drift_ppm

    @property
    def offset_s(self) -> float:
        """Current deviation from the base clock, seconds (positive: ahead)."""
        return self._offset + (self._rate - 1.0) * (self._base.monotonic() - self._m0)

    @property
    def speed(self) -> float:
        return self._base.speed * self._rate

    def now(self) -> datetime:
        return self._base.now() + timedelta(seconds=self.offset_s)

    def monotonic(self) -> float:
        return self._mono_base + (self._base.monotonic() - self._m0) * self._rate

    async def sleep(self, seconds: float) -> None:
        await self._base.sleep(max(seconds, 0.0) / self._rate)

    def set(self, when: datetime) -> None:
        """Set the clock to ``when`` (a clock-set command); the drift continues from here."""
        if when.tzinfo is None:
            raise ValueError("MeterClock.set needs an aware datetime")
        mono = self.monotonic()
        self._m0 = self._base.monotonic()
        self._mono_base = mono
        self._offset = (when - self._base.now()).total_seconds()
