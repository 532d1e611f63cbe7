"""Fuzzing every protocol core in each role it has (issue 7), short run for ``make test``.

Bytes from the peer may only make a core raise RemoteProtocolError, and our own calls
only LocalProtocolError: never IndexError, struct.error, UnicodeDecodeError, ValueError,
KeyError, OverflowError or RecursionError, never a hang, never a buffer that keeps growing.
Each group below feeds one core in one role (the targets of ``tests/support/fuzz_targets.py``):

* real frames (tests/fixtures: captures, published traces, vectors) and frames the cores
  produce themselves, mutated (flips, insertions, deletions, truncations, duplicated and
  swapped chunks, splices, long runs, checksums repaired or not);
* messages Hypothesis generates with the strategies of the cores' own round-trip tests
  (``tests/support/strategies.py``), encoded by the sending role and then mutated;
* plain random bytes;
* for the sending side: values that do not fit the protocol must give LocalProtocolError.

Inputs go in whole, byte by byte or in random pieces, to a connection put by a real
exchange into one of the protocol's states. Settings are fixed (``derandomize``, a fixed
number of examples) so the run is the same every time; ``python -m bench.fuzz`` runs the
same targets for a million inputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from gateway.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from gateway.protocols import apdu as ap
from gateway.protocols import axdr, cosem, hdlc
from gateway.protocols import iec62056_21 as iec
from tests.support.fuzz_targets import (
    TARGETS,
    Target,
    check,
    drain_hdlc,
    fuzz_input,
    hdlc_connected,
    iec_wire,
    mutate,
)
from tests.support.strategies import (
    apdu_data,
    apdus,
    axdr_data,
    commands,
    cosem_data,
    data_messages,
    frames,
    identifications,
    invokes,
    option_selects,
    profile_blocks,
    sign_ons,
)


def fuzz(examples: int) -> Any:
    """Reproducible Hypothesis settings: fixed examples, derandomized, no database, no deadline."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


rngs = st.randoms(use_true_random=False)


def run(target: Target, data: bytes, rnd: random.Random) -> list[ProtocolError]:
    """One input through ``target``; only protocol errors may come back (as refusals)."""
    note(f"{target.key} input ({len(data)} bytes): {data.hex()}")
    return check(target, data, rnd)


def varied(target: Target, wire: bytes, rnd: random.Random) -> bytes:
    """A generated message as sent, or mutated (with its checksums repaired or not)."""
    if rnd.random() < 0.6:
        wire = mutate(wire, rnd, target.seeds(), target.tokens)
        if target.repair is not None and rnd.random() < 0.5:
            wire = target.repair(wire)
    return wire


def only_local_errors(call: Any, *args: Any) -> None:
    """Our own misuse may raise LocalProtocolError, nothing else."""
    with contextlib.suppress(LocalProtocolError):
        call(*args)


# --------------------------------------------------------------------------- IEC 62056-21

IEC_CLIENT = TARGETS["iec62056-21/client"]
IEC_METER = TARGETS["iec62056-21/meter"]
_Y2000, _Y2099 = datetime(2000, 1, 1), datetime(2099, 12, 31)

meter_messages = st.one_of(
    identifications,
    data_messages,
    st.builds(iec.Command, st.just("P"), st.just("0"), st.text(st.sampled_from("0123456789()"), max_size=20)),
    st.sampled_from([iec.Ack(), iec.Nak(), iec.Break]),
)
client_messages = st.one_of(
    sign_ons,
    option_selects,
    commands,
    st.builds(
        iec.profile_request,
        st.sampled_from(["P.01", "P.02", "P.98"]),
        st.none()
        | st.builds(iec.ProfileTime.from_datetime, st.datetimes(_Y2000, _Y2099), st.integers(-1, 2)),
        st.none(),
    ),
    st.sampled_from([iec.Ack(), iec.Nak(), iec.Break]),
)
any_text = st.text(max_size=12) | st.text(st.characters(max_codepoint=0x7F), max_size=40)
any_iec_event = st.one_of(
    st.builds(iec.SignOnRequest, any_text),
    st.builds(iec.Identification, any_text, any_text, any_text, any_text),
    st.builds(iec.OptionSelect, any_text, any_text, any_text),
    st.builds(iec.DataMessage, any_text, st.booleans()),
    st.builds(iec.Command, any_text, any_text, any_text, st.booleans()),
)


