"""The hand-packed HistoryData decodes, with asyncua's own decoder, to exactly the
DataValues asyncua would have built from the same results (every codec gets a round trip)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary
from hypothesis import given
from hypothesis import strategies as st

from gateway.archive.aggregates import CALCULATED, PARTIAL, Result
from gateway.opcua.history_codec import encode_history_data, ticks, to_data_value

STATUSES = [
    ua.StatusCodes.Good,
    ua.StatusCodes.Good | CALCULATED,
    ua.StatusCodes.Good | CALCULATED | PARTIAL,
    ua.StatusCodes.UncertainDataSubNormal | CALCULATED,
    ua.StatusCodes.BadNoData,
    ua.StatusCodes.BadBoundNotFound,
]
STAMPS = [ua.TimestampsToReturn.Source, ua.TimestampsToReturn.Server, ua.TimestampsToReturn.Both]

times = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)).map(
    lambda t: t.replace(microsecond=t.microsecond // 10 * 10, tzinfo=UTC)  # DateTime has 100 ns ticks
)
results = st.builds(
    lambda t, v, status, integer: Result(
        t, None if v is None else (float(int(v)) if integer else v), status, integer
    ),
    times,
    st.one_of(st.none(), st.floats(allow_nan=False, width=64, min_value=-(2.0**31), max_value=2.0**31 - 1)),
    st.sampled_from(STATUSES),
    st.booleans(),
)


def decoded(body: bytes) -> list[ua.DataValue]:
    data = struct_from_binary(ua.HistoryData, Buffer(body))
    return list(data.DataValues)


@given(st.lists(results, max_size=30), st.sampled_from(STAMPS))
def test_round_trip_through_asyncuas_decoder(values: list[Result], stamps: ua.TimestampsToReturn) -> None:
    got = decoded(encode_history_data(values, stamps))
    assert len(got) == len(values)
    for dv, r in zip(got, values, strict=True):
        want = to_data_value(r, stamps)
        assert dv.StatusCode.value == want.StatusCode.value
        assert dv.SourceTimestamp == want.SourceTimestamp
        assert dv.ServerTimestamp == want.ServerTimestamp
        assert dv.Value.VariantType == want.Value.VariantType
        assert dv.Value.Value == want.Value.Value


T = datetime(2026, 3, 29, 1, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("result", "stamps", "datavalue"),
    [
        # A stored value: asyncua leaves a None StatusCode out too (Good needs no status).
        (
            Result(T, 0.25, ua.StatusCodes.Good),
            ua.TimestampsToReturn.Both,
            ua.DataValue(
                ua.Variant(0.25, ua.VariantType.Double), StatusCode=None, SourceTimestamp=T, ServerTimestamp=T
            ),
        ),
        (
            Result(T, 96.0, ua.StatusCodes.Good | CALCULATED | PARTIAL, integer=True),
            ua.TimestampsToReturn.Source,
            ua.DataValue(
                ua.Variant(96, ua.VariantType.Int32),
                StatusCode=ua.StatusCode(ua.StatusCodes.Good | CALCULATED | PARTIAL),
                SourceTimestamp=T,
            ),
        ),
        (
            Result(T, None, ua.StatusCodes.BadNoData),
            ua.TimestampsToReturn.Server,
            ua.DataValue(None, StatusCode=ua.StatusCode(ua.StatusCodes.BadNoData), ServerTimestamp=T),
        ),
    ],
)
def test_same_bytes_as_asyncuas_encoder(
    result: Result, stamps: ua.TimestampsToReturn, datavalue: ua.DataValue
) -> None:
    if datavalue.Value is not None and datavalue.Value.VariantType == ua.VariantType.Null:
        datavalue.Value = None  # asyncua would send an empty Variant; we leave the Value out
    assert encode_history_data([result], stamps) == struct_to_binary(ua.HistoryData(DataValues=[datavalue]))


def test_ticks_count_100_ns_from_1601() -> None:
    assert ticks(datetime(1601, 1, 1, tzinfo=UTC)) == 0
    assert ticks(datetime(1601, 1, 1, 0, 0, 1, tzinfo=UTC)) == 10_000_000
    assert ticks(datetime(1970, 1, 1)) == 116_444_736_000_000_000  # naive = UTC
    assert ticks(T + timedelta(microseconds=7)) - ticks(T) == 70
