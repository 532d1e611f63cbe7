"""Sans-I/O core of IEC 62056-21 (formerly IEC 1107), protocol modes C and E.

The module turns bytes into events and events into bytes for both ends of the optical
or serial link: :attr:`Role.CLIENT` (the gateway, the standard's HHU) and
:attr:`Role.METER` (the tariff device; the simulator uses this role). It never touches a
port, a socket or a clock: the caller feeds received bytes with
:meth:`Iec21Connection.receive_data`, pulls events with :meth:`Iec21Connection.next_event`
until it gets :data:`NEED_DATA`, and writes what :meth:`Iec21Connection.send` returns.
Timeouts, reaction times and baud-rate switches are the caller's job; the events carry
what it needs (:attr:`Identification.reaction_time`, :attr:`OptionSelect.baudrate`).

Messages (IEC 62056-21:2002 §6.3)
---------------------------------
=====================  ==============================================  =================
event                  bytes                                           standard's name
=====================  ==============================================  =================
SignOnRequest          ``/ ? address ! CR LF``                         request message
Identification         ``/ XXX Z [\\W]... ident CR LF``                 identification
OptionSelect           ``ACK V Z Y CR LF``                             ack./option select
Ack / Nak              ``ACK`` / ``NAK``                               acknowledgement /
                                                                       repeat-request
DataMessage            ``STX data ETX BCC`` (``EOT`` = partial block)  data message,
                                                                       error message
Command                ``SOH C D STX data ETX BCC``                    programming command
Break                  ``SOH B 0 ETX BCC``                             break message
=====================  ==============================================  =================

The BCC (block check character) is the XOR of every byte after the first SOH or STX up to
and including the ETX or EOT (see :func:`bcc`).

Theory of operation
-------------------
Both connections of a link walk through the same conversation :class:`State`. Each role
has one transition table, ``{(state, move): next_state}``, listing the moves *that role*
may make (:data:`_CLIENT_MOVES`, :data:`_METER_MOVES`). :meth:`~Iec21Connection.send`
checks our own table and raises :class:`LocalProtocolError` for a move that is not in it;
:meth:`~Iec21Connection.next_event` checks the peer's table and raises
:class:`RemoteProtocolError`. So a client and a meter connection fed with each other's
output always agree on the state.

Mode C (§6.4), readout and programming::

    IDLE --client /?!--> AWAIT_IDENTIFICATION --meter /XXXZ..--> IDENTIFIED
    IDENTIFIED --client ACK 0Z0--> READOUT --meter STX readout ETX--> IDLE
    IDENTIFIED --client ACK 0Z1--> AWAIT_PASSWORD_PROMPT --meter P0--> PROGRAMMING_PASSWORD
    PROGRAMMING_PASSWORD --client P1/P2--> AWAIT_PASSWORD_ACK
    AWAIT_PASSWORD_ACK --meter ACK--> PROGRAMMING    (NAK or error message: try again)
    PROGRAMMING --client R/W/E/P command--> AWAIT_ANSWER
    AWAIT_ANSWER --meter data ETX / ACK / NAK--> PROGRAMMING
    AWAIT_ANSWER --meter data EOT--> PARTIAL_BLOCK --client ACK (next) / NAK (again)--> AWAIT_ANSWER

A readout sent right after the identification (modes A and B, or a meter that does not
wait for the option select) is accepted too: ``IDENTIFIED --meter readout--> IDLE``.

Mode E (§6.4): ``IDENTIFIED --client ACK 2Z2--> HDLC``. From then on the link carries
HDLC frames (IEC 62056-46, 8N1); this core produces no more events and keeps every
further byte, unstripped, for the HDLC layer in :attr:`Iec21Connection.trailing_data`.

The client's sign-on request restarts the conversation from every state; a break
returns it to ``IDLE`` (from the client at any time, from the meter once it has
identified itself). A NAK asks the other side to repeat its
last message, so NAK moves lead back to the state before that message (this is also
how a receiver recovers from a bad BCC: the failed message causes no transition, the
receiver sends NAK). A message that raised :class:`RemoteProtocolError` is consumed and
the connection stays usable, because recovery (NAK, a new sign-on) is part of the
protocol.

Tolerance (real meters and optical heads): in the client role bytes before ``/`` are
skipped while idle or waiting for the identification, an echoed sign-on request is dropped, a
lone LF ends a ``/`` line and stray CR/LF between messages are ignored; a meter-role
connection ignores everything before ``/`` or SOH while idle, like a meter waiting for a
sign-on. ``strip_parity=True`` clears bit 7 of every byte, for 7E1 characters passed
through a transparent modem as 8-bit bytes. What is sent is always strict.

Load profiles (``P.01``) and logbooks (``P.98``) are manufacturer conventions carried in
R5 commands and data messages; :func:`parse_profile` and friends handle them.
"""

from __future__ import annotations

import enum
import functools
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, TypeAlias

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.obis import Obis
from gateway.protocols.common import NEED_DATA, NeedData

__all__ = [
    "BAUD_CHARACTER",
    "BAUD_MODE_C",
    "NEED_DATA",
    "Ack",
    "Break",
    "Command",
    "ConnectionClosed",
    "DataMessage",
    "DataSet",
    "Event",
    "Identification",
    "Iec21Connection",
    "Nak",
    "NeedData",
    "OptionSelect",
    "ProfileBlock",
    "ProfileTime",
    "Role",
    "SignOnRequest",
    "State",
    "bcc",
    "bcc_span",
    "format_data_set",
    "format_profile",
    "format_profile_time",
    "parse_data_sets",
    "parse_profile",
    "parse_profile_request",
    "parse_profile_time",
    "profile_request",
]

SOH: Final = 0x01
STX: Final = 0x02
ETX: Final = 0x03
EOT: Final = 0x04
ACK: Final = 0x06
NAK: Final = 0x15

#: Longest ``/`` line we accept or send (the standard allows 16 identification
#: characters; real meters add escapes and longer names, so leave generous room).
_MAX_LINE: Final = 128
#: Device address in a request message: at most 32 characters.
_MAX_ADDRESS: Final = 32

