"""The simulated meter on a TCP port: physics + the IEC 62056-21 core in the meter role.

It behaves like a Landis+Gyr ZMD on a TCP-transparent line:

* every connection starts at 300 Bd; the sign-on ``/?!`` is answered with an
  identification (``/LGz6\\2ZMD3104107.B40``: lower-case third letter = 20 ms reaction
  time, baud character 6 = 19200 Bd; upper-case and 5 when configured so);
* option select ``ACK 0 Z 0`` gives the mode C readout, ``ACK 0 Z 1`` programming mode
  with a password seed ``P0``; ``R5`` reads registers, ``P.01``/``P.02`` load profiles by
  range and ``P.98`` the logbook; ``B0`` breaks back to 300 Bd;
* an ``R5`` of an address the meter does not model (a catalogue object the physics has
  no value for, e.g. neutral current 91.7.0) is answered with the error message
  ``STX (ERROR) ETX BCC`` (IEC 62056-21:2002 §6.3, a data set without address), as a
  meter without that object does; the session stays in programming mode;
* bytes are paced at the current baud rate (10 bits per character) and every answer
  waits the meter's reaction time after the request has fully "arrived", so timings are
  those of a real line;
* fault knobs: no answer, late answer, corrupted byte, dropped connection, xDLMS
  exception answers.

DLMS/COSEM over HDLC (IEC 62056-46, 8N1) is served too, by :class:`_HdlcBus`,
:class:`_HdlcLink` and the COSEM application layer
:class:`~gateway.simulator.cosem_server.CosemServer`:

* directly: the first byte of a request while the line is idle is the HDLC flag 0x7E;
  the line then runs at ``hdlc_baudrate`` 8N1;
* via IEC 62056-21 mode E: after the sign-on the client's option select ``ACK 2 Z 2``
  switches the line to HDLC at the option's baud rate (at most ``max_baudrate``) with no
  acknowledgement from the meter, which then waits for the SNRM.

The server answers as logical device 1 with physical address ``physical_address``, in
the address form the frame used (2 or 4 bytes, or the 1-byte address 1), to any client
SAP; frames for other addresses are ignored. A frame with another address pair than the
link in use starts a new link (the old association ends). Further meters can sit on the
same line (:meth:`SimulatedMeter.add_station`, an RS485 multi-drop bus): each answers
the frames for its own physical address from its own physics, with a link and an
association of its own; the line falls back to idle after the last one's DISC. SNRM is answered with UA
carrying :func:`~gateway.protocols.hdlc.negotiate` of the proposal and ``hdlc_limits``.
DISC is answered with UA (DM when no link) and then the line is back to 300 Bd idle, as
it is after 120 s of silence. Damaged frames (HCS/FCS, length) are ignored; frames the
link does not expect (wrong sequence numbers) are ignored too: the meter never
retransmits, so a client that lost an answer has to set up the link again.

Meter time is UTC (load profile stamps carry season digit 2). With ``timezone``, IEC
62056-21 answers are in that zone's local time, as a meter on local time gives them: its
clock (0.9.1 time, 0.9.2 date, no season flag) and its profile stamps (season digit 0 /
1); the COSEM clock stays UTC with deviation 0. The meter's state advances lazily to the
meter clock whenever a request is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from gateway.clock import Clock, ScaledClock, SystemClock
from gateway.config import SimulatorConfig
from gateway.errors import RemoteProtocolError
from gateway.localtime import local_to_utc, meter_zone, utc_to_local
from gateway.obis import Obis
from gateway.protocols import apdu as ap
from gateway.protocols import hdlc
from gateway.protocols import iec62056_21 as iec
from gateway.simulator.cosem_server import CosemServer
from gateway.simulator.physics import HouseholdModel, Instant, MeterClock, MeterPhysics, Registers
from gateway.streams import EVENT_LOG, PROFILES

log = logging.getLogger(__name__)

BITS_PER_CHAR = 10  # start + 7 data + parity + stop (7E1), or start + 8 + stop (8N1)
LP1, LP2 = PROFILES  # the load profiles the meter keeps (P.01, P.02)
INACTIVITY_TIMEOUT_S = 120.0  # the meter falls back to 300 Bd after this much silence


@dataclass(slots=True)
class Faults:
    """Knobs a test turns to make the meter misbehave."""

    #: Swallow every request without answering.
    silent: bool = False
    #: Extra delay before every answer, seconds (a late answer).
    delay_s: float = 0.0
    #: Corrupt one byte in each of the next N answers (HDLC: one byte of the answer's
    #: first frame after the length field, so that the client's HCS/FCS check fails).
    corrupt_answers: int = 0
    #: Answer the next N xDLMS requests (GET or Read, not AARQ/RLRQ) with
    #: ExceptionResponse(SERVICE_NOT_ALLOWED, OPERATION_NOT_POSSIBLE).
    exception_answers: int = 0


@dataclass(frozen=True, slots=True)
class _Value:
    """How the meter formats one register: its getter, decimals and unit text."""

    get: Callable[[Instant, Registers], float]
    decimals: int
    width: int
    unit: str

    def format(self, instant: Instant, registers: Registers) -> str:
        value = self.get(instant, registers)
        text = f"{value:0{self.width}.{self.decimals}f}"
        return f"{text}*{self.unit}" if self.unit else text


def _phase(n: int, attr: str) -> Callable[[Instant, Registers], float]:
    return lambda i, _r: float(getattr(i.phases[n], attr))


def _instant(attr: str) -> Callable[[Instant, Registers], float]:
    return lambda i, _r: float(getattr(i, attr))


def _register(attr: str) -> Callable[[Instant, Registers], float]:
    return lambda _i, r: float(getattr(r, attr))


def _phase_signed(n: int, attr: str, sign: int) -> Callable[[Instant, Registers], float]:
    return lambda i, _r: max(0.0, sign * float(getattr(i.phases[n], attr)))


#: Registers the simulated meter answers, keyed by OBIS C.D.E. Energy has 5 decimals in
#: kWh (0.01 Wh), more than a stock ZMD shows (a meter's test mode does), so that the
#: register's increase over a few seconds can be checked against the integral of power.
VALUES: dict[tuple[int, int, int], _Value] = {
    (1, 8, 0): _Value(_register("a_plus"), 5, 12, "kWh"),
    (2, 8, 0): _Value(_register("a_minus"), 5, 12, "kWh"),
    (3, 8, 0): _Value(_register("r_plus"), 5, 12, "kvarh"),
    (4, 8, 0): _Value(_register("r_minus"), 5, 12, "kvarh"),
    (1, 7, 0): _Value(_instant("active_import_kw"), 3, 6, "kW"),
    (2, 7, 0): _Value(_instant("active_export_kw"), 3, 6, "kW"),
    (3, 7, 0): _Value(_instant("reactive_import_kvar"), 3, 6, "kvar"),
    (4, 7, 0): _Value(_instant("reactive_export_kvar"), 3, 6, "kvar"),
    (13, 7, 0): _Value(_instant("power_factor"), 3, 5, ""),
    (14, 7, 0): _Value(_instant("frequency_hz"), 2, 5, "Hz"),
    **{(c, 7, 0): _Value(_phase(n, "voltage_v"), 1, 5, "V") for n, c in enumerate((32, 52, 72))},
    **{(c, 7, 0): _Value(_phase(n, "current_a"), 2, 6, "A") for n, c in enumerate((31, 51, 71))},
    **{(c, 7, 0): _Value(_phase_signed(n, "active_kw", 1), 3, 6, "kW") for n, c in enumerate((21, 41, 61))},
    **{(c, 7, 0): _Value(_phase_signed(n, "active_kw", -1), 3, 6, "kW") for n, c in enumerate((22, 42, 62))},
    **{
        (c, 7, 0): _Value(_phase_signed(n, "reactive_kvar", 1), 3, 6, "kvar")
        for n, c in enumerate((23, 43, 63))
    },
    **{
        (c, 7, 0): _Value(_phase_signed(n, "reactive_kvar", -1), 3, 6, "kvar")
        for n, c in enumerate((24, 44, 64))
    },
    **{(c, 7, 0): _Value(_phase(n, "power_factor"), 3, 5, "") for n, c in enumerate((33, 53, 73))},
}

READOUT_ORDER = [(1, 8, 0), (2, 8, 0), (3, 8, 0), (4, 8, 0), (32, 7, 0), (52, 7, 0), (72, 7, 0)]
READOUT_ORDER += [(31, 7, 0), (51, 7, 0), (71, 7, 0), (1, 7, 0), (2, 7, 0), (13, 7, 0), (14, 7, 0)]

LP1_CHANNELS: tuple[tuple[str, str], ...] = (
    ("1.29.0", "kWh"),
    ("2.29.0", "kWh"),
    ("3.29.0", "kvarh"),
    ("4.29.0", "kvarh"),
)
LP2_CHANNELS: tuple[tuple[str, str], ...] = (
    ("32.5.0", "V"),
    ("52.5.0", "V"),
    ("72.5.0", "V"),
    ("31.5.0", "A"),
    ("51.5.0", "A"),
    ("71.5.0", "A"),
)


def _ptime(when: datetime, zone: tzinfo | None = None) -> iec.ProfileTime:
    """A profile stamp: UTC (season 2), or local time with season 0/1 for a local-time meter."""
    if zone is None:
        when = when.astimezone(UTC)
        return iec.ProfileTime(when.year, when.month, when.day, when.hour, when.minute, when.second, 2)
    local, dst = utc_to_local(when, zone)
    return iec.ProfileTime.from_datetime(local, 1 if dst else 0)


def _utc(t: iec.ProfileTime, zone: tzinfo | None = None) -> datetime:
    if t.season == 2:
        return t.naive.replace(tzinfo=UTC)
    return local_to_utc(t.naive, zone, None if t.season < 0 else t.season == 1)


class SimulatedMeter:
    """A simulated three-phase meter serving IEC 62056-21 on a TCP port."""

    def __init__(
        self,
        physics: MeterPhysics,
        meter_clock: Clock,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        reaction_time_s: float = 0.02,
        max_baudrate: int = 19200,
        serial_number: str = "54800102",
        password: str = "00000000",
        model: str = "ZMD3104107.B40",
        line_clock: Clock | None = None,
        seed: int = 1,
        hdlc_baudrate: int = 9600,
        physical_address: int = 17,
        referencing: str = "both",
        hdlc_limits: hdlc.HdlcParameters = hdlc.HdlcParameters(512, 512, 1, 1),  # noqa: B008 - frozen
        max_pdu: int = 1024,
        timezone: str = "",
    ) -> None:
        self.physics = physics
        #: IEC 62056-21 clock and profile stamps in this zone's local time (None: UTC,
        #: season digit 2).
        self.zone = meter_zone(timezone)
        self.meter_clock = meter_clock
        self.host, self.port = host, port
        self.reaction_time_s = reaction_time_s
        self.max_baudrate = max_baudrate
        self.serial_number = serial_number
        self.password = password
        self.model = model
        self.line_clock = line_clock or SystemClock()
        if hdlc_baudrate not in iec.BAUD_CHARACTER:
            raise ValueError(
                f"hdlc_baudrate must be one of {sorted(iec.BAUD_CHARACTER)}, got {hdlc_baudrate}"
            )
        if referencing not in ("ln", "sn", "both"):
            raise ValueError(f"referencing must be 'ln', 'sn' or 'both', got {referencing!r}")
        self.hdlc_baudrate = hdlc_baudrate
        self.physical_address = physical_address
        self.referencing = referencing
        self.hdlc_limits = hdlc_limits
        self.max_pdu = max_pdu
        # Checked now: a bad address fails here, not on the first frame.
        forms = (2, 4) if physical_address < 0x80 else (4,)  # the 2-byte form has 7 bits
        self.hdlc_addresses = frozenset(
            {hdlc.HdlcAddress(1), *(hdlc.HdlcAddress(1, physical_address, n) for n in forms)}
        )
        self.faults = Faults()
        #: The meters on this meter's line, this one first (:meth:`add_station`).
        self.stations: list[SimulatedMeter] = [self]
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._no_connections = asyncio.Event()

    @property
    def url(self) -> str:
        """Where the meter's line is (a further station's is the first one's port)."""
        line = self.stations[0]
        return f"socket://{line.host}:{line.port}"

    def add_station(self, other: SimulatedMeter) -> None:
        """Put ``other`` on this meter's line: an RS485 multi-drop bus whose stations answer
        direct HDLC frames by their physical address (IEC 62056-46 §6.4.2.2).

        ``other`` is not started: its frames come over this meter's port. The 1-byte
        address (logical device only) stays this meter's: on a bus it names no one station.
        """
        if self.stations[0] is not self:
            raise ValueError("add stations to the meter whose port the line is")
        mine = frozenset(a for a in other.hdlc_addresses if a.length > 1)
        for station in self.stations:
            if mine & station.hdlc_addresses:
                raise ValueError(
                    f"physical address {other.physical_address} is taken on the line by meter "
                    f"{station.serial_number}"
                )
        other.hdlc_addresses = mine
        other.stations = self.stations
        self.stations.append(other)

    @property
    def identification(self) -> iec.Identification:
        # A lower-case third letter announces the 20 ms minimum reaction time (IEC 62056-21).
        maker = "LGz" if self.reaction_time_s < 0.2 else "LGZ"
        return iec.Identification(maker, iec.BAUD_CHARACTER[self.max_baudrate], self.model, "2")

    async def start(self) -> None:
        """Listen (again, on the same port after a stop)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection (the meter is gone)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        await self.drop_connections()

    async def power_off(self) -> None:
        """The supply fails: the meter logs a power-down (event 1) at its own time, stops
        listening and drops its line, until :meth:`power_on`."""
        self.advance()
        self.physics.power_down(self.now())
        await self.stop()

    async def power_on(self, clock: datetime | None = None) -> None:
        """The supply returns: the meter logs a power-up (event 2) and listens again on its port.

        ``clock``: the meter comes back with its clock at this time (its backup ran down, or
        a fault set it: a default date, hours back), as :meth:`MeterPhysics.set_clock` sets
        it - events 4 and 5 logged, the period in progress flagged CLOCK_ADJUSTED - and the
        power-up is stamped with the new time. The meter clock must be a :class:`MeterClock`.
        """
        self.advance()
        if clock is not None:
            if not isinstance(self.meter_clock, MeterClock):
                raise TypeError("power_on(clock=...) needs a MeterClock to set")
            self.physics.set_clock(self.now(), clock)
            self.meter_clock.set(clock)
        self.physics.power_up(self.now())
        await self.start()

    async def drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Let the per-connection callbacks of asyncio.start_server finish too.
        if self._writers:
            self._no_connections.clear()
            async with asyncio.timeout(5):
                await self._no_connections.wait()

    # -- one connection ----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The line runs in its own task so that dropping it (a fault knob, stop()) is a
        # cancellation of that task, while this callback, owned by asyncio.start_server,
        # ends normally.
        line = asyncio.create_task(_Line(self, reader, writer).run(), name="simulated-meter-line")
        self._tasks.add(line)
        self._writers.add(writer)
        try:
            await asyncio.wait({line})
            err = None if line.cancelled() else line.exception()
            if err is not None and not isinstance(err, ConnectionError | asyncio.IncompleteReadError):
                log.error("simulated meter line failed: %r", err)
        finally:
            self._tasks.discard(line)
            self._writers.discard(writer)
            if not self._writers:
                self._no_connections.set()
            writer.close()

    # -- meter behaviour ---------------------------------------------------------------------

    def now(self) -> datetime:
        return self.meter_clock.now()

    def advance(self) -> None:
        self.physics.advance_to(self.now())

    def cosem_server(self) -> CosemServer:
        """A fresh COSEM application layer (one per HDLC line) on this meter's physics."""
        return CosemServer(
            self.physics,
            self.now,
            serial_number=self.serial_number,
            model=self.model,
            password=self.password,
            referencing=self.referencing,
            max_pdu=self.max_pdu,
        )

    def register(self, address: str) -> str | None:
        """The data set text for an R5 of ``address``, or None if the meter has no such object.

        Only what :data:`VALUES` and the identity/clock objects model is answered, whatever
        the catalogue holds: None becomes the ``(ERROR)`` error message on the line.
        """
        try:
            obis = Obis.parse(address)
        except RemoteProtocolError:
            return None
        key = (obis.c, obis.d, obis.e)
        # 0.9.1 / 0.9.2 are the meter's wall clock: local time when it keeps a zone.
        now, _ = utc_to_local(self.now(), self.zone)
        if obis.f != 255:
            return None  # no billing-period values in the simulator
        if key in VALUES:
            return f"{address}({VALUES[key].format(self.physics.instant(), self.physics.registers)})"
        if key in ((96, 1, 0), (0, 0, 0)):
            return f"{address}({self.serial_number})"
        if key == (97, 97, 0):
            return f"{address}(00000000)"
        if key == (0, 9, 1):
            return f"{address}({now:%H:%M:%S})"
        if key == (0, 9, 2):
            return f"{address}({now:%y-%m-%d})"
        return None

    def readout(self) -> str:
        """The mode C data readout (IEC 62056-21 data message), ending with ``!``."""
        lines = ["F.F(00000000)", f"C.1.0({self.serial_number})"]
        lines += [self.register(a) or "" for a in ("0.9.1", "0.9.2")]
        lines += [self.register(f"{c}.{d}.{e}") or "" for c, d, e in READOUT_ORDER]
        return "\r\n".join(lines) + "\r\n!\r\n"

    def profile(self, code: str, start: datetime | None, end: datetime | None) -> str:
        """Answer body of ``P.01``/``P.02``/``P.98`` for the range (inclusive); ``P.01(ERROR)`` if empty."""
        lo = start or datetime.min.replace(tzinfo=UTC)
        hi = end or self.now()
        blocks: list[iec.ProfileBlock] = []
        if code == EVENT_LOG.iec:
            for ev in self.physics.events_between(lo, hi):
                blocks.append(
                    iec.ProfileBlock(
                        code, _ptime(ev.time, self.zone), "00", 0,
                        (("0-0:C.11.0", ""),), ((str(ev.code),),),
                    )
                )  # fmt: skip
        elif code in (LP1.iec, LP2.iec):
            if code == LP1.iec:
                entries = self.physics.profile1_between(lo, hi)
                channels = LP1_CHANNELS
                rows = [
                    (
                        e.end,
                        int(e.status),
                        tuple(f"{v:.5f}" for v in (e.a_plus, e.a_minus, e.r_plus, e.r_minus)),
                    )
                    for e in entries
                ]
            else:
                entries2 = self.physics.profile2_between(lo, hi)
                channels = LP2_CHANNELS
                rows = [
                    (
                        e.end,
                        int(e.status),
                        (
                            *(f"{v:.1f}" for v in (e.u1, e.u2, e.u3)),
                            *(f"{v:.2f}" for v in (e.i1, e.i2, e.i3)),
                        ),
                    )
                    for e in entries2
                ]
            period = int(self.physics.period.total_seconds()) // 60
            for end_time, status, values in rows:
                last = blocks[-1] if blocks else None
                contiguous = (
                    last is not None
                    and int(last.status, 16) == status
                    and (end_time - _utc(last.start, self.zone)).total_seconds()
                    == period * 60 * len(last.rows)
                )
                if last is not None and contiguous:
                    blocks[-1] = iec.ProfileBlock(
                        last.code,
                        last.start,
                        last.status,
                        last.period_minutes,
                        last.channels,
                        (*last.rows, values),
                    )
                else:
                    blocks.append(
                        iec.ProfileBlock(
                            code, _ptime(end_time, self.zone), f"{status:02X}", period, channels, (values,)
                        )
                    )
        if not blocks:
            return f"{code}(ERROR)"
        return iec.format_profile(blocks)


