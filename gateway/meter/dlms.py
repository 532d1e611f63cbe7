"""DLMS/COSEM client session over HDLC: drives the sans-I/O cores over a transport.

Theory of operation (IEC 62056-46 HDLC, IEC 62056-5-3 xDLMS services, IEC 62056-6-2
interface classes, IEC 62056-21 Annex E mode E):

1. **Line.** Direct HDLC starts at the configured speed, 8N1. Mode E signs on like
   IEC 62056-21 mode C at 300 Bd 7E1 (``/?!``); the identification must announce ``\\2``
   (HDLC available); the option select ``ACK 2 Z 2`` names the speed, after which both
   ends switch to it at 8N1 and the meter waits for the SNRM.
2. **Link.** SNRM proposes our information field lengths and windows; the UA answers
   with what the meter accepts (:func:`~gateway.protocols.hdlc.negotiate`). Long APDUs
   travel as segments in both directions (the core answers segments with RR).
3. **Association.** AARQ with the LN or SN application context, no security or
   low-level security (the password); the AARE either accepts (InitiateResponse with the
   negotiated conformance and the meter's PDU size) or rejects with a diagnostic, which
   becomes :class:`AssociationRefused` naming it.
4. **Services.** LN: GET normal / with-list, data blocks fetched with GET-next until the
   last one. SN: one ReadRequest with several variable names (base name + 8 x (attribute
   - 1)), parameterised access for profile ranges. ExceptionResponse and
   ConfirmedServiceError become :class:`ServiceRefused`; a data-access-result for one
   item stays with that item (the adapter turns ``object-undefined`` into
   :class:`~gateway.errors.DataNotAvailable`).
5. **Release.** DISC (the meter drops the association with the link); the transport is
   closed. Mode E meters return to 300 Bd by themselves after the DISC.

Every wait for the meter has a timeout that restarts with each received chunk (an
inter-character timeout), so a long profile answer needs no longer timeout while a meter
that stops half-way is noticed as fast as a silent one.

:class:`DlmsMeter` is the poller's view (:class:`~gateway.meter.poller.MeterLink`): it
discovers the meter's objects from the association's object list, caches the scalers
and units once per association, reads the whole 1-second set in one request
(:meth:`DlmsMeter.read_values`), and maps profiles and the event log to the gateway's
model with UTC time stamps.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final, TypeAlias

from gateway.clock import Clock
from gateway.errors import (
    DataNotAvailable,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
)
from gateway.meter.line import MeterLine, SessionView, sign_on
from gateway.meter.model import EventRecord, MeterInfo, ProfileData, ProfileEntry
from gateway.obis import CATALOGUE, EVENT_CODE, FIRMWARE, SERIAL_NUMBER, Obis, ObisKey
from gateway.protocols import apdu as ap
from gateway.protocols import cosem, hdlc
from gateway.protocols import iec62056_21 as iec
from gateway.protocols.axdr import Data, DataTag, decode_data, decode_length
from gateway.protocols.common import NEED_DATA
from gateway.streams import EVENT_LOG, PROFILES, Stream
from gateway.transport import Framing, Transport
from gateway.units import conversion_factor

log = logging.getLogger(__name__)


def conformance_bit(number: int) -> int:
    """The value of conformance bit ``number`` (IEC 62056-5-3 conformance block: bit 0 is the MSB of 24)."""
    return 1 << (23 - number)


READ: Final = conformance_bit(3)
BLOCK_TRANSFER_WITH_GET: Final = conformance_bit(11)
MULTIPLE_REFERENCES: Final = conformance_bit(14)
PARAMETERIZED_ACCESS: Final = conformance_bit(18)
GET: Final = conformance_bit(19)
SELECTIVE_ACCESS: Final = conformance_bit(21)
#: What we propose: only the services we use, so the meter's answer tells what we can do.
CONFORMANCE_LN: Final = GET | SELECTIVE_ACCESS | BLOCK_TRANSFER_WITH_GET | MULTIPLE_REFERENCES
CONFORMANCE_SN: Final = READ | PARAMETERIZED_ACCESS | MULTIPLE_REFERENCES

#: Standard logical names (IEC 62056-6-1 / DESIGN §3).
CURRENT_ASSOCIATION: Final = Obis(0, 0, 40, 0, 0)
LOGICAL_DEVICE_NAME: Final = Obis(0, 0, 42, 0, 0)
CLOCK: Final = Obis(0, 0, 1, 0, 0)
SN_ASSOCIATION_BASE: Final = 0xFA00

CLASS_DATA: Final = 1
CLASS_ASSOCIATION_SN: Final = 12
CLASS_ASSOCIATION_LN: Final = 15
#: Interface classes whose attribute 2 is a value and attribute 3 its scaler_unit.
_SCALED_CLASSES: Final = frozenset({cosem.CLASS_REGISTER, cosem.CLASS_EXTENDED_REGISTER})

#: Data-access results that mean "this meter has no readable object of that name": the
#: value is unsupported, the link is fine. Other results (hardware-fault, temporary-failure)
#: are the meter's trouble and fail the read.
_UNDEFINED: Final = frozenset(
    {
        ap.DataAccessResult.OBJECT_UNDEFINED,
        ap.DataAccessResult.OBJECT_UNAVAILABLE,
        ap.DataAccessResult.OBJECT_CLASS_INCONSISTENT,
        ap.DataAccessResult.READ_WRITE_DENIED,
        ap.DataAccessResult.SCOPE_OF_ACCESS_VIOLATED,
    }
)


#: Management logical device (upper address 1) at physical address 17, 2-byte form.
DEFAULT_SERVER_ADDRESS: Final = hdlc.HdlcAddress(1, 17, 2)
#: Our SNRM proposal (our view): long frames and a receive window cut the turnarounds
#: of a profile readout; the meter answers with what it accepts.
PROPOSED_HDLC_PARAMETERS: Final = hdlc.HdlcParameters(1024, 1024, 1, 7)


class Referencing(enum.Enum):
    """COSEM object referencing of the association (IEC 62056-5-3 §4.2)."""

    LOGICAL_NAME = "ln"
    SHORT_NAME = "sn"


class AssociationRefused(RemoteProtocolError):
    """The meter rejected the application association (AARE result not accepted)."""


class ServiceRefused(RemoteProtocolError):
    """The meter answered a request with ExceptionResponse or ConfirmedServiceError."""


@dataclass(frozen=True, slots=True)
class DlmsSettings:
    """How to reach one DLMS meter."""

    referencing: Referencing = Referencing.LOGICAL_NAME
    #: Client SAP: 16 is the public client; meters assign others to roles with passwords.
    client_address: int = 16
    server_address: hdlc.HdlcAddress = DEFAULT_SERVER_ADDRESS
    #: Low-level security password; empty = no authentication (public client).
    password: str = ""
    #: Reach HDLC through an IEC 62056-21 sign-on (optical probe) instead of directly.
    mode_e: bool = False
    #: Direct HDLC: the line speed. Mode E: the highest speed to negotiate.
    baudrate: int = 9600
    #: Device address for the mode E sign-on (``/?address!``).
    device_address: str = ""
    #: Wait for the first byte of an answer after the request has left the line.
    response_timeout: float = 0.5
    #: HDLC parameters we propose (our view).
    hdlc_parameters: hdlc.HdlcParameters = PROPOSED_HDLC_PARAMETERS
    #: Largest APDU we accept; the meter sends longer results in GET data blocks.
    max_pdu: int = 0xFFFF
    #: The meter's local zone, for date-times whose deviation it leaves unspecified.
    zone: tzinfo | None = None


@dataclass(frozen=True, slots=True)
class Association:
    """What the AARE and the link negotiation agreed on."""

    referencing: Referencing
    conformance: int
    max_pdu: int  # the meter's maximum receive PDU size
    hdlc: hdlc.HdlcParameters
    baudrate: int
    identification: iec.Identification | None = None  # mode E only


_Result: TypeAlias = "Data | ap.DataAccessResult"


class DlmsSession:
    """One HDLC link and application association with one meter over one transport."""

    def __init__(
        self, transport: Transport, settings: DlmsSettings, *, line_clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self._line = MeterLine(transport, settings.response_timeout, line_clock)
        self._link = self._new_link()
        self.stats = self._line.stats
        self.association: Association | None = None
        #: Wire time of the last answer: how old its values are when it has arrived.
        self.answer_age_s = 0.0

    def _new_link(self) -> hdlc.HdlcConnection:
        client = hdlc.HdlcAddress(self.settings.client_address)
        return hdlc.HdlcConnection(
            hdlc.Role.CLIENT, client, self.settings.server_address, self.settings.hdlc_parameters
        )

    @property
    def is_open(self) -> bool:
        return self.association is not None

    # -- line ---------------------------------------------------------------------------------

    async def _event(self, sent: int = 0) -> hdlc.Event:
        """The next HDLC event; replies the core asks for (RR, next segments) are sent.

        ``sent``: bytes just written; the meter cannot answer before they have left the
        line, so the first wait is longer by their wire time.
        """
        extra = self._line.wire_time(sent)
        while True:
            event = self._link.next_event()
            if event is NEED_DATA:
                self._link.receive_data(await self._line.read(extra))
                extra = 0.0
                continue
            await self._line.write(event.reply)
            return event

    # -- open ---------------------------------------------------------------------------------

    async def open(self) -> Association:
        """Bring up the line, the HDLC link and the association."""
        self.association = None
        self._link = self._new_link()
        ident: iec.Identification | None = None
        if self.settings.mode_e:
            # IEC 62056-21 sign-on with protocol character 2 (Annex E): -> HDLC at 8N1.
            conn = iec.Iec21Connection(iec.Role.CLIENT)
            s = self.settings
            ident, baud = await sign_on(self._line, conn, s.device_address, s.baudrate, mode_e=True)
        else:
            baud = self.settings.baudrate
            await self._line.set_line(baud, Framing.EIGHT_N_ONE)
            self._line.discard_input()
        snrm = self._link.connect()
        await self._line.write(snrm)
        event = await self._event(len(snrm))
        if isinstance(event, hdlc.Disconnected):
            raise AssociationRefused(f"meter refused the HDLC link ({event.reason.value} to SNRM)")
        if not isinstance(event, hdlc.Connected):
            raise RemoteProtocolError(f"expected UA to SNRM, meter sent {event!r}")
        params = event.parameters
        s = self.settings
        mechanism = ap.AuthenticationMechanism.LOW if s.password else None
        context = (
            ap.ApplicationContext.LOGICAL_NAME
            if s.referencing is Referencing.LOGICAL_NAME
            else ap.ApplicationContext.SHORT_NAME
        )
        conformance = CONFORMANCE_LN if s.referencing is Referencing.LOGICAL_NAME else CONFORMANCE_SN
        aarq = ap.Aarq(
            context,
            ap.InitiateRequest(conformance=conformance, max_receive_pdu_size=s.max_pdu),
            mechanism,
            s.password.encode("ascii") if s.password else None,
        )
        answer = await self._request(aarq.encode())
        if not isinstance(answer, ap.Aare):
            raise RemoteProtocolError(f"expected AARE, meter sent {type(answer).__name__}")
        _check_aare(answer, context)
        initiate = answer.user_information
        assert isinstance(initiate, ap.InitiateResponse)
        self.association = Association(
            s.referencing, initiate.conformance, initiate.max_receive_pdu_size, params, baud, ident
        )
        log.debug("associated (%s) at %d Bd, HDLC %s, meter PDU %d", context.name, baud, params,
                  initiate.max_receive_pdu_size)  # fmt: skip
        return self.association

    # -- requests -----------------------------------------------------------------------------

    async def _request(self, request: bytes) -> ap.Apdu:
        """Send one APDU and return the meter's answer, decoded; errors become exceptions."""
        sent = 0
        for frame in self._link.send_data(request):
            await self._line.write(frame)
            sent += len(frame)
        received = self.stats.bytes_received
        while True:
            event = await self._event(sent)
            sent = len(event.reply)
            if isinstance(event, hdlc.DataReceived):
                # The meter took the values before the first byte of its answer.
                self.answer_age_s = self._line.wire_time(self.stats.bytes_received - received)
                answer = ap.decode_apdu(event.apdu)
                break
            if isinstance(event, hdlc.SegmentReceived | hdlc.PeerReady):
                continue
            self.association = None
            if isinstance(event, hdlc.Disconnected):
                raise RemoteProtocolError(f"meter ended the HDLC link ({event.reason.value})")
            if isinstance(event, hdlc.FrameRejected):
                raise RemoteProtocolError(f"meter rejected our frame (FRMR {event.information.hex(' ')})")
            raise RemoteProtocolError("meter is busy (RNR)")
        if isinstance(answer, ap.ExceptionResponse):
            raise ServiceRefused(
                f"meter answered with an exception: {_name(answer.state_error)} / "
                f"{_name(answer.service_error)}"
            )
        if isinstance(answer, ap.ConfirmedServiceError):
            raise ServiceRefused(
                f"meter refused the {_name(answer.service)} service: "
                f"{_name(answer.error_type)} {answer.reason}"
            )
        return answer

    @property
    def invoke(self) -> ap.InvokeIdAndPriority:
        """Invoke id and priority of our requests.

        A fixed invoke id lets the 1-second request be encoded once and reused; with one
        request outstanding at a time, answers cannot be confused.
        """
        return ap.InvokeIdAndPriority(1)

    def _require(self) -> Association:
        if self.association is None:
            raise LocalProtocolError("no association: call open() first")
        return self.association

    @property
    def multiple_references(self) -> bool:
        """The meter accepts several attributes in one GET / Read (conformance bit 14)."""
        return bool(self._require().conformance & MULTIPLE_REFERENCES)

    def encode_get(self, requests: Sequence[ap.AttributeRequest]) -> bytes:
        """GET-normal for one attribute, GET-with-list for several (LN)."""
        if len(requests) == 1:
            return ap.GetRequestNormal(requests[0].descriptor, requests[0].access, self.invoke).encode()
        return ap.GetRequestWithList(tuple(requests), self.invoke).encode()

    async def get_encoded(self, apdu: bytes, count: int) -> list[_Result]:
        """Send a GET request encoded beforehand (the 1-second set) expecting ``count`` results."""
        self._require()
        return await self._get(apdu, count)

    async def _get(self, apdu: bytes, count: int) -> list[_Result]:
        answer = await self._request(apdu)
        raw = bytearray()
        expected_block = 1
        while isinstance(answer, ap.GetResponseWithDatablock):
            if isinstance(answer.raw_data, ap.DataAccessResult):
                if count == 1:
                    return [answer.raw_data]
                raise RemoteProtocolError(f"data block transfer failed: {_name(answer.raw_data)}")
            if answer.block_number != expected_block:
                raise RemoteProtocolError(
                    f"data block {answer.block_number} received, expected {expected_block}"
                )
            raw += answer.raw_data
            if answer.last_block:
                return _decode_blocks(bytes(raw), count)
            answer = await self._request(ap.GetRequestNext(answer.block_number, self.invoke).encode())
            expected_block += 1
        if isinstance(answer, ap.GetResponseNormal) and count == 1:
            return [answer.result]
        if isinstance(answer, ap.GetResponseWithList):
            if len(answer.results) != count:
                raise RemoteProtocolError(f"{len(answer.results)} results for {count} requested attributes")
            return list(answer.results)
        raise RemoteProtocolError(f"expected a GET response, meter sent {type(answer).__name__}")

    async def read_encoded(self, apdu: bytes, count: int) -> list[_Result]:
        """Send a ReadRequest encoded beforehand expecting ``count`` results."""
        self._require()
        answer = await self._request(apdu)
        if not isinstance(answer, ap.ReadResponse):
            raise RemoteProtocolError(f"expected a ReadResponse, meter sent {type(answer).__name__}")
        if len(answer.results) != count:
            raise RemoteProtocolError(f"{len(answer.results)} results for {count} variables read")
        return list(answer.results)

    async def close(self) -> None:
        """DISC (if the link is up) and close the transport; never raises."""
        self.association = None
        try:
            if self._link.state is hdlc.State.CONNECTED:
                await self._line.write(self._link.disconnect())
                event = await self._event()  # UA or DM; a silent meter times out
                log.debug("link closed: %r", event)
        except (TransportError, RemoteProtocolError, LocalProtocolError) as err:
            log.debug("DISC not acknowledged: %s", err)
        finally:
            await self._line.close()


