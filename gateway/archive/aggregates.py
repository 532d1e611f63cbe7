"""Aggregates over archived samples (OPC 10000-13), pure computation.

The aggregates are the standard's, so both adapters of the archive's history (OPC UA
HistoryRead and the REST API) give the same values; nothing here knows either protocol.
Results carry OPC UA StatusCodes as plain numbers (OPC 10000-4 §7.39): the standard
defines the aggregates' statuses in its own codes, and the REST API shows their names.

**An aggregate is computed from the raw values of the series it is asked on**, the values
a raw read of that series returns (OPC 10000-13 §5.4.3: Count is the number of raw
values in the interval, Minimum the least of them, ...). The minute record of a 1-second
value keeps the minute's lowest and highest 1-second sample and their number besides the
mean; those are series of their own (``min``, ``max``, ``count`` columns), so Minimum over
the ``min`` series is the least 1-second sample, while Minimum over the value is the
least minute mean.

What a stored sample stands for decides its span (:class:`~gateway.streams.Shape`):

* ``MINUTE`` - a minute record, stamped at the minute's start, spanning ``[t, t + 60 s)``.
* ``PERIOD`` - a load-profile value of the period ending at ``t``, spanning
  ``[t - period, t)``. Total sums the periods in the interval (each value is already the
  period's integral).
* ``POINT`` - a register sample, spanning no time. Delta and DeltaBounds give the energy
  of an interval.

A sample belongs to the interval its span starts in, so a load-profile period ending at
00:15 is part of the interval ``[00:00, 00:15)``: for minute records and registers that
is the interval holding the sample's time stamp, as for any OPC UA historian.

Status (OPC 10000-13 §5.4.3, AggregateConfiguration defaults 100 / 100): an interval with
no sample is ``BadNoData`` (Count: 0); the share of the interval covered by the spans of
its samples (whole spans: a period belongs to one interval, all of it) decides Good (at
least PercentDataGood) or ``UncertainDataSubNormal``; an interval cut short by the
EndTime, or not over yet, carries the *Partial* historian bit. Computed values carry
*Calculated*, interpolated ones *Interpolated*; Start and End return stored values
(*Raw*), Minimum and Maximum are *Raw* when the extreme lies on the interval's start and
*Calculated* otherwise, with *MultiValue* when it occurs more than once (§5.4.3.10).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.streams import Shape

MINUTE = timedelta(minutes=1)
ZERO = timedelta(0)

# The StatusCodes of history results (OPC 10000-4 §7.39 / Annex A; OPC 10000-11 §6.3).
GOOD = 0x00000000
GOOD_NO_DATA = 0x00A50000
UNCERTAIN_DATA_SUB_NORMAL = 0x40A40000
BAD_NO_DATA = 0x809B0000
BAD_BOUND_NOT_FOUND = 0x80D70000
BAD_AGGREGATE_INVALID_INPUTS = 0x80D60000
_STATUS_NAMES = {
    GOOD: "Good",
    GOOD_NO_DATA: "GoodNoData",
    UNCERTAIN_DATA_SUB_NORMAL: "UncertainDataSubNormal",
    BAD_NO_DATA: "BadNoData",
    BAD_BOUND_NOT_FOUND: "BadBoundNotFound",
    BAD_AGGREGATE_INVALID_INPUTS: "BadAggregateInvalidInputs",
}

# Historian bits of a DataValue's StatusCode (OPC 10000-4 §7.39.2): InfoType DataValue.
_DATA_VALUE_INFO = 0x0400
CALCULATED = _DATA_VALUE_INFO | 0x01
INTERPOLATED = _DATA_VALUE_INFO | 0x02
RAW = _DATA_VALUE_INFO | 0x00
PARTIAL = 0x04  # added to one of the above
MULTI_VALUE = 0x10  # an extreme found at more than one time stamp (OPC 10000-4 §7.39.2)


def status_name(status: int) -> str:
    """The StatusCode's name without its info bits (``BadNoData`` for a Partial BadNoData)."""
    return _STATUS_NAMES.get(status & 0xFFFF0000, f"0x{status & 0xFFFF0000:08X}")


def is_good(status: int) -> bool:
    """Severity Good (the two top bits clear, OPC 10000-4 §7.39.2)."""
    return status & 0xC0000000 == 0


@dataclass(frozen=True, slots=True)
class Sample:
    """One stored (raw) value as the aggregates see it."""

    time: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Result:
    """One aggregate value: time stamp, value (None: no value) and StatusCode."""

    time: datetime
    value: float | None
    status: int
    #: The OPC UA type of the value (Count is Int32, everything else Double).
    integer: bool = False


@dataclass(frozen=True, slots=True)
class Series:
    """Samples of one node in time order, with what they mean."""

    samples: Sequence[Sample]
    shape: Shape
    period: timedelta = MINUTE
    stepped: bool = False

    def span(self, s: Sample) -> tuple[datetime, datetime]:
        """The time a sample covers."""
        if self.shape is Shape.MINUTE:
            return s.time, s.time + MINUTE
        if self.shape is Shape.PERIOD:
            return s.time - self.period, s.time
        return s.time, s.time

    def key(self, s: Sample) -> datetime:
        """The instant that decides which interval a sample belongs to."""
        return self.span(s)[0]


