"""The simulated meter's COSEM application layer (server side), sans-I/O.

:class:`CosemServer` turns one received xDLMS/ACSE APDU into the answer APDU
(``handle(apdu) -> bytes | None``; ``None`` = no answer). It holds the association and a
running block transfer, knows nothing about HDLC, sockets or clocks: the meter time comes
from a callable and the values from :class:`~gateway.simulator.physics.MeterPhysics`, the
same physics the IEC 62056-21 simulator serves. :meth:`CosemServer.reset` ends the
association (a new or lost HDLC link).

Association (IEC 62056-5-3 §9.3, ACSE)
--------------------------------------
* Application context LN or SN (``referencing`` "ln", "sn" or "both"); another one is
  rejected-permanent with APPLICATION_CONTEXT_NAME_NOT_SUPPORTED.
* Mechanism none/lowest (public client) or LOW (LLS): the password must equal the meter
  password (ASCII) else AUTHENTICATION_FAILURE; HLS (mechanism 2..7) gives
  AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED. An AARQ that does not decode at all
  (ciphered context, unknown ACSE fields) is ignored (no answer).
* InitiateRequest: dlms_version < 6 rejected with ConfirmedServiceError(initiate,
  dlms-version-too-low); max_receive_pdu_size 1..15 with pdu-size-too-short; 0 means no
  limit (65535). The negotiated conformance is the client's proposal AND the server's:

  ====  ===========================================  =========  ============
  bit   name                                         LN         SN
  ====  ===========================================  =========  ============
  3     read                                                    0x100000
  11    block-transfer-with-get-or-read              0x001000
  14    multiple-references                          0x000200   0x000200
  18    parameterized-access                                    0x000020
  19    get                                          0x000010
  21    selective-access                             0x000004
  ====  ===========================================  =========  ============

  (bit n = ``1 << (23 - n)``; LN total 0x001214, SN total 0x100220). The AARE carries
  max_receive_pdu_size = ``max_pdu`` and vaa-name 0x0007 (LN) / 0xFA00 (SN); no
  mechanism name is echoed. An AARQ while associated replaces the association.
* RLRQ -> RLRE(normal), association ended.
* An xDLMS request without association: ExceptionResponse(SERVICE_NOT_ALLOWED,
  OPERATION_NOT_POSSIBLE) (IEC 62056-5-3: the service is not allowed in this state). A
  GET in an SN association or a Read in an LN one: ExceptionResponse(SERVICE_NOT_ALLOWED,
  SERVICE_NOT_SUPPORTED). An APDU that does not decode or is not a request:
  ExceptionResponse(SERVICE_UNKNOWN, OTHER_REASON).

Services
--------
* LN GET (IEC 62056-5-3 §9.3.6): normal, with-list, next. The answer's limit is
  min(client max_receive_pdu_size, ``max_pdu``). A GetResponseNormal/WithList longer than
  that goes as GetResponseWithDatablock: raw_data = the A-XDR encoding of the Data
  (normal) or of the whole ``SEQUENCE OF Get-Data-Result`` (with-list: the A-XDR count,
  then per item the choice byte 0 + Data or 1 + data-access-result), cut into pieces,
  block numbers from 1, last_block on the final one. GetRequestNext(n) must name the
  last block sent, else DATA_BLOCK_NUMBER_INVALID (and the transfer is aborted); without
  a transfer NO_LONG_GET_IN_PROGRESS. Both errors come as a datablock response
  (last_block true, block_number = the requested one). Without negotiated block
  transfer an oversized answer is GetResponseNormal(OTHER_REASON).
* SN Read (IEC 62056-5-3 §10): VariableName items and ParameterizedAccess (selector 1 or
  2 on a buffer attribute) answered in order in one ReadResponse. Items that would push
  the ReadResponse past the limit are answered with data-access-error OTHER_REASON (no
  SN block transfer).
* Unknown object/attribute: OBJECT_UNDEFINED (also class id mismatch in LN). Selective
  access on an attribute that is not a buffer, an unknown selector or a malformed
  descriptor: OTHER_REASON.

Object model (IEC 62056-6-2 interface classes)
----------------------------------------------
Every object has attribute 1 (logical_name, octet-string(6)).

==============  =====  ===  =======  ===================================================
logical name    class  ver  SN base  attributes
==============  =====  ===  =======  ===================================================
0-0:40.0.0      15/12  1/2  0xFA00   2 object_list (LN: class 15; SN: class 12)
0-0:42.0.0      1      0    0x0100   2 logical device name octet-string(16)
0-0:96.1.0      1      0    0x0120   2 serial number, octet-string of ASCII digits
1-0:0.2.0       1      0    0x0140   2 firmware version, octet-string (b"B40")
0-0:96.10.1     1      0    0x0160   2 LP status of the last period, unsigned
0-0:96.11.0     1      0    0x0180   2 last event code, long-unsigned
0-0:1.0.0       8      0    0x0200   2 time octet-string(12) UTC, deviation 0, status 0;
                                     3 time_zone long 0; 4 status unsigned 0
registers       3      0    0x1000+  2 value, 3 scaler_unit {integer, enum}
1-0:99.1.0      7      1    0x3000   2 buffer, 3 capture_objects, 4 capture_period,
1-0:99.2.0      7      1    0x3100     5 sort_method (enum 1 fifo), 6 sort_object,
0-0:99.98.0     7      1    0x3200     7 entries_in_use, 8 profile_entries
==============  =====  ===  =======  ===================================================

LN object_list entries: ``{class_id long-unsigned, version unsigned, logical_name,
access_rights {array of {attribute_id integer, access_mode enum (1 read-only),
access_selectors null-data or array of integer}, array of method access (empty)}}``.
SN object_list entries: ``{base_name long (signed: 0xFA00 is -1536), class_id, version,
logical_name}``.

Registers (class 3), SN base names 0x20 apart from 0x1000 in this order:

=========================================  =====================  ======  ============
logical name                               type                   scaler  unit
=========================================  =====================  ======  ============
1-0:1.8.0, 2.8.0 (A+, A-)                  long64-unsigned        -2      Wh (30)
1-0:3.8.0, 4.8.0 (R+, R-)                  long64-unsigned        -2      varh (32)
1-0:C.7.0 in :data:`gateway.obis.CATALOGUE` order:
1.7.0 2.7.0 21/41/61 22/42/62.7.0          double-long            0       W (27)
3.7.0 4.7.0 23/43/63 24/44/64.7.0          double-long            0       var (29)
32/52/72.7.0 voltages                      long-unsigned          -1      V (35)
31/51/71.7.0 currents                      double-long-unsigned   -3      A (33)
13.7.0, 33/53/73.7.0 power factor          long                   -3      255
14.7.0 frequency                           long-unsigned          -2      Hz (44)
1-0:1.29.0 .. 4.29.0 energy per period     double-long-unsigned   -2      Wh / varh
1-0:32/52/72.5.0 mean voltage per period   long-unsigned          -1      V
1-0:31/51/71.5.0 mean current per period   double-long-unsigned   -3      A
=========================================  =====================  ======  ============

Import/export powers are >= 0 (as the IEC simulator's values). The per-period registers
hold the last closed period's values.

Catalogue objects the simulator does not model (an instantaneous value whose quantity the
physics has no value for, e.g. a neutral current 1-0:91.7.0) are left out, as a meter
without them would: not in the object list, and a GET or Read of them is answered with
data-access-result object-undefined (4) (IEC 62056-5-3 GET §9.3.6, Read §10; DLMS Blue
Book "Data-Access-Result"). The modelled registers keep their order and base names.

Profiles (class 7): capture_objects and capture_period (double-long-unsigned, seconds):

* 1-0:99.1.0: clock 0-0:1.0.0/2, status 0-0:96.10.1/2 (class 1), 1-0:1.29.0 .. 4.29.0/2;
  period 900 (the physics period).
* 1-0:99.2.0: clock, status, 1-0:32.5.0, 52.5.0, 72.5.0, 31.5.0, 51.5.0, 71.5.0/2.
* 0-0:99.98.0: clock, 0-0:96.11.0/2 (class 1, long-unsigned); period 0.

A row's clock is the entry's end (event time). Rows are compressed as L+G meters do:
a row whose clock equals the previous row's clock + capture period, with the same
status, carries null-data as clock (the first row of every answer has its clock).
Buffer access: none = all entries; selector 1 range on the clock column, from and to
inclusive, selected_values empty = all columns; selector 2 entries 1-based, to_entry 0 =
last, columns 1-based, to_selected_value 0 = last.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.obis import CATALOGUE, Kind, Obis, ObisInfo
from gateway.protocols import apdu as ap
from gateway.protocols.apdu import CaptureObject, DataAccessResult, GetResult
from gateway.protocols.axdr import Data, DataTag, encode_data, encode_length
from gateway.protocols.cosem import (
    CLASS_CLOCK,
    CLASS_PROFILE_GENERIC,
    CLASS_REGISTER,
    CLOCK_CAPTURE,
    clock_time,
    datetime_to_data,
)
from gateway.simulator.physics import Instant, MeterPhysics, Registers

__all__ = [
    "CONFORMANCE_LN",
    "CONFORMANCE_SN",
    "REGISTERS",
    "CosemObject",
    "CosemServer",
    "Referencing",
    "RegisterSpec",
    "Snapshot",
    "register_table",
]

log = logging.getLogger(__name__)

Referencing = Literal["ln", "sn", "both"]

CLASS_DATA: Final = 1
CLASS_ASSOCIATION_SN: Final = 12
CLASS_ASSOCIATION_LN: Final = 15

# Conformance bits: bit n of the 24-bit string is 1 << (23 - n) (IEC 62056-5-3 §8.2).
_READ: Final = 1 << (23 - 3)
_BLOCK_TRANSFER_GET: Final = 1 << (23 - 11)
_MULTIPLE_REFERENCES: Final = 1 << (23 - 14)
_PARAMETERIZED_ACCESS: Final = 1 << (23 - 18)
_GET: Final = 1 << (23 - 19)
_SELECTIVE_ACCESS: Final = 1 << (23 - 21)
CONFORMANCE_LN: Final = _GET | _SELECTIVE_ACCESS | _BLOCK_TRANSFER_GET | _MULTIPLE_REFERENCES
"""0x001214: get, selective-access, block-transfer-with-get-or-read, multiple-references."""
CONFORMANCE_SN: Final = _READ | _MULTIPLE_REFERENCES | _PARAMETERIZED_ACCESS
"""0x100220: read, multiple-references, parameterized-access."""

_MIN_CLIENT_PDU: Final = 16
#: GetResponseWithDatablock bytes around raw_data: tag, choice, invoke, last, block (4),
#: result choice, length (up to 3 bytes for a PDU of at most 65535).
_BLOCK_OVERHEAD: Final = 12
_CLOCK_LN: Final = Obis(0, 0, 1, 0, 0)


def _ln(obis: Obis) -> bytes:
    return bytes((obis.a, obis.b, obis.c, obis.d, obis.e, obis.f))


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one request sees: meter time, the measurement, registers and the physics."""

    now: datetime
    instant: Instant
    registers: Registers
    physics: MeterPhysics


