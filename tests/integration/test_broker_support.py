"""The broker test helpers themselves (tests/support/broker.py), so that an uplink test that
fails points at the gateway, not at its tools: the PKI's certificates, mosquitto's stop and
start on the same port (with and without persistence), the choice of a free port, the
subscriber's topic matching, and the black-hole proxy against a plain asyncio echo server.

Nothing sleeps: a silent link is proved silent by an answer that does not come while one sent
through a second, healthy connection does; a connection is proved open by writing to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support import broker as broker_module
from tests.support.broker import (
    BrokerStartError,
    blackhole_proxy,
    documented_acl,
    make_pki,
    mosquitto,
    mqtt_client,
    require_mosquitto,
    subscriber,
    topic_matches,
)

# -- an echo server ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[tuple[int, list[asyncio.StreamWriter]]]:
    """A loopback TCP server that sends back what it gets; its port and its open connections."""
    open_connections: list[asyncio.StreamWriter] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_connections.append(writer)
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], open_connections
    finally:
        server.close()
        for writer in open_connections:
            writer.transport.abort()
        await server.wait_closed()


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 10)


async def test_the_proxy_forwards_both_ways_and_counts_connections() -> None:
    async with echo_server() as (port, _), blackhole_proxy("127.0.0.1", port) as proxy:
        first = await asyncio.open_connection("127.0.0.1", proxy.port)
        second = await asyncio.open_connection("127.0.0.1", proxy.port)
        await proxy.wait_connections(2)
        assert proxy.connections == 2
        assert await roundtrip(*first, b"hello") == b"hello"
        assert await roundtrip(*second, b"x" * 200_000) == b"x" * 200_000
        for _, writer in (first, second):
            writer.close()


async def test_a_stalled_proxy_answers_nothing_and_closes_nothing() -> None:
    """After stall(), a request through the proxy gets no answer, and the connection is not
    closed (no FIN, no RST: reading finds nothing, writing still works), while the server
    itself answers at once on a direct connection made after the stalled request."""
    async with echo_server() as (port, server_side), blackhole_proxy("127.0.0.1", port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await roundtrip(reader, writer, b"before") == b"before"

        proxy.stall()
        assert proxy.stalled
        writer.write(b"lost in the hole")
        await writer.drain()
        pending = asyncio.create_task(reader.read(100))
        # The echo server is fine: a direct request made after the stalled one is answered...
        assert await roundtrip(*await asyncio.open_connection("127.0.0.1", port), b"direct") == b"direct"
        # ...and connections through the stalled proxy are accepted but carry nothing.
        late = await asyncio.open_connection("127.0.0.1", proxy.port)
        await proxy.wait_connections(2)
        late[1].write(b"also lost")
        await late[1].drain()
        # The stalled request's answer did not come, and no end of stream either.
        assert not pending.done()
        assert not reader.at_eof()
        assert not writer.is_closing()
        # The server still has the proxied connection open, too: it saw no end.
        assert not server_side[0].is_closing()
        pending.cancel()
        for w in (writer, late[1]):
            w.transport.abort()


async def test_a_resumed_proxy_forwards_again() -> None:
    async with echo_server() as (port, _), blackhole_proxy("127.0.0.1", port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await roundtrip(reader, writer, b"one") == b"one"
        proxy.stall()
        proxy.resume()
        assert await roundtrip(reader, writer, b"two") == b"two"
        writer.close()


async def test_a_cut_resets_both_ends_and_new_connections_pass() -> None:
    async with echo_server() as (port, _), blackhole_proxy("127.0.0.1", port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await roundtrip(reader, writer, b"one") == b"one"
        assert proxy.cut() == 1
        with pytest.raises(ConnectionResetError):
            # RST, not FIN: a read fails instead of returning the end of the stream.
            await asyncio.wait_for(reader.read(100), 10)
        writer.transport.abort()
        again = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await roundtrip(*again, b"two") == b"two"
        again[1].close()


async def test_the_proxy_closes_everything_at_the_end() -> None:
    async with echo_server() as (port, _):
        async with blackhole_proxy("127.0.0.1", port) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            assert await roundtrip(reader, writer, b"x") == b"x"
            proxy.stall()
            listening = proxy.port
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(100), 10) == b""
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", listening)
        writer.transport.abort()


async def test_a_refused_target_closes_the_clients_connection() -> None:
    async with blackhole_proxy("127.0.0.1", _closed_port()) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(100), 10) == b""
        writer.transport.abort()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- topic filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("opcua/json/#", "opcua/json/data/smx-17/meter1/live", True),
        ("opcua/json/#", "opcua/json", True),
        ("opcua/json/#", "opcua/jsonx/data", False),
        ("opcua/json/data/+/meter1/live", "opcua/json/data/smx-17/meter1/live", True),
        ("opcua/json/data/+/meter1/live", "opcua/json/data/smx-17/meter2/live", False),
        ("opcua/json/data/+", "opcua/json/data/smx-17/meter1", False),
        ("opcua/json/status/+", "opcua/json/status/smx-17", True),
        ("opcua/json/status/smx-17", "opcua/json/status/smx-17", True),
        ("opcua/json/status/smx-17", "opcua/json/status/smx-1", False),
        ("#", "opcua/x", True),
        ("#", "$SYS/broker/uptime", False),
        ("+/broker/uptime", "$SYS/broker/uptime", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("+/+", "a/", True),
        ("a/+/c", "a//c", True),
    ],
)
def test_topic_filters_match_as_mqtt_says(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


# -- the PKI -------------------------------------------------------------------------------------


def test_the_pki_has_what_the_broker_and_the_clients_need(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", clients=["smx-17"])
    assert set(pki.clients) == {"observer", "headend", "smx-17"}
    for key in [pki.server_key, pki.rogue_key, pki.rogue_client_key, *(k for _, k in pki.clients.values())]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    assert server.issuer == ca.subject
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    client = x509.load_pem_x509_certificate(pki.client_cert("smx-17").read_bytes())
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "smx-17"
    assert client.issuer == ca.subject
    assert list(client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    rogue_ca = x509.load_pem_x509_certificate(pki.rogue_ca.read_bytes())
    assert rogue_ca.subject != ca.subject
    assert x509.load_pem_x509_certificate(pki.rogue_cert.read_bytes()).issuer == rogue_ca.subject
    with pytest.raises(KeyError, match="smx-99"):
        pki.client_cert("smx-99")


# -- the broker ----------------------------------------------------------------------------------


async def test_a_plain_broker_passes_messages(tmp_path: Path) -> None:
    require_mosquitto()
    async with mosquitto(tmp_path) as broker:
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        async with subscriber(broker, "t/#") as sub, mqtt_client(broker, "pub") as pub:
            await pub.publish("t/1", b"one", qos=1)
            (message,) = await sub.wait_on("t/1")
        assert message.payload == b"one"
        assert "mosquitto version" in broker.log_text()
    assert not broker.running


@pytest.mark.parametrize("persistence", [True, False])
async def test_a_restarted_broker_has_the_same_port_and_keeps_retained_messages_if_persistent(
    tmp_path: Path, persistence: bool
) -> None:
    """stop() and start(): the same port, the URL unchanged; retained messages survive only
    with persistence (saved at SIGTERM). A subscriber of the stopped broker notices."""
    require_mosquitto()
    async with mosquitto(tmp_path, persistence=persistence) as broker:
        port, url = broker.port, broker.url
        async with mqtt_client(broker, "box") as box:
            await box.publish("status/box", b"retained", qos=1, retain=True)
        async with subscriber(broker, "status/#") as sub:
            await sub.wait_on("status/box")
            assert await broker.stop() == 0
            with pytest.raises(AssertionError, match="connection ended"):
                await sub.wait_on("status/box", count=2)
        assert not broker.running
        await broker.start()
        assert (broker.port, broker.url) == (port, url)
        async with subscriber(broker, "status/#") as sub, mqtt_client(broker, "box") as box:
            # After the retained ones, if any: sent when the broker handled the SUBSCRIBE.
            await box.publish("status/marker", b"", qos=1)
            await sub.wait_on("status/marker")
            retained = [m for m in sub.on("status/box") if m.retain]
            assert len(retained) == (1 if persistence else 0), sub.summary()


async def test_a_killed_broker_starts_again(tmp_path: Path) -> None:
    require_mosquitto()
    async with mosquitto(tmp_path) as broker:
        pid = broker.pid
        broker.kill()
        await broker.start()
        assert broker.pid != pid
        async with mqtt_client(broker, "box") as box:
            await box.publish("x", b"", qos=1)


async def test_a_port_taken_meanwhile_is_given_up_for_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bind race of free_port(): mosquitto fails with "Address already in use" and the
    helper tries the next free port; a fixed port that is taken is an error with the log."""
    require_mosquitto()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy])
        real = broker_module.free_port
        monkeypatch.setattr(broker_module, "free_port", lambda: next(ports, None) or real())
        async with mosquitto(tmp_path / "retry") as broker:
            assert broker.port != busy
            assert broker.matching("Address already in use")
        with pytest.raises(BrokerStartError, match="Address already in use"):
            async with mosquitto(tmp_path / "fixed", port=busy):
                pass