@dataclass(frozen=True, slots=True)
class _Reply:
    """What the meter does about one received HDLC frame: bytes to send (may be empty) and
    whether the link ends with them (DISC)."""

    data: bytes
    closed: bool = False


_XDLMS_REQUESTS = frozenset({ap.ApduTag.GET_REQUEST, ap.ApduTag.READ_REQUEST})


class _HdlcBus:
    """The HDLC side of one line, sans-I/O: frames parsed once and handed to the station
    (a :class:`_HdlcLink`) they are addressed to; frames for no station are ignored, as
    every meter on a bus ignores frames for others."""

    def __init__(self, stations: list[SimulatedMeter]) -> None:
        self.stations = stations
        self.parser = hdlc.FrameParser()
        self.links: dict[int, _HdlcLink] = {}

    def receive_data(self, data: bytes) -> None:
        self.parser.receive_data(data)

    def next_frame(self) -> tuple[_HdlcLink, hdlc.Frame] | None:
        """The next complete frame for a station on the line; None when more bytes are needed."""
        while True:
            try:
                frame = self.parser.next_frame()
            except RemoteProtocolError as err:
                log.debug("simulated meter ignores a damaged HDLC frame: %s", err)
                continue
            if isinstance(frame, hdlc.NeedData):
                return None
            for n, station in enumerate(self.stations):
                if frame.destination in station.hdlc_addresses:
                    link = self.links.get(n)
                    if link is None:
                        link = self.links[n] = _HdlcLink(station)
                    return link, frame

    def ended(self, link: _HdlcLink) -> bool:
        """``link`` was disconnected (DISC): forget it; True if no station has a link left,
        when the line falls back to 300 Bd, idle."""
        self.links = {n: other for n, other in self.links.items() if other is not link}
        return not any(other.connected for other in self.links.values())


