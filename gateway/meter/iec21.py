"""IEC 62056-21 mode C session: drives the sans-I/O core over a transport.

Theory of operation (IEC 62056-21:2002, mode C, programming mode):

1. Sign-on at 300 Bd 7E1: ``/?address!`` -> identification ``/XXXZ\\Wident``. The
   third manufacturer letter gives the reaction time tr (lower case: 20 ms, else 200 ms);
   Z gives the highest speed the meter offers.
2. Option select ``ACK 0 Z 1`` at 300 Bd; once it has left the wire, both sides wait
   tr and switch to the negotiated speed.
3. The meter offers a password seed (``P0``); we answer ``P1(password)``; ``ACK``.
4. ``R5`` reads, one data set each; load profiles and the logbook are ``R5`` of
   ``P.01``/``P.02``/``P.98`` with a time range. Partial blocks (EOT) are acknowledged
   with ``ACK`` to get the next one.
5. ``B0`` (break) ends the session; the meter falls back to 300 Bd.

Every wait for the meter has a timeout (:class:`MeterTimeout`). Before each message we
send we keep tr of silence after the last byte received, as the standard asks of both
sides. Line timing is real time (the wire is real), so it uses ``line_clock``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TypeVar

from gateway.clock import Clock
from gateway.errors import (
    DataNotAvailable,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
)
from gateway.localtime import local_to_utc, utc_to_local
from gateway.meter.line import MIN_REACTION_S, MeterLine, SessionView, sign_on
from gateway.meter.model import EventRecord, MeterInfo, ProfileData, ProfileEntry
from gateway.obis import DATE, SERIAL_NUMBER, TIME, Obis
from gateway.protocols import iec62056_21 as iec
from gateway.streams import EVENT_LOG, Stream
from gateway.transport import Transport

log = logging.getLogger(__name__)

_E = TypeVar("_E", bound=iec.Event)


@dataclass(frozen=True, slots=True)
class MeterIdentity:
    """What the identification message and the first reads tell about the meter."""

    manufacturer: str  # FLAG id, e.g. "LGZ"
    identification: str  # e.g. "ZMD3104107.B40"
    baudrate: int  # negotiated speed
    reaction_time: float  # seconds

    @property
    def model(self) -> str:
        return self.identification.split(".", 1)[0]

    @property
    def firmware(self) -> str:
        return self.identification.split(".", 1)[1] if "." in self.identification else ""


class Iec21Session:
    """One programming-mode session with one meter over one transport."""

    def __init__(
        self,
        transport: Transport,
        *,
        address: str = "",
        password: str = "00000000",
        max_baudrate: int = 9600,
        response_timeout: float = 1.5,
        line_clock: Clock | None = None,
        nak_retries: int = 2,
    ) -> None:
        self._line = MeterLine(transport, response_timeout, line_clock)
        self._address = address
        self._password = password
        self._max_baudrate = max_baudrate
        self._nak_retries = nak_retries
        self._conn = iec.Iec21Connection(iec.Role.CLIENT)
        self._reaction = MIN_REACTION_S  # until the identification tells better
        self.stats = self._line.stats
        self.identity: MeterIdentity | None = None
        #: Wire time of the last answer: how old its value is when it has arrived.
        self.answer_age_s = 0.0

    @property
    def is_open(self) -> bool:
        return self.identity is not None

    # -- low level ---------------------------------------------------------------------------

    async def _send(self, event: iec.Event) -> None:
        data = self._conn.send(event)
        # Keep tr of silence after the meter's last byte before we speak (both directions).
        await self._line.clock.sleep_until(self._line.last_rx + self._reaction)
        await self._line.write(data)

    async def _receive(self) -> iec.Event:
        """Next event from the meter; the timeout restarts with every chunk (inter-character time)."""
        while True:
            event = self._conn.next_event()
            if not isinstance(event, iec.NeedData):
                return event
            self._conn.receive_data(await self._line.read())

    async def _expect(self, kind: type[_E], what: str) -> _E:
        event = await self._receive()
        if not isinstance(event, kind):
            raise RemoteProtocolError(f"expected {what}, meter sent {event!r}")
        return event

    # -- session -----------------------------------------------------------------------------

    async def open(self) -> MeterIdentity:
        """Sign on, negotiate the speed and enter programming mode with the password."""
        self.identity = None
        self._conn = iec.Iec21Connection(iec.Role.CLIENT)
        self._reaction = MIN_REACTION_S
        ident, baud = await sign_on(self._line, self._conn, self._address, self._max_baudrate, mode_e=False)
        self._reaction = ident.reaction_time
        seed = await self._expect(iec.Command, "password prompt P0")
        if (seed.command, seed.command_type) != ("P", "0"):
            raise RemoteProtocolError(f"expected password prompt P0, meter sent {seed!r}")
        await self._send(iec.Command("P", "1", f"({self._password})"))
        answer = await self._receive()
        if isinstance(answer, iec.Nak):
            raise RemoteProtocolError("meter refused the password (NAK to P1)")
        if not isinstance(answer, iec.Ack):
            raise RemoteProtocolError(f"expected ACK to the password, meter sent {answer!r}")
        self.identity = MeterIdentity(ident.manufacturer, ident.identification, baud, ident.reaction_time)
        log.debug("signed on to %s %s at %d Bd", ident.manufacturer, ident.identification, baud)
        return self.identity

    async def read(self, address: str) -> iec.DataSet:
        """``R5`` one data set (``"1.8.0"``); an ``(ERROR)`` answer raises RemoteProtocolError."""
        body = await self._read_body(iec.Command("R", "5", f"{address}()"))
        sets = iec.parse_data_sets(body)
        if not sets or sets[0].is_error:
            raise DataNotAvailable(f"meter answered {body!r} to R5 {address}")
        return sets[0]

    async def read_profile(
        self, code: str, start: iec.ProfileTime | None, end: iec.ProfileTime | None
    ) -> list[iec.ProfileBlock]:
        """``R5 P.01(start;end)``: the profile blocks of a time range (empty if none).

        The response timeout restarts with every byte, so a long answer needs no longer
        timeout, and a meter that stops in the middle is noticed as fast as anywhere else.
        """
        body = await self._read_body(iec.profile_request(code, start, end))
        return iec.parse_profile(body)

    async def _read_body(self, request: iec.Command) -> str:
        await self._send(request)
        received = self.stats.bytes_received
        parts: list[str] = []
        retries = self._nak_retries
        while True:
            try:
                msg = await self._receive()
            except RemoteProtocolError as err:
                # A damaged block (bad BCC, garbage): NAK asks the meter to repeat it
                # (IEC 62056-21 programming mode), instead of a new sign-on at 300 Bd.
                if retries <= 0:
                    raise
                retries -= 1
                log.debug("repeat requested after %s", err)
                await self._send(iec.Nak())
                continue
            if isinstance(msg, iec.Nak):
                raise RemoteProtocolError(f"meter refused {request.data!r} (NAK)")
            if not isinstance(msg, iec.DataMessage):
                raise RemoteProtocolError(f"expected a data block, meter sent {msg!r}")
            parts.append(msg.data)
            if msg.complete:
                self.answer_age_s = self._line.wire_time(self.stats.bytes_received - received)
                return "".join(parts)
            await self._send(iec.Ack())  # partial block (EOT): ask for the next one

    async def close(self) -> None:
        """Send break (if the meter has answered at all) and close the transport; never raises.

        The break returns the meter to 300 Bd at once instead of after its inactivity
        timeout, also after a sign-on that failed half-way.
        """
        self.identity = None
        try:
            if self._conn.state not in (iec.State.IDLE, iec.State.AWAIT_IDENTIFICATION, iec.State.CLOSED):
                await self._send(iec.Break)
        except (TransportError, RemoteProtocolError, LocalProtocolError) as err:
            log.debug("break not sent: %s", err)
        finally:
            await self._line.close()


def to_profile_time(when: datetime, zone: tzinfo | None = None) -> iec.ProfileTime:
    """A time as a profile time stamp: UTC (season digit 2), or the local time of a
    local-time meter with season digit 1 (summer) / 0 (normal time)."""
    if zone is None:
        when = when.astimezone(UTC)
        return iec.ProfileTime(when.year, when.month, when.day, when.hour, when.minute, when.second, 2)
    local, dst = utc_to_local(when, zone)
    return iec.ProfileTime.from_datetime(local, 1 if dst else 0)


def _number(ds: iec.DataSet) -> float:
    try:
        return float(ds.value)
    except ValueError as err:
        raise RemoteProtocolError(f"{ds.address}: value {ds.value!r} is not a number") from err


def _field(text: str, what: str, base: int = 10) -> int:
    """An integer field of a profile header or row; garbage is the meter's fault."""
    try:
        return int(text, base) if text else 0
    except ValueError as err:
        raise RemoteProtocolError(f"{what} {text!r} is not a number") from err


