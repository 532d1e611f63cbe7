"""Tests for the A-XDR ``Data`` codec (gateway.protocols.axdr).

Known-good bytes come from the protocol-vector fixtures: every A-XDR ``data`` field of
the DLMS vectors (listed element by element in ``fields``) is cut out of the frame,
decoded, compared with ``expect`` and re-encoded byte for byte.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.protocols.axdr import (
    MAX_DEPTH,
    BitString,
    CosemDate,
    CosemDateTime,
    CosemTime,
    Data,
    DataTag,
    decode_all,
    decode_data,
    decode_length,
    encode_data,
    encode_length,
)
from tests.support.strategies import AXDR_LEAVES, axdr_data

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "protocol-vectors"
UTC_PLUS_1 = timezone(timedelta(hours=1))

fast = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- fixture vectors -------------------------------------------------------------------------


def _load_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = []
    for name in ("dlms_ln.json", "dlms_sn.json", "dlms_published.json"):
        doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
        for key, value in doc.items():
            if key not in ("about", "sources") and isinstance(value, list):
                vectors.extend(value)
    return vectors


_DATA_FIELD = re.compile(r"(?:^|\.)data$")
_INDEX = re.compile(r"\[(\d+)\]")


def _data_cases() -> list[tuple[str, str, bytes, list[tuple[str, int, int]], int]]:
    """``(vector, field, A-XDR bytes, element fields relative to the start, result index)``."""
    cases = []
    for vector in _load_vectors():
        raw = bytes.fromhex(vector["hex"])
        fields = vector.get("fields", [])
        for offset, _length, name, _meaning in fields:
            if not _DATA_FIELD.search(name):
                continue
            parts = [(n, o, ln) for o, ln, n, _m in fields if n == name or n.startswith(name + "[")]
            end = max(o + ln for _n, o, ln in parts)
            index_match = re.search(r"(?:result|item)\[(\d+)\]\.data$", name)
            index = int(index_match.group(1)) if index_match else -1
            elements = [(n[len(name) :], o - offset, ln) for n, o, ln in parts]
            cases.append((vector["name"], name, raw[offset:end], elements, index))
    return cases


DATA_CASES = _data_cases()
VECTORS = {v["name"]: v for v in _load_vectors()}


def _plain(value: Any) -> Any:
    """``to_python`` output in the fixtures' ``expect`` notation (bytes as hex)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def test_fixture_cases_cover_the_brief() -> None:
    names = {case[0] for case in DATA_CASES}
    for required in (
        "ln.get_response.clock",
        "ln.get_response.scaler_unit_wh",
        "ln.get_response_with_list.instantaneous_7",
        "ln.get_response_with_list.mixed_error",
        "ln.get_response.profile_2_rows",
        "ln.get_response.profile_capture_objects",
        "sn.read_response.multi_4",
        "sn.read_response.object_list",
        "pub.dlmscosem.get_response_with_list",
    ):
        assert required in names


@pytest.mark.parametrize(
    ("vector", "field", "blob", "elements", "index"),
    DATA_CASES,
    ids=[f"{c[0]}:{c[1]}" for c in DATA_CASES],
)
def test_fixture_data_decodes_and_round_trips(
    vector: str, field: str, blob: bytes, elements: list[tuple[str, int, int]], index: int
) -> None:
    data = decode_all(blob)
    assert encode_data(data) == blob
    # Every listed element sits at its offset; a leaf covers its field exactly, a
    # container's field is its header (tag + count).
    for path, offset, length in elements:
        element = data
        for i in _INDEX.findall(path):
            element = element.items[int(i)]
        encoded = encode_data(element)
        assert blob[offset : offset + length] == encoded[:length]
        if element.tag not in (DataTag.ARRAY, DataTag.STRUCTURE):
            assert len(encoded) == length
            assert decode_data(blob, offset) == (element, offset + length)
    expect = VECTORS[vector].get("expect", {})
    if index >= 0 and "values" in expect:
        assert _plain(data.to_python()) == expect["values"][index]
    elif index < 0 and "value" in expect:
        assert _plain(data.to_python()) == expect["value"]


