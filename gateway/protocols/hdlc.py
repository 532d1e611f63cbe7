"""Sans-I/O core of HDLC as used by DLMS/COSEM (IEC 62056-46, frame format type 3).

The module turns bytes into frames and events and back for both ends of the link:
:attr:`Role.CLIENT` (the gateway) and :attr:`Role.SERVER` (the meter; the simulator uses
this role). It never touches a port, a socket or a clock: timeouts and retries are the
caller's job.

Frames
------
::

    7E | A0+S+length (2) | destination | source | control | [HCS (2) | information] | FCS (2) | 7E

* length counts every byte between the flags; S is the segmentation bit.
* HCS (only when an information field follows) covers format..control, FCS covers
  format..information; both are :func:`crc16_x25`, low byte first.
* Addresses (:class:`HdlcAddress`): the client address is one byte (``SAP << 1 | 1``), the
  server address 1, 2 or 4 bytes (upper half logical, lower half physical, 7 bits per
  byte, the LSB of the last byte set).
* No byte stuffing: 0x7E may occur inside a frame, so frames are delimited by the length
  field. Consecutive frames may share a flag; repeated flags are idle fill.

:func:`encode_frame` builds a :class:`Frame`; :class:`FrameParser` is the streaming
receiver (``receive_data(bytes)``, then ``next_frame()`` until :data:`NEED_DATA`). A
malformed frame raises :class:`RemoteProtocolError` naming the fault (closing flag, length,
address, HCS, FCS, control field); the parser then skips to the next flag and stays usable.
Bytes before a flag are skipped and reported the same way. A frame whose length field
promises more bytes than arrived (a truncated frame) just waits: the caller's timeout ends it.

Parameter negotiation (:class:`HdlcParameters`)
-----------------------------------------------
SNRM and UA may carry ``81 80 len {id len value}...`` with ids 05/06 (maximum information
field length transmit/receive) and 07/08 (window size transmit/receive); values are 1, 2 or
4 bytes. Each frame states the *sender's* view; a missing field or parameter means the
default (128/128/1/1). The server answers with :func:`negotiate`: never more than its own
limits nor than the client proposed.

Connections (:class:`HdlcConnection`)
-------------------------------------
``HdlcConnection(role, client_address, server_address, limits=HdlcParameters())``.
The caller writes what the methods return and after feeding bytes with
:meth:`~HdlcConnection.receive_data` pulls events with :meth:`~HdlcConnection.next_event`
until :data:`NEED_DATA`. **Every event has a** ``reply`` **field: when it is not empty, write
it to the peer** (the server's UA/DM, RR after a received segment, the next queued segments
after the peer's RR). Methods:

* ``connect(parameters=None) -> bytes`` (client): SNRM proposing ``parameters`` (only the
  non-default ones are sent; none at all gives an SNRM without information field).
* ``disconnect() -> bytes`` (client): DISC.
* ``send_data(apdu) -> list[bytes]`` (both): the I-frames that may be sent *now*. The LLC
  header (``E6 E6 00`` from the client, ``E6 E7 00`` from the server) is prepended, the
  result cut into pieces of the negotiated maximum information length; every piece but the
  last has the segmentation bit set. At most one window of frames is returned (P/F set on
  the last of it); the rest wait for the peer's RR and come as :class:`PeerReady.reply`.

Events: :class:`Connected`, :class:`Disconnected`, :class:`FrameRejected`,
:class:`SegmentReceived` (reply = RR), :class:`DataReceived` (the reassembled APDU, LLC
checked and stripped), :class:`PeerReady`, :class:`PeerBusy`. Segments that add up to more
than the largest xDLMS APDU (65535 bytes) raise :class:`RemoteProtocolError` and are dropped.

Theory of operation
-------------------
Both ends walk through :class:`State`. :data:`_SEND` lists the frames each role may send
in each state, :data:`_RECEIVE` the frames each role accepts; a send not in the table
raises :class:`LocalProtocolError`, a received frame not in it
:class:`RemoteProtocolError`. ::

    client: DISCONNECTED --SNRM--> CONNECTING --UA--> CONNECTED     (DM/FRMR: DISCONNECTED)
            CONNECTED --DISC--> DISCONNECTING --UA or DM--> DISCONNECTED
            CONNECTED --I/RR (both ways)--> CONNECTED      (DM/FRMR received: DISCONNECTED)
    server: DISCONNECTED or CONNECTED --SNRM, reply UA--> CONNECTED
            CONNECTED --DISC, reply UA--> DISCONNECTED
            DISCONNECTED --DISC/I/RR/RNR, reply DM--> DISCONNECTED

Sequence numbers are counted modulo 8: a received I-frame must carry N(S) = V(R) and every
received I/RR/RNR frame N(R) = V(S) (all our frames acknowledged; window retransmission is
not implemented). A violation raises :class:`RemoteProtocolError`; the frame is consumed and
the state unchanged. Frames for other addresses (other stations on a bus, our own echo) are
dropped silently. UI frames are parsed but not used by the connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeAlias

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.protocols.common import NEED_DATA, NeedData

__all__ = [
    "DEFAULT_PARAMETERS",
    "LLC_REQUEST",
    "LLC_RESPONSE",
    "NEED_DATA",
    "Connected",
    "DataReceived",
    "Disconnected",
    "Event",
    "Frame",
    "FrameKind",
    "FrameParser",
    "FrameRejected",
    "HdlcAddress",
    "HdlcConnection",
    "HdlcParameters",
    "NeedData",
    "PeerBusy",
    "PeerReady",
    "Role",
    "SegmentReceived",
    "State",
    "crc16_x25",
    "encode_frame",
    "negotiate",
]

FLAG: Final = 0x7E
LLC_REQUEST: Final = b"\xe6\xe6\x00"
LLC_RESPONSE: Final = b"\xe6\xe7\x00"
#: Longest length field (11 bits).
_MAX_FRAME_LENGTH: Final = 0x7FF
#: Largest information field we ever put in one frame (fits a 4-byte address header).
_MAX_INFO: Final = 2030
#: Longest APDU a peer may send in segments: the largest xDLMS PDU (max_receive_pdu_size
#: is 16 bits); with the LLC header this bounds what a receiver reassembles.
_MAX_APDU: Final = 0xFFFF


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc16_x25(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X.25 (reflected polynomial 0x1021, init and xorout 0xFFFF) used for HCS and FCS."""
    crc = 0xFFFF
    for byte in bytes(data):
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


