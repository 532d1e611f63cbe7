"""Nothing lost: the archive is the outbox, across a broker outage, a killed gateway and
the consumer's acknowledgements (issue 16, "Nothing lost").

The observer is the fleet: an MQTT 5 client with a persistent session (clean start off, a
session expiry) on a broker with persistence, so what the gateway publishes while the
observer reconnects after a broker restart waits for it in the broker, as it would for a
head-end. What the gateway publishes while the broker is down cannot arrive anywhere:
the test proves it arrives afterwards, from the archive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.archive.files import ArchiveReader
from gateway.clock import ScaledClock
from gateway.pubsub import codec
from gateway.uplink.outbox import StateFile
from gateway.uplink.writers import BY_NAME, writer_fields
from tests.support.broker import Broker, Received, mosquitto, require_mosquitto, subscriber
from tests.support.harness import demo, running_gateway
from tests.support.processes import child, gateway_config, simulator

PUBLISHER = "smx-test"
SPEED = 8.0
REPLAYED = ("minute", "registers", "lp1", "lp2", "events")
STREAM_COLUMNS = {name: BY_NAME[name] for name in REPLAYED}


@pytest.fixture(autouse=True)
def _mosquitto_installed() -> None:
    require_mosquitto()


@dataclass
class Fleet:
    """A persistent-session observer of one publisher's data: reconnects by itself after a
    broker restart and keeps every DataSetMessage in arrival order per writer."""

    broker: Broker
    identifier: str = field(default_factory=lambda: f"fleet-{os.getpid()}")
    records: dict[str, list[codec.DataSetMessage]] = field(default_factory=dict)
    statuses: list[codec.StatusMessage] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def run(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host, self.broker.port, identifier=self.identifier,
                    protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
                ) as client:  # fmt: skip
                    await client.subscribe(f"opcua/json/data/{PUBLISHER}/#", qos=1)
                    await client.subscribe(f"opcua/json/status/{PUBLISHER}", qos=1)
                    async for message in client.messages:
                        await self._take(str(message.topic), bytes(message.payload))  # type: ignore[arg-type]
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)  # the broker is away: try again (a refused connect is quick)

    async def _take(self, topic: str, payload: bytes) -> None:
        msg = codec.decode(payload)
        if isinstance(msg, codec.NetworkMessage):
            for d in msg.messages:
                self.records.setdefault(d.writer_name, []).append(d)
        elif isinstance(msg, codec.StatusMessage):
            self.statuses.append(msg)
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 120) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    def times(self, writer: str) -> list[datetime]:
        return [d.timestamp for d in self.records.get(writer, [])]


@contextlib.asynccontextmanager
async def fleet(broker: Broker) -> AsyncIterator[Fleet]:
    observer = Fleet(broker)
    task = asyncio.create_task(observer.run())
    try:
        # Subscribed before anything is published: a retained status proves the session is up.
        yield observer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def archived(reader: ArchiveReader, writer: str, start: datetime, end: datetime) -> list[datetime]:
    """The times of ``writer``'s archived records in ``[start, end]`` (events repeat a time)."""
    spec = STREAM_COLUMNS[writer]
    columns = [f.column for f in writer_fields(demo().meters[0], spec) if f.column is not None]
    return [t for t, _s, _v in reader.read_columns(str(spec.stream), columns, start, end)]


def check_delivery(received: list[datetime], stored: list[datetime], writer: str) -> int:
    """Every stored record arrived at least once and in order; the duplicates (records sent
    again after a restart or reconnect) are counted and returned."""
    missing = Counter(stored) - Counter(received)
    assert not missing, f"{writer}: {sum(missing.values())} records never arrived: {sorted(missing)[:5]}"
    # In order per writer: a replay after a reconnect starts again at the cursor, so the
    # sequence may step back once per reconnect, never past what was already delivered
    # before it (no hole), and new records only come in time order.
    seen: Counter[datetime] = Counter()
    high: datetime | None = None
    duplicates = 0
    for t in received:
        seen[t] += 1
        if high is not None and t < high:
            duplicates += 1
            assert seen[t] > 1 or t not in stored, f"{writer}: {t} arrived after {high} for the first time"
        else:
            high = t
    return duplicates


