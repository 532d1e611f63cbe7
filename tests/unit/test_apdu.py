"""Tests of gateway.protocols.apdu against the protocol vectors, hand-made APDUs and Hypothesis."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.protocols.apdu import (
    VAA_NAME_LN,
    VAA_NAME_SN,
    Aare,
    Aarq,
    AcseServiceUserDiagnostic,
    Apdu,
    ApplicationContext,
    AssociationResult,
    AttributeDescriptor,
    AttributeRequest,
    AuthenticationMechanism,
    CaptureObject,
    ConfirmedServiceError,
    ConfirmedServiceErrorChoice,
    DataAccessResult,
    EntryDescriptor,
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    GetResult,
    InitiateRequest,
    InitiateResponse,
    InvokeIdAndPriority,
    ParameterizedAccess,
    RangeDescriptor,
    ReadRequest,
    ReadResponse,
    Rlre,
    Rlrq,
    SelectiveAccess,
    ServiceErrorType,
    VariableName,
    decode_apdu,
    encode_apdu,
)
from gateway.protocols.axdr import Data, DataTag, decode_all
from tests.support.strategies import apdus

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "protocol-vectors"
FILES = {"dlms_ln.json": "dlms_ln", "dlms_sn.json": "dlms_sn", "dlms_published.json": "dlms_published"}


def _load() -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Every vector that holds a complete APDU: name -> (APDU bytes, expect)."""
    out: dict[str, tuple[bytes, dict[str, Any]]] = {}
    for file, key in FILES.items():
        for vector in json.loads((VECTORS / file).read_text())[key]:
            raw = bytes.fromhex(vector["hex"])
            expect = vector.get("expect") or {}
            if "reassembled_apdu_hex" in expect:
                out[vector["name"]] = (bytes.fromhex(expect["reassembled_apdu_hex"]), expect)
            elif "apdu" not in expect:
                continue
            elif vector.get("layer") == "apdu":
                out[vector["name"]] = (raw, expect)
            else:
                assert not expect.get("segmented"), vector["name"]
                fields = {f[2]: f for f in vector["fields"]}
                llc, fcs = fields["llc"], fields["fcs"]
                out[vector["name"]] = (raw[llc[0] + llc[1] : fcs[0]], expect)
    return out


ALL = _load()
# Meter responses in a legal but non-canonical form: decoded, not re-encoded byte for byte.
NON_CANONICAL = {
    "pub.gist1.aare_long_form_length": "BER long-form length 82 00 29 (encoder writes the short form)",
    "pub.pastebin.aare_sn": "real meter declares user-information one byte too short (tolerated)",
}
ROUND_TRIP = sorted(set(ALL) - set(NON_CANONICAL))

TYPES: dict[str, type] = {
    "AARQ": Aarq,
    "AARE": Aare,
    "RLRQ": Rlrq,
    "RLRE": Rlre,
    "get-request-normal": GetRequestNormal,
    "get-request-next": GetRequestNext,
    "get-request-with-list": GetRequestWithList,
    "get-response-normal": GetResponseNormal,
    "get-response-with-datablock": GetResponseWithDatablock,
    "get-response-with-list": GetResponseWithList,
    "ReadRequest": ReadRequest,
    "ReadResponse": ReadResponse,
}
CONTEXTS = {
    "Logical_Name_Referencing_No_Ciphering": ApplicationContext.LOGICAL_NAME,
    "Short_Name_Referencing_No_Ciphering": ApplicationContext.SHORT_NAME,
}


def _obis(text: str) -> bytes:
    """``1-0:1.8.0*255`` -> 6 bytes."""
    a, rest = text.split("-")
    b, rest = rest.split(":")
    c, d, rest = rest.split(".")
    e, f = rest.split("*")
    return bytes(int(x) for x in (a, b, c, d, e, f))


