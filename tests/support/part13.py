"""The aggregates a client computes from raw values it has read (OPC 10000-13 §5.4.3).

Written from the standard and the README's rule, not from the gateway's code, so the
tests that compare the gateway's ReadProcessed answers (or ``aggregates.compute``) with
it can fail: a raw value covers a span (a minute record its minute from its stamp, a
load-profile value its period up to its stamp, a register sample no time) and belongs to
the interval its span starts in; Average is the mean of the raw values, Minimum/Maximum
their extreme stamped at the interval's start (Raw when on it, else Calculated;
MultiValue when repeated), Count their number, Total their time integral (a period's
value is its integral already; a counter has none), Delta last minus first, Start/End
the first/last with its own stamp. Good when the values' whole spans cover the interval
(PercentDataGood 100), else UncertainDataSubNormal; Partial when the interval is cut
short; an empty interval is BadNoData (Count: 0, Good).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

GOOD = 0x00000000
UNCERTAIN_DATA_SUB_NORMAL = 0x40A40000
BAD_NO_DATA = 0x809B0000
BAD_AGGREGATE_INVALID_INPUTS = 0x80D60000
CALCULATED, RAW, PARTIAL, MULTI_VALUE = 0x0401, 0x0400, 0x0004, 0x0010

#: The aggregates compared (those with a definition over raw values).
NAMES = ("Average", "Minimum", "Maximum", "Count", "Total", "Delta", "Start", "End")


@dataclass(frozen=True)
class Span:
    """What one raw value of a series covers: ``length`` (None: a point) from its stamp,
    or up to its stamp (``ends_at_stamp``, a load-profile period)."""

    length: timedelta | None
    ends_at_stamp: bool = False

    def start_of(self, t: datetime) -> datetime:
        return t - self.length if self.ends_at_stamp and self.length else t


MINUTE_RECORD = Span(timedelta(minutes=1))
REGISTER_SAMPLE = Span(None)


def period(length: timedelta) -> Span:
    return Span(length, ends_at_stamp=True)


@dataclass(frozen=True)
class Value:
    """One aggregate: time stamp, value (None: none) and StatusCode with its info bits."""

    time: datetime
    value: float | None
    status: int


def intervals(start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    """Forward processing intervals; the last one cut at ``end``."""
    out, a = [], start
    while a < end:
        out.append((a, min(a + step, end)))
        a += step
    return out


def aggregate(
    name: str, span: Span, raw: Sequence[tuple[datetime, float]], a: datetime, b: datetime, step: timedelta
) -> Value:
    """The aggregate ``name`` of the interval ``[a, b)`` from the raw values (in time order)."""
    inside = [(t, v) for t, v in raw if a <= span.start_of(t) < b]
    values = [v for _, v in inside]
    partial = PARTIAL if b - a < step else 0
    if name == "Total" and span.length is None:  # the time integral of a counter: not valid
        return Value(a, None, BAD_AGGREGATE_INVALID_INPUTS)
    if not inside:
        return Value(a, 0, GOOD | CALCULATED | partial) if name == "Count" else Value(a, None, BAD_NO_DATA)
    covered = (b - a) if span.length is None else span.length * len(inside)
    quality = (GOOD if covered >= b - a else UNCERTAIN_DATA_SUB_NORMAL) | partial

    def extreme(pick: Callable[[list[float]], float]) -> Value:
        best = pick(values)
        at = [t for t, v in inside if v == best]
        bits = (RAW if at[0] == a else CALCULATED) | (MULTI_VALUE if len(at) > 1 else 0)
        return Value(a, best, quality | bits)

    if name == "Average":
        return Value(a, sum(values) / len(values), quality | CALCULATED)
    if name == "Minimum":
        return extreme(min)
    if name == "Maximum":
        return extreme(max)
    if name == "Count":
        return Value(a, len(values), quality | CALCULATED)
    if name == "Total":
        assert span.length is not None
        factor = 1.0 if span.ends_at_stamp else span.length.total_seconds()
        return Value(a, sum(values) * factor, quality | CALCULATED)
    if name == "Delta":
        return Value(a, values[-1] - values[0], quality | CALCULATED)
    if name == "Start":
        return Value(inside[0][0], values[0], quality | RAW)
    if name == "End":
        return Value(inside[-1][0], values[-1], quality | RAW)
    raise ValueError(f"no reference for {name!r}")
