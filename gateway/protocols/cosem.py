"""COSEM interface-class interpretation (IEC 62056-6-2): attribute values -> gateway values.

Sans-I/O and pure: every function takes :class:`~gateway.protocols.axdr.Data` values the
DLMS client already read and returns plain Python values. Nothing here talks to a meter.

=======================  =====  =========================================================
Interface class          id     what this module reads
=======================  =====  =========================================================
Register                 3      value (attr 2) scaled by scaler_unit (attr 3)
Extended Register        4      as Register, plus capture_time (attr 5)
Profile Generic          7      buffer (attr 2), capture_objects (attr 3),
                                capture_period (attr 4, seconds); range/entry access
Clock                    8      time (attr 2, octet-string(12)) and its status bits
=======================  =====  =========================================================

Malformed values from the meter raise :class:`~gateway.errors.RemoteProtocolError`;
bad arguments from our own code raise :class:`~gateway.errors.LocalProtocolError`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.events import EventInfo, describe
from gateway.localtime import local_to_utc
from gateway.obis import Obis
from gateway.protocols.apdu import CaptureObject, EntryDescriptor, RangeDescriptor, SelectiveAccess
from gateway.protocols.axdr import CosemDateTime, Data, DataTag
from gateway.units import BY_DLMS_CODE, DLMS_UNIT_TEXT, Unit

__all__ = [
    "CLASS_CLOCK",
    "CLASS_EXTENDED_REGISTER",
    "CLASS_PROFILE_GENERIC",
    "CLASS_REGISTER",
    "CLOCK_CAPTURE",
    "EVENT_LOGS",
    "ClockStatus",
    "ClockTime",
    "ProfileRow",
    "RegisterValue",
    "ScalerUnit",
    "StandardEvent",
    "capture_objects",
    "capture_period",
    "clock_time",
    "datetime_to_data",
    "entry_access",
    "event_code",
    "event_info",
    "logical_name",
    "profile_rows",
    "range_access",
    "register_value",
    "scaled",
]

CLASS_REGISTER: Final = 3
CLASS_EXTENDED_REGISTER: Final = 4
CLASS_PROFILE_GENERIC: Final = 7
CLASS_CLOCK: Final = 8

CLOCK_CAPTURE: Final = CaptureObject(CLASS_CLOCK, bytes([0, 0, 1, 0, 0, 255]), 2, 0)
"""Capture object of the standard clock 0-0:1.0.0*255, attribute 2 (time)."""

_INT_TAGS: Final = frozenset(
    {
        DataTag.DOUBLE_LONG,
        DataTag.DOUBLE_LONG_UNSIGNED,
        DataTag.INTEGER,
        DataTag.LONG,
        DataTag.UNSIGNED,
        DataTag.LONG_UNSIGNED,
        DataTag.LONG64,
        DataTag.LONG64_UNSIGNED,
    }
)
_UNSIGNED_TAGS: Final = frozenset(
    {DataTag.UNSIGNED, DataTag.LONG_UNSIGNED, DataTag.DOUBLE_LONG_UNSIGNED, DataTag.LONG64_UNSIGNED}
)
_FLOAT_TAGS: Final = frozenset({DataTag.FLOAT32, DataTag.FLOAT64})


def _structure(data: Data, count: int, what: str) -> tuple[Data, ...]:
    if data.tag is not DataTag.STRUCTURE or not isinstance(data.value, tuple) or len(data.value) != count:
        raise RemoteProtocolError(f"{what} must be a structure of {count} elements, got {data!r}")
    return data.value


def _array(data: Data, what: str) -> tuple[Data, ...]:
    if data.tag is not DataTag.ARRAY or not isinstance(data.value, tuple):
        raise RemoteProtocolError(f"{what} must be an array, got {data.tag.name}")
    return data.value


def _int(data: Data, tags: frozenset[DataTag], what: str) -> int:
    if data.tag not in tags or isinstance(data.value, bool) or not isinstance(data.value, int):
        names = "/".join(sorted(t.name for t in tags))
        raise RemoteProtocolError(f"{what} must be {names}, got {data.tag.name}")
    return data.value


# -- scaler_unit (Register attribute 3) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScalerUnit:
    """Register attribute 3: ``structure {integer scaler, enum unit}``; value = raw x 10^scaler."""

    scaler: int
    unit: int

    @classmethod
    def from_data(cls, data: Data) -> ScalerUnit:
        """Parse the attribute-3 structure; :class:`RemoteProtocolError` if malformed."""
        scaler, unit = _structure(data, 2, "scaler_unit")
        return cls(
            _int(scaler, frozenset({DataTag.INTEGER}), "scaler_unit scaler"),
            _int(unit, frozenset({DataTag.ENUM}), "scaler_unit unit"),
        )

    def to_data(self) -> Data:
        """The attribute-3 structure (inverse of :meth:`from_data`)."""
        if not -128 <= self.scaler <= 127 or not 0 <= self.unit <= 255:
            raise LocalProtocolError(f"scaler must be -128..127 and unit 0..255, got {self}")
        return Data.structure([Data.int8(self.scaler), Data.enum(self.unit)])

    @property
    def unit_info(self) -> Unit | None:
        """The gateway unit for the DLMS unit code, ``None`` when the code is not mapped."""
        return BY_DLMS_CODE.get(self.unit)

    @property
    def unit_text(self) -> str | None:
        """Unit text (``"Wh"``, ``"varh"``, ``"V"``), ``None`` when the code is not mapped."""
        return DLMS_UNIT_TEXT.get(self.unit)


def scaled(raw: Data, su: ScalerUnit) -> float:
    """``raw`` x 10^scaler for integer and float values; :class:`RemoteProtocolError` otherwise."""
    if raw.tag in _INT_TAGS and isinstance(raw.value, int) and not isinstance(raw.value, bool):
        number: float = raw.value
    elif raw.tag in _FLOAT_TAGS and isinstance(raw.value, float):
        number = raw.value
    else:
        raise RemoteProtocolError(f"register value must be an integer or float, got {raw.tag.name}")
    if su.scaler >= 0:
        return float(number * 10**su.scaler)
    # Divide by the exact power of ten: 2301 * 10**-1 would give 230.10000000000002.
    return float(number / 10 ** (-su.scaler))


# -- Clock (class 8) --------------------------------------------------------------------------


class ClockStatus(enum.IntFlag):
    """Clock status bits of a COSEM date-time (IEC 62056-6-2 clock_status)."""

    INVALID_VALUE = 0x01
    DOUBTFUL_VALUE = 0x02
    DIFFERENT_CLOCK_BASE = 0x04
    INVALID_CLOCK_STATUS = 0x08
    DAYLIGHT_SAVING_ACTIVE = 0x80


@dataclass(frozen=True, slots=True)
class ClockTime:
    """A decoded clock value: the instant in UTC and the clock status (``None`` = not specified)."""

    time: datetime
    status: ClockStatus | None


def _date_time(data: Data, what: str) -> CosemDateTime:
    if data.tag is DataTag.DATE_TIME and isinstance(data.value, CosemDateTime):
        return data.value
    if data.tag is DataTag.OCTET_STRING and isinstance(data.value, bytes):
        if len(data.value) != 12:
            raise RemoteProtocolError(f"{what} must be an octet-string of 12 bytes, got {len(data.value)}")
        return CosemDateTime.from_bytes(data.value)
    raise RemoteProtocolError(f"{what} must be an octet-string(12) or date-time, got {data.tag.name}")


def clock_time(data: Data, *, default_deviation: int | None = None, zone: tzinfo | None = None) -> ClockTime:
    """Clock attribute 2 (octet-string(12) or date-time) -> aware UTC instant and status.

    The deviation is minutes from local time to UTC (UTC+1 = -60). When the meter leaves
    it unspecified, the meter's local ``zone`` converts it (its clock status bit
    "daylight saving active" picks the hour on the autumn change day), else
    ``default_deviation`` is used; without either that is a :class:`RemoteProtocolError`,
    as is any unspecified or impossible date/time field.
    """
    cdt = _date_time(data, "clock time")
    if cdt.deviation is None and zone is not None:
        if cdt.year is None or cdt.month is None or cdt.day is None or cdt.hour is None or cdt.minute is None:
            raise RemoteProtocolError(f"clock time {cdt} leaves date or time unspecified")
        try:
            naive = datetime(
                cdt.year,
                cdt.month,
                cdt.day,
                cdt.hour,
                cdt.minute,
                cdt.second or 0,
                (cdt.hundredths or 0) * 10_000,
            )
        except ValueError as err:
            raise RemoteProtocolError(f"clock time {cdt} is not a valid local time: {err}") from err
        dst = None if cdt.status is None else bool(cdt.status & ClockStatus.DAYLIGHT_SAVING_ACTIVE)
        status = None if cdt.status is None else ClockStatus(cdt.status)
        try:
            return ClockTime(local_to_utc(naive, zone, dst), status)
        except OverflowError as err:  # local 0001-01-01 east of UTC, 9999-12-31 west of it
            raise RemoteProtocolError(f"clock time {cdt} is outside the representable range") from err
    if cdt.deviation is None:
        if default_deviation is None:
            raise RemoteProtocolError(f"clock time {cdt} has no deviation (time zone unknown)")
        cdt = CosemDateTime(
            cdt.year,
            cdt.month,
            cdt.day,
            cdt.weekday,
            cdt.hour,
            cdt.minute,
            cdt.second,
            cdt.hundredths,
            default_deviation,
            cdt.status,
        )
    local = cdt.to_datetime()
    status = None if cdt.status is None else ClockStatus(cdt.status)
    try:
        return ClockTime(local.astimezone(UTC), status)
    except OverflowError as err:
        raise RemoteProtocolError(f"clock time {cdt} is outside the representable range") from err


def datetime_to_data(dt: datetime | CosemDateTime, *, weekday: bool = False, status: int | None = 0) -> Data:
    """An aware ``dt`` as the octet-string(12) a clock attribute or range bound carries.

    The weekday is sent as "not specified" unless ``weekday`` is true. A ready-made
    :class:`CosemDateTime` is encoded as it is.
    """
    if isinstance(dt, CosemDateTime):
        return Data.octet_string(dt.to_bytes())
    if dt.utcoffset() is None:
        raise LocalProtocolError(f"datetime {dt} must be aware (the meter needs the deviation)")
    cdt = CosemDateTime.from_datetime(dt, status)
    if not weekday:
        cdt = CosemDateTime(
            cdt.year,
            cdt.month,
            cdt.day,
            None,
            cdt.hour,
            cdt.minute,
            cdt.second,
            cdt.hundredths,
            cdt.deviation,
            cdt.status,
        )
    return Data.octet_string(cdt.to_bytes())


# -- Register / Extended Register (classes 3, 4) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterValue:
    """A scaled register value, its DLMS unit code and (Extended Register) capture time in UTC."""

    value: float
    unit_code: int
    capture_time: datetime | None = None

    @property
    def unit_text(self) -> str | None:
        return DLMS_UNIT_TEXT.get(self.unit_code)


def register_value(
    value: Data, scaler_unit: Data | ScalerUnit, capture_time: Data | None = None
) -> RegisterValue:
    """Register attribute 2 with attribute 3 (and Extended Register attribute 5 if given).

    A null-data capture time (never captured) gives ``None``.
    """
    su = scaler_unit if isinstance(scaler_unit, ScalerUnit) else ScalerUnit.from_data(scaler_unit)
    when: datetime | None = None
    if capture_time is not None and capture_time.tag is not DataTag.NULL_DATA:
        when = clock_time(capture_time).time
    return RegisterValue(scaled(value, su), su.unit, when)


# -- Profile Generic (class 7) -----------------------------------------------------------------


def logical_name(capture: CaptureObject) -> Obis:
    """The OBIS code of a capture object's logical name."""
    raw = capture.obis
    if len(raw) != 6:
        raise RemoteProtocolError(f"logical name must be 6 bytes, got {raw!r}")
    return Obis(*raw)


