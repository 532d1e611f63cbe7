"""The simulated meter as a user of the gateway sees it: over a real ``socket://`` link.

Every test starts a :class:`SimulatedMeter` on 127.0.0.1 whose meter clock is a
:class:`ManualClock` (so meter time moves only when a test says so), opens the gateway's
real transport with :func:`open_serial` and talks IEC 62056-21 either through the real
session (:class:`Iec21Session` / :class:`Iec21Meter`) or, where the byte level matters,
through the sans-I/O core in the client role. The line itself runs in real time: the
simulator paces bytes at the negotiated baud rate, which some tests measure (lower
bounds only, computed from the bytes that crossed the line).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from gateway.clock import Clock, ManualClock, ScaledClock
from gateway.errors import DataNotAvailable, MeterTimeout, RemoteProtocolError, TransportError
from gateway.meter.iec21 import Iec21Meter, Iec21Session
from gateway.meter.line import LineStats
from gateway.obis import CATALOGUE, Kind, Obis
from gateway.protocols import iec62056_21 as iec
from gateway.simulator.physics import HouseholdModel, MeterClock, MeterPhysics
from gateway.simulator.server import SimulatedMeter
from gateway.transport import Framing, SerialTransport, open_serial
from tests.support.extra_catalogue import NEUTRAL_CURRENT, extended
from tests.support.simulated_meter import modelled

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
SERIAL = "54800102"
BITS_PER_CHAR = 10  # 7E1: start + 7 data + parity + stop
MIN_REACTION_S = 0.02  # IEC 62056-21: the meter answers no earlier than 20 ms after a request
SIGN_ON = b"/?!\r\n"
IDENTIFICATION = b"/LGz6\\2ZMD3104107.B40\r\n"  # what a ZMD at 19200 Bd, tr = 20 ms, sends
LINE_SPEEDUP = 5.0  # the mode C readout test runs its 300 Bd line this much faster than real time


def wire_time(n_bytes: int, baud: int) -> float:
    """Seconds ``n_bytes`` characters occupy a line at ``baud``."""
    return n_bytes * BITS_PER_CHAR / baud


def quiet_household() -> HouseholdModel:
    """The default household without random sags and swells, so voltages stay in the band."""
    return HouseholdModel(seed=7, disturbances_per_week=0.0)


@contextlib.asynccontextmanager
async def running_meter(meter_clock: Clock, **options: Any) -> AsyncIterator[SimulatedMeter]:
    """A simulated meter listening on 127.0.0.1 (any free port); no history before now."""
    physics = MeterPhysics(quiet_household(), meter_clock.now(), history_days=0.0)
    sim = SimulatedMeter(physics, meter_clock, host="127.0.0.1", serial_number=SERIAL, **options)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@contextlib.asynccontextmanager
async def connected(
    sim: SimulatedMeter,
    *,
    max_baudrate: int = 19200,
    response_timeout: float = 2.0,
    address: str = "",
    password: str = "00000000",
) -> AsyncIterator[tuple[SerialTransport, Iec21Session]]:
    """A real socket:// transport to ``sim`` and a session on it (not signed on yet)."""
    transport = await open_serial(sim.url, baudrate=300, framing=Framing.SEVEN_E_ONE, timeout=5)
    session = Iec21Session(
        transport,
        address=address,
        password=password,
        max_baudrate=max_baudrate,
        response_timeout=response_timeout,
    )
    try:
        yield transport, session
    finally:
        await session.close()
        await transport.close()


@contextlib.asynccontextmanager
async def signed_on(sim: SimulatedMeter, **options: Any) -> AsyncIterator[Iec21Meter]:
    """An :class:`Iec21Meter` in programming mode with ``sim``."""
    async with connected(sim, **options) as (_transport, session):
        meter = Iec21Meter(session)
        await meter.open()
        yield meter


