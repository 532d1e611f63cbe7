"""When a value is in alarm: limits with a deadband and delays (OPC 10000-9 5.8.2
``OnDelay``/``OffDelay``, 5.8.18 exclusive limits), sans-I/O and clocked by the caller.

A state is taken only after it has held for its delay - the on-delay for a state away
from normal, the off-delay back to normal - so a one-second blip of a 1-second value
raises nothing. Leaving a limit state needs the value back past the limit by the
deadband, so a value sitting on the limit does not chatter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

#: ExclusiveLimitStateMachineType's states (OPC 10000-9 5.8.18); "" is normal.
HIGH_HIGH, HIGH, LOW, LOW_LOW, NORMAL = "HighHigh", "High", "Low", "LowLow", ""


class Debounce:
    """A state that changes only after the new one held for its delay."""

    def __init__(self, on_delay_s: float, off_delay_s: float, normal: str = NORMAL) -> None:
        self.on_delay_s = on_delay_s
        self.off_delay_s = off_delay_s
        self.normal = normal
        self.state = normal
        self._pending: tuple[str, datetime] | None = None

    def update(self, at: datetime, raw: str) -> bool:
        """The raw state at ``at``; True when the debounced state changed.

        The delay runs from the first raw state away from the debounced one on the same side
        of normal: a value flickering between Low and LowLow is out of band all along and is
        taken (as its latest state) once the on-delay has passed."""
        if raw == self.state:
            self._pending = None
            return False
        leaving = raw == self.normal
        if self._pending is None or (self._pending[0] == self.normal) != leaving:
            self._pending = (raw, at)
        delay = self.off_delay_s if leaving else self.on_delay_s
        if (at - self._pending[1]).total_seconds() >= delay:
            self.state, self._pending = raw, None
            return True
        return False


@dataclass(frozen=True, slots=True)
class Limits:
    """Exclusive limits of a value (None: that limit is not used) and their deadband."""

    low_low: float | None = None
    low: float | None = None
    high: float | None = None
    high_high: float | None = None
    deadband: float = 0.0

    def classify(self, value: float, current: str) -> str:
        """The limit state of ``value``; leaving ``current`` needs the deadband."""
        db = self.deadband

        def above(limit: float | None, held: tuple[str, ...]) -> bool:
            return limit is not None and value > limit - (db if current in held else 0.0)

        def below(limit: float | None, held: tuple[str, ...]) -> bool:
            return limit is not None and value < limit + (db if current in held else 0.0)

        if above(self.high_high, (HIGH_HIGH,)):
            return HIGH_HIGH
        if above(self.high, (HIGH, HIGH_HIGH)):
            return HIGH
        if below(self.low_low, (LOW_LOW,)):
            return LOW_LOW
        if below(self.low, (LOW, LOW_LOW)):
            return LOW
        return NORMAL


class LimitDetector:
    """A value against :class:`Limits`, debounced. A missing value holds the state: a
    value that cannot be read is the communication alarm's business, not this one's."""

    def __init__(self, limits: Limits, on_delay_s: float, off_delay_s: float) -> None:
        self.limits = limits
        self._debounce = Debounce(on_delay_s, off_delay_s)

    @property
    def state(self) -> str:
        return self._debounce.state

    def update(self, at: datetime, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return self._debounce.update(at, self.limits.classify(value, self._debounce.state))