#: Mode C baud-rate characters (acknowledgement/option select and identification).
BAUD_MODE_C: Final = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
#: The mode C baud rate character of each speed (IEC 62056-21 §6.3.14 item 13).
BAUD_CHARACTER: Final = {baud: char for char, baud in BAUD_MODE_C.items()}
#: Mode B baud-rate characters (identification only).
_BAUD_MODE_B: Final = {"A": 600, "B": 1200, "C": 2400, "D": 4800, "E": 9600, "F": 19200}

_STRIP_PARITY: Final = bytes(i & 0x7F for i in range(256))
_END_RE: Final = re.compile(rb"[\x03\x04]")
_BAD_DATA_RE: Final = re.compile(rb"[^\x20-\x7e\r\n]")
_BAD_LINE_RE: Final = re.compile(rb"[^\x20-\x7e]")
_ANY_START_RE: Final = re.compile(rb"[/\x01\x02\x06\x15]")
_SLASH_RE: Final = re.compile(rb"/")
_SLASH_OR_SOH_RE: Final = re.compile(rb"[/\x01]")
_LINE_ENDS: Final = b"\r\n"


class Role(enum.Enum):
    """Which end of the link a connection plays."""

    CLIENT = "client"  # gateway / hand-held unit: signs on and sends commands
    METER = "meter"  # tariff device: identifies itself and answers


class State(enum.Enum):
    """Conversation state, shared by both ends (see the module docstring)."""

    IDLE = "idle"
    AWAIT_IDENTIFICATION = "await_identification"  # sign-on sent, meter to identify
    IDENTIFIED = "identified"  # meter identified, client to select options
    READOUT = "readout"  # mode C data readout selected, meter to send it
    AWAIT_PASSWORD_PROMPT = "await_password_prompt"  # programming selected, meter to send P0
    PROGRAMMING_PASSWORD = "programming_password"  # P0 sent, client to send P1/P2
    AWAIT_PASSWORD_ACK = "await_password_ack"  # password sent, meter to accept it
    PROGRAMMING = "programming"  # client to send a command
    AWAIT_ANSWER = "await_answer"  # command sent, meter to answer
    PARTIAL_BLOCK = "partial_block"  # partial block received, client to send ACK/NAK
    HDLC = "hdlc"  # mode E selected: the bytes belong to HDLC now
    CLOSED = "closed"  # end of the byte stream


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class SignOnRequest:
    """Request message ``/?address!`` CR LF (§6.3); ``address`` empty = any meter."""

    address: str = ""


@dataclass(frozen=True, slots=True)
class Identification:
    """Identification message ``/XXXZ\\W ident`` CR LF (§6.3).

    ``enhanced`` holds the character after each backslash escape, in order: ``"2"`` for
    ``\\2`` (the meter supports mode E), ``"@2"`` for ``\\@\\2``.
    """

    manufacturer: str
    baud_char: str
    identification: str
    enhanced: str = ""

    @property
    def reaction_time(self) -> float:
        """Minimum reaction time in seconds: 20 ms if the third letter is lower case."""
        return 0.02 if len(self.manufacturer) >= 3 and self.manufacturer[2].islower() else 0.2

    @property
    def max_baudrate(self) -> int:
        """Highest baud rate the meter offers.

        Digits follow the mode C table, the letters ``A``-``F`` the mode B table; any other
        character is a mode A (or reserved) meter, which works at 300 Bd only.
        """
        return BAUD_MODE_C.get(self.baud_char) or _BAUD_MODE_B.get(self.baud_char) or 300


@dataclass(frozen=True, slots=True)
class OptionSelect:
    """Acknowledgement/option select message ``ACK V Z Y`` CR LF (§6.3).

    ``protocol`` V: ``"0"`` normal procedure, ``"2"`` HDLC (mode E); ``baud_char`` Z: mode C
    baud rate; ``mode`` Y: ``"0"`` data readout, ``"1"`` programming, ``"2"`` binary (HDLC).
    """

    protocol: str = "0"
    baud_char: str = "5"
    mode: str = "0"

    @property
    def baudrate(self) -> int:
        """The baud rate both ends switch to after this message."""
        try:
            return BAUD_MODE_C[self.baud_char]
        except KeyError:
            raise LocalProtocolError(f"baud rate character {self.baud_char!r} is not 0..6") from None


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledgement message: a single ACK (0x06)."""


@dataclass(frozen=True, slots=True)
class Nak:
    """Repeat-request message: a single NAK (0x15), "send your last message again"."""


@dataclass(frozen=True, slots=True)
class DataMessage:
    """``STX data ETX BCC``; ``complete=False`` is a partial block ending in EOT.

    The data of a mode C readout includes its final ``!`` CR LF line; an error message
    is a data message whose data set has no address, e.g. ``(ERROR)``.
    """

    data: str
    complete: bool = True


@dataclass(frozen=True, slots=True)
class Command:
    """Programming command message ``SOH C D STX data ETX BCC`` (§6.3).

    ``command`` C is ``P`` (password), ``W`` (write), ``R`` (read), ``E`` (execute) or ``B``
    (break); ``command_type`` D qualifies it (``P0`` is the meter's password prompt, ``R5``
    a formatted read, ...). A break without data is sent without STX.
    """

    command: str
    command_type: str
    data: str = ""
    complete: bool = True

    @property
    def is_break(self) -> bool:
        return self.command == "B"


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the byte stream (``receive_data(b"")``) between messages."""


#: Break message ``SOH B0 ETX BCC``: ends the session; the meter falls back to 300 Bd (§6.3).
Break: Final = Command("B", "0")

Event: TypeAlias = (
    SignOnRequest | Identification | OptionSelect | Ack | Nak | DataMessage | Command | ConnectionClosed
)


# --------------------------------------------------------------------------- BCC