class TestIec21Client:
    """The gateway's IEC 62056-21 connection reading what a meter (or line noise) sends."""

    @fuzz(300)
    @given(rnd=rngs)
    def test_mutated_real_and_own_meter_messages(self, rnd: random.Random) -> None:
        run(IEC_CLIENT, fuzz_input(IEC_CLIENT, rnd), rnd)

    @fuzz(150)
    @given(message=meter_messages, rnd=rngs)
    def test_generated_meter_messages(self, message: iec.Event, rnd: random.Random) -> None:
        run(IEC_CLIENT, varied(IEC_CLIENT, iec_wire(iec.Role.METER, message), rnd), rnd)

    @fuzz(100)
    @given(blocks=st.lists(profile_blocks(), min_size=1, max_size=3), rnd=rngs)
    def test_generated_profile_answers(self, blocks: list[iec.ProfileBlock], rnd: random.Random) -> None:
        answer = iec.DataMessage(iec.format_profile(blocks))
        run(IEC_CLIENT, varied(IEC_CLIENT, iec_wire(iec.Role.METER, answer), rnd), rnd)

    @fuzz(100)
    @given(
        block=profile_blocks().filter(lambda b: b.period_minutes > 0),
        period=st.integers(1, 999_999_999),
        rows=st.integers(0, 12),
    )
    def test_generated_profiles_with_any_period(
        self, block: iec.ProfileBlock, period: int, rows: int
    ) -> None:
        """Any period the header can state, any number of rows: row times or a refusal."""
        block = dataclasses.replace(block, period_minutes=period, rows=(("0",) * len(block.channels),) * rows)
        for parsed in iec.parse_profile(iec.format_profile([block])):
            for index in range(len(parsed.rows) + 1):
                with contextlib.suppress(RemoteProtocolError):
                    parsed.row_time(index)

    @fuzz(100)
    @given(data=st.binary(max_size=300), rnd=rngs)
    def test_random_bytes(self, data: bytes, rnd: random.Random) -> None:
        run(IEC_CLIENT, data, rnd)

    @fuzz(100)
    @given(event=any_iec_event)
    def test_sending_what_does_not_fit_is_a_local_error(self, event: iec.Event) -> None:
        only_local_errors(iec_wire, iec.Role.CLIENT, event)


class TestIec21Meter:
    """The simulated meter's IEC 62056-21 connection reading what a client sends."""

    @fuzz(300)
    @given(rnd=rngs)
    def test_mutated_real_and_own_client_messages(self, rnd: random.Random) -> None:
        run(IEC_METER, fuzz_input(IEC_METER, rnd), rnd)

    @fuzz(150)
    @given(message=client_messages, rnd=rngs)
    def test_generated_client_messages(self, message: iec.Event, rnd: random.Random) -> None:
        run(IEC_METER, varied(IEC_METER, iec_wire(iec.Role.CLIENT, message), rnd), rnd)

    @fuzz(100)
    @given(data=st.binary(max_size=300), rnd=rngs)
    def test_random_bytes(self, data: bytes, rnd: random.Random) -> None:
        run(IEC_METER, data, rnd)

    @fuzz(100)
    @given(event=any_iec_event)
    def test_sending_what_does_not_fit_is_a_local_error(self, event: iec.Event) -> None:
        only_local_errors(iec_wire, iec.Role.METER, event)

    @fuzz(150)
    @given(
        stamp=st.builds(iec.ProfileTime, *[st.integers(-5, 10_000)] * 6, st.integers(-3, 3)),
        code=any_text,
        period=st.integers(-10, 10**6),
        fields=st.lists(any_text, max_size=4),
    )
    def test_formatting_what_does_not_fit_is_a_local_error(
        self, stamp: iec.ProfileTime, code: str, period: int, fields: list[str]
    ) -> None:
        channels = tuple(zip(fields[0::2], fields[1::2], strict=False))
        block = iec.ProfileBlock(code, stamp, "00", period, channels, (tuple(fields[: len(channels)]),))
        only_local_errors(iec.format_profile, [block])
        only_local_errors(iec.profile_request, code, stamp, None)
        only_local_errors(iec.format_data_set, iec.DataSet(code, tuple(fields), code))


