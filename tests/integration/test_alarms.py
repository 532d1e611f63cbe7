"""OPC UA Alarms & Conditions (OPC 10000-9) of the gateway, end to end: the simulated meter
driven into an alarm condition, a real asyncua client seeing the condition's events on the
Server object, acknowledging as an operator (a viewer is refused), ConditionRefresh for a
client that connects later, and the journal that keeps it all."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.common.events import get_filter_from_event_type

from gateway.clock import ScaledClock
from gateway.opcua.server import ORGANIZATION
from gateway.security.pki import LIFETIME, Pki
from gateway.security.users import Role
from tests.support.disks import fill, tiny_disk
from tests.support.harness import Running, add_user, demo, running_gateway, secure_client, trust_test_client

SERVER = ua.NodeId(ua.ObjectIds.Server)
ALARM = ua.NodeId(ua.ObjectIds.AlarmConditionType)
REFRESH_START, REFRESH_END = ua.ObjectIds.RefreshStartEventType, ua.ObjectIds.RefreshEndEventType


class Events:
    """Every event a subscription delivers, in order, awaitable by predicate."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def event_notification(self, event: Any) -> None:
        self.queue.put_nowait(event)

    async def next(self, predicate: Any, timeout: float = 30) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.queue.get()
                if predicate(event):
                    return event


async def watch(client: Client, where: bool = True) -> tuple[Events, Any]:
    """The Server object's alarm events (``where``: only AlarmConditionType's subtypes, as a
    SCADA filters; without, the RefreshStart/End events of a ConditionRefresh too)."""
    events = Events()
    sub = await client.create_subscription(100, events)
    types = [client.get_node(ALARM), client.get_node(ua.NodeId(ua.ObjectIds.ExclusiveLimitAlarmType))]
    await sub.subscribe_events(client.get_node(SERVER), types, where_clause_generation=where)
    return events, sub


async def watch_where(client: Client, where: ua.ContentFilter) -> Events:
    """The Server object's events with the alarm fields and the client's own where clause."""
    events = Events()
    sub = await client.create_subscription(100, events)
    evfilter = await get_filter_from_event_type([client.get_node(ALARM)])
    evfilter.WhereClause = where
    await sub.subscribe_events(client.get_node(SERVER), client.get_node(ALARM), evfilter=evfilter)
    return events


def of_state(active: bool) -> ua.ContentFilter:
    """OfType AcknowledgeableConditionType And ActiveState/Id == ``active``."""
    return ua.ContentFilter(Elements=[
        ua.ContentFilterElement(FilterOperator=ua.FilterOperator.And,
                                FilterOperands=[ua.ElementOperand(1), ua.ElementOperand(2)]),
        ua.ContentFilterElement(FilterOperator=ua.FilterOperator.OfType, FilterOperands=[
            ua.LiteralOperand(Value=ua.Variant(ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType)))]),
        ua.ContentFilterElement(FilterOperator=ua.FilterOperator.Equals, FilterOperands=[
            ua.SimpleAttributeOperand(TypeDefinitionId=ALARM, AttributeId=ua.AttributeIds.Value,
                                      BrowsePath=[ua.QualifiedName("ActiveState"), ua.QualifiedName("Id")]),
            ua.LiteralOperand(Value=ua.Variant(active))]),
    ])  # fmt: skip


def condition(name: str, since: datetime | None = None, **fields: Any) -> Any:
    """Events of the condition ``name`` (raised at ``since`` or later) with ``fields``."""

    def match(event: Any) -> bool:
        if getattr(event, "ConditionName", None) != name:
            return False
        if since is not None and event.Time < since.replace(microsecond=0):
            return False  # an older event of the meter's log, read at start
        return all(getattr(event, key) == value for key, value in fields.items())

    return match


@pytest.fixture
async def gw() -> AsyncIterator[Running]:
    config = demo(event_period_s=2.0)
    add_user(config, "viewer", Role.VIEWER)
    async with running_gateway(config, login=Role.OPERATOR) as running:
        await running.gateway.pollers["meter1"].wait_snapshot()
        yield running


async def acknowledge(client: Client, node: ua.NodeId, event_id: bytes, comment: str) -> ua.StatusCode:
    request = ua.CallMethodRequest(
        ObjectId=node,
        MethodId=ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge),
        InputArguments=[
            ua.Variant(event_id, ua.VariantType.ByteString),
            ua.Variant(ua.LocalizedText(comment)),
        ],
    )
    (result,) = await client.uaclient.call([request])
    return result.StatusCode