def _plain(data: Data) -> Any:
    """Data as the vectors write values: containers as lists, bytes as hex."""
    if isinstance(data.value, tuple):
        return [_plain(item) for item in data.value]
    if isinstance(data.value, bytes):
        return data.value.hex()
    return data.value


def _result(result: GetResult) -> Any:
    return {"error": int(result)} if isinstance(result, DataAccessResult) else _plain(result)


def _check_items(items: tuple[AttributeRequest, ...], expected: list[dict[str, Any]]) -> None:
    assert len(items) == len(expected)
    for item, exp in zip(items, expected, strict=True):
        assert item.descriptor.class_id == exp["class_id"]
        assert item.descriptor.obis == _obis(exp["obis"])
        assert item.descriptor.attribute_id == exp["attribute"]
        if "access_selector" in exp:
            assert item.access is not None
            assert item.access.selector == exp["access_selector"]
        else:
            assert item.access is None


# -- vectors ------------------------------------------------------------------------------------


def test_vectors_found() -> None:
    kinds = {expect["apdu"] for _, expect in ALL.values() if "apdu" in expect}
    assert kinds == set(TYPES)
    assert len(ALL) >= 60


@pytest.mark.parametrize("name", sorted(ALL))
def test_decode_matches_expect(name: str) -> None:
    raw, exp = ALL[name]
    apdu = decode_apdu(raw)
    kind = exp.get("apdu", "get-response-normal")  # reassembled object list
    assert type(apdu) is TYPES[kind]
    if isinstance(apdu, Aarq | Aare):
        assert apdu.context is CONTEXTS[exp["context"]]
    if hasattr(apdu, "invoke"):
        assert apdu.invoke == InvokeIdAndPriority(invoke_id=1, confirmed=True, high_priority=True)
    if isinstance(apdu, Aarq):
        assert apdu.initiate.conformance == exp["conformance"]
        assert apdu.initiate.max_receive_pdu_size == exp["max_pdu"]
        assert apdu.initiate.dlms_version == exp["dlms_version"]
        assert apdu.mechanism == exp.get("mechanism")
        assert apdu.password == (exp["password"].encode() if "password" in exp else None)
    elif isinstance(apdu, Aare):
        assert apdu.result == exp["result"]
        assert apdu.diagnostic == exp["diagnostic"]
        if "confirmed_service_error" in exp:
            assert isinstance(apdu.user_information, ConfirmedServiceError)
            info = apdu.user_information
            assert [info.service, info.error_type, info.value] == exp["confirmed_service_error"]
        else:
            assert isinstance(apdu.user_information, InitiateResponse)
            info_r = apdu.user_information
            assert info_r.conformance == exp["conformance"]
            assert info_r.max_receive_pdu_size == exp["max_pdu"]
            assert info_r.dlms_version == exp["dlms_version"]
            assert info_r.vaa_name == exp["vaa_name"]
    elif isinstance(apdu, GetRequestNormal):
        _check_items((AttributeRequest(apdu.descriptor, apdu.access),), exp["items"])
    elif isinstance(apdu, GetRequestWithList):
        assert len(apdu.items) == exp["count"]
        _check_items(apdu.items, exp["items"])
    elif isinstance(apdu, GetRequestNext):
        assert apdu.block_number == exp["block_number"]
    elif isinstance(apdu, GetResponseNormal):
        if "data_access_result" in exp:
            assert apdu.result == exp["data_access_result"]
            assert isinstance(apdu.result, DataAccessResult)
        elif "value" in exp:
            assert isinstance(apdu.result, Data)
            assert _plain(apdu.result) == exp["value"]
        else:
            assert isinstance(apdu.result, Data)
            assert apdu.result.tag is DataTag.ARRAY
    elif isinstance(apdu, GetResponseWithDatablock):
        assert apdu.last_block is exp["last_block"]
        assert apdu.block_number == exp["block_number"]
    elif isinstance(apdu, GetResponseWithList):
        assert [_result(r) for r in apdu.results] == exp["values"]
    elif isinstance(apdu, ReadRequest):
        assert list(apdu.variable_names) == exp["variable_names"]
    elif isinstance(apdu, ReadResponse):
        assert [_result(r) for r in apdu.results] == exp["values"]
    else:
        assert isinstance(apdu, Rlrq | Rlre)
        assert apdu.reason == 0


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_vector_round_trip(name: str) -> None:
    raw, _ = ALL[name]
    assert encode_apdu(decode_apdu(raw)) == raw