@pytest.mark.parametrize(
    "header",
    [f"P.01(0240315081500)(00)(15)({'1' * 4301})", f"P.01(0240315081500)(00)({'1' * 4301})(1)(1.5.0)(kW)"],
    ids=["count", "period"],
)
def test_iec_profile_header_number_beyond_int_conversion_is_refused(header: str) -> None:
    """Regression: a 4301-digit count or period made int() raise ValueError (found by bench.fuzz)."""
    with pytest.raises(RemoteProtocolError, match="is not a number"):
        iec.parse_profile(header + "\r\n")


def test_iec_profile_row_beyond_9999_is_refused() -> None:
    """Regression: a huge period put a row past datetime's range: OverflowError (found by Hypothesis)."""
    (block,) = iec.parse_profile("P.01(000101000000)(00)(350632800)(1)(1.5.0)(kW)\r\n" + "(0)\r\n" * 12)
    assert block.row_time(11).year == 9333
    with pytest.raises(RemoteProtocolError, match="beyond 9999"):
        block.row_time(12)


# --------------------------------------------------------------------------- HDLC

HDLC_CLIENT = TARGETS["hdlc/client"]
HDLC_SERVER = TARGETS["hdlc/server"]
CLIENT_ADDRESS = hdlc.HdlcAddress(16)
SERVER_ADDRESS = hdlc.HdlcAddress(1, 17, 2)


def addressed_to(role: hdlc.Role) -> st.SearchStrategy[hdlc.Frame]:
    """The HDLC round-trip test's frames, mostly readdressed to a connection of ``role``."""
    ends = (CLIENT_ADDRESS, SERVER_ADDRESS) if role is hdlc.Role.CLIENT else (SERVER_ADDRESS, CLIENT_ADDRESS)
    return st.tuples(frames(), st.booleans()).map(
        lambda pair: dataclasses.replace(pair[0], destination=ends[0], source=ends[1]) if pair[1] else pair[0]
    )


def segment_flood(role: hdlc.Role, count: int, size: int) -> list[bytes]:
    """A peer that keeps sending segments of one APDU with the right sequence numbers."""
    ours, peer = (
        (CLIENT_ADDRESS, SERVER_ADDRESS) if role is hdlc.Role.CLIENT else (SERVER_ADDRESS, CLIENT_ADDRESS)
    )
    llc = hdlc.LLC_RESPONSE if role is hdlc.Role.CLIENT else hdlc.LLC_REQUEST
    pieces = [(llc if n == 0 else b"") + bytes(size) for n in range(count)]
    return [
        hdlc.encode_frame(
            hdlc.Frame(hdlc.FrameKind.I, ours, peer, ns=n % 8, information=piece, segmented=True)
        )
        for n, piece in enumerate(pieces)
    ]


