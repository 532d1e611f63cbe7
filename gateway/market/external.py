"""External energy data: prices, renewable shares, forecasts the box does not measure.

Each value is declared in the configuration (``[[external]]``: name, unit, description,
how long it stays fresh, optional bounds) and fed from outside: a REST PUT, an OPC UA
write, or a pull from a configured HTTP(S) JSON source or local file (``gateway.market.sources``).
Whatever the path, a value enters through :meth:`ExternalData.put`, which refuses what is
not a finite number inside the bounds (nothing stored changes then).

A value's *time* is the time the source gives for it, or when it was received; it is
**stale** once ``fresh_s`` seconds have passed since that time. Staleness is a status
shown next to the value (OPC UA Uncertain, "stale" on the page), never a silently old
number. Pure logic: callers pass the clock's time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.config import ExternalConfig
from gateway.errors import MarketInputError


@dataclass(frozen=True, slots=True)
class ExternalValue:
    """The last accepted value of an external quantity."""

    name: str
    value: float
    #: The value's own time (from the source), or when it was received (UTC, aware).
    time: datetime
    received: datetime
    #: Where it came from: "rest", "opcua", or the configured source.
    origin: str


@dataclass(frozen=True, slots=True)
class ExternalState:
    """An external value as shown at an instant: with its age and whether it is stale."""

    config: ExternalConfig
    value: ExternalValue | None
    age_s: float | None
    stale: bool
    #: The last failure of the configured source ("" if none or none configured).
    source_error: str


Listener = Callable[[ExternalValue], None]


class ExternalData:
    """The configured external values and their latest accepted readings."""

    def __init__(self, configs: tuple[ExternalConfig, ...]) -> None:
        self.configs = {c.name: c for c in configs}
        self._values: dict[str, ExternalValue] = {}
        self._errors: dict[str, str] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with every accepted value."""
        self._listeners.append(listener)

    def config(self, name: str) -> ExternalConfig:
        try:
            return self.configs[name]
        except KeyError:
            known = ", ".join(self.configs) or "none configured"
            raise KeyError(f"no external value {name!r} (known: {known})") from None

    def put(self, name: str, value: object, *, now: datetime, time: datetime | None = None,
            origin: str) -> ExternalValue:  # fmt: skip
        """Accept ``value`` for ``name`` or raise MarketInputError (KeyError if unknown)."""
        config = self.config(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MarketInputError(
                f"{name}: expected a number, got {type(value).__name__} {value!r}", field="value"
            )
        number = float(value)
        if not math.isfinite(number):
            raise MarketInputError(
                f"{name}: {number} is not a finite value", out_of_range=not math.isnan(number), field="value"
            )
        if (config.low is not None and number < config.low) or (
            config.high is not None and number > config.high
        ):
            low = "-inf" if config.low is None else f"{config.low:g}"
            high = "inf" if config.high is None else f"{config.high:g}"
            unit = f" {config.unit}" if config.unit else ""
            raise MarketInputError(
                f"{name}: {number:g}{unit} is outside [{low}, {high}]", out_of_range=True, field="value"
            )
        if time is not None:
            if time.tzinfo is None:
                raise MarketInputError(
                    f"{name}: the time must say its offset (e.g. Z), got {time.isoformat()}", field="time"
                )
            if time - now > timedelta(seconds=config.fresh_s):
                raise MarketInputError(
                    f"{name}: time {time.isoformat()} is further ahead than the value stays fresh",
                    out_of_range=True,
                    field="time",
                )
        accepted = ExternalValue(name, number, time or now, now, origin)
        self._values[name] = accepted
        for listener in self._listeners:
            listener(accepted)
        return accepted

    def values(self) -> list[ExternalValue]:
        """The latest accepted value of each quantity that has one."""
        return list(self._values.values())

    def restore(self, saved: list[ExternalValue]) -> int:
        """Take values kept across a restart; those of names no longer configured, or that
        the configuration's bounds now refuse, are dropped. Returns how many were taken."""
        taken = 0
        for value in saved:
            config = self.configs.get(value.name)
            if config is None or not math.isfinite(value.value):
                continue
            if (config.low is not None and value.value < config.low) or (
                config.high is not None and value.value > config.high
            ):
                continue
            self._values[value.name] = value
            taken += 1
        return taken

    def set_source_error(self, name: str, error: str) -> None:
        """Record (or with "" clear) the failure of ``name``'s configured source."""
        self._errors[name] = error

    def state(self, name: str, now: datetime) -> ExternalState:
        config = self.config(name)
        value = self._values.get(name)
        if value is None:
            return ExternalState(config, None, None, True, self._errors.get(name, ""))
        age = (now - value.time).total_seconds()
        return ExternalState(config, value, age, age > config.fresh_s, self._errors.get(name, ""))

    def states(self, now: datetime) -> list[ExternalState]:
        return [self.state(name, now) for name in self.configs]