async def until(predicate: Callable[[], bool], timeout: float = 120) -> None:
    """Until ``predicate()`` holds, looked at ten times a second: it reads archive files,
    often another process's, and they notify nobody."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - files, no event to wait on
            await asyncio.sleep(0.1)


def caught_up(
    observer: Fleet, reader: ArchiveReader, writers: tuple[str, ...] = REPLAYED
) -> Callable[[], bool]:
    """Whether the fleet has each writer's stream up to the archive's newest record."""

    def done() -> bool:
        for writer in writers:
            last = reader.last_time(str(STREAM_COLUMNS[writer].stream))
            if last is not None and (not observer.times(writer) or max(observer.times(writer)) < last):
                return False
        return True

    return done


@pytest.mark.slow
async def test_a_five_minute_broker_outage_loses_nothing(tmp_path: Path) -> None:
    clock = ScaledClock(datetime.now(UTC), SPEED)
    config = demo()
    config = replace(
        config,
        archive=replace(config.archive, path=str(tmp_path / "archive")),
        upstream=replace(config.upstream, broker="", publisher_id=PUBLISHER),
    )
    async with mosquitto(tmp_path / "broker", persistence=True) as broker, fleet(broker) as observer:
        up = replace(config.upstream, broker=broker.url, live_interval_s=5, initial_days=2.0,
                     replay_messages_per_s=100.0, replay_bytes_per_s=2e6, reconnect_first_s=2.0,
                     reconnect_max_s=4.0)  # fmt: skip
        async with running_gateway(replace(config, upstream=up), clock) as running:
            gateway = running.gateway
            uplink = gateway.uplink
            assert uplink is not None
            reader = gateway.recorders["meter1"].archive.reader
            await observer.wait_for(lambda: "minute" in observer.records and "lp1" in observer.records)
            await until(caught_up(observer, reader))

            # Two minutes before a quarter hour: the outage spans a load-profile period's end.
            now = clock.now()
            quarter = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0) + timedelta(
                minutes=15
            )
            if quarter - now > timedelta(minutes=2):
                clock.jump((quarter - timedelta(minutes=2) - now).total_seconds())
            outage_start = clock.now()
            await broker.stop()
            # While the broker is away the meter logs two events and the minutes go by.
            sim = gateway.simulators["meter1"]
            sim.advance()
            sim.physics.open_terminal_cover(sim.now())
            await clock.sleep(150)
            sim.advance()
            sim.physics.close_terminal_cover(sim.now())
            await clock.sleep(150)
            assert uplink.status().state in ("connecting", "waiting")
            outage_end = clock.now()
            await broker.start()

            # Afterwards: the events are read and archived, and the fleet catches up.
            await until(lambda: len(archived(reader, "events", outage_start, outage_end)) >= 2)
            await until(lambda: bool(archived(reader, "lp1", outage_start, clock.now())))
            await until(caught_up(observer, reader))
            window = (outage_start - timedelta(minutes=2), clock.now())
            report = {}
            for writer in REPLAYED:
                stored = archived(reader, writer, *window)
                received = [t for t in observer.times(writer) if window[0] <= t <= window[1]]
                report[writer] = (len(stored), check_delivery(received, stored, writer))
            # The window did hold what the outage is about.
            assert report["lp1"][0] >= 1
            assert report["events"][0] >= 2
            assert report["minute"][0] >= 5
            # Duplicates only in the overlap: at most the batch in flight when the link broke.
            assert all(dups <= up.batch for _n, dups in report.values()), report
            print(f"outage of {(outage_end - outage_start).total_seconds():.0f} s (gateway time): "
                  f"records / duplicates per writer {report}")  # fmt: skip


def _config_with_upstream(work: Path, meter_url: str, broker: Broker, **upstream: Any) -> Path:
    """The processes' configuration (:func:`gateway_config`) with an ``[upstream]`` table."""
    path = gateway_config(work, meter_url)
    lines = [f'broker = "{broker.url}"', f'publisher_id = "{PUBLISHER}"']
    for key, value in upstream.items():
        lines.append(f"{key} = {value!r}".replace("'", '"').replace("True", "true").replace("False", "false"))
    with path.open("a") as f:
        f.write("[upstream]\n" + "\n".join(lines) + "\n")
    return path


