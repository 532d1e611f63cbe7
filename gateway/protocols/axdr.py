"""A-XDR encoding of the COSEM ``Data`` CHOICE (IEC 62056-6-2, DLMS UA Blue Book data types).

Every attribute value a DLMS/COSEM meter sends (GET-response data, SN ReadResponse data,
profile buffers after block reassembly) is one ``Data`` value: a one-byte tag naming the
CHOICE alternative, then the A-XDR encoding of the value. This module turns such bytes
into :class:`Data` values and back. It is sans-I/O and pure: no ports, no clocks.

Value model
-----------
One frozen dataclass, :class:`Data`, holds a :class:`DataTag` and a Python value whose
type depends on the tag (table below). Keeping the tag explicit is what makes the round
trip exact: ``integer`` (int8) 1 and ``long`` (int16) 1 are different :class:`Data` values
and encode to different bytes. Build values with the class-method constructors
(:meth:`Data.int8`, :meth:`Data.structure`, ...); :meth:`Data.to_python` strips the tags.

=====================  ===  ===============  ==========================================
Blue Book name         tag  encoding         Python value
=====================  ===  ===============  ==========================================
null-data                0  (nothing)        ``None``
array                    1  length, items    ``tuple[Data, ...]`` (same tag expected)
structure                2  length, items    ``tuple[Data, ...]``
boolean                  3  1 byte           ``bool`` (0 = FALSE, anything else TRUE)
bit-string               4  bit count, bits  :class:`BitString`
double-long              5  int32 BE         ``int``
double-long-unsigned     6  uint32 BE        ``int``
octet-string             9  length, bytes    ``bytes``
visible-string          10  length, bytes    ``str`` (each byte one character, latin-1)
utf8-string             12  length, bytes    ``str`` (UTF-8)
bcd                     13  1 byte           ``int`` 0..255 (the raw byte, two digits)
integer                 15  int8             ``int``
long                    16  int16 BE         ``int``
unsigned                17  uint8            ``int``
long-unsigned           18  uint16 BE        ``int``
long64                  20  int64 BE         ``int``
long64-unsigned         21  uint64 BE        ``int``
enum                    22  uint8            ``int``
float32                 23  IEEE 754 BE      ``float``
float64                 24  IEEE 754 BE      ``float``
date-time               25  12 bytes         :class:`CosemDateTime`
date                    26  5 bytes          :class:`CosemDate`
time                    27  4 bytes          :class:`CosemTime`
=====================  ===  ===============  ==========================================

Lengths and element counts use the A-XDR/BER length: one byte below 0x80, else
``0x80 | n`` followed by ``n`` (1..4) big-endian bytes. The encoder always writes the
shortest form. ``compact-array`` (19) and ``dont-care`` (255) are not supported.

Round trip: ``encode_data(decode_all(b)) == b`` for every canonical encoding, which is
every encoding :func:`encode_data` produces. The decoder is lenient in two places where
real meters are sloppy and normalises them: a boolean byte other than 0x00/0x01 decodes as
``True`` (re-encoded as 0x01), and a non-minimal long-form length is accepted (re-encoded
minimally). Float32 signalling-NaN payloads are quieted by the float conversion.

Hostile input: nesting is limited to :data:`MAX_DEPTH` levels, every declared length
must fit in the remaining buffer, and a declared element count may not exceed the
remaining bytes (every element takes at least one). Any malformed input raises
:class:`~gateway.errors.RemoteProtocolError` naming the tag, the offset and what was
expected; values that cannot be encoded raise :class:`~gateway.errors.LocalProtocolError`.

COSEM date and time
-------------------
Clock values usually travel as an ``octet-string`` of 12 bytes holding a date-time
(the clock's ``time`` attribute is typed octet-string(12)); :meth:`CosemDateTime.from_bytes`
and :meth:`CosemDateTime.to_bytes` convert that payload. The same 12 bytes make the
``date-time`` tag 25. Fields equal to "not specified" (0xFF, year 0xFFFF, deviation
0x8000) are ``None``. The deviation is minutes from local time to UTC, so a meter on
UTC+1 sends -60.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final, TypeAlias

from gateway.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_DEPTH",
    "BitString",
    "CosemDate",
    "CosemDateTime",
    "CosemTime",
    "Data",
    "DataTag",
    "DataValue",
    "PythonValue",
    "Scalar",
    "decode_all",
    "decode_data",
    "decode_length",
    "encode_data",
    "encode_length",
]

MAX_DEPTH: Final = 16
"""Most arrays/structures that may be nested inside each other (decoder and encoder)."""

_MAX_LENGTH_BYTES: Final = 4


class DataTag(enum.IntEnum):
    """Tags of the COSEM ``Data`` CHOICE alternatives supported here."""

    NULL_DATA = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    BCD = 13
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27


# Fixed-size integer tags: (struct format, minimum, maximum).
_INT_FORMATS: Final[dict[DataTag, tuple[str, int, int]]] = {
    DataTag.DOUBLE_LONG: (">i", -(2**31), 2**31 - 1),
    DataTag.DOUBLE_LONG_UNSIGNED: (">I", 0, 2**32 - 1),
    DataTag.BCD: (">B", 0, 255),
    DataTag.INTEGER: (">b", -128, 127),
    DataTag.LONG: (">h", -(2**15), 2**15 - 1),
    DataTag.UNSIGNED: (">B", 0, 255),
    DataTag.LONG_UNSIGNED: (">H", 0, 2**16 - 1),
    DataTag.LONG64: (">q", -(2**63), 2**63 - 1),
    DataTag.LONG64_UNSIGNED: (">Q", 0, 2**64 - 1),
    DataTag.ENUM: (">B", 0, 255),
}
_FLOAT_FORMATS: Final[dict[DataTag, str]] = {DataTag.FLOAT32: ">f", DataTag.FLOAT64: ">d"}
_STRING_TAGS: Final = frozenset({DataTag.OCTET_STRING, DataTag.VISIBLE_STRING, DataTag.UTF8_STRING})
_CONTAINER_TAGS: Final = frozenset({DataTag.ARRAY, DataTag.STRUCTURE})


def _u8_or_none(value: int) -> int | None:
    return None if value == 0xFF else value


def _check_u8(owner: str, name: str, value: int | None) -> int:
    """Byte of an optional field: ``None`` -> 0xFF, else 0..0xFE."""
    if value is None:
        return 0xFF
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFE:
        raise LocalProtocolError(f"{owner}.{name} must be None or an int 0..254, got {value!r}")
    return value


def _check_year(owner: str, year: int | None) -> bytes:
    if year is None:
        return b"\xff\xff"
    if isinstance(year, bool) or not isinstance(year, int) or not 0 <= year <= 0xFFFE:
        raise LocalProtocolError(f"{owner}.year must be None or an int 0..65534, got {year!r}")
    return year.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class CosemDate:
    """COSEM ``date`` (5 bytes): year (uint16), month, day of month, day of week.

    ``None`` = not specified (0xFFFF / 0xFF). Month 0xFD/0xFE (DST end/begin) and day
    0xFD/0xFE (second last / last day of month) are kept as the raw numbers. Day of week
    is 1 = Monday .. 7 = Sunday.
    """

    year: int | None = None
    month: int | None = None
    day: int | None = None
    weekday: int | None = None

    def to_bytes(self) -> bytes:
        """The 5-byte encoding; :class:`LocalProtocolError` for out-of-range fields."""
        return _check_year("CosemDate", self.year) + bytes(
            _check_u8("CosemDate", n, v)
            for n, v in (("month", self.month), ("day", self.day), ("weekday", self.weekday))
        )

    @classmethod
    def from_bytes(cls, raw: bytes | memoryview) -> CosemDate:
        """Parse exactly 5 bytes (every byte pattern is accepted and kept)."""
        raw = bytes(raw)
        if len(raw) != 5:
            raise RemoteProtocolError(f"COSEM date must be 5 bytes, got {len(raw)}")
        year = int.from_bytes(raw[0:2], "big")
        return cls(
            None if year == 0xFFFF else year, _u8_or_none(raw[2]), _u8_or_none(raw[3]), _u8_or_none(raw[4])
        )


@dataclass(frozen=True, slots=True)
class CosemTime:
    """COSEM ``time`` (4 bytes): hour, minute, second, hundredths; ``None`` = not specified."""

    hour: int | None = None
    minute: int | None = None
    second: int | None = None
    hundredths: int | None = None

    def to_bytes(self) -> bytes:
        """The 4-byte encoding; :class:`LocalProtocolError` for out-of-range fields."""
        return bytes(
            _check_u8("CosemTime", n, v)
            for n, v in (
                ("hour", self.hour),
                ("minute", self.minute),
                ("second", self.second),
                ("hundredths", self.hundredths),
            )
        )

    @classmethod
    def from_bytes(cls, raw: bytes | memoryview) -> CosemTime:
        """Parse exactly 4 bytes (every byte pattern is accepted and kept)."""
        raw = bytes(raw)
        if len(raw) != 4:
            raise RemoteProtocolError(f"COSEM time must be 4 bytes, got {len(raw)}")
        return cls(*(_u8_or_none(b) for b in raw))


@dataclass(frozen=True, slots=True)
class CosemDateTime:
    """COSEM ``date-time`` (12 bytes): date, time, deviation (int16), clock status.

    ``None`` = not specified: year 0xFFFF; month, day, weekday, hour, minute, second,
    hundredths and status 0xFF; deviation 0x8000. The deviation is the number of minutes
    from local time to UTC (UTC = local + deviation), so UTC+1 is ``-60``. The clock status
    bits (invalid, doubtful, different base, invalid status, daylight saving active) are
    kept as the raw byte.
    """

    year: int | None = None
    month: int | None = None
    day: int | None = None
    weekday: int | None = None
    hour: int | None = None
    minute: int | None = None
    second: int | None = None
    hundredths: int | None = None
    deviation: int | None = None
    status: int | None = None

    def to_bytes(self) -> bytes:
        """The 12-byte encoding; :class:`LocalProtocolError` for out-of-range fields."""
        owner = "CosemDateTime"
        middle = bytes(
            _check_u8(owner, n, v)
            for n, v in (
                ("month", self.month),
                ("day", self.day),
                ("weekday", self.weekday),
                ("hour", self.hour),
                ("minute", self.minute),
                ("second", self.second),
                ("hundredths", self.hundredths),
            )
        )
        if self.deviation is None:
            deviation = b"\x80\x00"
        elif (
            isinstance(self.deviation, bool)
            or not isinstance(self.deviation, int)
            or not -0x7FFF <= self.deviation <= 0x7FFF
        ):
            raise LocalProtocolError(
                f"CosemDateTime.deviation must be None or an int -32767..32767, got {self.deviation!r}"
            )
        else:
            deviation = self.deviation.to_bytes(2, "big", signed=True)
        status = bytes([_check_u8(owner, "status", self.status)])
        return _check_year(owner, self.year) + middle + deviation + status

    @classmethod
    def from_bytes(cls, raw: bytes | memoryview) -> CosemDateTime:
        """Parse exactly 12 bytes (every byte pattern is accepted and kept)."""
        raw = bytes(raw)
        if len(raw) != 12:
            raise RemoteProtocolError(f"COSEM date-time must be 12 bytes, got {len(raw)}")
        year = int.from_bytes(raw[0:2], "big")
        deviation = int.from_bytes(raw[9:11], "big", signed=True)
        return cls(
            year=None if year == 0xFFFF else year,
            month=_u8_or_none(raw[2]),
            day=_u8_or_none(raw[3]),
            weekday=_u8_or_none(raw[4]),
            hour=_u8_or_none(raw[5]),
            minute=_u8_or_none(raw[6]),
            second=_u8_or_none(raw[7]),
            hundredths=_u8_or_none(raw[8]),
            deviation=None if deviation == -0x8000 else deviation,
            status=_u8_or_none(raw[11]),
        )

    def to_datetime(self) -> datetime:
        """The instant as a :class:`datetime`, aware when the deviation is specified.

        Year, month, day, hour and minute are needed; an unspecified second or hundredths
        counts as 0. Raises :class:`RemoteProtocolError` for a missing needed field, a
        wildcard (DST month, last day of month) or an impossible date.
        """
        needed = {
            "year": self.year,
            "month": self.month,
            "day": self.day,
            "hour": self.hour,
            "minute": self.minute,
        }
        missing = [name for name, value in needed.items() if value is None]
        if missing:
            raise RemoteProtocolError(f"COSEM date-time {self} has unspecified {', '.join(missing)}")
        year, month, day, hour, minute = needed.values()
        assert year is not None
        assert month is not None
        assert day is not None
        assert hour is not None
        assert minute is not None
        tz: timezone | None = None
        if self.deviation is not None:
            if not -840 <= self.deviation <= 840:
                raise RemoteProtocolError(
                    f"COSEM date-time deviation {self.deviation} is not within ±840 min"
                )
            tz = timezone(timedelta(minutes=-self.deviation))
        try:
            return datetime(
                year,
                month,
                day,
                hour,
                minute,
                self.second or 0,
                (self.hundredths or 0) * 10_000,
                tzinfo=tz,
            )
        except ValueError as err:
            raise RemoteProtocolError(f"COSEM date-time {self} is not a valid instant: {err}") from err

    @classmethod
    def from_datetime(cls, dt: datetime, status: int | None = 0) -> CosemDateTime:
        """Date-time of ``dt`` (deviation from its UTC offset; unspecified when naive).

        Microseconds are truncated to hundredths; the weekday is 1 = Monday .. 7 = Sunday.
        """
        offset = dt.utcoffset()
        deviation: int | None = None
        if offset is not None:
            if offset % timedelta(minutes=1):
                raise LocalProtocolError(f"UTC offset {offset} of {dt} is not a whole number of minutes")
            deviation = -(offset // timedelta(minutes=1))
        return cls(
            dt.year,
            dt.month,
            dt.day,
            dt.isoweekday(),
            dt.hour,
            dt.minute,
            dt.second,
            dt.microsecond // 10_000,
            deviation,
            status,
        )


@dataclass(frozen=True, slots=True)
class BitString:
    """A-XDR ``bit-string``: ``length`` bits, stored MSB first in ``data``.

    ``data`` holds ``ceil(length / 8)`` bytes; unused trailing bits are kept as received
    so the round trip is exact.
    """

    length: int
    data: bytes

    @classmethod
    def from_bits(cls, bits: tuple[bool, ...] | list[bool]) -> BitString:
        """Bit string of the given bits (first bit = MSB of the first byte)."""
        out = bytearray((len(bits) + 7) // 8)
        for i, bit in enumerate(bits):
            if bit:
                out[i // 8] |= 0x80 >> (i % 8)
        return cls(len(bits), bytes(out))

    def bits(self) -> tuple[bool, ...]:
        """The bits, first bit first."""
        return tuple(bool(self.data[i // 8] & (0x80 >> (i % 8))) for i in range(self.length))


Scalar: TypeAlias = bool | int | float | bytes | str | BitString | CosemDateTime | CosemDate | CosemTime
DataValue: TypeAlias = "Scalar | tuple[Data, ...] | None"
"""Python type of :attr:`Data.value` (which one depends on the tag, see the module table)."""
PythonValue: TypeAlias = "Scalar | list[PythonValue] | None"
"""What :meth:`Data.to_python` returns: containers as lists, scalars unchanged."""


@dataclass(frozen=True, slots=True)
class Data:
    """One value of the COSEM ``Data`` CHOICE: the tag and its Python value (see module table).

    The value is not checked on construction; :func:`encode_data` raises
    :class:`LocalProtocolError` for a value that does not fit its tag.
    """

    tag: DataTag
    value: DataValue = None

    # -- convenience constructors -------------------------------------------------------

    @classmethod
    def null(cls) -> Data:
        return cls(DataTag.NULL_DATA, None)

    @classmethod
    def array(cls, items: tuple[Data, ...] | list[Data]) -> Data:
        return cls(DataTag.ARRAY, tuple(items))

    @classmethod
    def structure(cls, items: tuple[Data, ...] | list[Data]) -> Data:
        return cls(DataTag.STRUCTURE, tuple(items))

    @classmethod
    def boolean(cls, value: bool) -> Data:
        return cls(DataTag.BOOLEAN, value)

    @classmethod
    def bit_string(cls, bits: tuple[bool, ...] | list[bool]) -> Data:
        return cls(DataTag.BIT_STRING, BitString.from_bits(bits))

    @classmethod
    def int8(cls, value: int) -> Data:
        """``integer``."""
        return cls(DataTag.INTEGER, value)

    @classmethod
    def int16(cls, value: int) -> Data:
        """``long``."""
        return cls(DataTag.LONG, value)

    @classmethod
    def int32(cls, value: int) -> Data:
        """``double-long``."""
        return cls(DataTag.DOUBLE_LONG, value)

    @classmethod
    def int64(cls, value: int) -> Data:
        """``long64``."""
        return cls(DataTag.LONG64, value)

    @classmethod
    def uint8(cls, value: int) -> Data:
        """``unsigned``."""
        return cls(DataTag.UNSIGNED, value)

    @classmethod
    def uint16(cls, value: int) -> Data:
        """``long-unsigned``."""
        return cls(DataTag.LONG_UNSIGNED, value)

    @classmethod
    def uint32(cls, value: int) -> Data:
        """``double-long-unsigned``."""
        return cls(DataTag.DOUBLE_LONG_UNSIGNED, value)

    @classmethod
    def uint64(cls, value: int) -> Data:
        """``long64-unsigned``."""
        return cls(DataTag.LONG64_UNSIGNED, value)

    @classmethod
    def enum(cls, value: int) -> Data:
        return cls(DataTag.ENUM, value)

    @classmethod
    def bcd(cls, value: int) -> Data:
        return cls(DataTag.BCD, value)

    @classmethod
    def float32(cls, value: float) -> Data:
        return cls(DataTag.FLOAT32, value)

    @classmethod
    def float64(cls, value: float) -> Data:
        return cls(DataTag.FLOAT64, value)

    @classmethod
    def octet_string(cls, value: bytes) -> Data:
        return cls(DataTag.OCTET_STRING, bytes(value))

    @classmethod
    def visible_string(cls, value: str) -> Data:
        return cls(DataTag.VISIBLE_STRING, value)

    @classmethod
    def utf8_string(cls, value: str) -> Data:
        return cls(DataTag.UTF8_STRING, value)

    @classmethod
    def date_time(cls, value: CosemDateTime) -> Data:
        return cls(DataTag.DATE_TIME, value)

    @classmethod
    def date(cls, value: CosemDate) -> Data:
        return cls(DataTag.DATE, value)

    @classmethod
    def time(cls, value: CosemTime) -> Data:
        return cls(DataTag.TIME, value)

    # -- access ---------------------------------------------------------------------------

    @property
    def items(self) -> tuple[Data, ...]:
        """Elements of an array or structure; :class:`RemoteProtocolError` for other tags
        (the caller expected a container the meter did not send)."""
        if self.tag not in _CONTAINER_TAGS or not isinstance(self.value, tuple):
            raise RemoteProtocolError(f"expected an array or structure, got {self.tag.name}")
        return self.value

    def to_python(self) -> PythonValue:
        """The value without tags: containers become lists, everything else is unchanged."""
        if isinstance(self.value, tuple):
            return [item.to_python() for item in self.value]
        return self.value


# -- lengths ---------------------------------------------------------------------------------


def encode_length(length: int) -> bytes:
    """A-XDR/BER length: one byte below 0x80, else ``0x80 | n`` and ``n`` big-endian bytes."""
    if length < 0:
        raise LocalProtocolError(f"length must not be negative, got {length}")
    if length < 0x80:
        return bytes([length])
    size = (length.bit_length() + 7) // 8
    if size > _MAX_LENGTH_BYTES:
        raise LocalProtocolError(f"length {length} does not fit in {_MAX_LENGTH_BYTES} length bytes")
    return bytes([0x80 | size]) + length.to_bytes(size, "big")


def decode_length(buf: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Parse an A-XDR/BER length at ``offset``; return ``(length, offset after it)``."""
    view = memoryview(buf)
    if offset >= len(view):
        raise RemoteProtocolError(f"A-XDR length expected at offset {offset}, buffer ends")
    first = view[offset]
    if first < 0x80:
        return first, offset + 1
    size = first & 0x7F
    if size == 0 or size > _MAX_LENGTH_BYTES:
        raise RemoteProtocolError(
            f"A-XDR length at offset {offset}: first byte 0x{first:02X} is not a short length or "
            f"0x81..0x{0x80 + _MAX_LENGTH_BYTES:02X}"
        )
    end = offset + 1 + size
    if end > len(view):
        raise RemoteProtocolError(
            f"A-XDR length at offset {offset}: {size} length bytes expected, "
            f"{len(view) - offset - 1} in the buffer"
        )
    return int.from_bytes(view[offset + 1 : end], "big"), end