@dataclass(frozen=True, slots=True)
class Config:
    """The AggregateConfiguration in force (OPC 10000-13 §4.2.1.2)."""

    percent_good: int = 100
    percent_bad: int = 100


@dataclass(frozen=True, slots=True)
class Interval:
    start: datetime
    end: datetime
    partial: bool


def intervals(
    first: datetime, last: datetime, step: timedelta, now: datetime, *, reverse: bool = False, limit: int = 0
) -> list[Interval]:
    """The processing intervals from ``first`` towards ``last`` (``step`` 0: one interval).

    Forward they are ``[first, first + step), ...``; in reverse (``first > last``) they
    are laid from ``first`` backwards, ``[first - step, first), ...``. The interval
    reaching ``last`` may be shorter than ``step``: it is Partial, as is any interval that
    ends after ``now`` (data may still come). ``limit`` > 0 stops after that many.

    A request whose ProcessingInterval spans its whole range is one interval: the caller
    passes ``step`` 0 for it. (Deciding that here would lose the Partial bit of a short
    last interval that a continuation point asks for on its own.)
    """
    out: list[Interval] = []
    lo, hi = (last, first) if reverse else (first, last)
    if step <= ZERO:
        return [Interval(lo, hi, hi > now)] if hi > lo else []
    t = first
    while ((t > last) if reverse else (t < last)) and not (limit and len(out) >= limit):
        a, b = (max(t - step, last), t) if reverse else (t, min(t + step, last))
        out.append(Interval(a, b, b - a < step or b > now))
        t = a if reverse else b
    return out


def _status(base: int, interval: Interval, covered: timedelta, config: Config, now: datetime) -> int:
    length = min(interval.end, max(now, interval.start)) - interval.start
    ratio = 1.0 if length <= ZERO else min(covered / length, 1.0)
    code: int
    if ratio * 100 >= config.percent_good:
        code = GOOD
    elif (1 - ratio) * 100 >= config.percent_bad:
        code = BAD_NO_DATA
    else:
        code = UNCERTAIN_DATA_SUB_NORMAL
    return code | base | (PARTIAL if interval.partial else 0)


def value_at(series: Series, t: datetime, keys: Sequence[datetime] | None = None) -> Result:
    """The value at ``t``: the stored one, or stepped / interpolated between neighbours.

    Before the first sample there is no value (BadNoData). After the last one the last
    value is held, Uncertain (no sloped extrapolation, OPC 10000-13 §3.1.8).
    """
    samples = series.samples
    times = keys if keys is not None else [s.time for s in samples]
    i = bisect.bisect_left(times, t)
    if i < len(samples) and times[i] == t:
        return Result(t, samples[i].value, GOOD | RAW)
    if i == 0:
        return Result(t, None, BAD_NO_DATA)
    before = samples[i - 1]
    if i == len(samples):
        return Result(t, before.value, UNCERTAIN_DATA_SUB_NORMAL | INTERPOLATED)
    if series.stepped:
        return Result(t, before.value, GOOD | INTERPOLATED)
    after = samples[i]
    share = (t - before.time) / (after.time - before.time)
    return Result(t, before.value + share * (after.value - before.value), GOOD | INTERPOLATED)


@dataclass(frozen=True, slots=True)
class Window:
    """One processing interval and what its aggregate needs besides the samples in it."""

    series: Series
    interval: Interval
    config: Config
    now: datetime
    #: Times of all samples of the series (for bisecting to the interval's edges).
    keys: Sequence[datetime]

    def status(self, base: int, inside: Sequence[Sample]) -> int:
        return _status(
            base, self.interval, _covered(self.series, inside, self.interval), self.config, self.now
        )


AggregateFn = Callable[[Window, Sequence[Sample]], Result]


def _covered(series: Series, inside: Sequence[Sample], iv: Interval) -> timedelta:
    """The time the interval's samples stand for: their whole spans (a 15-minute period in
    an interval counts its 15 minutes even where the interval's edge cuts it: it belongs
    to this interval and no other), capped by :func:`_status` at the interval's length."""
    if series.shape is Shape.POINT:
        return iv.end - iv.start if inside else ZERO
    total = ZERO
    for s in inside:
        a, b = series.span(s)
        total += b - a
    return total


def _simple(fn: Callable[[Series, Sequence[Sample]], float], base: int) -> AggregateFn:
    """An aggregate that is a function of the interval's samples; BadNoData without any."""

    def run(w: Window, inside: Sequence[Sample]) -> Result:
        if not inside:
            return Result(w.interval.start, None, BAD_NO_DATA)
        return Result(w.interval.start, fn(w.series, inside), w.status(base, inside))

    return run