async def next_event(
    conn: iec.Iec21Connection, transport: SerialTransport, timeout: float
) -> tuple[iec.Event, bytes]:
    """The next event of a raw client connection and the bytes it was made of."""
    raw = bytearray()
    while True:
        event = conn.next_event()
        if not isinstance(event, iec.NeedData):
            return event, bytes(raw)
        data = await transport.read(4096, timeout=timeout)
        raw += data
        conn.receive_data(data)


# --------------------------------------------------------------------------- 1. identity


#: (meter reaction time, meter's highest speed, client's highest speed) -> (FLAG id, speed)
IDENTITY_CASES = [
    ((0.02, 19200, 19200), ("LGz", 19200)),
    ((0.2, 19200, 19200), ("LGZ", 19200)),
    ((0.02, 9600, 19200), ("LGz", 9600)),
    ((0.02, 19200, 2400), ("LGz", 2400)),
]


async def sign_on_to(
    reaction_s: float, meter_max: int, client_max: int
) -> tuple[tuple[object, ...], float, int]:
    """Sign on to a meter configured so: what the gateway learnt (as one comparable tuple),
    then the duration and the byte count of one read at the negotiated speed."""
    loop = asyncio.get_running_loop()
    async with (
        running_meter(ManualClock(START), reaction_time_s=reaction_s, max_baudrate=meter_max) as sim,
        connected(sim, max_baudrate=client_max) as (transport, session),
    ):
        info = await Iec21Meter(session).open()
        identity = session.identity
        assert identity is not None
        # Still in programming mode at that speed: a read after the sign-on works.
        before = session.stats.bytes_sent + session.stats.bytes_received
        started = loop.time()
        error_register = (await session.read("F.F")).value
        read_s = loop.time() - started
        read_bytes = session.stats.bytes_sent + session.stats.bytes_received - before
        learnt = (
            info.manufacturer,
            info.model,
            info.firmware,
            info.serial_number,
            info.baudrate,
            identity.baudrate,
            transport.baudrate,
            identity.reaction_time,
            error_register,
        )
        return learnt, read_s, read_bytes


async def test_sign_on_gives_identity_and_the_lower_of_both_speeds() -> None:
    # The four meters are independent; signing on to them concurrently saves wall time.
    results = await asyncio.gather(*(sign_on_to(*config) for config, _ in IDENTITY_CASES))
    for (config, expected), (got, read_s, read_bytes) in zip(IDENTITY_CASES, results, strict=True):
        manufacturer, baud = expected
        reaction = 0.02 if manufacturer[2].islower() else 0.2
        want = (manufacturer, "ZMD3104107", "B40", SERIAL, baud, baud, baud, reaction, "00000000")
        assert got == want, f"meter tr, meter max, client max = {config}"
        # The meter switched too: no faster than the negotiated speed allows.
        assert read_s >= wire_time(read_bytes, baud), (config, read_s, read_bytes)


async def test_identification_arrives_no_sooner_than_the_300_bd_line_allows() -> None:
    """5 request bytes, >= 20 ms reaction, 23 identification bytes: >= 0.95 s at 300 Bd."""
    loop = asyncio.get_running_loop()
    async with running_meter(ManualClock(START)) as sim:
        transport = await open_serial(sim.url, baudrate=300, timeout=5)
        try:
            conn = iec.Iec21Connection(iec.Role.CLIENT)
            request = conn.send(iec.SignOnRequest())
            started = loop.time()
            await transport.write(request, timeout=2)
            event, raw = await next_event(conn, transport, timeout=3)
            elapsed = loop.time() - started
        finally:
            await transport.close()

    assert request == SIGN_ON
    assert isinstance(event, iec.Identification)
    assert raw == IDENTIFICATION
    # The last identification byte cannot be in before the request has crossed the line,
    # the meter has waited its reaction time and all 23 bytes have crossed back.
    floor = wire_time(len(request), 300) + MIN_REACTION_S + wire_time(len(raw), 300)
    assert elapsed >= floor, f"identification complete after {elapsed:.3f} s, the line needs {floor:.3f} s"