@pytest.mark.parametrize("name", sorted(NON_CANONICAL))
def test_non_canonical_vectors_decode_stably(name: str) -> None:
    apdu = decode_apdu(ALL[name][0])
    assert decode_apdu(encode_apdu(apdu)) == apdu


def test_long_form_aare_length_is_accepted() -> None:
    raw = ALL["pub.gist1.aare_long_form_length"][0]
    assert raw[:4] == bytes.fromhex("61820029")
    assert encode_apdu(decode_apdu(raw))[:2] == bytes.fromhex("6129")


def test_aare_names_result_and_diagnostic() -> None:
    apdu = decode_apdu(ALL["ln.aare.rejected_authentication_failure"][0])
    assert isinstance(apdu, Aare)
    assert apdu.result is AssociationResult.REJECTED_PERMANENT
    assert apdu.diagnostic is AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE
    apdu = decode_apdu(ALL["pub.dlmscosem.aare_rejected_app_context"][0])
    assert isinstance(apdu, Aare)
    assert apdu.diagnostic is AcseServiceUserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED
    apdu = decode_apdu(ALL["pub.dlmscosem.aare_rejected_dlms_version"][0])
    assert isinstance(apdu, Aare)
    assert apdu.user_information == ConfirmedServiceError(
        ConfirmedServiceErrorChoice.INITIATE_ERROR, ServiceErrorType.INITIATE, 1
    )
    assert apdu.user_information.reason == "dlms-version-too-low"


def test_sn_aare_vaa_name() -> None:
    for name in ("sn.aare.accepted", "pub.pastebin.aare_sn"):
        apdu = decode_apdu(ALL[name][0])
        assert isinstance(apdu, Aare)
        assert isinstance(apdu.user_information, InitiateResponse)
        assert apdu.user_information.vaa_name == VAA_NAME_SN


def test_encode_lls_aarq_like_gurux() -> None:
    apdu = Aarq(
        ApplicationContext.LOGICAL_NAME,
        InitiateRequest(conformance=0x401E5D, max_receive_pdu_size=0xFFFF),
        AuthenticationMechanism.LOW,
        b"12345678",
    )
    assert encode_apdu(apdu) == ALL["ln.aarq.lls_12345678_client17"][0]


def test_encode_aare_accepted() -> None:
    apdu = Aare(
        ApplicationContext.LOGICAL_NAME,
        AssociationResult.ACCEPTED,
        AcseServiceUserDiagnostic.NULL,
        InitiateResponse(conformance=0x00121D, max_receive_pdu_size=500, vaa_name=VAA_NAME_LN),
    )
    assert encode_apdu(apdu) == ALL["ln.aare.accepted"][0]


def test_range_descriptor_of_vector() -> None:
    apdu = decode_apdu(ALL["ln.get.profile_range_2h"][0])
    assert isinstance(apdu, GetRequestNormal)
    assert apdu.access is not None
    rng = RangeDescriptor.from_access(apdu.access)
    assert rng.restricting_object == CaptureObject(8, _obis("0-0:1.0.0*255"), 2, 0)
    assert rng.from_value == Data.octet_string(bytes.fromhex("07e8030fff08000000ffc400"))
    assert rng.to_value == Data.octet_string(bytes.fromhex("07e8030fff0a000000ffc400"))
    assert rng.selected_values == ()
    assert rng.to_access() == apdu.access
    built = GetRequestNormal(AttributeDescriptor(7, _obis("1-0:99.1.0*255"), 2), rng.to_access())
    assert encode_apdu(built) == ALL["ln.get.profile_range_2h"][0]


