"""OPC UA Alarms & Conditions (OPC 10000-9) of the gateway, end to end: the simulated meter
driven into an alarm condition, a real asyncua client seeing the condition's events on the
Server object, acknowledging as an operator (a viewer is refused), ConditionRefresh for a
client that connects later, and the journal that keeps it all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asyncua import Client, ua

from gateway.security.users import Role
from tests.support.harness import Running, add_user, demo, running_gateway, secure_client

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


async def watch(client: Client) -> tuple[Events, Any]:
    events = Events()
    sub = await client.create_subscription(100, events)
    await sub.subscribe_events(client.get_node(SERVER), client.get_node(ALARM))
    return events, sub


def condition(name: str, **fields: Any) -> Any:
    def match(event: Any) -> bool:
        if getattr(event, "ConditionName", None) != name:
            return False
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
    sim.advance()
    sim.physics.open_terminal_cover(sim.now())
    opened = await events.next(condition("TerminalCover", Retain=True))
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
    closed = await events.next(condition("TerminalCover", Retain=True))
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
    acked = await events.next(condition("TerminalCover"))
    assert getattr(acked, "AckedState/Id") is True
    assert acked.Comment.Text == "seen on site"
    assert acked.ClientUserId == "operator"
    again = await acknowledge(gw.client, node, opened.EventId, "")
    assert again.value == ua.StatusCodes.BadConditionBranchAlreadyAcked
