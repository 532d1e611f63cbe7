"""What OPC UA clients may take of the box ([opcua.limits], DESIGN §4), tried at the edges
with real asyncua clients: the client beyond a limit gets the Bad status OPC 10000-4 names,
intervals below the minimum are revised up, and the gateway goes on serving everybody else.

One gateway with small limits serves the module (demo profile: anonymous sessions on the
None endpoint are enough, limits apply to every session alike).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Client, ua

from gateway.config import OpcUaLimits
from gateway.opcua.ids import SMX_NAMESPACE
from tests.support.harness import Running, demo, running_gateway, status_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMITS = OpcUaLimits(
    max_sessions=3,
    max_subscriptions_per_session=2,
    max_subscriptions=256,
    max_monitored_items=5,
    min_publishing_interval_ms=250.0,
    min_sampling_interval_ms=200.0,
    max_message_size=256 * 1024,
)
VALUES = [f"meter1.1-0:{c}.7.0" for c in (32, 52, 72, 31, 51, 71)]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def running() -> AsyncIterator[Running]:
    config = demo()
    config = replace(
        config, opcua=replace(config.opcua, limits=LIMITS), web=replace(config.web, enabled=False)
    )
    async with running_gateway(config) as running:  # its own client is session 1 of 3
        await running.gateway.pollers["meter1"].wait_snapshot()
        yield running


async def still_serving(running: Running) -> None:
    value = await running.node("meter1.1-0:32.7.0").read_data_value()
    assert value.StatusCode.is_good()
    assert 200 <= value.Value.Value <= 260


async def ignore(_result: Any) -> None:
    """Publish results of the low-level subscriptions below are not looked at."""


def subscription(interval_ms: float) -> ua.CreateSubscriptionParameters:
    return ua.CreateSubscriptionParameters(
        RequestedPublishingInterval=interval_ms, RequestedLifetimeCount=300, RequestedMaxKeepAliveCount=10,
        MaxNotificationsPerPublish=0, PublishingEnabled=True, Priority=0,
    )  # fmt: skip


def sampling(node_id: ua.NodeId, interval: float, handle: int) -> ua.MonitoredItemCreateRequest:
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting,
        RequestedParameters=ua.MonitoringParameters(
            ClientHandle=handle, SamplingInterval=interval, QueueSize=1
        ),
    )


async def test_sessions_beyond_the_limit_are_refused_and_the_others_go_on(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = running.gateway.endpoint
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(LIMITS.max_sessions - 1):  # with the fixture's client: the limit
            await stack.enter_async_context(Client(endpoint, timeout=10))
        refused = Client(endpoint, timeout=10)
        assert await status_of(refused.connect()) == "BadTooManySessions"
        with contextlib.suppress(Exception):
            await refused.disconnect()
        await still_serving(running)
    assert "BadTooManySessions" in caplog.text
    # The sessions are gone with their clients: room for a new one.
    async with Client(endpoint, timeout=10) as again:
        assert await again.get_namespace_index(SMX_NAMESPACE) == running.ns


async def test_subscriptions_per_session_and_the_minimum_publishing_interval(running: Running) -> None:
    uaclient = running.client.uaclient
    params = subscription(10.0)
    first = await uaclient.create_subscription(params, ignore)
    assert first.RevisedPublishingInterval == LIMITS.min_publishing_interval_ms  # 10 ms asked
    slow = replace(params, RequestedPublishingInterval=1000.0)
    second = await uaclient.create_subscription(slow, ignore)
    assert second.RevisedPublishingInterval == 1000.0  # above the minimum: as asked
    try:
        assert await status_of(uaclient.create_subscription(slow, ignore)) == "BadTooManySubscriptions"
        modify = ua.ModifySubscriptionParameters(
            SubscriptionId=second.SubscriptionId, RequestedPublishingInterval=1.0, RequestedLifetimeCount=300,
            RequestedMaxKeepAliveCount=10, MaxNotificationsPerPublish=0, Priority=0,
        )  # fmt: skip
        revised = await uaclient.update_subscription(modify)
        # 1 ms asked: never faster than the minimum (asyncua keeps a subscription's interval).
        assert revised.RevisedPublishingInterval >= LIMITS.min_publishing_interval_ms
        await still_serving(running)
    finally:
        await uaclient.delete_subscriptions([first.SubscriptionId, second.SubscriptionId])


async def test_monitored_items_per_subscription_and_the_minimum_sampling_interval(running: Running) -> None:
    uaclient = running.client.uaclient
    params = subscription(10.0)
    sub = await uaclient.create_subscription(params, ignore)
    try:
        nodes = [ua.NodeId(v, running.ns) for v in VALUES]
        too_many = [sampling(n, 1000.0, k) for k, n in enumerate(nodes)]  # 6 > 5
        batch = ua.CreateMonitoredItemsParameters(SubscriptionId=sub.SubscriptionId, ItemsToCreate=too_many,
                                                  TimestampsToReturn=ua.TimestampsToReturn.Both)  # fmt: skip
        assert await status_of(uaclient.create_monitored_items(batch)) == "BadTooManyMonitoredItems"
        fitting = replace(batch, ItemsToCreate=[sampling(n, 0.0, k) for k, n in enumerate(nodes[:5])])
        results = await uaclient.create_monitored_items(fitting)
        assert all(r.StatusCode.is_good() for r in results)
        # 0 ms asked ("as fast as you can"): never sampled faster than the minimum (asyncua
        # samples data changes at the publishing interval).
        assert min(r.RevisedSamplingInterval for r in results) >= LIMITS.min_sampling_interval_ms
        one_more = replace(batch, ItemsToCreate=[sampling(nodes[5], 1000.0, 9)])
        assert await status_of(uaclient.create_monitored_items(one_more)) == "BadTooManyMonitoredItems"
        await still_serving(running)
    finally:
        await uaclient.delete_subscriptions([sub.SubscriptionId])


async def test_a_request_larger_than_the_message_limit_is_refused(running: Running) -> None:
    endpoint = running.gateway.endpoint
    big = Client(endpoint, timeout=10)
    async with big:
        ns = await big.get_namespace_index(SMX_NAMESPACE)
        huge = ua.DataValue(ua.Variant("x" * (LIMITS.max_message_size + 1), ua.VariantType.String))
        status = await status_of(big.get_node(ua.NodeId("SMX.ExternalData.spot_price", ns)).write_value(huge))
        assert status == "BadRequestTooLarge"
    await still_serving(running)