Getter = Callable[[Snapshot], Data]


# --------------------------------------------------------------------------- registers

_RANGES: Final[dict[DataTag, tuple[int, int]]] = {
    DataTag.UNSIGNED: (0, 0xFF),
    DataTag.LONG_UNSIGNED: (0, 0xFFFF),
    DataTag.DOUBLE_LONG_UNSIGNED: (0, 0xFFFFFFFF),
    DataTag.LONG64_UNSIGNED: (0, 2**64 - 1),
    DataTag.INTEGER: (-0x80, 0x7F),
    DataTag.LONG: (-0x8000, 0x7FFF),
    DataTag.DOUBLE_LONG: (-(2**31), 2**31 - 1),
    DataTag.LONG64: (-(2**63), 2**63 - 1),
}


def _number(tag: DataTag, value: float, factor: float, scaler: int) -> Data:
    """``value`` (physics unit) x ``factor`` (to the DLMS unit) / 10^scaler, clamped to ``tag``."""
    raw = round(value * factor * 10 ** (-scaler)) if scaler <= 0 else round(value * factor / 10**scaler)
    low, high = _RANGES[tag]
    return Data(tag, min(high, max(low, raw)))


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    """One Register (class 3): OBIS, SN base name, value type, scaler, unit and the value.

    ``get`` returns the value in the physics unit (kW, kWh, V, A ...); ``factor`` converts
    it to the DLMS unit (1000 for kW -> W) before the scaler is applied.
    """

    obis: Obis
    base_name: int
    tag: DataTag
    scaler: int
    unit: int
    factor: float
    get: Callable[[Snapshot], float]

    def value(self, snap: Snapshot) -> Data:
        return _number(self.tag, self.get(snap), self.factor, self.scaler)

    def scaler_unit(self) -> Data:
        return Data.structure([Data.int8(self.scaler), Data.enum(self.unit)])