def bcc_span(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> int:
    """XOR of ``data[start:end]``: the block check character over exactly that span."""
    return functools.reduce(operator.xor, memoryview(data)[start:end], 0)


def bcc(message: bytes | bytearray) -> int:
    """Block check character of a message: XOR of the bytes after the first SOH/STX up
    to and including the first ETX/EOT after it (§6.3). A trailing BCC byte is ignored.

    Raises :class:`ValueError` if the message has no SOH/STX or no ETX/EOT.
    """
    start = re.search(rb"[\x01\x02]", message)
    if start is None:
        raise ValueError("no SOH or STX in message: the BCC covers the bytes after it")
    end = _END_RE.search(message, start.end())
    if end is None:
        raise ValueError("no ETX or EOT after the SOH/STX: the BCC covers the bytes up to it")
    return bcc_span(message, start.end(), end.end())


# --------------------------------------------------------------------------- transitions


class _Move(enum.Enum):
    """What an event does to the conversation (one event type can mean several moves)."""

    SIGN_ON = "sign-on request"
    IDENTIFICATION = "identification"
    OPTION_READOUT = "option select (data readout)"
    OPTION_PROGRAMMING = "option select (programming)"
    OPTION_HDLC = "option select (mode E, HDLC)"
    ACK = "ACK"
    NAK = "NAK"
    DATA = "data message"
    DATA_PARTIAL = "partial data block (EOT)"
    PASSWORD = "password command P"
    COMMAND = "command"
    BREAK = "break"


_S = State
_M = _Move
_ACTIVE = tuple(s for s in State if s not in (State.HDLC, State.CLOSED))

#: Moves the client may make. The meter-role connection uses it to judge what it receives.
_CLIENT_MOVES: Final[Mapping[tuple[State, _Move], State]] = {
    **{(s, _M.SIGN_ON): _S.AWAIT_IDENTIFICATION for s in _ACTIVE},  # restart at any time
    **{(s, _M.BREAK): _S.IDLE for s in _ACTIVE},
    (_S.IDENTIFIED, _M.OPTION_READOUT): _S.READOUT,
    (_S.IDENTIFIED, _M.OPTION_PROGRAMMING): _S.AWAIT_PASSWORD_PROMPT,
    (_S.IDENTIFIED, _M.OPTION_HDLC): _S.HDLC,
    # NAK = "repeat": P0 arrived damaged (client still waits) or the meter already sent it.
    (_S.AWAIT_PASSWORD_PROMPT, _M.NAK): _S.AWAIT_PASSWORD_PROMPT,
    (_S.PROGRAMMING_PASSWORD, _M.NAK): _S.AWAIT_PASSWORD_PROMPT,
    (_S.PROGRAMMING_PASSWORD, _M.PASSWORD): _S.AWAIT_PASSWORD_ACK,
    (_S.PROGRAMMING, _M.COMMAND): _S.AWAIT_ANSWER,
    (_S.PROGRAMMING, _M.PASSWORD): _S.AWAIT_ANSWER,
    (_S.PROGRAMMING, _M.NAK): _S.AWAIT_ANSWER,  # meter's view of a NAK to its answer
    (_S.AWAIT_ANSWER, _M.NAK): _S.AWAIT_ANSWER,  # client's view: the answer had a bad BCC
    (_S.PARTIAL_BLOCK, _M.ACK): _S.AWAIT_ANSWER,  # next block, please
    (_S.PARTIAL_BLOCK, _M.NAK): _S.AWAIT_ANSWER,  # same block again
}

#: Moves the meter may make. The client-role connection uses it to judge what it receives.
_METER_MOVES: Final[Mapping[tuple[State, _Move], State]] = {
    # before its identification a meter is silent (and the client hears only '/' lines)
    **{(s, _M.BREAK): _S.IDLE for s in _ACTIVE if s not in (_S.IDLE, _S.AWAIT_IDENTIFICATION)},
    (_S.AWAIT_IDENTIFICATION, _M.IDENTIFICATION): _S.IDENTIFIED,
    (_S.IDENTIFIED, _M.DATA): _S.IDLE,  # modes A/B: readout without option select
    (_S.READOUT, _M.DATA): _S.IDLE,
    (_S.AWAIT_PASSWORD_PROMPT, _M.PASSWORD): _S.PROGRAMMING_PASSWORD,
    (_S.PROGRAMMING_PASSWORD, _M.NAK): _S.PROGRAMMING_PASSWORD,  # password arrived damaged
    (_S.AWAIT_PASSWORD_ACK, _M.ACK): _S.PROGRAMMING,
    (_S.AWAIT_PASSWORD_ACK, _M.NAK): _S.PROGRAMMING_PASSWORD,  # wrong password: retry
    (_S.AWAIT_PASSWORD_ACK, _M.DATA): _S.PROGRAMMING_PASSWORD,  # error message: retry
    (_S.PROGRAMMING, _M.NAK): _S.PROGRAMMING,  # command arrived damaged
    (_S.AWAIT_ANSWER, _M.DATA): _S.PROGRAMMING,
    (_S.AWAIT_ANSWER, _M.DATA_PARTIAL): _S.PARTIAL_BLOCK,
    (_S.AWAIT_ANSWER, _M.ACK): _S.PROGRAMMING,
    (_S.AWAIT_ANSWER, _M.NAK): _S.PROGRAMMING,
}

_MOVES: Final = {Role.CLIENT: _CLIENT_MOVES, Role.METER: _METER_MOVES}
_OTHER: Final = {Role.CLIENT: Role.METER, Role.METER: Role.CLIENT}


def _move_of(event: Event) -> _Move:
    match event:
        case SignOnRequest():
            return _M.SIGN_ON
        case Identification():
            return _M.IDENTIFICATION
        case OptionSelect(protocol="2"):
            return _M.OPTION_HDLC
        case OptionSelect(mode="1"):
            return _M.OPTION_PROGRAMMING
        case OptionSelect():
            return _M.OPTION_READOUT
        case Ack():
            return _M.ACK
        case Nak():
            return _M.NAK
        case DataMessage(complete=True):
            return _M.DATA
        case DataMessage():
            return _M.DATA_PARTIAL
        case Command(command="B"):
            return _M.BREAK
        case Command(command="P"):
            return _M.PASSWORD
        case Command():
            return _M.COMMAND
    raise LocalProtocolError(f"not an IEC 62056-21 event: {event!r}")


def _allowed(role: Role, state: State) -> str:
    moves = [m.value for (s, m) in _MOVES[role] if s is state]
    return ", ".join(moves) if moves else "nothing"


# --------------------------------------------------------------------------- encoding


def _printable(text: str, *, line_ends: bool = False) -> bool:
    return all(" " <= c <= "~" or (line_ends and c in "\r\n") for c in text)


def _option_problem(protocol: str, baud_char: str, mode: str) -> str | None:
    """Why an option select is not one this core handles, or None if it is fine."""
    if protocol not in ("0", "2"):
        what = "secondary protocol, not supported" if protocol == "1" else "must be '0' or '2'"
        return f"protocol control character {protocol!r}: {what}"
    if baud_char not in BAUD_MODE_C:
        return f"baud rate character {baud_char!r} is not one of 0..6 (mode C table)"
    if protocol == "0" and mode not in ("0", "1"):
        return f"mode control character {mode!r}: only '0' (readout) and '1' (programming) are supported"
    if len(mode) != 1 or not _printable(mode):
        return f"mode control character {mode!r} is not one printable character"
    return None


def _encode_block(head: bytes, data: str, complete: bool) -> bytes:
    frame = head + data.encode("ascii") + bytes([ETX if complete else EOT])
    return frame + bytes([bcc_span(frame, 1)])


def _encode(event: Event) -> bytes:
    """Bytes of ``event``; raises LocalProtocolError for content the frame cannot carry."""
    match event:
        case SignOnRequest(address=address):
            if len(address) > _MAX_ADDRESS or "!" in address or not _printable(address):
                raise LocalProtocolError(
                    f"device address {address!r}: at most {_MAX_ADDRESS} printable characters, no '!'"
                )
            return f"/?{address}!\r\n".encode("ascii")
        case Identification(manufacturer=man, baud_char=baud, identification=ident, enhanced=enh):
            if len(man) != 3 or not (man.isascii() and man.isalpha()):
                raise LocalProtocolError(f"manufacturer {man!r} must be three ASCII letters")
            if len(baud) != 1 or baud == "\\" or not _printable(baud):
                raise LocalProtocolError(f"baud rate character {baud!r} must be one printable character")
            if not _printable(enh) or not _printable(ident) or ident.startswith("\\"):
                raise LocalProtocolError(
                    f"identification {ident!r} / enhanced {enh!r}: printable characters only, "
                    "and the identification must not start with a backslash"
                )
            line = "/" + man + baud + "".join("\\" + c for c in enh) + ident + "\r\n"
            if len(line) > _MAX_LINE:
                raise LocalProtocolError(f"identification line longer than {_MAX_LINE} bytes")
            return line.encode("ascii")
        case OptionSelect(protocol=v, baud_char=z, mode=y):
            problem = _option_problem(v, z, y)
            if problem is not None:
                raise LocalProtocolError(f"option select {v!r} {z!r} {y!r}: {problem}")
            return bytes([ACK]) + f"{v}{z}{y}\r\n".encode("ascii")
        case Ack():
            return bytes([ACK])
        case Nak():
            return bytes([NAK])
        case DataMessage(data=data, complete=complete):
            if not _printable(data, line_ends=True):
                raise LocalProtocolError("data message: only printable ASCII, CR and LF can be sent")
            return _encode_block(bytes([STX]), data, complete)
        case Command(command=c, command_type=d, data=data, complete=complete):
            if len(c) != 1 or not ("A" <= c <= "Z"):
                raise LocalProtocolError(f"command {c!r} must be one letter A..Z")
            if len(d) != 1 or not (d.isascii() and d.isalnum()):
                raise LocalProtocolError(f"command type {d!r} must be one letter or digit")
            if not _printable(data, line_ends=True):
                raise LocalProtocolError("command data: only printable ASCII, CR and LF can be sent")
            head = bytes([SOH]) + (c + d).encode("ascii")
            if not (c == "B" and data == ""):  # the break message has no STX
                head += bytes([STX])
            return _encode_block(head, data, complete)
    raise LocalProtocolError(f"cannot send {event!r}")


# --------------------------------------------------------------------------- connection


class Iec21Connection:
    """One end of an IEC 62056-21 link, without I/O (h11 style).

    ``max_message`` bounds a data/command message in bytes including its framing; a
    longer one raises :class:`RemoteProtocolError` instead of buffering without end.
    """

    def __init__(self, role: Role, *, strip_parity: bool = False, max_message: int = 65536) -> None:
        if max_message < 8:
            raise LocalProtocolError(f"max_message must be at least 8 bytes, got {max_message}")
        self._role = role
        self._peer = _OTHER[role]
        self._strip = strip_parity
        self._max_message = max_message
        self._state = State.IDLE
        self._buf = bytearray()  # bytes to parse (parity stripped when asked)
        self._raw = bytearray()  # the same bytes as received, for trailing_data
        self._consumed = 0  # stream offset of _buf[0], for error messages
        self._scan = 0  # where to resume the search for ETX/EOT in _buf
        self._eof = False

    @property
    def role(self) -> Role:
        return self._role

    @property
    def state(self) -> State:
        return self._state

    @property
    def trailing_data(self) -> bytes:
        """Received bytes not yet turned into events, as received (parity untouched).

        In state ``HDLC`` these are the first bytes of the HDLC layer.
        """
        return bytes(self._raw if self._strip else self._buf)

    def receive_data(self, data: bytes) -> None:
        """Buffer received bytes; ``b""`` means the peer closed the stream."""
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data() called with data after EOF")
            return
        if not data:
            self._eof = True
            return
        if self._strip:
            self._raw += data
            # 8N1 after a mode E switch: HDLC bytes carry no parity bit
            self._buf += data if self._state is State.HDLC else data.translate(_STRIP_PARITY)
        else:
            self._buf += data

    def send(self, event: Event) -> bytes:
        """Bytes to write for ``event``; raises LocalProtocolError if it is not allowed now."""
        if isinstance(event, ConnectionClosed):
            raise LocalProtocolError("ConnectionClosed is reported by next_event(), it cannot be sent")
        data = _encode(event)
        move = _move_of(event)
        new = _MOVES[self._role].get((self._state, move))
        if new is None:
            raise LocalProtocolError(
                f"{self._role.value} cannot send {move.value} in state {self._state.name}; "
                f"allowed now: {_allowed(self._role, self._state)}"
            )
        self._state = new
        return data

    def next_event(self) -> Event | NeedData:
        """The next complete event, or :data:`NEED_DATA`.

        Raises :class:`RemoteProtocolError` for bytes that break the protocol; the bad
        message is consumed and the state is left as it was.
        """
        if self._state is State.HDLC:
            return NEED_DATA
        if self._state is State.CLOSED:
            return ConnectionClosed()
        while True:
            self._skip_noise()
            if not self._buf:
                if self._eof:
                    self._state = State.CLOSED
                    return ConnectionClosed()
                return NEED_DATA
            framed = self._frame()
            if framed is None:
                if self._eof:
                    size = len(self._buf)
                    what = self._what()
                    self._consume(size)
                    self._state = State.CLOSED
                    raise RemoteProtocolError(
                        f"connection closed in the middle of a {what} ({size} bytes received)"
                    )
                return NEED_DATA
            event, offset = framed
            if self._role is Role.CLIENT and isinstance(event, SignOnRequest):
                continue  # echo of our own request from the optical head
            move = _move_of(event)
            new = _MOVES[self._peer].get((self._state, move))
            if new is None:
                raise RemoteProtocolError(
                    f"{self._peer.value} sent {move.value} at stream offset {offset} in state "
                    f"{self._state.name}; allowed now: {_allowed(self._peer, self._state)}"
                )
            self._state = new
            return event

    # -- framing ---------------------------------------------------------------

    def _consume(self, size: int) -> None:
        del self._buf[:size]
        if self._strip:
            del self._raw[:size]
        self._consumed += size
        self._scan = 0

    def _fail(self, size: int, message: str) -> RemoteProtocolError:
        self._consume(size)
        return RemoteProtocolError(message)

    def _skip_noise(self) -> None:
        buf = self._buf
        if self._state is State.IDLE or (
            self._role is Role.CLIENT and self._state is State.AWAIT_IDENTIFICATION
        ):
            # Nothing is expected from the peer but a '/' line (and a break for a meter):
            # everything else is line noise, as on a real meter waiting for a sign-on.
            pattern = _SLASH_RE if self._role is Role.CLIENT else _SLASH_OR_SOH_RE
            match = pattern.search(buf)
            self._consume(match.start() if match else len(buf))
            return
        skip = 0
        while skip < len(buf) and buf[skip] in _LINE_ENDS:  # stray line ends (LF LF meters)
            skip += 1
        if skip:
            self._consume(skip)

    def _what(self) -> str:
        first = self._buf[0]
        if first == ord("/"):
            return "sign-on or identification line"
        if first == ACK:
            return "option select message"
        return "command message" if first == SOH else "data message"

    def _frame(self) -> tuple[Event, int] | None:
        """(event, stream offset) of the complete message at the buffer start, or None."""
        buf = self._buf
        offset = self._consumed
        first = buf[0]
        event: Event | None
        if first == ord("/"):
            event = self._frame_line()
        elif first == ACK:
            if self._role is Role.METER and self._state is State.IDENTIFIED:
                event = self._frame_option_select()
            else:
                event = Ack()
                self._consume(1)
        elif first == NAK:
            event = Nak()
            self._consume(1)
        elif first in (SOH, STX):
            event = self._frame_block()
        else:
            match = _ANY_START_RE.search(buf, 1)
            size = match.start() if match else len(buf)
            preview = bytes(buf[: min(size, 16)])
            raise self._fail(
                size,
                f"unexpected {preview!r}{'...' if size > 16 else ''} at stream offset {offset} in "
                f"state {self._state.name}: a message starts with '/', ACK, NAK, SOH or STX; "
                f"{self._peer.value} may send now: {_allowed(self._peer, self._state)}",
            )
        return None if event is None else (event, offset)

    def _frame_line(self) -> Event | None:
        buf = self._buf
        offset = self._consumed
        end = buf.find(b"\n", 0, _MAX_LINE)
        if end < 0:
            if len(buf) >= _MAX_LINE:
                raise self._fail(
                    _MAX_LINE, f"no LF within {_MAX_LINE} bytes of the '/' at stream offset {offset}"
                )
            return None
        size = end + 1
        line = bytes(buf[: end - 1 if end and buf[end - 1] == 0x0D else end])  # CR is optional
        bad = _BAD_LINE_RE.search(line)
        if bad is not None:
            raise self._fail(
                size,
                f"invalid byte 0x{line[bad.start()]:02X} at stream offset {offset + bad.start()} "
                "in a '/' line (only printable ASCII before CR LF)",
            )
        text = line.decode("ascii")
        if text.startswith("/?"):
            address = text[2:-1]
            if not text.endswith("!") or len(text) < 3:
                raise self._fail(
                    size, f"sign-on request {text!r} at stream offset {offset} lacks the final '!'"
                )
            if len(address) > _MAX_ADDRESS or "!" in address:
                raise self._fail(
                    size, f"device address {address!r}: at most {_MAX_ADDRESS} characters and no '!'"
                )
            self._consume(size)
            return SignOnRequest(address)
        if len(text) < 5:
            raise self._fail(
                size,
                f"identification {text!r} at stream offset {offset} is too short: need '/', three "
                "manufacturer letters and a baud rate character",
            )
        manufacturer, baud = text[1:4], text[4]
        if not manufacturer.isalpha():
            raise self._fail(size, f"manufacturer {manufacturer!r} in identification is not three letters")
        if baud == "\\":
            raise self._fail(
                size, f"identification {text!r} has a backslash where the baud character belongs"
            )
        pos, enhanced = 5, ""
        while pos < len(text) and text[pos] == "\\":
            if pos + 1 == len(text):
                raise self._fail(size, f"identification {text!r} ends with a lone backslash")
            enhanced += text[pos + 1]
            pos += 2
        self._consume(size)
        return Identification(manufacturer, baud, text[pos:], enhanced)

    def _frame_option_select(self) -> Event | None:
        buf = self._buf
        offset = self._consumed
        if len(buf) < 6:
            return None
        # consume only the ACK on errors, so a sign-on glued behind it still gets parsed
        if buf[4:6] != b"\r\n":
            raise self._fail(
                1, f"option select at stream offset {offset} does not end in CR LF after 3 characters"
            )
        if _BAD_LINE_RE.search(buf, 1, 4):
            raise self._fail(1, f"option select at stream offset {offset} has a non-printable character")
        protocol, baud_char, mode = chr(buf[1]), chr(buf[2]), chr(buf[3])
        problem = _option_problem(protocol, baud_char, mode)
        if problem is not None:
            raise self._fail(1, f"option select at stream offset {offset}: {problem}")
        self._consume(6)
        return OptionSelect(protocol, baud_char, mode)

    def _frame_block(self) -> Event | None:
        buf = self._buf
        offset = self._consumed
        is_command = buf[0] == SOH
        kind = "command message" if is_command else "data message"
        body = 1
        if is_command:
            if len(buf) < 4:
                return None
            command, command_type, separator = buf[1], buf[2], buf[3]
            if not (0x41 <= command <= 0x5A) or not bytes([command_type]).isalnum():
                raise self._fail(
                    1,
                    f"command message at stream offset {offset}: {bytes(buf[1:3])!r} is not a "
                    "command letter A..Z followed by a type letter or digit",
                )
            if separator == STX:
                body = 4
            elif separator in (ETX, EOT):
                body = 3  # break message form: no STX, no data
            else:
                raise self._fail(
                    1,
                    f"command {chr(command)}{chr(command_type)} at stream offset {offset} must be "
                    f"followed by STX or ETX, got 0x{separator:02X}",
                )
        limit = self._max_message - 1  # the terminator plus the BCC must fit in max_message
        found = _END_RE.search(buf, max(self._scan, body), limit)
        if found is None:
            if len(buf) >= limit:
                raise self._fail(
                    len(buf),
                    f"{kind} at stream offset {offset} is longer than max_message={self._max_message} "
                    "bytes (no ETX/EOT found)",
                )
            self._scan = len(buf)
            return None
        end = found.start()
        if end + 1 >= len(buf):
            self._scan = end
            return None  # the BCC is still on its way
        size = end + 2
        expected, got = bcc_span(buf, 1, end + 1), buf[end + 1]
        if expected != got:
            raise self._fail(
                size,
                f"BCC mismatch in the {kind} at stream offset {offset} ({size} bytes): "
                f"expected 0x{expected:02X}, got 0x{got:02X}",
            )
        bad = _BAD_DATA_RE.search(buf, body, end)
        if bad is not None:
            raise self._fail(
                size,
                f"invalid byte 0x{buf[bad.start()]:02X} at stream offset {offset + bad.start()} in "
                f"the {kind} (only printable ASCII, CR and LF)",
            )
        data = buf[body:end].decode("ascii")
        complete = buf[end] == ETX
        event: Event
        if is_command:
            event = Command(chr(buf[1]), chr(buf[2]), data, complete)
        else:
            event = DataMessage(data, complete)
        self._consume(size)
        return event


# --------------------------------------------------------------------------- data sets


_NUMBER_RE: Final = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*")
_BAD_ADDRESS_CHARS: Final = frozenset("()! \t\r\n")


@dataclass(frozen=True, slots=True)
class DataSet:
    """One data set ``address(value*unit)(value2)...`` of a readout or an R5 answer.

    Only a unit written in the first value is split off; later values are kept verbatim.
    A data set without address is the meter's error message (e.g. ``(ERROR)``).
    """

    address: str
    values: tuple[str, ...]
    unit: str = ""

    @property
    def obis(self) -> Obis | None:
        """The address as an OBIS code (``*NN``/``&NN`` = billing period), None if it is not one."""
        if not self.address:
            return None
        try:
            return Obis.parse(self.address)
        except (RemoteProtocolError, ValueError):
            return None

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""

    @property
    def is_error(self) -> bool:
        """True for an error message: no address, or the single value ``ERROR``."""
        return self.address == "" or (len(self.values) == 1 and self.values[0].strip().upper() == "ERROR")

    def number(self) -> float:
        """The first value as a number; RemoteProtocolError if it is not one."""
        if not _NUMBER_RE.fullmatch(self.value):
            raise RemoteProtocolError(f"value {self.value!r} of data set {self.address!r} is not a number")
        return float(self.value)


def _scan_line(line: str, lineno: int) -> list[tuple[str, list[str]]]:
    """Split one line into (address, [bracket contents]) pairs; spaces between sets are fine."""
    sets: list[tuple[str, list[str]]] = []
    pos, size = 0, len(line)
    while pos < size:
        if line[pos] in " \t":
            pos += 1
            continue
        open_at = line.find("(", pos)
        if open_at < 0:
            raise RemoteProtocolError(f"line {lineno}: {line[pos:]!r} is not a data set (no '(' after it)")
        address = line[pos:open_at]
        if _BAD_ADDRESS_CHARS.intersection(address):
            raise RemoteProtocolError(
                f"line {lineno}, column {pos + 1}: invalid data set address {address!r}"
            )
        groups: list[str] = []
        while open_at < size and line[open_at] == "(":
            close_at = line.find(")", open_at + 1)
            if close_at < 0:
                raise RemoteProtocolError(f"line {lineno}, column {open_at + 1}: '(' without ')'")
            inner = line[open_at + 1 : close_at]
            if "(" in inner:
                raise RemoteProtocolError(f"line {lineno}, column {open_at + 1}: '(' inside a value")
            groups.append(inner)
            open_at = close_at + 1
        sets.append((address, groups))
        pos = open_at
    return sets


def _lines(text: str) -> Iterable[tuple[int, str]]:
    """Numbered non-empty lines up to the end line ``!``; CR LF or LF alone."""
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if stripped == "!":
            return
        if stripped:
            yield lineno, line


def parse_data_sets(text: str) -> list[DataSet]:
    """Data sets of a readout body or a programming-mode answer.

    Lines end in CR LF or LF; several data sets may share a line; the end line ``!`` and
    anything after it are ignored. Raises RemoteProtocolError on malformed text.
    """
    result: list[DataSet] = []
    for lineno, line in _lines(text):
        for address, groups in _scan_line(line, lineno):
            first, _, unit = groups[0].partition("*")
            result.append(DataSet(address, (first, *groups[1:]), unit))
    return result


def format_data_set(data_set: DataSet) -> str:
    """``address(value*unit)(value2)...``, the inverse of :func:`parse_data_sets` for one set."""
    address, values, unit = data_set.address, data_set.values, data_set.unit
    if not values:
        raise LocalProtocolError(f"data set {address!r} has no value")
    if _BAD_ADDRESS_CHARS.intersection(address) or not _printable(address):
        raise LocalProtocolError(f"data set address {address!r} contains a forbidden character")
    if "*" in values[0]:
        raise LocalProtocolError(f"first value {values[0]!r} of {address!r} contains '*' (unit separator)")
    for text in (*values, unit):
        if "(" in text or ")" in text or not _printable(text):
            raise LocalProtocolError(f"value or unit {text!r} of {address!r} contains a forbidden character")
    first = f"{values[0]}*{unit}" if unit else values[0]
    return f"{address}({first})" + "".join(f"({v})" for v in values[1:])


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True, slots=True)
class ProfileTime:
    """Time stamp ``ZYYMMDDhhmmss`` of load profiles and logbooks.

    ``season`` Z: 0 normal (winter) time, 1 summer time, 2 UTC, -1 not given (meters
    that write ``YYMMDDhhmmss``).
    """

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int = 0
    season: int = 0

    @property
    def naive(self) -> datetime:
        return datetime(self.year, self.month, self.day, self.hour, self.minute, self.second)

    @classmethod
    def from_datetime(cls, moment: datetime, season: int = 0) -> ProfileTime:
        return cls(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, season)