def _crc_bytes(data: bytes | bytearray) -> bytes:
    return crc16_x25(data).to_bytes(2, "little")


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True, slots=True)
class HdlcAddress:
    """An HDLC address of 1, 2 or 4 bytes.

    One byte: ``logical`` only (``physical`` is None), e.g. a client SAP or a server's
    upper address. Two bytes: 7-bit logical and physical parts; four bytes: 14-bit parts.
    """

    logical: int
    physical: int | None = None
    length: int = 1

    def __post_init__(self) -> None:
        if self.length == 1:
            if self.physical is not None:
                raise LocalProtocolError("a 1-byte HDLC address has no physical part")
            limit = 0x80
        elif self.length in (2, 4):
            if self.physical is None:
                raise LocalProtocolError(f"a {self.length}-byte HDLC address needs a physical part")
            limit = 0x80 if self.length == 2 else 0x4000
            if not 0 <= self.physical < limit:
                raise LocalProtocolError(f"physical address {self.physical} out of range 0..{limit - 1}")
        else:
            raise LocalProtocolError(f"HDLC address length must be 1, 2 or 4, not {self.length}")
        if not 0 <= self.logical < limit:
            raise LocalProtocolError(f"logical address {self.logical} out of range 0..{limit - 1}")

    def encode(self) -> bytes:
        """The address bytes, extension bit set on the last one only."""
        if self.length == 1:
            parts = [self.logical]
        elif self.length == 2:
            assert self.physical is not None
            parts = [self.logical, self.physical]
        else:
            assert self.physical is not None
            parts = [self.logical >> 7, self.logical & 0x7F, self.physical >> 7, self.physical & 0x7F]
        out = bytearray(p << 1 for p in parts)
        out[-1] |= 1
        return bytes(out)

    @classmethod
    def parse(cls, data: bytes | bytearray) -> tuple[HdlcAddress, int]:
        """Parse an address at the start of ``data``; return it and the bytes it used."""
        for index, byte in enumerate(data[:4]):
            if byte & 1:
                length = index + 1
                break
        else:
            if len(data) < 4:
                raise RemoteProtocolError("HDLC address runs past the end of the frame")
            raise RemoteProtocolError("HDLC address longer than 4 bytes")
        if length == 3:
            raise RemoteProtocolError("HDLC address of 3 bytes (only 1, 2 or 4 allowed)")
        parts = [b >> 1 for b in data[:length]]
        if length == 1:
            return cls(parts[0]), 1
        if length == 2:
            return cls(parts[0], parts[1], 2), 2
        return cls(parts[0] << 7 | parts[1], parts[2] << 7 | parts[3], 4), 4


