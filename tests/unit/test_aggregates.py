"""The aggregates against a plain reading of OPC 10000-13 over random raw values (Hypothesis).

For any raw values of a minute series, a load-profile channel or a register and any
processing intervals, :func:`gateway.archive.aggregates.compute` must give what a client
computes from the raw values itself (:mod:`tests.support.part13`, the same reference the
integration tests hold the gateway's ReadProcessed answers to).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.archive import aggregates
from gateway.archive.aggregates import Sample, Series
from gateway.streams import Shape
from tests.support import part13

T0 = datetime(2026, 3, 29, tzinfo=UTC)
NOW = T0 + timedelta(days=30)  # every interval is over
MINUTE = timedelta(minutes=1)
PERIOD = timedelta(minutes=15)
SPANS = {
    Shape.MINUTE: part13.MINUTE_RECORD,
    Shape.PERIOD: part13.period(PERIOD),
    Shape.POINT: part13.REGISTER_SAMPLE,
}


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
    pairs = [(s.time, s.value) for s in raw]
    for name in part13.NAMES:
        got = aggregates.compute(name, series, periods, NOW)
        want = [part13.aggregate(name, SPANS[shape], pairs, iv.start, iv.end, step) for iv in periods]
        assert [(r.time, r.status) for r in got] == [(w.time, w.status) for w in want], name
        assert all(r.integer == (name == "Count") for r in got), name
        for g, w in zip(got, want, strict=True):
            assert (g.value is None) == (w.value is None), name
            if g.value is not None and w.value is not None:
                assert abs(g.value - w.value) <= 1e-9 * max(1.0, abs(w.value)), name