def _name(value: enum.IntEnum | int) -> str:
    return value.name.lower().replace("_", "-") if isinstance(value, enum.IntEnum) else f"code {value}"


def _check_aare(aare: ap.Aare, context: ap.ApplicationContext) -> None:
    """Turn a rejecting or inconsistent AARE into a precise :class:`AssociationRefused`."""
    if aare.result is not ap.AssociationResult.ACCEPTED:
        if aare.diagnostic_source is ap.DiagnosticSource.ACSE_SERVICE_USER:
            try:
                why = _name(ap.AcseServiceUserDiagnostic(aare.diagnostic))
            except ValueError:
                why = f"diagnostic {aare.diagnostic}"
        else:
            why = f"service provider diagnostic {aare.diagnostic}"
        if aare.diagnostic == ap.AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE:
            why += " (wrong password)"
        if isinstance(aare.user_information, ap.ConfirmedServiceError):
            why += f"; {_name(aare.user_information.error_type)} {aare.user_information.reason}"
        raise AssociationRefused(f"meter refused the association ({_name(aare.result)}): {why}")
    if isinstance(aare.user_information, ap.ConfirmedServiceError):
        info = aare.user_information
        raise AssociationRefused(f"meter refused the xDLMS initiate: {_name(info.error_type)} {info.reason}")
    if not isinstance(aare.user_information, ap.InitiateResponse):
        raise RemoteProtocolError("AARE accepted without an InitiateResponse")
    if aare.context is not context:
        raise AssociationRefused(f"meter accepted another application context ({aare.context.name})")