def test_sn_parameterized_access_vector() -> None:
    apdu = decode_apdu(ALL["sn.read.profile_range_2h"][0])
    assert isinstance(apdu, ReadRequest)
    (item,) = apdu.items
    assert isinstance(item, ParameterizedAccess)
    assert (item.name, item.selector) == (0x3008, 1)
    rng = RangeDescriptor.from_access(SelectiveAccess(item.selector, item.parameter))
    assert rng.restricting_object.class_id == 8


def test_entry_descriptor_round_trip() -> None:
    entry = EntryDescriptor(from_entry=1, to_entry=10, from_selected_value=1, to_selected_value=0)
    access = entry.to_access()
    assert EntryDescriptor.from_access(access) == entry
    apdu = GetRequestNormal(AttributeDescriptor(7, _obis("1-0:99.1.0*255"), 2), access)
    raw = encode_apdu(apdu)
    assert raw.hex() == ("c001c100070100630100ff02010202040600000001060000000a120001120000")
    assert decode_apdu(raw) == apdu
    with pytest.raises(RemoteProtocolError):
        RangeDescriptor.from_access(access)


# -- block transfer and segmentation --------------------------------------------------------------


def test_block_transfer_reassembles() -> None:
    names = [
        "ln.get_response_block.profile_block1",
        "ln.get_response_block.profile_block2",
        "ln.get_response_block.profile_block3_last",
    ]
    buffer = b""
    for number, name in enumerate(names, start=1):
        block = decode_apdu(ALL[name][0])
        assert isinstance(block, GetResponseWithDatablock)
        assert block.block_number == number
        assert block.last_block is (number == 3)
        assert isinstance(block.raw_data, bytes)
        buffer += block.raw_data
    expected = ALL[names[-1]][1]["reassembled_buffer_hex"]
    assert buffer.hex() == expected
    rows = decode_all(buffer)
    assert rows.tag is DataTag.ARRAY
    assert len(rows.items) == 8


def test_block_with_data_access_result() -> None:
    block = decode_apdu(ALL["pub.dlmscosem.get_response_last_block_error"][0])
    assert block == GetResponseWithDatablock(True, 19, DataAccessResult.HARDWARE_FAULT)


def test_segmented_object_list_decodes() -> None:
    apdu = decode_apdu(ALL["ln.segmented.object_list_part4_last"][0])
    assert isinstance(apdu, GetResponseNormal)
    assert isinstance(apdu.result, Data)
    first = apdu.result.items[0].items
    assert first[0] == Data.uint16(15)
    assert first[2] == Data.octet_string(_obis("0-0:40.0.0*255"))


# -- error APDUs ----------------------------------------------------------------------------------


def test_exception_response() -> None:
    apdu = decode_apdu(bytes.fromhex("d80102"))
    assert apdu == ExceptionResponse(
        ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.SERVICE_NOT_SUPPORTED
    )
    assert encode_apdu(apdu) == bytes.fromhex("d80102")
    raw = bytes.fromhex("d8020600000102")
    apdu = decode_apdu(raw)
    assert apdu == ExceptionResponse(
        ExceptionStateError.SERVICE_UNKNOWN, ExceptionServiceError.INVOCATION_COUNTER_ERROR, 0x102
    )
    assert encode_apdu(apdu) == raw


def test_confirmed_service_error() -> None:
    raw = bytes.fromhex("0e050501")
    apdu = decode_apdu(raw)
    assert apdu == ConfirmedServiceError(ConfirmedServiceErrorChoice.READ, ServiceErrorType.ACCESS, 1)
    assert isinstance(apdu, ConfirmedServiceError)
    assert apdu.reason == "scope-of-access-violated"
    assert encode_apdu(apdu) == raw
    assert (
        ConfirmedServiceError(ConfirmedServiceErrorChoice.READ, ServiceErrorType.TASK, 7).reason == "code 7"
    )