# -- decoding --------------------------------------------------------------------------------


def _take(view: memoryview, offset: int, size: int, tag: DataTag, start: int) -> bytes:
    end = offset + size
    if end > len(view):
        raise RemoteProtocolError(
            f"A-XDR {tag.name} (tag {int(tag)}) at offset {start}: {size} bytes expected from offset "
            f"{offset}, only {len(view) - offset} in the buffer"
        )
    return bytes(view[offset:end])


def _decode(view: memoryview, offset: int, depth: int) -> tuple[Data, int]:
    if offset >= len(view):
        raise RemoteProtocolError(f"A-XDR data tag expected at offset {offset}, buffer ends")
    raw_tag = view[offset]
    try:
        tag = DataTag(raw_tag)
    except ValueError:
        raise RemoteProtocolError(
            f"unknown or unsupported A-XDR data tag {raw_tag} (0x{raw_tag:02X}) at offset {offset}"
        ) from None
    start = offset
    pos = offset + 1

    if tag in _CONTAINER_TAGS:
        if depth >= MAX_DEPTH:
            raise RemoteProtocolError(
                f"A-XDR {tag.name} at offset {start} nests deeper than {MAX_DEPTH} levels"
            )
        count, pos = decode_length(view, pos)
        if count > len(view) - pos:
            raise RemoteProtocolError(
                f"A-XDR {tag.name} at offset {start} declares {count} elements, only "
                f"{len(view) - pos} bytes follow"
            )
        items: list[Data] = []
        for _ in range(count):
            item, pos = _decode(view, pos, depth + 1)
            items.append(item)
        return Data(tag, tuple(items)), pos

    if tag in _INT_FORMATS:
        fmt = _INT_FORMATS[tag][0]
        size = struct.calcsize(fmt)
        (number,) = struct.unpack(fmt, _take(view, pos, size, tag, start))
        return Data(tag, int(number)), pos + size

    if tag in _FLOAT_FORMATS:
        fmt = _FLOAT_FORMATS[tag]
        size = struct.calcsize(fmt)
        (real,) = struct.unpack(fmt, _take(view, pos, size, tag, start))
        return Data(tag, float(real)), pos + size

    if tag in _STRING_TAGS:
        size, pos = decode_length(view, pos)
        raw = _take(view, pos, size, tag, start)
        pos += size
        if tag is DataTag.OCTET_STRING:
            return Data(tag, raw), pos
        if tag is DataTag.VISIBLE_STRING:
            return Data(tag, raw.decode("latin-1")), pos
        try:
            return Data(tag, raw.decode("utf-8")), pos
        except UnicodeDecodeError as err:
            raise RemoteProtocolError(
                f"A-XDR utf8-string at offset {start} is not valid UTF-8: {err.reason} at byte {err.start}"
            ) from err

    if tag is DataTag.NULL_DATA:
        return Data(tag, None), pos
    if tag is DataTag.BOOLEAN:
        return Data(tag, _take(view, pos, 1, tag, start)[0] != 0), pos + 1
    if tag is DataTag.BIT_STRING:
        nbits, pos = decode_length(view, pos)
        size = (nbits + 7) // 8
        return Data(tag, BitString(nbits, _take(view, pos, size, tag, start))), pos + size
    if tag is DataTag.DATE_TIME:
        return Data(tag, CosemDateTime.from_bytes(_take(view, pos, 12, tag, start))), pos + 12
    if tag is DataTag.DATE:
        return Data(tag, CosemDate.from_bytes(_take(view, pos, 5, tag, start))), pos + 5
    assert tag is DataTag.TIME
    return Data(tag, CosemTime.from_bytes(_take(view, pos, 4, tag, start))), pos + 4