def parse_profile_time(text: str) -> ProfileTime:
    """Read ``ZYYMMDDhhmmss`` (13 digits), ``YYMMDDhhmmss`` (12), ``ZYYMMDDhhmm`` (11) or
    ``YYMMDDhhmm`` (10); missing seconds are 0, a missing season is -1."""
    if not (text.isascii() and text.isdigit()) or len(text) not in (10, 11, 12, 13):
        raise RemoteProtocolError(f"time stamp {text!r} is not ZYYMMDDhhmm[ss] (10 to 13 digits)")
    season = -1
    if len(text) % 2:
        season, text = int(text[0]), text[1:]
        if season > 2:
            raise RemoteProtocolError(f"season digit {season} is not 0 (normal), 1 (summer) or 2 (UTC)")
    yy, month, day, hour, minute, second = (int(text[i : i + 2] or "0") for i in range(0, 12, 2))
    stamp = ProfileTime(2000 + yy, month, day, hour, minute, second, season)
    problem = _date_problem(stamp)
    if problem:
        raise RemoteProtocolError(f"time stamp {text!r} is not a valid date and time: {problem}")
    return stamp


def _date_problem(stamp: ProfileTime) -> str:
    try:
        datetime(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
    except ValueError as err:
        return str(err)
    return ""


def format_profile_time(stamp: ProfileTime) -> str:
    """``ZYYMMDDhhmmss``, or ``YYMMDDhhmmss`` when the season is -1 (unknown)."""
    if not 2000 <= stamp.year <= 2099 or stamp.season not in (-1, 0, 1, 2):
        raise LocalProtocolError(f"{stamp!r}: year must be 2000..2099 and season -1..2")
    problem = _date_problem(stamp)
    if problem:
        raise LocalProtocolError(f"{stamp!r} is not a valid date and time: {problem}")
    digits = "".join(
        f"{n:02}" for n in (stamp.year % 100, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
    )
    return digits if stamp.season < 0 else f"{stamp.season}{digits}"


@dataclass(frozen=True, slots=True)
class ProfileBlock:
    """One ``P.01`` header with its rows, or one ``P.98`` logbook entry.

    ``channels`` are (OBIS text, unit) pairs as the meter wrote them; ``rows`` hold the
    raw value strings. A logbook entry has ``period_minutes == 0`` and exactly one row,
    written on the header line itself.
    """

    code: str
    start: ProfileTime
    status: str
    period_minutes: int
    channels: tuple[tuple[str, str], ...]
    rows: tuple[tuple[str, ...], ...] = ()

    def row_time(self, index: int) -> datetime:
        """Time the meter gives row ``index``: header time + index periods (naive).

        RemoteProtocolError when the meter's period puts it beyond the year 9999.
        """
        try:
            return self.start.naive + timedelta(minutes=self.period_minutes * index)
        except OverflowError as err:
            raise RemoteProtocolError(
                f"{self.code} row {index} lies beyond 9999 (period {self.period_minutes} min)"
            ) from err


def _is_error_text(groups: list[str]) -> bool:
    return len(groups) == 1 and groups[0].strip().upper().startswith("ERR")


def parse_profile(text: str) -> list[ProfileBlock]:
    """Blocks of a load profile or logbook answer (manufacturer convention on top of R5).

    ``P.01(ts)(status)(period)(n)(obis1)(unit1)...`` starts a block whose rows follow on
    their own lines; ``P.98(ts)(status)()(n)(obis)(unit)...(v1)...(vn)`` is one logbook
    entry. ``P.01(ERROR)`` or ``(ERROR)`` (no entries in the range) gives no blocks; other
    data sets (such as a leading ``0.0.0(...)``) are skipped. Raises RemoteProtocolError
    when a row's width differs from the announced channel count.
    """
    blocks: list[ProfileBlock] = []
    header: ProfileBlock | None = None
    rows: list[tuple[str, ...]] = []

    def finish() -> None:
        if header is not None:
            blocks.append(
                ProfileBlock(
                    header.code,
                    header.start,
                    header.status,
                    header.period_minutes,
                    header.channels,
                    tuple(rows),
                )
            )

    for lineno, line in _lines(text):
        sets = _scan_line(line, lineno)
        if all(address == "" for address, _ in sets):  # a row: (v1)(v2)...
            values = [v for _, groups in sets for v in groups]
            if header is None:
                if len(sets) == 1 and _is_error_text(values):
                    continue  # the meter's "(ERROR)": nothing in the range
                raise RemoteProtocolError(f"line {lineno}: profile row before any P.xx header")
            if header.period_minutes == 0:
                raise RemoteProtocolError(f"line {lineno}: row line after {header.code} logbook entry")
            if len(values) != len(header.channels):
                raise RemoteProtocolError(
                    f"line {lineno}: {header.code} row has {len(values)} values, "
                    f"the header announced {len(header.channels)} channels"
                )
            rows.append(tuple(values))
            continue
        code, groups = sets[0]
        if not code.startswith("P."):
            continue  # another data set in the same answer
        if len(sets) > 1:
            raise RemoteProtocolError(f"line {lineno}: unexpected data after the {code} header")
        if _is_error_text(groups):
            continue
        finish()
        header = _parse_header(code, groups, lineno)
        rows = list(header.rows)  # a logbook entry carries its one row inline
    finish()
    return blocks


def _header_number(text: str) -> int | None:
    """A header count or period: plain digits, at most 9 of them (longer is no count, and
    ``int()`` refuses more than 4300 digits with ValueError); None otherwise."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _parse_header(code: str, groups: list[str], lineno: int) -> ProfileBlock:
    if len(groups) < 4:
        raise RemoteProtocolError(
            f"line {lineno}: {code} header has {len(groups)} fields, need time, status, period, count"
        )
    stamp_text, status, period_text, count_text = groups[:4]
    start = parse_profile_time(stamp_text)
    count = _header_number(count_text)
    if count is None:
        raise RemoteProtocolError(f"line {lineno}: {code} channel count {count_text!r} is not a number")
    period = _header_number(period_text)
    if period_text == "":
        period = 0  # logbook: no capture period, values on this line
        expected = 4 + 3 * count
    elif period:
        expected = 4 + 2 * count
    else:
        raise RemoteProtocolError(f"line {lineno}: {code} period {period_text!r} is not a number of minutes")
    if len(groups) != expected:
        raise RemoteProtocolError(
            f"line {lineno}: {code} header with {count} channels needs {expected} fields, has {len(groups)}"
        )
    pairs = groups[4 : 4 + 2 * count]
    channels = tuple(zip(pairs[0::2], pairs[1::2], strict=True))
    inline = (tuple(groups[4 + 2 * count :]),) if period == 0 else ()
    return ProfileBlock(code, start, status, period, channels, inline)


def format_profile(blocks: Iterable[ProfileBlock]) -> str:
    """The text of a profile answer (CR LF line ends); ``parse_profile`` reads it back."""
    lines: list[str] = []
    for block in blocks:
        fields = [block.status, *(text for pair in block.channels for text in pair)]
        for row in block.rows:
            fields += row
            if len(row) != len(block.channels):
                raise LocalProtocolError(
                    f"{block.code} row {row!r} has {len(row)} values for {len(block.channels)} channels"
                )
        if _BAD_ADDRESS_CHARS.intersection(block.code) or not block.code.startswith("P."):
            raise LocalProtocolError(f"profile code {block.code!r} must look like 'P.01'")
        for text in fields:
            if "(" in text or ")" in text or not _printable(text):
                raise LocalProtocolError(f"{block.code} field {text!r} contains a forbidden character")
        period = "" if block.period_minutes == 0 else str(block.period_minutes)
        if block.period_minutes < 0:
            raise LocalProtocolError(f"{block.code} period {block.period_minutes} is negative")
        header = f"{block.code}({format_profile_time(block.start)})({block.status})({period})"
        header += f"({len(block.channels)})" + "".join(f"({o})({u})" for o, u in block.channels)
        if block.period_minutes == 0:
            if len(block.rows) != 1:
                raise LocalProtocolError(f"{block.code} logbook entry (period 0) needs exactly one row")
            lines.append(header + "".join(f"({v})" for v in block.rows[0]))
            continue
        if block.rows and not block.channels:
            raise LocalProtocolError(f"{block.code} has rows but no channels")
        lines.append(header)
        lines += ["".join(f"({v})" for v in row) for row in block.rows]
    return "".join(line + "\r\n" for line in lines)


def profile_request(code: str, start: ProfileTime | None, end: ProfileTime | None) -> Command:
    """R5 command ``code(ZYYMMDDhhmmss;ZYYMMDDhhmmss)``; None leaves that end open."""
    if _BAD_ADDRESS_CHARS.intersection(code) or ";" in code or not code or not _printable(code):
        raise LocalProtocolError(f"profile code {code!r} contains a forbidden character")
    first = format_profile_time(start) if start is not None else ""
    last = format_profile_time(end) if end is not None else ""
    return Command("R", "5", f"{code}({first};{last})")


_PROFILE_REQUEST_RE: Final = re.compile(r"([^()\s;!]+)\(([^()]*)\)")


def parse_profile_request(data: str) -> tuple[str, ProfileTime | None, ProfileTime | None]:
    """(code, start, end) of an R5 profile request's data; an empty end means open."""
    match = _PROFILE_REQUEST_RE.fullmatch(data.strip())
    if match is None:
        raise RemoteProtocolError(f"{data!r} is not a profile request like 'P.01(start;end)'")
    code, span = match.groups()
    first, _, last = span.partition(";")
    return (
        code,
        parse_profile_time(first) if first else None,
        parse_profile_time(last) if last else None,
    )