_W, _VAR, _V, _A, _HZ, _WH, _VARH, _COUNT = 27, 29, 35, 33, 44, 30, 32, 255


@dataclass(frozen=True, slots=True)
class _Quantity:
    """How a kind of instantaneous value is encoded."""

    tag: DataTag
    scaler: int
    unit: int
    factor: float


_POWER_W: Final = _Quantity(DataTag.DOUBLE_LONG, 0, _W, 1000.0)
_POWER_VAR: Final = _Quantity(DataTag.DOUBLE_LONG, 0, _VAR, 1000.0)
_VOLTAGE: Final = _Quantity(DataTag.LONG_UNSIGNED, -1, _V, 1.0)
_CURRENT: Final = _Quantity(DataTag.DOUBLE_LONG_UNSIGNED, -3, _A, 1.0)
_PF: Final = _Quantity(DataTag.LONG, -3, _COUNT, 1.0)
_FREQUENCY: Final = _Quantity(DataTag.LONG_UNSIGNED, -2, _HZ, 1.0)


def _phase(n: int, attr: str, sign: int = 0) -> Callable[[Snapshot], float]:
    """A per-phase value; ``sign`` +1/-1 keeps only the import/export part (>= 0)."""
    if sign:
        return lambda s: max(0.0, sign * float(getattr(s.instant.phases[n], attr)))
    return lambda s: float(getattr(s.instant.phases[n], attr))


def _total(attr: str) -> Callable[[Snapshot], float]:
    return lambda s: float(getattr(s.instant, attr))


#: Instantaneous values by OBIS C (D = 7, E = 0): quantity and physics getter.
_INSTANT: Final[dict[int, tuple[_Quantity, Callable[[Snapshot], float]]]] = {
    1: (_POWER_W, _total("active_import_kw")),
    2: (_POWER_W, _total("active_export_kw")),
    3: (_POWER_VAR, _total("reactive_import_kvar")),
    4: (_POWER_VAR, _total("reactive_export_kvar")),
    13: (_PF, _total("power_factor")),
    14: (_FREQUENCY, _total("frequency_hz")),
    **{c: (_VOLTAGE, _phase(n, "voltage_v")) for n, c in enumerate((32, 52, 72))},
    **{c: (_CURRENT, _phase(n, "current_a")) for n, c in enumerate((31, 51, 71))},
    **{c: (_POWER_W, _phase(n, "active_kw", 1)) for n, c in enumerate((21, 41, 61))},
    **{c: (_POWER_W, _phase(n, "active_kw", -1)) for n, c in enumerate((22, 42, 62))},
    **{c: (_POWER_VAR, _phase(n, "reactive_kvar", 1)) for n, c in enumerate((23, 43, 63))},
    **{c: (_POWER_VAR, _phase(n, "reactive_kvar", -1)) for n, c in enumerate((24, 44, 64))},
    **{c: (_PF, _phase(n, "power_factor")) for n, c in enumerate((33, 53, 73))},
}