def test_data_access_result_names() -> None:
    assert DataAccessResult(4).name == "OBJECT_UNDEFINED"
    assert int(DataAccessResult.READ_WRITE_DENIED) == 3
    assert int(DataAccessResult.OTHER_REASON) == 250


# -- malformed input ------------------------------------------------------------------------------

TRUNCATE = [
    "ln.aarq.lls_00000000_client16",
    "ln.aare.accepted",
    "pub.pastebin.aare_sn",
    "pub.gist1.aare_long_form_length",
    "pub.dlmscosem.aare_rejected_dlms_version",
    "ln.get.profile_range_2h",
    "ln.get_with_list.instantaneous_7",
    "ln.get_response_with_list.mixed_error",
    "ln.get_response_block.profile_block3_last",
    "ln.get_next.block1",
    "sn.read.profile_range_2h",
    "sn.read_response.data_access_error",
    "pub.dlmscosem.rlrq",
]


@pytest.mark.parametrize("name", TRUNCATE)
def test_truncated_at_every_offset(name: str) -> None:
    raw = ALL[name][0]
    for cut in range(len(raw)):
        with pytest.raises(RemoteProtocolError):
            decode_apdu(raw[:cut])


@pytest.mark.parametrize(
    "name", ["ln.get.clock_attr2", "ln.aare.accepted", "sn.read.multi_4", "pub.dlmscosem.rlre"]
)
def test_trailing_byte_rejected(name: str) -> None:
    with pytest.raises(RemoteProtocolError, match="offset"):
        decode_apdu(ALL[name][0] + b"\x00")


@pytest.mark.parametrize(
    ("hex_apdu", "words"),
    [
        ("", "empty"),
        ("ff0102", "APDU tag"),
        ("c009c1", "GET-Request: choice"),
        ("c401c10163", "GET-Response: result.data_access_result at offset 4"),
        ("c401c102", "GET-Response: result at offset 3"),
        ("c401f10100", "invoke-id-and-priority at offset 2"),
        ("c001c100080000010000ff0202", "GET-Request: attribute.access_selection at offset 12"),
        ("c402c10200000001000100", "last_block at offset 3"),
        ("c401c10060", "GET-Response: result.data at offset 4"),
        ("0501070000", "ReadRequest: variable_access_specification[0] at offset 2"),
        ("0c0102", "ReadResponse: result[0] at offset 2"),
        ("0c05", "ReadResponse: count at offset 1"),
        ("d80902", "ExceptionResponse: state_error at offset 1"),
        ("0e630101", "ConfirmedServiceError: service at offset 1"),
        ("6203810100", "RLRQ: reason at offset 2"),
        ("6185000000000000", "AARE: length at offset 1"),
        # application context name with a ciphering context (3)
        ("601da109060760857405080103be10040e01000000065f1f0400007e1f04b0", "unsupported context"),
        # unknown ACSE field (called-AP-title A2 in an AARQ)
        ("6005a203020100", "unsupported or unknown tag 0xA2"),
        # AARE result 7
        ("6129a109060760857405080101a203020107a305a103020100be10040e0800065f1f040000501f01f40007", "result"),
        # conformance tag broken (5F 1E)
        ("601da109060760857405080101be10040e01000000065f1e0400007e1f04b0", "conformance"),
    ],
)
def test_malformed_named(hex_apdu: str, words: str) -> None:
    with pytest.raises(RemoteProtocolError, match=re.escape(words)):
        decode_apdu(bytes.fromhex(hex_apdu))


def test_wrong_tag_in_every_real_apdu() -> None:
    for name, (raw, _) in ALL.items():
        with pytest.raises(RemoteProtocolError):
            decode_apdu(b"\x42" + raw[1:])
        # a wrong second byte (choice / length) must never be silently accepted as the same APDU
        mutated = raw[:1] + bytes([raw[1] ^ 0x40]) + raw[2:]
        try:
            result = decode_apdu(mutated)
        except RemoteProtocolError:
            continue
        assert result != decode_apdu(raw), name


