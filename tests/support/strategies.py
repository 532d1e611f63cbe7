"""Hypothesis strategies of the protocol cores' messages, shared by each core's round-trip
tests (tests/unit/test_axdr.py, test_apdu.py, test_cosem.py, test_hdlc.py, test_iec62056_21.py)
and the fuzz tests (tests/unit/test_fuzz_protocols.py), which encode and then mutate them.

Three strategies make A-XDR ``Data``, each for its own reader: :func:`axdr_data` every tag
over its whole range (the codec), :data:`apdu_data` the smaller values APDUs carry, and
:data:`cosem_data` the shapes the COSEM interpreters meet (12-byte octet strings: date-times).
"""

from __future__ import annotations

import string
from datetime import datetime

from hypothesis import strategies as st

from gateway.protocols.apdu import (
    Apdu,
    AttributeDescriptor,
    AttributeRequest,
    DataAccessResult,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    GetResult,
    InvokeIdAndPriority,
    ParameterizedAccess,
    ReadRequest,
    ReadResponse,
    SelectiveAccess,
    VariableName,
)
from gateway.protocols.axdr import BitString, CosemDate, CosemDateTime, CosemTime, Data, DataTag
from gateway.protocols.hdlc import Frame, FrameKind, HdlcAddress
from gateway.protocols.iec62056_21 import (
    Command,
    DataMessage,
    Identification,
    OptionSelect,
    ProfileBlock,
    ProfileTime,
    SignOnRequest,
)

# --------------------------------------------------------------------------- A-XDR


def _int_data(tag: DataTag, low: int, high: int) -> st.SearchStrategy[Data]:
    return st.integers(min_value=low, max_value=high).map(lambda v: Data(tag, v))


_optional_byte = st.one_of(st.none(), st.integers(min_value=0, max_value=0xFE))

AXDR_LEAVES: dict[DataTag, st.SearchStrategy[Data]] = {
    DataTag.NULL_DATA: st.just(Data.null()),
    DataTag.BOOLEAN: st.booleans().map(Data.boolean),
    DataTag.BIT_STRING: st.one_of(
        st.lists(st.booleans(), max_size=300).map(Data.bit_string),
        st.binary(max_size=20).flatmap(
            lambda b: st.integers(min_value=max(0, len(b) * 8 - 7), max_value=len(b) * 8).map(
                lambda n: Data(DataTag.BIT_STRING, BitString(n, b))
            )
        ),
    ),
    DataTag.DOUBLE_LONG: _int_data(DataTag.DOUBLE_LONG, -(2**31), 2**31 - 1),
    DataTag.DOUBLE_LONG_UNSIGNED: _int_data(DataTag.DOUBLE_LONG_UNSIGNED, 0, 2**32 - 1),
    DataTag.OCTET_STRING: st.binary(max_size=300).map(Data.octet_string),
    DataTag.VISIBLE_STRING: st.text(st.characters(max_codepoint=0xFF), max_size=150).map(Data.visible_string),
    DataTag.UTF8_STRING: st.text(st.characters(exclude_categories=["Cs"]), max_size=100).map(
        Data.utf8_string
    ),
    DataTag.BCD: _int_data(DataTag.BCD, 0, 255),
    DataTag.INTEGER: _int_data(DataTag.INTEGER, -128, 127),
    DataTag.LONG: _int_data(DataTag.LONG, -(2**15), 2**15 - 1),
    DataTag.UNSIGNED: _int_data(DataTag.UNSIGNED, 0, 255),
    DataTag.LONG_UNSIGNED: _int_data(DataTag.LONG_UNSIGNED, 0, 2**16 - 1),
    DataTag.LONG64: _int_data(DataTag.LONG64, -(2**63), 2**63 - 1),
    DataTag.LONG64_UNSIGNED: _int_data(DataTag.LONG64_UNSIGNED, 0, 2**64 - 1),
    DataTag.ENUM: _int_data(DataTag.ENUM, 0, 255),
    DataTag.FLOAT32: st.floats(width=32, allow_nan=False).map(Data.float32),
    DataTag.FLOAT64: st.floats(allow_nan=False).map(Data.float64),
    DataTag.DATE_TIME: st.builds(
        CosemDateTime,
        st.one_of(st.none(), st.integers(min_value=0, max_value=0xFFFE)),
        *([_optional_byte] * 7),
        st.one_of(st.none(), st.integers(min_value=-0x7FFF, max_value=0x7FFF)),
        _optional_byte,
    ).map(Data.date_time),
    DataTag.DATE: st.builds(
        CosemDate, st.one_of(st.none(), st.integers(min_value=0, max_value=0xFFFE)), *([_optional_byte] * 3)
    ).map(Data.date),
    DataTag.TIME: st.builds(CosemTime, *([_optional_byte] * 4)).map(Data.time),
}


