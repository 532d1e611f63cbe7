"""Tests of gateway.protocols.cosem against the DLMS protocol vectors and Hypothesis."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import RemoteProtocolError
from gateway.events import EVENTS
from gateway.obis import Obis
from gateway.protocols.apdu import (
    AttributeDescriptor,
    CaptureObject,
    DataAccessResult,
    EntryDescriptor,
    GetRequestNormal,
    GetResponseNormal,
    GetResponseWithList,
    RangeDescriptor,
    ReadResponse,
    decode_apdu,
)
from gateway.protocols.axdr import CosemDateTime, Data, DataTag, decode_all, encode_data
from gateway.protocols.cosem import (
    CLOCK_CAPTURE,
    ClockStatus,
    ProfileRow,
    RegisterValue,
    ScalerUnit,
    StandardEvent,
    capture_objects,
    capture_period,
    clock_time,
    datetime_to_data,
    entry_access,
    event_code,
    event_info,
    logical_name,
    profile_rows,
    range_access,
    register_value,
    scaled,
)
from tests.support.strategies import cosem_data

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "protocol-vectors"
CET = timezone(timedelta(hours=1))
PROFILE = bytes([1, 0, 99, 1, 0, 255])
STATUS = Obis(0, 0, 96, 10, 1)
IMPORT = Obis(1, 0, 1, 8, 0)
EXPORT = Obis(1, 0, 2, 8, 0)


def _vectors() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in ("dlms_ln", "dlms_sn", "dlms_published"):
        for vector in json.loads((VECTORS / f"{name}.json").read_text())[name]:
            out[vector["name"]] = vector
    return out


VECTOR = _vectors()


def _apdu(name: str) -> bytes:
    """The APDU bytes of a vector (HDLC frame stripped of header, LLC and FCS)."""
    vector = VECTOR[name]
    raw = bytes.fromhex(vector["hex"])
    if vector.get("layer") == "apdu":
        return raw
    fields = {f[2]: f for f in vector["fields"]}
    llc, fcs = fields["llc"], fields["fcs"]
    return raw[llc[0] + llc[1] : fcs[0]]


def _value(name: str) -> Data:
    apdu = decode_apdu(_apdu(name))
    assert isinstance(apdu, GetResponseNormal)
    assert isinstance(apdu.result, Data)
    return apdu.result


def _list(name: str) -> tuple[Data | DataAccessResult, ...]:
    apdu = decode_apdu(_apdu(name))
    assert isinstance(apdu, GetResponseWithList)
    return apdu.results


def _columns() -> tuple[CaptureObject, ...]:
    return capture_objects(_value("ln.get_response.profile_capture_objects"))


def _buffer() -> Data:
    expect = VECTOR["ln.get_response_block.profile_block3_last"]["expect"]
    return decode_all(bytes.fromhex(expect["reassembled_buffer_hex"]))


def _compress(buffer: Data) -> Data:
    """The same buffer with every clock cell but the first replaced by null-data."""
    rows = [buffer.items[0]] + [Data.structure([Data.null(), *row.items[1:]]) for row in buffer.items[1:]]
    return Data.array(rows)


# -- clock ---------------------------------------------------------------------------------


def test_fixture_clock_is_0930_utc() -> None:
    decoded = clock_time(_value("ln.get_response.clock"))
    assert decoded.time == datetime(2024, 3, 15, 9, 30, tzinfo=UTC)
    assert decoded.time.utcoffset() == timedelta(0)
    assert decoded.time == datetime(2024, 3, 15, 10, 30, tzinfo=CET)
    assert decoded.status == ClockStatus(0)


def test_sn_clock_matches_ln_clock() -> None:
    apdu = decode_apdu(_apdu("sn.read_response.clock"))
    assert isinstance(apdu, ReadResponse)
    assert isinstance(apdu.results[0], Data)
    assert clock_time(apdu.results[0]) == clock_time(_value("ln.get_response.clock"))


def test_clock_status_bits_are_named() -> None:
    raw = bytes.fromhex("07e8030f050a1e0000ffc481")
    status = clock_time(Data.octet_string(raw)).status
    assert status == ClockStatus.INVALID_VALUE | ClockStatus.DAYLIGHT_SAVING_ACTIVE
    assert int(ClockStatus.DOUBTFUL_VALUE) == 0x02
    assert int(ClockStatus.DIFFERENT_CLOCK_BASE) == 0x04
    assert int(ClockStatus.INVALID_CLOCK_STATUS) == 0x08


def test_clock_from_date_time_tag_and_default_deviation() -> None:
    cdt = CosemDateTime(2024, 3, 15, None, 10, 30, 0, 0, None, None)
    with pytest.raises(RemoteProtocolError):
        clock_time(Data.date_time(cdt))
    decoded = clock_time(Data.date_time(cdt), default_deviation=-60)
    assert decoded.time == datetime(2024, 3, 15, 9, 30, tzinfo=UTC)
    assert decoded.status is None


@settings(max_examples=200)
@given(
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 12, 30)),
    st.integers(-14 * 60, 14 * 60),
    st.integers(0, 255).filter(lambda s: s != 0xFF),
)
def test_clock_round_trip(naive: datetime, offset_min: int, status: int) -> None:
    dt = naive.replace(
        microsecond=naive.microsecond // 10_000 * 10_000, tzinfo=timezone(timedelta(minutes=offset_min))
    )
    decoded = clock_time(datetime_to_data(dt, weekday=True, status=status))
    assert decoded.time == dt
    assert decoded.status == status


# -- scaler_unit / registers ----------------------------------------------------------------


def test_scaler_unit_from_fixture() -> None:
    su = ScalerUnit.from_data(_value("ln.get_response.scaler_unit_wh"))
    assert su == ScalerUnit(1, 30)
    assert su.unit_text == "Wh"
    value = register_value(_value("ln.get_response.register_value_u32"), su)
    assert value == RegisterValue(12_345_670.0, 30, None)
    assert value.unit_text == "Wh"


def test_get_with_list_values_scaled() -> None:
    units = _list("ln.get_response_with_list.mixed_error")
    assert units[2] == DataAccessResult(4)
    volt, amp = (ScalerUnit.from_data(u) for u in units[:2] if isinstance(u, Data))
    assert (volt.unit_text, amp.unit_text) == ("V", "A")
    hertz = ScalerUnit(-2, 44)  # the meter without 14.7.0 answered object-undefined; Hz by hand
    raws = _list("ln.get_response_with_list.instantaneous_7")
    assert [r.value for r in raws if isinstance(r, Data)] == VECTOR[
        "ln.get_response_with_list.instantaneous_7"
    ]["expect"]["values"]
    sus = [volt] * 3 + [amp] * 3 + [hertz]
    got = [scaled(r, su) for r, su in zip(raws, sus, strict=True) if isinstance(r, Data)]
    assert got == [230.1, 229.8, 231.5, 12.34, 9.87, 15.02, 49.98]


def test_extended_register_capture_time() -> None:
    value = register_value(
        Data.int16(-125), Data.structure([Data.int8(-1), Data.enum(27)]), _value("ln.get_response.clock")
    )
    assert value == RegisterValue(-12.5, 27, datetime(2024, 3, 15, 9, 30, tzinfo=UTC))
    assert register_value(Data.uint8(3), ScalerUnit(0, 255), Data.null()).capture_time is None


def test_scaled_float_and_unknown_unit() -> None:
    assert scaled(Data.float32(1.5), ScalerUnit(3, 200)) == 1500.0
    assert ScalerUnit(0, 200).unit_text is None


@given(st.integers(-(2**31), 2**31 - 1), st.integers(-9, 9))
def test_scaled_matches_decimal_shift(raw: int, scaler: int) -> None:
    got = scaled(Data.int32(raw), ScalerUnit(scaler, 27))
    assert got == pytest.approx(raw * 10.0**scaler, rel=1e-12)


@given(st.integers(-128, 127), st.integers(0, 255))
def test_scaler_unit_round_trip(scaler: int, unit: int) -> None:
    su = ScalerUnit(scaler, unit)
    assert ScalerUnit.from_data(decode_all(encode_data(su.to_data()))) == su


# -- profile generic ------------------------------------------------------------------------


def test_capture_objects_of_fixture_profile() -> None:
    columns = _columns()
    expect = VECTOR["ln.get_response.profile_capture_objects"]["expect"]["value"]
    assert [[c.class_id, c.obis.hex(), c.attribute_index, c.data_index] for c in columns] == expect
    assert [str(logical_name(c)) for c in columns] == [
        "0-0:1.0.0",
        "0-0:96.10.1",
        "1-0:1.8.0",
        "1-0:2.8.0",
    ]
    assert columns[0] == CLOCK_CAPTURE


def _check_fixture_rows(rows: list[ProfileRow]) -> None:
    assert len(rows) == VECTOR["ln.get_response_block.profile_block3_last"]["expect"]["rows"] == 8
    start = datetime(2024, 3, 15, 8, 15, tzinfo=CET)
    assert [r.timestamp for r in rows] == [start + timedelta(minutes=15 * i) for i in range(8)]
    assert all(r.timestamp.tzinfo is UTC for r in rows)
    assert [r.status[STATUS] for r in rows] == [0, 0, 0, 8, 0, 0, 0, 0]
    assert rows[0].values == {IMPORT: 1_234_250.0, EXPORT: 56_000.0}
    # The last two rows are the ones the 15-minute range read returns.
    two = VECTOR["ln.get_response.profile_2_rows"]["expect"]["value"]
    for row, (stamp, status, plus, minus) in zip(rows[-2:], two, strict=True):
        assert row.timestamp == clock_time(Data.octet_string(bytes.fromhex(stamp))).time
        assert row.status == {STATUS: status}
        assert row.values == {IMPORT: float(plus), EXPORT: float(minus)}


def test_reassembled_profile_buffer() -> None:
    scalers = {IMPORT: ScalerUnit(0, 30), EXPORT: ScalerUnit(0, 30)}
    rows = profile_rows(_buffer(), _columns(), 900, scalers)
    _check_fixture_rows(rows)
    assert all(r.clock_status == ClockStatus(0) for r in rows)


def test_compressed_timestamps_filled_in() -> None:
    rows = profile_rows(_compress(_buffer()), _columns(), capture_period(Data.uint32(900)))
    _check_fixture_rows(rows)
    assert rows[0].clock_status == ClockStatus(0)
    assert all(r.clock_status is None for r in rows[1:])


def test_profile_scalers_apply_per_column() -> None:
    rows = profile_rows(_buffer(), _columns(), 900, {IMPORT: ScalerUnit(-3, 32)})
    assert rows[0].values == {IMPORT: 1234.25, EXPORT: 56_000.0}


def test_compressed_first_row_is_an_error() -> None:
    buffer = _buffer()
    first = Data.structure([Data.null(), *buffer.items[0].items[1:]])
    with pytest.raises(RemoteProtocolError, match="no time"):
        profile_rows(Data.array([first]), _columns(), 900)


@settings(max_examples=50)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20), st.sampled_from([60, 300, 900, 3600]))
def test_compressed_equals_explicit(values: list[int], period: int) -> None:
    start = datetime(2024, 3, 31, 0, 0, tzinfo=CET)
    columns = (CLOCK_CAPTURE, CaptureObject(3, bytes([1, 0, 1, 8, 0, 255]), 2))
    explicit = Data.array(
        [
            Data.structure([datetime_to_data(start + timedelta(seconds=period * i)), Data.uint32(v)])
            for i, v in enumerate(values)
        ]
    )
    full = profile_rows(explicit, columns, period)
    packed = profile_rows(_compress(explicit), columns, period)
    assert [(r.timestamp, r.values) for r in full] == [(r.timestamp, r.values) for r in packed]
    assert [r.values[IMPORT] for r in packed] == [float(v) for v in values]


# -- selective access ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        (
            "ln.get.profile_range_2h",
            datetime(2024, 3, 15, 8, 0, tzinfo=CET),
            datetime(2024, 3, 15, 10, tzinfo=CET),
        ),
        (
            "ln.get.profile_range_15min",
            datetime(2024, 3, 15, 9, 45, tzinfo=CET),
            datetime(2024, 3, 15, 10, tzinfo=CET),
        ),
    ],
)
def test_range_access_matches_fixture(name: str, start: datetime, end: datetime) -> None:
    request = GetRequestNormal(AttributeDescriptor(7, PROFILE, 2), range_access(CLOCK_CAPTURE, start, end))
    assert request.encode() == _apdu(name)


def test_range_access_with_cosem_datetimes_matches_published() -> None:
    dst = ClockStatus.DAYLIGHT_SAVING_ACTIVE
    start = CosemDateTime.from_datetime(datetime(2017, 10, 1, 0, 0, tzinfo=CET), status=dst)
    end = CosemDateTime.from_datetime(datetime(2017, 10, 1, 1, 0, tzinfo=CET), status=dst)
    request = GetRequestNormal(AttributeDescriptor(7, PROFILE, 2), range_access(CLOCK_CAPTURE, start, end))
    assert request.encode() == _apdu("pub.dlmscosem.get_range_2017")


def test_range_access_selected_columns() -> None:
    columns = _columns()[2:]
    access = range_access(
        CLOCK_CAPTURE, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), columns=columns
    )
    parsed = RangeDescriptor.from_access(access)
    assert parsed.restricting_object == CLOCK_CAPTURE
    assert parsed.selected_values == columns
    assert clock_time(parsed.to_value).time == datetime(2024, 1, 2, tzinfo=UTC)


@given(st.integers(1, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_entry_access_round_trip(first: int, last: int, col_from: int, col_to: int) -> None:
    if last != 0 and last < first:
        first, last = last, first
    access = entry_access(first, last, col_from, col_to)
    assert access.selector == 2
    assert EntryDescriptor.from_access(access) == EntryDescriptor(first, last, col_from, col_to)


# -- events ----------------------------------------------------------------------------------


def test_standard_events_use_the_meter_event_table() -> None:
    for event in StandardEvent:
        assert event_info(Data.uint8(event)) == EVENTS[event]
    assert event_info(Data.uint16(40)).name == "Terminal cover opened"
    assert event_info(Data.enum(200)).name == "Meter event 200"
    assert event_code(Data.uint16(2)) == StandardEvent.POWER_UP


# -- malformed input -------------------------------------------------------------------------

BAD = [
    ("scaler_unit", lambda: ScalerUnit.from_data(Data.structure([Data.int8(1)]))),
    ("scaler_unit", lambda: ScalerUnit.from_data(Data.structure([Data.uint8(1), Data.enum(30)]))),
    ("scaled", lambda: scaled(Data.octet_string(b"12"), ScalerUnit(0, 30))),
    ("scaled", lambda: scaled(Data.boolean(True), ScalerUnit(0, 30))),
    ("clock", lambda: clock_time(Data.octet_string(b"\x07\xe8\x03"))),
    ("clock", lambda: clock_time(Data.uint32(5))),
    ("clock", lambda: clock_time(Data.octet_string(bytes.fromhex("07e8021e050a1e0000ffc400")))),
    ("clock", lambda: clock_time(Data.octet_string(bytes.fromhex("000101010100000000fcc800")))),
    ("capture", lambda: capture_objects(Data.structure([]))),
    ("capture", lambda: capture_objects(Data.array([Data.structure([Data.uint16(8)])]))),
    ("period", lambda: capture_period(Data.int32(900))),
    ("rows", lambda: profile_rows(Data.uint8(1), _columns(), 900)),
    ("rows", lambda: profile_rows(Data.array([Data.structure([Data.null()])]), _columns(), 900)),
    ("rows", lambda: profile_rows(_buffer(), _columns()[1:], 900)),
    ("rows", lambda: profile_rows(_compress(_buffer()), _columns(), 0)),
    ("event", lambda: event_code(Data.visible_string("x"))),
]


@pytest.mark.parametrize("call", [c for _, c in BAD], ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
def test_malformed_raises_remote_protocol_error(call: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        call()


@settings(max_examples=300)
@given(cosem_data)
def test_arbitrary_data_raises_only_remote_protocol_error(data: Data) -> None:
    assert data.tag in DataTag
    calls: list[Callable[[], object]] = [
        lambda: ScalerUnit.from_data(data),
        lambda: scaled(data, ScalerUnit(-2, 30)),
        lambda: clock_time(data),
        lambda: capture_objects(data),
        lambda: capture_period(data),
        lambda: profile_rows(data, _columns(), 900),
        lambda: profile_rows(Data.array([data]), _columns(), 900),
        lambda: register_value(data, data, data),
        lambda: event_info(data),
    ]
    for call in calls:
        with contextlib.suppress(RemoteProtocolError):
            call()