class TestHdlcClient:
    """The gateway's HDLC connection reading what a meter sends, in every link state."""

    @fuzz(300)
    @given(rnd=rngs)
    def test_mutated_real_and_own_meter_frames(self, rnd: random.Random) -> None:
        run(HDLC_CLIENT, fuzz_input(HDLC_CLIENT, rnd), rnd)

    @fuzz(150)
    @given(frames=st.lists(addressed_to(hdlc.Role.CLIENT), min_size=1, max_size=4), rnd=rngs)
    def test_generated_frames(self, frames: list[hdlc.Frame], rnd: random.Random) -> None:
        wire = b"".join(hdlc.encode_frame(f) for f in frames)
        run(HDLC_CLIENT, varied(HDLC_CLIENT, wire, rnd), rnd)

    @fuzz(100)
    @given(data=st.binary(max_size=300), rnd=rngs)
    def test_random_bytes(self, data: bytes, rnd: random.Random) -> None:
        run(HDLC_CLIENT, data, rnd)

    @fuzz(60)
    @given(
        apdu=st.binary(max_size=3000),
        limits=st.tuples(*[st.integers(-1, 2**33)] * 2, *[st.integers(-1, 9)] * 2),
    )
    def test_sending_what_does_not_fit_is_a_local_error(self, apdu: bytes, limits: tuple[int, ...]) -> None:
        conn = hdlc_connected(hdlc.Role.CLIENT)
        only_local_errors(conn.send_data, apdu)
        only_local_errors(conn.send_data, apdu)  # the first may still be waiting for RR
        only_local_errors(lambda: conn.connect(hdlc.HdlcParameters(*limits)))


class TestHdlcServer:
    """The meter's HDLC connection reading what a client sends, in every link state."""

    @fuzz(300)
    @given(rnd=rngs)
    def test_mutated_real_and_own_client_frames(self, rnd: random.Random) -> None:
        run(HDLC_SERVER, fuzz_input(HDLC_SERVER, rnd), rnd)

    @fuzz(150)
    @given(frames=st.lists(addressed_to(hdlc.Role.SERVER), min_size=1, max_size=4), rnd=rngs)
    def test_generated_frames(self, frames: list[hdlc.Frame], rnd: random.Random) -> None:
        wire = b"".join(hdlc.encode_frame(f) for f in frames)
        run(HDLC_SERVER, varied(HDLC_SERVER, wire, rnd), rnd)

    @fuzz(100)
    @given(data=st.binary(max_size=300), rnd=rngs)
    def test_random_bytes(self, data: bytes, rnd: random.Random) -> None:
        run(HDLC_SERVER, data, rnd)

    @fuzz(40)
    @given(apdu=st.binary(max_size=3000))
    def test_sending_what_does_not_fit_is_a_local_error(self, apdu: bytes) -> None:
        conn = hdlc_connected(hdlc.Role.SERVER)
        only_local_errors(conn.send_data, apdu)
        only_local_errors(conn.send_data, apdu)
        only_local_errors(conn.connect)  # the meter never sends SNRM


@pytest.mark.parametrize("role", list(hdlc.Role), ids=lambda r: r.value)
def test_hdlc_endless_segmented_apdu_is_refused(role: hdlc.Role) -> None:
    """Regression: a peer streaming segments made the reassembly grow without bound.

    drain_hdlc() checks after every frame that the connection keeps at most the largest
    xDLMS APDU (65535 bytes and the LLC header); the core must refuse the rest.
    """
    conn = hdlc_connected(role)
    refusals: list[ProtocolError] = []
    for wire in segment_flood(role, count=80, size=1000):  # 80 kB in one "APDU"
        conn.receive_data(wire)
        drain_hdlc(conn, random.Random(0), refusals, budget=10)  # raises if it keeps too much
    assert any("longer than 65535 bytes" in str(err) for err in refusals), refusals


# --------------------------------------------------------------------------- A-XDR

AXDR = TARGETS["axdr/both"]
NUMBER_TAGS = {t for t in axdr.DataTag if "LONG" in t.name or "FLOAT" in t.name or "INT" in t.name}
NUMBER_TAGS |= {axdr.DataTag.UNSIGNED, axdr.DataTag.ENUM, axdr.DataTag.BCD}
huge_ints = st.sampled_from([2**64, -(2**63) - 1, 2**1100, -(2**1100), 10**400])
any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_ints,
    st.floats(),
    st.binary(max_size=20),
    st.text(max_size=10),
    st.builds(axdr.BitString, st.integers(-9, 40), st.binary(max_size=5)),
    st.builds(axdr.CosemDateTime, *[st.none() | st.integers(-2, 70_000)] * 10),
    st.builds(axdr.CosemDate, *[st.none() | st.integers(-2, 70_000)] * 4),
    st.builds(axdr.CosemTime, *[st.none() | st.integers(-2, 300)] * 4),
)
ill_data = st.recursive(
    st.builds(axdr.Data, st.sampled_from(axdr.DataTag), any_value),
    lambda inner: st.builds(axdr.Data, st.sampled_from(axdr.DataTag), st.lists(inner, max_size=3).map(tuple)),
    max_leaves=8,
)