def _average(series: Series, inside: Sequence[Sample]) -> float:
    """The arithmetic mean of the raw values (§5.4.3.4; TimeAverage would weight by time)."""
    return sum(s.value for s in inside) / len(inside)


def _total(series: Series, inside: Sequence[Sample]) -> float:
    if series.shape is Shape.PERIOD:
        return sum(s.value for s in inside)  # each period value is already its integral
    # The time integral (OPC 10000-13 §5.4.3.7), value x seconds: each minute's mean
    # stands for its whole minute.
    return sum(s.value for s in inside) * MINUTE.total_seconds()


_total_simple = _simple(_total, CALCULATED)


def _total_of(w: Window, inside: Sequence[Sample]) -> Result:
    if w.series.shape is Shape.POINT:
        # The time integral of a counter means nothing; its interval energy is DeltaBounds.
        return Result(w.interval.start, None, BAD_AGGREGATE_INVALID_INPUTS)
    return _total_simple(w, inside)


def _count(w: Window, inside: Sequence[Sample]) -> Result:
    """The number of raw values (§5.4.3.20); 0 when there are none."""
    if not inside:
        partial = PARTIAL if w.interval.partial else 0
        return Result(w.interval.start, 0.0, GOOD | CALCULATED | partial, integer=True)
    return Result(w.interval.start, float(len(inside)), w.status(CALCULATED, inside), integer=True)


def _edge(last: bool) -> AggregateFn:
    """Start / End: the first / last stored value in the interval, with its own time."""

    def run(w: Window, inside: Sequence[Sample]) -> Result:
        if not inside:
            return Result(w.interval.start, None, BAD_NO_DATA)
        s = inside[-1] if last else inside[0]
        return Result(s.time, s.value, w.status(RAW, inside))

    return run


def _delta(w: Window, inside: Sequence[Sample]) -> Result:
    """Last minus first value in the interval (OPC 10000-13 §5.4.3.30)."""
    if not inside:
        return Result(w.interval.start, None, BAD_NO_DATA)
    return Result(w.interval.start, inside[-1].value - inside[0].value, w.status(CALCULATED, inside))


def _delta_bounds(w: Window, inside: Sequence[Sample]) -> Result:
    """EndBound - StartBound: the values at the interval's edges, stepped or interpolated,
    so the deltas of consecutive intervals add up to the whole range's (§5.4.3.38)."""
    iv = w.interval
    first = value_at(w.series, iv.start, w.keys)
    last = value_at(w.series, iv.end, w.keys)
    if first.value is None or last.value is None:
        return Result(iv.start, None, BAD_NO_DATA)
    good = all(is_good(r.status) for r in (first, last))
    code = GOOD if good else UNCERTAIN_DATA_SUB_NORMAL
    return Result(iv.start, last.value - first.value, code | CALCULATED | (PARTIAL if iv.partial else 0))


def _extreme(pick: Callable[..., float]) -> AggregateFn:
    """Minimum / Maximum (§5.4.3.10-11): the extreme raw value, stamped at the interval's
    start; Raw when it lies on that start, else Calculated; MultiValue when it occurs at
    more than one time stamp."""

    def run(w: Window, inside: Sequence[Sample]) -> Result:
        if not inside:
            return Result(w.interval.start, None, BAD_NO_DATA)
        best = pick(s.value for s in inside)
        at = [s.time for s in inside if s.value == best]
        bits = RAW if at[0] == w.interval.start else CALCULATED
        if len(at) > 1:
            bits |= MULTI_VALUE
        return Result(w.interval.start, best, w.status(bits, inside))

    return run


def _range(series: Series, inside: Sequence[Sample]) -> float:
    values = [s.value for s in inside]
    return max(values) - min(values)


#: Supported aggregate functions by their names in OPC 10000-13 §5.4 (the OPC UA adapter
#: finds each one's standard NodeId, ``AggregateFunction_<name>``, by this name).
AGGREGATES: dict[str, AggregateFn] = {
    "Average": _simple(_average, CALCULATED),
    "Minimum": _extreme(min),
    "Maximum": _extreme(max),
    "Range": _simple(_range, CALCULATED),
    "Count": _count,
    "Total": _total_of,
    "Delta": _delta,
    "DeltaBounds": _delta_bounds,
    "Start": _edge(last=False),
    "End": _edge(last=True),
}


def compute(
    aggregate: str,
    series: Series,
    periods: Sequence[Interval],
    now: datetime,
    config: Config = Config(),
) -> list[Result]:
    """One result per processing interval, stamped at the interval's (earlier) start."""
    fn = AGGREGATES[aggregate]
    keys = [s.time for s in series.samples]
    starts = [series.key(s) for s in series.samples]
    out = []
    for iv in periods:
        lo = bisect.bisect_left(starts, iv.start)
        hi = bisect.bisect_left(starts, iv.end)
        out.append(fn(Window(series, iv, config, now, keys), series.samples[lo:hi]))
    return out
