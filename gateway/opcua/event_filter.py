"""The where clause of an EventFilter (OPC 10000-4 7.7.1, 7.7.3 FilterOperators), evaluated
against an event: pure, no address space (the caller says which types are subtypes).

Operators supported, those a SCADA's filters use: Equals, IsNull, GreaterThan, LessThan,
GreaterThanOrEqual, LessThanOrEqual, Between, InList, And, Or, Not, OfType (the event's
type or a subtype, 7.7.3 Table 119). Any other (Like, Cast, BitwiseAnd/Or, InView,
RelatedTo) is refused as a whole with ``BadFilterOperatorUnsupported`` - never silently
taken as true, which would hand a client events it filtered out.

Operands (7.7.4): ElementOperand, LiteralOperand and SimpleAttributeOperand (its browse
path names the field, ``ActiveState/Id``; no path and the NodeId attribute is the
ConditionId). Comparisons follow the three-valued logic of 7.7.3: a null operand makes a
comparison null, ``And``/``Or``/``Not`` carry null through, and only a true result selects
the event.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from asyncua import ua

#: Status names of the refusals (OPC 10000-4 7.7.2 ContentFilterElementResult).
UNSUPPORTED = "BadFilterOperatorUnsupported"
OPERAND_INVALID = "BadFilterOperandInvalid"
ELEMENT_INVALID = "BadFilterElementInvalid"

FO = ua.FilterOperator
_COMPARE: dict[int, Callable[[Any, Any], bool]] = {
    FO.Equals: operator.eq,
    FO.GreaterThan: operator.gt,
    FO.LessThan: operator.lt,
    FO.GreaterThanOrEqual: operator.ge,
    FO.LessThanOrEqual: operator.le,
}
#: Operator -> how many operands it takes (None: two or more, InList).
_ARITY: dict[int, int | None] = {
    **dict.fromkeys(_COMPARE, 2),
    FO.IsNull: 1,
    FO.Not: 1,
    FO.OfType: 1,
    FO.Between: 3,
    FO.And: 2,
    FO.Or: 2,
    FO.InList: None,
}

#: An event field by the name a browse path makes (``"ActiveState/Id"``, ``"NodeId"`` for the ConditionId).
FieldOf = Callable[[str], Any]
#: Whether the first type is the second or one of its subtypes.
IsSubtype = Callable[[ua.NodeId, ua.NodeId], bool]


class FilterError(Exception):
    """A where clause refused: ``status`` is the OPC UA status name, ``index`` the element."""

    def __init__(self, status: str, index: int, why: str) -> None:
        super().__init__(f"{status}: element {index}: {why}")
        self.status = status
        self.index = index


def check(where: ua.ContentFilter | None) -> None:
    """Refuse a where clause this evaluator cannot answer (FilterError), before any event."""
    elements = list(where.Elements) if where is not None and where.Elements else []
    for n, el in enumerate(elements):
        if el.FilterOperator not in _ARITY:
            name = getattr(el.FilterOperator, "name", el.FilterOperator)
            raise FilterError(UNSUPPORTED, n, f"the {name} operator is not supported")
        ops = list(el.FilterOperands or [])
        arity = _ARITY[el.FilterOperator]
        if (arity is None and len(ops) < 2) or (arity is not None and len(ops) != arity):
            name = getattr(el.FilterOperator, "name", el.FilterOperator)
            raise FilterError(ELEMENT_INVALID, n, f"{name} with {len(ops)} operand(s)")
        for op in ops:
            if isinstance(op, ua.ElementOperand):
                if not n < op.Index < len(elements):
                    raise FilterError(
                        OPERAND_INVALID, n, f"element operand {op.Index} is not a later element"
                    )
            elif not isinstance(op, ua.LiteralOperand | ua.SimpleAttributeOperand):
                raise FilterError(OPERAND_INVALID, n, f"{type(op).__name__} operands are not supported")
        if el.FilterOperator == FO.OfType and not isinstance(ops[0], ua.LiteralOperand):
            raise FilterError(OPERAND_INVALID, n, "OfType takes a literal type NodeId")


def field_name(op: ua.SimpleAttributeOperand) -> str:
    """The event field a select or where operand names (the event objects' attribute names)."""
    if op.BrowsePath:
        return "/".join(q.Name for q in op.BrowsePath)
    return str(ua.AttributeIds(op.AttributeId).name)  # NodeId: the ConditionId


def matches(
    where: ua.ContentFilter | None, field: FieldOf, event_type: ua.NodeId, is_subtype: IsSubtype
) -> bool:
    """Whether the event (its fields, its type) passes the where clause (checked by :func:`check`)."""
    elements = list(where.Elements) if where is not None and where.Elements else []
    if not elements:
        return True
    return _Evaluation(elements, field, event_type, is_subtype).element(0) is True


class _Evaluation:
    """One event against one where clause: each element's value, true, false or None (null)."""

    def __init__(
        self, elements: list[Any], field: FieldOf, event_type: ua.NodeId, is_subtype: IsSubtype
    ) -> None:
        self.elements = elements
        self.field = field
        self.event_type = event_type
        self.is_subtype = is_subtype

    def value(self, op: Any) -> Any:
        if isinstance(op, ua.ElementOperand):
            return self.element(op.Index)
        if isinstance(op, ua.LiteralOperand):
            return _plain(op.Value.Value if op.Value is not None else None)
        return _plain(self.field(field_name(op)))

    def element(self, index: int) -> Any:
        el = self.elements[index]
        fo = el.FilterOperator
        values = [self.value(op) for op in el.FilterOperands]
        if fo in _COMPARE:
            a, b = values
            return None if a is None or b is None else _compare(_COMPARE[fo], a, b)
        if fo == FO.IsNull:
            return values[0] is None
        if fo == FO.Not:
            return None if values[0] is None else not values[0]
        if fo == FO.Between:
            x, lo, hi = values
            if x is None or lo is None or hi is None:
                return None
            return _compare(operator.le, lo, x) and _compare(operator.le, x, hi)
        if fo == FO.InList:
            x, *candidates = values
            return None if x is None else any(_compare(operator.eq, x, c) for c in candidates)
        if fo == FO.And:
            if any(v is False for v in values):
                return False
            return None if any(v is None for v in values) else True
        if fo == FO.Or:
            if any(v is True for v in values):
                return True
            return None if any(v is None for v in values) else False
        if fo == FO.OfType:
            return isinstance(values[0], ua.NodeId) and self.is_subtype(self.event_type, values[0])
        raise FilterError(UNSUPPORTED, index, "not checked")  # check() refuses it first


def _plain(v: Any) -> Any:
    """Comparable Python values: a LocalizedText by its text, a Variant by its value."""
    if isinstance(v, ua.Variant):
        v = v.Value
    if isinstance(v, ua.LocalizedText):
        return v.Text
    if isinstance(v, ua.StatusCode):
        return v.value
    return v


def _compare(op: Callable[[Any, Any], bool], a: Any, b: Any) -> bool | None:
    """7.7.3's implicit conversion, as far as events need it: numbers with numbers (booleans
    as 0/1 only against numbers), text with text, otherwise equal types only."""
    if isinstance(a, int | float) and isinstance(b, int | float):
        return op(a, b)
    if isinstance(a, str) and isinstance(b, str):
        return op(a, b)
    if type(a) is type(b):
        try:
            return op(a, b)
        except TypeError:
            return None
    return False if op is operator.eq else None


class SubscriptionFilter:
    """asyncua's where-clause evaluator of an event monitored item, replaced (OPC 10000-4
    7.7.3): asyncua takes OfType as the exact type (a SCADA asking OfType
    AcknowledgeableConditionType, as node-opcua's alarm list and UaExpert's alarm view do,
    got no alarm) and a browse path by its first name only (``ActiveState/Id`` was
    ``ActiveState``). Same constructor and ``eval`` as asyncua's class. A clause it cannot
    answer selects nothing (asyncua returns no EventFilterResult to refuse it with)."""

    def __init__(self, logger: Any, aspace: Any, whereclause: ua.ContentFilter) -> None:
        self.where = whereclause
        self._aspace = aspace
        self._parents: dict[ua.NodeId, ua.NodeId | None] = {}
        try:
            check(whereclause)
            self.refused: FilterError | None = None
        except FilterError as err:
            logger.warning("event filter refused: %s", err)
            self.refused = err

    def eval(self, event: Any) -> bool:
        if self.refused is not None:
            return False
        return matches(self.where, lambda name: getattr(event, name, None), event.EventType, self.is_subtype)

    def is_subtype(self, t: ua.NodeId, of: ua.NodeId) -> bool:
        seen = 0
        current: ua.NodeId | None = t
        while current is not None and seen < 32:  # the standard's type tree is a few levels deep
            if current == of:
                return True
            current = self._parent(current)
            seen += 1
        return False

    def _parent(self, t: ua.NodeId) -> ua.NodeId | None:
        if t not in self._parents:
            node = self._aspace.get(t)
            refs = node.references if node is not None else []
            self._parents[t] = next(
                (r.NodeId for r in refs if r.ReferenceTypeId == _HAS_SUBTYPE and not r.IsForward), None
            )
        return self._parents[t]


_HAS_SUBTYPE = ua.NodeId(ua.ObjectIds.HasSubtype)


def install() -> None:
    """Make every asyncua server of this process evaluate event where clauses here."""
    from asyncua.server import monitored_item_service

    monitored_item_service.WhereClauseEvaluator = SubscriptionFilter