# -- encoding errors ------------------------------------------------------------------------------

CLOCK = AttributeDescriptor(8, _obis("0-0:1.0.0*255"), 2)


@pytest.mark.parametrize(
    "apdu",
    [
        GetRequestNormal(AttributeDescriptor(70000, CLOCK.obis, 2)),
        GetRequestNormal(AttributeDescriptor(8, b"\x00" * 5, 2)),
        GetRequestNormal(AttributeDescriptor(8, CLOCK.obis, 200)),
        GetRequestNormal(CLOCK, invoke=InvokeIdAndPriority(invoke_id=16)),
        GetRequestNext(-1),
        GetRequestNext(2**32),
        GetResponseNormal(Data(DataTag.UNSIGNED, 300)),
        GetResponseWithList((Data.uint8(1), "oops")),  # type: ignore[arg-type]
        GetResponseWithDatablock(True, 1, "raw"),  # type: ignore[arg-type]
        ReadRequest((VariableName(0x10000),)),
        ReadRequest((ParameterizedAccess(0x3008, 256, Data.null()),)),
        Aarq(ApplicationContext.LOGICAL_NAME, InitiateRequest(conformance=1 << 24)),
        Aarq(ApplicationContext.LOGICAL_NAME, InitiateRequest(conformance=0), password=b"x"),
        Aare(
            ApplicationContext.SHORT_NAME,
            AssociationResult.ACCEPTED,
            0,
            InitiateResponse(conformance=0, max_receive_pdu_size=70000),
        ),
        ExceptionResponse(
            ExceptionStateError.SERVICE_UNKNOWN, ExceptionServiceError.INVOCATION_COUNTER_ERROR
        ),
        ConfirmedServiceError(ConfirmedServiceErrorChoice.READ, ServiceErrorType.ACCESS, 256),
        Rlrq(reason=-1),
    ],
)
def test_encode_invalid_raises_local(apdu: Apdu) -> None:
    with pytest.raises(LocalProtocolError):
        encode_apdu(apdu)


def test_encode_not_an_apdu() -> None:
    with pytest.raises(LocalProtocolError):
        encode_apdu("C001")  # type: ignore[arg-type]


# -- Hypothesis -----------------------------------------------------------------------------------


@given(apdus)
@settings(max_examples=400, deadline=None)
def test_round_trip_generated(apdu: Apdu) -> None:
    raw = encode_apdu(apdu)
    assert decode_apdu(raw) == apdu
    assert encode_apdu(decode_apdu(raw)) == raw


@given(
    st.sampled_from(sorted(ALL)).flatmap(
        lambda name: st.tuples(
            st.just(ALL[name][0]), st.integers(0, len(ALL[name][0]) - 1), st.integers(0, 255)
        )
    )
)
@settings(max_examples=400, deadline=None)
def test_fuzz_mutated_vectors(case: tuple[bytes, int, int]) -> None:
    raw, at, byte = case
    _decode_or_reject(raw[:at] + bytes([byte]) + raw[at + 1 :])


@given(
    st.binary(max_size=200)
    | st.sampled_from([0x05, 0x0C, 0x0E, 0x60, 0x61, 0x62, 0x63, 0xC0, 0xC4, 0xD8]).flatmap(
        lambda tag: st.binary(max_size=120).map(lambda rest: bytes([tag]) + rest)
    )
)
@settings(max_examples=600, deadline=None)
def test_fuzz_random_bytes(raw: bytes) -> None:
    _decode_or_reject(raw)


def _decode_or_reject(raw: bytes) -> None:
    """Only RemoteProtocolError may escape; whatever decodes re-encodes to a stable form."""
    try:
        apdu = decode_apdu(raw)
    except RemoteProtocolError:
        return
    again = encode_apdu(apdu)
    assert encode_apdu(decode_apdu(again)) == again