def decode_data(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Data, int]:
    """Decode one ``Data`` value starting at ``offset``; return it and the offset after it.

    Bytes after the value are left alone. Malformed input raises
    :class:`RemoteProtocolError` (offsets in the message count from the start of ``buf``).
    """
    view = memoryview(buf).cast("B")
    if offset < 0:
        raise LocalProtocolError(f"offset must not be negative, got {offset}")
    return _decode(view, offset, 0)


def decode_all(buf: bytes | bytearray | memoryview) -> Data:
    """Decode a buffer that holds exactly one ``Data`` value (trailing bytes are an error)."""
    data, end = decode_data(buf)
    total = memoryview(buf).nbytes
    if end != total:
        raise RemoteProtocolError(
            f"A-XDR {data.tag.name} ends at offset {end}, but the buffer has {total - end} more bytes"
        )
    return data


# -- encoding --------------------------------------------------------------------------------


def _bad(data: Data, expected: str) -> LocalProtocolError:
    return LocalProtocolError(
        f"cannot encode A-XDR {data.tag.name} (tag {int(data.tag)}): value {data.value!r} is not {expected}"
    )


def _encode(data: Data, out: bytearray, depth: int) -> None:
    tag, value = data.tag, data.value
    if not isinstance(tag, DataTag):
        raise LocalProtocolError(f"Data.tag must be a DataTag, got {tag!r}")
    out.append(tag)

    if tag in _CONTAINER_TAGS:
        if depth >= MAX_DEPTH:
            raise LocalProtocolError(f"A-XDR value nests deeper than {MAX_DEPTH} levels")
        if not isinstance(value, tuple) or not all(isinstance(item, Data) for item in value):
            raise _bad(data, "a tuple of Data")
        out += encode_length(len(value))
        for item in value:
            _encode(item, out, depth + 1)
    elif tag in _INT_FORMATS:
        fmt, low, high = _INT_FORMATS[tag]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _bad(data, f"an int {low}..{high}")
        out += struct.pack(fmt, value)
    elif tag in _FLOAT_FORMATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(data, "a float")
        try:
            real = float(value)
        except OverflowError:  # an int beyond the float64 range
            raise _bad(data, "within the float64 range") from None
        if tag is DataTag.FLOAT32 and math.isfinite(real) and abs(real) > 3.4028234663852886e38:
            raise _bad(data, "within the float32 range")
        out += struct.pack(_FLOAT_FORMATS[tag], real)
    elif tag is DataTag.OCTET_STRING:
        if not isinstance(value, bytes):
            raise _bad(data, "bytes")
        out += encode_length(len(value)) + value
    elif tag is DataTag.VISIBLE_STRING or tag is DataTag.UTF8_STRING:
        if not isinstance(value, str):
            raise _bad(data, "a str")
        try:
            raw = value.encode("latin-1" if tag is DataTag.VISIBLE_STRING else "utf-8")
        except UnicodeEncodeError as err:
            raise _bad(data, "encodable (visible-string takes characters U+0000..U+00FF)") from err
        out += encode_length(len(raw)) + raw
    elif tag is DataTag.NULL_DATA:
        if value is not None:
            raise _bad(data, "None")
    elif tag is DataTag.BOOLEAN:
        if not isinstance(value, bool):
            raise _bad(data, "a bool")
        out.append(1 if value else 0)
    elif tag is DataTag.BIT_STRING:
        if not isinstance(value, BitString) or value.length < 0 or len(value.data) != (value.length + 7) // 8:
            raise _bad(data, "a BitString with ceil(length / 8) data bytes")
        out += encode_length(value.length) + value.data
    elif tag is DataTag.DATE_TIME:
        if not isinstance(value, CosemDateTime):
            raise _bad(data, "a CosemDateTime")
        out += value.to_bytes()
    elif tag is DataTag.DATE:
        if not isinstance(value, CosemDate):
            raise _bad(data, "a CosemDate")
        out += value.to_bytes()
    else:
        if not isinstance(value, CosemTime):
            raise _bad(data, "a CosemTime")
        out += value.to_bytes()


def encode_data(data: Data) -> bytes:
    """A-XDR encoding of ``data`` (tag byte first); :class:`LocalProtocolError` if invalid."""
    out = bytearray()
    _encode(data, out, 0)
    return bytes(out)