def _cut(vector: str, field: str) -> bytes:
    for name, fld, blob, _elements, _index in DATA_CASES:
        if name == vector and fld == field:
            return blob
    raise AssertionError(f"{vector}:{field} not in the fixtures")


def test_clock_vector_is_1030_utc_plus_1() -> None:
    data = decode_all(_cut("ln.get_response.clock", "apdu.data"))
    assert data.tag is DataTag.OCTET_STRING
    assert isinstance(data.value, bytes)
    clock = CosemDateTime.from_bytes(data.value)
    assert clock == CosemDateTime(2024, 3, 15, 5, 10, 30, 0, 0, deviation=-60, status=0)
    when = clock.to_datetime()
    assert when == datetime(2024, 3, 15, 10, 30, tzinfo=UTC_PLUS_1)
    assert when.utcoffset() == timedelta(hours=1)
    assert when.astimezone(UTC).hour == 9
    assert clock.to_bytes() == data.value
    assert CosemDateTime.from_datetime(when) == clock
    # The same 12 bytes as the date-time CHOICE alternative (tag 25).
    assert encode_data(Data.date_time(clock)) == b"\x19" + data.value
    assert decode_all(b"\x19" + data.value) == Data.date_time(clock)


def test_sn_clock_vector_matches_ln() -> None:
    assert _cut("sn.read_response.clock", "apdu.item[0].data") == _cut("ln.get_response.clock", "apdu.data")


def test_scaler_unit_vector() -> None:
    data = decode_all(_cut("ln.get_response.scaler_unit_wh", "apdu.data"))
    assert data == Data.structure([Data.int8(1), Data.enum(30)])
    assert data != Data.structure([Data.int16(1), Data.enum(30)])


def test_get_with_list_vectors() -> None:
    values = [
        decode_all(_cut("ln.get_response_with_list.instantaneous_7", f"apdu.result[{i}].data"))
        for i in range(7)
    ]
    assert values == [Data.uint16(v) for v in (2301, 2298, 2315, 1234, 987, 1502, 4998)]
    mixed = [
        decode_all(_cut("ln.get_response_with_list.mixed_error", f"apdu.result[{i}].data")) for i in (0, 1)
    ]
    assert mixed == [
        Data.structure([Data.int8(-1), Data.enum(35)]),
        Data.structure([Data.int8(-2), Data.enum(33)]),
    ]


def test_published_with_list_vector() -> None:
    blob = bytes.fromhex(VECTORS["pub.dlmscosem.get_response_with_list"]["hex"])
    first, end = decode_data(blob, 5)
    assert first == Data.octet_string(b"ISK1030777764366")
    assert blob[end] == 0x00  # next Get-Data-Result choice: data
    second, end = decode_data(blob, end + 1)
    assert end == len(blob)
    assert isinstance(second.value, bytes)
    assert CosemDateTime.from_bytes(second.value).to_datetime() == datetime(
        2021, 6, 3, 14, 9, 23, tzinfo=UTC_PLUS_1
    )


def test_reassembled_profile_buffer() -> None:
    expect = VECTORS["ln.get_response_block.profile_block3_last"]["expect"]
    blob = bytes.fromhex(expect["reassembled_buffer_hex"])
    data = decode_all(blob)
    assert encode_data(data) == blob
    rows = data.items
    assert data.tag is DataTag.ARRAY
    assert len(rows) == expect["rows"] == 8
    stamps = []
    for row in rows:
        clock, status, plus_a, minus_a = row.items
        assert (status.tag, plus_a.tag, minus_a.tag) == (
            DataTag.UNSIGNED,
            DataTag.DOUBLE_LONG_UNSIGNED,
            DataTag.DOUBLE_LONG_UNSIGNED,
        )
        assert isinstance(clock.value, bytes)
        stamps.append(CosemDateTime.from_bytes(clock.value).to_datetime())
    assert stamps == [
        datetime(2024, 3, 15, 8, 15, tzinfo=UTC_PLUS_1) + timedelta(minutes=15 * i) for i in range(8)
    ]
    assert [v.value for v in rows[0].items[1:]] == [0, 1234250, 56000]
    assert [v.value for v in rows[-1].items[1:]] == [0, 1236280, 56160]
    assert rows[3].items[1] == Data.uint8(8)  # the status change at 09:00


