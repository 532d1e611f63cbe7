"""The alarms SMX raises: one declarative table (name, source, OPC UA type, severity per
state, message) and the evaluators that turn what the meter and the gateway report into
condition notifications. Sans-I/O and clocked by the caller; the rooms that own the facts
(poller, archive, certificates, uplink) feed them, the adapters publish the notifications.

Severities are OPC UA's 1..1000 (OPC 10000-5 BaseEventType Severity; OPC 10000-9 5.5.2):
a SCADA operator's list sorts by them. The numbers follow the meter event table
(gateway/events.py): tampering and loss of supply high, routine clock matters low.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.alarms.condition import Condition, Notification
from gateway.alarms.detect import HIGH, HIGH_HIGH, LOW, LOW_LOW, NORMAL, Debounce, LimitDetector, Limits
from gateway.config import AlarmConfig

#: OPC UA event types (OPC 10000-9 5.8): the names the OPC UA adapter maps to type NodeIds.
OFF_NORMAL = "OffNormalAlarmType"
SYSTEM_OFF_NORMAL = "SystemOffNormalAlarmType"
EXCLUSIVE_LIMIT = "ExclusiveLimitAlarmType"
EXCLUSIVE_DEVIATION = "ExclusiveDeviationAlarmType"
CERTIFICATE_EXPIRATION = "CertificateExpirationAlarmType"


@dataclass(frozen=True, slots=True)
class AlarmSpec:
    """One row of the table: a condition per meter (``per_meter``) or of the gateway.

    ``severity`` maps a limit state (or "" for an off-normal alarm) to the Severity;
    ``active``/``cleared`` are the messages, formatted with the evaluation's fields.
    """

    name: str
    per_meter: bool
    type_name: str
    severity: Mapping[str, int]
    active: str
    cleared: str
    what: str  # the README's description of the trigger


def _s(**by_state: int) -> dict[str, int]:
    names = {"normal": NORMAL, "high": HIGH, "high_high": HIGH_HIGH, "low": LOW, "low_low": LOW_LOW}
    return {names[k]: v for k, v in by_state.items()}


ALARMS: tuple[AlarmSpec, ...] = (
    AlarmSpec("CommunicationLost", True, OFF_NORMAL, _s(normal=700),
              "Meter {meter} does not answer: {detail}", "Meter {meter} answers again",
              "the poller declared the meter lost (no answer for the configured retries)"),
    AlarmSpec("ClockDeviation", True, EXCLUSIVE_DEVIATION, _s(high=400, low=400),
              "Meter {meter} clock is {value:+.0f} s off the box's", "Meter {meter} clock within {limit:g} s",
              "the meter's clock differs from the box's by more than the limit (default 10 s)"),
    *(AlarmSpec(f"VoltageL{k}", True, EXCLUSIVE_LIMIT, _s(low=600, high=600, low_low=800, high_high=800),
                f"Voltage L{k} {{value:.1f}} V {{state}} limit ({{limit:.1f}} V)",
                f"Voltage L{k} back within {{low:.1f}}..{{high:.1f}} V",
                f"the L{k} voltage outside Un ±10 % (Low/High) or −15 %/+15 % (LowLow/HighHigh) "
                "for longer than the delay (default 10 s)")
      for k in (1, 2, 3)),
    AlarmSpec("Frequency", True, EXCLUSIVE_LIMIT, _s(low=700, high=700, low_low=900, high_high=900),
              "Frequency {value:.2f} Hz {state} limit ({limit:.2f} Hz)",
              "Frequency back within {low:.2f}..{high:.2f} Hz",
              "the frequency outside 49.5..50.5 Hz (Low/High) or 47..52 Hz (LowLow/HighHigh) "
              "for longer than the delay"),
    AlarmSpec("PowerDown", True, OFF_NORMAL, _s(normal=800),
              "Meter {meter} reported a power down at {when}", "Meter {meter} reported power up at {when}",
              "the meter's event log: power down (code 1) until power up (code 2)"),
    AlarmSpec("TerminalCover", True, OFF_NORMAL, _s(normal=900),
              "Meter {meter} terminal cover opened at {when}",
              "Meter {meter} terminal cover closed at {when}",
              "the meter's event log: terminal cover opened (40) until closed (41)"),
    AlarmSpec("ClockSet", True, OFF_NORMAL, _s(normal=300),
              "Meter {meter} clock was set at {when}", "Meter {meter} clock set (event)",
              "the meter's event log: clock adjusted (4/5); active and cleared at once, "
              "retained until acknowledged"),
    AlarmSpec("ArchiveDisk", False, SYSTEM_OFF_NORMAL, _s(normal=600, high=900),
              "Archive disk {detail}", "Archive disk has room again ({detail})",
              "the archive's file system below 10 % free or 7 days at the current rate (600), "
              "or a write failed (900)"),
    AlarmSpec("CertificateExpiration", False, CERTIFICATE_EXPIRATION, _s(normal=600, high=900),
              "The gateway's certificate {detail}", "The gateway's certificate is valid until {when}",
              "the gateway's own application certificate expires within 60 days (600) or has expired (900)"),
    AlarmSpec("UplinkDown", False, SYSTEM_OFF_NORMAL, _s(normal=500),
              "The uplink to the broker has been down since {when}", "The uplink to the broker is up again",
              "the MQTT uplink has been disconnected for longer than the limit (default 10 min)"),
)  # fmt: skip
SPECS = {spec.name: spec for spec in ALARMS}

#: What a meter's event log code does to its alarms: (alarm, True = activates / False = clears).
EVENT_ALARMS: dict[int, tuple[str, bool]] = {
    1: ("PowerDown", True),
    2: ("PowerDown", False),
    40: ("TerminalCover", True),
    41: ("TerminalCover", False),
    4: ("ClockSet", True),
    5: ("ClockSet", True),
}


def voltage_limits(c: AlarmConfig) -> Limits:
    """Low/High at Un ± the band, LowLow/HighHigh at Un ± the outer band."""
    un, band, outer = c.nominal_v, c.voltage_band_pct / 100, c.voltage_outer_pct / 100
    return Limits(un * (1 - outer), un * (1 - band), un * (1 + band), un * (1 + outer), c.voltage_deadband_v)


def frequency_limits(c: AlarmConfig) -> Limits:
    return Limits(
        c.frequency_low_low_hz, c.frequency_low_hz, c.frequency_high_hz, c.frequency_high_high_hz,
        c.frequency_deadband_hz,
    )  # fmt: skip


_SIDE = {HIGH: "above", HIGH_HIGH: "above", LOW: "below", LOW_LOW: "below"}


@dataclass
class _Alarm:
    spec: AlarmSpec
    condition: Condition
    detail: dict[str, object] = field(default_factory=dict)

    def set(self, at: datetime, state: str | None, **detail: object) -> Notification | None:
        """``state`` None clears; otherwise it activates with that state's severity (a limit
        state of the limit alarms; "" or HIGH, the worse level, of the off-normal ones)."""
        self.detail = {**self.detail, **detail}
        if state is None:
            return self.condition.clear(at, self.spec.cleared.format(**self.detail))
        self.detail["state"] = {HIGH: "above", HIGH_HIGH: "above", LOW: "below", LOW_LOW: "below"}.get(
            state, ""
        )
        message = self.spec.active.format(**self.detail)
        limit = state if self.spec.type_name in (EXCLUSIVE_LIMIT, EXCLUSIVE_DEVIATION) else ""
        return self.condition.activate(at, message, self.spec.severity[state], limit=limit)


class _Group:
    """Conditions of one source (a meter or the gateway), by name."""

    def __init__(self, source: str, specs: Iterable[AlarmSpec], at: datetime, **detail: object) -> None:
        self.source = source
        self.alarms = {
            s.name: _Alarm(
                s, Condition(s.name, source, s.type_name, min(s.severity.values()), "", at), dict(detail)
            )
            for s in specs
        }

    def conditions(self) -> list[Condition]:
        return [a.condition for a in self.alarms.values()]

    def _set(self, name: str, at: datetime, state: str | None, **detail: object) -> list[Notification]:
        n = self.alarms[name].set(at, state, **detail)
        return [] if n is None else [n]


class MeterAlarms(_Group):
    """A meter's conditions, fed by its poller: every snapshot's values, the link state and
    the event log's entries."""

    def __init__(self, meter: str, settings: AlarmConfig, at: datetime) -> None:
        super().__init__(meter, (s for s in ALARMS if s.per_meter), at, meter=meter)
        self.settings = settings
        v = voltage_limits(settings)
        self._voltage = [LimitDetector(v, settings.delay_s, settings.delay_s) for _ in range(3)]
        self._frequency = LimitDetector(frequency_limits(settings), settings.delay_s, settings.delay_s)
        self._lost = Debounce(0.0, 0.0)  # the poller already waited its retries
        # Deviation from the box's clock (setpoint 0), with 1 s of deadband: a clock hovering
        # at the limit does not raise a new alarm each time it crosses it.
        limit = settings.clock_limit_s
        self._clock = LimitDetector(Limits(low=-limit, high=limit, deadband=1.0), 0.0, 0.0)

    def on_values(
        self,
        at: datetime,
        voltages: Iterable[float | None],
        frequency: float | None,
        clock_offset_s: float | None,
    ) -> list[Notification]:
        """One snapshot: phase voltages L1..L3, frequency, the meter clock minus the box's."""
        out: list[Notification] = []
        for k, (detector, u) in enumerate(zip(self._voltage, voltages, strict=False), start=1):
            if detector.update(at, u):
                out += self._limit(f"VoltageL{k}", at, detector, u)
        if self._frequency.update(at, frequency):
            out += self._limit("Frequency", at, self._frequency, frequency)
        if clock_offset_s is not None and self._clock.update(at, clock_offset_s):
            state = self._clock.state
            limit = self.settings.clock_limit_s
            out += self._set("ClockDeviation", at, state or None, value=clock_offset_s, limit=limit)
        return out

    def _limit(
        self, name: str, at: datetime, detector: LimitDetector, value: float | None
    ) -> list[Notification]:
        lim = detector.limits
        state = detector.state
        edge = {HIGH: lim.high, HIGH_HIGH: lim.high_high, LOW: lim.low, LOW_LOW: lim.low_low}.get(state)
        return self._set(name, at, state or None, value=value, limit=edge, low=lim.low, high=lim.high)

    def on_link(self, at: datetime, lost: bool, detail: str = "") -> list[Notification]:
        """The poller declared the meter lost (True) or answering again (False)."""
        if not self._lost.update(at, "lost" if lost else NORMAL):
            return []
        return self._set("CommunicationLost", at, NORMAL if lost else None, detail=detail or "no answer")

    def on_event(self, at: datetime, code: int) -> list[Notification]:
        """One entry of the meter's event log (time in UTC)."""
        rule = EVENT_ALARMS.get(code)
        if rule is None:
            return []
        name, activates = rule
        stamp = at.strftime("%Y-%m-%d %H:%M:%S UTC")
        if name == "ClockSet":  # an instant: raised and cleared, retained until acknowledged
            return [*self._set(name, at, NORMAL, when=stamp), *self._set(name, at, None, when=stamp)]
        return self._set(name, at, NORMAL if activates else None, when=stamp)


