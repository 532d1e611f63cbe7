"""The simulated meter and a catalogue object it does not model (neutral current 1-0:91.7.0).

The catalogue says what the gateway can publish; the simulator is one meter, which may
lack some of it. It then answers as such a meter does: DLMS object-undefined and no entry
in its object list, IEC 62056-21 the error message to an R5 - and answers everything it
does model exactly as before.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import ManualClock, ScaledClock
from gateway.obis import CATALOGUE, Obis, ObisInfo
from gateway.protocols import apdu as ap
from gateway.protocols import iec62056_21 as iec
from gateway.protocols.axdr import Data
from gateway.simulator.cosem_server import REGISTERS, CosemServer, RegisterSpec, register_table
from gateway.simulator.physics import HouseholdModel, MeterPhysics
from gateway.simulator.server import SimulatedMeter
from tests.support.extra_catalogue import NEUTRAL_CURRENT

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
NEUTRAL = NEUTRAL_CURRENT.obis
VOLTAGE_L1 = next(i for i in CATALOGUE if str(i.obis) == "1-0:32.7.0")
#: A value that shares quantity C with a modelled one but is another object (E = 1).
OTHER_E = replace(VOLTAGE_L1, obis=Obis(1, 0, 32, 7, 1), name="Voltage L1 E1")
#: Inserted among the stock rows, not appended: what follows must not move.
WHERE = CATALOGUE.index(VOLTAGE_L1) + 1
VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "protocol-vectors" / "iec62056_21.json"


def with_row(row: ObisInfo) -> tuple[ObisInfo, ...]:
    return (*CATALOGUE[:WHERE], row, *CATALOGUE[WHERE:])


def shape(specs: tuple[RegisterSpec, ...]) -> list[tuple[Any, ...]]:
    """What a register looks like on the wire (the getters are closures, compared by use)."""
    return [(s.obis, s.base_name, s.tag, s.scaler, s.unit, s.factor) for s in specs]


def ln(obis: Obis) -> bytes:
    return bytes((obis.a, obis.b, obis.c, obis.d, obis.e, obis.f))


def server(registers: tuple[RegisterSpec, ...] = REGISTERS) -> CosemServer:
    physics = MeterPhysics(HouseholdModel(seed=7, disturbances_per_week=0.0), START, history_days=0.5)
    return CosemServer(physics, lambda: START, max_pdu=0xFFFF, registers=registers)


def ask(srv: CosemServer, request: ap.Apdu) -> bytes:
    answer = srv.handle(ap.encode_apdu(request))
    assert answer is not None
    return answer


def associated(srv: CosemServer, context: ap.ApplicationContext) -> CosemServer:
    aare = ap.decode_apdu(ask(srv, ap.Aarq(context, ap.InitiateRequest(0xFFFFFF, 0xFFFF))))
    assert isinstance(aare, ap.Aare)
    assert aare.result is ap.AssociationResult.ACCEPTED
    return srv


# --------------------------------------------------------------------------- DLMS/COSEM


@pytest.mark.parametrize("row", [NEUTRAL_CURRENT, OTHER_E], ids=lambda r: str(r.obis))
def test_register_table_leaves_out_an_unmodelled_row_and_moves_no_other(row: ObisInfo) -> None:
    registers = register_table(with_row(row))
    assert row.obis not in {s.obis for s in registers}
    assert shape(registers) == shape(REGISTERS)


def test_ln_get_of_the_unmodelled_object_is_object_undefined_and_the_rest_as_before() -> None:
    extended = associated(
        server(register_table(with_row(NEUTRAL_CURRENT))), ap.ApplicationContext.LOGICAL_NAME
    )
    stock = associated(server(), ap.ApplicationContext.LOGICAL_NAME)
    for attr in (1, 2, 3):
        answer = ap.decode_apdu(
            ask(extended, ap.GetRequestNormal(ap.AttributeDescriptor(3, ln(NEUTRAL), attr)))
        )
        assert answer == ap.GetResponseNormal(ap.DataAccessResult.OBJECT_UNDEFINED), attr
    # One GET-with-list as the gateway's poller sends it: the unmodelled item among the others.
    items = [ap.AttributeRequest(ap.AttributeDescriptor(3, ln(s.obis), 2)) for s in REGISTERS]
    items.insert(WHERE, ap.AttributeRequest(ap.AttributeDescriptor(3, ln(NEUTRAL), 2)))
    answer = ap.decode_apdu(ask(extended, ap.GetRequestWithList(tuple(items))))
    assert isinstance(answer, ap.GetResponseWithList)
    results = list(answer.results)
    assert results.pop(WHERE) is ap.DataAccessResult.OBJECT_UNDEFINED
    assert all(isinstance(r, Data) for r in results)
    del items[WHERE]
    assert ask(stock, ap.GetRequestWithList(tuple(items))) == ap.GetResponseWithList(tuple(results)).encode()


@pytest.mark.parametrize("context", list(ap.ApplicationContext), ids=lambda c: c.name)
def test_object_list_does_not_name_the_unmodelled_object_and_is_byte_for_byte_the_stock_one(
    context: ap.ApplicationContext,
) -> None:
    extended = associated(server(register_table(with_row(NEUTRAL_CURRENT))), context)
    stock = associated(server(), context)
    if context is ap.ApplicationContext.LOGICAL_NAME:
        request: ap.Apdu = ap.GetRequestNormal(ap.AttributeDescriptor(15, ln(Obis(0, 0, 40, 0, 0)), 2))
    else:
        request = ap.ReadRequest((ap.VariableName(ap.VAA_NAME_SN + 8),))
    listed = ask(extended, request)
    assert ln(NEUTRAL) not in listed
    assert listed == ask(stock, request)
    assert NEUTRAL not in {o.obis for o in extended.objects}


# --------------------------------------------------------------------------- IEC 62056-21


def error_message_vector() -> bytes:
    """``STX (ERROR) ETX BCC`` as the protocol vectors give it (IEC 62056-21:2002, error message)."""
    vectors = json.loads(VECTORS.read_text())["iec62056_21"]
    vector = next(v for v in vectors if v["name"] == "iec.prog.r5_answer_error")
    return bytes.fromhex(vector["hex"])


async def exchange(
    conn: iec.Iec21Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: iec.Event
) -> tuple[iec.Event, bytes]:
    """Send ``message``; the meter's answer and the bytes it came in."""
    writer.write(conn.send(message))
    await writer.drain()
    raw = bytearray()
    while isinstance(event := conn.next_event(), iec.NeedData):
        data = await reader.read(4096)
        assert data, "the meter closed the line"
        raw += data
        conn.receive_data(data)
    return event, bytes(raw)