def _decode_blocks(raw: bytes, count: int) -> list[_Result]:
    """Joined GET data blocks: one Data (normal), or the list of Get-Data-Results (with-list).

    IEC 62056-5-3: the raw data of a with-list answer is the A-XDR SEQUENCE OF
    Get-Data-Result: a length, then per item ``00 data`` or ``01 data-access-result``.
    """
    if count == 1:
        data, end = decode_data(raw)
        if end != len(raw):
            raise RemoteProtocolError(f"data blocks hold {len(raw) - end} bytes after the value")
        return [data]
    n, pos = decode_length(raw)
    if n != count:
        raise RemoteProtocolError(f"data blocks hold {n} results for {count} requested attributes")
    results: list[_Result] = []
    for index in range(n):
        if pos >= len(raw):
            raise RemoteProtocolError(f"data blocks end before result {index + 1} of {n}")
        choice = raw[pos]
        if choice == 0:
            data, pos = decode_data(raw, pos + 1)
            results.append(data)
        elif choice == 1 and pos + 1 < len(raw):
            try:
                results.append(ap.DataAccessResult(raw[pos + 1]))
            except ValueError:
                raise RemoteProtocolError(f"unknown data-access-result {raw[pos + 1]}") from None
            pos += 2
        else:
            raise RemoteProtocolError(f"result {index + 1}: choice {choice} is not data (0) or error (1)")
    if pos != len(raw):
        raise RemoteProtocolError(f"data blocks hold {len(raw) - pos} bytes after the last result")
    return results