class TestAxdr:
    """The A-XDR codec (the same in both roles): decoding hostile bytes, encoding odd values."""

    @fuzz(300)
    @given(rnd=rngs)
    def test_mutated_real_and_own_values(self, rnd: random.Random) -> None:
        run(AXDR, fuzz_input(AXDR, rnd), rnd)

    @fuzz(150)
    @given(value=axdr_data(3), rnd=rngs)
    def test_generated_values(self, value: axdr.Data, rnd: random.Random) -> None:
        run(AXDR, varied(AXDR, axdr.encode_data(value), rnd), rnd)

    @fuzz(150)
    @given(data=st.binary(max_size=200), rnd=rngs)
    def test_random_bytes(self, data: bytes, rnd: random.Random) -> None:
        run(AXDR, data, rnd)

    @fuzz(300)
    @given(value=ill_data)
    def test_encoding_what_does_not_fit_is_a_local_error(self, value: axdr.Data) -> None:
        only_local_errors(axdr.encode_data, value)

    def test_float_from_an_int_beyond_float64_is_a_local_error(self) -> None:
        """Regression: float(int) raised OverflowError out of encode_data (found by Hypothesis)."""
        for tag in (axdr.DataTag.FLOAT32, axdr.DataTag.FLOAT64):
            with pytest.raises(LocalProtocolError, match="float64 range"):
                axdr.encode_data(axdr.Data(tag, 2**1024 - 2**970))  # the smallest int float() refuses

    @fuzz(200)
    @given(
        tag=st.sampled_from(sorted(NUMBER_TAGS)),
        value=st.integers() | huge_ints | st.floats() | st.booleans(),
    )
    def test_encoding_numbers_out_of_range_is_a_local_error(self, tag: axdr.DataTag, value: float) -> None:
        only_local_errors(axdr.encode_data, axdr.Data(tag, value))


# --------------------------------------------------------------------------- xDLMS APDUs