async def test_a_terminal_cover_alarm_is_raised_acknowledged_cleared_and_refreshed(gw: Running) -> None:
    sim = gw.gateway.simulators["meter1"]
    events, _ = await watch(gw.client)
    # What a SCADA's alarm view asks: OfType AcknowledgeableConditionType (a supertype of the
    # alarm's type), here also split by state (a two-element browse path, ActiveState/Id).
    active_only = await watch_where(gw.client, of_state(True))
    inactive_only = await watch_where(gw.client, of_state(False))
    sim.advance()
    planted = sim.now()
    sim.physics.open_terminal_cover(planted)
    opened = await events.next(condition("TerminalCover", planted, Retain=True, **{"ActiveState/Id": True}))
    assert opened.Severity == 900
    assert opened.Message.Text.startswith("Meter meter1 terminal cover opened at ")
    assert getattr(opened, "ActiveState/Id") is True
    assert getattr(opened, "AckedState/Id") is False
    assert opened.SourceName == "meter1"
    assert opened.EventType == ua.NodeId(ua.ObjectIds.OffNormalAlarmType)
    node = gw.node("meter1.Alarms.TerminalCover").nodeid
    assert opened.NodeId == node  # the ConditionId

    # A viewer may see it but not acknowledge it.
    viewer = await secure_client(gw.gateway.endpoint, "viewer")
    async with viewer:
        refused = await acknowledge(viewer, node, opened.EventId, "not mine")
    assert refused.value == ua.StatusCodes.BadUserAccessDenied

    # The cover closes: inactive, still retained - nobody has acknowledged it.
    sim.advance()
    sim.physics.close_terminal_cover(sim.now())
    closed = await events.next(condition("TerminalCover", planted, **{"ActiveState/Id": False}))
    assert getattr(closed, "ActiveState/Id") is False
    assert getattr(closed, "AckedState/Id") is False

    # A client connecting now gets it from ConditionRefresh, bracketed by start and end.
    later = await secure_client(gw.gateway.endpoint, "viewer")
    async with later:
        seen, sub = await watch(later)
        refresh = ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh)
        subscription = ua.Variant(sub.subscription_id, ua.VariantType.UInt32)
        await later.get_node(ua.NodeId(ua.ObjectIds.ConditionType)).call_method(refresh, subscription)
        refreshed = await seen.next(condition("TerminalCover"))
        assert refreshed.EventId == closed.EventId  # the same event again (OPC 10000-9 5.5.3)

    wrong = await acknowledge(gw.client, node, b"\0" * 16, "")
    assert wrong.value == ua.StatusCodes.BadEventIdUnknown
    assert (await acknowledge(gw.client, node, opened.EventId, "seen on site")).is_good()
    acked = await events.next(condition("TerminalCover", planted, **{"AckedState/Id": True}))
    assert getattr(acked, "AckedState/Id") is True
    assert acked.Comment.Text == "seen on site"
    assert acked.ClientUserId == "operator"
    again = await acknowledge(gw.client, node, opened.EventId, "")
    assert again.value == ua.StatusCodes.BadConditionBranchAlreadyAcked

    # All of it is in the Server object's event history, with the states as they were.
    history = await gw.client.get_node(SERVER).read_event_history(
        planted - timedelta(seconds=1), datetime.now(UTC) + timedelta(minutes=1), evtypes=[ALARM]
    )
    story = [
        (getattr(e, "ActiveState/Id"), getattr(e, "AckedState/Id"), e.Retain)
        for e in history
        if e.ConditionName == "TerminalCover"
    ]
    assert story == [(True, False, True), (False, False, True), (False, True, True)]
    ids = [e.EventId for e in history if e.ConditionName == "TerminalCover"]
    assert ids[:2] == [opened.EventId, closed.EventId]

    # The filtered subscriptions had their state, the first event of each being the one shown.
    assert (await active_only.next(condition("TerminalCover", planted))).EventId == opened.EventId
    assert (await inactive_only.next(condition("TerminalCover", planted))).EventId == closed.EventId


async def test_a_sag_and_a_low_frequency_raise_limit_alarms_and_a_blip_raises_nothing() -> None:
    """Voltage sag to 190 V for 2 minutes and 49.3 Hz for one, on a clock 6x faster than
    real time (the meter, the line and the gateway all on it); a 1-second dip before."""
    clock = ScaledClock(datetime.now(UTC), 6.0)
    config = demo(event_period_s=2.0)
    meter = config.meters[0]
    assert meter.simulator is not None
    quiet = replace(meter.simulator, disturbances_per_week=0.0)  # only what the test plants
    config = replace(config, meters=(replace(meter, simulator=quiet),))
    async with running_gateway(config, clock) as gw:
        events, _ = await watch(gw.client)
        sim = gw.gateway.simulators["meter1"]
        model = sim.physics.model
        sim.advance()
        t = sim.now()
        second = timedelta(seconds=1)
        model.plant(t + 5 * second, t + 6 * second, voltage=150.0, phases=(2,))  # the blip
        model.plant(t + 20 * second, t + 140 * second, voltage=190.0, phases=(1,))
        model.plant(t + 160 * second, t + 220 * second, frequency=49.3)
        sag = await events.next(condition("VoltageL1", Retain=True), timeout=120)
        assert (sag.Severity, getattr(sag, "LimitState/CurrentState").Text) == (800, "LowLow")
        assert sag.EventType == ua.NodeId(ua.ObjectIds.ExclusiveLimitAlarmType)
        assert re.fullmatch(r"Voltage L1 1[89]\d\.\d V below limit \(195\.5 V\)", sag.Message.Text)
        assert sag.Time - (t + 20 * second) >= timedelta(seconds=10)  # the on-delay
        back = await events.next(condition("VoltageL1"), timeout=120)
        assert getattr(back, "ActiveState/Id") is False
        assert back.Retain is True  # not acknowledged yet
        low = await events.next(condition("Frequency", Retain=True), timeout=120)
        assert (low.Severity, getattr(low, "LimitState/CurrentState").Text) == (700, "Low")
        assert low.Message.Text == "Frequency 49.30 Hz below limit (49.50 Hz)"
        await events.next(condition("Frequency"), timeout=120)  # cleared
        assert gw.gateway.alarms is not None
        names = {n.condition for n in gw.gateway.alarms.retained()}
    # The L2 blip raised nothing (the meter's history may hold a terminal cover event).
    assert names & {"VoltageL1", "VoltageL2", "VoltageL3", "Frequency"} == {"VoltageL1", "Frequency"}


