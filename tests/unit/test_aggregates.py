"""The aggregates against a plain reading of OPC 10000-13 over random raw values (Hypothesis).

For any raw values of a minute series, a load-profile channel or a register and any
processing intervals, :func:`gateway.archive.aggregates.compute` must give what a client
computes from the raw values itself: the values whose span starts in the interval
(a minute record spans its minute from its stamp, a load-profile value its period up to
its stamp, a register sample is a point), Average their mean, Minimum/Maximum their
extremes (Raw on the interval's start, else Calculated; MultiValue when repeated), Count
their number, Total their time integral (a period's value is its integral already),
Delta last minus first, Start/End the first/last with its own stamp; Good when their
spans cover the interval, else Uncertain; Partial when the interval is cut short.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.archive import aggregates
from gateway.archive.aggregates import (
    BAD_AGGREGATE_INVALID_INPUTS,
    BAD_NO_DATA,
    CALCULATED,
    GOOD,
    MULTI_VALUE,
    PARTIAL,
    RAW,
    UNCERTAIN_DATA_SUB_NORMAL,
    Result,
    Sample,
    Series,
)
from gateway.streams import Shape

T0 = datetime(2026, 3, 29, tzinfo=UTC)
NOW = T0 + timedelta(days=30)  # every interval is over
MINUTE = timedelta(minutes=1)
PERIOD = timedelta(minutes=15)
NAMES = ("Average", "Minimum", "Maximum", "Count", "Total", "Delta", "Start", "End")


def span(shape: Shape) -> timedelta:
    return {Shape.MINUTE: MINUTE, Shape.PERIOD: PERIOD, Shape.POINT: timedelta(0)}[shape]


def reference(
    name: str, shape: Shape, raw: Sequence[Sample], a: datetime, b: datetime, step: timedelta
) -> Result:
    """One interval's aggregate, computed from the raw values as the module docstring says."""
    starts_at = (lambda t: t - PERIOD) if shape is Shape.PERIOD else (lambda t: t)
    inside = [s for s in raw if a <= starts_at(s.time) < b]
    values = [s.value for s in inside]
    partial = PARTIAL if b - a < step else 0
    if name == "Total" and shape is Shape.POINT:
        return Result(a, None, BAD_AGGREGATE_INVALID_INPUTS)
    if not inside:
        if name == "Count":
            return Result(a, 0.0, GOOD | CALCULATED | partial, integer=True)
        return Result(a, None, BAD_NO_DATA)
    covered = (b - a) if shape is Shape.POINT else span(shape) * len(inside)
    quality = (GOOD if covered >= b - a else UNCERTAIN_DATA_SUB_NORMAL) | partial

    def extreme(pick: Callable[[list[float]], float]) -> Result:
        best = pick(values)
        at = [s.time for s in inside if s.value == best]
        bits = (RAW if at[0] == a else CALCULATED) | (MULTI_VALUE if len(at) > 1 else 0)
        return Result(a, best, quality | bits)

    if name == "Average":
        return Result(a, sum(values) / len(values), quality | CALCULATED)
    if name == "Minimum":
        return extreme(min)
    if name == "Maximum":
        return extreme(max)
    if name == "Count":
        return Result(a, float(len(values)), quality | CALCULATED, integer=True)
    if name == "Total":
        factor = 1.0 if shape is Shape.PERIOD else MINUTE.total_seconds()
        return Result(a, sum(values) * factor, quality | CALCULATED)
    if name == "Delta":
        return Result(a, values[-1] - values[0], quality | CALCULATED)
    if name == "Start":
        return Result(inside[0].time, values[0], quality | RAW)
    return Result(inside[-1].time, values[-1], quality | RAW)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Shape, list[Sample], datetime, datetime, timedelta]:
    shape = draw(st.sampled_from(list(Shape)))
    grid = {Shape.MINUTE: MINUTE, Shape.PERIOD: PERIOD, Shape.POINT: timedelta(minutes=5)}[shape]
    slots = draw(st.sets(st.integers(0, 48), max_size=30))
    # Few distinct values, so that extremes repeat (MultiValue) now and then.
    values = draw(
        st.lists(st.sampled_from([0.0, 1.5, 2.25, -3.0, 7.0]), min_size=len(slots), max_size=len(slots))
    )
    raw = [Sample(T0 + k * grid, v) for k, v in zip(sorted(slots), values, strict=True)]
    start = (
        T0
        + draw(st.integers(-30, 600)) * timedelta(minutes=1)
        + draw(st.sampled_from([timedelta(0), timedelta(seconds=30)]))
    )
    step = draw(st.sampled_from([timedelta(minutes=m) for m in (1, 5, 7, 15, 25, 60, 90)]))
    end = start + step * draw(st.integers(1, 5)) + draw(st.sampled_from([timedelta(0), timedelta(minutes=4)]))
    return shape, raw, start, end, step


@settings(max_examples=300, deadline=None)
@given(cases())
def test_compute_equals_the_aggregates_of_the_raw_values(
    case: tuple[Shape, list[Sample], datetime, datetime, timedelta],
) -> None:
    shape, raw, start, end, step = case
    series = Series(raw, shape, PERIOD if shape is Shape.PERIOD else MINUTE, shape.stepped)
    periods = aggregates.intervals(start, end, step, NOW)
    for name in NAMES:
        got = aggregates.compute(name, series, periods, NOW)
        want = [reference(name, shape, raw, iv.start, iv.end, step) for iv in periods]
        assert [(r.time, r.status, r.integer) for r in got] == [
            (r.time, r.status, r.integer) for r in want
        ], name
        for g, w in zip(got, want, strict=True):
            assert (g.value is None) == (w.value is None), name
            if g.value is not None and w.value is not None:
                assert abs(g.value - w.value) <= 1e-9 * max(1.0, abs(w.value)), name