async def test_reading_at_300_bd_is_paced_and_agrees_with_19200_bd() -> None:
    loop = asyncio.get_running_loop()

    async def timed_read(
        sim: SimulatedMeter, client_max: int
    ) -> tuple[int, float, LineStats, float, int, str]:
        async with connected(sim, max_baudrate=client_max, response_timeout=3.0) as (_t, session):
            started = loop.time()
            identity = await session.open()
            opened = loop.time()
            after_open = replace(session.stats)
            value = (await session.read("1.8.0")).value
            read_s = loop.time() - opened
            read_bytes = (
                session.stats.bytes_sent
                + session.stats.bytes_received
                - after_open.bytes_sent
                - after_open.bytes_received
            )
            return identity.baudrate, opened - started, after_open, read_s, read_bytes, value

    async with running_meter(ManualClock(START), max_baudrate=19200) as sim:
        slow, fast = await asyncio.gather(timed_read(sim, 300), timed_read(sim, 19200))

    slow_baud, slow_open_s, slow_stats, slow_read_s, slow_read_bytes, slow_value = slow
    fast_baud, _fast_open_s, _fast_stats, fast_read_s, fast_read_bytes, fast_value = fast
    assert (slow_baud, fast_baud) == (300, 19200)
    # The whole 300 Bd conversation is half duplex: every byte counted took its wire time.
    open_bytes = slow_stats.bytes_sent + slow_stats.bytes_received
    assert open_bytes >= len(SIGN_ON) + len(IDENTIFICATION)
    assert slow_open_s >= wire_time(open_bytes, 300), (slow_open_s, open_bytes)
    assert slow_read_bytes >= len("\x01R5\x021.8.0()\x03?") + len("\x021.8.0(012345.0000*kWh)\x03?")
    assert slow_read_s >= wire_time(slow_read_bytes, 300), (slow_read_s, slow_read_bytes)
    assert fast_read_s >= wire_time(fast_read_bytes, 19200)
    # Same meter, frozen meter clock: both speeds read the same register value.
    assert slow_value == fast_value
    assert float(slow_value) == pytest.approx(12345.0, abs=1e-4)


# --------------------------------------------------------------------------- 2. catalogue


def check_instant_values(values: dict[str, tuple[float, str]]) -> None:
    """Physically plausible and mutually consistent instantaneous values (powered meter)."""
    v = {code: value for code, (value, _unit) in values.items()}
    for info in CATALOGUE:
        if info.kind is Kind.INSTANTANEOUS and modelled(info.obis):
            assert info.eu_low <= v[info.obis.short] <= info.eu_high, (info.name, v[info.obis.short])
    for code in ("32.7.0", "52.7.0", "72.7.0"):
        assert 180.0 <= v[code] <= 260.0, (code, v[code])
    assert 49.9 <= v["14.7.0"] <= 50.1
    for code in ("13.7.0", "33.7.0", "53.7.0", "73.7.0"):
        assert 0.0 <= v[code] <= 1.0, (code, v[code])
    # Import and export of one quantity are never both non-zero at one instant.
    for imp, exp in (("1.7.0", "2.7.0"), ("3.7.0", "4.7.0"), ("21.7.0", "22.7.0"), ("23.7.0", "24.7.0")):
        assert v[imp] == 0.0 or v[exp] == 0.0, (imp, v[imp], exp, v[exp])
    # Totals are the sums of the phases (each value rounded to 1 W / 1 var).
    net_p = v["1.7.0"] - v["2.7.0"]
    net_q = v["3.7.0"] - v["4.7.0"]
    phases = [("21", "22", "23", "24", "32", "31", "33"), ("41", "42", "43", "44", "52", "51", "53")]
    phases.append(("61", "62", "63", "64", "72", "71", "73"))
    assert net_p == pytest.approx(sum(v[f"{a}.7.0"] - v[f"{b}.7.0"] for a, b, *_ in phases), abs=0.005)
    assert net_q == pytest.approx(
        sum(v[f"{c}.7.0"] - v[f"{d}.7.0"] for _a, _b, c, d, *_ in phases), abs=0.005
    )
    if math.hypot(net_p, net_q) > 0.1:
        assert v["13.7.0"] == pytest.approx(abs(net_p) / math.hypot(net_p, net_q), abs=0.02)
    for pi, pe, qi, qe, u, i, pf in phases:
        p = v[f"{pi}.7.0"] - v[f"{pe}.7.0"]
        q = v[f"{qi}.7.0"] - v[f"{qe}.7.0"]
        s = math.hypot(p, q)
        # S = U * I per phase (I has 2 decimals: +-5 mA at ~230 V is ~1.2 VA).
        assert v[f"{u}.7.0"] * v[f"{i}.7.0"] / 1000.0 == pytest.approx(s, abs=0.004), (u, i)
        if s > 0.1:
            assert v[f"{pf}.7.0"] == pytest.approx(abs(p) / s, abs=0.02), pf