async def refreshed(client: Client) -> list[Any]:
    """The retained conditions' events a ConditionRefresh sends now (until RefreshEnd)."""
    seen, sub = await watch(client, where=False)
    refresh = ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh)
    subscription = ua.Variant(sub.subscription_id, ua.VariantType.UInt32)
    await client.get_node(ua.NodeId(ua.ObjectIds.ConditionType)).call_method(refresh, subscription)
    out = []
    async with asyncio.timeout(30):
        while True:
            event = await seen.queue.get()
            if event.EventType == ua.NodeId(REFRESH_END):
                return out
            if getattr(event, "ConditionName", None):
                out.append(event)


async def test_a_silent_meter_raises_communication_lost_until_it_answers(gw: Running) -> None:
    events, _ = await watch(gw.client)
    sim = gw.gateway.simulators["meter1"]
    sim.faults.silent = True
    lost = await events.next(condition("CommunicationLost", **{"ActiveState/Id": True}), timeout=90)
    assert lost.Severity == 700
    assert lost.Message.Text.startswith("Meter meter1 does not answer: ")
    assert lost.ConditionClassId == ua.NodeId(ua.ObjectIds.SystemConditionClassType)
    sim.faults.silent = False
    back = await events.next(condition("CommunicationLost", **{"ActiveState/Id": False}), timeout=90)
    assert back.Message.Text == "Meter meter1 answers again"
    assert back.Retain is True  # until an operator has seen it


async def test_a_full_archive_disk_raises_its_alarm_and_space_clears_it(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk") as disk:
        config = demo()
        config = replace(config, archive=replace(config.archive, path=str(disk / "archive")))
        async with running_gateway(config, login=Role.OPERATOR) as gw:
            events, _ = await watch(gw.client)
            recorder = gw.gateway.recorders["meter1"]
            async with asyncio.timeout(60):
                while recorder.status.records_written == 0:
                    await gw.gateway.pollers["meter1"].wait_snapshot()
            filler = fill(disk)
            full = await events.next(condition("ArchiveDisk", Severity=900), timeout=90)
            assert full.EventType == ua.NodeId(ua.ObjectIds.SystemOffNormalAlarmType)
            assert full.Message.Text.startswith("Archive disk full: a write failed")
            assert full.SourceName == "gateway"
            filler.unlink()
            room = await events.next(condition("ArchiveDisk", **{"ActiveState/Id": False}), timeout=90)
            assert room.Message.Text.startswith("Archive disk has room again")


async def test_an_own_certificate_expiring_in_30_days_raises_its_alarm(tmp_path: Path) -> None:
    config = demo()
    config = replace(config, security=replace(config.security, pki=str(tmp_path / "pki")))
    now = datetime.now(UTC)
    Pki(config.security.pki).ensure_own(
        config.opcua.application_uri, common_name=config.opcua.server_name, organization=ORGANIZATION,
        now=now - (LIFETIME - timedelta(days=30)),
    )  # fmt: skip
    trust_test_client(config.security.pki)
    async with running_gateway(config, login=Role.OPERATOR) as gw:
        assert gw.gateway.alarms is not None
        async with asyncio.timeout(30):  # the first look at the certificate, at start
            while not any(n.condition == "CertificateExpiration" for n in gw.gateway.alarms.retained()):
                await gw.gateway.pollers["meter1"].wait_snapshot()
        (expiring,) = [e for e in await refreshed(gw.client) if e.ConditionName == "CertificateExpiration"]
    assert expiring.EventType == ua.NodeId(ua.ObjectIds.CertificateExpirationAlarmType)
    assert expiring.Severity == 600
    assert re.fullmatch(
        r"The gateway's certificate expires on \d{4}-\d\d-\d\d \(in (29|30) days\)", expiring.Message.Text
    )
