"""What every SMX method shares: argument checks, refusals that say why, the caller's role.

A refused call answers as OPC 10000-4 §5.11.2 describes: the call's StatusCode
(``BadInvalidArgument``, ``BadOutOfRange``, ``BadArgumentsMissing``, ``BadTooManyArguments``),
the offending argument's ``InputArgumentResults`` entry (``BadTypeMismatch``, ...) and the
message in its ``InputArgumentDiagnosticInfos`` entry's AdditionalInfo. A caller below the
method's role gets ``BadUserAccessDenied``, logged with who it was.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from asyncua import ua

from gateway.opcua.guard import caller
from gateway.security.users import Role

log = logging.getLogger(__name__)

MethodCall = Callable[..., Awaitable[ua.CallMethodResult | list[ua.Variant]]]


class ArgumentError(Exception):
    """A method argument is refused: which one, the status for it and the call, and why."""

    def __init__(self, index: int, status: int, message: str, call_status: int | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.status = status
        self.call_status = call_status or (
            status if status == ua.StatusCodes.BadOutOfRange else ua.StatusCodes.BadInvalidArgument
        )


def for_role(role: Role, what: str, call: MethodCall) -> MethodCall:
    """``call`` for callers with at least ``role``; others get BadUserAccessDenied (logged)."""

    async def checked(parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
        user = caller()
        if user.access is None or user.access < role:
            log.warning("OPC UA call of %s refused to %s: needs the %s role", what, user, role)
            return ua.CallMethodResult(StatusCode=ua.StatusCode(ua.StatusCodes.BadUserAccessDenied))
        return await call(parent, *args)

    return checked


def refused(err: ArgumentError, count: int) -> ua.CallMethodResult:
    """The answer to a call refused for ``err`` (``count`` = the number of arguments sent)."""
    results = [ua.StatusCode() for _ in range(count)]
    infos = [ua.DiagnosticInfo() for _ in range(count)]
    if 0 <= err.index < count:
        results[err.index] = ua.StatusCode(err.status)
        infos[err.index] = ua.DiagnosticInfo(AdditionalInfo=str(err))
    return ua.CallMethodResult(
        StatusCode=ua.StatusCode(err.call_status),
        InputArgumentResults=results,
        InputArgumentDiagnosticInfos=infos,
    )


def scalar(args: Sequence[ua.Variant], index: int, vtype: ua.VariantType, name: str) -> Any:
    """The value of argument ``index``, which must be a scalar of ``vtype``."""
    arg = args[index]
    if arg.VariantType != vtype or isinstance(arg.Value, list):
        got = f"an array of {arg.VariantType.name}" if isinstance(arg.Value, list) else arg.VariantType.name
        raise ArgumentError(
            index, ua.StatusCodes.BadTypeMismatch, f"{name}: expected a {vtype.name}, got {got}"
        )
    return arg.Value


def count(args: Sequence[ua.Variant], expected: int) -> None:
    """Exactly ``expected`` arguments, or BadArgumentsMissing / BadTooManyArguments."""
    if len(args) < expected:
        raise ArgumentError(
            len(args), ua.StatusCodes.BadArgumentsMissing,
            f"expected {expected} arguments, got {len(args)}", ua.StatusCodes.BadArgumentsMissing,
        )  # fmt: skip
    if len(args) > expected:
        raise ArgumentError(
            expected, ua.StatusCodes.BadTooManyArguments,
            f"expected {expected} arguments, got {len(args)}", ua.StatusCodes.BadTooManyArguments,
        )  # fmt: skip
