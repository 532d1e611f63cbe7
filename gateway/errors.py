"""One exception tree for the whole gateway (DESIGN §7).

Every error raised across a room boundary is a :class:`GatewayError`; lower-level
exceptions are translated with ``raise ... from err`` so the cause stays visible.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration file is missing, unreadable or invalid.

    The message names the file, the key and what was expected.
    """


class TransportError(GatewayError):
    """The byte link to the meter failed (port missing, connection dropped, ...)."""


class MeterTimeout(TransportError):
    """The meter did not answer within the allowed time."""


class ProtocolError(GatewayError):
    """Base of protocol errors raised by the sans-I/O cores."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids in the current state (our bug)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that violate the protocol (garbage, bad checksum, ...)."""


class DataNotAvailable(RemoteProtocolError):
    """The meter answered a well-formed request with an error: it has no such object.

    The link is fine; the object is not supported by this meter (IEC 62056-21 ``(ERROR)``
    answer, DLMS data-access-result object-undefined).
    """


class ArchiveError(GatewayError):
    """The archive could not store or read records."""


class MarketInputError(GatewayError):
    """A notified profile or an external value was rejected as invalid.

    ``out_of_range`` tells a value of the right kind outside what is allowed (a day in
    the past, a number beyond a limit: OPC UA BadOutOfRange) from a malformed one (wrong
    length, not a number: BadInvalidArgument).

    ``field`` names the input at fault ("day", "values", "unit", "replace", "time",
    "value"), so an adapter can point at it (an OPC UA argument, a form field).
    """

    def __init__(self, message: str, *, out_of_range: bool = False, field: str = "") -> None:
        super().__init__(message)
        self.out_of_range = out_of_range
        self.field = field