@pytest.mark.slow
async def test_a_gateway_killed_in_the_middle_of_a_replay_resumes_from_its_cursor(tmp_path: Path) -> None:
    args = ("-m", "gateway", "run", "--config", str(tmp_path / "smx.toml"), "--port", "0", "--web-port", "0")
    announce = "SMX gateway serving OPC UA at "
    reader = ArchiveReader(tmp_path / "archive", "meter1")
    async with (
        mosquitto(tmp_path / "broker", persistence=True) as broker,
        fleet(broker) as observer,
        simulator(tmp_path) as (_sim, meter_url),
    ):
        # First the gateway fills its archive with a day of profiles and events, without
        # an uplink: the backlog the next start replays.
        gateway_config(tmp_path, meter_url)
        async with child(*args, cwd=tmp_path, announce=announce):
            recent = datetime.now(UTC) - timedelta(minutes=30)
            await until(lambda: (reader.last_time("lp1") or datetime.min.replace(tzinfo=UTC)) >= recent)
        stored_before = len(archived(reader, "lp1", datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC)))
        assert stored_before >= 96
        # Then a slow replay (4 records a message, 4 messages a second), killed mid-way.
        _config_with_upstream(
            tmp_path, meter_url, broker, initial_days=2.0, batch=4, replay_messages_per_s=4.0,
            writers=["lp1", "events"],
        )  # fmt: skip
        async with child(*args, cwd=tmp_path, announce=announce) as first:
            await observer.wait_for(lambda: len(observer.times("lp1")) >= 30)
            first.process.send_signal(signal.SIGKILL)
            await first.process.wait()
        # The broker tells the fleet the box died: its Will, status Error.
        await observer.wait_for(
            lambda: bool(observer.statuses) and observer.statuses[-1].status is codec.PubSubState.ERROR
        )
        before_kill = len(observer.times("lp1"))
        assert before_kill < stored_before  # the kill came in the middle of the replay
        async with child(*args, cwd=tmp_path, announce=announce):
            await observer.wait_for(lambda: observer.statuses[-1].status is codec.PubSubState.OPERATIONAL)
            await until(caught_up(observer, reader, ("lp1", "events")))
    everything = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    stored = archived(reader, "lp1", *everything)
    duplicates = check_delivery(observer.times("lp1"), stored, "lp1")
    # Only what was sent but not yet recorded as delivered comes twice: the cursor is saved
    # after every PUBACK, so at most the batch in flight.
    assert duplicates <= 4, (duplicates, before_kill)
    check_delivery(observer.times("events"), archived(reader, "events", *everything), "events")
    print(f"killed after {before_kill} of {stored_before} lp1 records; {len(stored)} stored, "
          f"{duplicates} sent twice")  # fmt: skip


def lp1_times(messages: list[Received]) -> list[datetime]:
    out = []
    for m in messages:
        gzip = m.content_type == codec.CONTENT_TYPE_GZIP
        msg = codec.decode(codec.decompress(m.payload) if gzip else m.payload)
        assert isinstance(msg, codec.NetworkMessage)
        out += [d.timestamp for d in msg.messages]
    return out