def _energy(attr: str) -> Callable[[Snapshot], float]:
    return lambda s: float(getattr(s.registers, attr))


def _last_lp1(attr: str) -> Callable[[Snapshot], float]:
    def get(s: Snapshot) -> float:
        entries = s.physics.load_profile_1
        return float(getattr(entries[-1], attr)) if entries else 0.0

    return get


def _last_lp2(attr: str) -> Callable[[Snapshot], float]:
    def get(s: Snapshot) -> float:
        entries = s.physics.load_profile_2
        return float(getattr(entries[-1], attr)) if entries else 0.0

    return get


def register_table(catalogue: Iterable[ObisInfo] = CATALOGUE) -> tuple[RegisterSpec, ...]:
    """The meter's registers: energies, the instantaneous values of ``catalogue`` the
    physics models (in catalogue order), the per-period values.

    Any other catalogue row is skipped rather than refused: the catalogue describes what
    the gateway can publish, the simulator is one meter, which may lack some of it.
    """
    specs: list[RegisterSpec] = []

    def add(
        obis: Obis, tag: DataTag, scaler: int, unit: int, factor: float, get: Callable[[Snapshot], float]
    ) -> None:
        specs.append(RegisterSpec(obis, 0x1000 + 0x20 * len(specs), tag, scaler, unit, factor, get))

    # A+, A-, R+, R-: (C, physics attribute, unit) of the registers and their LP1 channels.
    energies = ((1, "a_plus", _WH), (2, "a_minus", _WH), (3, "r_plus", _VARH), (4, "r_minus", _VARH))
    u64 = DataTag.LONG64_UNSIGNED
    for c, attr, unit in energies:
        add(Obis(1, 0, c, 8, 0), u64, -2, unit, 1000.0, _energy(attr))
    for info in catalogue:
        if info.kind is not Kind.INSTANTANEOUS or info.obis.d != 7:
            continue
        obis = Obis(1, 0, info.obis.c, 7, 0)
        modelled = _INSTANT.get(info.obis.c)
        # Matched as the gateway matches (group B ignored); 1-0:32.7.1 is not 1-0:32.7.0.
        if modelled is None or not info.obis.matches(obis):
            continue
        quantity, get = modelled
        add(obis, quantity.tag, quantity.scaler, quantity.unit, quantity.factor, get)
    u32 = DataTag.DOUBLE_LONG_UNSIGNED
    for c, attr, unit in energies:
        add(Obis(1, 0, c, 29, 0), u32, -2, unit, 1000.0, _last_lp1(attr))
    for c, attr in ((32, "u1"), (52, "u2"), (72, "u3")):
        add(Obis(1, 0, c, 5, 0), _VOLTAGE.tag, _VOLTAGE.scaler, _V, 1.0, _last_lp2(attr))
    for c, attr in ((31, "i1"), (51, "i2"), (71, "i3")):
        add(Obis(1, 0, c, 5, 0), _CURRENT.tag, _CURRENT.scaler, _A, 1.0, _last_lp2(attr))
    return tuple(specs)


REGISTERS: Final = register_table()
_BY_OBIS: Final = {spec.obis: spec for spec in REGISTERS}


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True, slots=True)
class _Row:
    """One buffer entry: its time (clock column), status (for compression) and other cells."""

    time: datetime
    status: int
    cells: tuple[Data, ...]


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """A Profile Generic (class 7): columns after the clock, period and row source."""

    columns: tuple[CaptureObject, ...]  # without the clock, which is always column 1
    period_s: Callable[[MeterPhysics], int]
    rows: Callable[[MeterPhysics], list[_Row]]

    @property
    def capture_objects(self) -> tuple[CaptureObject, ...]:
        return (CLOCK_CAPTURE, *self.columns)


def _capture(obis: Obis, class_id: int = CLASS_REGISTER) -> CaptureObject:
    return CaptureObject(class_id, _ln(obis), 2, 0)


_LP_STATUS: Final = Obis(0, 0, 96, 10, 1)
_EVENT_CODE: Final = Obis(0, 0, 96, 11, 0)


def _cell(spec_obis: Obis, value: float) -> Data:
    spec = _BY_OBIS[spec_obis]
    return _number(spec.tag, value, spec.factor, spec.scaler)


def _lp1_rows(physics: MeterPhysics) -> list[_Row]:
    names = [Obis(1, 0, c, 29, 0) for c in (1, 2, 3, 4)]
    return [
        _Row(
            e.end,
            int(e.status),
            (
                Data.uint8(int(e.status)),
                *(
                    _cell(n, v)
                    for n, v in zip(names, (e.a_plus, e.a_minus, e.r_plus, e.r_minus), strict=True)
                ),
            ),
        )
        for e in physics.load_profile_1
    ]


def _lp2_rows(physics: MeterPhysics) -> list[_Row]:
    names = [Obis(1, 0, c, 5, 0) for c in (32, 52, 72, 31, 51, 71)]
    return [
        _Row(
            e.end,
            int(e.status),
            (
                Data.uint8(int(e.status)),
                *(_cell(n, v) for n, v in zip(names, (e.u1, e.u2, e.u3, e.i1, e.i2, e.i3), strict=True)),
            ),
        )
        for e in physics.load_profile_2
    ]


