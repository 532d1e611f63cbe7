"""HistoryData in OPC UA binary, written directly from history results (OPC 10000-6 §5.2).

A year of one load-profile channel is 35,040 values. Built as asyncua DataValue, Variant
and StatusCode objects and encoded field by field, they cost the gateway's one slow core
more than reading them from the archive; packed here from the results with one
:class:`struct.Struct` per value, they cost a fraction. The bytes are exactly what
asyncua (or any stack) decodes as a ``HistoryData``: the answer goes out as an
ExtensionObject whose body is already encoded, which the stack sends as it is.

Encoding (§5.2.2.17 DataValue): a mask byte (0x01 Value, 0x02 StatusCode, 0x04
SourceTimestamp, 0x08 ServerTimestamp), then the Variant (§5.2.2.16: type byte, then the
value: Double 8 bytes IEEE 754, Int32 4 bytes, little-endian), the StatusCode (UInt32;
left out when Good, which its absence means), and the time stamps as DateTime (§5.2.2.5:
Int64, 100 ns ticks since 1601-01-01 UTC). A value-less result (BadNoData, a bound not
found) has no Variant.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from asyncua import ua

from gateway.archive.aggregates import Result

_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_TICK_US = timedelta(microseconds=1)
_VALUE, _STATUS, _SOURCE, _SERVER = 0x01, 0x02, 0x04, 0x08
_DOUBLE, _INT32 = ua.VariantType.Double.value, ua.VariantType.Int32.value
_COUNT = struct.Struct("<i")
#: The common case (a stored value, Good, one or both stamps) in one pack call each.
_GOOD_DOUBLE_ONE_STAMP = struct.Struct("<BBdq")
_GOOD_DOUBLE_BOTH = struct.Struct("<BBdqq")

HISTORY_DATA_BINARY = ua.NodeId(ua.ObjectIds.HistoryData_Encoding_DefaultBinary)


def ticks(t: datetime) -> int:
    """An aware time as OPC UA DateTime ticks (a naive one is UTC, as OPC UA says)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (t - _EPOCH) // _TICK_US * 10


def encode_history_data(results: Sequence[Result], stamps: ua.TimestampsToReturn) -> bytes:
    """The binary body of a ``HistoryData`` holding ``results``, with the stamps asked for."""
    source = stamps in (ua.TimestampsToReturn.Source, ua.TimestampsToReturn.Both)
    server = stamps in (ua.TimestampsToReturn.Server, ua.TimestampsToReturn.Both)
    stamp_bits = (_SOURCE if source else 0) | (_SERVER if server else 0)
    parts = [_COUNT.pack(len(results))]
    append = parts.append
    good_one = _GOOD_DOUBLE_ONE_STAMP.pack
    good_both = _GOOD_DOUBLE_BOTH.pack
    for r in results:
        t = ticks(r.time)
        if r.status == 0 and r.value is not None and not r.integer:
            if source and server:
                append(good_both(_VALUE | stamp_bits, _DOUBLE, r.value, t, t))
            else:
                append(good_one(_VALUE | stamp_bits, _DOUBLE, r.value, t))
            continue
        mask = stamp_bits | _STATUS if r.status else stamp_bits
        if r.value is not None:
            mask |= _VALUE
        out = [struct.pack("<B", mask)]
        if r.value is not None:
            if r.integer:
                out.append(struct.pack("<Bi", _INT32, int(r.value)))
            else:
                out.append(struct.pack("<Bd", _DOUBLE, r.value))
        if r.status:
            out.append(struct.pack("<I", r.status))
        if source:
            out.append(struct.pack("<q", t))
        if server:
            out.append(struct.pack("<q", t))
        append(b"".join(out))
    return b"".join(parts)


def history_data(results: Sequence[Result], stamps: ua.TimestampsToReturn) -> ua.ExtensionObject:
    """``HistoryReadResult.HistoryData`` for ``results``, encoded already."""
    return ua.ExtensionObject(TypeId=HISTORY_DATA_BINARY, Body=encode_history_data(results, stamps))


def to_data_value(r: Result, stamps: ua.TimestampsToReturn = ua.TimestampsToReturn.Source) -> ua.DataValue:
    """The same result as an asyncua DataValue (for callers inside the process)."""
    if r.value is None:
        value = ua.Variant()
    elif r.integer:
        value = ua.Variant(int(r.value), ua.VariantType.Int32)
    else:
        value = ua.Variant(r.value, ua.VariantType.Double)
    both = stamps == ua.TimestampsToReturn.Both
    return ua.DataValue(
        value,
        StatusCode=ua.StatusCode(r.status),
        SourceTimestamp=r.time if both or stamps == ua.TimestampsToReturn.Source else None,
        ServerTimestamp=r.time if both or stamps == ua.TimestampsToReturn.Server else None,
    )