# -- hand-written encodings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "hex_"),
    [
        (Data.null(), "00"),
        (Data.array([]), "0100"),
        (Data.structure([Data.null(), Data.boolean(True)]), "0202000301"),
        (Data.boolean(False), "0300"),
        (Data.bit_string([True, False, True, True, False, False, False, False, True]), "0409b080"),
        (Data.int32(-2), "05fffffffe"),
        (Data.uint32(1234567), "060012d687"),
        (Data.octet_string(b"\x01\x00"), "09020100"),
        (Data.visible_string("ABC"), "0a03414243"),
        (Data.utf8_string("€"), "0c03e282ac"),
        (Data.bcd(0x42), "0d42"),
        (Data.int8(-1), "0fff"),
        (Data.int16(-1), "10ffff"),
        (Data.uint8(255), "11ff"),
        (Data.uint16(0xFA00), "12fa00"),
        (Data.int64(-1), "14" + "ff" * 8),
        (Data.uint64(2**64 - 1), "15" + "ff" * 8),
        (Data.enum(30), "161e"),
        (Data.float32(1.5), "173fc00000"),
        (Data.float64(-2.0), "18c000000000000000"),
        (Data.date(CosemDate(2024, 3, 15, None)), "1a07e8030fff"),
        (Data.time(CosemTime(10, 30, None, None)), "1b0a1effff"),
        (Data.date_time(CosemDateTime()), "19" + "ff" * 9 + "8000ff"),
        (Data.octet_string(bytes(200)), "0981c8" + "00" * 200),
        (Data.octet_string(bytes(300)), "0982012c" + "00" * 300),
    ],
)
def test_known_encodings(data: Data, hex_: str) -> None:
    raw = bytes.fromhex(hex_)
    assert encode_data(data) == raw
    assert decode_all(raw) == data