def _event_rows(physics: MeterPhysics) -> list[_Row]:
    return [_Row(ev.time, 0, (Data.uint16(min(0xFFFF, max(0, ev.code))),)) for ev in physics.events]


def _period(physics: MeterPhysics) -> int:
    return int(physics.period.total_seconds())


_PROFILES: Final[dict[Obis, ProfileSpec]] = {
    Obis(1, 0, 99, 1, 0): ProfileSpec(
        (_capture(_LP_STATUS, CLASS_DATA), *(_capture(Obis(1, 0, c, 29, 0)) for c in (1, 2, 3, 4))),
        _period,
        _lp1_rows,
    ),
    Obis(1, 0, 99, 2, 0): ProfileSpec(
        (
            _capture(_LP_STATUS, CLASS_DATA),
            *(_capture(Obis(1, 0, c, 5, 0)) for c in (32, 52, 72, 31, 51, 71)),
        ),
        _period,
        _lp2_rows,
    ),
    Obis(0, 0, 99, 98, 0): ProfileSpec(
        (_capture(_EVENT_CODE, CLASS_DATA),),
        lambda _p: 0,
        _event_rows,
    ),
}
_PROFILE_BASES: Final = {
    Obis(1, 0, 99, 1, 0): 0x3000,
    Obis(1, 0, 99, 2, 0): 0x3100,
    Obis(0, 0, 99, 98, 0): 0x3200,
}


class _AccessError(Exception):
    """Selective access the meter cannot serve: answered with ``result``."""

    def __init__(self, result: DataAccessResult, why: str) -> None:
        super().__init__(why)
        self.result = result


def _clock_data(when: datetime) -> Data:
    """A UTC instant as octet-string(12): weekday given, deviation 0, status 0."""
    return datetime_to_data(when.astimezone(UTC), weekday=True, status=0)


def _select_rows(spec: ProfileSpec, physics: MeterPhysics, access: ap.SelectiveAccess | None) -> Data:
    """The buffer (attribute 2) for ``access`` (IEC 62056-6-2 §4.3.6, selectors 1 and 2)."""
    rows = spec.rows(physics)
    columns = list(range(len(spec.columns) + 1))  # 0 = clock
    if access is None:
        pass
    elif access.selector == 1:
        try:
            rng = ap.RangeDescriptor.from_access(access)
            lo = clock_time(rng.from_value, default_deviation=0).time
            hi = clock_time(rng.to_value, default_deviation=0).time
        except RemoteProtocolError as err:
            raise _AccessError(DataAccessResult.OTHER_REASON, f"bad range descriptor: {err}") from None
        restricting = rng.restricting_object
        if (restricting.class_id, restricting.obis, restricting.attribute_index) != (
            CLASS_CLOCK,
            CLOCK_CAPTURE.obis,
            2,
        ):
            raise _AccessError(DataAccessResult.OTHER_REASON, f"range on {restricting}, not the clock")
        rows = [r for r in rows if lo <= r.time <= hi]
        if rng.selected_values:
            wanted = [(c.class_id, c.obis, c.attribute_index) for c in spec.capture_objects]
            try:
                columns = [wanted.index((c.class_id, c.obis, c.attribute_index)) for c in rng.selected_values]
            except ValueError:
                raise _AccessError(DataAccessResult.OTHER_REASON, "selected value not captured") from None
    elif access.selector == 2:
        try:
            entry = ap.EntryDescriptor.from_access(access)
        except RemoteProtocolError as err:
            raise _AccessError(DataAccessResult.OTHER_REASON, f"bad entry descriptor: {err}") from None
        first = max(entry.from_entry, 1)
        last = len(rows) if entry.to_entry == 0 else min(entry.to_entry, len(rows))
        rows = rows[first - 1 : last]
        first_col = max(entry.from_selected_value, 1)
        last_col = (
            len(columns) if entry.to_selected_value == 0 else min(entry.to_selected_value, len(columns))
        )
        columns = columns[first_col - 1 : last_col]
    else:
        raise _AccessError(DataAccessResult.OTHER_REASON, f"access selector {access.selector}")
    period = spec.period_s(physics)
    out: list[Data] = []
    previous: _Row | None = None
    for row in rows:
        compressed = (
            previous is not None
            and period > 0
            and row.status == previous.status
            and (row.time - previous.time).total_seconds() == period
        )
        clock = Data.null() if compressed else _clock_data(row.time)
        cells = (clock, *row.cells)
        out.append(Data.structure([cells[i] for i in columns]))
        previous = row
    return Data.array(out)


# --------------------------------------------------------------------------- objects


@dataclass(frozen=True, slots=True)
class CosemObject:
    """One COSEM object: class, version, logical name, SN base name and attribute getters.

    ``buffer`` is set for Profile Generic objects: attribute 2 then takes selective access.
    """

    class_id: int
    version: int
    obis: Obis
    base_name: int
    attributes: Mapping[int, Getter]
    buffer: ProfileSpec | None = None

    @property
    def logical_name(self) -> bytes:
        return _ln(self.obis)


def _const(data: Data) -> Getter:
    return lambda _s: data


def _data_object(obis: Obis, base: int, get: Getter) -> CosemObject:
    return CosemObject(CLASS_DATA, 0, obis, base, {2: get})


