"""The uplink's link discipline and security against a real mosquitto (issue 16, points 3 and 4):
a link that silently drops packets, a broker whose certificate is from another CA, and a box
that tries to publish under another box's PublisherId through the documented ACL."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.clock import ScaledClock
from gateway.config import GatewayConfig, UpstreamConfig
from gateway.pubsub import codec
from gateway.uplink import mqtt
from tests.support.broker import (
    BrokerPki,
    blackhole_proxy,
    documented_acl,
    make_pki,
    mosquitto,
    require_mosquitto,
    subscriber,
)
from tests.support.harness import Running, demo, running_gateway


@pytest.fixture(autouse=True)
def _mosquitto_installed() -> None:
    require_mosquitto()


def config_for(tmp_path: Path, **upstream: Any) -> GatewayConfig:
    config = demo()
    archive = replace(config.archive, path=str(tmp_path / "archive"))
    base = UpstreamConfig(live_interval_s=1, initial_days=0.5, reconnect_first_s=2.0, reconnect_max_s=4.0)
    return replace(config, archive=archive, upstream=replace(base, **upstream))


def tls_upstream(pki: BrokerPki, port: int, name: str, **changes: Any) -> dict[str, Any]:
    return {
        "broker": f"mqtts://127.0.0.1:{port}",
        "ca": str(pki.ca),
        "certificate": str(pki.client_cert(name)),
        "key": str(pki.client_key(name)),
        **changes,
    }


async def until(running: Running, predicate: Any, timeout: float = 60) -> None:
    """Until ``predicate()`` holds, looked at whenever the uplink's state changes."""
    uplink = running.gateway.uplink
    assert uplink is not None
    async with asyncio.timeout(timeout):
        while not predicate():
            await uplink.changed()


@pytest.mark.slow
async def test_a_link_that_silently_drops_packets_is_noticed_and_made_again(tmp_path: Path) -> None:
    keepalive = 3
    async with (
        mosquitto(tmp_path / "broker") as broker,
        blackhole_proxy(broker.host, broker.port) as proxy,
        subscriber(broker, "opcua/json/#") as fleet,
    ):
        config = config_for(
            tmp_path, broker=f"mqtt://127.0.0.1:{proxy.port}", publisher_id="smx-hole", keepalive_s=keepalive
        )
        async with running_gateway(config, ScaledClock(datetime.now(UTC), 1.0)) as running:
            uplink = running.gateway.uplink
            assert uplink is not None
            await asyncio.wait_for(uplink.connected.wait(), 60)
            connects = uplink.status().connects
            proxy.stall()  # no FIN, no RST: packets vanish
            stalled = time.monotonic()
            await until(running, lambda: uplink.status().state != "connected", timeout=10 * keepalive)
            noticed = time.monotonic() - stalled
            assert "keepalive" in uplink.status().last_error
            # The strict bound (1.5 keepalives) is the watchdog's, proven in virtual time
            # (tests/unit/test_uplink.py); here a real link: noticed in keepalives, not in
            # the minutes TCP takes to give up.
            assert noticed < 4 * keepalive, noticed
            proxy.resume()
            await until(
                running, lambda: uplink.status().connects > connects and uplink.status().state == "connected"
            )
            # Announced again (status Operational), live data flows again, and the retained
            # metadata, unchanged, was not sent a second time (~85 kB a reconnect over 3G).
            status = "opcua/json/status/smx-hole"
            await fleet.wait_for(lambda msgs: len([m for m in msgs if m.topic == status]) >= 2)
            again = len(fleet.messages)
            await fleet.wait_for(lambda msgs: any("/data/" in m.topic for m in msgs[again:]))
            assert len(fleet.on("opcua/json/metadata/#")) == 6
            print(f"silent link noticed after {noticed:.2f} s (keepalive {keepalive} s)")