async def test_catalogue_objects_are_answered_with_a_plausible_number_and_unit_or_as_not_there() -> None:
    """What the simulator models, with its value; any other catalogue object (a row added for
    neutral current here) with the error message, as a meter without it answers."""
    clock = ManualClock(START)
    rows = extended(CATALOGUE)
    assert not modelled(NEUTRAL_CURRENT.obis)  # so ``rows`` holds an object the meter lacks
    present = [info for info in rows if modelled(info.obis)]
    energy = [info for info in present if info.kind is Kind.ENERGY]
    assert {info.obis.short for info in energy} == {"1.8.0", "2.8.0", "3.8.0", "4.8.0"}
    first: dict[str, tuple[float, str]] = {}
    async with running_meter(clock) as sim, signed_on(sim) as meter:
        for info in rows:  # in catalogue order: the session goes on after an (ERROR)
            if info in present:
                first[info.obis.short] = await meter.read_value(info.obis)
            else:
                with pytest.raises(DataNotAvailable):
                    await meter.read_value(info.obis)
        clock.advance(3600)
        later = {info.obis.short: await meter.read_value(info.obis) for info in energy}

    for info in present:
        value, unit = first[info.obis.short]
        assert unit == info.unit, (info.name, unit)
        assert math.isfinite(value), info.name
    check_instant_values(first)
    for info in energy:
        assert later[info.obis.short][1] == info.unit
        before, after = first[info.obis.short][0], later[info.obis.short][0]
        assert 0.0 <= before <= after, (info.name, before, after)
    # A household never stands still for an hour: some active energy flowed.
    moved = sum(later[c][0] - first[c][0] for c in ("1.8.0", "2.8.0"))
    assert 0.0 < moved <= 60.0  # at most the catalogue's 60 kW for one hour


# --------------------------------------------------------------------------- 3. errors


async def test_wrong_password_is_refused_and_the_configured_one_accepted() -> None:
    async def sign_on_with(sim: SimulatedMeter, password: str) -> float:
        async with signed_on(sim, password=password) as meter:
            return (await meter.read_value(Obis.parse("1-0:1.8.0")))[0]

    async with running_meter(ManualClock(START), password="12345678") as sim:
        wrong, right = await asyncio.gather(
            sign_on_with(sim, "00000000"), sign_on_with(sim, "12345678"), return_exceptions=True
        )
    assert isinstance(wrong, RemoteProtocolError), wrong
    assert "password" in str(wrong)
    assert "NAK" in str(wrong)
    assert not isinstance(right, BaseException), right
    assert right == pytest.approx(12345.0, abs=1e-4)


async def test_unknown_register_is_an_error_and_the_session_stays_usable() -> None:
    async with running_meter(ManualClock(START)) as sim, signed_on(sim) as meter:
        with pytest.raises(RemoteProtocolError) as caught:
            await meter.session.read("99.99.9")
        value, unit = await meter.read_value(Obis.parse("1-0:32.7.0"))
    assert "(ERROR)" in str(caught.value)
    assert "99.99.9" in str(caught.value)
    assert unit == "V"
    assert 180.0 <= value <= 260.0