def capture_objects(data: Data) -> tuple[CaptureObject, ...]:
    """Profile attribute 3: array of capture_object_definition structures."""
    return tuple(CaptureObject.from_data(item) for item in _array(data, "capture_objects"))


def capture_period(data: Data) -> int:
    """Profile attribute 4: capture period in seconds (0 = asynchronous capture)."""
    return _int(data, _UNSIGNED_TAGS, "capture_period")


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One buffer entry: UTC timestamp, clock status, status columns (int) and scaled values.

    ``values`` holds every other column by logical name: a float (scaled by the column's
    :class:`ScalerUnit` when one is given, else the raw number) or ``None`` for null-data.
    """

    timestamp: datetime
    clock_status: ClockStatus | None
    status: Mapping[Obis, int]
    values: Mapping[Obis, float | None]


def _is_clock(capture: CaptureObject) -> bool:
    return capture.class_id == CLASS_CLOCK and capture.attribute_index == 2


def _is_status(capture: CaptureObject) -> bool:
    obis = logical_name(capture)
    return obis.c == 96 and obis.d == 10  # profile / AMR status 0-x:96.10.n


def profile_rows(
    buffer: Data,
    columns: Sequence[CaptureObject],
    period_s: int,
    scalers: Mapping[Obis, ScalerUnit] | None = None,
    zone: tzinfo | None = None,
) -> list[ProfileRow]:
    """Profile attribute 2 (array of row structures) -> rows with UTC timestamps.

    The clock column (class 8, attribute 2) may be null-data in every row but the first
    (compressed profile): the timestamp is then the previous one plus ``period_s``.
    Status columns (OBIS C.D = 96.10) stay integers; every other column is scaled by its
    entry in ``scalers`` (by logical name).
    """
    scalers = scalers or {}
    clock_cols = [i for i, c in enumerate(columns) if _is_clock(c)]
    if not clock_cols:
        raise RemoteProtocolError("profile has no clock column (class 8, attribute 2)")
    clock_col = clock_cols[0]
    names = [logical_name(c) for c in columns]
    other = [i for i in range(len(columns)) if i != clock_col]
    if len({names[i] for i in other}) != len(other):
        raise RemoteProtocolError(f"profile columns repeat a logical name: {[str(n) for n in names]}")
    if period_s < 0:
        raise LocalProtocolError(f"capture period must not be negative, got {period_s}")

    rows: list[ProfileRow] = []
    previous: datetime | None = None
    for number, row in enumerate(_array(buffer, "profile buffer"), start=1):
        cells = _structure(row, len(columns), f"profile row {number}")
        stamp = cells[clock_col]
        clock_status: ClockStatus | None = None
        if stamp.tag is DataTag.NULL_DATA:
            if previous is None:
                raise RemoteProtocolError(f"profile row {number} has no time and no earlier row to follow")
            if period_s == 0:
                raise RemoteProtocolError(f"profile row {number} has no time and the capture period is 0")
            try:
                timestamp = previous + timedelta(seconds=period_s)
            except OverflowError as err:
                raise RemoteProtocolError(f"profile row {number} time is out of range") from err
        else:
            decoded = clock_time(stamp, zone=zone)
            timestamp, clock_status = decoded.time, decoded.status
        status: dict[Obis, int] = {}
        values: dict[Obis, float | None] = {}
        for i in other:
            cell, name = cells[i], names[i]
            if _is_status(columns[i]):
                status[name] = _int(cell, _INT_TAGS, f"profile row {number} status {name}")
            elif cell.tag is DataTag.NULL_DATA:
                values[name] = None
            else:
                values[name] = scaled(cell, scalers.get(name, ScalerUnit(0, 255)))
        rows.append(ProfileRow(timestamp, clock_status, status, values))
        previous = timestamp
    return rows


def range_access(
    clock_object: CaptureObject,
    start: datetime | CosemDateTime,
    end: datetime | CosemDateTime,
    *,
    columns: Sequence[CaptureObject] = (),
    status: int | None = 0,
) -> SelectiveAccess:
    """Selective access 1 (range descriptor) on ``clock_object`` from ``start`` to ``end``.

    Aware datetimes are sent with their UTC offset as deviation, weekday unspecified and
    the given clock ``status``; pass :class:`CosemDateTime` values for full control.
    ``columns`` empty selects every column.
    """
    if isinstance(start, datetime) and isinstance(end, datetime) and start > end:
        raise LocalProtocolError(f"range start {start} is after its end {end}")
    return RangeDescriptor(
        clock_object,
        datetime_to_data(start, status=status),
        datetime_to_data(end, status=status),
        tuple(columns),
    ).to_access()


def entry_access(from_entry: int, to_entry: int, from_column: int = 1, to_column: int = 0) -> SelectiveAccess:
    """Selective access 2 (entry descriptor): entries 1-based, ``to_entry`` 0 = last entry."""
    if to_entry != 0 and from_entry > to_entry:
        raise LocalProtocolError(f"entry range {from_entry}..{to_entry} is empty")
    return EntryDescriptor(from_entry, to_entry, from_column, to_column).to_access()


# -- event logs ------------------------------------------------------------------------------


class StandardEvent(enum.IntEnum):
    """Standard event log codes (numbering of :mod:`gateway.events`)."""

    POWER_DOWN = 1
    POWER_UP = 2
    DAYLIGHT_SAVING_CHANGED = 3
    CLOCK_ADJUSTED_OLD_TIME = 4
    CLOCK_ADJUSTED_NEW_TIME = 5
    TERMINAL_COVER_OPENED = 40
    TERMINAL_COVER_CLOSED = 41


EVENT_LOGS: Final[Mapping[Obis, str]] = {
    Obis(0, 0, 99, 98, 0): "Standard event log",
    Obis(0, 0, 99, 98, 1): "Fraud detection event log",
    Obis(0, 0, 99, 98, 2): "Disconnector control event log",
    Obis(0, 0, 99, 98, 4): "Power quality event log",
}
"""Event-log profiles (class 7) by logical name; their event code objects are 0-0:96.11.n."""


def event_code(data: Data) -> int:
    """An event code column value (unsigned / long-unsigned / enum) as an int."""
    return _int(data, _UNSIGNED_TAGS | {DataTag.ENUM}, "event code")


def event_info(data: Data) -> EventInfo:
    """Name and severity of an event code column value (unknown codes get a generic entry)."""
    return describe(event_code(data))
