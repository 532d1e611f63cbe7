"""The simulated meter's DLMS/COSEM over HDLC, over a real ``socket://`` link.

Every test starts a :class:`SimulatedMeter` on 127.0.0.1 with a :class:`ManualClock` as
meter clock, opens the gateway's real transport with :func:`open_serial` (8N1) and drives
the sans-I/O HDLC core in the client role by hand, with APDUs from apdu.py. The line runs
in real time, paced by the simulator; timing checks are lower bounds only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.clock import ManualClock
from gateway.errors import MeterTimeout, RemoteProtocolError, TransportError
from gateway.obis import CATALOGUE, Kind, Obis
from gateway.protocols import apdu as ap
from gateway.protocols import cosem, hdlc
from gateway.protocols import iec62056_21 as iec
from gateway.protocols.axdr import Data, DataTag, decode_all
from gateway.simulator.physics import HouseholdModel, MeterPhysics
from gateway.simulator.server import SimulatedMeter
from gateway.transport import Framing, SerialTransport, open_serial
from tests.support.simulated_meter import modelled

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
SERIAL = "54800102"
CLIENT = hdlc.HdlcAddress(0x10)  # public client SAP 16
SERVER = hdlc.HdlcAddress(1, 17, 2)
LN = ap.ApplicationContext.LOGICAL_NAME
SN = ap.ApplicationContext.SHORT_NAME
LLS = ap.AuthenticationMechanism.LOW
TIMEOUT = 3.0
#: 18 instantaneous values the meter has, in catalogue order (a row it lacks is left out).
INSTANT_NAMES = [
    f"1-0:{i.obis.c}.7.0" for i in CATALOGUE if i.kind is Kind.INSTANTANEOUS and modelled(i.obis)
][:18]


def ln(text: str) -> bytes:
    o = Obis.parse(text)
    return bytes((o.a, o.b, o.c, o.d, o.e, o.f))


@contextlib.asynccontextmanager
async def running_meter(history_days: float = 1.5, **options: Any) -> AsyncIterator[SimulatedMeter]:
    clock = ManualClock(START)
    physics = MeterPhysics(
        HouseholdModel(seed=7, disturbances_per_week=0.0), START, history_days=history_days
    )
    sim = SimulatedMeter(physics, clock, host="127.0.0.1", serial_number=SERIAL, **options)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class Client:
    """A hand-driven HDLC client on a real transport; counts what crossed the line."""

    def __init__(self, transport: SerialTransport, conn: hdlc.HdlcConnection) -> None:
        self.transport = transport
        self.conn = conn
        self.segments = 0
        self.frames_sent = 0
        self.received = 0

    async def write(self, data: bytes) -> None:
        await self.transport.write(data, timeout=TIMEOUT)

    async def event(self, timeout: float = TIMEOUT) -> hdlc.Event:
        """The next HDLC event; RR replies to received segments are sent here."""
        while True:
            event = self.conn.next_event()
            if not isinstance(event, hdlc.NeedData):
                return event
            data = await self.transport.read(4096, timeout=timeout)
            self.received += len(data)
            self.conn.receive_data(data)

    async def connect(self, parameters: hdlc.HdlcParameters | None = None) -> hdlc.HdlcParameters:
        await self.write(self.conn.connect(parameters))
        event = await self.event()
        assert isinstance(event, hdlc.Connected), event
        return event.parameters

    async def request(self, apdu: ap.Apdu) -> ap.Apdu:
        for frame in self.conn.send_data(ap.encode_apdu(apdu)):
            self.frames_sent += 1
            await self.write(frame)
        while True:
            event = await self.event()
            if isinstance(event, hdlc.SegmentReceived):
                self.segments += 1
                await self.write(event.reply)
            elif isinstance(event, hdlc.DataReceived):
                return ap.decode_apdu(event.apdu)
            else:
                raise AssertionError(f"unexpected {event}")

    async def associate(
        self,
        context: ap.ApplicationContext = LN,
        mechanism: ap.AuthenticationMechanism | None = None,
        password: bytes | None = None,
        pdu: int = 0xFFFF,
    ) -> ap.Aare:
        aare = await self.request(ap.Aarq(context, ap.InitiateRequest(0xFFFFFF, pdu), mechanism, password))
        assert isinstance(aare, ap.Aare)
        return aare

    async def get(
        self, class_id: int, name: str, attr: int, access: ap.SelectiveAccess | None = None
    ) -> Data:
        """GET normal (with block transfer): the value, or an AssertionError."""
        answer = await self.request(
            ap.GetRequestNormal(ap.AttributeDescriptor(class_id, ln(name), attr), access)
        )
        if isinstance(answer, ap.GetResponseNormal):
            assert isinstance(answer.result, Data), answer
            return answer.result
        return decode_all(await self.blocks(answer))

    async def blocks(self, answer: ap.Apdu) -> bytes:
        raw = b""
        while True:
            assert isinstance(answer, ap.GetResponseWithDatablock), answer
            assert isinstance(answer.raw_data, bytes), answer
            raw += answer.raw_data
            if answer.last_block:
                return raw
            answer = await self.request(ap.GetRequestNext(answer.block_number))


@contextlib.asynccontextmanager
async def hdlc_client(
    sim: SimulatedMeter, server: hdlc.HdlcAddress = SERVER, baudrate: int = 9600
) -> AsyncIterator[Client]:
    transport = await open_serial(sim.url, baudrate=baudrate, framing=Framing.EIGHT_N_ONE, timeout=5)
    try:
        yield Client(transport, hdlc.HdlcConnection(hdlc.Role.CLIENT, CLIENT, server))
    finally:
        await transport.close()


@contextlib.asynccontextmanager
async def associated(
    sim: SimulatedMeter, context: ap.ApplicationContext = LN, **options: Any
) -> AsyncIterator[Client]:
    async with hdlc_client(sim) as client:
        await client.connect(options.pop("parameters", None))
        aare = await client.associate(context, **options)
        assert aare.result is ap.AssociationResult.ACCEPTED, aare
        yield client


# --------------------------------------------------------------------------- HDLC link


@pytest.mark.parametrize(
    ("proposal", "expected"),
    [
        (hdlc.HdlcParameters(2048, 2048, 7, 7), hdlc.HdlcParameters(512, 512, 1, 1)),
        (hdlc.HdlcParameters(256, 128, 1, 1), hdlc.HdlcParameters(256, 128, 1, 1)),
        (None, hdlc.HdlcParameters(128, 128, 1, 1)),
    ],
)
async def test_snrm_ua_negotiates_the_smaller_of_both(
    proposal: hdlc.HdlcParameters | None, expected: hdlc.HdlcParameters
) -> None:
    async with running_meter() as sim, hdlc_client(sim) as client:
        client.conn.limits = proposal or hdlc.DEFAULT_PARAMETERS
        assert await client.connect(proposal) == expected


@pytest.mark.parametrize("server", [hdlc.HdlcAddress(1, 17, 4), hdlc.HdlcAddress(1)])
async def test_other_address_forms_are_answered_in_their_form(server: hdlc.HdlcAddress) -> None:
    async with running_meter() as sim, hdlc_client(sim, server) as client:
        await client.connect()
        aare = await client.associate()
    assert aare.result is ap.AssociationResult.ACCEPTED


async def test_frames_for_another_meter_are_ignored() -> None:
    async with running_meter() as sim, hdlc_client(sim, hdlc.HdlcAddress(1, 18, 2)) as client:
        await client.write(client.conn.connect())
        with pytest.raises(MeterTimeout):
            await client.event(timeout=0.5)


async def test_disc_is_answered_with_ua_and_the_line_is_idle_again() -> None:
    async with running_meter() as sim, hdlc_client(sim) as client:
        await client.connect()
        await client.write(client.conn.disconnect())
        event = await client.event()
        assert isinstance(event, hdlc.Disconnected)
        assert event.reason is hdlc.FrameKind.UA
        # Back to idle: a new direct-HDLC SNRM sets the link up again.
        await client.connect()
        assert (await client.associate()).result is ap.AssociationResult.ACCEPTED


async def test_answer_waits_for_the_reaction_time_after_the_request_arrived() -> None:
    loop = asyncio.get_running_loop()
    async with running_meter(reaction_time_s=0.2) as sim, hdlc_client(sim) as client:
        snrm = client.conn.connect()
        started = loop.time()
        await client.write(snrm)
        await client.event()
        elapsed = loop.time() - started
    wire = (len(snrm) + client.received) * 10 / 9600
    assert elapsed >= 0.2 + wire


# --------------------------------------------------------------------------- association


@pytest.mark.parametrize("context", [LN, SN])
@pytest.mark.parametrize(("mechanism", "password"), [(None, None), (LLS, b"00000000")])
async def test_association_without_and_with_lls(
    context: ap.ApplicationContext, mechanism: ap.AuthenticationMechanism | None, password: bytes | None
) -> None:
    async with running_meter(max_pdu=900) as sim, hdlc_client(sim) as client:
        await client.connect()
        aare = await client.associate(context, mechanism, password)
        assert await client.request(ap.Rlrq(0)) == ap.Rlre(0)
    assert aare.result is ap.AssociationResult.ACCEPTED
    assert isinstance(aare.user_information, ap.InitiateResponse)
    assert aare.user_information.max_receive_pdu_size == 900
    assert aare.user_information.vaa_name == (ap.VAA_NAME_LN if context is LN else ap.VAA_NAME_SN)
    assert aare.user_information.conformance == (0x001214 if context is LN else 0x100220)


async def test_wrong_password_is_rejected() -> None:
    async with running_meter() as sim, hdlc_client(sim) as client:
        await client.connect()
        aare = await client.associate(LN, LLS, b"11111111")
    assert aare.result is ap.AssociationResult.REJECTED_PERMANENT
    assert aare.diagnostic == ap.AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE


@pytest.mark.parametrize(("referencing", "context"), [("sn", LN), ("ln", SN)])
async def test_meter_refuses_the_referencing_it_does_not_speak(
    referencing: str, context: ap.ApplicationContext
) -> None:
    async with running_meter(referencing=referencing) as sim, hdlc_client(sim) as client:
        await client.connect()
        aare = await client.associate(context)
    assert aare.result is ap.AssociationResult.REJECTED_PERMANENT
    assert aare.diagnostic == ap.AcseServiceUserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED


async def test_requests_before_association_get_an_exception_response() -> None:
    async with running_meter() as sim, hdlc_client(sim) as client:
        await client.connect()
        answers = [
            await client.request(ap.GetRequestNormal(ap.AttributeDescriptor(3, ln("1-0:1.8.0"), 2))),
            await client.request(ap.ReadRequest((ap.VariableName(0x1008),))),
        ]
    refused = ap.ExceptionResponse(
        ap.ExceptionStateError.SERVICE_NOT_ALLOWED, ap.ExceptionServiceError.OPERATION_NOT_POSSIBLE
    )
    assert answers == [refused, refused]


# --------------------------------------------------------------------------- LN GET


async def test_get_register_value_and_scaler_unit() -> None:
    async with running_meter() as sim, associated(sim) as client:
        value = await client.get(3, "1-0:1.8.0", 2)
        scaler_unit = await client.get(3, "1-0:1.8.0", 3)
        voltage = cosem.register_value(
            await client.get(3, "1-0:32.7.0", 2), await client.get(3, "1-0:32.7.0", 3)
        )
        expected_wh = sim.physics.registers.a_plus * 1000
        expected_v = sim.physics.instant().phases[0].voltage_v
    reading = cosem.register_value(value, scaler_unit)
    assert reading.unit_code == 30
    assert reading.value == pytest.approx(expected_wh, abs=0.006)
    assert voltage.unit_code == 35
    assert voltage.value == pytest.approx(expected_v, abs=0.051)


async def test_get_with_list_of_18_values_is_one_request_and_one_answer() -> None:
    async with (
        running_meter() as sim,
        associated(sim, parameters=hdlc.HdlcParameters(512, 512, 1, 1)) as client,
    ):
        items = tuple(ap.AttributeRequest(ap.AttributeDescriptor(3, ln(n), 2)) for n in INSTANT_NAMES)
        sent = client.frames_sent
        answer = await client.request(ap.GetRequestWithList(items))
        assert client.frames_sent - sent == 1
    assert isinstance(answer, ap.GetResponseWithList)
    assert len(answer.results) == 18
    assert all(isinstance(r, Data) for r in answer.results)
    assert client.segments == 0


async def test_one_day_of_load_profile_1_comes_in_blocks_and_decodes() -> None:
    async with running_meter() as sim, associated(sim, pdu=512) as client:
        access = cosem.range_access(cosem.CLOCK_CAPTURE, START - timedelta(days=1), START)
        request = ap.GetRequestNormal(ap.AttributeDescriptor(7, ln("1-0:99.1.0"), 2), access)
        first = await client.request(request)
        assert isinstance(first, ap.GetResponseWithDatablock)
        assert first.block_number == 1
        buffer = decode_all(await client.blocks(first))
        captures = cosem.capture_objects(await client.get(7, "1-0:99.1.0", 3))
        period = cosem.capture_period(await client.get(7, "1-0:99.1.0", 4))
        scalers = {
            Obis(1, 0, c, 29, 0): cosem.ScalerUnit.from_data(await client.get(3, f"1-0:{c}.29.0", 3))
            for c in (1, 2, 3, 4)
        }
    rows = cosem.profile_rows(buffer, captures, period, scalers)
    expected = [e for e in sim.physics.load_profile_1 if START - timedelta(days=1) <= e.end <= START]
    assert period == 900
    assert len(rows) == len(expected) == 97
    assert [r.timestamp for r in rows] == [e.end for e in expected]
    for row, entry in zip(rows, expected, strict=True):
        assert row.values[Obis(1, 0, 2, 29, 0)] == pytest.approx(entry.a_minus * 1000, abs=0.006)


async def test_long_answer_is_segmented_and_fetched_with_rr() -> None:
    small = hdlc.HdlcParameters(128, 128, 1, 1)
    async with running_meter() as sim, associated(sim, parameters=small, pdu=1024) as client:
        objects = await client.get(15, "0-0:40.0.0", 2)
    assert client.segments > 5
    names = {entry.items[2].value for entry in objects.items}
    assert ln("1-0:99.2.0") in names
    assert ln("0-0:99.98.0") in names


# --------------------------------------------------------------------------- SN


async def sn_object_list(client: Client) -> dict[bytes, tuple[int, int]]:
    answer = await client.request(ap.ReadRequest((ap.VariableName(0xFA08),)))
    assert isinstance(answer, ap.ReadResponse)
    listed = answer.results[0]
    assert isinstance(listed, Data)
    out: dict[bytes, tuple[int, int]] = {}
    for entry in listed.items:
        base, class_id, _version, name = (item.value for item in entry.items)
        assert isinstance(base, int)
        assert isinstance(class_id, int)
        assert isinstance(name, bytes)
        out[name] = (class_id, base & 0xFFFF)
    return out


async def test_sn_read_of_18_values_in_one_request() -> None:
    async with (
        running_meter() as sim,
        associated(sim, SN, parameters=hdlc.HdlcParameters(512, 512, 1, 1)) as client,
    ):
        objects = await sn_object_list(client)
        names = [objects[ln(n)][1] + 8 for n in INSTANT_NAMES]
        sent = client.frames_sent
        answer = await client.request(ap.ReadRequest(tuple(ap.VariableName(n) for n in names)))
        assert client.frames_sent - sent == 1
        scaler = await client.request(ap.ReadRequest((ap.VariableName(objects[ln("1-0:32.7.0")][1] + 16),)))
    assert isinstance(answer, ap.ReadResponse)
    assert len(answer.results) == 18
    assert all(isinstance(r, Data) for r in answer.results)
    assert scaler == ap.ReadResponse((Data.structure([Data.int8(-1), Data.enum(35)]),))
    assert objects[ln("0-0:40.0.0")] == (12, 0xFA00)


async def test_sn_parameterized_access_reads_a_range_of_load_profile_2() -> None:
    async with running_meter() as sim, associated(sim, SN) as client:
        objects = await sn_object_list(client)
        base = objects[ln("1-0:99.2.0")][1]
        access = cosem.range_access(cosem.CLOCK_CAPTURE, START - timedelta(hours=3), START)
        answer = await client.request(
            ap.ReadRequest((ap.ParameterizedAccess(base + 8, 1, access.parameters),))
        )
        columns = await client.request(ap.ReadRequest((ap.VariableName(base + 16),)))
    assert isinstance(answer, ap.ReadResponse)
    assert isinstance(columns, ap.ReadResponse)
    buffer, captures = answer.results[0], columns.results[0]
    assert isinstance(buffer, Data)
    assert isinstance(captures, Data)
    rows = cosem.profile_rows(buffer, cosem.capture_objects(captures), 900)
    assert [r.timestamp for r in rows] == [START - timedelta(minutes=15 * k) for k in range(12, -1, -1)]


async def test_ln_object_list_names_every_sn_object() -> None:
    async with running_meter() as sim:
        async with associated(sim, SN) as client:
            sn = await sn_object_list(client)
        async with associated(sim, LN) as client:
            listed = await client.get(15, "0-0:40.0.0", 2)
    ln_objects = {e.items[2].value: e.items[0].value for e in listed.items}
    assert ln_objects.pop(ln("0-0:40.0.0")) == 15
    assert sn.pop(ln("0-0:40.0.0")) == (12, 0xFA00)
    assert ln_objects == {name: class_id for name, (class_id, _base) in sn.items()}


# --------------------------------------------------------------------------- mode E


async def test_mode_e_sign_on_switches_to_hdlc_without_acknowledgement() -> None:
    async with running_meter(max_baudrate=19200, hdlc_baudrate=9600) as sim:
        transport = await open_serial(sim.url, baudrate=300, framing=Framing.SEVEN_E_ONE, timeout=5)
        try:
            iec_conn = iec.Iec21Connection(iec.Role.CLIENT)
            await transport.write(iec_conn.send(iec.SignOnRequest()), timeout=TIMEOUT)
            identification: iec.Event | iec.NeedData = iec.NEED_DATA
            while isinstance(identification, iec.NeedData):
                iec_conn.receive_data(await transport.read(4096, timeout=TIMEOUT))
                identification = iec_conn.next_event()
            assert isinstance(identification, iec.Identification)
            assert "2" in identification.enhanced  # \2: the meter offers mode E
            await transport.write(iec_conn.send(iec.OptionSelect("2", "6", "2")), timeout=TIMEOUT)
            with pytest.raises(MeterTimeout):  # no acknowledgement in mode E
                await transport.read(4096, timeout=0.3)
            await transport.set_line(19200, Framing.EIGHT_N_ONE)
            client = Client(transport, hdlc.HdlcConnection(hdlc.Role.CLIENT, CLIENT, SERVER))
            await client.connect()
            aare = await client.associate(SN)
            serial = await client.request(ap.ReadRequest((ap.VariableName(0x0128),)))
        finally:
            await transport.close()
    assert aare.result is ap.AssociationResult.ACCEPTED
    assert serial == ap.ReadResponse((Data.octet_string(SERIAL.encode()),))


# --------------------------------------------------------------------------- faults


async def test_exception_knob_answers_the_next_requests_with_an_exception() -> None:
    async with running_meter() as sim, associated(sim) as client:
        sim.faults.exception_answers = 2
        request = ap.GetRequestNormal(ap.AttributeDescriptor(3, ln("1-0:1.8.0"), 2))
        answers = [await client.request(request) for _ in range(3)]
    refused = ap.ExceptionResponse(
        ap.ExceptionStateError.SERVICE_NOT_ALLOWED, ap.ExceptionServiceError.OPERATION_NOT_POSSIBLE
    )
    assert answers[:2] == [refused, refused]
    assert isinstance(answers[2], ap.GetResponseNormal)
    assert sim.faults.exception_answers == 0


async def test_corrupted_frame_fails_the_clients_check() -> None:
    async with running_meter() as sim, associated(sim) as client:
        sim.faults.corrupt_answers = 1
        with pytest.raises(RemoteProtocolError, match=r"HCS|FCS|control|address"):
            await client.request(ap.GetRequestNormal(ap.AttributeDescriptor(3, ln("1-0:1.8.0"), 2)))
        assert sim.faults.corrupt_answers == 0
        # A new link works again.
        await client.connect()
        assert (await client.associate()).result is ap.AssociationResult.ACCEPTED


async def test_silent_and_late_meter_in_hdlc() -> None:
    loop = asyncio.get_running_loop()
    async with running_meter() as sim, hdlc_client(sim) as client:
        sim.faults.silent = True
        await client.write(client.conn.connect())
        with pytest.raises(MeterTimeout):
            await client.event(timeout=0.5)
        sim.faults.silent = False
        sim.faults.delay_s = 0.3
        client.conn = hdlc.HdlcConnection(hdlc.Role.CLIENT, CLIENT, SERVER)
        started = loop.time()
        await client.connect()
        late = loop.time() - started
    assert late >= 0.3


async def test_dropped_connection_is_a_transport_error() -> None:
    async with running_meter() as sim, associated(sim) as client:
        await sim.drop_connections()
        with pytest.raises(TransportError) as caught:
            await client.request(ap.GetRequestNormal(ap.AttributeDescriptor(3, ln("1-0:1.8.0"), 2)))
    assert not isinstance(caught.value, MeterTimeout)


async def test_block_transfer_decodes_the_whole_event_log() -> None:
    async with running_meter(history_days=3.0) as sim, associated(sim, pdu=256) as client:
        buffer = await client.get(7, "0-0:99.98.0", 2)
        captures = cosem.capture_objects(await client.get(7, "0-0:99.98.0", 3))
    rows = cosem.profile_rows(buffer, captures, 0)
    assert len(rows) == len(sim.physics.events) > 0
    assert all(buffer.items[0].items[0].tag is DataTag.OCTET_STRING for _ in rows)
