"""The state of one OPC UA alarm condition (OPC 10000-9), sans-I/O: calls in, the event
notification to publish out. No asyncua here: the OPC UA adapter turns a
:class:`Notification` into an event of the condition's type and the methods' status
names into status codes; the web page and event history read the same notifications.

What is modelled (clauses of OPC 10000-9 v1.05):

* 5.5.2 ConditionType: ``EnabledState`` (always enabled here: a disabled alarm hides a
  fault from the operator, so Disable is not offered), ``Retain``, ``Severity`` and
  ``LastSeverity``, ``Message``, ``Comment`` with ``ClientUserId``, ``Quality``,
  ``ConditionName``, ``BranchId`` (null: no branches, see below).
* 5.7.2/5.7.3/5.7.4 AcknowledgeableConditionType: ``AckedState`` and ``ConfirmedState``;
  Acknowledge and Confirm take the ``EventId`` of a notification and a comment.
* 5.8.2 AlarmConditionType: ``ActiveState``; the limit alarms' ``LimitState`` (5.8.18,
  ExclusiveLimitStateMachineType: HighHigh, High, Low, LowLow) as ``limit``.
* 5.5.2 Retain: true while the condition is active, or not yet acknowledged or confirmed -
  the states an operator still has to see. ConditionRefresh (5.5.7) re-sends exactly the
  conditions with Retain set.

Branches (5.5.2 BranchId, 4.4) are not kept: a new activation while the previous one is
still unacknowledged takes it over (the operator acknowledges the condition as it is now,
and event history holds every earlier state). In return an Acknowledge names any EventId
of the current unacknowledged episode, not only the latest: a client that acknowledges
the alarm from the "active" event it was shown, after the alarm already cleared, is
answered Good rather than ``BadEventIdUnknown``.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace
from datetime import datetime

#: Status names of OPC 10000-9 5.7.3, 5.7.4, 5.5.6 (the adapter maps them to codes).
EVENT_ID_UNKNOWN = "BadEventIdUnknown"
ALREADY_ACKED = "BadConditionBranchAlreadyAcked"
ALREADY_CONFIRMED = "BadConditionBranchAlreadyConfirmed"


class ConditionError(Exception):
    """A method call the condition refuses; ``status`` is the OPC UA status name."""

    def __init__(self, status: str, why: str) -> None:
        super().__init__(f"{status}: {why}")
        self.status = status
        self.why = why


@dataclass(frozen=True, slots=True)
class Notification:
    """One event of a condition: the fields of OPC 10000-9 as they are at ``time``.

    ``event_id`` is unique per notification (5.5.2 EventId); ``reason`` says what made it
    (``"active"``, ``"inactive"``, ``"acknowledged"``, ``"confirmed"``, ``"comment"``,
    ``"severity"``, ``"refresh"``).
    """

    event_id: bytes
    time: datetime
    reason: str
    condition: str  # ConditionName
    source: str  # SourceName: the meter's id or "gateway"
    type_name: str  # the OPC UA event type, e.g. "ExclusiveLimitAlarmType"
    active: bool
    acked: bool
    confirmed: bool
    retain: bool
    severity: int
    last_severity: int
    message: str
    comment: str = ""
    user: str = ""  # ClientUserId of the last Acknowledge/Confirm/AddComment
    limit: str = ""  # ExclusiveLimitAlarmType LimitState: "High", "Low", ... ("" none)
    quality: str = "Good"  # the quality of the source value (5.5.2 Quality)
    active_since: datetime | None = None  # when the active episode began (the page's "since")
    active_changed: datetime | None = None  # ActiveState/TransitionTime: the last change
    acked_at: datetime | None = None  # AckedState/TransitionTime


_serial = itertools.count()
_prefix = os.urandom(8)


def new_event_id() -> bytes:
    """16 bytes, unique in this process and across restarts (random prefix + counter)."""
    return _prefix + next(_serial).to_bytes(8, "big")


class Condition:
    """One alarm condition instance and its state (see the module's docstring)."""

    def __init__(
        self, name: str, source: str, type_name: str, severity: int, message: str, at: datetime
    ) -> None:
        self._state = Notification(
            event_id=new_event_id(),
            time=at,
            reason="initial",
            condition=name,
            source=source,
            type_name=type_name,
            active=False,
            acked=True,
            confirmed=True,
            retain=False,
            severity=severity,
            last_severity=severity,
            message=message,
        )
        # EventIds an Acknowledge/Confirm may name: every one since the episode began.
        self._episode: set[bytes] = set()

    def restore(self, n: Notification) -> None:
        """Take the state a journal kept (after a restart); its EventIds stay valid."""
        self._state = n
        self._episode = set() if n.acked and n.confirmed else {n.event_id}

    @property
    def open_event_ids(self) -> frozenset[bytes]:
        """The EventIds an Acknowledge or Confirm may name now."""
        return frozenset(self._episode)

    @property
    def state(self) -> Notification:
        """The latest notification (what ConditionRefresh re-sends when it is retained)."""
        return self._state

    def _next(self, at: datetime, reason: str, **fields: object) -> Notification:
        current = self._state
        severity = fields.get("severity", current.severity)
        changed = replace(current, event_id=new_event_id(), time=at, reason=reason, **fields)  # type: ignore[arg-type]
        retain = changed.active or not changed.acked or not changed.confirmed
        last = current.severity if severity != current.severity else current.last_severity
        self._state = replace(changed, retain=retain, last_severity=last)
        if not (self._state.acked and self._state.confirmed):
            self._episode.add(self._state.event_id)
        else:
            self._episode.clear()
        return self._state

    def activate(
        self, at: datetime, message: str, severity: int | None = None, limit: str = "", quality: str = "Good"
    ) -> Notification | None:
        """The alarm's condition holds (again, or with another limit or severity); None when
        nothing changed. A new activation - also another limit state or a higher severity
        (an escalation) - needs a new acknowledgement and confirmation."""
        s = self._state
        severity = s.severity if severity is None else severity
        if s.active and s.limit == limit and s.severity == severity:
            return None
        fresh = not s.active or s.limit != limit or severity > s.severity
        if fresh:
            self._episode.clear()
        return self._next(
            at,
            "active" if fresh else "severity",
            active=True,
            acked=False if fresh else s.acked,
            confirmed=False if fresh else s.confirmed,
            severity=severity,
            message=message,
            limit=limit,
            quality=quality,
            active_since=at if fresh else s.active_since,
            active_changed=at if not s.active else s.active_changed,
            acked_at=None if fresh else s.acked_at,
            comment="" if fresh else s.comment,
            user="" if fresh else s.user,
        )

    def clear(self, at: datetime, message: str, quality: str = "Good") -> Notification | None:
        """The condition ended; it stays retained until acknowledged and confirmed."""
        if not self._state.active:
            return None
        return self._next(
            at, "inactive", active=False, active_changed=at, message=message, limit="", quality=quality
        )

    def _check(self, event_id: bytes) -> None:
        if event_id not in self._episode:
            raise ConditionError(
                EVENT_ID_UNKNOWN, "the EventId is not one of this condition's awaiting an answer"
            )

    def acknowledge(self, at: datetime, event_id: bytes, comment: str, user: str) -> Notification:
        """OPC 10000-9 5.7.3: the operator has seen it."""
        if self._state.acked:
            raise ConditionError(ALREADY_ACKED, "the condition is already acknowledged")
        self._check(event_id)
        return self._next(
            at, "acknowledged", acked=True, acked_at=at, comment=comment or self._state.comment, user=user
        )

    def confirm(self, at: datetime, event_id: bytes, comment: str, user: str) -> Notification:
        """OPC 10000-9 5.7.4: the operator has acted on it (usually after Acknowledge)."""
        if self._state.confirmed:
            raise ConditionError(ALREADY_CONFIRMED, "the condition is already confirmed")
        self._check(event_id)
        return self._next(at, "confirmed", confirmed=True, comment=comment or self._state.comment, user=user)

    def add_comment(self, at: datetime, event_id: bytes, comment: str, user: str) -> Notification:
        """OPC 10000-9 5.5.5: a comment on the condition's current state."""
        if event_id != self._state.event_id and event_id not in self._episode:
            raise ConditionError(EVENT_ID_UNKNOWN, "the EventId is not this condition's latest")
        return self._next(at, "comment", comment=comment, user=user)

    def refresh(self) -> Notification | None:
        """The notification ConditionRefresh sends for this condition: its state as it is, with
        its own EventId (5.5.7: the same EventId as the original), None when not retained."""
        return self._state if self._state.retain else None