async def test_r5_of_the_unmodelled_object_is_the_error_message_and_the_session_goes_on() -> None:
    physics = MeterPhysics(HouseholdModel(seed=7, disturbances_per_week=0.0), START, history_days=0.0)
    # The line runs 20 times faster than real time: the 300 Bd sign-on takes ~50 ms.
    meter = SimulatedMeter(physics, ManualClock(START), line_clock=ScaledClock(START, speed=20.0))
    assert meter.register(NEUTRAL.short) is None
    await meter.start()
    try:
        async with asyncio.timeout(20):
            reader, writer = await asyncio.open_connection(meter.host, meter.port)
            try:
                conn = iec.Iec21Connection(iec.Role.CLIENT)
                ident, _ = await exchange(conn, reader, writer, iec.SignOnRequest())
                assert isinstance(ident, iec.Identification)
                seed, _ = await exchange(conn, reader, writer, iec.OptionSelect("0", ident.baud_char, "1"))
                assert isinstance(seed, iec.Command)
                ack, _ = await exchange(conn, reader, writer, iec.Command("P", "1", f"({meter.password})"))
                assert isinstance(ack, iec.Ack)
                error, raw = await exchange(conn, reader, writer, iec.Command("R", "5", f"{NEUTRAL.short}()"))
                assert error == iec.DataMessage("(ERROR)")
                assert raw == error_message_vector()
                assert iec.parse_data_sets(error.data)[0].is_error
                # Still in programming mode: a modelled value is read as before.
                voltage, _ = await exchange(conn, reader, writer, iec.Command("R", "5", "32.7.0()"))
                assert voltage == iec.DataMessage(meter.register("32.7.0") or "")
            finally:
                writer.close()
                await writer.wait_closed()
    finally:
        await meter.stop()