@pytest.mark.slow
async def test_a_broker_with_a_certificate_from_another_ca_is_refused_with_a_clear_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = make_pki(tmp_path / "pki", clients=["smx-17"])
    async with mosquitto(tmp_path / "broker", tls=pki, rogue=True) as broker:
        config = config_for(tmp_path, **tls_upstream(pki, broker.port, "smx-17", publisher_id="smx-17"))
        with caplog.at_level(logging.ERROR, logger="gateway.uplink.service"):
            async with running_gateway(config, ScaledClock(datetime.now(UTC), 1.0)) as running:
                uplink = running.gateway.uplink
                assert uplink is not None
                await until(running, lambda: uplink.failures >= 1)
                assert not uplink.connected.is_set()
                assert uplink.status().last_error.startswith("TLS")
                assert "certificate verify failed" in uplink.status().last_error
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.uplink.service"]
    assert any("TLS" in line and "certificate verify failed" in line for line in lines), lines
    assert len(lines) == 1  # said once, not at every retry


@pytest.mark.slow
async def test_with_tls_and_the_documented_acl_a_box_publishes_only_below_its_own_id(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", clients=["smx-17"])
    async with (
        mosquitto(tmp_path / "broker", tls=pki, acl=documented_acl()) as broker,
        subscriber(broker, "opcua/json/#", tls=pki, client_name="headend") as headend,
    ):
        # The box's certificate names smx-17: as smx-17 it is heard...
        good = config_for(
            tmp_path / "good", **tls_upstream(pki, broker.port, "smx-17", publisher_id="smx-17")
        )
        async with running_gateway(good, ScaledClock(datetime.now(UTC), 1.0)):
            await headend.wait_on("opcua/json/data/smx-17/meter1/live")
        status = headend.on("opcua/json/status/smx-17")
        assert isinstance(msg := codec.decode(status[0].payload), codec.StatusMessage)
        assert msg.status is codec.PubSubState.OPERATIONAL

        # ... posing as smx-18 it is dropped by the broker, and the gateway says so.
        bad = config_for(tmp_path / "bad", **tls_upstream(pki, broker.port, "smx-17", publisher_id="smx-18"))
        async with running_gateway(bad, ScaledClock(datetime.now(UTC), 1.0)) as running:
            uplink = running.gateway.uplink
            assert uplink is not None
            await until(running, lambda: "refused" in uplink.status().last_error)
            assert "Not authorized" in uplink.status().last_error
            # Nothing counts as delivered: the cursors did not move.
            await uplink.refresh_backlog(force=True)
            assert all(w.last_delivered is None for w in uplink.status().writers if w.writer != "live")
            # The head-end heard nothing from smx-18: a marker published after the refused
            # messages (the broker answered them, so it handled them first) arrives alone.
            await headend.client.publish("opcua/json/ack/smx-18", b'{"marker": 1}', qos=1)
            await headend.wait_on("opcua/json/ack/smx-18")
        assert not [m for m in headend.messages if "/smx-18" in m.topic and "/ack/" not in m.topic]


class _StoppedAtTheAck(mqtt.Client):
    """Cancels :attr:`victim` as each acknowledgement is taken: the moment Python 3.11's
    ``asyncio.wait_for`` (what aiomqtt waits with) returns the result instead of raising."""

    victim: asyncio.Task[Any] | None = None

    def _stop(self) -> None:
        if self.victim is not None:
            self.victim.cancel()

    def _on_publish(self, *args: Any) -> None:
        super()._on_publish(*args)
        self._stop()

    def _on_subscribe(self, *args: Any) -> None:
        super()._on_subscribe(*args)
        self._stop()

    def _on_unsubscribe(self, *args: Any) -> None:
        super()._on_unsubscribe(*args)
        self._stop()


async def test_a_stop_that_comes_with_the_brokers_answer_is_never_lost(tmp_path: Path) -> None:
    """The uplink's and the head-end's client: a publish, a subscribe or an unsubscribe
    cancelled as the broker's answer arrives raises the cancellation (a loop around it ends;
    with aiomqtt's own waits it ran on, and a gateway being stopped waited for it forever)."""
    async with mosquitto(tmp_path / "broker") as broker:
        client = _StoppedAtTheAck(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5)
        async with client:
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "publish": lambda: client.publish("smx/t", b"x", qos=1),
                "subscribe": lambda: client.subscribe("smx/t", qos=1),
                "unsubscribe": lambda: client.unsubscribe("smx/t"),
            }
            for name, call in calls.items():
                task = asyncio.create_task(call())
                client.victim = task
                done, _ = await asyncio.wait({task}, timeout=30)
                client.victim = None
                assert done, f"{name}: no answer from the broker"
                assert task.cancelled(), f"{name}: the cancellation was lost ({task!r})"