# ------------------------------------------------------------------------------------ objects


@dataclass(frozen=True, slots=True)
class CosemObject:
    """An object of the meter: interface class, logical name, and (SN) base name."""

    class_id: int
    logical_name: Obis
    base_name: int | None = None

    def descriptor(self, attribute: int) -> ap.AttributeDescriptor:
        ln = self.logical_name
        return ap.AttributeDescriptor(self.class_id, bytes((ln.a, ln.b, ln.c, ln.d, ln.e, ln.f)), attribute)

    def short_name(self, attribute: int) -> int:
        """SN variable name of an attribute: base name + 8 x (attribute - 1) (IEC 62056-6-2 §4.1.3)."""
        if self.base_name is None:
            raise DataNotAvailable(f"{self.logical_name} has no short name in the meter's object list")
        return (self.base_name + 8 * (attribute - 1)) & 0xFFFF


@dataclass(frozen=True, slots=True)
class _ListLayout:
    """Where an object_list element holds what we need (IEC 62056-6-2 §4.4.1 / §4.4.3)."""

    size: int  # fields at least
    class_id: int
    logical_name: int
    base_name: int | None = None


def _object_list(data: Data, layout: _ListLayout) -> list[CosemObject]:
    """The objects of an association's object_list (attribute 2)."""
    objects = []
    for item in data.items:
        fields = item.items
        if item.tag is not DataTag.STRUCTURE or len(fields) < layout.size:
            raise RemoteProtocolError(f"object_list element must be a structure of 4, got {item!r}")
        class_id, name = fields[layout.class_id].value, fields[layout.logical_name].value
        base = fields[layout.base_name].value if layout.base_name is not None else None
        if not isinstance(class_id, int) or (layout.base_name is not None and not isinstance(base, int)):
            raise RemoteProtocolError(f"object_list element has no class id / base name: {item!r}")
        if not isinstance(name, bytes) or len(name) != 6:
            raise RemoteProtocolError(f"object_list element has no logical name: {item!r}")
        objects.append(CosemObject(class_id, Obis(*name), base & 0xFFFF if isinstance(base, int) else None))
    return objects