# --------------------------------------------------------------------------- parameters

_PARAM_IDS: Final = (0x05, 0x06, 0x07, 0x08)


@dataclass(frozen=True, slots=True)
class HdlcParameters:
    """HDLC link parameters, from the point of view of whoever states them."""

    max_info_tx: int = 128
    max_info_rx: int = 128
    window_tx: int = 1
    window_rx: int = 1

    def __post_init__(self) -> None:
        for name in ("max_info_tx", "max_info_rx"):
            value = getattr(self, name)
            if not 1 <= value <= 0xFFFFFFFF:
                raise LocalProtocolError(f"{name} {value} out of range 1..2**32-1")
        for name in ("window_tx", "window_rx"):
            value = getattr(self, name)
            if not 1 <= value <= 7:
                raise LocalProtocolError(f"{name} {value} out of range 1..7")

    def swapped(self) -> HdlcParameters:
        """The same parameters seen from the other end (transmit and receive exchanged)."""
        return HdlcParameters(self.max_info_rx, self.max_info_tx, self.window_rx, self.window_tx)

    def encode(self, *, omit_defaults: bool = False) -> bytes:
        """The information field ``81 80 len ...``; b"" if ``omit_defaults`` leaves nothing.

        Maximum lengths are sent as 2-byte values (4 bytes above 0xFFFF), windows as
        4-byte values, as meters and the usual clients do.
        """
        values = (self.max_info_tx, self.max_info_rx, self.window_tx, self.window_rx)
        defaults = (128, 128, 1, 1)
        group = bytearray()
        for pid, value, default in zip(_PARAM_IDS, values, defaults, strict=True):
            if omit_defaults and value == default:
                continue
            width = 4 if pid >= 0x07 or value > 0xFFFF else 2
            group += bytes((pid, width)) + value.to_bytes(width, "big")
        if not group:
            return b""
        return bytes((0x81, 0x80, len(group))) + bytes(group)

    @classmethod
    def parse(cls, information: bytes) -> HdlcParameters:
        """Parse a SNRM/UA information field; empty gives the defaults."""
        if not information:
            return cls()
        if len(information) < 3 or information[0] != 0x81 or information[1] != 0x80:
            raise RemoteProtocolError(
                f"HDLC parameters must start with format 81 group 80, got {information[:2].hex(' ')}"
            )
        if information[2] != len(information) - 3:
            raise RemoteProtocolError(
                f"HDLC parameter group length {information[2]} but {len(information) - 3} bytes follow"
            )
        found: dict[int, int] = {}
        pos = 3
        while pos < len(information):
            if pos + 2 > len(information):
                raise RemoteProtocolError("HDLC parameter truncated after its identifier")
            pid, width = information[pos], information[pos + 1]
            if width not in (1, 2, 4):
                raise RemoteProtocolError(f"HDLC parameter {pid:02X} has a {width}-byte value (1, 2, 4)")
            if pos + 2 + width > len(information):
                raise RemoteProtocolError(f"HDLC parameter {pid:02X} value truncated")
            found[pid] = int.from_bytes(information[pos + 2 : pos + 2 + width], "big")
            pos += 2 + width
        default = cls()
        values = (default.max_info_tx, default.max_info_rx, default.window_tx, default.window_rx)
        merged = [found.get(pid, value) for pid, value in zip(_PARAM_IDS, values, strict=True)]
        try:
            return cls(*merged)
        except LocalProtocolError as err:
            raise RemoteProtocolError(f"invalid HDLC parameter: {err}") from None