# --------------------------------------------------------------------------- 4. mode C readout


async def test_mode_c_data_readout_at_300_bd() -> None:
    """Sign-on and ``ACK 0 0 0``: the whole readout at 300 Bd, checked byte for byte.

    ~350 bytes at 300 Bd are ~12 s of real line time; the simulated line runs on a clock
    ``LINE_SPEEDUP`` times faster than real time, so the pacing is measured on that clock.
    """
    clock = ManualClock(START + timedelta(hours=3, minutes=4, seconds=5))
    line_clock = ScaledClock(START, speed=LINE_SPEEDUP)
    async with running_meter(clock, line_clock=line_clock) as sim:
        transport = await open_serial(sim.url, baudrate=300, timeout=5)
        try:
            conn = iec.Iec21Connection(iec.Role.CLIENT)
            await transport.write(conn.send(iec.SignOnRequest()), timeout=2)
            ident, _ = await next_event(conn, transport, timeout=3)
            assert isinstance(ident, iec.Identification)
            option = conn.send(iec.OptionSelect(protocol="0", baud_char="0", mode="0"))
            started = line_clock.monotonic()
            await transport.write(option, timeout=2)
            message, raw = await next_event(conn, transport, timeout=3)
            line_time = line_clock.monotonic() - started
            state_after = conn.state
        finally:
            await transport.close()
        a_plus = sim.physics.registers.a_plus

    assert ident.manufacturer == "LGz"
    assert isinstance(message, iec.DataMessage)
    assert message.complete
    assert state_after is iec.State.IDLE  # a readout ends the conversation
    # The core checked the BCC; check it independently on the bytes as received.
    assert raw[0] == iec.STX
    assert raw[-2] == iec.ETX
    assert raw[-1] == iec.bcc(raw)
    lines = [line for line in message.data.split("\r\n") if line]
    assert lines[-1] == "!"
    sets = {ds.address: ds for ds in iec.parse_data_sets(message.data)}
    assert sets["F.F"].value == "00000000"
    assert sets["C.1.0"].value == SERIAL
    assert sets["0.9.1"].value == "12:04:05"
    assert sets["0.9.2"].value == "26-03-10"
    assert sets["1.8.0"].unit == "kWh"
    assert sets["1.8.0"].number() == pytest.approx(a_plus, abs=5e-5)
    assert sets["32.7.0"].unit == "V"
    assert 180.0 <= sets["32.7.0"].number() <= 260.0
    # The meter stayed at 300 Bd: on the line clock the readout took at least its wire time.
    assert line_time >= wire_time(len(raw), 300), (line_time, len(raw))


# --------------------------------------------------------------------------- 5. faults


async def test_silent_meter_times_out_within_the_response_timeout_and_recovers() -> None:
    loop = asyncio.get_running_loop()
    timeout = 0.3
    async with (
        running_meter(ManualClock(START)) as sim,
        connected(sim, response_timeout=timeout) as (_transport, session),
    ):
        await session.open()
        sim.faults.silent = True
        started = loop.time()
        with pytest.raises(MeterTimeout):
            async with asyncio.timeout(timeout + 2.0):  # generous slack: only a hang fails here
                await session.read("1.8.0")
        elapsed = loop.time() - started
        # The meter is back: a new sign-on on the same line works again.
        sim.faults.silent = False
        await session.open()
        value = await session.read("1.8.0")
    assert elapsed >= timeout
    assert value.unit == "kWh"