def _register_object(spec: RegisterSpec) -> CosemObject:
    scaler_unit = spec.scaler_unit()
    return CosemObject(CLASS_REGISTER, 0, spec.obis, spec.base_name, {2: spec.value, 3: _const(scaler_unit)})


def _profile_object(obis: Obis, base: int, spec: ProfileSpec) -> CosemObject:
    def buffer(s: Snapshot) -> Data:
        return _select_rows(spec, s.physics, None)

    def entries(s: Snapshot) -> Data:
        return Data.uint32(len(spec.rows(s.physics)))

    return CosemObject(
        CLASS_PROFILE_GENERIC,
        1,
        obis,
        base,
        {
            2: buffer,
            3: _const(Data.array([c.to_data() for c in spec.capture_objects])),
            4: lambda s: Data.uint32(spec.period_s(s.physics)),
            5: _const(Data.enum(1)),  # fifo
            6: _const(CaptureObject(0, bytes(6), 0, 0).to_data()),  # no sort object (fifo)
            7: entries,
            8: entries,  # the buffer keeps what the physics keeps: it is always "full"
        },
        spec,
    )


def _last_status(s: Snapshot) -> Data:
    entries = s.physics.load_profile_1
    return Data.uint8(int(entries[-1].status) if entries else 0)


def _last_event(s: Snapshot) -> Data:
    events = s.physics.events
    return Data.uint16(min(0xFFFF, max(0, events[-1].code)) if events else 0)


# --------------------------------------------------------------------------- server


@dataclass(frozen=True, slots=True)
class _Association:
    context: ap.ApplicationContext
    conformance: int
    limit: int  # longest APDU we may send: min(client max PDU, ours)


@dataclass(frozen=True, slots=True)
class _Transfer:
    """A GET answer being sent in blocks: the pieces and the last block number sent."""

    pieces: tuple[bytes, ...]
    sent: int
    invoke: ap.InvokeIdAndPriority