def test_lengths() -> None:
    for n, hex_ in [
        (0, "00"),
        (0x7F, "7f"),
        (0x80, "8180"),
        (0xFF, "81ff"),
        (0x100, "820100"),
        (2**32 - 1, "84ffffffff"),
    ]:
        assert encode_length(n) == bytes.fromhex(hex_)
        assert decode_length(bytes.fromhex(hex_)) == (n, len(hex_) // 2)
    with pytest.raises(LocalProtocolError):
        encode_length(2**32)
    with pytest.raises(LocalProtocolError):
        encode_length(-1)


def test_decode_data_offset_leaves_trailing_bytes() -> None:
    buf = memoryview(b"\xaa\xbb\x12\x00\x05\xcc")
    assert decode_data(buf, 2) == (Data.uint16(5), 5)
    assert decode_data(bytearray(b"\x00\x00"), 1) == (Data.null(), 2)


def test_lenient_forms_are_normalised() -> None:
    # Any non-zero boolean byte is TRUE; re-encoded canonically as 0x01.
    assert decode_all(b"\x03\xff") == Data.boolean(True)
    assert encode_data(decode_all(b"\x03\xff")) == b"\x03\x01"
    # A non-minimal long-form length is accepted and re-encoded minimally.
    assert decode_all(b"\x09\x81\x02\xaa\xbb") == Data.octet_string(b"\xaa\xbb")
    assert encode_data(decode_all(b"\x09\x81\x02\xaa\xbb")) == b"\x09\x02\xaa\xbb"


def test_visible_string_keeps_every_byte() -> None:
    raw = b"\x0a\x03\x00\xe9\xff"
    assert decode_all(raw) == Data.visible_string("\x00é\xff")
    assert encode_data(decode_all(raw)) == raw


def test_bit_string_bits_and_padding() -> None:
    value = BitString(3, b"\xbf")  # padding bits set: kept for the exact round trip
    assert value.bits() == (True, False, True)
    assert encode_data(Data(DataTag.BIT_STRING, value)) == b"\x04\x03\xbf"
    assert BitString.from_bits([True, False, True]) == BitString(3, b"\xa0")


def test_to_python_and_items() -> None:
    data = Data.array([Data.structure([Data.int8(-1), Data.octet_string(b"\x01")]), Data.null()])
    assert data.to_python() == [[-1, b"\x01"], None]
    assert len(data.items) == 2
    with pytest.raises(RemoteProtocolError, match="expected an array or structure"):
        _ = Data.uint8(1).items


def test_float_special_values_round_trip() -> None:
    for raw in (b"\x17\x7f\xc0\x00\x00", b"\x18\x7f\xf8\x00\x00\x00\x00\x00\x01", b"\x17\x80\x00\x00\x00"):
        assert encode_data(decode_all(raw)) == raw
    value = decode_all(b"\x17\x7f\x80\x00\x00").value
    assert isinstance(value, float)
    assert math.isinf(value)


# -- malformed input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hex_", "message"),
    [
        ("", "tag expected at offset 0"),
        ("07", "unknown or unsupported A-XDR data tag 7"),
        ("08", "tag 8"),
        ("0b00", "tag 11"),
        ("13", "tag 19"),
        ("1c", "tag 28"),
        ("ff", "tag 255"),
        ("0201ff", "tag 255 .* at offset 2"),
        ("12ab", "LONG_UNSIGNED .* at offset 0: 2 bytes expected"),
        ("0605", "DOUBLE_LONG_UNSIGNED"),
        ("090501020304", "OCTET_STRING .* 5 bytes expected"),
        ("0a", "length expected at offset 1"),
        ("0980", "first byte 0x80"),
        ("0985" + "00" * 5, "first byte 0x85"),
        ("0982ff", "2 length bytes expected"),
        ("0984ffffffff00", "OCTET_STRING"),
        ("0181ff00", "declares 255 elements, only 1 bytes follow"),
        ("02050000", "declares 5 elements, only 2 bytes follow"),
        ("02010f", "INTEGER .* at offset 2: 1 bytes expected from offset 3"),
        ("0c02c328", "utf8-string at offset 0 is not valid UTF-8"),
        ("0410ff", "BIT_STRING .* 2 bytes expected"),
        ("19" + "00" * 11, "DATE_TIME"),
        ("1a00", "DATE"),
        ("1b000000", "TIME"),
        ("0000", "ends at offset 1, but the buffer has 1 more bytes"),
    ],
)
def test_malformed_input_is_a_remote_protocol_error(hex_: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        decode_all(bytes.fromhex(hex_))


def test_nesting_limit() -> None:
    ok = b"\x01\x01" * MAX_DEPTH + b"\x00"
    data = decode_all(ok)
    assert encode_data(data) == ok
    too_deep = b"\x02\x01" * (MAX_DEPTH + 1) + b"\x00"
    with pytest.raises(RemoteProtocolError, match=f"deeper than {MAX_DEPTH} levels"):
        decode_all(too_deep)
    # A hostile nest much deeper than Python's recursion limit stops at the limit too.
    with pytest.raises(RemoteProtocolError, match="deeper"):
        decode_all(b"\x01\x01" * 100_000)
    deep = Data.null()
    for _ in range(MAX_DEPTH + 1):
        deep = Data.array([deep])
    with pytest.raises(LocalProtocolError, match="deeper"):
        encode_data(deep)


def test_huge_declared_counts_do_not_allocate() -> None:
    with pytest.raises(RemoteProtocolError, match="declares 4294967295 elements"):
        decode_all(b"\x01\x84\xff\xff\xff\xff\x00")
    with pytest.raises(RemoteProtocolError, match="4294967295 bytes expected"):
        decode_all(b"\x09\x84\xff\xff\xff\xff")


# -- invalid values to encode -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        Data.int8(128),
        Data.int8(-129),
        Data.uint8(-1),
        Data.uint8(256),
        Data.enum(256),
        Data.bcd(256),
        Data.int16(2**15),
        Data.uint16(2**16),
        Data.int32(2**31),
        Data.uint32(-1),
        Data.int64(2**63),
        Data.uint64(2**64),
        Data(DataTag.UNSIGNED, True),
        Data(DataTag.UNSIGNED, 1.0),
        Data(DataTag.BOOLEAN, 1),
        Data(DataTag.NULL_DATA, 0),
        Data(DataTag.OCTET_STRING, "text"),
        Data(DataTag.VISIBLE_STRING, b"bytes"),
        Data.visible_string("€"),
        Data.utf8_string("\ud800"),
        Data.float32(1e39),
        Data(DataTag.FLOAT64, "1.0"),
        Data(DataTag.ARRAY, [Data.null()]),  # type: ignore[arg-type]
        Data(DataTag.STRUCTURE, (1, 2)),  # type: ignore[arg-type]
        Data(DataTag.BIT_STRING, BitString(9, b"\x00")),
        Data(DataTag.BIT_STRING, b"\x00"),
        Data(DataTag.DATE_TIME, CosemDate()),
        Data(DataTag.DATE, CosemTime()),
        Data(DataTag.TIME, CosemDateTime()),
        Data.date_time(CosemDateTime(month=255)),
        Data.date_time(CosemDateTime(year=0xFFFF)),
        Data.date_time(CosemDateTime(deviation=-0x8000)),
        Data.date_time(CosemDateTime(status=-1)),
        Data.date(CosemDate(weekday=300)),
        Data.time(CosemTime(hour=0xFF)),
        Data.structure([Data.uint8(1), Data.int8(200)]),
    ],
)
def test_invalid_values_are_local_protocol_errors(data: Data) -> None:
    with pytest.raises(LocalProtocolError):
        encode_data(data)


