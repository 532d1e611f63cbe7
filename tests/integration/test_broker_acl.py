"""The broker side of the uplink, with a real mosquitto running the documented configuration:
docs/mosquitto/mosquitto.conf and its ACL docs/mosquitto/acl, read from the repository at test
time so the documented files are the tested ones (only the port, the paths and the logging are
the test's): TLS with client certificates whose CN is the username (tests/support/broker.py).

A box (CN = its PublisherId) writes only below its own PublisherId and reads only the acks
and replay requests addressed to it; the head-end reads everything and writes acks and replay
requests only. Certificates of another CA are refused both ways. Retained messages and the
MQTT 5 content type, which the uplink relies on, arrive as sent.

"Nothing arrived" is proved without waiting for time to pass: MQTT keeps the order of one
client's messages, so what was dropped is followed, on the same connection, by a message
that is allowed, and once that one is in, the dropped one would have been in before it.
mosquitto also logs every refusal ("Denied PUBLISH"), which the tests wait for as lines.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
import pytest_asyncio

from tests.support.broker import (
    Broker,
    BrokerPki,
    content_type_properties,
    documented_acl,
    exception_chain,
    make_pki,
    mosquitto,
    mqtt_client,
    require_mosquitto,
    subscriber,
)

BOX, OTHER = "smx-17", "smx-18"
#: A refused TLS identity: the broker closes the connection after the handshake (TLS 1.3
#: checks the client's certificate then), and aiomqtt 2.5 notices only when its CONNACK
#: wait times out. The refusal itself is proved by the broker's log line, not by the timeout.
REFUSED_TIMEOUT = 3.0


@pytest.fixture
def pki(tmp_path: Path) -> BrokerPki:
    require_mosquitto()
    return make_pki(tmp_path / "pki", clients=[BOX, OTHER])


@pytest_asyncio.fixture
async def broker(tmp_path: Path, pki: BrokerPki) -> AsyncIterator[Broker]:
    """docs/mosquitto/mosquitto.conf and docs/mosquitto/acl as an operator installs them (only
    the port, the paths and the logging differ)."""
    async with mosquitto(tmp_path / "broker", tls=pki, documented=True) as running:
        yield running


async def test_the_documented_configuration_is_the_one_running(broker: Broker) -> None:
    """The broker of these tests runs docs/mosquitto/mosquitto.conf with docs/mosquitto/acl."""
    conf = broker.conf_path.read_text()
    for line in ("require_certificate true", "use_identity_as_username true", "allow_anonymous false",
                 "tls_version tlsv1.2", "persistence true"):  # fmt: skip
        assert f"\n{line}\n" in conf, line
    assert (broker.config.work / "acl").read_text() == documented_acl()
    # Comments in an ACL are whole lines: anything after a rule would be part of its topic.
    rules = [line for line in documented_acl().splitlines() if line.strip() and not line.startswith("#")]
    assert all(len(line.split()) == (2 if line.startswith("user ") else 3) for line in rules), rules


async def test_a_box_writes_only_below_its_own_publisher_id(broker: Broker, pki: BrokerPki) -> None:
    """smx-17 cannot publish as smx-18 (data, metadata, status), nor acks or replay requests,
    nor a status below its own; the head-end cannot publish data for a box. The broker drops
    each (MQTT 5 PUBACK "not authorized") and the head-end's wildcard subscription sees none."""
    forbidden = [
        f"opcua/json/data/{OTHER}/meter1/live",
        f"opcua/json/metadata/{OTHER}/meter1/live",
        f"opcua/json/status/{OTHER}",
        f"opcua/json/status/{BOX}/extra",
        f"opcua/json/ack/{BOX}",
        f"opcua/json/replay/{BOX}",
        "opcua/json/data",
        f"elsewhere/json/data/{BOX}/meter1/live",
    ]
    allowed = [
        f"opcua/json/data/{BOX}/meter1/live",
        f"opcua/json/metadata/{BOX}/meter1/live",
        f"opcua/json/status/{BOX}",
    ]
    async with subscriber(broker, ["opcua/json/#", "elsewhere/#"], tls=pki, client_name="headend") as headend:
        assert all(not code.is_failure for code in headend.granted.values()), headend.granted
        mark = broker.mark()
        async with mqtt_client(broker, BOX, tls=pki) as box:
            for topic in forbidden:
                await box.publish(topic, b"forged", qos=1)
            for topic in allowed:
                await box.publish(topic, b"own", qos=1)
        async with mqtt_client(broker, "headend", tls=pki) as head:
            await head.publish(f"opcua/json/data/{BOX}/meter1/live", b"forged by the head-end", qos=1)
            await head.publish(f"opcua/json/ack/{BOX}", b"marker", qos=1)

        await headend.wait_on(f"opcua/json/ack/{BOX}")
        assert [m.topic for m in headend.messages] == [*allowed, f"opcua/json/ack/{BOX}"], headend.summary()
        assert all(m.payload != b"forged" and not m.payload.startswith(b"forged") for m in headend.messages)

    for topic in [*forbidden, f"opcua/json/data/{BOX}/meter1/live"]:
        await broker.wait_log(rf"Denied PUBLISH from .*'{re.escape(topic)}'", since=mark)
    # mosquitto 2.0 answers a denied QoS 1 PUBLISH of MQTT 5 with PUBACK reason 0x87 (135),
    # "Not authorized"; aiomqtt 2.5 does not pass that code on (publish() returns as usual).
    await broker.wait_log(r"Sending PUBACK to .*rc135\)", since=mark, count=len(forbidden) + 1)