class CosemServer:
    """The meter's COSEM server for one HDLC link (see the module docstring)."""

    def __init__(
        self,
        physics: MeterPhysics,
        now: Callable[[], datetime],
        *,
        serial_number: str = "54800102",
        model: str = "ZMD3104107.B40",
        password: str = "00000000",
        referencing: Referencing | str = "both",
        max_pdu: int = 1024,
        registers: Sequence[RegisterSpec] = REGISTERS,
    ) -> None:
        """``registers``: the meter's registers (:func:`register_table` of another
        catalogue, for a meter built from it in a test); the profiles read theirs from
        :data:`REGISTERS`."""
        if referencing not in ("ln", "sn", "both"):
            raise LocalProtocolError(f"referencing must be 'ln', 'sn' or 'both', got {referencing!r}")
        if not _MIN_CLIENT_PDU <= max_pdu <= 0xFFFF:
            raise LocalProtocolError(f"max_pdu must be {_MIN_CLIENT_PDU}..65535, got {max_pdu}")
        self.physics = physics
        self.now = now
        self.password = password.encode("ascii")
        self.referencing = referencing
        self.max_pdu = max_pdu
        self._association: _Association | None = None
        self._transfer: _Transfer | None = None
        base, _, firmware = model.partition(".")
        prefix = "LGZ" + base
        room = 16 - len(prefix)
        ldn = (prefix + serial_number[-room:].rjust(room, "0")) if room > 0 else prefix[:16]
        identity = [
            _data_object(Obis(0, 0, 42, 0, 0), 0x0100, _const(Data.octet_string(ldn.encode("ascii")))),
            _data_object(
                Obis(0, 0, 96, 1, 0), 0x0120, _const(Data.octet_string(serial_number.encode("ascii")))
            ),
            _data_object(
                Obis(1, 0, 0, 2, 0), 0x0140, _const(Data.octet_string((firmware or "B40").encode("ascii")))
            ),
            _data_object(_LP_STATUS, 0x0160, _last_status),
            _data_object(_EVENT_CODE, 0x0180, _last_event),
            CosemObject(
                CLASS_CLOCK,
                0,
                _CLOCK_LN,
                0x0200,
                {
                    2: lambda s: _clock_data(s.now),
                    3: _const(Data.int16(0)),
                    4: _const(Data.uint8(0)),
                },
            ),
        ]
        objects = identity + [_register_object(spec) for spec in registers]
        objects += [_profile_object(o, _PROFILE_BASES[o], spec) for o, spec in _PROFILES.items()]
        association = Obis(0, 0, 40, 0, 0)
        # The association object's class follows the context; the SN base name is unused in LN.
        self._ln_association = CosemObject(
            CLASS_ASSOCIATION_LN, 1, association, ap.VAA_NAME_SN, {2: lambda _s: self._ln_object_list()}
        )
        self._sn_association = CosemObject(
            CLASS_ASSOCIATION_SN, 2, association, ap.VAA_NAME_SN, {2: lambda _s: self._sn_object_list()}
        )
        self._objects = tuple(objects)
        self._by_ln: dict[tuple[int, bytes], CosemObject] = {
            (o.class_id, o.logical_name): o for o in (*objects, self._ln_association)
        }
        self._by_name: dict[int, tuple[CosemObject, int]] = {}
        for obj in (*objects, self._sn_association):
            for attr in (1, *obj.attributes):
                self._by_name[obj.base_name + 8 * (attr - 1)] = (obj, attr)

    # ----------------------------------------------------------------- object model

    @property
    def objects(self) -> tuple[CosemObject, ...]:
        """Every object but the current association (whose class depends on the context)."""
        return self._objects

    def _ln_object_list(self) -> Data:
        items = []
        for obj in (self._ln_association, *self._objects):
            attributes = [
                Data.structure(
                    [
                        Data.int8(attr),
                        Data.enum(1),  # read-only
                        Data.array([Data.int8(1), Data.int8(2)])
                        if obj.buffer is not None and attr == 2
                        else Data.null(),
                    ]
                )
                for attr in (1, *obj.attributes)
            ]
            rights = Data.structure([Data.array(attributes), Data.array([])])
            items.append(
                Data.structure(
                    [
                        Data.uint16(obj.class_id),
                        Data.uint8(obj.version),
                        Data.octet_string(obj.logical_name),
                        rights,
                    ]
                )
            )
        return Data.array(items)

    def _sn_object_list(self) -> Data:
        def signed(name: int) -> int:
            return name - 0x10000 if name >= 0x8000 else name

        return Data.array(
            [
                Data.structure(
                    [
                        Data.int16(signed(obj.base_name)),
                        Data.uint16(obj.class_id),
                        Data.uint8(obj.version),
                        Data.octet_string(obj.logical_name),
                    ]
                )
                for obj in (self._sn_association, *self._objects)
            ]
        )

    # ----------------------------------------------------------------- state

    @property
    def associated(self) -> ap.ApplicationContext | None:
        """The application context of the current association, or None."""
        return None if self._association is None else self._association.context

    def reset(self) -> None:
        """End the association and any block transfer (new or lost HDLC link)."""
        self._association = None
        self._transfer = None

    def _snapshot(self) -> Snapshot:
        now = self.now()
        self.physics.advance_to(now)
        return Snapshot(now, self.physics.instant(), self.physics.registers, self.physics)

    # ----------------------------------------------------------------- dispatch

    def handle(self, request: bytes) -> bytes | None:
        """The answer APDU to ``request``, or None when the meter does not answer."""
        try:
            apdu = ap.decode_apdu(request)
        except RemoteProtocolError as err:
            log.debug("simulated COSEM server: undecodable APDU %s: %s", request[:16].hex(" "), err)
            if request[:1] == bytes([ap.ApduTag.AARQ]):
                return None
            return self._exception(
                ap.ExceptionStateError.SERVICE_UNKNOWN, ap.ExceptionServiceError.OTHER_REASON
            )
        if isinstance(apdu, ap.Aarq):
            return self._associate(apdu).encode()
        if isinstance(apdu, ap.Rlrq):
            self.reset()
            return ap.Rlre(0).encode()
        if isinstance(apdu, ap.GetRequestNormal | ap.GetRequestNext | ap.GetRequestWithList):
            return self._get(apdu)
        if isinstance(apdu, ap.ReadRequest):
            return self._read(apdu)
        log.debug("simulated COSEM server: %s is not a request", type(apdu).__name__)
        return self._exception(ap.ExceptionStateError.SERVICE_UNKNOWN, ap.ExceptionServiceError.OTHER_REASON)

    @staticmethod
    def _exception(state: ap.ExceptionStateError, service: ap.ExceptionServiceError) -> bytes:
        return ap.ExceptionResponse(state, service).encode()

    def _service_check(self, context: ap.ApplicationContext) -> bytes | None:
        if self._association is None:
            return self._exception(
                ap.ExceptionStateError.SERVICE_NOT_ALLOWED, ap.ExceptionServiceError.OPERATION_NOT_POSSIBLE
            )
        if self._association.context is not context:
            return self._exception(
                ap.ExceptionStateError.SERVICE_NOT_ALLOWED, ap.ExceptionServiceError.SERVICE_NOT_SUPPORTED
            )
        return None

    # ----------------------------------------------------------------- association

    def _accepts(self, context: ap.ApplicationContext) -> bool:
        if context is ap.ApplicationContext.LOGICAL_NAME:
            return self.referencing in ("ln", "both")
        return self.referencing in ("sn", "both")

    def _associate(self, aarq: ap.Aarq) -> ap.Aare:
        """IEC 62056-5-3 §9.3.2 / ACSE: accept or reject the AARQ."""
        self.reset()
        user = ap.AcseServiceUserDiagnostic

        def reject(diagnostic: int, info: ap.ConfirmedServiceError | None = None) -> ap.Aare:
            return ap.Aare(aarq.context, ap.AssociationResult.REJECTED_PERMANENT, diagnostic, info)

        if not self._accepts(aarq.context):
            return reject(user.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
        mechanism = aarq.mechanism
        if mechanism not in (None, ap.AuthenticationMechanism.LOWEST, ap.AuthenticationMechanism.LOW):
            return reject(user.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED)
        if mechanism is ap.AuthenticationMechanism.LOW and aarq.password != self.password:
            return reject(user.AUTHENTICATION_FAILURE)
        initiate = aarq.initiate

        def initiate_error(code: int) -> ap.Aare:
            error = ap.ConfirmedServiceError(
                ap.ConfirmedServiceErrorChoice.INITIATE_ERROR, ap.ServiceErrorType.INITIATE, code
            )
            return reject(user.NO_REASON_GIVEN, error)

        if initiate.dlms_version < 6:
            return initiate_error(1)  # dlms-version-too-low
        client_pdu = initiate.max_receive_pdu_size or 0xFFFF  # 0: no limit
        if client_pdu < _MIN_CLIENT_PDU:
            return initiate_error(3)  # pdu-size-too-short
        ln = aarq.context is ap.ApplicationContext.LOGICAL_NAME
        conformance = initiate.conformance & (CONFORMANCE_LN if ln else CONFORMANCE_SN)
        self._association = _Association(aarq.context, conformance, min(client_pdu, self.max_pdu))
        response = ap.InitiateResponse(conformance, self.max_pdu, ap.VAA_NAME_LN if ln else ap.VAA_NAME_SN)
        return ap.Aare(aarq.context, ap.AssociationResult.ACCEPTED, user.NULL, response)

    # ----------------------------------------------------------------- attribute access

    def _value(
        self, obj: CosemObject | None, attr: int, access: ap.SelectiveAccess | None, snap: Snapshot
    ) -> GetResult:
        if obj is None:
            return DataAccessResult.OBJECT_UNDEFINED
        if attr == 1:
            value: GetResult = Data.octet_string(obj.logical_name)
        elif attr not in obj.attributes:
            return DataAccessResult.OBJECT_UNDEFINED
        elif access is not None:
            if obj.buffer is None or attr != 2:
                return DataAccessResult.OTHER_REASON
            try:
                return _select_rows(obj.buffer, snap.physics, access)
            except _AccessError as err:
                log.debug("simulated COSEM server: %s", err)
                return err.result
        else:
            value = obj.attributes[attr](snap)
        if access is not None:
            return DataAccessResult.OTHER_REASON
        return value

    # ----------------------------------------------------------------- LN GET

    def _get(self, request: ap.GetRequestNormal | ap.GetRequestNext | ap.GetRequestWithList) -> bytes:
        """IEC 62056-5-3 §9.3.6 GET service (normal, next, with-list)."""
        refused = self._service_check(ap.ApplicationContext.LOGICAL_NAME)
        if refused is not None:
            return refused
        assert self._association is not None
        if isinstance(request, ap.GetRequestNext):
            return self._next_block(request)
        self._transfer = None  # a new request aborts a long GET
        snap = self._snapshot()
        if isinstance(request, ap.GetRequestNormal):
            result = self._value(
                self._ln_object(request.descriptor), request.descriptor.attribute_id, request.access, snap
            )
            answer = ap.GetResponseNormal(result, request.invoke).encode()
            raw = encode_data(result) if isinstance(result, Data) else b""
        else:
            results = tuple(
                self._value(self._ln_object(item.descriptor), item.descriptor.attribute_id, item.access, snap)
                for item in request.items
            )
            answer = ap.GetResponseWithList(results, request.invoke).encode()
            raw = answer[3:]  # SEQUENCE OF Get-Data-Result: count + choice-tagged results
        limit = self._association.limit
        if len(answer) <= limit:
            return answer
        if not self._association.conformance & _BLOCK_TRANSFER_GET or not raw:
            return ap.GetResponseNormal(DataAccessResult.OTHER_REASON, request.invoke).encode()
        size = limit - _BLOCK_OVERHEAD
        pieces = tuple(raw[i : i + size] for i in range(0, len(raw), size))
        self._transfer = _Transfer(pieces, 1, request.invoke)
        return ap.GetResponseWithDatablock(len(pieces) == 1, 1, pieces[0], request.invoke).encode()

    def _ln_object(self, descriptor: ap.AttributeDescriptor) -> CosemObject | None:
        return self._by_ln.get((descriptor.class_id, descriptor.obis))

    def _next_block(self, request: ap.GetRequestNext) -> bytes:
        transfer = self._transfer
        if transfer is None:
            error = DataAccessResult.NO_LONG_GET_IN_PROGRESS
        elif request.block_number != transfer.sent:
            error = DataAccessResult.DATA_BLOCK_NUMBER_INVALID
        else:
            number = transfer.sent + 1
            last = number == len(transfer.pieces)
            self._transfer = None if last else _Transfer(transfer.pieces, number, transfer.invoke)
            return ap.GetResponseWithDatablock(
                last, number, transfer.pieces[number - 1], request.invoke
            ).encode()
        self._transfer = None
        return ap.GetResponseWithDatablock(True, request.block_number, error, request.invoke).encode()

    # ----------------------------------------------------------------- SN Read

    def _read(self, request: ap.ReadRequest) -> bytes:
        """IEC 62056-5-3 §10 SN Read service (variable names and parameterized access)."""
        refused = self._service_check(ap.ApplicationContext.SHORT_NAME)
        if refused is not None:
            return refused
        assert self._association is not None
        snap = self._snapshot()
        limit = self._association.limit
        size = 1 + len(encode_length(len(request.items)))
        results: list[GetResult] = []
        for item in request.items:
            obj, attr = self._by_name.get(item.name, (None, 0))
            access = None
            if isinstance(item, ap.ParameterizedAccess):
                access = ap.SelectiveAccess(item.selector, item.parameter)
            result = self._value(obj, attr, access, snap)
            encoded = 1 + (len(encode_data(result)) if isinstance(result, Data) else 1)
            if size + encoded > limit:
                result, encoded = DataAccessResult.OTHER_REASON, 2
            size += encoded
            results.append(result)
        return ap.ReadResponse(tuple(results)).encode()
