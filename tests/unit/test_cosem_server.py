"""The simulated meter's COSEM server at APDU level: requests built with apdu.py, answers decoded."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from gateway.obis import CATALOGUE, Kind, Obis, ObisInfo
from gateway.protocols import apdu as ap
from gateway.protocols import cosem
from gateway.protocols.axdr import Data, DataTag, decode_all
from gateway.simulator.cosem_server import (
    CONFORMANCE_LN,
    CONFORMANCE_SN,
    REGISTERS,
    CosemServer,
    register_table,
)
from gateway.simulator.physics import HouseholdModel, MeterPhysics
from tests.support.extra_catalogue import NEUTRAL_CURRENT, extended
from tests.support.simulated_meter import modelled

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
LN = ap.ApplicationContext.LOGICAL_NAME
SN = ap.ApplicationContext.SHORT_NAME
ALL_CONFORMANCE = 0xFFFFFF
#: The stock catalogue, and with a row for an object the simulator does not model.
CATALOGUES = {"stock": CATALOGUE, "with-neutral-current": extended(CATALOGUE)}


def ln(text: str) -> bytes:
    o = Obis.parse(text)
    return bytes((o.a, o.b, o.c, o.d, o.e, o.f))


def make(
    referencing: str = "both",
    max_pdu: int = 1024,
    history_days: float = 2.0,
    catalogue: Sequence[ObisInfo] | None = None,
) -> CosemServer:
    """A server with the registers of ``catalogue`` (those of the gateway's catalogue if None)."""
    physics = MeterPhysics(
        HouseholdModel(seed=7, disturbances_per_week=0.0), START, history_days=history_days
    )
    registers = REGISTERS if catalogue is None else register_table(catalogue)
    return CosemServer(physics, lambda: START, referencing=referencing, max_pdu=max_pdu, registers=registers)


def ask(server: CosemServer, request: ap.Apdu) -> ap.Apdu:
    answer = server.handle(ap.encode_apdu(request))
    assert answer is not None
    return ap.decode_apdu(answer)


def associate(
    server: CosemServer,
    context: ap.ApplicationContext = LN,
    *,
    pdu: int = 0xFFFF,
    mechanism: ap.AuthenticationMechanism | None = None,
    password: bytes | None = None,
) -> ap.Aare:
    aare = ask(server, ap.Aarq(context, ap.InitiateRequest(ALL_CONFORMANCE, pdu), mechanism, password))
    assert isinstance(aare, ap.Aare)
    return aare


def get(
    server: CosemServer, class_id: int, name: str, attr: int, access: ap.SelectiveAccess | None = None
) -> ap.Apdu:
    return ask(server, ap.GetRequestNormal(ap.AttributeDescriptor(class_id, ln(name), attr), access))


def get_all_blocks(server: CosemServer, request: ap.Apdu) -> tuple[bytes, int]:
    """Raw data of a block-transferred answer and the number of blocks."""
    answer = ask(server, request)
    raw, blocks = b"", 0
    while True:
        assert isinstance(answer, ap.GetResponseWithDatablock), answer
        assert isinstance(answer.raw_data, bytes)
        blocks += 1
        assert answer.block_number == blocks
        raw += answer.raw_data
        if answer.last_block:
            return raw, blocks
        answer = ask(server, ap.GetRequestNext(answer.block_number))


# --------------------------------------------------------------------------- association


def test_ln_association_announces_the_ln_conformance_pdu_size_and_vaa_name() -> None:
    aare = associate(make(max_pdu=700))
    assert aare.result is ap.AssociationResult.ACCEPTED
    assert isinstance(aare.user_information, ap.InitiateResponse)
    assert aare.user_information.conformance == CONFORMANCE_LN == 0x001214
    assert aare.user_information.max_receive_pdu_size == 700
    assert aare.user_information.vaa_name == ap.VAA_NAME_LN


def test_sn_association_with_lls_announces_the_sn_conformance() -> None:
    aare = associate(make(), SN, mechanism=ap.AuthenticationMechanism.LOW, password=b"00000000")
    assert aare.result is ap.AssociationResult.ACCEPTED
    assert isinstance(aare.user_information, ap.InitiateResponse)
    assert aare.user_information.conformance == CONFORMANCE_SN == 0x100220
    assert aare.user_information.vaa_name == ap.VAA_NAME_SN


def test_conformance_is_the_intersection_with_the_proposal() -> None:
    server = make()
    aare = ask(server, ap.Aarq(LN, ap.InitiateRequest(0x000010, 0xFFFF)))
    assert isinstance(aare, ap.Aare)
    assert isinstance(aare.user_information, ap.InitiateResponse)
    assert aare.user_information.conformance == 0x000010


@pytest.mark.parametrize(
    ("mechanism", "password", "diagnostic"),
    [
        (ap.AuthenticationMechanism.LOW, b"12345678", ap.AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE),
        (ap.AuthenticationMechanism.LOW, None, ap.AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE),
        (
            ap.AuthenticationMechanism.HIGH_GMAC,
            b"x" * 16,
            ap.AcseServiceUserDiagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED,
        ),
    ],
)
def test_bad_authentication_is_rejected(
    mechanism: ap.AuthenticationMechanism, password: bytes | None, diagnostic: int
) -> None:
    server = make()
    aare = associate(server, mechanism=mechanism, password=password)
    assert aare.result is ap.AssociationResult.REJECTED_PERMANENT
    assert aare.diagnostic == diagnostic
    assert server.associated is None


@pytest.mark.parametrize(("referencing", "context"), [("sn", LN), ("ln", SN)])
def test_context_the_meter_does_not_speak_is_rejected(
    referencing: str, context: ap.ApplicationContext
) -> None:
    aare = associate(make(referencing), context)
    assert aare.result is ap.AssociationResult.REJECTED_PERMANENT
    assert aare.diagnostic == ap.AcseServiceUserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED


def test_old_dlms_version_is_an_initiate_error() -> None:
    aare = ask(make(), ap.Aarq(LN, ap.InitiateRequest(ALL_CONFORMANCE, 0xFFFF, dlms_version=5)))
    assert isinstance(aare, ap.Aare)
    assert aare.result is ap.AssociationResult.REJECTED_PERMANENT
    assert aare.user_information == ap.ConfirmedServiceError(
        ap.ConfirmedServiceErrorChoice.INITIATE_ERROR, ap.ServiceErrorType.INITIATE, 1
    )


def test_requests_without_association_and_after_release_are_refused() -> None:
    server = make()
    refused = ap.ExceptionResponse(
        ap.ExceptionStateError.SERVICE_NOT_ALLOWED, ap.ExceptionServiceError.OPERATION_NOT_POSSIBLE
    )
    assert get(server, 3, "1-0:1.8.0", 2) == refused
    assert ask(server, ap.ReadRequest((ap.VariableName(0x1008),))) == refused
    associate(server)
    assert isinstance(get(server, 3, "1-0:1.8.0", 2), ap.GetResponseNormal)
    assert ask(server, ap.Rlrq(0)) == ap.Rlre(0)
    assert get(server, 3, "1-0:1.8.0", 2) == refused


def test_service_of_the_other_referencing_is_not_supported() -> None:
    server = make()
    associate(server, SN)
    answer = get(server, 3, "1-0:1.8.0", 2)
    assert answer == ap.ExceptionResponse(
        ap.ExceptionStateError.SERVICE_NOT_ALLOWED, ap.ExceptionServiceError.SERVICE_NOT_SUPPORTED
    )


def test_garbage_gets_an_exception_and_a_broken_aarq_no_answer() -> None:
    server = make()
    assert ap.decode_apdu(server.handle(b"\xc0\x07") or b"") == ap.ExceptionResponse(
        ap.ExceptionStateError.SERVICE_UNKNOWN, ap.ExceptionServiceError.OTHER_REASON
    )
    assert server.handle(b"\x60\x03\xa1\x01\x00") is None
    assert server.handle(b"") is not None


# --------------------------------------------------------------------------- LN GET


def test_register_value_and_scaler_unit_follow_the_physics() -> None:
    server = make()
    associate(server)
    value = get(server, 3, "1-0:1.8.0", 2)
    su = get(server, 3, "1-0:1.8.0", 3)
    assert isinstance(value, ap.GetResponseNormal)
    assert isinstance(su, ap.GetResponseNormal)
    assert isinstance(value.result, Data)
    assert isinstance(su.result, Data)
    assert value.result.tag is DataTag.LONG64_UNSIGNED
    reg = cosem.register_value(value.result, su.result)
    assert reg.unit_code == 30
    assert reg.value == pytest.approx(server.physics.registers.a_plus * 1000, abs=0.01)


@pytest.mark.parametrize("catalogue", list(CATALOGUES.values()), ids=list(CATALOGUES))
def test_instantaneous_catalogue_values_are_registers_where_modelled_and_undefined_elsewhere(
    catalogue: tuple[ObisInfo, ...],
) -> None:
    assert not modelled(NEUTRAL_CURRENT.obis)  # so the second catalogue has an object the meter lacks
    server = make(catalogue=catalogue)
    associate(server)
    for info in catalogue:
        if info.kind is not Kind.INSTANTANEOUS:
            continue
        name = f"1-0:{info.obis.c}.{info.obis.d}.{info.obis.e}"
        su = get(server, 3, name, 3)
        assert isinstance(su, ap.GetResponseNormal), name
        if not modelled(info.obis):
            # As a meter without the object answers: neither its value nor its unit.
            assert su.result is ap.DataAccessResult.OBJECT_UNDEFINED, name
            assert get(server, 3, name, 2) == ap.GetResponseNormal(ap.DataAccessResult.OBJECT_UNDEFINED)
            continue
        assert isinstance(su.result, Data), name
        assert cosem.ScalerUnit.from_data(su.result).unit in (27, 29, 33, 35, 44, 255)


def test_unknown_object_class_or_attribute_is_object_undefined() -> None:
    server = make()
    associate(server)
    for class_id, name, attr in ((3, "1-0:99.99.0", 2), (1, "1-0:1.8.0", 2), (3, "1-0:1.8.0", 9)):
        answer = get(server, class_id, name, attr)
        assert answer == ap.GetResponseNormal(ap.DataAccessResult.OBJECT_UNDEFINED)


def test_clock_identity_and_logical_name() -> None:
    server = make()
    associate(server)
    clock = get(server, 8, "0-0:1.0.0", 2)
    assert isinstance(clock, ap.GetResponseNormal)
    assert isinstance(clock.result, Data)
    assert clock.result.tag is DataTag.OCTET_STRING
    assert cosem.clock_time(clock.result).time == START
    ldn = get(server, 1, "0-0:42.0.0", 2)
    assert isinstance(ldn, ap.GetResponseNormal)
    assert isinstance(ldn.result, Data)
    assert isinstance(ldn.result.value, bytes)
    assert len(ldn.result.value) == 16
    assert ldn.result.value.startswith(b"LGZ")
    assert get(server, 1, "0-0:96.1.0", 2) == ap.GetResponseNormal(Data.octet_string(b"54800102"))
    assert get(server, 1, "1-0:0.2.0", 2) == ap.GetResponseNormal(Data.octet_string(b"B40"))
    assert get(server, 7, "1-0:99.1.0", 1) == ap.GetResponseNormal(Data.octet_string(ln("1-0:99.1.0")))
    assert get(server, 7, "1-0:99.1.0", 4) == ap.GetResponseNormal(Data.uint32(900))


@pytest.mark.parametrize("catalogue", list(CATALOGUES.values()), ids=list(CATALOGUES))
def test_get_with_list_answers_every_item_in_order_and_unknown_ones_as_undefined(
    catalogue: tuple[ObisInfo, ...],
) -> None:
    server = make(catalogue=catalogue)
    associate(server)
    names = [f"1-0:{i.obis.c}.7.0" for i in catalogue if i.kind is Kind.INSTANTANEOUS]
    names.insert(5, "1-0:98.7.0")  # in no catalogue
    items = [ap.AttributeRequest(ap.AttributeDescriptor(3, ln(n), 2)) for n in names]
    answer = ask(server, ap.GetRequestWithList(tuple(items)))
    assert isinstance(answer, ap.GetResponseWithList)
    assert [isinstance(r, Data) for r in answer.results] == [modelled(Obis.parse(n)) for n in names]
    undefined = [r for r in answer.results if not isinstance(r, Data)]
    assert undefined == [ap.DataAccessResult.OBJECT_UNDEFINED] * len(undefined)
    assert answer.results[5] is ap.DataAccessResult.OBJECT_UNDEFINED


def test_with_list_larger_than_the_client_pdu_goes_in_blocks_of_the_result_list() -> None:
    server = make()
    associate(server, pdu=64)
    items = tuple(ap.AttributeRequest(ap.AttributeDescriptor(3, ln(str(s.obis)), 3)) for s in REGISTERS)
    raw, blocks = get_all_blocks(server, ap.GetRequestWithList(items))
    assert blocks > 1
    # The blocks carry SEQUENCE OF Get-Data-Result: decode it as a GetResponseWithList body.
    listed = ap.decode_apdu(bytes([0xC4, 3, 0xC1]) + raw)
    assert isinstance(listed, ap.GetResponseWithList)
    assert [cosem.ScalerUnit.from_data(r).unit for r in listed.results if isinstance(r, Data)][:2] == [30, 30]
    assert len(listed.results) == len(REGISTERS)


def test_one_day_of_load_profile_by_range_in_blocks_decodes_with_compressed_times() -> None:
    server = make()
    associate(server, pdu=512)
    access = cosem.range_access(cosem.CLOCK_CAPTURE, START - timedelta(days=1), START)
    request = ap.GetRequestNormal(ap.AttributeDescriptor(7, ln("1-0:99.1.0"), 2), access)
    raw, blocks = get_all_blocks(server, request)
    assert blocks >= 4
    buffer = decode_all(raw)
    nulls = sum(1 for row in buffer.items if row.items[0].tag is DataTag.NULL_DATA)
    assert nulls > 90  # compressed: only the first row (and rows after a gap) carry the time
    columns = get(server, 7, "1-0:99.1.0", 3)
    assert isinstance(columns, ap.GetResponseNormal)
    assert isinstance(columns.result, Data)
    captures = cosem.capture_objects(columns.result)
    assert captures[0] == cosem.CLOCK_CAPTURE
    scalers = {Obis(1, 0, c, 29, 0): cosem.ScalerUnit(-2, 30 if c < 3 else 32) for c in (1, 2, 3, 4)}
    rows = cosem.profile_rows(buffer, captures, 900, scalers)
    expected = [e for e in server.physics.load_profile_1 if START - timedelta(days=1) <= e.end <= START]
    assert [r.timestamp for r in rows] == [e.end for e in expected]
    for row, entry in zip(rows, expected, strict=True):
        assert row.values[Obis(1, 0, 1, 29, 0)] == pytest.approx(entry.a_plus * 1000, abs=0.006)
        assert row.status[Obis(0, 0, 96, 10, 1)] == int(entry.status)


def test_wrong_block_number_and_next_without_transfer() -> None:
    server = make()
    associate(server, pdu=128)
    first = get(server, 7, "1-0:99.1.0", 2)
    assert isinstance(first, ap.GetResponseWithDatablock)
    assert not first.last_block
    wrong = ask(server, ap.GetRequestNext(7))
    assert wrong == ap.GetResponseWithDatablock(True, 7, ap.DataAccessResult.DATA_BLOCK_NUMBER_INVALID)
    none = ask(server, ap.GetRequestNext(1))
    assert none == ap.GetResponseWithDatablock(True, 1, ap.DataAccessResult.NO_LONG_GET_IN_PROGRESS)


def test_entry_descriptor_selects_entries_and_columns() -> None:
    server = make()
    associate(server)
    access = cosem.entry_access(1, 3, 1, 2)
    answer = get(server, 7, "1-0:99.2.0", 2, access)
    assert isinstance(answer, ap.GetResponseNormal)
    assert isinstance(answer.result, Data)
    rows = answer.result.items
    assert len(rows) == 3
    assert all(len(r.items) == 2 for r in rows)
    first = server.physics.load_profile_2[0]
    assert cosem.clock_time(rows[0].items[0]).time == first.end


def test_event_log_rows_carry_time_and_code() -> None:
    server = make()
    associate(server)
    answer = get(server, 7, "0-0:99.98.0", 2, cosem.entry_access(1, 0))
    assert isinstance(answer, ap.GetResponseNormal)
    assert isinstance(answer.result, Data)
    captures = get(server, 7, "0-0:99.98.0", 3)
    assert isinstance(captures, ap.GetResponseNormal)
    assert isinstance(captures.result, Data)
    rows = cosem.profile_rows(answer.result, cosem.capture_objects(captures.result), 0)
    events = server.physics.events
    assert len(rows) == len(events) > 0
    assert [r.timestamp for r in rows] == [e.time for e in events]
    assert [r.values[Obis(0, 0, 96, 11, 0)] for r in rows] == [float(e.code) for e in events]


def test_bad_selective_access_is_other_reason() -> None:
    server = make()
    associate(server)
    bad = ap.SelectiveAccess(1, Data.structure([Data.uint8(1)]))
    assert get(server, 7, "1-0:99.1.0", 2, bad) == ap.GetResponseNormal(ap.DataAccessResult.OTHER_REASON)
    on_register = cosem.entry_access(1, 1)
    assert get(server, 3, "1-0:1.8.0", 2, on_register) == ap.GetResponseNormal(
        ap.DataAccessResult.OTHER_REASON
    )


def test_ln_object_list_is_well_formed_and_complete() -> None:
    server = make()
    associate(server)
    answer = get(server, 15, "0-0:40.0.0", 2)
    raw = answer.raw_data if isinstance(answer, ap.GetResponseWithDatablock) else None
    assert raw is not None  # the list is longer than one 1024-byte PDU
    raw_all, _ = get_all_blocks(server, ap.GetRequestNormal(ap.AttributeDescriptor(15, ln("0-0:40.0.0"), 2)))
    listed = decode_all(raw_all).items
    entries = {(e.items[0].value, e.items[2].value) for e in listed}
    assert (15, ln("0-0:40.0.0")) in entries
    assert (7, ln("1-0:99.1.0")) in entries
    assert all((3, ln(str(s.obis))) in entries for s in REGISTERS)
    for entry in listed:
        class_id, version, name, rights = entry.items
        assert class_id.tag is DataTag.LONG_UNSIGNED
        assert version.tag is DataTag.UNSIGNED
        assert name.tag is DataTag.OCTET_STRING
        assert isinstance(name.value, bytes)
        assert len(name.value) == 6
        attributes, methods = rights.items
        assert attributes.tag is DataTag.ARRAY
        assert methods.tag is DataTag.ARRAY
        for item in attributes.items:
            attr_id, mode, selectors = item.items
            assert attr_id.tag is DataTag.INTEGER
            assert mode.tag is DataTag.ENUM
            assert selectors.tag in (DataTag.NULL_DATA, DataTag.ARRAY)


# --------------------------------------------------------------------------- SN Read


def sn_objects(server: CosemServer) -> dict[tuple[int, bytes], int]:
    """(class id, logical name) -> base name, from the SN object list."""
    answer = ask(server, ap.ReadRequest((ap.VariableName(0xFA08),)))
    assert isinstance(answer, ap.ReadResponse)
    assert isinstance(answer.results[0], Data)
    out = {}
    for entry in answer.results[0].items:
        base, class_id, version, name = entry.items
        assert base.tag is DataTag.LONG
        assert version.tag is DataTag.UNSIGNED
        assert isinstance(base.value, int)
        assert isinstance(class_id.value, int)
        assert isinstance(name.value, bytes)
        out[(class_id.value, name.value)] = base.value & 0xFFFF
    return out


def test_sn_object_list_gives_non_overlapping_base_names() -> None:
    server = make()
    associate(server, SN)
    objects = sn_objects(server)
    assert objects[(12, ln("0-0:40.0.0"))] == 0xFA00
    assert objects[(3, ln("1-0:1.8.0"))] == 0x1000
    spans = sorted(
        (base, base + 8 * {1: 2, 3: 3, 7: 8, 8: 9, 12: 4}[cid]) for (cid, _), base in objects.items()
    )
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_sn_read_of_18_names_in_one_request() -> None:
    server = make()
    associate(server, SN)
    objects = sn_objects(server)
    names = [objects[(3, ln(str(s.obis)))] + 8 for s in REGISTERS[:18]]
    answer = ask(server, ap.ReadRequest(tuple(ap.VariableName(n) for n in names)))
    assert isinstance(answer, ap.ReadResponse)
    assert len(answer.results) == 18
    assert all(isinstance(r, Data) for r in answer.results)
    scaler = ask(server, ap.ReadRequest((ap.VariableName(0x1010), ap.VariableName(0x1011))))
    assert scaler == ap.ReadResponse(
        (Data.structure([Data.int8(-2), Data.enum(30)]), ap.DataAccessResult.OBJECT_UNDEFINED)
    )


def test_sn_parameterized_access_on_a_profile_buffer() -> None:
    server = make()
    associate(server, SN)
    access = cosem.range_access(cosem.CLOCK_CAPTURE, START - timedelta(hours=2), START)
    answer = ask(server, ap.ReadRequest((ap.ParameterizedAccess(0x3008, 1, access.parameters),)))
    assert isinstance(answer, ap.ReadResponse)
    assert isinstance(answer.results[0], Data)
    assert len(answer.results[0].items) == 9
    entries = ask(
        server, ap.ReadRequest((ap.ParameterizedAccess(0x3108, 2, cosem.entry_access(1, 2).parameters),))
    )
    assert isinstance(entries, ap.ReadResponse)
    assert isinstance(entries.results[0], Data)
    assert len(entries.results[0].items) == 2


def test_sn_items_beyond_the_client_pdu_are_other_reason() -> None:
    server = make()
    associate(server, SN, pdu=256)
    access = cosem.range_access(cosem.CLOCK_CAPTURE, START - timedelta(days=1), START)
    answer = ask(
        server,
        ap.ReadRequest((ap.VariableName(0x1008), ap.ParameterizedAccess(0x3008, 1, access.parameters))),
    )
    assert isinstance(answer, ap.ReadResponse)
    assert isinstance(answer.results[0], Data)
    assert answer.results[1] is ap.DataAccessResult.OTHER_REASON
