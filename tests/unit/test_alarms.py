"""Alarm conditions (OPC 10000-9) as a pure core: the condition state machine, the
debounced limit detectors and the alarm table's evaluators (gateway/alarms/)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.alarms.condition import (
    ALREADY_ACKED,
    ALREADY_CONFIRMED,
    EVENT_ID_UNKNOWN,
    Condition,
    ConditionError,
    Notification,
)
from gateway.alarms.detect import HIGH, LOW, LOW_LOW, NORMAL, LimitDetector, Limits
from gateway.alarms.journal import AlarmJournal
from gateway.alarms.service import AlarmService, DiskFacts, Probes, UplinkFacts
from gateway.alarms.table import ALARMS, GatewayAlarms, MeterAlarms, voltage_limits
from gateway.clock import ManualClock
from gateway.config import AlarmConfig
from gateway.meter.model import Diagnostics, EventRecord, LinkState, Quality, Reading, Snapshot
from gateway.obis import FREQUENCY, PHASE_VOLTAGES

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def fresh() -> Condition:
    return Condition("VoltageL1", "m1", "ExclusiveLimitAlarmType", 600, "", T0)


# --------------------------------------------------------------------------- the condition


def test_an_alarm_is_retained_until_it_is_inactive_acknowledged_and_confirmed() -> None:
    c = fresh()
    assert c.refresh() is None  # normal and acknowledged: nothing for ConditionRefresh
    up = c.activate(T0, "Voltage L1 low", limit=LOW)
    assert up is not None
    assert (up.active, up.acked, up.confirmed, up.retain, up.limit) == (True, False, False, True, LOW)
    down = c.clear(T0 + 60 * S, "back")
    assert down is not None
    assert (down.active, down.acked, down.retain) == (False, False, True)  # cleared, not yet seen
    assert c.refresh() == down  # a client connecting now is shown it, same EventId
    acked = c.acknowledge(T0 + 90 * S, down.event_id, "seen", "operator")
    assert (acked.acked, acked.confirmed, acked.retain, acked.user, acked.comment) == (
        True, False, True, "operator", "seen",
    )  # fmt: skip
    confirmed = c.confirm(T0 + 95 * S, acked.event_id, "fuse replaced", "operator")
    assert (confirmed.confirmed, confirmed.retain) == (True, False)
    assert c.refresh() is None
    ids = {up.event_id, down.event_id, acked.event_id, confirmed.event_id}
    assert len(ids) == 4  # every notification has its own EventId


def test_acknowledge_names_an_event_of_the_open_episode_only_once() -> None:
    c = fresh()
    older = fresh().activate(T0, "another condition's")
    up = c.activate(T0, "low", limit=LOW)
    assert up is not None
    assert older is not None
    c.clear(T0 + S, "back")
    with pytest.raises(ConditionError) as err:
        c.acknowledge(T0 + 2 * S, older.event_id, "", "operator")
    assert err.value.status == EVENT_ID_UNKNOWN
    # The "active" event the operator was shown still acknowledges the cleared alarm.
    c.acknowledge(T0 + 2 * S, up.event_id, "", "operator")
    with pytest.raises(ConditionError) as err:
        c.acknowledge(T0 + 3 * S, up.event_id, "", "operator")
    assert err.value.status == ALREADY_ACKED
    c.confirm(T0 + 4 * S, up.event_id, "", "operator")
    with pytest.raises(ConditionError) as err:
        c.confirm(T0 + 5 * S, up.event_id, "", "operator")
    assert err.value.status == ALREADY_CONFIRMED


def test_a_new_limit_or_a_higher_severity_needs_a_new_acknowledgement() -> None:
    c = fresh()
    up = c.activate(T0, "low", 600, limit=LOW)
    assert up is not None
    c.acknowledge(T0 + S, up.event_id, "", "op")
    assert c.activate(T0 + 2 * S, "low", 600, limit=LOW) is None  # nothing changed: no event
    worse = c.activate(T0 + 3 * S, "lowlow", 800, limit=LOW_LOW)
    assert worse is not None
    assert (worse.acked, worse.severity, worse.last_severity, worse.active_since) == (
        False,
        800,
        600,
        T0 + 3 * S,
    )
    c.acknowledge(T0 + 4 * S, worse.event_id, "", "op")
    milder = c.activate(T0 + 5 * S, "lowlow, less", 700, limit=LOW_LOW)
    assert milder is not None
    assert milder.acked  # a lower severity of the same state is no new alarm
    assert milder.reason == "severity"


def test_comments_carry_the_user_and_keep_the_state() -> None:
    c = fresh()
    up = c.activate(T0, "low", limit=LOW)
    assert up is not None
    noted = c.add_comment(T0 + S, up.event_id, "crew on the way", "operator")
    assert (noted.comment, noted.user, noted.active, noted.acked) == (
        "crew on the way",
        "operator",
        True,
        False,
    )
    with pytest.raises(ConditionError) as err:
        c.add_comment(T0 + S, b"x" * 16, "?", "operator")
    assert err.value.status == EVENT_ID_UNKNOWN


# --------------------------------------------------------------------------- detectors

VOLTAGE = voltage_limits(AlarmConfig())


def feed(detector: LimitDetector, values: list[float], start: datetime = T0) -> list[tuple[int, str]]:
    """The (second, state) of every change."""
    return [(k, detector.state) for k, v in enumerate(values) if detector.update(start + k * S, v)]


def test_a_one_second_blip_raises_nothing_and_a_held_sag_does() -> None:
    detector = LimitDetector(VOLTAGE, 10.0, 10.0)
    assert feed(detector, [230.0] * 5 + [150.0] + [230.0] * 30) == []
    detector = LimitDetector(VOLTAGE, 10.0, 10.0)
    changes = feed(detector, [230.0] * 5 + [190.0] * 120 + [230.0] * 30)
    assert changes == [(15, LOW_LOW), (135, NORMAL)]  # after the 10-s delay each way


def test_leaving_a_limit_needs_the_deadband() -> None:
    limits = Limits(low=207.0, high=253.0, deadband=2.0)
    assert limits.classify(206.9, NORMAL) == LOW
    assert limits.classify(208.0, LOW) == LOW  # within 207 + 2: still low
    assert limits.classify(209.1, LOW) == NORMAL
    assert limits.classify(252.0, HIGH) == HIGH
    assert limits.classify(250.9, HIGH) == NORMAL
    detector = LimitDetector(limits, 0.0, 0.0)
    assert feed(detector, [206.0, 208.0, 206.5, 208.5, 210.0]) == [(0, LOW), (4, NORMAL)]


def test_a_value_that_cannot_be_read_holds_the_state() -> None:
    detector = LimitDetector(VOLTAGE, 0.0, 0.0)
    detector.update(T0, 190.0)
    assert not detector.update(T0 + S, None)
    assert not detector.update(T0 + 2 * S, float("nan"))
    assert detector.state == LOW_LOW


# --------------------------------------------------------------------------- the table


def run_values(alarms: MeterAlarms, seconds: int, u: float, f: float, start: datetime) -> list[Notification]:
    out: list[Notification] = []
    for k in range(seconds):
        out += alarms.on_values(start + k * S, (u, 230.0, 230.0), f, 0.0)
    return out


def test_voltage_sag_and_frequency_alarms_of_a_meter() -> None:
    alarms = MeterAlarms("m1", AlarmConfig(), T0)
    sag = run_values(alarms, 120, 190.0, 50.0, T0)
    (active,) = sag
    assert (active.condition, active.source, active.type_name) == (
        "VoltageL1",
        "m1",
        "ExclusiveLimitAlarmType",
    )
    assert (active.severity, active.limit) == (800, LOW_LOW)
    assert active.message == "Voltage L1 190.0 V below limit (195.5 V)"
    (cleared,) = run_values(alarms, 30, 230.0, 50.0, T0 + 120 * S)
    assert cleared.message == "Voltage L1 back within 207.0..253.0 V"
    assert (cleared.active, cleared.retain) == (False, True)
    (low_f,) = run_values(alarms, 30, 230.0, 49.3, T0 + 150 * S)
    assert (low_f.condition, low_f.severity, low_f.limit) == ("Frequency", 700, LOW)
    assert low_f.message == "Frequency 49.30 Hz below limit (49.50 Hz)"


def test_event_log_alarms() -> None:
    alarms = MeterAlarms("m1", AlarmConfig(), T0)
    (opened,) = alarms.on_event(T0, 40)
    assert (opened.condition, opened.severity, opened.active) == ("TerminalCover", 900, True)
    assert opened.message == "Meter m1 terminal cover opened at 2026-12-07 12:00:00 UTC"
    (closed,) = alarms.on_event(T0 + 60 * S, 41)
    assert (closed.active, closed.retain) == (False, True)
    assert alarms.on_event(T0, 17) == []  # not an alarm
    raised, ended = alarms.on_event(T0, 4)  # clock set: an instant, kept until acknowledged
    assert (raised.condition, raised.active, ended.active, ended.retain) == ("ClockSet", True, False, True)
    (down,) = alarms.on_event(T0, 1)
    assert (down.condition, down.severity) == ("PowerDown", 800)


def test_communication_and_clock_alarms() -> None:
    alarms = MeterAlarms("m1", AlarmConfig(), T0)
    (lost,) = alarms.on_link(T0, True, "no answer after 3 retries")
    assert lost.message == "Meter m1 does not answer: no answer after 3 retries"
    assert alarms.on_link(T0 + S, True) == []
    (back,) = alarms.on_link(T0 + 2 * S, False)
    assert back.message == "Meter m1 answers again"
    (fast,) = alarms.on_values(T0, (230.0,) * 3, 50.0, 42.0)
    assert (fast.condition, fast.limit, fast.message) == (
        "ClockDeviation",
        HIGH,
        "Meter m1 clock is +42 s off the box's",
    )
    (synced,) = alarms.on_values(T0 + S, (230.0,) * 3, 50.0, 1.0)
    assert synced.message == "Meter m1 clock within 10 s"


def test_gateway_alarms() -> None:
    alarms = GatewayAlarms(AlarmConfig(), T0)
    (low,) = alarms.on_disk(T0, 5, 100, 30.0, False)
    assert (low.condition, low.type_name, low.severity) == ("ArchiveDisk", "SystemOffNormalAlarmType", 600)
    assert low.message == "Archive disk low: 5.0 % free, 30.0 days left"
    (full,) = alarms.on_disk(T0 + S, 0, 100, 0.0, True)
    assert (full.severity, full.acked) == (900, False)
    (ok,) = alarms.on_disk(T0 + 2 * S, 50, 100, 300.0, False)
    assert ok.active is False
    (cert,) = alarms.on_certificate(T0, T0 + timedelta(days=30))
    assert (cert.type_name, cert.severity) == ("CertificateExpirationAlarmType", 600)
    assert cert.message == "The gateway's certificate expires on 2027-01-06 (in 30 days)"
    assert alarms.on_uplink(T0, False, T0 - 599 * S) == []
    (down,) = alarms.on_uplink(T0, False, T0 - 600 * S)
    assert down.message == "The uplink to the broker has been down since 2026-12-07 11:50:00 UTC"


def test_every_alarm_of_the_table_has_its_condition_once() -> None:
    meter = MeterAlarms("m1", AlarmConfig(), T0)
    gateway = GatewayAlarms(AlarmConfig(), T0)
    names = [c.state.condition for c in (*meter.conditions(), *gateway.conditions())]
    assert sorted(names) == sorted(spec.name for spec in ALARMS)
    assert all(1 <= sev <= 1000 for spec in ALARMS for sev in spec.severity.values())


# --------------------------------------------------------------------------- the service


def snapshot_of(at: datetime, u1: float, link: LinkState = LinkState.ONLINE) -> Snapshot:
    readings = {
        o: Reading(o, u, "V", at, Quality.GOOD)
        for o, u in zip(PHASE_VOLTAGES, (u1, 230.0, 230.0), strict=True)
    }
    readings[FREQUENCY] = Reading(FREQUENCY, 50.0, "Hz", at, Quality.GOOD)
    return Snapshot("m1", at, readings, Diagnostics(link=link, clock_deviation_s=0.5))


async def test_the_service_journals_answers_and_restores_what_is_retained(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    seen: list[Notification] = []

    async def listen(n: Notification) -> None:
        seen.append(n)

    service = AlarmService(AlarmConfig(), clock, ["m1"], AlarmJournal(tmp_path))
    service.listeners.append(listen)
    listener = service.listener("m1")
    for k in range(15):  # 15 s at 190 V: raised after the 10-s delay
        clock.set(T0 + k * S)
        await listener.on_snapshot(snapshot_of(clock.now(), 190.0))
    await listener.on_events("m1", [EventRecord(T0, 40, 0)])
    assert [(n.condition, n.reason) for n in seen] == [("VoltageL1", "active"), ("TerminalCover", "active")]
    assert {(n.source, n.condition) for n in service.retained()} == {
        ("m1", "VoltageL1"),
        ("m1", "TerminalCover"),
    }
    with pytest.raises(ConditionError) as err:
        await service.answer("Acknowledge", "m1", "VoltageL1", b"\0" * 16, "", "operator")
    assert err.value.status == EVENT_ID_UNKNOWN
    with pytest.raises(KeyError, match="no alarm 'Nope' of 'm1'"):
        service.condition("m1", "Nope")
    acked = await service.answer(
        "Acknowledge", "m1", "TerminalCover", seen[1].event_id, "on site", "operator"
    )
    assert (acked.acked, acked.user, acked.comment) == (True, "operator", "on site")
    assert service.by_event_id(seen[0].event_id) == ("m1", "VoltageL1")

    # A restart: a new service over the same journal.
    clock.set(T0 + timedelta(minutes=5))
    again = AlarmService(AlarmConfig(), clock, ["m1"], AlarmJournal(tmp_path))
    assert await again.restore() == 2
    voltage = again.condition("m1", "VoltageL1").state
    assert (voltage.active, voltage.acked, voltage.retain) == (False, False, True)
    assert voltage.message.endswith("(cleared at restart)")
    cover = again.condition("m1", "TerminalCover").state
    assert (cover.active, cover.acked, cover.retain) == (True, True, True)  # only the meter closes it
    # The operator acknowledges it with the EventId shown before the restart.
    await again.answer("Acknowledge", "m1", "VoltageL1", seen[0].event_id, "", "operator")
    journal = list(AlarmJournal(tmp_path).read())
    assert [(n.condition, n.reason) for n in journal] == [
        ("VoltageL1", "active"), ("TerminalCover", "active"), ("TerminalCover", "acknowledged"),
        ("VoltageL1", "inactive"), ("VoltageL1", "acknowledged"),
    ]  # fmt: skip


def test_a_torn_journal_line_is_skipped(tmp_path: Path) -> None:
    journal = AlarmJournal(tmp_path)
    n = fresh().activate(T0, "low", limit=LOW)
    assert n is not None
    journal.append(n)
    with open(journal.path(T0.date()), "ab") as f:
        f.write(b'{"event_id":"00"')  # a power cut in the middle of a line
    assert list(journal.read()) == [n]
    later = fresh().activate(T0 + S, "low", limit=LOW)
    assert later is not None
    journal.append(later)  # the next line starts on a line of its own: nothing after the cut is lost
    assert list(journal.read()) == [n, later]


async def test_gateway_checks_from_probes(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    free = [50]
    probes = Probes(
        disk=lambda: DiskFacts(free[0], 100, False),
        certificate=lambda: T0 + timedelta(days=30),
        uplink=lambda: UplinkFacts(False, T0 - timedelta(hours=1)),
    )
    service = AlarmService(AlarmConfig(), clock, [], None, probes)
    await service.check()
    active = {n.condition for n in service.retained()}
    assert active == {"CertificateExpiration", "UplinkDown"}
    # The disk falls 20 units an hour: 30 left is 1.5 h, below the 7 days of the limit.
    clock.set(T0 + timedelta(hours=1))
    free[0] = 30
    await service.check()
    disk = service.condition("gateway", "ArchiveDisk").state
    assert disk.active
    assert disk.message == "Archive disk low: 30.0 % free, 0.1 days left"


def test_a_value_flickering_between_low_and_low_low_still_raises_after_the_delay() -> None:
    detector = LimitDetector(VOLTAGE, 10.0, 10.0)
    flicker = [195.0 if k % 2 else 196.0 for k in range(30)]  # around the LowLow limit 195.5 V
    changes = feed(detector, flicker)
    assert changes[0][0] == 10  # out of band since second 0: raised after the 10-s delay
    assert changes[0][1] in (LOW, LOW_LOW)