def axdr_data(depth: int) -> st.SearchStrategy[Data]:
    """Any value of :data:`AXDR_LEAVES`, in arrays and structures up to ``depth`` deep."""
    leaf = st.one_of(*AXDR_LEAVES.values())
    if depth == 0:
        return leaf
    inner = axdr_data(depth - 1)
    return st.one_of(
        leaf,
        st.lists(inner, max_size=5).map(Data.structure),
        # Arrays of one element type, like a meter sends them.
        st.sampled_from(list(AXDR_LEAVES.values()))
        .flatmap(lambda s: st.lists(s, max_size=5))
        .map(Data.array),
        st.lists(inner, max_size=4).map(Data.array),
    )


# --------------------------------------------------------------------------- xDLMS APDUs

_APDU_INT_TAGS = {
    DataTag.INTEGER: (-(2**7), 2**7 - 1),
    DataTag.LONG: (-(2**15), 2**15 - 1),
    DataTag.DOUBLE_LONG: (-(2**31), 2**31 - 1),
    DataTag.LONG64: (-(2**63), 2**63 - 1),
    DataTag.UNSIGNED: (0, 2**8 - 1),
    DataTag.LONG_UNSIGNED: (0, 2**16 - 1),
    DataTag.DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1),
    DataTag.LONG64_UNSIGNED: (0, 2**64 - 1),
    DataTag.ENUM: (0, 255),
}
_apdu_ints = st.sampled_from(sorted(_APDU_INT_TAGS)).flatmap(
    lambda tag: st.builds(Data, st.just(tag), st.integers(*_APDU_INT_TAGS[tag]))
)
_apdu_scalars = st.one_of(
    _apdu_ints,
    st.just(Data.null()),
    st.booleans().map(Data.boolean),
    st.binary(max_size=140).map(Data.octet_string),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(Data.visible_string),
    st.floats(allow_nan=False, width=32).map(Data.float32),
    st.builds(CosemDateTime, st.integers(2000, 2099), st.integers(1, 12), st.integers(1, 28)).map(
        Data.date_time
    ),
)
apdu_data = st.recursive(
    _apdu_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5).map(Data.structure),
        st.lists(st.integers(0, 2**16 - 1).map(Data.uint16), max_size=5).map(Data.array),
    ),
    max_leaves=12,
)
invokes = st.builds(InvokeIdAndPriority, st.integers(0, 15), st.booleans(), st.booleans())
_descriptors = st.builds(
    AttributeDescriptor, st.integers(0, 0xFFFF), st.binary(min_size=6, max_size=6), st.integers(-128, 127)
)
_accesses = st.none() | st.builds(SelectiveAccess, st.integers(0, 255), apdu_data)
_requests = st.builds(AttributeRequest, _descriptors, _accesses)
_results: st.SearchStrategy[GetResult] = st.one_of(apdu_data, st.sampled_from(DataAccessResult))
apdus: st.SearchStrategy[Apdu] = st.one_of(
    st.builds(GetRequestNormal, _descriptors, _accesses, invokes),
    st.builds(GetRequestNext, st.integers(0, 2**32 - 1), invokes),
    st.builds(GetRequestWithList, st.lists(_requests, max_size=140).map(tuple), invokes),
    st.builds(GetResponseNormal, _results, invokes),
    st.builds(GetResponseWithList, st.lists(_results, max_size=6).map(tuple), invokes),
    st.builds(
        GetResponseWithDatablock,
        st.booleans(),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=300) | st.sampled_from(DataAccessResult),
        invokes,
    ),
    st.builds(
        ReadRequest,
        st.lists(
            st.builds(VariableName, st.integers(0, 0xFFFF))
            | st.builds(ParameterizedAccess, st.integers(0, 0xFFFF), st.integers(0, 255), apdu_data),
            max_size=6,
        ).map(tuple),
    ),
    st.builds(ReadResponse, st.lists(_results, max_size=6).map(tuple)),
)