def _value(text: str, code: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError as err:
        raise RemoteProtocolError(f"{code}: value {text!r} is not a number") from err


def _check_not_after(code: str, stamp: datetime, end: datetime) -> None:
    """The meter answers what it captured up to ``end``: a later stamp is a damaged answer
    whose check character matched all the same (the BCC is an XOR, which two flips of one
    bit leave unchanged). It is refused like any damaged answer and read again: archived,
    an entry in the future would keep every later one out (records only go forward)."""
    if stamp > end:
        raise RemoteProtocolError(
            f"{code}: entry stamped {stamp:%Y-%m-%d %H:%M:%S}, after the end of the range asked for "
            f"({end:%Y-%m-%d %H:%M:%S}): a damaged answer"
        )


def _profile_time_utc(t: iec.ProfileTime, zone: tzinfo | None = None) -> datetime:
    """Profile stamps with season digit 2 are UTC; 0 (normal time) and 1 (summer time) are
    the meter's local time in ``zone``; without a digit the zone decides (first occurrence
    in the repeated autumn hour). Without a zone every stamp is taken as UTC."""
    if t.season == 2:
        return t.naive.replace(tzinfo=UTC)
    return local_to_utc(t.naive, zone, None if t.season < 0 else t.season == 1)


def clock_to_utc(local: datetime, zone: tzinfo | None, near: datetime) -> datetime:
    """A meter's wall-clock reading without season flag as UTC, for its clock deviation.

    ``local`` is naive, in ``zone`` (None: the meter keeps UTC). An ordinary local time has
    one reading. The rest have two, the normal-time and the summer-time one, and the
    one nearer to ``near`` (the gateway's time) is taken, the summer-time one on a tie:

    * the repeated autumn hour (Vienna 02:30 on the last Sunday of October is 00:30 and
      01:30 UTC): a meter whose clock is right is read as right in both passes;
    * the skipped spring hour (02:30 on the last Sunday of March is no wall time): the
      meter has switched late (01:30 UTC) or early (00:30 UTC). What the poller needs is
      how far the instant the meter counts is off (its profile stamps carry their
      season digit either way), not whether it switched on time.

    The price: in these hours a clock more than half an hour off is read as off by less,
    the other way; once the wall time is unambiguous again the reading is too.
    """
    readings = {dst: local_to_utc(local, zone, dst) for dst in (True, False)}
    # The readings the zone has at this wall time: one, two (autumn) or none (spring gap).
    valid = [t for dst, t in readings.items() if utc_to_local(t, zone) == (local, dst)]
    return min(valid or readings.values(), key=lambda t: abs(t - near))


class Iec21Meter(SessionView):
    """The poller's view of an IEC 62056-21 meter: typed values, profiles, events, clock."""

    protocol = "IEC 62056-21 mode C"
    #: One R5 per value: the poller reads value by value and stops at the cycle's budget.
    batches = False

    session: Iec21Session

    def __init__(self, session: Iec21Session, zone: tzinfo | None = None) -> None:
        self.session = session
        #: The meter's local time zone (None: its stamps are UTC).
        self.zone = zone

    async def open(self) -> MeterInfo:
        ident = await self.session.open()
        serial = (await self.session.read(SERIAL_NUMBER.short)).value.strip()
        return MeterInfo(
            manufacturer=ident.manufacturer,
            model=ident.model,
            serial_number=serial,
            firmware=ident.firmware,
            protocol=self.protocol,
            baudrate=ident.baudrate,
        )

    async def read_value(self, obis: Obis) -> tuple[float, str]:
        ds = await self.session.read(obis.short)
        return _number(ds), ds.unit

    async def read_values(self, objects: Sequence[Obis]) -> list[tuple[float, str] | DataNotAvailable]:
        """One R5 after the other (the protocol has no multi-read)."""
        out: list[tuple[float, str] | DataNotAvailable] = []
        for obis in objects:
            try:
                out.append(await self.read_value(obis))
            except DataNotAvailable as err:
                out.append(err)
        return out

    async def read_clock(self, near: datetime) -> datetime:
        """The meter's clock from 0.9.2 (date YY-MM-DD) and 0.9.1 (time hh:mm:ss), as UTC.

        Date and time are two reads; if midnight passes between them the pair would be a
        day off, so the date is read again after the time and the time re-read if it moved.

        The two IEC 62056-21 data sets (OBIS local date and local time) are the meter's
        wall clock: local time in :attr:`zone` (UTC without one), and unlike a profile
        stamp they carry no season digit. So the local time is read as normal or summer
        time, whichever the zone has at that wall time; where it has both or neither,
        ``near`` (the gateway's time, UTC) decides, see :func:`clock_to_utc`.
        """
        date = (await self.session.read(DATE.short)).value
        time = (await self.session.read(TIME.short)).value
        date_after = (await self.session.read(DATE.short)).value
        if date_after != date:
            date, time = date_after, (await self.session.read(TIME.short)).value
        digits = "".join(ch for ch in date + time if ch.isdigit())
        if len(digits) != 12:
            raise RemoteProtocolError(f"meter date/time {date!r} {time!r} is not YYMMDD hhmmss")
        yy, mo, dd, hh, mi, ss = (int(digits[i : i + 2]) for i in range(0, 12, 2))
        try:
            local = datetime(2000 + yy, mo, dd, hh, mi, ss)
        except ValueError as err:
            raise RemoteProtocolError(f"meter date/time {date!r} {time!r} is not a valid time") from err
        return clock_to_utc(local, self.zone, near)

    async def read_profile(self, profile: Stream, start: datetime, end: datetime) -> list[ProfileData]:
        """Entries of ``profile`` (its data set ``P.01``/``P.02``) with end stamps in [start, end]
        (the meter's own times, in UTC)."""
        code = profile.iec
        blocks = await self.session.read_profile(
            code, to_profile_time(start, self.zone), to_profile_time(end, self.zone)
        )
        result = []
        for block in blocks:
            channels = tuple((Obis.parse(o), unit) for o, unit in block.channels)
            first = _profile_time_utc(block.start, self.zone)
            period = timedelta(minutes=block.period_minutes)
            status = _field(block.status, f"{code} status", 16)
            try:
                entries = tuple(
                    ProfileEntry(
                        end=first + k * period,
                        status=status,
                        values=tuple(_value(v, code) for v in row),
                    )
                    for k, row in enumerate(block.rows)
                )
            except OverflowError as err:  # a meter's period that puts rows beyond the year 9999
                raise RemoteProtocolError(
                    f"{code}: rows beyond 9999 with a period of {block.period_minutes} min"
                ) from err
            _check_not_after(code, entries[-1].end if entries else first, end)
            result.append(ProfileData(profile.id, channels, block.period_minutes * 60, entries))
        return result

    async def read_events(self, start: datetime, end: datetime) -> list[EventRecord]:
        code = EVENT_LOG.iec
        blocks = await self.session.read_profile(
            code, to_profile_time(start, self.zone), to_profile_time(end, self.zone)
        )
        events = []
        for block in blocks:
            event = _field(block.rows[0][0] if block.rows and block.rows[0] else "", f"{code} event code")
            status = _field(block.status, f"{code} status", 16)
            events.append(EventRecord(_profile_time_utc(block.start, self.zone), event, status))
            _check_not_after(code, events[-1].time, end)
        return events

    async def close(self) -> None:
        await self.session.close()