class GatewayAlarms(_Group):
    """The gateway's own conditions: the archive's disk, its certificate, the uplink."""

    def __init__(self, settings: AlarmConfig, at: datetime) -> None:
        super().__init__("gateway", (s for s in ALARMS if not s.per_meter), at)
        self.settings = settings

    def on_disk(
        self, at: datetime, free_bytes: int, total_bytes: int, days_left: float | None, write_failed: bool
    ) -> list[Notification]:
        """The archive's file system: free space, days left at the current rate, and whether
        the last write failed (a full disk shows as a failed write first)."""
        pct = 100.0 * free_bytes / total_bytes if total_bytes else 0.0
        low = pct < self.settings.disk_free_pct or (
            days_left is not None and days_left < self.settings.disk_days
        )
        days = "" if days_left is None else f", {days_left:.1f} days left"
        if write_failed:
            return self._set("ArchiveDisk", at, HIGH, detail=f"full: a write failed ({pct:.1f} % free)")
        if low:
            return self._set("ArchiveDisk", at, NORMAL, detail=f"low: {pct:.1f} % free{days}")
        return self._set("ArchiveDisk", at, None, detail=f"{pct:.1f} % free{days}")

    def on_certificate(self, at: datetime, not_after: datetime) -> list[Notification]:
        left = not_after - at
        stamp = not_after.strftime("%Y-%m-%d")
        if left <= timedelta(0):
            return self._set("CertificateExpiration", at, HIGH, detail=f"expired on {stamp}", when=stamp)
        if left < timedelta(days=self.settings.certificate_days):
            detail = f"expires on {stamp} (in {left.days} days)"
            return self._set("CertificateExpiration", at, NORMAL, detail=detail, when=stamp)
        return self._set("CertificateExpiration", at, None, when=stamp)

    def on_uplink(self, at: datetime, connected: bool, down_since: datetime | None) -> list[Notification]:
        if connected or down_since is None:
            return self._set("UplinkDown", at, None)
        if (at - down_since).total_seconds() < self.settings.uplink_down_s:
            return []
        return self._set("UplinkDown", at, NORMAL, when=down_since.strftime("%Y-%m-%d %H:%M:%S UTC"))