class _HdlcLink:
    """One meter's HDLC side of one line (IEC 62056-46 secondary station), sans-I/O.

    Frames (from :class:`_HdlcBus`) are re-encoded byte for byte and fed to the
    :class:`~gateway.protocols.hdlc.HdlcConnection` of the frame's address pair (the
    address form and the client SAP pick it).
    """

    def __init__(self, meter: SimulatedMeter) -> None:
        self.meter = meter
        self.conn: hdlc.HdlcConnection | None = None
        self.cosem = meter.cosem_server()

    @property
    def connected(self) -> bool:
        return self.conn is not None and self.conn.state is hdlc.State.CONNECTED

    def reply_to(self, frame: hdlc.Frame) -> _Reply:
        """The meter's reaction to ``frame`` (values are taken now)."""
        conn = self.conn
        if conn is None or (conn.client_address, conn.server_address) != (frame.source, frame.destination):
            # Another client SAP or address form: a new link (only one per line).
            conn = self.conn = hdlc.HdlcConnection(
                hdlc.Role.SERVER, frame.source, frame.destination, self.meter.hdlc_limits
            )
            self.cosem.reset()
        conn.receive_data(hdlc.encode_frame(frame))
        try:
            event = conn.next_event()
        except RemoteProtocolError as err:
            log.debug("simulated meter ignores an HDLC frame: %s", err)
            return _Reply(b"")
        if isinstance(event, hdlc.NeedData):
            return _Reply(b"")
        if isinstance(event, hdlc.Connected):
            self.cosem.reset()
        elif isinstance(event, hdlc.Disconnected):
            self.cosem.reset()
            return _Reply(event.reply, closed=event.reason is hdlc.FrameKind.DISC)
        elif isinstance(event, hdlc.DataReceived):
            answer = self._apdu(event.apdu)
            if answer is None:
                return _Reply(b"")
            return _Reply(event.reply + b"".join(conn.send_data(answer)))
        return _Reply(event.reply)

    def _apdu(self, request: bytes) -> bytes | None:
        faults = self.meter.faults
        if faults.exception_answers > 0 and request[:1] and request[0] in _XDLMS_REQUESTS:
            faults.exception_answers -= 1
            return ap.ExceptionResponse(
                ap.ExceptionStateError.SERVICE_NOT_ALLOWED, ap.ExceptionServiceError.OPERATION_NOT_POSSIBLE
            ).encode()
        return self.cosem.handle(request)