async def test_a_box_reads_only_its_own_acks_and_replay_requests(broker: Broker, pki: BrokerPki) -> None:
    """smx-17 may subscribe with wildcards (the broker grants every subscription), but only
    the messages its ACL lets it read are delivered: its own ack and replay topics, not
    smx-18's, and no other box's data."""
    async with subscriber(broker, ["opcua/json/#"], tls=pki, client_name=BOX) as box:
        async with mqtt_client(broker, OTHER, tls=pki) as other:
            await other.publish(f"opcua/json/data/{OTHER}/meter1/live", b"other's reading", qos=1)
        async with mqtt_client(broker, "headend", tls=pki) as head:
            for name in (OTHER, BOX):
                await head.publish(f"opcua/json/ack/{name}", f"ack for {name}".encode(), qos=1)
                await head.publish(f"opcua/json/replay/{name}", f"replay for {name}".encode(), qos=1)

        await box.wait_on(f"opcua/json/replay/{BOX}")
        assert [(m.topic, m.payload) for m in box.messages] == [
            (f"opcua/json/ack/{BOX}", f"ack for {BOX}".encode()),
            (f"opcua/json/replay/{BOX}", f"replay for {BOX}".encode()),
        ], box.summary()


async def test_a_client_certificate_of_another_ca_is_refused(broker: Broker, pki: BrokerPki) -> None:
    """A certificate of the rogue CA, even with the head-end's CN, does not get a connection;
    nor does a client without any certificate. The broker logs why."""
    mark = broker.mark()
    rogue = pki.client_context("headend", rogue_identity=True)
    with pytest.raises(aiomqtt.MqttError):
        async with mqtt_client(broker, "rogue", context=rogue, timeout=REFUSED_TIMEOUT):
            pass
    await broker.wait_log(r"certificate verify failed", since=mark)
    assert not broker.matching(r"New client connected", since=mark)

    mark = broker.mark()
    anonymous = ssl.create_default_context(cafile=pki.ca)
    with pytest.raises(aiomqtt.MqttError):
        async with mqtt_client(broker, "nobody", context=anonymous, timeout=REFUSED_TIMEOUT):
            pass
    await broker.wait_log(r"peer did not return a certificate", since=mark)
    assert not broker.matching(r"New client connected", since=mark)