#: The parameters in force when none are negotiated.
DEFAULT_PARAMETERS: Final = HdlcParameters()


def negotiate(proposal: HdlcParameters, limits: HdlcParameters) -> HdlcParameters:
    """The server's UA parameters for a client ``proposal`` (client's view) and its ``limits``.

    The result is in the server's view: it sends at most what the client can receive and
    what it can send itself, and so on for each parameter.
    """
    return HdlcParameters(
        max_info_tx=min(limits.max_info_tx, proposal.max_info_rx),
        max_info_rx=min(limits.max_info_rx, proposal.max_info_tx),
        window_tx=min(limits.window_tx, proposal.window_rx),
        window_rx=min(limits.window_rx, proposal.window_tx),
    )


# --------------------------------------------------------------------------- frames


class FrameKind(enum.Enum):
    """Frame types of the control field."""

    I = "I"  # noqa: E741 - the standard's name
    RR = "RR"
    RNR = "RNR"
    SNRM = "SNRM"
    DISC = "DISC"
    UA = "UA"
    DM = "DM"
    FRMR = "FRMR"
    UI = "UI"


_U_CODES: Final = {
    FrameKind.SNRM: 0x83,
    FrameKind.DISC: 0x43,
    FrameKind.UA: 0x63,
    FrameKind.DM: 0x0F,
    FrameKind.FRMR: 0x87,
    FrameKind.UI: 0x03,
}
_U_KINDS: Final = {code: kind for kind, code in _U_CODES.items()}
_S_CODES: Final = {FrameKind.RR: 0x01, FrameKind.RNR: 0x05}
_S_KINDS: Final = {code: kind for kind, code in _S_CODES.items()}
#: Kinds that never carry an information field.
_NO_INFO: Final = frozenset({FrameKind.RR, FrameKind.RNR, FrameKind.DISC, FrameKind.DM})


@dataclass(frozen=True, slots=True)
class Frame:
    """One HDLC frame. ``ns`` is used by I-frames only, ``nr`` by I, RR and RNR frames."""

    kind: FrameKind
    destination: HdlcAddress
    source: HdlcAddress
    ns: int = 0
    nr: int = 0
    poll_final: bool = True
    information: bytes = b""
    segmented: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.ns <= 7 or not 0 <= self.nr <= 7:
            raise LocalProtocolError(f"N(S)={self.ns} N(R)={self.nr}: sequence numbers are 0..7")
        if self.ns and self.kind is not FrameKind.I:
            raise LocalProtocolError(f"{self.kind.value} frames have no N(S)")
        if self.nr and self.kind not in (FrameKind.I, FrameKind.RR, FrameKind.RNR):
            raise LocalProtocolError(f"{self.kind.value} frames have no N(R)")
        if self.information and self.kind in _NO_INFO:
            raise LocalProtocolError(f"{self.kind.value} frames have no information field")

    @property
    def control(self) -> int:
        """The control byte."""
        pf = 0x10 if self.poll_final else 0
        if self.kind is FrameKind.I:
            return self.nr << 5 | pf | self.ns << 1
        if self.kind in _S_CODES:
            return self.nr << 5 | pf | _S_CODES[self.kind]
        return _U_CODES[self.kind] | pf