async def test_late_answer_within_the_timeout_is_read_and_beyond_it_times_out() -> None:
    loop = asyncio.get_running_loop()
    timeout = 0.5
    async with (
        running_meter(ManualClock(START)) as sim,
        connected(sim, response_timeout=timeout) as (_transport, session),
    ):
        await session.open()
        sim.faults.delay_s = 0.2
        started = loop.time()
        late = await session.read("1.8.0")
        late_s = loop.time() - started
        sim.faults.delay_s = 1.5
        started = loop.time()
        with pytest.raises(MeterTimeout):
            await session.read("1.8.0")
        timed_out_s = loop.time() - started
    assert late.unit == "kWh"
    assert late_s >= 0.2  # it really was late
    assert timeout <= timed_out_s < 1.5  # gave up before the late answer came


async def test_corrupted_answer_is_repeated_after_nak() -> None:
    """One damaged byte costs one NAK and one repeated answer, not a new sign-on at 300 Bd."""
    async with running_meter(ManualClock(START)) as sim, connected(sim) as (_transport, session):
        await session.open()
        good = await session.read("1.8.0")
        sent = session.stats.bytes_sent
        sim.faults.corrupt_answers = 1
        repeated = await session.read("1.8.0")
        assert session.stats.bytes_sent - sent == len(b"\x01R5\x021.8.0()\x03") + 1 + 1  # R5, NAK
    assert repeated == good
    assert sim.faults.corrupt_answers == 0


async def test_answers_damaged_beyond_the_retries_are_rejected_and_a_new_session_reads_again() -> None:
    async with running_meter(ManualClock(START)) as sim:
        async with connected(sim) as (_transport, session):
            await session.open()
            good = await session.read("1.8.0")
            sim.faults.corrupt_answers = 3  # the answer and both repeats
            with pytest.raises(RemoteProtocolError, match=r"BCC|invalid|unexpected|expected"):
                await session.read("1.8.0")
        assert sim.faults.corrupt_answers == 0
        async with connected(sim) as (_transport, session):
            await session.open()
            again = [await session.read("1.8.0") for _ in range(2)]
    assert all(ds == good for ds in again)


async def test_dropped_connection_is_a_transport_error_not_a_timeout() -> None:
    async with running_meter(ManualClock(START)) as sim:
        async with connected(sim, response_timeout=5.0) as (transport, session):
            await session.open()
            await sim.drop_connections()
            with pytest.raises(TransportError) as caught:
                await session.read("1.8.0")
            assert transport.closed
        # The meter still listens: a new connection is accepted.
        fresh = await open_serial(sim.url, baudrate=300, timeout=5)
        await fresh.close()
    assert not isinstance(caught.value, MeterTimeout)


async def test_stopped_meter_refuses_connections_and_is_back_on_the_same_port_after_start() -> None:
    async with running_meter(ManualClock(START)) as sim:
        url, port = sim.url, sim.port
        async with connected(sim) as (transport, _session):
            await sim.stop()
            with pytest.raises(TransportError) as lost:  # the open line is gone too
                await transport.read(timeout=5)
        with pytest.raises(TransportError) as refused:
            await open_serial(url, baudrate=300, timeout=5)
        await sim.start()
        assert (sim.url, sim.port) == (url, port)
        async with connected(sim) as (_transport, session):
            await session.open()
            value = await session.read("C.1.0")
    assert not isinstance(lost.value, MeterTimeout)
    assert not isinstance(refused.value, MeterTimeout)
    assert value.value == SERIAL


# --------------------------------------------------------------------------- 6. event log


#: (minute after START, what happens to the meter, event code it must log)
EVENT_SCRIPT = [
    (2, "open_terminal_cover", 40),  # before the range read below
    (3, "close_terminal_cover", 41),
    (10, "power_down", 1),
    (14, "power_up", 2),
    (20, "open_terminal_cover", 40),
    (27, "close_terminal_cover", 41),
    (40, "power_down", 1),  # after it
    (41, "power_up", 2),
]