class _Line:
    """One TCP connection: the line between the gateway's probe and the meter."""

    def __init__(
        self, meter: SimulatedMeter, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.meter = meter
        self.reader = reader
        self.writer = writer
        self.baud = 300
        self.conn = iec.Iec21Connection(iec.Role.METER)
        self.authenticated = False
        self.pending = 0  # bytes received for the message being parsed
        self.first_byte_at = 0.0
        self.last_answer: iec.Event | None = None  # repeated on NAK
        self.hdlc: _HdlcBus | None = None  # set while the line carries HDLC

    def wire_time(self, n: int) -> float:
        return n * BITS_PER_CHAR / self.baud

    def reset(self) -> None:
        self.baud = 300
        self.conn = iec.Iec21Connection(iec.Role.METER)
        self.authenticated = False
        self.hdlc = None

    def start_hdlc(self, baud: int) -> None:
        """The line carries HDLC (8N1) at ``baud`` from now on (IEC 62056-46)."""
        self.baud = baud
        self.hdlc = _HdlcBus(self.meter.stations)

    async def run(self) -> None:
        clock = self.meter.line_clock
        while True:
            try:
                async with asyncio.timeout(INACTIVITY_TIMEOUT_S):
                    data = await self.reader.read(4096)
            except TimeoutError:
                self.reset()
                self.pending = 0
                continue
            if not data:
                return
            if not self.pending:
                self.first_byte_at = clock.monotonic()
            self.pending += len(data)
            if self.meter.faults.silent and len(self.meter.stations) == 1:
                self.pending = 0
                continue
            idle = self.hdlc is None and self.conn.state is iec.State.IDLE and self.pending == len(data)
            if idle and data[0] == hdlc.FLAG:  # an HDLC frame while idle: direct HDLC
                self.start_hdlc(self.meter.hdlc_baudrate)
            if self.hdlc is not None:
                await self.serve_hdlc(data)
                continue
            self.conn.receive_data(data)
            while True:
                try:
                    event = self.conn.next_event()
                except RemoteProtocolError as err:
                    log.debug("simulated meter ignores garbage: %s", err)
                    self.reset()
                    self.pending = 0
                    break
                if isinstance(event, iec.NeedData):
                    break
                # The request "arrives" at line speed; the answer follows after tr.
                arrived = self.first_byte_at + self.wire_time(self.pending)
                self.pending = 0
                await clock.sleep_until(arrived + self.meter.reaction_time_s + self.meter.faults.delay_s)
                if self.meter.faults.silent:
                    continue
                await self.handle(event)
                if self.hdlc is not None:  # mode E: what follows belongs to HDLC
                    leftover = self.conn.trailing_data
                    if leftover:
                        self.first_byte_at, self.pending = clock.monotonic(), len(leftover)
                        await self.serve_hdlc(leftover)
                    break

    async def serve_hdlc(self, data: bytes) -> None:
        """Feed HDLC bytes; answer every complete frame like any answer: tr after arrival."""
        clock = self.meter.line_clock
        bus = self.hdlc
        assert bus is not None
        bus.receive_data(data)
        while (found := bus.next_frame()) is not None:
            link, frame = found
            station = link.meter
            arrived = self.first_byte_at + self.wire_time(self.pending)
            self.pending = 0
            # A real meter acts on a request once its last byte has arrived at line speed:
            # the values it answers are taken then, not when the TCP segment came in.
            await clock.sleep_until(arrived)
            reply = link.reply_to(frame)
            if reply.data:
                await clock.sleep_until(arrived + station.reaction_time_s + station.faults.delay_s)
                if station.faults.silent:
                    continue
                await self.send_hdlc(reply.data, station)
            if reply.closed and bus.ended(link):
                self.reset()  # after the last DISC the line is back at 300 Bd, idle
                return

    async def send_hdlc(self, frames: bytes, station: SimulatedMeter) -> None:
        data = bytearray(frames)
        faults = station.faults
        if faults.corrupt_answers > 0 and len(data) > 4:
            faults.corrupt_answers -= 1
            # Inside the first frame, after its length field and before its closing flag,
            # never the address extension bit: the client's HCS or FCS check fails.
            end = min(len(data), ((data[1] & 0x07) << 8 | data[2]) + 1)
            pos = station._rng.randrange(3, end)
            data[pos] ^= 1 << station._rng.randrange(1, 8)
        await self.paced_write(bytes(data))

    async def send(self, event: iec.Event) -> None:
        self.last_answer = event
        data = bytearray(self.conn.send(event))
        faults = self.meter.faults
        if faults.corrupt_answers > 0 and data:
            faults.corrupt_answers -= 1
            pos = self.meter._rng.randrange(len(data))
            data[pos] ^= 1 << self.meter._rng.randrange(7)
        await self.paced_write(bytes(data))

    async def paced_write(self, data: bytes) -> None:
        clock = self.meter.line_clock
        chunk = max(1, self.baud // BITS_PER_CHAR // 50)  # 20 ms worth of characters
        start = clock.monotonic()
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            # A character is there once its stop bit is: hand over each chunk at its end time.
            await clock.sleep_until(start + self.wire_time(offset + len(piece)))
            self.writer.write(piece)
            await self.writer.drain()

    async def handle(self, event: iec.Event) -> None:
        meter = self.meter
        if isinstance(event, iec.SignOnRequest):
            # The core already restarted its state machine; the line falls back too.
            self.baud, self.authenticated = 300, False
            if event.address and event.address.lstrip("0") != meter.serial_number.lstrip("0"):
                return  # addressed to another meter on the bus
            await self.send(meter.identification)
        elif isinstance(event, iec.OptionSelect):
            baud = iec.BAUD_MODE_C.get(event.baud_char, 300)
            self.baud = min(baud, meter.max_baudrate)
            if event.protocol == "2":
                # Mode E (IEC 62056-21 §6.4.5): no acknowledgement, HDLC at the new speed.
                self.start_hdlc(self.baud)
                return
            meter.advance()
            if event.mode == "1":
                await self.send(iec.Command("P", "0", f"({meter.serial_number})"))
            else:
                await self.send(iec.DataMessage(meter.readout()))
                self.reset()
        elif isinstance(event, iec.Command):
            await self.command(event)
        elif isinstance(event, iec.Nak) and self.last_answer is not None:
            await self.send(self.last_answer)  # "repeat": the gateway got it damaged
        elif isinstance(event, iec.Ack | iec.Nak):
            pass  # nothing is pending in this meter: every answer is one complete block

    async def command(self, cmd: iec.Command) -> None:
        meter = self.meter
        if (cmd.command, cmd.command_type) == ("B", "0"):
            self.reset()
            return
        if (cmd.command, cmd.command_type) == ("P", "1"):
            self.authenticated = cmd.data.strip("()") == meter.password
            await self.send(iec.Ack() if self.authenticated else iec.Nak())
            return
        if not self.authenticated:
            await self.send(iec.Nak())
            return
        if (cmd.command, cmd.command_type) != ("R", "5"):
            await self.send(iec.DataMessage("(ERROR)"))
            return
        meter.advance()
        address = cmd.data.split("(", 1)[0]
        if address in (LP1.iec, LP2.iec, EVENT_LOG.iec):
            try:
                code, start, end = iec.parse_profile_request(cmd.data)
            except RemoteProtocolError:
                await self.send(iec.DataMessage("(ERROR)"))
                return
            zone = meter.zone
            body = meter.profile(code, _utc(start, zone) if start else None, _utc(end, zone) if end else None)
            await self.send(iec.DataMessage(body))
            return
        answer = meter.register(address)
        await self.send(iec.DataMessage(answer if answer is not None else "(ERROR)"))


def simulator_from_config(config: SimulatorConfig, clock: Clock) -> SimulatedMeter:
    """Build the simulated meter of ``config`` on ``clock`` (its history ends now)."""
    base = clock if config.speed == 1.0 else ScaledClock(clock.now(), config.speed)
    meter_clock = MeterClock(base, drift_ppm=config.drift_ppm)
    physics = MeterPhysics(
        HouseholdModel(seed=config.seed, disturbances_per_week=config.disturbances_per_week),
        meter_clock.now(),
        history_days=config.history_days,
    )
    return SimulatedMeter(
        physics,
        meter_clock,
        host=config.host,
        port=config.port,
        reaction_time_s=config.reaction_time_s,
        max_baudrate=config.max_baudrate,
        serial_number=config.serial_number,
        seed=config.seed,
        password=config.password,
        hdlc_baudrate=config.hdlc_baudrate,
        physical_address=config.physical_address,
        referencing=config.referencing,
        timezone=config.timezone,
        # The line runs on the gateway's clock (a virtual-time loop moves both); a meter
        # whose time runs faster still has a real-time line.
        line_clock=clock if config.speed == 1.0 else None,
    )
