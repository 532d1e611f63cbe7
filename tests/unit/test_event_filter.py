"""Where clauses of event filters (OPC 10000-4 7.7.3) against events, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from asyncua import ua

from gateway.opcua.event_filter import (
    ELEMENT_INVALID,
    OPERAND_INVALID,
    UNSUPPORTED,
    FilterError,
    check,
    matches,
)

FO = ua.FilterOperator
BASE, CONDITION, ALARM, OFF_NORMAL, METER_EVENT = (
    ua.NodeId(ua.ObjectIds.BaseEventType),
    ua.NodeId(ua.ObjectIds.ConditionType),
    ua.NodeId(ua.ObjectIds.AlarmConditionType),
    ua.NodeId(ua.ObjectIds.OffNormalAlarmType),
    ua.NodeId(1100, 2),
)
#: A small type tree: OffNormal < Alarm < Condition < Base; the meter's event < Base.
PARENT = {OFF_NORMAL: ALARM, ALARM: CONDITION, CONDITION: BASE, METER_EVENT: BASE}


def is_subtype(t: ua.NodeId, of: ua.NodeId) -> bool:
    while t is not None:
        if t == of:
            return True
        t = PARENT.get(t)  # type: ignore[assignment]
    return False


def field(*path: str) -> ua.SimpleAttributeOperand:
    return ua.SimpleAttributeOperand(
        TypeDefinitionId=BASE,
        BrowsePath=[ua.QualifiedName(p, 0) for p in path],
        AttributeId=ua.AttributeIds.Value,
    )


def lit(value: Any, vtype: ua.VariantType | None = None) -> ua.LiteralOperand:
    return ua.LiteralOperand(Value=ua.Variant(value, vtype) if vtype else ua.Variant(value))


def el(op: ua.FilterOperator, *operands: Any) -> ua.ContentFilterElement:
    return ua.ContentFilterElement(FilterOperator=op, FilterOperands=list(operands))


def where(*elements: ua.ContentFilterElement) -> ua.ContentFilter:
    return ua.ContentFilter(Elements=list(elements))


EVENTS = [
    {"type": METER_EVENT, "EventCode": 17, "Severity": 300, "Message": ua.LocalizedText("Meter event 17")},
    {"type": METER_EVENT, "EventCode": 1, "Severity": 600, "Message": ua.LocalizedText("Power down")},
    {"type": OFF_NORMAL, "Severity": 900, "ActiveState/Id": True, "Message": ua.LocalizedText("cover")},
    {"type": OFF_NORMAL, "Severity": 900, "ActiveState/Id": False, "Message": ua.LocalizedText("closed")},
]


def selected(clause: ua.ContentFilter) -> list[int]:
    check(clause)
    return [
        n for n, e in enumerate(EVENTS)
        if matches(clause, lambda name, e=e: e.get(name), e["type"], is_subtype)  # type: ignore[misc]
    ]  # fmt: skip


def test_comparisons_and_lists() -> None:
    assert selected(where(el(FO.Equals, field("EventCode"), lit(17, ua.VariantType.UInt16)))) == [0]
    assert selected(where(el(FO.GreaterThanOrEqual, field("Severity"), lit(500)))) == [1, 2, 3]
    assert selected(where(el(FO.LessThan, field("Severity"), lit(500)))) == [0]
    assert selected(where(el(FO.InList, field("EventCode"), lit(1), lit(2), lit(40)))) == [1]
    assert selected(where(el(FO.Between, field("Severity"), lit(500), lit(700)))) == [1]
    assert selected(where(el(FO.Equals, field("Message"), lit("Power down")))) == [1]
    assert selected(where(el(FO.IsNull, field("EventCode")))) == [2, 3]


def test_and_or_not_with_nulls() -> None:
    severe = el(FO.GreaterThanOrEqual, field("Severity"), lit(500))
    code = el(FO.Equals, field("EventCode"), lit(1))
    assert selected(where(el(FO.And, ua.ElementOperand(1), ua.ElementOperand(2)), severe, code)) == [1]
    assert selected(where(el(FO.Or, ua.ElementOperand(1), ua.ElementOperand(2)), code, severe)) == [1, 2, 3]
    # Not of a comparison with a missing field is null, not true: the alarms lack EventCode.
    assert selected(where(el(FO.Not, ua.ElementOperand(1)), code)) == [0]
    active = el(FO.Equals, field("ActiveState", "Id"), lit(True))
    assert selected(where(active)) == [2]


def test_of_type_takes_subtypes() -> None:
    assert selected(where(el(FO.OfType, lit(ALARM)))) == [2, 3]
    assert selected(where(el(FO.OfType, lit(CONDITION)))) == [2, 3]
    assert selected(where(el(FO.OfType, lit(BASE)))) == [0, 1, 2, 3]
    assert selected(where(el(FO.OfType, lit(METER_EVENT)))) == [0, 1]
    assert selected(where()) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("clause", "status"),
    [
        (where(el(FO.Like, field("Message"), lit("Power%"))), UNSUPPORTED),
        (where(el(FO.BitwiseAnd, field("Severity"), lit(1))), UNSUPPORTED),
        (where(el(FO.Equals, field("Severity"))), ELEMENT_INVALID),
        (where(el(FO.Not, ua.ElementOperand(0))), OPERAND_INVALID),
        (where(el(FO.OfType, field("EventType"))), OPERAND_INVALID),
    ],
)
def test_what_cannot_be_answered_is_refused(clause: ua.ContentFilter, status: str) -> None:
    with pytest.raises(FilterError) as err:
        check(clause)
    assert err.value.status == status
