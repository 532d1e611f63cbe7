"""What every SMX method shares: argument checks, refusals that say why, the caller's role;
and the market methods' shapes, shared by the gateway's meters (:mod:`gateway.opcua.market`)
and the head-end's portfolios (``headend/opcua.py``).

A refused call answers as OPC 10000-4 §5.11.2 describes: the call's StatusCode
(``BadInvalidArgument``, ``BadOutOfRange``, ``BadArgumentsMissing``, ``BadTooManyArguments``),
the offending argument's ``InputArgumentResults`` entry (``BadTypeMismatch``, ...) and the
message in its ``InputArgumentDiagnosticInfos`` entry's AdditionalInfo. A caller below the
method's role gets ``BadUserAccessDenied``, logged with who it was.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from asyncua import ua

from gateway.errors import MarketInputError
from gateway.market.advice import Advice
from gateway.market.periods import parse_day
from gateway.market.profiles import NotifiedProfile
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


# -- the market methods' shapes (RegisterProfile, ComputeAdvice, ReadProfile) -------------------

#: The live advice variables and the ComputeAdvice outputs, in the NodeSet's order:
#: name, variant type, unit, how to take it from an Advice.
ADVICE_FIELDS: tuple[tuple[str, ua.VariantType, str, Callable[[Advice], Any]], ...] = (
    ("State", ua.VariantType.String, "", lambda a: a.state.value),
    ("Recommendation", ua.VariantType.String, "", lambda a: a.text),
    ("PeriodStart", ua.VariantType.DateTime, "", lambda a: a.period.start),
    ("PeriodEnd", ua.VariantType.DateTime, "", lambda a: a.period.end),
    ("NotifiedEnergy", ua.VariantType.Double, "kWh", lambda a: a.notified_kwh),
    ("MeasuredEnergy", ua.VariantType.Double, "kWh", lambda a: a.measured_kwh),
    ("RemainingTime", ua.VariantType.Double, "s", lambda a: a.remaining_s),
    ("RequiredPower", ua.VariantType.Double, "kW", lambda a: a.required_kw),
    ("CurrentPower", ua.VariantType.Double, "kW", lambda a: a.current_kw),
    ("ProjectedImbalance", ua.VariantType.Double, "kWh", lambda a: a.projected_imbalance_kwh),
    ("CorrectionPower", ua.VariantType.Double, "kW", lambda a: a.correction_kw),
)
#: The ``field`` of a MarketInputError of a registration -> the index of its argument.
REGISTER_ARGUMENTS = ("day", "values", "unit", "replace")
#: Numeric variant types a client may send the profile's values as.
NUMBERS = frozenset(
    {
        ua.VariantType.Double, ua.VariantType.Float, ua.VariantType.SByte, ua.VariantType.Byte,
        ua.VariantType.Int16, ua.VariantType.UInt16, ua.VariantType.Int32, ua.VariantType.UInt32,
        ua.VariantType.Int64, ua.VariantType.UInt64,
    }
)  # fmt: skip
#: DateTime values a client sends for "no time": null, or OPC UA's minimum (1601-01-01).
NO_TIME_BEFORE = datetime(1602, 1, 1, tzinfo=UTC)


#: An advice quantity the state does not have (no notification, no measurement): not a zero.
NO_DATA = ua.StatusCode(ua.StatusCodes.BadNoData)


def unavailable(err: Exception) -> ArgumentError:
    """The refusal of a call whose data cannot be read or written now (archive, database)."""
    return ArgumentError(
        -1, ua.StatusCodes.BadResourceUnavailable, str(err), ua.StatusCodes.BadResourceUnavailable
    )


def from_market_error(err: MarketInputError, fields: Sequence[str]) -> ArgumentError:
    """The refusal of a market service's MarketInputError: BadOutOfRange or BadInvalidArgument
    on the argument its ``field`` names (``fields``: the arguments' fields in order)."""
    index = fields.index(err.field) if err.field in fields else 0
    if err.out_of_range:
        return ArgumentError(index, ua.StatusCodes.BadOutOfRange, str(err))
    return ArgumentError(index, ua.StatusCodes.BadInvalidArgument, str(err))


def day_argument(args: Sequence[ua.Variant], index: int) -> date:
    """A delivery day argument: a String YYYY-MM-DD."""
    text = scalar(args, index, ua.VariantType.String, "Day")
    try:
        return parse_day(text)
    except MarketInputError as err:
        raise ArgumentError(index, ua.StatusCodes.BadInvalidArgument, str(err)) from None


def values_argument(args: Sequence[ua.Variant], index: int) -> list[Any]:
    """A profile's values: an array of a numeric type (checked further by the market service)."""
    arg = args[index]
    if arg.VariantType not in NUMBERS or not isinstance(arg.Value, list):
        got = arg.VariantType.name + ("[]" if isinstance(arg.Value, list) else "")
        raise ArgumentError(
            index, ua.StatusCodes.BadTypeMismatch, f"Values: expected an array of Double, got {got}"
        )
    return list(arg.Value)


def register_arguments(args: Sequence[ua.Variant]) -> tuple[date, list[Any], str, bool]:
    """RegisterProfile's (RegisterSchedule's) arguments: (Day, Values, Unit, Replace)."""
    count(args, len(REGISTER_ARGUMENTS))
    day = day_argument(args, 0)
    values = values_argument(args, 1)
    unit = scalar(args, 2, ua.VariantType.String, "Unit")
    replace = scalar(args, 3, ua.VariantType.Boolean, "Replace")
    return day, values, unit, replace


def time_argument(args: Sequence[ua.Variant], index: int) -> datetime | None:
    """ComputeAdvice's Time: an aware UTC time, or None for "now" (null or DateTime.MinValue)."""
    arg = args[index]
    if arg.VariantType not in (ua.VariantType.DateTime, ua.VariantType.Null):
        raise ArgumentError(
            index, ua.StatusCodes.BadTypeMismatch, f"Time: expected a DateTime, got {arg.VariantType.name}"
        )
    at: datetime | None = arg.Value
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # asyncua decodes UtcTime naive
    return None if at is None or at < NO_TIME_BEFORE else at


def advice_values(advice: Advice, now: datetime) -> list[tuple[str, ua.DataValue]]:
    """The live advice variables' values (browse name, value) at the advice's time: a quantity
    the state does not have is BadNoData."""
    values = []
    for name, vtype, _unit, take in ADVICE_FIELDS:
        value = take(advice)
        if value is None:
            dv = ua.DataValue(
                ua.Variant(), StatusCode=NO_DATA, SourceTimestamp=advice.at, ServerTimestamp=now
            )
        else:
            dv = ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=advice.at, ServerTimestamp=now)
        values.append((name, dv))
    return values


def advice_outputs(advice: Advice) -> list[ua.Variant]:
    """ComputeAdvice's outputs: a quantity the state does not have is NaN (outputs have no status)."""
    return [
        ua.Variant(math.nan if (value := take(advice)) is None else value, vtype)
        for _name, vtype, _unit, take in ADVICE_FIELDS
    ]


def register_outputs(profile: NotifiedProfile) -> list[ua.Variant]:
    """RegisterProfile's outputs: (Periods, TotalEnergy)."""
    return [
        ua.Variant(len(profile.energy_kwh), ua.VariantType.UInt32),
        ua.Variant(sum(profile.energy_kwh), ua.VariantType.Double),
    ]


def profile_outputs(starts: Sequence[datetime], profile: NotifiedProfile) -> list[ua.Variant]:
    """ReadProfile's outputs: (PeriodStarts, Energy)."""
    return [
        ua.Variant(list(starts), ua.VariantType.DateTime, is_array=True),
        ua.Variant(list(profile.energy_kwh), ua.VariantType.Double, is_array=True),
    ]