def encode_frame(frame: Frame) -> bytes:
    """The frame's bytes, opening and closing flag included."""
    header = frame.destination.encode() + frame.source.encode() + bytes((frame.control,))
    length = 2 + len(header) + 2 + (len(frame.information) + 2 if frame.information else 0)
    if length > _MAX_FRAME_LENGTH:
        raise LocalProtocolError(f"frame of {length} bytes exceeds the 11-bit length field")
    body = bytearray(((0xA8 if frame.segmented else 0xA0) | length >> 8, length & 0xFF))
    body += header
    if frame.information:
        body += _crc_bytes(body)
        body += frame.information
    body += _crc_bytes(body)
    return bytes((FLAG,)) + bytes(body) + bytes((FLAG,))


def _decode_control(control: int) -> tuple[FrameKind, int, int, bool]:
    pf = bool(control & 0x10)
    if not control & 1:
        return FrameKind.I, control >> 1 & 7, control >> 5, pf
    if control & 3 == 1:
        kind = _S_KINDS.get(control & 0x0F)
        if kind is None:
            raise RemoteProtocolError(f"unsupported supervisory frame, control byte {control:02X}")
        return kind, 0, control >> 5, pf
    ukind = _U_KINDS.get(control & 0xEF)
    if ukind is None:
        raise RemoteProtocolError(f"unknown control byte {control:02X}")
    return ukind, 0, 0, pf


def _parse_body(body: bytes) -> Frame:
    """Parse the bytes between the flags, whose length field is already checked."""
    segmented = bool(body[0] & 0x08)
    destination, used = HdlcAddress.parse(body[2:-2])
    pos = 2 + used
    source, used = HdlcAddress.parse(body[pos:-2])
    pos += used
    if pos >= len(body) - 2:
        raise RemoteProtocolError("frame ends before the control field")
    control = body[pos]
    pos += 1
    rest = len(body) - pos - 2
    information = b""
    if rest:
        if rest < 3:
            raise RemoteProtocolError(f"{rest} bytes after the control field: too short for HCS and data")
        if body[pos : pos + 2] != _crc_bytes(body[:pos]):
            raise RemoteProtocolError(
                f"bad HCS {body[pos : pos + 2].hex(' ')}, expected {_crc_bytes(body[:pos]).hex(' ')}"
            )
        information = body[pos + 2 : -2]
    if body[-2:] != _crc_bytes(body[:-2]):
        raise RemoteProtocolError(f"bad FCS {body[-2:].hex(' ')}, expected {_crc_bytes(body[:-2]).hex(' ')}")
    kind, ns, nr, pf = _decode_control(control)
    if information and kind in _NO_INFO:
        raise RemoteProtocolError(f"{kind.value} frame with an information field")
    return Frame(kind, destination, source, ns, nr, pf, information, segmented)


class FrameParser:
    """Streaming frame receiver: :meth:`receive_data`, then :meth:`next_frame`."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> None:
        """Append received bytes."""
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Number of bytes waiting (a partial frame, or a lone flag)."""
        return len(self._buffer)

    def _resync(self, message: str) -> RemoteProtocolError:
        """Drop the opening flag and everything up to the next flag."""
        nxt = self._buffer.find(FLAG, 1)
        del self._buffer[: nxt if nxt > 0 else len(self._buffer)]
        return RemoteProtocolError(message)

    def next_frame(self) -> Frame | NeedData:
        """The next complete frame, or :data:`NEED_DATA`.

        Raises :class:`RemoteProtocolError` for a malformed frame or garbage between frames.
        """
        buf = self._buffer
        start = buf.find(FLAG)
        if start < 0:
            if buf:
                count = len(buf)
                buf.clear()
                raise RemoteProtocolError(f"{count} bytes of garbage outside an HDLC frame")
            return NEED_DATA
        if start > 0:
            del buf[:start]
            raise RemoteProtocolError(f"{start} bytes of garbage before an HDLC flag")
        while len(buf) > 1 and buf[1] == FLAG:  # idle fill / shared flags
            del buf[0]
        if len(buf) < 3:
            return NEED_DATA
        if buf[1] & 0xF0 != 0xA0:
            raise self._resync(f"frame format byte {buf[1]:02X} is not type 3 (A0..AF)")
        length = (buf[1] & 0x07) << 8 | buf[2]
        if length < 7:
            raise self._resync(f"frame length {length} is shorter than the smallest frame (7)")
        if len(buf) < length + 2:
            return NEED_DATA
        if buf[length + 1] != FLAG:
            raise self._resync(f"no closing flag after the {length} bytes of the length field")
        body = bytes(buf[1 : length + 1])
        try:
            frame = _parse_body(body)
        except RemoteProtocolError as err:
            raise self._resync(str(err)) from None
        del buf[: length + 1]  # keep the closing flag: it may open the next frame
        return frame