class _Referencing:
    """How the association addresses attributes: the part of DLMS that differs between
    logical name and short name referencing (IEC 62056-5-3 §4.2, IEC 62056-6-2 §4.1.3)."""

    #: The association object whose attribute 2 is the object list.
    association: CosemObject
    layout: _ListLayout
    #: Objects missing from an object list the meter did not give can be tried by name.
    guesses: bool
    #: The meter cannot send an answer longer than its PDU (no block transfer for SN
    #: reads): a profile range is read in pieces that fit.
    splits_ranges: bool

    def encode(self, session: DlmsSession, items: Sequence[tuple[CosemObject, int]]) -> bytes:
        """One request for the attributes (to send many times: the 1-second set)."""
        raise NotImplementedError

    def encode_access(self, session: DlmsSession, obj: CosemObject, access: ap.SelectiveAccess) -> bytes:
        """A request for attribute 2 with selective access (a profile range)."""
        raise NotImplementedError

    async def send(self, session: DlmsSession, apdu: bytes, count: int) -> list[_Result]:
        """Send a request made by :meth:`encode` expecting ``count`` results."""
        raise NotImplementedError

    async def read(self, session: DlmsSession, items: Sequence[tuple[CosemObject, int]]) -> list[_Result]:
        """Read the attributes: one request if the meter takes several at once, results in order."""
        if len(items) > 1 and not session.multiple_references:
            return [r for item in items for r in await self.read(session, [item])]
        return await self.send(session, self.encode(session, items), len(items))

    async def read_access(
        self, session: DlmsSession, obj: CosemObject, access: ap.SelectiveAccess
    ) -> _Result:
        return (await self.send(session, self.encode_access(session, obj, access), 1))[0]


class _LogicalNames(_Referencing):
    """GET by class id, logical name and attribute; data blocks for long answers."""

    association = CosemObject(CLASS_ASSOCIATION_LN, CURRENT_ASSOCIATION)
    #: {class_id, version, logical_name, access_rights}
    layout = _ListLayout(size=3, class_id=0, logical_name=2)
    guesses = True
    splits_ranges = False

    def encode(self, session: DlmsSession, items: Sequence[tuple[CosemObject, int]]) -> bytes:
        return session.encode_get([ap.AttributeRequest(o.descriptor(a)) for o, a in items])

    def encode_access(self, session: DlmsSession, obj: CosemObject, access: ap.SelectiveAccess) -> bytes:
        return session.encode_get([ap.AttributeRequest(obj.descriptor(2), access)])

    async def send(self, session: DlmsSession, apdu: bytes, count: int) -> list[_Result]:
        return await session.get_encoded(apdu, count)


class _ShortNames(_Referencing):
    """Read of variable names, base name + 8 x (attribute - 1), known only from the object list."""

    association = CosemObject(CLASS_ASSOCIATION_SN, CURRENT_ASSOCIATION, SN_ASSOCIATION_BASE)
    #: {base_name, class_id, version, logical_name}
    layout = _ListLayout(size=4, class_id=1, logical_name=3, base_name=0)
    guesses = False
    splits_ranges = True

    def encode(self, session: DlmsSession, items: Sequence[tuple[CosemObject, int]]) -> bytes:
        return ap.ReadRequest(tuple(ap.VariableName(o.short_name(a)) for o, a in items)).encode()

    def encode_access(self, session: DlmsSession, obj: CosemObject, access: ap.SelectiveAccess) -> bytes:
        item = ap.ParameterizedAccess(obj.short_name(2), access.selector, access.parameters)
        return ap.ReadRequest((item,)).encode()

    async def send(self, session: DlmsSession, apdu: bytes, count: int) -> list[_Result]:
        return await session.read_encoded(apdu, count)


_REFERENCING: Final[dict[Referencing, _Referencing]] = {
    Referencing.LOGICAL_NAME: _LogicalNames(),
    Referencing.SHORT_NAME: _ShortNames(),
}


@dataclass(slots=True)
class _Profile:
    """A profile's structure, read once per association."""

    obj: CosemObject
    columns: tuple[ap.CaptureObject, ...]
    period_s: int
    scalers: dict[Obis, cosem.ScalerUnit]
    #: Per value column: (obis, unit as published, factor from the meter's unit).
    channels: tuple[tuple[Obis, str, float], ...]