APDU_CLIENT = TARGETS["apdu/client"]
APDU_METER = TARGETS["apdu/meter"]
_REQUEST_TYPES = (ap.GetRequestNormal, ap.GetRequestNext, ap.GetRequestWithList, ap.ReadRequest)
initiate_requests = st.builds(
    ap.InitiateRequest, st.integers(0, 0xFFFFFF), st.integers(0, 0xFFFF), st.integers(0, 255),
    st.none() | st.binary(max_size=20), st.booleans(), st.none() | st.integers(-128, 127),
)  # fmt: skip
aarqs = st.builds(
    ap.Aarq,
    st.sampled_from(ap.ApplicationContext),
    initiate_requests,
    st.none() | st.sampled_from(ap.AuthenticationMechanism),
).flatmap(
    lambda aarq: (
        st.builds(lambda pw: dataclasses.replace(aarq, password=pw), st.none() | st.binary(max_size=16))
        if aarq.mechanism is not None
        else st.just(aarq)
    )
)
aares = st.builds(
    ap.Aare,
    st.sampled_from(ap.ApplicationContext),
    st.sampled_from(ap.AssociationResult),
    st.integers(0, 255),
    st.none()
    | st.builds(ap.InitiateResponse, st.integers(0, 0xFFFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
    | st.builds(
        ap.ConfirmedServiceError,
        st.sampled_from(ap.ConfirmedServiceErrorChoice),
        st.sampled_from(ap.ServiceErrorType),
        st.integers(0, 255),
    ),
    st.sampled_from(ap.DiagnosticSource),
)
request_apdus = st.one_of(apdus.filter(lambda a: isinstance(a, _REQUEST_TYPES)), aarqs, st.builds(ap.Rlrq))
response_apdus = st.one_of(
    apdus.filter(lambda a: not isinstance(a, _REQUEST_TYPES)),
    aares,
    st.builds(ap.Rlre),
    st.builds(
        ap.ExceptionResponse,
        st.sampled_from(ap.ExceptionStateError),
        st.sampled_from(ap.ExceptionServiceError),
    ).filter(lambda e: e.service_error is not ap.ExceptionServiceError.INVOCATION_COUNTER_ERROR),
)
odd_ints = st.integers() | huge_ints
odd_results = ill_data | st.sampled_from(ap.DataAccessResult)
odd_descriptors = st.builds(ap.AttributeDescriptor, odd_ints, st.binary(max_size=8), odd_ints)
odd_accesses = st.none() | st.builds(ap.SelectiveAccess, odd_ints, ill_data)
odd_invokes = st.builds(ap.InvokeIdAndPriority, odd_ints, st.booleans(), st.booleans())
odd_names = st.builds(ap.VariableName, odd_ints) | st.builds(
    ap.ParameterizedAccess, odd_ints, odd_ints, ill_data
)
odd_initiates = st.builds(
    ap.InitiateRequest, odd_ints, odd_ints, odd_ints, st.none() | st.binary(max_size=4), st.booleans(),
    st.none() | odd_ints,
)  # fmt: skip
mechanisms = st.none() | st.sampled_from(ap.AuthenticationMechanism)
contexts = st.sampled_from(ap.ApplicationContext)
odd_lists = st.lists(st.builds(ap.AttributeRequest, odd_descriptors, odd_accesses), max_size=3).map(tuple)
odd_responses = st.builds(ap.InitiateResponse, odd_ints, odd_ints, odd_ints, odd_ints, st.none() | odd_ints)
odd_apdus = st.one_of(
    st.builds(ap.GetRequestNormal, odd_descriptors, odd_accesses, odd_invokes),
    st.builds(ap.GetRequestNext, odd_ints, invokes),
    st.builds(ap.GetRequestWithList, odd_lists),
    st.builds(ap.GetResponseNormal, odd_results, invokes),
    st.builds(ap.GetResponseWithDatablock, st.booleans(), odd_ints, st.binary(max_size=10) | odd_results),
    st.builds(ap.ReadRequest, st.lists(odd_names, max_size=3).map(tuple)),
    st.builds(ap.ReadResponse, st.lists(odd_results, max_size=3).map(tuple)),
    st.builds(ap.Aarq, contexts, odd_initiates, mechanisms, st.binary() | st.none()),
    st.builds(
        ap.Aare, st.sampled_from(ap.ApplicationContext), st.sampled_from(ap.AssociationResult), odd_ints,
        st.none() | odd_responses, st.sampled_from(ap.DiagnosticSource), mechanisms, st.none() | st.binary(),
    ),
    st.builds(ap.Rlrq, st.none() | odd_ints),
    st.builds(ap.Rlre, st.none() | odd_ints),
    st.builds(
        ap.ExceptionResponse, st.sampled_from(ap.ExceptionStateError),
        st.sampled_from(ap.ExceptionServiceError), st.none() | odd_ints,
    ),
    st.builds(
        ap.ConfirmedServiceError, st.sampled_from(ap.ConfirmedServiceErrorChoice),
        st.sampled_from(ap.ServiceErrorType), odd_ints,
    ),
)  # fmt: skip


class TestApduClient:
    """The gateway decoding the meter's APDUs (AARE, GET/Read responses, errors)."""

    @fuzz(300)
    @given(rnd=rngs)
    def test_mutated_real_and_own_responses(self, rnd: random.Random) -> None:
        run(APDU_CLIENT, fuzz_input(APDU_CLIENT, rnd), rnd)

    @fuzz(200)
    @given(response=response_apdus, rnd=rngs)
    def test_generated_responses(self, response: ap.Apdu, rnd: random.Random) -> None:
        run(APDU_CLIENT, varied(APDU_CLIENT, ap.encode_apdu(response), rnd), rnd)

    @fuzz(150)
    @given(data=st.binary(max_size=200), rnd=rngs)
    def test_random_bytes(self, data: bytes, rnd: random.Random) -> None:
        run(APDU_CLIENT, data, rnd)

    @fuzz(300)
    @given(apdu=odd_apdus)
    def test_encoding_what_does_not_fit_is_a_local_error(self, apdu: ap.Apdu) -> None:
        only_local_errors(ap.encode_apdu, apdu)


class TestApduMeter:
    """A meter decoding the client's APDUs (AARQ, GET/Read requests, selective access)."""

    @fuzz(300)
    @given(rnd=rngs)
    def test_mutated_real_and_own_requests(self, rnd: random.Random) -> None:
        run(APDU_METER, fuzz_input(APDU_METER, rnd), rnd)

    @fuzz(200)
    @given(request=request_apdus, rnd=rngs)
    def test_generated_requests(self, request: ap.Apdu, rnd: random.Random) -> None:
        run(APDU_METER, varied(APDU_METER, ap.encode_apdu(request), rnd), rnd)

    @fuzz(150)
    @given(data=st.binary(max_size=200), rnd=rngs)
    def test_random_bytes(self, data: bytes, rnd: random.Random) -> None:
        run(APDU_METER, data, rnd)


# --------------------------------------------------------------------------- COSEM

COSEM_CLIENT = TARGETS["cosem/client"]
COSEM_METER = TARGETS["cosem/meter"]
ZONES = [timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)), ZoneInfo("Europe/Vienna")]