# --------------------------------------------------------------------------- connection


class Role(enum.Enum):
    """Which end of the link a connection plays."""

    CLIENT = "client"  # primary station: the gateway
    SERVER = "server"  # secondary station: the meter


class State(enum.Enum):
    """Link state (see the module docstring)."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"  # client: SNRM sent, waiting for UA
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"  # client: DISC sent, waiting for UA/DM


_C, _S = Role.CLIENT, Role.SERVER
_D, _CING, _CON, _DING = State.DISCONNECTED, State.CONNECTING, State.CONNECTED, State.DISCONNECTING
_K = FrameKind

#: Frames each role may send: ``{(role, state, kind): next_state}``.
_SEND: Final[dict[tuple[Role, State, FrameKind], State]] = {
    (_C, _D, _K.SNRM): _CING,
    (_C, _CON, _K.SNRM): _CING,
    (_C, _D, _K.DISC): _DING,
    (_C, _CON, _K.DISC): _DING,
    (_C, _CON, _K.I): _CON,
    (_S, _CON, _K.I): _CON,
}

#: Frames each role accepts: ``{(receiver role, state, kind): next_state}``.
_RECEIVE: Final[dict[tuple[Role, State, FrameKind], State]] = {
    (_C, _CING, _K.UA): _CON,
    (_C, _CING, _K.DM): _D,
    (_C, _CING, _K.FRMR): _D,
    (_C, _CON, _K.I): _CON,
    (_C, _CON, _K.RR): _CON,
    (_C, _CON, _K.RNR): _CON,
    (_C, _CON, _K.DM): _D,
    (_C, _CON, _K.FRMR): _D,
    (_C, _DING, _K.UA): _D,
    (_C, _DING, _K.DM): _D,
    (_S, _D, _K.SNRM): _CON,
    (_S, _CON, _K.SNRM): _CON,
    (_S, _CON, _K.I): _CON,
    (_S, _CON, _K.RR): _CON,
    (_S, _CON, _K.RNR): _CON,
    (_S, _CON, _K.DISC): _D,
    (_S, _D, _K.DISC): _D,  # answered with DM
    (_S, _D, _K.I): _D,  # answered with DM
    (_S, _D, _K.RR): _D,  # answered with DM
    (_S, _D, _K.RNR): _D,  # answered with DM
}


@dataclass(frozen=True, slots=True)
class Connected:
    """The link is up; ``parameters`` in force, from our point of view (tx = what we send)."""

    parameters: HdlcParameters
    reply: bytes = b""  # server: the UA


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The link is down; ``reason`` is the frame that ended it (UA, DM or DISC)."""

    reason: FrameKind
    reply: bytes = b""  # server: UA to DISC, or DM when not connected


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """The peer sent FRMR: the link is down and must be set up again."""

    information: bytes
    reply: bytes = b""


@dataclass(frozen=True, slots=True)
class SegmentReceived:
    """A segment of a longer APDU arrived; ``reply`` is the RR asking for the next one."""

    reply: bytes = b""


@dataclass(frozen=True, slots=True)
class DataReceived:
    """A complete APDU (all segments joined, LLC header checked and removed)."""

    apdu: bytes
    reply: bytes = b""


@dataclass(frozen=True, slots=True)
class PeerReady:
    """The peer sent RR; ``reply`` holds our next queued I-frames (server: RR if idle)."""

    reply: bytes = b""


@dataclass(frozen=True, slots=True)
class PeerBusy:
    """The peer sent RNR: wait and poll again."""

    reply: bytes = b""