async def test_a_broker_with_a_certificate_of_another_ca_is_refused(tmp_path: Path, pki: BrokerPki) -> None:
    """A box that trusts the operator's CA does not talk to a broker whose certificate comes
    from another CA: the TLS handshake fails on the client's side, before any MQTT."""
    async with mosquitto(tmp_path / "rogue-broker", tls=pki, rogue=True) as rogue:
        with pytest.raises(aiomqtt.MqttError) as caught:
            async with mqtt_client(rogue, BOX, tls=pki):
                pass
        chain = list(exception_chain(caught.value))
        assert any(isinstance(error, ssl.SSLCertVerificationError) for error in chain), chain
        assert not rogue.matching(r"New client connected")


async def test_retained_messages_and_the_content_type_arrive_as_sent(broker: Broker, pki: BrokerPki) -> None:
    """What the uplink relies on: metadata and status are published retained, so a head-end
    that subscribes later gets the last of each (flagged retained); live data is not retained;
    the MQTT 5 content type ``application/json`` goes through unchanged."""
    metadata = f"opcua/json/metadata/{BOX}/meter1/live"
    status = f"opcua/json/status/{BOX}"
    live = f"opcua/json/data/{BOX}/meter1/live"
    json_type = content_type_properties("application/json")
    async with mqtt_client(broker, BOX, tls=pki) as box:
        await box.publish(metadata, b'{"MessageType": "ua-metadata", "old": true}', qos=1, retain=True)
        await box.publish(
            metadata, b'{"MessageType": "ua-metadata"}', qos=1, retain=True, properties=json_type
        )
        await box.publish(status, b'{"MessageType": "ua-status"}', qos=1, retain=True, properties=json_type)
        await box.publish(live, b'{"MessageType": "ua-data", "before": true}', qos=1, properties=json_type)

        async with subscriber(broker, ["opcua/json/#"], tls=pki, client_name="headend") as headend:
            await headend.wait_for(lambda got: len(got) >= 2)
            retained = {m.topic: m for m in headend.messages}
            assert set(retained) == {metadata, status}, headend.summary()
            assert retained[metadata].payload == b'{"MessageType": "ua-metadata"}'
            assert all(m.retain and m.content_type == "application/json" for m in headend.messages)

            await box.publish(live, b'{"MessageType": "ua-data"}', qos=1, properties=json_type)
            (message,) = await headend.wait_on(live)
            assert message.payload == b'{"MessageType": "ua-data"}'
            assert not message.retain
            assert message.qos == 1
            assert message.content_type == "application/json"
            assert len(headend.messages) == 3, headend.summary()


async def test_the_brokers_refusals_do_not_end_the_boxs_connection(broker: Broker, pki: BrokerPki) -> None:
    """A denied PUBLISH (QoS 1 or 0) is dropped and the box stays connected (mosquitto 2.0 does
    not disconnect it): a misconfigured topic does not show as a broken link."""
    async with (
        subscriber(broker, [f"opcua/json/data/{BOX}/#"], tls=pki, client_name="headend") as headend,
        mqtt_client(broker, BOX, tls=pki) as box,
    ):
        mark = broker.mark()
        await box.publish(f"opcua/json/data/{OTHER}/meter1/live", b"forged", qos=1)
        await box.publish(f"opcua/json/data/{OTHER}/meter1/live", b"forged", qos=0)
        # Sent after the refused ones on the same connection: its arrival shows the connection lived on.
        await box.publish(f"opcua/json/data/{BOX}/meter1/live", b"still here", qos=1)
        await headend.wait_on(f"opcua/json/data/{BOX}/#")
        await broker.wait_log(r"Denied PUBLISH", since=mark, count=2)
        assert not broker.matching(rf"Client {BOX}\S* disconnected", since=mark)


async def test_the_broker_log_names_the_certificate_identity(broker: Broker, pki: BrokerPki) -> None:
    """use_identity_as_username: the broker's username is the certificate's CN, whatever
    username the client sends."""
    mark = broker.mark()
    async with mqtt_client(broker, BOX, tls=pki, username=OTHER, password="ignored"):
        line = await broker.wait_log(r"New client connected", since=mark)
    assert f"u'{BOX}'" in line, line