@pytest.mark.slow
async def test_with_consumer_acknowledgements_only_the_unacknowledged_is_replayed(tmp_path: Path) -> None:
    clock = ScaledClock(datetime.now(UTC), SPEED)
    config = demo()
    archive = replace(config.archive, path=str(tmp_path / "archive"))
    async with mosquitto(tmp_path / "broker") as broker:
        up = replace(
            config.upstream, broker=broker.url, publisher_id=PUBLISHER, ack="consumer", initial_days=2.0,
            writers=("lp1",), replay_messages_per_s=50.0, replay_bytes_per_s=2e6, batch=8,
        )  # fmt: skip
        config = replace(config, archive=archive, upstream=up)
        topic = f"opcua/json/data/{PUBLISHER}/meter1/lp1"
        acked = 5
        async with (
            subscriber(broker, topic) as first_run,
            subscriber(broker, "#", client_name="headend") as head,
            running_gateway(config, clock) as running,
        ):
            uplink = running.gateway.uplink
            assert uplink is not None
            # The head-end stores each message and acknowledges it, five times; then it
            # stops acknowledging (it crashed, say).
            for n in range(1, acked + 1):
                await first_run.wait_for(lambda msgs, n=n: len(msgs) >= n)
                through = max(lp1_times(first_run.on(topic)[n - 1 : n]))
                await head.client.publish(
                    f"opcua/json/ack/{PUBLISHER}", codec.encode(codec.Ack(104, through)), qos=1
                )
                await until(lambda t=through: any(w.last_acknowledged == t for w in uplink.status().writers))
            # Stop and wait: one more message goes out, unacknowledged, and no other after it
            # while the acknowledgement is due (the next snapshots show the uplink waiting).
            await first_run.wait_for(lambda msgs: len(msgs) >= acked + 1)
            poller = running.gateway.pollers["meter1"]
            for _ in range(5):
                await poller.wait_snapshot()
            assert len(first_run.on(topic)) == acked + 1
            sent = lp1_times(first_run.on(topic))
            # Kept on disk: the cursor survives the gateway.
            state = StateFile(tmp_path / "archive" / "meter1" / "uplink.json")
            await until(lambda: state.load()["lp1"].cursor.time == through)
        # A new gateway on the same archive: it sends again what was not acknowledged (the
        # broker took all of it: in broker mode it would not come again).
        async with subscriber(broker, topic) as second_run, running_gateway(config, clock):
            await second_run.wait_for(lambda msgs: len(msgs) >= 1)
        again = lp1_times(second_run.on(topic))
        assert min(again) > through
        assert min(again) == min(t for t in sent if t > through)


@pytest.mark.slow
async def test_a_replay_request_sends_the_range_again_from_the_archive(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ScaledClock(datetime.now(UTC), SPEED)
    config = demo()
    archive = replace(config.archive, path=str(tmp_path / "archive"))
    async with mosquitto(tmp_path / "broker") as broker:
        up = replace(
            config.upstream, broker=broker.url, publisher_id=PUBLISHER, initial_days=2.0, writers=("lp1",),
            replay_messages_per_s=50.0, replay_bytes_per_s=2e6, compress=True,
        )  # fmt: skip
        config = replace(config, archive=archive, upstream=up)
        topic = f"opcua/json/data/{PUBLISHER}/meter1/lp1"
        async with (
            subscriber(broker, topic) as fleet_side,
            subscriber(broker, "#", client_name="headend") as head,
            running_gateway(config, clock) as running,
        ):
            uplink = running.gateway.uplink
            assert uplink is not None
            reader = running.gateway.recorders["meter1"].archive.reader
            await fleet_side.wait_for(lambda msgs: len(msgs) >= 10)
            first = lp1_times(fleet_side.on(topic))
            start, end = first[2], first[6]
            cursor_before = next(w for w in uplink.status().writers if w.writer == "lp1").last_delivered
            seen = len(fleet_side.messages)
            # A malformed request is refused with a log line; the uplink goes on.
            with caplog.at_level(logging.WARNING, logger="gateway.uplink.service"):
                await head.client.publish(
                    f"opcua/json/replay/{PUBLISHER}", b'{"DataSetWriterId": 104}', qos=1
                )
                request = codec.ReplayRequest(104, start, end)
                await head.client.publish(f"opcua/json/replay/{PUBLISHER}", codec.encode(request), qos=1)
                await fleet_side.wait_for(lambda msgs: end in lp1_times(msgs[seen:]))
            assert any(
                "refused a message" in r.getMessage() and "From" in r.getMessage() for r in caplog.records
            )
            again = [t for t in lp1_times(fleet_side.messages[seen:]) if t <= end]
            columns = [(str(f.property("Obis")), "") for f in uplink_fields("lp1") if f.property("Obis")]
            stored = [t for t, _s, _v in reader.read_columns("lp1", columns, start, end)]
            assert again == stored  # exactly the range, in order
            # compress = true: the replay travels gzipped, marked so (MQTT 5 content type).
            assert {m.content_type for m in fleet_side.messages} == {codec.CONTENT_TYPE_GZIP}
            assert len(stored) == 5
            # The cursors did not move back: a request is not a delivery problem.
            after = next(w for w in uplink.status().writers if w.writer == "lp1").last_delivered
            assert cursor_before is not None
            assert after is not None
            assert after >= cursor_before


def uplink_fields(writer: str) -> list[codec.FieldMetaData]:
    return [f.meta for f in writer_fields(demo().meters[0], BY_NAME[writer])]