@st.composite
def clock_values(draw: st.DrawFn) -> axdr.Data:
    """A clock value anywhere in datetime's range or within two days of its ends, deviation or not."""
    near = st.timedeltas(timedelta(0), timedelta(days=2))
    moment = draw(
        st.datetimes()
        | near.map(lambda d: datetime.min + d)
        | near.map(lambda d: datetime.max.replace(microsecond=0) - d)
    )
    stamp = dataclasses.replace(
        axdr.CosemDateTime.from_datetime(moment, draw(st.sampled_from([None, 0, 0x80, 0x09]))),
        deviation=draw(st.none() | st.integers(-900, 900)),
    )
    return draw(st.sampled_from([axdr.Data.octet_string(stamp.to_bytes()), axdr.Data.date_time(stamp)]))


@st.composite
def profiles(draw: st.DrawFn) -> axdr.Data:
    """{capture_objects, buffer} of a profile with clock, status and two energy columns."""
    columns = [
        ap.CaptureObject(8, bytes([0, 0, 1, 0, 0, 255]), 2),
        ap.CaptureObject(1, bytes([0, 0, 96, 10, 1, 255]), 2),
        ap.CaptureObject(3, bytes([1, 0, 1, 29, 0, 255]), 2),
        ap.CaptureObject(3, bytes([1, 0, 2, 29, 0, 255]), 2),
    ]
    row = st.tuples(
        clock_values() | st.just(axdr.Data.null()), st.integers(0, 255), st.integers(0, 2**32 - 1)
    )
    rows = draw(st.lists(row, max_size=4))
    buffer = axdr.Data.array(
        [
            axdr.Data.structure([c, axdr.Data.uint8(s), axdr.Data.uint32(v), axdr.Data.null()])
            for c, s, v in rows
        ]
    )
    return axdr.Data.structure([axdr.Data.array([c.to_data() for c in columns]), buffer])