@dataclass(slots=True)
class _Directory:
    """The meter's objects (from its object list) and what was read about them."""

    objects: dict[ObisKey, CosemObject] = field(default_factory=dict)
    complete: bool = False  # False: no object list; objects are guessed from the catalogue
    scalers: dict[Obis, cosem.ScalerUnit] = field(default_factory=dict)
    profiles: dict[Obis, _Profile] = field(default_factory=dict)
    requests: dict[tuple[Obis, ...], tuple[bytes, dict[Obis, CosemObject]]] = field(default_factory=dict)


#: Encoded requests kept per association (the core set, the registers, a few rotations).
_MAX_PLANS: Final = 16
_PROFILE_UNITS: Final = {info.obis: info.unit for profile in PROFILES for info in profile.channels}


class DlmsMeter(SessionView):
    """The poller's view of a DLMS meter: typed values in batches, profiles, events, clock."""

    #: The poller reads the 1-second set with :meth:`read_values` in one request.
    batches = True

    session: DlmsSession

    def __init__(self, session: DlmsSession) -> None:
        self.session = session
        self._dir = _Directory()
        ref = session.settings.referencing
        self._ref = _REFERENCING[ref]
        self.protocol = f"DLMS/COSEM {'LN' if ref is Referencing.LOGICAL_NAME else 'SN'} over HDLC" + (
            " (mode E)" if session.settings.mode_e else ""
        )

    # -- attribute access -------------------------------------------------------------------------

    async def _read(self, items: Sequence[tuple[CosemObject, int]]) -> list[_Result]:
        return await self._ref.read(self.session, items) if items else []

    def _find(self, obis: Obis, class_id: int = cosem.CLASS_REGISTER) -> CosemObject | None:
        found = self._dir.objects.get(obis.key)
        if found is not None or self._dir.complete or not self._ref.guesses:
            return found  # (SN needs a base name, which only the object list gives)
        return CosemObject(class_id, obis)

    def _object(self, obis: Obis, class_id: int = cosem.CLASS_REGISTER) -> CosemObject:
        found = self._find(obis, class_id)
        if found is None:
            raise DataNotAvailable(f"the meter's object list has no {obis}")
        return found

    # -- open -------------------------------------------------------------------------------------

    async def open(self) -> MeterInfo:
        assoc = await self.session.open()
        self._dir = _Directory()
        await self._discover()
        # Scalers and units of every catalogue object and the profiles' structure now, in
        # three requests, so that no cycle and no first profile piece pays for them.
        await self._scalers([obj for info in CATALOGUE if (obj := self._find(info.obis)) is not None])
        await self._load_profiles([s.cosem for s in (*PROFILES, EVENT_LOG) if s.cosem is not None])
        # Identity: serial number, logical device name, firmware (whatever the meter has).
        names = (SERIAL_NUMBER, LOGICAL_DEVICE_NAME, FIRMWARE)
        found = [(n, self._find(n, CLASS_DATA)) for n in names]
        present = [(n, o) for n, o in found if o is not None]
        results = await self._read([(o, 2) for _, o in present])
        text = {n: _text(r) for (n, _), r in zip(present, results, strict=True)}
        ldn = text.get(LOGICAL_DEVICE_NAME, "")
        serial = text.get(SERIAL_NUMBER, "")
        ident = assoc.identification
        return MeterInfo(
            manufacturer=ident.manufacturer if ident else ldn[:3],
            # Without an identification message the logical device name is all there is:
            # its manufacturer-specific part (after the 3-letter FLAG id) names the device.
            model=ident.identification.split(".", 1)[0] if ident else ldn[3:],
            serial_number=serial,
            firmware=text.get(FIRMWARE, ""),
            protocol=self.protocol,
            baudrate=assoc.baudrate,
        )

    async def _discover(self) -> None:
        """Read the object list (LN: 0-0:40.0.0 class 15; SN: base name 0xFA00) if offered."""
        result = (await self._read([(self._ref.association, 2)]))[0]
        if isinstance(result, ap.DataAccessResult):
            if not self._ref.guesses:
                raise DataNotAvailable(
                    f"the SN meter gives no object list ({_name(result)}); its base names are unknown"
                )
            log.info("meter gives no object list (%s); using the catalogue's logical names", _name(result))
            return
        objects = _object_list(result, self._ref.layout)
        for obj in objects:
            self._dir.objects.setdefault(obj.logical_name.key, obj)
        self._dir.complete = True
        log.debug("object list: %d objects", len(objects))

    async def _scalers(self, objects: Sequence[CosemObject]) -> None:
        """Read attribute 3 (scaler_unit) of registers not cached yet, in one request."""
        todo = [
            o for o in objects if o.class_id in _SCALED_CLASSES and o.logical_name not in self._dir.scalers
        ]
        todo = list({o.logical_name: o for o in todo}.values())
        if not todo:
            return
        for obj, result in zip(todo, await self._read([(o, 3) for o in todo]), strict=True):
            if isinstance(result, ap.DataAccessResult):
                # Without a scaler the value cannot be interpreted; treat the object as absent.
                log.debug("%s: no scaler_unit (%s)", obj.logical_name, _name(result))
                continue
            self._dir.scalers[obj.logical_name] = cosem.ScalerUnit.from_data(result)

    # -- values -----------------------------------------------------------------------------------

    async def read_values(self, objects: Sequence[Obis]) -> list[tuple[float, str] | DataNotAvailable]:
        """Values with their units, all in one request (GET-WITH-LIST / multi-variable Read).

        Objects the meter does not have come back as :class:`DataNotAvailable` in their
        slot, the others are read. The first call for a set reads the scalers it needs and
        encodes the request once; later calls send the same bytes.
        """
        key = tuple(objects)
        plan = self._dir.requests.get(key)
        if plan is None:
            plan = await self._plan(objects)
            if len(self._dir.requests) >= _MAX_PLANS:
                # Rotating sets vary from cycle to cycle: keep the cache bounded (oldest out).
                del self._dir.requests[next(iter(self._dir.requests))]
            self._dir.requests[key] = plan
        apdu, readable = plan
        results: list[_Result] = []
        if readable:
            if not self.session.multiple_references:
                results = await self._read([(obj, 2) for obj in readable.values()])
            else:
                results = await self._ref.send(self.session, apdu, len(readable))
        by_obis = dict(zip(readable, results, strict=True))
        out: list[tuple[float, str] | DataNotAvailable] = []
        for obis in objects:
            result = by_obis.get(obis)
            if result is None:
                out.append(DataNotAvailable(f"the meter has no readable object {obis}"))
            elif isinstance(result, ap.DataAccessResult):
                if result not in _UNDEFINED:
                    # hardware-fault, temporary-failure ...: the meter, not the object, is unwell.
                    raise RemoteProtocolError(f"{obis}: the meter could not read it ({_name(result)})")
                out.append(DataNotAvailable(f"{obis}: {_name(result)}"))
            else:
                try:
                    out.append(self._value(readable[obis], result))
                except RemoteProtocolError as err:
                    out.append(DataNotAvailable(f"{obis}: {err}"))
        return out

    async def _plan(self, objects: Sequence[Obis]) -> tuple[bytes, dict[Obis, CosemObject]]:
        """Resolve ``objects`` against the object list, read their scalers, encode the request."""
        found = {obis: obj for obis in objects if (obj := self._find(obis)) is not None}
        await self._scalers(list(found.values()))
        readable = {
            obis: obj
            for obis, obj in found.items()
            if obj.class_id not in _SCALED_CLASSES or obj.logical_name in self._dir.scalers
        }
        if not readable:
            return b"", readable
        return self._ref.encode(self.session, [(o, 2) for o in readable.values()]), readable

    def _value(self, obj: CosemObject, data: Data) -> tuple[float, str]:
        su = self._dir.scalers.get(obj.logical_name, cosem.ScalerUnit(0, 255))
        value = cosem.scaled(data, su)
        return value, su.unit_text or ""

    async def read_value(self, obis: Obis) -> tuple[float, str]:
        result = (await self.read_values([obis]))[0]
        if isinstance(result, DataNotAvailable):
            raise result
        return result

    async def read_clock(self, near: datetime) -> datetime:
        """Clock 0-0:1.0.0 attribute 2, converted to UTC with its deviation.

        ``near`` is not used: the date-time states its deviation, or its clock status
        whether summer time is active (Blue Book, class 8); a meter that gives neither is
        read as profile stamps are (:func:`cosem.clock_time`).
        """
        obj = self._object(CLOCK, cosem.CLASS_CLOCK)
        result = (await self._read([(obj, 2)]))[0]
        if isinstance(result, ap.DataAccessResult):
            raise DataNotAvailable(f"clock: {_name(result)}")
        return cosem.clock_time(result, default_deviation=0, zone=self.session.settings.zone).time

    # -- profiles and the event log -----------------------------------------------------------------

    async def _load_profiles(self, names: Sequence[Obis]) -> None:
        """Capture objects, capture periods and column scalers of profiles: two requests.

        A profile the meter does not have, or whose structure it does not give, is left
        out (:meth:`_profile` then says so).
        """
        todo = [
            (name, obj)
            for name in names
            if name not in self._dir.profiles
            and (obj := self._find(name, cosem.CLASS_PROFILE_GENERIC)) is not None
        ]
        if not todo:
            return
        results = await self._read([(obj, attribute) for _, obj in todo for attribute in (3, 4)])
        found: list[tuple[Obis, CosemObject, tuple[ap.CaptureObject, ...], int]] = []
        for index, (name, obj) in enumerate(todo):
            columns_data, period_data = results[2 * index], results[2 * index + 1]
            if isinstance(columns_data, ap.DataAccessResult) or isinstance(period_data, ap.DataAccessResult):
                log.info("profile %s: no capture objects / period (%s)", name, columns_data)
                continue
            found.append((name, obj, cosem.capture_objects(columns_data), cosem.capture_period(period_data)))
        columns = [
            self._find(cosem.logical_name(c), c.class_id) or CosemObject(c.class_id, cosem.logical_name(c))
            for _, _, captures, _ in found
            for c in captures
        ]
        await self._scalers([o for o in columns if o.base_name is not None or self._ref.guesses])
        for name, obj, captures, period in found:
            channels = []
            for capture in captures:
                obis = cosem.logical_name(capture)
                if capture.class_id == cosem.CLASS_CLOCK or (obis.c, obis.d) == (96, 10):
                    continue
                su = self._dir.scalers.get(obis)
                unit = (su.unit_text or "") if su is not None else ""
                target = next((u for o, u in _PROFILE_UNITS.items() if o.matches(obis)), unit)
                factor = conversion_factor(unit, target) if unit else 1.0
                if factor is None:
                    log.warning("profile %s: column %s comes in %r, published as is", name, obis, unit)
                    factor, target = 1.0, unit
                channels.append((obis, target, factor))
            self._dir.profiles[name] = _Profile(
                obj, captures, period, dict(self._dir.scalers), tuple(channels)
            )

    async def _profile(self, name: Obis) -> _Profile:
        """A profile's structure (read once per association)."""
        await self._load_profiles([name])
        profile = self._dir.profiles.get(name)
        if profile is None:
            raise DataNotAvailable(f"profile {name}: not in the meter's object list, or no structure")
        return profile

    async def _buffer(self, profile: _Profile, start: datetime, end: datetime) -> list[cosem.ProfileRow]:
        """Rows of a profile in [start, end] (range access on the clock column).

        LN answers of any length come in GET data blocks. SN has no block transfer: the
        range is read in pieces whose answer fits the meter's PDU size, estimated from the
        columns (a rejected piece is halved).
        """
        span = end - start
        if self._ref.splits_ranges and profile.period_s > 0:
            assoc = self.session.association
            pdu = assoc.max_pdu if assoc is not None and assoc.max_pdu else 0xFFFF
            row_bytes = 2 + 14 + 9 * (len(profile.columns) - 1)  # structure, date-time, values
            fitting = max(1, (min(pdu, self.session.settings.max_pdu) - 16) // row_bytes)
            span = min(span, timedelta(seconds=profile.period_s * fitting))
        clock = next((c for c in profile.columns if c.class_id == cosem.CLASS_CLOCK), cosem.CLOCK_CAPTURE)
        rows_out: list[cosem.ProfileRow] = []
        piece_start = start
        while True:
            piece_end = min(piece_start + span, end)
            access = cosem.range_access(clock, piece_start.astimezone(UTC), piece_end.astimezone(UTC))
            result = await self._ref.read_access(self.session, profile.obj, access)
            if isinstance(result, ap.DataAccessResult):
                if self._ref.splits_ranges and span > timedelta(seconds=max(profile.period_s, 1)):
                    span /= 2  # the meter could not fit the answer: ask for less
                    continue
                raise RemoteProtocolError(
                    f"profile {profile.obj.logical_name}: buffer not readable ({_name(result)})"
                )
            rows = cosem.profile_rows(
                result, profile.columns, profile.period_s, profile.scalers, zone=self.session.settings.zone
            )
            # Pieces share their bounds (the range is inclusive): a row at the shared bound
            # comes twice. Only repeats are dropped: events may share a time stamp.
            seen = {_row_key(r) for r in rows_out if r.timestamp >= piece_start}
            rows_out += [r for r in rows if r.timestamp > piece_start or _row_key(r) not in seen]
            if piece_end >= end:
                break
            piece_start = piece_end
        return rows_out

    async def read_profile(self, stream: Stream, start: datetime, end: datetime) -> list[ProfileData]:
        """Entries of a load profile (its profile generic object, ``1-0:99.1.0``) for the
        periods in [start, end].

        Values come in the catalogue's units (kWh, kvarh, V, A), converted by prefix.
        """
        if stream.cosem is None:
            raise LocalProtocolError(f"{stream.id} is no profile of a DLMS meter")
        profile = await self._profile(stream.cosem)
        # A row is stamped at the end of its period: the periods within [start, end] end
        # in (start, end]. The range access is inclusive, and some meters add the row
        # before the range too.
        rows = [r for r in await self._buffer(profile, start, end) if start < r.timestamp <= end]
        entries = tuple(
            ProfileEntry(
                end=row.timestamp,
                status=sum(row.status.values()),
                values=tuple(
                    None if (v := row.values.get(obis)) is None else v * factor
                    for obis, _, factor in profile.channels
                ),
            )
            for row in rows
        )
        if not entries:
            return []
        channels = tuple((obis, unit) for obis, unit, _ in profile.channels)
        return [ProfileData(stream.id, channels, profile.period_s, entries)]

    async def read_events(self, start: datetime, end: datetime) -> list[EventRecord]:
        """Entries of the standard event log 0-0:99.98.0 in [start, end]."""
        assert EVENT_LOG.cosem is not None
        profile = await self._profile(EVENT_LOG.cosem)
        code_column = next(
            (cosem.logical_name(c) for c in profile.columns if cosem.logical_name(c).matches(EVENT_CODE)),
            None,
        )
        if code_column is None:
            raise RemoteProtocolError("event log has no event code column (0-0:96.11.x)")
        events = []
        for row in await self._buffer(profile, start, end):
            if not start <= row.timestamp <= end:
                continue
            code = row.values.get(code_column)
            if code is None:
                continue
            events.append(EventRecord(row.timestamp, int(code), sum(row.status.values())))
        return events

    async def close(self) -> None:
        await self.session.close()


def _row_key(row: cosem.ProfileRow) -> tuple[object, ...]:
    """What identifies a row (not its clock status: a compressed row has none)."""
    return (row.timestamp, tuple(sorted(row.status.items())), tuple(sorted(row.values.items())))


def _text(result: _Result) -> str:
    """An identity attribute (octet-string or visible-string) as text; errors give ""."""
    if isinstance(result, ap.DataAccessResult):
        return ""
    value = result.value
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip("\x00 ")
    return str(value).strip() if value is not None else ""
