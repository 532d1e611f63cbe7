"""The meter's line as a session sees it, and the IEC 62056-21 sign-on (DESIGN §3).

:class:`MeterLine` is a transport with what both meter sessions need around it: the
bytes counted for the poller's diagnostics, a response timeout on every wait that
restarts with each chunk received (an inter-character timeout: a long answer needs no
longer timeout, a meter that stops half-way is noticed as fast as a silent one), and the
time of the last byte received.

:func:`sign_on` is the IEC 62056-21 opening (§6.3, mode C and E, Annex E) used by the
mode C session and by DLMS mode E: the sign-on ``/?address!`` at 300 Bd 7E1, the
identification, the option select at the old speed tr after it, and the switch to the
speed agreed on. The line timing is real time (the wire is real): ``line_clock``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Protocol

from gateway.clock import Clock, SystemClock
from gateway.errors import MeterTimeout, RemoteProtocolError, TransportError
from gateway.protocols import iec62056_21 as iec
from gateway.transport import Framing, Transport

log = logging.getLogger(__name__)

#: The speed at which every IEC 62056-21 sign-on starts (§6.3.14 / mode C, E).
SIGN_ON_BAUD: Final = 300
#: The reaction time tr (IEC 62056-21 §6.3.14, 200 ms <= tr <= 1500 ms): the silence both
#: sides keep after the last character received before they speak, and the longest a
#: meter may take (the identification may come this late).
MIN_REACTION_S: Final = 0.2
MAX_REACTION_S: Final = 1.5
#: The longest identification (``/XXXZ\\W`` and up to 16 characters, §6.3.2, plus the
#: enhanced and line ends) with room to spare, in characters.
IDENTIFICATION_CHARS: Final = 64


@dataclass(slots=True)
class LineStats:
    """Bytes on the line, for the poller's diagnostics."""

    bytes_sent: int = 0
    bytes_received: int = 0


class MeterLine:
    """One meter's transport with statistics, timeouts and the time of the last byte."""

    def __init__(
        self, transport: Transport, response_timeout: float, line_clock: Clock | None = None
    ) -> None:
        self.transport = transport
        self.response_timeout = response_timeout
        self.clock = line_clock or SystemClock()
        self.stats = LineStats()
        #: ``clock.monotonic()`` when the last chunk arrived.
        self.last_rx = self.clock.monotonic()

    def wire_time(self, n: int) -> float:
        """Seconds ``n`` bytes take on the wire at the line's speed."""
        return self.transport.wire_time(n)

    async def write(self, data: bytes) -> None:
        """Send ``data``: it must leave the line within its wire time and the response timeout."""
        if not data:
            return
        await self.transport.write(data, timeout=self.response_timeout + self.transport.wire_time(len(data)))
        self.stats.bytes_sent += len(data)

    async def read(self, extra: float = 0.0) -> bytes:
        """The next chunk the meter sends, within the response timeout plus ``extra``."""
        wait = self.response_timeout + extra
        try:
            data = await self.transport.read(4096, timeout=wait)
        except MeterTimeout as err:
            raise MeterTimeout(f"meter did not answer within {wait:.2f} s") from err
        self.stats.bytes_received += len(data)
        self.last_rx = self.clock.monotonic()
        return data

    async def set_line(self, baudrate: int, framing: Framing) -> None:
        await self.transport.set_line(baudrate, framing)

    def discard_input(self) -> None:
        self.transport.discard_input()

    async def close(self) -> None:
        """Close the transport; never raises (a broken line is what is being left)."""
        try:
            await self.transport.close()
        except TransportError as err:
            log.debug("closing the transport: %s", err)


class _CountedSession(Protocol):
    @property
    def stats(self) -> LineStats: ...

    @property
    def answer_age_s(self) -> float: ...


class SessionView:
    """Base of the poller's views of a meter session (IEC 62056-21, DLMS): the line's
    statistics and the age of the last answer are the session's."""

    session: _CountedSession

    @property
    def stats(self) -> LineStats:
        return self.session.stats

    @property
    def answer_age_s(self) -> float:
        """Seconds since the meter took the values of its last answer (the answer's wire time)."""
        return self.session.answer_age_s


async def sign_on(
    line: MeterLine, conn: iec.Iec21Connection, address: str, max_baudrate: int, *, mode_e: bool
) -> tuple[iec.Identification, int]:
    """Sign on and switch to the agreed speed; returns the identification and the speed.

    Mode C (``mode_e`` false) selects programming mode (option ``ACK 0 Z 1``) and stays at
    7E1; the meter speaks next (its password prompt). Mode E (Annex E) needs ``\\2`` in the
    identification, selects HDLC (``ACK 2 Z 2``), switches to 8N1 and waits tr, as the
    meter switches tr after the option select and we speak next (the SNRM).

    One rule for the identification's time (§6.3.14): each chunk within the response
    timeout plus the longest reaction time, the whole within the longest reaction time, the
    wire time of :data:`IDENTIFICATION_CHARS` at 300 Bd and the response timeout: a meter
    still talking after that is talking nonsense.
    """
    await line.set_line(SIGN_ON_BAUD, Framing.SEVEN_E_ONE)
    line.discard_input()
    await line.clock.sleep_until(line.last_rx + MIN_REACTION_S)
    await line.write(conn.send(iec.SignOnRequest(address)))
    deadline = (
        line.clock.monotonic() + MAX_REACTION_S + line.wire_time(IDENTIFICATION_CHARS) + line.response_timeout
    )
    while True:
        event = conn.next_event()
        if isinstance(event, iec.Identification):
            break
        if event is not iec.NEED_DATA:
            raise RemoteProtocolError(f"expected the identification, meter sent {event!r}")
        if line.clock.monotonic() > deadline:
            raise MeterTimeout("meter did not identify itself within the IEC 62056-21 times")
        conn.receive_data(await line.read(extra=MAX_REACTION_S))
    if mode_e and "2" not in event.enhanced:
        raise RemoteProtocolError(
            f"meter {event.manufacturer} {event.identification} does not offer mode E "
            "(no \\2 in its identification)"
        )
    baud = min(event.max_baudrate, max_baudrate)
    # The option select goes out tr after the identification (§6.3.14), at the old speed.
    await line.clock.sleep_until(line.last_rx + event.reaction_time)
    protocol, mode = ("2", "2") if mode_e else ("0", "1")
    option = iec.OptionSelect(protocol=protocol, baud_char=iec.BAUD_CHARACTER[baud], mode=mode)
    await line.write(conn.send(option))
    # set_line waits until the option select has left the UART; the meter answers at the new
    # speed no sooner than tr after it, so we listen at that speed by then.
    await line.set_line(baud, Framing.EIGHT_N_ONE if mode_e else Framing.SEVEN_E_ONE)
    if mode_e:
        line.discard_input()
        await line.clock.sleep(event.reaction_time)  # our SNRM must not come before the meter switched
    return event, baud