class TestCosemClient:
    """The gateway interpreting attribute values (registers, clock, profiles, events)."""

    @fuzz(300)
    @given(rnd=rngs)
    def test_mutated_real_and_own_values(self, rnd: random.Random) -> None:
        run(COSEM_CLIENT, fuzz_input(COSEM_CLIENT, rnd), rnd)

    @fuzz(200)
    @given(value=cosem_data | clock_values() | profiles() | apdu_data, rnd=rngs)
    def test_generated_values(self, value: axdr.Data, rnd: random.Random) -> None:
        run(COSEM_CLIENT, varied(COSEM_CLIENT, axdr.encode_data(value), rnd), rnd)

    @fuzz(200)
    @given(value=clock_values(), zone=st.sampled_from(ZONES), period=st.sampled_from([0, 900, 86400]))
    def test_clock_values_in_every_zone(self, value: axdr.Data, zone: Any, period: int) -> None:
        column = ap.CaptureObject(8, bytes([0, 0, 1, 0, 0, 255]), 2)
        buffer = axdr.Data.array([axdr.Data.structure([value]), axdr.Data.structure([axdr.Data.null()])])
        for call in (
            lambda: cosem.clock_time(value, zone=zone),
            lambda: cosem.clock_time(value, default_deviation=-840),
            lambda: cosem.profile_rows(buffer, [column], period, zone=zone),
        ):
            with contextlib.suppress(RemoteProtocolError):
                call()

    @fuzz(100)
    @given(
        start=st.datetimes(timezones=st.timezones()),
        end=st.datetimes(timezones=st.timezones()),
        entries=st.tuples(*[st.integers(-2, 2**33)] * 4),
    )
    def test_building_access_that_does_not_fit_is_a_local_error(
        self, start: Any, end: Any, entries: tuple[int, int, int, int]
    ) -> None:
        only_local_errors(cosem.range_access, cosem.CLOCK_CAPTURE, start, end)
        only_local_errors(cosem.entry_access, *entries)
        only_local_errors(cosem.datetime_to_data, start.replace(tzinfo=None))


def test_cosem_clock_beyond_datetime_in_a_zone_is_refused() -> None:
    """Regression: an unspecified deviation converted in the meter's zone overflowed (OverflowError).

    Minimal input (found by Hypothesis and by bench.fuzz): 0001-01-01 00:00, deviation
    unspecified, read in a zone east of UTC.
    """
    year_1 = axdr.CosemDateTime(1, 1, 1, None, 0, 0, 0, 0, None, None)
    with pytest.raises(RemoteProtocolError, match="range"):
        cosem.clock_time(axdr.Data.octet_string(year_1.to_bytes()), zone=ZONES[0])
    year_9999 = axdr.CosemDateTime(9999, 12, 31, None, 23, 59, 0, 0, None, 0x80)  # summer time flag
    column = ap.CaptureObject(8, bytes([0, 0, 1, 0, 0, 255]), 2)
    for stamp in (year_1, year_9999):
        value = axdr.Data.octet_string(stamp.to_bytes())
        buffer = axdr.Data.array([axdr.Data.structure([value])])
        for zone in ZONES:  # a valid instant where the zone allows one, else a refusal
            with contextlib.suppress(RemoteProtocolError):
                cosem.clock_time(value, zone=zone)
            with contextlib.suppress(RemoteProtocolError):
                cosem.profile_rows(buffer, [column], 900, zone=zone)


class TestCosemMeterSimulator:
    """The simulator's COSEM server (the cores in the meter role) answering any request."""

    @fuzz(200)
    @given(rnd=rngs)
    def test_mutated_real_and_own_requests(self, rnd: random.Random) -> None:
        run(COSEM_METER, fuzz_input(COSEM_METER, rnd), rnd)

    @fuzz(150)
    @given(request=request_apdus, rnd=rngs)
    def test_generated_requests(self, request: ap.Apdu, rnd: random.Random) -> None:
        run(COSEM_METER, varied(COSEM_METER, ap.encode_apdu(request), rnd), rnd)


def test_every_target_is_fuzzed_here() -> None:
    """One group per core and role above; bench/fuzz.py runs the same targets for longer."""
    here = (IEC_CLIENT, IEC_METER, HDLC_CLIENT, HDLC_SERVER, AXDR, APDU_CLIENT, APDU_METER, COSEM_CLIENT)
    assert {t.key for t in (*here, COSEM_METER)} == set(TARGETS)