# --------------------------------------------------------------------------- COSEM attribute values

_COSEM_SCALARS = st.one_of(
    st.just(Data.null()),
    st.integers(-128, 127).map(Data.int8),
    st.integers(0, 255).map(Data.enum),
    st.integers(0, 2**16 - 1).map(Data.uint16),
    st.integers(0, 2**32 - 1).map(Data.uint32),
    st.floats(allow_nan=False).map(Data.float64),
    st.booleans().map(Data.boolean),
    st.binary(max_size=14).map(Data.octet_string),
    st.binary(min_size=12, max_size=12).map(Data.octet_string),
    st.text(max_size=3).map(Data.utf8_string),
)
cosem_data = st.recursive(
    _COSEM_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5).map(Data.structure) | st.lists(inner, max_size=5).map(Data.array)
    ),
    max_leaves=20,
)


# --------------------------------------------------------------------------- HDLC

hdlc_addresses = st.one_of(
    st.builds(HdlcAddress, st.integers(0, 127)),
    st.builds(HdlcAddress, st.integers(0, 127), st.integers(0, 127), st.just(2)),
    st.builds(HdlcAddress, st.integers(0, 0x3FFF), st.integers(0, 0x3FFF), st.just(4)),
)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    kind = draw(st.sampled_from(FrameKind))
    ns = draw(st.integers(0, 7)) if kind is FrameKind.I else 0
    nr = draw(st.integers(0, 7)) if kind in (FrameKind.I, FrameKind.RR, FrameKind.RNR) else 0
    no_info = kind in (FrameKind.RR, FrameKind.RNR, FrameKind.DISC, FrameKind.DM)
    info = b"" if no_info else draw(st.binary(max_size=300))
    return Frame(
        kind,
        draw(hdlc_addresses),
        draw(hdlc_addresses),
        ns,
        nr,
        draw(st.booleans()),
        info,
        draw(st.booleans()),
    )


# --------------------------------------------------------------------------- IEC 62056-21

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
printable_text = st.text(st.sampled_from(PRINTABLE), max_size=40)
data_text = st.text(st.sampled_from(PRINTABLE + "\r\n"), max_size=300)


identifications = st.builds(
    Identification,
    manufacturer=st.text(st.sampled_from(string.ascii_letters), min_size=3, max_size=3),
    baud_char=st.sampled_from(PRINTABLE.replace("\\", "")),
    identification=printable_text.filter(lambda s: not s.startswith("\\")),
    enhanced=st.text(st.sampled_from(PRINTABLE), max_size=4),
)
sign_ons = st.builds(SignOnRequest, st.text(st.sampled_from(PRINTABLE.replace("!", "")), max_size=32))
option_selects = st.one_of(
    st.builds(OptionSelect, st.just("0"), st.sampled_from("0123456"), st.sampled_from("01")),
    st.builds(OptionSelect, st.just("2"), st.sampled_from("0123456"), st.sampled_from("2")),
)
commands = st.builds(
    Command,
    command=st.sampled_from("PWREBXYZ"),
    command_type=st.sampled_from(string.digits + string.ascii_uppercase),
    data=data_text,
    complete=st.booleans(),
)
data_messages = st.builds(DataMessage, data_text, st.booleans())


profile_times = st.builds(
    ProfileTime.from_datetime,
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)),
    st.sampled_from([-1, 0, 1, 2]),
)
field_text = st.text(st.sampled_from(PRINTABLE.replace("(", "").replace(")", "")), max_size=10)


@st.composite
def profile_blocks(draw: st.DrawFn) -> ProfileBlock:
    logbook = draw(st.booleans())
    channels = tuple(
        draw(st.lists(st.tuples(field_text, field_text), min_size=0 if logbook else 1, max_size=4))
    )
    row = st.tuples(*[field_text] * len(channels))
    rows = (draw(row),) if logbook else tuple(draw(st.lists(row, max_size=4)))
    period = 0 if logbook else draw(st.integers(1, 1440))
    code = draw(st.sampled_from(["P.01", "P.02", "P.98", "P.99"]))
    return ProfileBlock(code, draw(profile_times), draw(field_text), period, channels, rows)
