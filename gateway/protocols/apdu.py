"""xDLMS application protocol data units (IEC 62056-5-3, DLMS UA Green Book concepts).

The information field of an HDLC I-frame (after the 3-byte LLC header) carries one APDU.
This module turns APDU bytes into frozen dataclasses and back; it is sans-I/O and pure.
:func:`decode_apdu` returns one of the :data:`Apdu` classes, :func:`encode_apdu` the bytes.

Covered APDUs (tag, class):

========  ================================  ============================================
tag       APDU                              classes
========  ================================  ============================================
0x60      AARQ (association request)        :class:`Aarq` with :class:`InitiateRequest`
0x61      AARE (association response)       :class:`Aare` with :class:`InitiateResponse`
                                            or :class:`ConfirmedServiceError`
0x62/63   RLRQ / RLRE (release)             :class:`Rlrq`, :class:`Rlre`
0xC0      GET-Request normal/next/list      :class:`GetRequestNormal`, :class:`GetRequestNext`,
                                            :class:`GetRequestWithList`
0xC4      GET-Response normal/block/list    :class:`GetResponseNormal`,
                                            :class:`GetResponseWithDatablock`,
                                            :class:`GetResponseWithList`
0x05      SN ReadRequest                    :class:`ReadRequest`
0x0C      SN ReadResponse                   :class:`ReadResponse`
0x0E      ConfirmedServiceError             :class:`ConfirmedServiceError`
0xD8      ExceptionResponse                 :class:`ExceptionResponse`
========  ================================  ============================================

Association (ACSE, BER encoded): the application context name is LN or SN referencing
without ciphering (``2.16.756.5.8.1.1`` / ``.2``). Low-level security travels as the
ACSE requirements ``8A 02 07 80`` (written whenever a mechanism is given), the mechanism
name ``2.16.756.5.8.2.m`` and the password as calling-authentication-value (GraphicString
``[0]``). The user-information holds the A-XDR xDLMS InitiateRequest/InitiateResponse;
the conformance block is the 24-bit string as an integer (first bit = MSB, so
``0x401E5D`` reads ``general-protection ... action``). Other ACSE fields (AP titles,
ciphering, HLS) are rejected as unsupported. BER lengths may use the long form on input;
the encoder writes the shortest form, so a non-minimal input length does not round-trip.
One real-meter quirk is tolerated: an AARE whose InitiateResponse (the last field) runs
past the declared AARE/user-information lengths and ends exactly at the end of
the buffer is accepted (re-encoded with correct lengths).

COSEM values inside GET and Read responses are :class:`~gateway.protocols.axdr.Data`.
A failed value is a :class:`DataAccessResult` instead. A block-transferred GET response
carries ``raw_data``: concatenate the blocks, then decode the result with
:func:`~gateway.protocols.axdr.decode_all`.

Errors: every decoding failure raises :class:`~gateway.errors.RemoteProtocolError` naming
the APDU, the field and the offset (from the start of the APDU); every declared length
and count is checked against the buffer. Encoding a value that does not fit its field
raises :class:`~gateway.errors.LocalProtocolError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeAlias

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.protocols.axdr import Data, DataTag, decode_data, encode_data, encode_length

__all__ = [
    "VAA_NAME_LN",
    "VAA_NAME_SN",
    "Aare",
    "Aarq",
    "AcseServiceProviderDiagnostic",
    "AcseServiceUserDiagnostic",
    "Apdu",
    "ApduTag",
    "ApplicationContext",
    "AssociationResult",
    "AttributeDescriptor",
    "AttributeRequest",
    "AuthenticationMechanism",
    "CaptureObject",
    "ConfirmedServiceError",
    "ConfirmedServiceErrorChoice",
    "DataAccessResult",
    "DiagnosticSource",
    "EntryDescriptor",
    "ExceptionResponse",
    "ExceptionServiceError",
    "ExceptionStateError",
    "GetRequestNext",
    "GetRequestNormal",
    "GetRequestWithList",
    "GetResponseNormal",
    "GetResponseWithDatablock",
    "GetResponseWithList",
    "GetResult",
    "InitiateRequest",
    "InitiateResponse",
    "InvokeIdAndPriority",
    "ParameterizedAccess",
    "RangeDescriptor",
    "ReadRequest",
    "ReadResponse",
    "Rlre",
    "Rlrq",
    "SelectiveAccess",
    "ServiceErrorType",
    "VariableName",
    "decode_apdu",
    "encode_apdu",
]

VAA_NAME_LN: Final = 0x0007
"""vaa-name of the InitiateResponse in Logical Name referencing."""
VAA_NAME_SN: Final = 0xFA00
"""vaa-name (base name of the current Association SN object) in Short Name referencing."""

_CONTEXT_OID_PREFIX: Final = bytes.fromhex("608574050801")  # 2.16.756.5.8.1
_MECHANISM_OID_PREFIX: Final = bytes.fromhex("608574050802")  # 2.16.756.5.8.2
_ACSE_REQUIREMENTS_AUTH: Final = b"\x07\x80"  # bit string, 7 unused bits, authentication = 1
_CONFORMANCE_TAG: Final = b"\x5f\x1f"


class ApduTag(enum.IntEnum):
    """First byte of each supported APDU."""

    READ_REQUEST = 0x05
    READ_RESPONSE = 0x0C
    CONFIRMED_SERVICE_ERROR = 0x0E
    AARQ = 0x60
    AARE = 0x61
    RLRQ = 0x62
    RLRE = 0x63
    GET_REQUEST = 0xC0
    GET_RESPONSE = 0xC4
    EXCEPTION_RESPONSE = 0xD8


class ApplicationContext(enum.IntEnum):
    """Last arc of the application context name ``2.16.756.5.8.1.x`` (no ciphering only)."""

    LOGICAL_NAME = 1
    SHORT_NAME = 2


class AuthenticationMechanism(enum.IntEnum):
    """Last arc of the mechanism name ``2.16.756.5.8.2.x``."""

    LOWEST = 0
    LOW = 1
    HIGH = 2
    HIGH_MD5 = 3
    HIGH_SHA1 = 4
    HIGH_GMAC = 5
    HIGH_SHA256 = 6
    HIGH_ECDSA = 7


class AssociationResult(enum.IntEnum):
    """AARE ``result``."""

    ACCEPTED = 0
    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class DiagnosticSource(enum.IntEnum):
    """Which CHOICE of result-source-diagnostic the AARE carries."""

    ACSE_SERVICE_USER = 1
    ACSE_SERVICE_PROVIDER = 2


class AcseServiceUserDiagnostic(enum.IntEnum):
    """Diagnostic values of the acse-service-user CHOICE."""

    NULL = 0
    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
    CALLING_AP_TITLE_NOT_RECOGNIZED = 3
    CALLING_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 4
    CALLING_AE_QUALIFIER_NOT_RECOGNIZED = 5
    CALLING_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 6
    CALLED_AP_TITLE_NOT_RECOGNIZED = 7
    CALLED_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 8
    CALLED_AE_QUALIFIER_NOT_RECOGNIZED = 9
    CALLED_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 10
    AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED = 11
    AUTHENTICATION_MECHANISM_NAME_REQUIRED = 12
    AUTHENTICATION_FAILURE = 13
    AUTHENTICATION_REQUIRED = 14


class AcseServiceProviderDiagnostic(enum.IntEnum):
    """Diagnostic values of the acse-service-provider CHOICE."""

    NULL = 0
    NO_REASON_GIVEN = 1
    NO_COMMON_ACSE_VERSION = 2


class DataAccessResult(enum.IntEnum):
    """Why a meter could not return (or accept) an attribute value."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_GET_ABORTED = 15
    NO_LONG_GET_IN_PROGRESS = 16
    LONG_SET_ABORTED = 17
    NO_LONG_SET_IN_PROGRESS = 18
    DATA_BLOCK_NUMBER_INVALID = 19
    OTHER_REASON = 250