async def test_a_will_is_published_when_the_link_is_cut(tmp_path: Path) -> None:
    """Through the proxy, a box with a Last Will on its status topic (allowed by the
    documented ACL) loses its connection with a reset: the broker publishes the will, retained."""
    require_mosquitto()
    pki = make_pki(tmp_path / "pki", clients=["smx-17"])
    async with (
        mosquitto(tmp_path / "broker", tls=pki, acl=documented_acl()) as broker,
        subscriber(broker, "opcua/json/status/+", tls=pki, client_name="headend") as headend,
        blackhole_proxy(broker.host, broker.port) as proxy,
    ):
        will = aiomqtt.Will("opcua/json/status/smx-17", b'{"Status": "Error"}', qos=1, retain=True)
        async with mqtt_client(broker, "smx-17", tls=pki, port=proxy.port, will=will) as box:
            await box.publish("opcua/json/status/smx-17", b'{"Status": "Operational"}', qos=1, retain=True)
            await headend.wait_on("opcua/json/status/smx-17")
            proxy.cut()
            (_, lost) = await headend.wait_on("opcua/json/status/smx-17", count=2)
            assert lost.payload == b'{"Status": "Error"}'
            # Live delivery has no retain flag (MQTT 5 3.3.1.3); a later subscriber gets it as retained.
            assert not lost.retain
            async with subscriber(broker, "opcua/json/status/+", tls=pki, client_name="headend") as late:
                (kept,) = await late.wait_on("opcua/json/status/smx-17")
                assert (kept.payload, kept.retain) == (b'{"Status": "Error"}', True)
            # The box saw the reset too (its message stream ends with the error).
            with pytest.raises(aiomqtt.MqttError):
                await asyncio.wait_for(_until_the_end(box), 30)


async def _until_the_end(client: aiomqtt.Client) -> None:
    async for _ in client.messages:
        pass