Event: TypeAlias = (
    Connected | Disconnected | FrameRejected | SegmentReceived | DataReceived | PeerReady | PeerBusy
)


class HdlcConnection:
    """One end of an HDLC link between ``client_address`` and ``server_address``.

    ``limits`` are the parameters this end proposes (client, default for :meth:`connect`)
    or accepts at most (server), in this end's view.
    """

    def __init__(
        self,
        role: Role,
        client_address: HdlcAddress,
        server_address: HdlcAddress,
        limits: HdlcParameters = DEFAULT_PARAMETERS,
    ) -> None:
        self.role = role
        self.client_address = client_address
        self.server_address = server_address
        self.limits = limits
        self.state = State.DISCONNECTED
        #: Negotiated parameters, our view; the defaults until a link is set up.
        self.parameters = DEFAULT_PARAMETERS
        self._parser = FrameParser()
        self._vs = 0  # send state variable V(S)
        self._vr = 0  # receive state variable V(R)
        self._rx_parts: list[bytes] = []
        self._rx_size = 0  # bytes in _rx_parts
        self._tx_queue: list[bytes] = []  # information fields still to send
        self._proposal = DEFAULT_PARAMETERS
        if role is Role.CLIENT:
            self._own, self._peer = client_address, server_address
            self._llc_out, self._llc_in = LLC_REQUEST, LLC_RESPONSE
        else:
            self._own, self._peer = server_address, client_address
            self._llc_out, self._llc_in = LLC_RESPONSE, LLC_REQUEST

    # ----------------------------------------------------------------- sending

    def _frame(
        self,
        kind: FrameKind,
        *,
        ns: int = 0,
        nr: int = 0,
        poll_final: bool = True,
        information: bytes = b"",
        segmented: bool = False,
    ) -> bytes:
        return encode_frame(Frame(kind, self._peer, self._own, ns, nr, poll_final, information, segmented))

    def _move(self, kind: FrameKind) -> None:
        try:
            self.state = _SEND[self.role, self.state, kind]
        except KeyError:
            raise LocalProtocolError(
                f"{self.role.value} cannot send {kind.value} in state {self.state.value}"
            ) from None

    def connect(self, parameters: HdlcParameters | None = None) -> bytes:
        """Client: the SNRM proposing ``parameters`` (default: ``limits``)."""
        if self.role is not Role.CLIENT:
            raise LocalProtocolError("only the client sends SNRM")
        self._move(FrameKind.SNRM)
        self._proposal = self.limits if parameters is None else parameters
        return self._frame(FrameKind.SNRM, information=self._proposal.encode(omit_defaults=True))

    def disconnect(self) -> bytes:
        """Client: the DISC."""
        if self.role is not Role.CLIENT:
            raise LocalProtocolError("only the client sends DISC")
        self._move(FrameKind.DISC)
        self._tx_queue.clear()
        self._rx_parts.clear()
        self._rx_size = 0
        return self._frame(FrameKind.DISC)

    def send_data(self, apdu: bytes) -> list[bytes]:
        """The I-frames to send now for ``apdu``; later segments follow in :class:`PeerReady`."""
        if self._tx_queue:
            raise LocalProtocolError("the previous APDU is still being sent (wait for the peer's RR)")
        if self._rx_parts:
            raise LocalProtocolError("a segmented APDU is still being received")
        self._move(FrameKind.I)
        data = self._llc_out + apdu
        size = min(self.parameters.max_info_tx, _MAX_INFO)
        self._tx_queue = [data[i : i + size] for i in range(0, len(data), size)]
        return self._release()

    def _release(self) -> list[bytes]:
        """Send up to one window of queued pieces; P/F on the last one."""
        count = min(self.parameters.window_tx, len(self._tx_queue))
        frames = []
        for index in range(count):
            piece = self._tx_queue.pop(0)
            frames.append(
                self._frame(
                    FrameKind.I,
                    ns=self._vs,
                    nr=self._vr,
                    poll_final=index == count - 1,
                    information=piece,
                    segmented=bool(self._tx_queue),
                )
            )
            self._vs = (self._vs + 1) % 8
        return frames

    # ----------------------------------------------------------------- receiving

    def receive_data(self, data: bytes) -> None:
        """Feed received bytes; then call :meth:`next_event` until :data:`NEED_DATA`."""
        self._parser.receive_data(data)

    def next_event(self) -> Event | NeedData:
        """The next event, or :data:`NEED_DATA`. Malformed input: :class:`RemoteProtocolError`."""
        while True:
            frame = self._parser.next_frame()
            if frame is NEED_DATA:
                return NEED_DATA
            if frame.destination != self._own or frame.source != self._peer:
                continue  # another station's frame, or our own echo
            return self._handle(frame)

    def _handle(self, frame: Frame) -> Event:
        kind = frame.kind
        next_state = _RECEIVE.get((self.role, self.state, kind))
        if next_state is None:
            raise RemoteProtocolError(
                f"{kind.value} frame not expected by the {self.role.value} in state {self.state.value}"
            )
        if self.role is Role.SERVER and self.state is State.DISCONNECTED and kind is not FrameKind.SNRM:
            return Disconnected(kind, self._frame(FrameKind.DM))
        if kind in (FrameKind.I, FrameKind.RR, FrameKind.RNR) and frame.nr != self._vs:
            raise RemoteProtocolError(f"{kind.value} frame with N(R)={frame.nr}, expected {self._vs}")
        if kind is FrameKind.I and frame.ns != self._vr:
            raise RemoteProtocolError(f"I-frame with N(S)={frame.ns}, expected {self._vr}")
        event: Event
        if kind is FrameKind.SNRM:
            proposal = HdlcParameters.parse(frame.information)
            answer = negotiate(proposal, self.limits)
            self._reset(answer)
            event = Connected(answer, self._frame(FrameKind.UA, information=answer.encode()))
        elif kind is FrameKind.UA and self.state is State.CONNECTING:
            offered = HdlcParameters.parse(frame.information)
            self._reset(offered.swapped())
            event = Connected(self.parameters)
        elif kind in (FrameKind.UA, FrameKind.DM, FrameKind.DISC):
            reply = self._frame(FrameKind.UA) if kind is FrameKind.DISC else b""
            self._reset(DEFAULT_PARAMETERS)
            event = Disconnected(kind, reply)
        elif kind is FrameKind.FRMR:
            self._reset(DEFAULT_PARAMETERS)
            event = FrameRejected(frame.information)
        elif kind is FrameKind.RNR:
            event = PeerBusy()
        elif kind is FrameKind.RR:
            if self._tx_queue:
                event = PeerReady(b"".join(self._release()))
            elif self.role is Role.SERVER and frame.poll_final:
                event = PeerReady(self._frame(FrameKind.RR, nr=self._vr))
            else:
                event = PeerReady()
        else:
            event = self._receive_i(frame)
        self.state = next_state
        return event

    def _receive_i(self, frame: Frame) -> Event:
        if self._tx_queue:
            raise RemoteProtocolError("I-frame received while our segmented APDU is unfinished")
        self._vr = (self._vr + 1) % 8
        self._rx_parts.append(frame.information)
        self._rx_size += len(frame.information)
        if self._rx_size > len(self._llc_in) + _MAX_APDU:
            self._rx_parts.clear()
            self._rx_size = 0
            raise RemoteProtocolError(f"segmented APDU longer than {_MAX_APDU} bytes: dropped")
        if frame.segmented:
            return SegmentReceived(self._frame(FrameKind.RR, nr=self._vr) if frame.poll_final else b"")
        data = b"".join(self._rx_parts)
        self._rx_parts.clear()
        self._rx_size = 0
        if data[:3] != self._llc_in:
            raise RemoteProtocolError(f"LLC header {data[:3].hex(' ')}, expected {self._llc_in.hex(' ')}")
        return DataReceived(data[3:])

    def _reset(self, parameters: HdlcParameters) -> None:
        self.parameters = parameters
        self._vs = self._vr = 0
        self._rx_parts.clear()
        self._rx_size = 0
        self._tx_queue.clear()