async def test_event_log_returns_the_events_of_the_range_in_order() -> None:
    clock = ManualClock(START)

    def at(minutes: int) -> datetime:
        return START + timedelta(minutes=minutes)

    async with running_meter(clock) as sim, signed_on(sim) as meter:
        outage: list[float] = []
        for minutes, action, _code in EVENT_SCRIPT:
            clock.set(at(minutes))
            getattr(sim.physics, action)(clock.now())
            if minutes == 10:
                clock.set(at(12))  # while the supply is down, the meter measures dead phases
                for code in ("1-0:32.7.0", "1-0:14.7.0", "1-0:1.7.0"):
                    outage.append((await meter.read_value(Obis.parse(code)))[0])
        clock.set(at(50))
        in_range = await meter.read_events(at(5), at(30))
        everything = await meter.read_events(START, clock.now())
        none = await meter.read_events(at(42), at(50))

    assert [(e.time, e.code) for e in in_range] == [
        (at(10), 1),
        (at(14), 2),
        (at(20), 40),
        (at(27), 41),
    ]
    assert [(e.time, e.code) for e in everything] == [(at(m), code) for m, _, code in EVENT_SCRIPT]
    assert none == []
    assert outage == [0.0, 0.0, 0.0]


# --------------------------------------------------------------------------- 7. clock


async def test_meter_clock_is_read_to_the_second_across_midnight() -> None:
    clock = ManualClock(datetime(2026, 3, 10, 23, 59, 30, 750000, tzinfo=UTC))
    async with running_meter(clock) as sim, signed_on(sim) as meter:
        before = await meter.read_clock(clock.now())
        clock.advance(45)  # 00:00:15.75 on the next day
        after = await meter.read_clock(clock.now())
        now = clock.now()
    assert before.tzinfo is not None
    assert abs(before - (now - timedelta(seconds=45))) < timedelta(seconds=1)
    assert abs(after - now) < timedelta(seconds=1)
    assert after.date() == date(2026, 3, 11)


async def test_meter_clock_offset_shows_as_deviation() -> None:
    clock = ManualClock(START)
    meter_clock = MeterClock(clock, offset_s=30.0)
    async with running_meter(meter_clock) as sim, signed_on(sim) as meter:
        clock.advance(600)
        reading = await meter.read_clock(clock.now())
        now = clock.now()
    assert reading - now == timedelta(seconds=30)


async def test_clock_read_while_midnight_passes_is_not_a_day_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Date and time are two R5 reads; midnight may pass between them (at 300 Bd a read
    takes over a second). Here one second of meter time passes after the date is answered."""
    clock = ManualClock(datetime(2026, 3, 10, 23, 59, 59, 500000, tzinfo=UTC))
    async with running_meter(clock) as sim, signed_on(sim) as meter:
        answer = sim.register

        def register_then_tick(address: str) -> str | None:
            text = answer(address)
            if address == "0.9.2":
                clock.advance(1.0)  # the time read that follows sees 00:00:00.5 of the next day
            return text

        monkeypatch.setattr(sim, "register", register_then_tick)
        earliest = clock.now()
        reading = await meter.read_clock(clock.now())
        latest = clock.now()
    assert latest > earliest  # the date was read, and midnight passed, during read_clock()
    assert earliest - timedelta(seconds=1) <= reading <= latest, (
        f"meter clock read as {reading}, but it was between {earliest} and {latest}"
    )


# --------------------------------------------------------------------------- 8. addressing


async def test_sign_on_for_another_meter_is_ignored_and_for_this_one_answered() -> None:
    async with running_meter(ManualClock(START)) as sim:
        transport = await open_serial(sim.url, baudrate=300, timeout=5)
        try:
            other = Iec21Session(transport, address="99999999", max_baudrate=19200, response_timeout=0.2)
            with pytest.raises(MeterTimeout):
                await other.open()
            assert not other.is_open
            # Same line (a bus): a sign-on with our serial number gets the identification.
            mine = Iec21Meter(Iec21Session(transport, address=SERIAL, max_baudrate=19200, response_timeout=2))
            info = await mine.open()
            await mine.close()
        finally:
            await transport.close()
    assert info.manufacturer == "LGz"
    assert info.serial_number == SERIAL