class ExceptionStateError(enum.IntEnum):
    """ExceptionResponse ``state-error``."""

    SERVICE_NOT_ALLOWED = 1
    SERVICE_UNKNOWN = 2


class ExceptionServiceError(enum.IntEnum):
    """ExceptionResponse ``service-error``."""

    OPERATION_NOT_POSSIBLE = 1
    SERVICE_NOT_SUPPORTED = 2
    OTHER_REASON = 3
    PDU_TOO_LONG = 4
    DECIPHERING_ERROR = 5
    INVOCATION_COUNTER_ERROR = 6


class ConfirmedServiceErrorChoice(enum.IntEnum):
    """Which confirmed service failed (ConfirmedServiceError CHOICE)."""

    INITIATE_ERROR = 1
    GET_STATUS = 2
    GET_NAME_LIST = 3
    GET_VARIABLE_ATTRIBUTE = 4
    READ = 5
    WRITE = 6
    GET_DATA_SET_ATTRIBUTE = 7
    GET_TI_ATTRIBUTE = 8
    CHANGE_SCOPE = 9
    START = 10
    STOP = 11
    RESUME = 12
    MAKE_USABLE = 13
    INITIATE_LOAD = 14
    LOAD_SEGMENT = 15
    TERMINATE_LOAD = 16
    INITIATE_UPLOAD = 17
    UPLOAD_SEGMENT = 18
    TERMINATE_UPLOAD = 19


class ServiceErrorType(enum.IntEnum):
    """ServiceError CHOICE: the kind of error; :attr:`ConfirmedServiceError.value` is its code."""

    APPLICATION_REFERENCE = 0
    HARDWARE_RESOURCE = 1
    VDE_STATE_ERROR = 2
    SERVICE = 3
    DEFINITION = 4
    ACCESS = 5
    INITIATE = 6
    LOAD_DATA_SET = 7
    CHANGE_SCOPE = 8
    TASK = 9
    OTHER = 10


_SERVICE_ERROR_NAMES: Final[dict[ServiceErrorType, tuple[str, ...]]] = {
    ServiceErrorType.APPLICATION_REFERENCE: (
        "other",
        "time-elapsed",
        "application-unreachable",
        "application-reference-invalid",
        "application-context-unsupported",
        "provider-communication-error",
        "deciphering-error",
    ),
    ServiceErrorType.HARDWARE_RESOURCE: (
        "other",
        "memory-unavailable",
        "processor-resource-unavailable",
        "mass-storage-unavailable",
        "other-resource-unavailable",
    ),
    ServiceErrorType.VDE_STATE_ERROR: (
        "other",
        "no-dlms-context",
        "loading-data-set",
        "status-nochange",
        "status-inoperable",
    ),
    ServiceErrorType.SERVICE: ("other", "pdu-size", "service-unsupported"),
    ServiceErrorType.DEFINITION: (
        "other",
        "object-undefined",
        "object-class-inconsistent",
        "object-attribute-inconsistent",
    ),
    ServiceErrorType.ACCESS: (
        "other",
        "scope-of-access-violated",
        "object-access-violated",
        "hardware-fault",
        "object-unavailable",
    ),
    ServiceErrorType.INITIATE: (
        "other",
        "dlms-version-too-low",
        "incompatible-conformance",
        "pdu-size-too-short",
        "refused-by-the-VDE-handler",
    ),
}


# -- shared small types ----------------------------------------------------------------------