def test_invalid_tag_is_local_protocol_error() -> None:
    with pytest.raises(LocalProtocolError, match="DataTag"):
        encode_data(Data(7, None))  # type: ignore[arg-type]


# -- COSEM date-time ------------------------------------------------------------------------------


def test_date_time_unspecified_fields() -> None:
    raw = bytes.fromhex("ffffffffffffffffff8000ff")
    value = CosemDateTime.from_bytes(raw)
    assert value == CosemDateTime()
    assert value.to_bytes() == raw
    with pytest.raises(RemoteProtocolError, match="unspecified year, month, day, hour, minute"):
        value.to_datetime()


def test_date_time_without_deviation_is_naive() -> None:
    value = CosemDateTime(2024, 3, 15, None, 10, 30, None, None, None, None)
    assert value.to_datetime() == datetime(2024, 3, 15, 10, 30)
    assert value.to_datetime().tzinfo is None
    assert CosemDateTime.from_datetime(
        datetime(2024, 3, 15, 10, 30, 5, 990_000), status=None
    ) == CosemDateTime(2024, 3, 15, 5, 10, 30, 5, 99, None, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (CosemDateTime(2024, 0xFE, 15, None, 10, 30, 0, 0, -60, 0), "not a valid instant"),
        (CosemDateTime(2024, 2, 30, None, 10, 30, 0, 0, -60, 0), "not a valid instant"),
        (CosemDateTime(2024, 2, 28, None, 25, 30, 0, 0, -60, 0), "not a valid instant"),
        (CosemDateTime(2024, 2, 28, None, 10, 30, 0, 0, 900, 0), "deviation 900"),
        (CosemDateTime(2024, 2, 28, None, None, 30, 0, 0, -60, 0), "unspecified hour"),
    ],
)
def test_date_time_not_an_instant(value: CosemDateTime, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        value.to_datetime()


def test_date_time_wrong_sizes() -> None:
    with pytest.raises(RemoteProtocolError, match="12 bytes"):
        CosemDateTime.from_bytes(b"\x00" * 11)
    with pytest.raises(RemoteProtocolError, match="5 bytes"):
        CosemDate.from_bytes(b"\x00" * 4)
    with pytest.raises(RemoteProtocolError, match="4 bytes"):
        CosemTime.from_bytes(b"\x00" * 5)


def test_from_datetime_rejects_second_offsets() -> None:
    odd = timezone(timedelta(minutes=60, seconds=30))
    with pytest.raises(LocalProtocolError, match="whole number of minutes"):
        CosemDateTime.from_datetime(datetime(2024, 1, 1, tzinfo=odd))


@fast
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-840, max_value=840),
)
def test_from_datetime_to_datetime(naive: datetime, offset_minutes: int) -> None:
    dt = naive.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    value = CosemDateTime.from_datetime(dt)
    assert value.deviation == -offset_minutes
    assert value.weekday == dt.isoweekday()
    assert value.to_datetime() == dt.replace(microsecond=dt.microsecond // 10_000 * 10_000)
    assert CosemDateTime.from_bytes(value.to_bytes()) == value


@fast
@given(st.binary(min_size=12, max_size=12))
def test_every_date_time_pattern_round_trips(raw: bytes) -> None:
    value = CosemDateTime.from_bytes(raw)
    assert value.to_bytes() == raw
    with contextlib.suppress(RemoteProtocolError):
        value.to_datetime()


# -- Hypothesis round trips -------------------------------------------------------------------------


def test_every_tag_has_a_strategy() -> None:
    assert set(AXDR_LEAVES) | {DataTag.ARRAY, DataTag.STRUCTURE} == set(DataTag)


def _check_round_trip(data: Data) -> None:
    raw = encode_data(data)
    assert decode_all(raw) == data
    assert encode_data(decode_all(raw)) == raw
    assert decode_data(b"\xee" + raw + b"\xee", 1) == (data, len(raw) + 1)
    for cut in {0, len(raw) // 2, len(raw) - 1}:
        with pytest.raises(RemoteProtocolError):
            decode_all(raw[:cut])


@pytest.mark.parametrize("tag", list(AXDR_LEAVES), ids=[t.name for t in AXDR_LEAVES])
@fast
@given(data=st.data())
def test_round_trip_every_scalar_tag(tag: DataTag, data: st.DataObject) -> None:
    _check_round_trip(data.draw(AXDR_LEAVES[tag]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(axdr_data(4))
def test_round_trip_nested(data: Data) -> None:
    _check_round_trip(data)


@fast
@given(st.integers(min_value=1, max_value=MAX_DEPTH), st.sampled_from([DataTag.ARRAY, DataTag.STRUCTURE]))
def test_round_trip_deepest_allowed(depth: int, tag: DataTag) -> None:
    data = Data.uint8(7)
    for _ in range(depth):
        data = Data(tag, (data, Data.null()))
    _check_round_trip(data)


@fast
@given(st.floats(width=32, allow_nan=False) | st.floats(allow_nan=False))
def test_float_bytes_are_exact(value: float) -> None:
    raw = encode_data(Data.float64(value))
    assert raw == b"\x18" + struct.pack(">d", value)
    assert encode_data(decode_all(raw)) == raw


# -- fuzz --------------------------------------------------------------------------------------------


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_remote_protocol_error(raw: bytes) -> None:
    try:
        data = decode_all(raw)
    except RemoteProtocolError:
        return
    canonical = encode_data(data)
    assert encode_data(decode_all(canonical)) == canonical
    assert len(canonical) <= len(raw)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(axdr_data(2), st.data())
def test_mutated_encodings_only_raise_remote_protocol_error(data: Data, draw: st.DataObject) -> None:
    raw = bytearray(encode_data(data))
    if raw:
        position = draw.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[position] = draw.draw(st.integers(min_value=0, max_value=255))
    try:
        decoded, _end = decode_data(bytes(raw))
    except RemoteProtocolError:
        return
    assert isinstance(decoded, Data)