def _check_int(owner: str, name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise LocalProtocolError(f"{owner}.{name} must be an int {low}..{high}, got {value!r}")
    return value


def _check_bytes(owner: str, name: str, value: object, size: int | None = None) -> bytes:
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        expected = "bytes" if size is None else f"{size} bytes"
        raise LocalProtocolError(f"{owner}.{name} must be {expected}, got {value!r}")
    return value


def _check_data(owner: str, name: str, value: object) -> Data:
    if not isinstance(value, Data):
        raise LocalProtocolError(f"{owner}.{name} must be a Data value, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class InvokeIdAndPriority:
    """The Invoke-Id-And-Priority byte: invoke id (bits 0-3), confirmed (bit 6), high priority (bit 7)."""

    invoke_id: int = 1
    confirmed: bool = True
    high_priority: bool = True

    def to_byte(self) -> int:
        invoke = _check_int("InvokeIdAndPriority", "invoke_id", self.invoke_id, 0, 15)
        return (0x80 if self.high_priority else 0) | (0x40 if self.confirmed else 0) | invoke


@dataclass(frozen=True, slots=True)
class AttributeDescriptor:
    """Cosem-Attribute-Descriptor: class id (uint16), logical name (6 bytes), attribute id (int8)."""

    class_id: int
    obis: bytes
    attribute_id: int

    def encode(self) -> bytes:
        owner = "AttributeDescriptor"
        class_id = _check_int(owner, "class_id", self.class_id, 0, 0xFFFF)
        obis = _check_bytes(owner, "obis", self.obis, 6)
        attribute = _check_int(owner, "attribute_id", self.attribute_id, -128, 127)
        return class_id.to_bytes(2, "big") + obis + attribute.to_bytes(1, "big", signed=True)


@dataclass(frozen=True, slots=True)
class SelectiveAccess:
    """Selective-Access-Descriptor: access selector and its parameter (a ``Data`` value).

    Selector 1 is a range descriptor (:class:`RangeDescriptor`), selector 2 an entry
    descriptor (:class:`EntryDescriptor`); other selectors are kept as plain data.
    """

    selector: int
    parameters: Data

    def encode(self) -> bytes:
        selector = _check_int("SelectiveAccess", "selector", self.selector, 0, 255)
        return bytes([selector]) + encode_data(_check_data("SelectiveAccess", "parameters", self.parameters))


@dataclass(frozen=True, slots=True)
class AttributeRequest:
    """One attribute of a GET request: descriptor and optional selective access."""

    descriptor: AttributeDescriptor
    access: SelectiveAccess | None = None

    def encode(self) -> bytes:
        if not isinstance(self.descriptor, AttributeDescriptor):
            raise LocalProtocolError(f"descriptor must be an AttributeDescriptor, got {self.descriptor!r}")
        if self.access is None:
            return self.descriptor.encode() + b"\x00"
        if not isinstance(self.access, SelectiveAccess):
            raise LocalProtocolError(f"access must be None or a SelectiveAccess, got {self.access!r}")
        return self.descriptor.encode() + b"\x01" + self.access.encode()


@dataclass(frozen=True, slots=True)
class CaptureObject:
    """A capture-object definition: class id, logical name, attribute index, data index."""

    class_id: int
    obis: bytes
    attribute_index: int
    data_index: int = 0

    def to_data(self) -> Data:
        owner = "CaptureObject"
        return Data.structure(
            [
                Data.uint16(_check_int(owner, "class_id", self.class_id, 0, 0xFFFF)),
                Data.octet_string(_check_bytes(owner, "obis", self.obis, 6)),
                Data.int8(_check_int(owner, "attribute_index", self.attribute_index, -128, 127)),
                Data.uint16(_check_int(owner, "data_index", self.data_index, 0, 0xFFFF)),
            ]
        )

    @classmethod
    def from_data(cls, data: Data) -> CaptureObject:
        """Parse ``structure {long-unsigned, octet-string(6), integer, long-unsigned}``."""
        items = _items(data, 4, "capture object")
        class_id = _field(items[0], DataTag.LONG_UNSIGNED, "capture object class_id")
        obis = _field(items[1], DataTag.OCTET_STRING, "capture object logical_name")
        attribute = _field(items[2], DataTag.INTEGER, "capture object attribute_index")
        data_index = _field(items[3], DataTag.LONG_UNSIGNED, "capture object data_index")
        assert isinstance(class_id, int)
        assert isinstance(attribute, int)
        assert isinstance(data_index, int)
        if not isinstance(obis, bytes) or len(obis) != 6:
            raise RemoteProtocolError(f"capture object logical_name must be 6 bytes, got {obis!r}")
        return cls(class_id, obis, attribute, data_index)


def _items(data: Data, count: int, what: str) -> tuple[Data, ...]:
    if data.tag is not DataTag.STRUCTURE or not isinstance(data.value, tuple) or len(data.value) != count:
        raise RemoteProtocolError(f"{what} must be a structure of {count} elements, got {data!r}")
    return data.value


def _field(data: Data, tag: DataTag, what: str) -> object:
    if data.tag is not tag:
        raise RemoteProtocolError(f"{what} must be {tag.name}, got {data.tag.name}")
    return data.value


@dataclass(frozen=True, slots=True)
class RangeDescriptor:
    """Access selector 1: restricting object, from and to values, selected columns (empty = all)."""

    restricting_object: CaptureObject
    from_value: Data
    to_value: Data
    selected_values: tuple[CaptureObject, ...] = ()

    def to_access(self) -> SelectiveAccess:
        """The :class:`SelectiveAccess` (selector 1) carrying this range."""
        return SelectiveAccess(
            1,
            Data.structure(
                [
                    self.restricting_object.to_data(),
                    _check_data("RangeDescriptor", "from_value", self.from_value),
                    _check_data("RangeDescriptor", "to_value", self.to_value),
                    Data.array([c.to_data() for c in self.selected_values]),
                ]
            ),
        )

    @classmethod
    def from_access(cls, access: SelectiveAccess) -> RangeDescriptor:
        """Parse the parameters of a selector-1 access; :class:`RemoteProtocolError` if malformed."""
        if access.selector != 1:
            raise RemoteProtocolError(f"range descriptor needs access selector 1, got {access.selector}")
        items = _items(access.parameters, 4, "range descriptor")
        selected = _field(items[3], DataTag.ARRAY, "range descriptor selected_values")
        assert isinstance(selected, tuple)
        return cls(
            CaptureObject.from_data(items[0]),
            items[1],
            items[2],
            tuple(CaptureObject.from_data(c) for c in selected),
        )


@dataclass(frozen=True, slots=True)
class EntryDescriptor:
    """Access selector 2: from/to entry (1-based, 0 = last) and from/to selected value (column)."""

    from_entry: int
    to_entry: int
    from_selected_value: int = 1
    to_selected_value: int = 0

    def to_access(self) -> SelectiveAccess:
        """The :class:`SelectiveAccess` (selector 2) carrying this entry range."""
        owner = "EntryDescriptor"
        return SelectiveAccess(
            2,
            Data.structure(
                [
                    Data.uint32(_check_int(owner, "from_entry", self.from_entry, 0, 2**32 - 1)),
                    Data.uint32(_check_int(owner, "to_entry", self.to_entry, 0, 2**32 - 1)),
                    Data.uint16(
                        _check_int(owner, "from_selected_value", self.from_selected_value, 0, 0xFFFF)
                    ),
                    Data.uint16(_check_int(owner, "to_selected_value", self.to_selected_value, 0, 0xFFFF)),
                ]
            ),
        )

    @classmethod
    def from_access(cls, access: SelectiveAccess) -> EntryDescriptor:
        """Parse the parameters of a selector-2 access; :class:`RemoteProtocolError` if malformed."""
        if access.selector != 2:
            raise RemoteProtocolError(f"entry descriptor needs access selector 2, got {access.selector}")
        items = _items(access.parameters, 4, "entry descriptor")
        tags = (DataTag.DOUBLE_LONG_UNSIGNED,) * 2 + (DataTag.LONG_UNSIGNED,) * 2
        values = [_field(item, tag, "entry descriptor") for item, tag in zip(items, tags, strict=True)]
        numbers = [v for v in values if isinstance(v, int)]
        assert len(numbers) == 4
        return cls(*numbers)


GetResult: TypeAlias = "Data | DataAccessResult"
"""One result of a GET or Read: the value, or why it could not be read."""


def _encode_result(owner: str, result: object) -> bytes:
    if isinstance(result, DataAccessResult):
        return bytes([1, result])
    if isinstance(result, Data):
        return b"\x00" + encode_data(result)
    raise LocalProtocolError(f"{owner} result must be Data or DataAccessResult, got {result!r}")


# -- association -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitiateRequest:
    """xDLMS InitiateRequest (inside the AARQ user-information)."""

    conformance: int
    max_receive_pdu_size: int = 0xFFFF
    dlms_version: int = 6
    dedicated_key: bytes | None = None
    response_allowed: bool = True
    proposed_qos: int | None = None

    def encode(self) -> bytes:
        owner = "InitiateRequest"
        out = bytearray(b"\x01")
        if self.dedicated_key is None:
            out.append(0)
        else:
            key = _check_bytes(owner, "dedicated_key", self.dedicated_key)
            out += b"\x01" + encode_length(len(key)) + key
        out += b"\x00" if self.response_allowed else b"\x01\x00"
        if self.proposed_qos is None:
            out.append(0)
        else:
            out += bytes([1]) + _check_int(owner, "proposed_qos", self.proposed_qos, -128, 127).to_bytes(
                1, "big", signed=True
            )
        out.append(_check_int(owner, "dlms_version", self.dlms_version, 0, 255))
        out += _encode_conformance(owner, self.conformance)
        out += _check_int(owner, "max_receive_pdu_size", self.max_receive_pdu_size, 0, 0xFFFF).to_bytes(
            2, "big"
        )
        return bytes(out)


@dataclass(frozen=True, slots=True)
class InitiateResponse:
    """xDLMS InitiateResponse (inside the AARE user-information)."""

    conformance: int
    max_receive_pdu_size: int
    vaa_name: int = VAA_NAME_LN
    dlms_version: int = 6
    negotiated_qos: int | None = None

    def encode(self) -> bytes:
        owner = "InitiateResponse"
        out = bytearray(b"\x08")
        if self.negotiated_qos is None:
            out.append(0)
        else:
            out += bytes([1]) + _check_int(owner, "negotiated_qos", self.negotiated_qos, -128, 127).to_bytes(
                1, "big", signed=True
            )
        out.append(_check_int(owner, "dlms_version", self.dlms_version, 0, 255))
        out += _encode_conformance(owner, self.conformance)
        out += _check_int(owner, "max_receive_pdu_size", self.max_receive_pdu_size, 0, 0xFFFF).to_bytes(
            2, "big"
        )
        out += _check_int(owner, "vaa_name", self.vaa_name, 0, 0xFFFF).to_bytes(2, "big")
        return bytes(out)


def _encode_conformance(owner: str, conformance: int) -> bytes:
    value = _check_int(owner, "conformance", conformance, 0, 0xFFFFFF)
    return _CONFORMANCE_TAG + b"\x04\x00" + value.to_bytes(3, "big")


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + encode_length(len(value)) + value


def _encode_auth(
    owner: str,
    requirements_tag: int,
    mechanism: AuthenticationMechanism | None,
    value_tag: int,
    value: bytes | None,
) -> bytes:
    if mechanism is None:
        if value is not None:
            raise LocalProtocolError(f"{owner}: an authentication value needs a mechanism")
        return b""
    mech = _check_int(owner, "mechanism", mechanism, 0, 127)
    out = _tlv(requirements_tag, _ACSE_REQUIREMENTS_AUTH) + _tlv(
        requirements_tag + 1, _MECHANISM_OID_PREFIX + bytes([mech])
    )
    if value is not None:
        out += _tlv(value_tag, _tlv(0x80, _check_bytes(owner, "authentication value", value)))
    return out


def _encode_context(owner: str, context: ApplicationContext) -> bytes:
    if not isinstance(context, ApplicationContext):
        raise LocalProtocolError(f"{owner}.context must be an ApplicationContext, got {context!r}")
    return _tlv(0xA1, _tlv(0x06, _CONTEXT_OID_PREFIX + bytes([context])))


@dataclass(frozen=True, slots=True)
class Aarq:
    """AARQ: application context, optional low-level security, InitiateRequest."""

    context: ApplicationContext
    initiate: InitiateRequest
    mechanism: AuthenticationMechanism | None = None
    password: bytes | None = None

    def encode(self) -> bytes:
        if not isinstance(self.initiate, InitiateRequest):
            raise LocalProtocolError(f"Aarq.initiate must be an InitiateRequest, got {self.initiate!r}")
        body = (
            _encode_context("Aarq", self.context)
            + _encode_auth("Aarq", 0x8A, self.mechanism, 0xAC, self.password)
            + _tlv(0xBE, _tlv(0x04, self.initiate.encode()))
        )
        return _tlv(ApduTag.AARQ, body)


@dataclass(frozen=True, slots=True)
class Aare:
    """AARE: context, result, diagnostic and user-information (InitiateResponse or error).

    ``diagnostic`` is an :class:`AcseServiceUserDiagnostic` or, with
    ``diagnostic_source`` :attr:`DiagnosticSource.ACSE_SERVICE_PROVIDER`, an
    :class:`AcseServiceProviderDiagnostic` (plain ``int`` for unknown codes).
    """

    context: ApplicationContext
    result: AssociationResult
    diagnostic: int
    user_information: InitiateResponse | ConfirmedServiceError | None
    diagnostic_source: DiagnosticSource = DiagnosticSource.ACSE_SERVICE_USER
    mechanism: AuthenticationMechanism | None = None
    responding_authentication: bytes | None = None

    def encode(self) -> bytes:
        owner = "Aare"
        if not isinstance(self.result, AssociationResult):
            raise LocalProtocolError(f"Aare.result must be an AssociationResult, got {self.result!r}")
        if not isinstance(self.diagnostic_source, DiagnosticSource):
            raise LocalProtocolError(
                f"Aare.diagnostic_source must be a DiagnosticSource, got {self.diagnostic_source!r}"
            )
        diagnostic = _check_int(owner, "diagnostic", self.diagnostic, 0, 255)
        body = (
            _encode_context(owner, self.context)
            + _tlv(0xA2, _tlv(0x02, bytes([self.result])))
            + _tlv(0xA3, _tlv(0xA0 | self.diagnostic_source, _tlv(0x02, bytes([diagnostic]))))
            + _encode_auth(owner, 0x88, self.mechanism, 0xAA, self.responding_authentication)
        )
        info = self.user_information
        if isinstance(info, InitiateResponse | ConfirmedServiceError):
            body += _tlv(0xBE, _tlv(0x04, info.encode()))
        elif info is not None:
            raise LocalProtocolError(f"Aare.user_information has an unsupported type: {info!r}")
        return _tlv(ApduTag.AARE, body)


@dataclass(frozen=True, slots=True)
class Rlrq:
    """RLRQ: release request with optional reason (0 normal, 1 urgent, 30 user-defined)."""

    reason: int | None = 0

    def encode(self) -> bytes:
        body = (
            b""
            if self.reason is None
            else _tlv(0x80, bytes([_check_int("Rlrq", "reason", self.reason, 0, 255)]))
        )
        return _tlv(ApduTag.RLRQ, body)


@dataclass(frozen=True, slots=True)
class Rlre:
    """RLRE: release response with optional reason (0 normal, 1 not-finished, 30 user-defined)."""

    reason: int | None = 0

    def encode(self) -> bytes:
        body = (
            b""
            if self.reason is None
            else _tlv(0x80, bytes([_check_int("Rlre", "reason", self.reason, 0, 255)]))
        )
        return _tlv(ApduTag.RLRE, body)


# -- GET ----------------------------------------------------------------------------------------


def _invoke_byte(owner: str, invoke: object) -> int:
    if not isinstance(invoke, InvokeIdAndPriority):
        raise LocalProtocolError(f"{owner}.invoke must be an InvokeIdAndPriority, got {invoke!r}")
    return invoke.to_byte()


@dataclass(frozen=True, slots=True)
class GetRequestNormal:
    """GET-Request-Normal: one attribute, optionally with selective access."""

    descriptor: AttributeDescriptor
    access: SelectiveAccess | None = None
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def encode(self) -> bytes:
        head = bytes([ApduTag.GET_REQUEST, 1, _invoke_byte("GetRequestNormal", self.invoke)])
        return head + AttributeRequest(self.descriptor, self.access).encode()


@dataclass(frozen=True, slots=True)
class GetRequestNext:
    """GET-Request-Next: ask for the block after ``block_number`` (the last one received)."""

    block_number: int
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def encode(self) -> bytes:
        block = _check_int("GetRequestNext", "block_number", self.block_number, 0, 2**32 - 1)
        return bytes([ApduTag.GET_REQUEST, 2, _invoke_byte("GetRequestNext", self.invoke)]) + block.to_bytes(
            4, "big"
        )


@dataclass(frozen=True, slots=True)
class GetRequestWithList:
    """GET-Request-With-List: several attributes in one request."""

    items: tuple[AttributeRequest, ...]
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def encode(self) -> bytes:
        out = bytearray([ApduTag.GET_REQUEST, 3, _invoke_byte("GetRequestWithList", self.invoke)])
        out += encode_length(len(self.items))
        for item in self.items:
            if not isinstance(item, AttributeRequest):
                raise LocalProtocolError(f"GetRequestWithList.items must be AttributeRequest, got {item!r}")
            out += item.encode()
        return bytes(out)


@dataclass(frozen=True, slots=True)
class GetResponseNormal:
    """GET-Response-Normal: the value or a :class:`DataAccessResult`."""

    result: GetResult
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def encode(self) -> bytes:
        head = bytes([ApduTag.GET_RESPONSE, 1, _invoke_byte("GetResponseNormal", self.invoke)])
        return head + _encode_result("GetResponseNormal", self.result)


@dataclass(frozen=True, slots=True)
class GetResponseWithDatablock:
    """GET-Response-With-Datablock: one block of raw (A-XDR) data, or a :class:`DataAccessResult`."""

    last_block: bool
    block_number: int
    raw_data: bytes | DataAccessResult
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def encode(self) -> bytes:
        owner = "GetResponseWithDatablock"
        out = bytearray([ApduTag.GET_RESPONSE, 2, _invoke_byte(owner, self.invoke)])
        out.append(1 if self.last_block else 0)
        out += _check_int(owner, "block_number", self.block_number, 0, 2**32 - 1).to_bytes(4, "big")
        if isinstance(self.raw_data, DataAccessResult):
            out += bytes([1, self.raw_data])
        else:
            raw = _check_bytes(owner, "raw_data", self.raw_data)
            out += b"\x00" + encode_length(len(raw)) + raw
        return bytes(out)


@dataclass(frozen=True, slots=True)
class GetResponseWithList:
    """GET-Response-With-List: one result per requested attribute."""

    results: tuple[GetResult, ...]
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def encode(self) -> bytes:
        out = bytearray([ApduTag.GET_RESPONSE, 3, _invoke_byte("GetResponseWithList", self.invoke)])
        out += encode_length(len(self.results))
        for result in self.results:
            out += _encode_result("GetResponseWithList", result)
        return bytes(out)


# -- SN read ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VariableName:
    """Variable-Access-Specification ``variable-name``: a short name (base name + 8 x (attribute - 1))."""

    name: int

    def encode(self) -> bytes:
        return b"\x02" + _check_int("VariableName", "name", self.name, 0, 0xFFFF).to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class ParameterizedAccess:
    """Variable-Access-Specification ``parameterized-access``: name, selector, parameter."""

    name: int
    selector: int
    parameter: Data

    def encode(self) -> bytes:
        owner = "ParameterizedAccess"
        return (
            b"\x04"
            + _check_int(owner, "name", self.name, 0, 0xFFFF).to_bytes(2, "big")
            + bytes([_check_int(owner, "selector", self.selector, 0, 255)])
            + encode_data(_check_data(owner, "parameter", self.parameter))
        )


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """SN ReadRequest: a list of variable-access-specifications."""

    items: tuple[VariableName | ParameterizedAccess, ...]

    def encode(self) -> bytes:
        out = bytearray([ApduTag.READ_REQUEST]) + encode_length(len(self.items))
        for item in self.items:
            if not isinstance(item, VariableName | ParameterizedAccess):
                raise LocalProtocolError(
                    f"ReadRequest.items must be VariableName/ParameterizedAccess, got {item!r}"
                )
            out += item.encode()
        return bytes(out)

    @property
    def variable_names(self) -> tuple[int, ...]:
        """The short names read, in order."""
        return tuple(item.name for item in self.items)


@dataclass(frozen=True, slots=True)
class ReadResponse:
    """SN ReadResponse: per item the data or a data-access-error."""

    results: tuple[GetResult, ...]

    def encode(self) -> bytes:
        out = bytearray([ApduTag.READ_RESPONSE]) + encode_length(len(self.results))
        for result in self.results:
            out += _encode_result("ReadResponse", result)
        return bytes(out)


# -- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """ExceptionResponse: state error, service error (and the counter for invocation-counter-error)."""

    state_error: ExceptionStateError
    service_error: ExceptionServiceError
    invocation_counter: int | None = None

    def encode(self) -> bytes:
        if not isinstance(self.state_error, ExceptionStateError) or not isinstance(
            self.service_error, ExceptionServiceError
        ):
            raise LocalProtocolError(f"ExceptionResponse needs enum members, got {self!r}")
        out = bytes([ApduTag.EXCEPTION_RESPONSE, self.state_error, self.service_error])
        needs_counter = self.service_error is ExceptionServiceError.INVOCATION_COUNTER_ERROR
        if needs_counter != (self.invocation_counter is not None):
            raise LocalProtocolError(
                "ExceptionResponse.invocation_counter is given iff invocation-counter-error"
            )
        if self.invocation_counter is not None:
            out += _check_int(
                "ExceptionResponse", "invocation_counter", self.invocation_counter, 0, 2**32 - 1
            ).to_bytes(4, "big")
        return out


@dataclass(frozen=True, slots=True)
class ConfirmedServiceError:
    """ConfirmedServiceError: which service failed, the kind of error and its code."""

    service: ConfirmedServiceErrorChoice
    error_type: ServiceErrorType
    value: int

    @property
    def reason(self) -> str:
        """Readable name of :attr:`value` (e.g. ``dlms-version-too-low``), or ``code N``."""
        names = _SERVICE_ERROR_NAMES.get(self.error_type, ())
        return names[self.value] if 0 <= self.value < len(names) else f"code {self.value}"

    def encode(self) -> bytes:
        if not isinstance(self.service, ConfirmedServiceErrorChoice) or not isinstance(
            self.error_type, ServiceErrorType
        ):
            raise LocalProtocolError(f"ConfirmedServiceError needs enum members, got {self!r}")
        value = _check_int("ConfirmedServiceError", "value", self.value, 0, 255)
        return bytes([ApduTag.CONFIRMED_SERVICE_ERROR, self.service, self.error_type, value])


Apdu: TypeAlias = (
    Aarq
    | Aare
    | Rlrq
    | Rlre
    | GetRequestNormal
    | GetRequestNext
    | GetRequestWithList
    | GetResponseNormal
    | GetResponseWithDatablock
    | GetResponseWithList
    | ReadRequest
    | ReadResponse
    | ExceptionResponse
    | ConfirmedServiceError
)
"""Every APDU this module encodes and decodes."""

_APDU_TYPES: Final = (
    Aarq,
    Aare,
    Rlrq,
    Rlre,
    GetRequestNormal,
    GetRequestNext,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    ReadRequest,
    ReadResponse,
    ExceptionResponse,
    ConfirmedServiceError,
)


def encode_apdu(apdu: Apdu) -> bytes:
    """The bytes of ``apdu``; :class:`LocalProtocolError` for a value that does not fit."""
    if not isinstance(apdu, _APDU_TYPES):
        raise LocalProtocolError(f"not an APDU: {apdu!r}")
    return apdu.encode()


# -- decoding -----------------------------------------------------------------------------------


class _Reader:
    """Bounded cursor over the APDU; every error names the APDU, the field and the offset."""

    __slots__ = ("apdu", "end", "pos", "view")

    def __init__(self, view: memoryview, apdu: str, pos: int = 0, end: int | None = None) -> None:
        self.view = view
        self.apdu = apdu
        self.pos = pos
        self.end = len(view) if end is None else end

    def error(self, field: str, message: str, offset: int | None = None) -> RemoteProtocolError:
        where = self.pos if offset is None else offset
        return RemoteProtocolError(f"{self.apdu}: {field} at offset {where}: {message}")

    def take(self, size: int, field: str) -> bytes:
        if size > self.end - self.pos:
            raise self.error(field, f"{size} bytes expected, {self.end - self.pos} left")
        raw = bytes(self.view[self.pos : self.pos + size])
        self.pos += size
        return raw

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "big")

    def expect(self, raw: bytes, field: str) -> None:
        start = self.pos
        got = self.take(len(raw), field)
        if got != raw:
            raise self.error(field, f"expected {raw.hex()}, got {got.hex()}", start)

    def length(self, field: str) -> int:
        start = self.pos
        first = self.u8(field)
        if first < 0x80:
            value = first
        else:
            size = first & 0x7F
            if size == 0 or size > 4:
                raise self.error(
                    field, f"length byte 0x{first:02X} is not a short length or 0x81..0x84", start
                )
            value = self.uint(size, field)
        if value > self.end - self.pos:
            raise self.error(field, f"length {value} exceeds the {self.end - self.pos} bytes left", start)
        return value

    def count(self, field: str) -> int:
        """Element count of a SEQUENCE OF; each element takes at least one byte."""
        start = self.pos
        value = self.length(field)
        if value > self.end - self.pos:
            raise self.error(
                field, f"{value} elements declared, only {self.end - self.pos} bytes left", start
            )
        return value

    def data(self, field: str) -> Data:
        start = self.pos
        try:
            value, pos = decode_data(self.view[: self.end], self.pos)
        except RemoteProtocolError as err:
            raise self.error(field, f"bad A-XDR data: {err}", start) from err
        self.pos = pos
        return value

    def enum(self, kind: type[enum.IntEnum], field: str) -> int:
        start = self.pos
        raw = self.u8(field)
        try:
            return kind(raw)
        except ValueError:
            raise self.error(field, f"unknown {kind.__name__} value {raw}", start) from None

    def tlv(self, field: str) -> tuple[int, _Reader]:
        """A BER tag and a sub-reader over its value (the cursor moves past it)."""
        tag = self.u8(field)
        size = self.length(field)
        if size > self.end - self.pos:
            raise self.error(field, f"length {size} exceeds the {self.end - self.pos} bytes left")
        sub = _Reader(self.view, self.apdu, self.pos, self.pos + size)
        self.pos += size
        return tag, sub

    def done(self, field: str) -> None:
        if self.pos != self.end:
            raise self.error(field, f"{self.end - self.pos} unexpected trailing bytes")


def _decode_invoke(r: _Reader) -> InvokeIdAndPriority:
    start = r.pos
    raw = r.u8("invoke-id-and-priority")
    if raw & 0x30:
        raise r.error("invoke-id-and-priority", f"reserved bits set in 0x{raw:02X}", start)
    return InvokeIdAndPriority(raw & 0x0F, bool(raw & 0x40), bool(raw & 0x80))


def _decode_descriptor(r: _Reader, field: str) -> AttributeRequest:
    class_id = r.uint(2, f"{field}.class_id")
    obis = r.take(6, f"{field}.logical_name")
    attribute = int.from_bytes(r.take(1, f"{field}.attribute_id"), "big", signed=True)
    start = r.pos
    flag = r.u8(f"{field}.access_selection")
    access: SelectiveAccess | None = None
    if flag == 1:
        selector = r.u8(f"{field}.access_selector")
        access = SelectiveAccess(selector, r.data(f"{field}.access_parameters"))
    elif flag != 0:
        raise r.error(f"{field}.access_selection", f"optional flag must be 0 or 1, got {flag}", start)
    return AttributeRequest(AttributeDescriptor(class_id, obis, attribute), access)


def _decode_result(r: _Reader, field: str) -> GetResult:
    start = r.pos
    choice = r.u8(field)
    if choice == 0:
        return r.data(f"{field}.data")
    if choice == 1:
        return DataAccessResult(r.enum(DataAccessResult, f"{field}.data_access_result"))
    raise r.error(field, f"result choice must be 0 (data) or 1 (data-access-result), got {choice}", start)


def _decode_get_request(r: _Reader) -> Apdu:
    start = r.pos
    choice = r.u8("choice")
    invoke = _decode_invoke(r)
    if choice == 1:
        item = _decode_descriptor(r, "attribute")
        return GetRequestNormal(item.descriptor, item.access, invoke)
    if choice == 2:
        return GetRequestNext(r.uint(4, "block_number"), invoke)
    if choice == 3:
        count = r.count("count")
        return GetRequestWithList(
            tuple(_decode_descriptor(r, f"attribute[{i}]") for i in range(count)), invoke
        )
    raise r.error("choice", f"GET-Request choice must be 1..3, got {choice}", start)


def _decode_get_response(r: _Reader) -> Apdu:
    start = r.pos
    choice = r.u8("choice")
    invoke = _decode_invoke(r)
    if choice == 1:
        return GetResponseNormal(_decode_result(r, "result"), invoke)
    if choice == 2:
        flag_at = r.pos
        last = r.u8("last_block")
        if last > 1:
            raise r.error("last_block", f"boolean must be 0 or 1, got {last}", flag_at)
        block = r.uint(4, "block_number")
        result_at = r.pos
        kind = r.u8("result")
        raw: bytes | DataAccessResult
        if kind == 0:
            raw = r.take(r.length("raw_data length"), "raw_data")
        elif kind == 1:
            raw = DataAccessResult(r.enum(DataAccessResult, "data_access_result"))
        else:
            raise r.error("result", f"datablock result choice must be 0 or 1, got {kind}", result_at)
        return GetResponseWithDatablock(bool(last), block, raw, invoke)
    if choice == 3:
        count = r.count("count")
        return GetResponseWithList(tuple(_decode_result(r, f"result[{i}]") for i in range(count)), invoke)
    raise r.error("choice", f"GET-Response choice must be 1..3, got {choice}", start)


def _decode_read_request(r: _Reader) -> Apdu:
    count = r.count("count")
    items: list[VariableName | ParameterizedAccess] = []
    for i in range(count):
        field = f"variable_access_specification[{i}]"
        start = r.pos
        choice = r.u8(field)
        if choice == 2:
            items.append(VariableName(r.uint(2, f"{field}.variable_name")))
        elif choice == 4:
            name = r.uint(2, f"{field}.variable_name")
            selector = r.u8(f"{field}.selector")
            items.append(ParameterizedAccess(name, selector, r.data(f"{field}.parameter")))
        else:
            raise r.error(field, f"unsupported variable-access-specification choice {choice}", start)
    return ReadRequest(tuple(items))


def _decode_read_response(r: _Reader) -> Apdu:
    count = r.count("count")
    return ReadResponse(tuple(_decode_result(r, f"result[{i}]") for i in range(count)))


def _decode_exception(r: _Reader) -> Apdu:
    state = ExceptionStateError(r.enum(ExceptionStateError, "state_error"))
    service = ExceptionServiceError(r.enum(ExceptionServiceError, "service_error"))
    counter = None
    if service is ExceptionServiceError.INVOCATION_COUNTER_ERROR:
        counter = r.uint(4, "invocation_counter")
    return ExceptionResponse(state, service, counter)


def _decode_confirmed_service_error(r: _Reader) -> ConfirmedServiceError:
    service = ConfirmedServiceErrorChoice(r.enum(ConfirmedServiceErrorChoice, "service"))
    error_type = ServiceErrorType(r.enum(ServiceErrorType, "error_type"))
    return ConfirmedServiceError(service, error_type, r.u8("value"))


def _decode_context(sub: _Reader) -> ApplicationContext:
    """The value of the application-context-name [1] field: ``06 07`` and the OID."""
    start = sub.pos
    oid_tag, oid = sub.tlv("application_context_name")
    raw = oid.take(oid.end - oid.pos, "application_context_name")
    sub.done("application_context_name")
    if oid_tag != 0x06 or len(raw) != 7 or raw[:6] != _CONTEXT_OID_PREFIX:
        raise sub.error("application_context_name", f"not a DLMS context name OID: {raw.hex()}", start)
    try:
        return ApplicationContext(raw[6])
    except ValueError:
        raise sub.error(
            "application_context_name", f"unsupported context {raw[6]} (ciphering?)", start
        ) from None


def _decode_mechanism(sub: _Reader) -> AuthenticationMechanism:
    start = sub.pos
    raw = sub.take(sub.end - sub.pos, "mechanism_name")
    if len(raw) != 7 or raw[:6] != _MECHANISM_OID_PREFIX:
        raise sub.error("mechanism_name", f"not a DLMS mechanism name OID: {raw.hex()}", start)
    try:
        return AuthenticationMechanism(raw[6])
    except ValueError:
        raise sub.error("mechanism_name", f"unknown mechanism {raw[6]}", start) from None


def _decode_auth_value(sub: _Reader) -> bytes:
    tag_at = sub.pos
    tag, inner = sub.tlv("authentication_value")
    if tag != 0x80:
        raise sub.error(
            "authentication_value", f"only charstring [0] is supported, got tag 0x{tag:02X}", tag_at
        )
    sub.done("authentication_value")
    return inner.take(inner.end - inner.pos, "authentication_value")


def _decode_user_information(sub: _Reader) -> _Reader:
    tag_at = sub.pos
    tag, inner = sub.tlv("user_information")
    if tag != 0x04:
        raise sub.error("user_information", f"expected OCTET STRING 0x04, got 0x{tag:02X}", tag_at)
    sub.done("user_information")
    return inner


def _decode_conformance(r: _Reader) -> int:
    r.expect(_CONFORMANCE_TAG + b"\x04\x00", "conformance")
    return r.uint(3, "conformance")


def _decode_optional_int8(r: _Reader, field: str) -> int | None:
    start = r.pos
    flag = r.u8(field)
    if flag == 0:
        return None
    if flag != 1:
        raise r.error(field, f"optional flag must be 0 or 1, got {flag}", start)
    return int.from_bytes(r.take(1, field), "big", signed=True)


def _decode_initiate_request(r: _Reader) -> InitiateRequest:
    r.expect(b"\x01", "initiate_request")
    start = r.pos
    flag = r.u8("dedicated_key")
    key: bytes | None = None
    if flag == 1:
        key = r.take(r.length("dedicated_key"), "dedicated_key")
    elif flag != 0:
        raise r.error("dedicated_key", f"optional flag must be 0 or 1, got {flag}", start)
    start = r.pos
    flag = r.u8("response_allowed")
    allowed = True
    if flag == 1:
        allowed = r.u8("response_allowed") != 0
    elif flag != 0:
        raise r.error("response_allowed", f"default flag must be 0 or 1, got {flag}", start)
    qos = _decode_optional_int8(r, "proposed_qos")
    version = r.u8("dlms_version")
    conformance = _decode_conformance(r)
    pdu = r.uint(2, "max_receive_pdu_size")
    r.done("initiate_request")
    return InitiateRequest(conformance, pdu, version, key, allowed, qos)


def _decode_initiate_response(r: _Reader) -> InitiateResponse:
    r.expect(b"\x08", "initiate_response")
    qos = _decode_optional_int8(r, "negotiated_qos")
    version = r.u8("dlms_version")
    conformance = _decode_conformance(r)
    pdu = r.uint(2, "max_receive_pdu_size")
    vaa = r.uint(2, "vaa_name")
    r.done("initiate_response")
    return InitiateResponse(conformance, pdu, vaa, version, qos)


def _decode_acse(r: _Reader, allowed: tuple[int, ...]) -> dict[int, _Reader]:
    """Split an AARQ/AARE body into its tagged parts (in the order of ``allowed``)."""
    parts: dict[int, _Reader] = {}
    last = -1
    while r.pos < r.end:
        start = r.pos
        tag, sub = r.tlv("acse field")
        if tag not in allowed:
            raise r.error("acse field", f"unsupported or unknown tag 0x{tag:02X}", start)
        if allowed.index(tag) <= last:
            raise r.error("acse field", f"tag 0x{tag:02X} repeated or out of order", start)
        last = allowed.index(tag)
        parts[tag] = sub
    return parts


def _decode_auth_parts(
    r: _Reader, parts: dict[int, _Reader], req_tag: int, value_tag: int
) -> tuple[AuthenticationMechanism | None, bytes | None]:
    if req_tag in parts:
        parts[req_tag].expect(_ACSE_REQUIREMENTS_AUTH, "acse_requirements")
        parts[req_tag].done("acse_requirements")
    if (req_tag in parts) != (req_tag + 1 in parts):
        raise r.error("mechanism_name", "acse-requirements and mechanism-name must come together")
    mechanism = _decode_mechanism(parts[req_tag + 1]) if req_tag + 1 in parts else None
    value = _decode_auth_value(parts[value_tag]) if value_tag in parts else None
    if value is not None and mechanism is None:
        raise r.error("authentication_value", "authentication value without mechanism name")
    return mechanism, value


def _decode_aarq(r: _Reader) -> Apdu:
    parts = _decode_acse(r, (0xA1, 0x8A, 0x8B, 0xAC, 0xBE))
    if 0xA1 not in parts or 0xBE not in parts:
        raise r.error("acse field", "application-context-name and user-information are required")
    context = _decode_context(parts[0xA1])
    mechanism, password = _decode_auth_parts(r, parts, 0x8A, 0xAC)
    initiate = _decode_initiate_request(_decode_user_information(parts[0xBE]))
    return Aarq(context, initiate, mechanism, password)


def _decode_int_tlv(r: _Reader, field: str) -> int:
    start = r.pos
    tag, sub = r.tlv(field)
    if tag != 0x02 or sub.end - sub.pos != 1:
        raise r.error(field, "expected a one-byte INTEGER (02 01 xx)", start)
    value = sub.u8(field)
    r.done(field)
    return value


def _decode_aare(r: _Reader, buffer_end: int) -> tuple[Apdu, int]:
    """Decode the AARE body; return the APDU and the offset where it really ends.

    Tolerated quirk (seen from a real SN meter): declared lengths of the AARE, the
    user-information and its octet string are too short for the InitiateResponse, which is
    the last field and ends exactly at the end of the buffer.
    """
    parts = _decode_acse(r, (0xA1, 0xA2, 0xA3, 0x88, 0x89, 0xAA, 0xBE))
    for tag in (0xA1, 0xA2, 0xA3):
        if tag not in parts:
            raise r.error("acse field", f"required field 0x{tag:02X} missing")
    context = _decode_context(parts[0xA1])
    res = parts[0xA2]
    res_at = res.pos
    raw_result = _decode_int_tlv(res, "result")
    try:
        result = AssociationResult(raw_result)
    except ValueError:
        raise r.error("result", f"unknown association result {raw_result}", res_at) from None
    diag = parts[0xA3]
    diag_at = diag.pos
    choice, inner = diag.tlv("result_source_diagnostic")
    diag.done("result_source_diagnostic")
    if choice not in (0xA1, 0xA2):
        raise r.error("result_source_diagnostic", f"choice must be 0xA1 or 0xA2, got 0x{choice:02X}", diag_at)
    source = DiagnosticSource(choice & 0x0F)
    raw_diag = _decode_int_tlv(inner, "result_source_diagnostic")
    kind: type[enum.IntEnum] = (
        AcseServiceUserDiagnostic
        if source is DiagnosticSource.ACSE_SERVICE_USER
        else AcseServiceProviderDiagnostic
    )
    known = {member.value for member in kind}
    diagnostic: int = kind(raw_diag) if raw_diag in known else raw_diag
    mechanism, auth = _decode_auth_parts(r, parts, 0x88, 0xAA)
    info: InitiateResponse | ConfirmedServiceError | None = None
    end = r.end
    if 0xBE in parts:
        ui = _decode_user_information(parts[0xBE])
        if parts[0xBE].end == r.end < buffer_end and ui.pos < ui.end and ui.view[ui.pos] == 0x08:
            ui.end = end = buffer_end
        first = ui.pos
        if first < ui.end and ui.view[first] == ApduTag.CONFIRMED_SERVICE_ERROR:
            ui.u8("confirmed_service_error")
            info = _decode_confirmed_service_error(ui)
            ui.done("confirmed_service_error")
        else:
            info = _decode_initiate_response(ui)
    return Aare(context, result, diagnostic, info, source, mechanism, auth), end


def _decode_release(r: _Reader, name: str) -> int | None:
    if r.pos == r.end:
        return None
    start = r.pos
    tag, sub = r.tlv("reason")
    if tag != 0x80 or sub.end - sub.pos != 1:
        raise r.error("reason", "expected reason [0] with one byte (80 01 xx)", start)
    reason = sub.u8("reason")
    r.done(name)
    return reason


_NAMES: Final[dict[int, str]] = {
    ApduTag.READ_REQUEST: "ReadRequest",
    ApduTag.READ_RESPONSE: "ReadResponse",
    ApduTag.CONFIRMED_SERVICE_ERROR: "ConfirmedServiceError",
    ApduTag.AARQ: "AARQ",
    ApduTag.AARE: "AARE",
    ApduTag.RLRQ: "RLRQ",
    ApduTag.RLRE: "RLRE",
    ApduTag.GET_REQUEST: "GET-Request",
    ApduTag.GET_RESPONSE: "GET-Response",
    ApduTag.EXCEPTION_RESPONSE: "ExceptionResponse",
}


def decode_apdu(buf: bytes | bytearray | memoryview) -> Apdu:
    """Decode exactly one APDU (trailing bytes are an error).

    Raises :class:`RemoteProtocolError` naming the APDU, the field and the offset.
    """
    view = memoryview(buf).cast("B")
    if len(view) == 0:
        raise RemoteProtocolError("APDU: tag at offset 0: empty buffer")
    tag = view[0]
    name = _NAMES.get(tag)
    if name is None:
        raise RemoteProtocolError(f"APDU: tag at offset 0: unknown or unsupported APDU tag 0x{tag:02X}")
    r = _Reader(view, name, 1)
    apdu: Apdu
    if tag in (ApduTag.AARQ, ApduTag.AARE, ApduTag.RLRQ, ApduTag.RLRE):
        size = r.length("length")
        body = _Reader(view, name, r.pos, r.pos + size)
        r.pos += size
        if tag == ApduTag.AARQ:
            apdu = _decode_aarq(body)
        elif tag == ApduTag.AARE:
            apdu, r.pos = _decode_aare(body, len(view))
        elif tag == ApduTag.RLRQ:
            apdu = Rlrq(_decode_release(body, "RLRQ"))
        else:
            apdu = Rlre(_decode_release(body, "RLRE"))
    elif tag == ApduTag.GET_REQUEST:
        apdu = _decode_get_request(r)
    elif tag == ApduTag.GET_RESPONSE:
        apdu = _decode_get_response(r)
    elif tag == ApduTag.READ_REQUEST:
        apdu = _decode_read_request(r)
    elif tag == ApduTag.READ_RESPONSE:
        apdu = _decode_read_response(r)
    elif tag == ApduTag.EXCEPTION_RESPONSE:
        apdu = _decode_exception(r)
    else:
        apdu = _decode_confirmed_service_error(r)
    r.done("end of APDU")
    return apdu
