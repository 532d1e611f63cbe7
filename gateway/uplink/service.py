"""The uplink: every meter's data to the fleet's MQTT broker as OPC UA PubSub JSON.

One task (:meth:`Uplink.run`) owns the broker connection. It connects (TLS, client
certificate, the MQTT Will: status ``Error``, retained), announces itself (status
``Operational`` and every writer's metadata, retained), and then, until the link fails:

* **live**: every ``live_interval_s`` the newest snapshot of each meter, QoS 0, key frame
  every ``key_frame_count`` messages, delta frames otherwise; never replayed;
* **replay**: each archived stream's records after its cursor, oldest first, ``batch``
  records per NetworkMessage, QoS 1, paced by ``replay_messages_per_s`` and
  ``replay_bytes_per_s`` so a day's backlog never starves the live writer; the cursor
  moves on PUBACK (``ack = "broker"``) or on the consumer's acknowledgement
  (``ack = "consumer"``) and is kept on disk (:mod:`gateway.uplink.outbox`);
* **requests**: acknowledgements and replay requests from the fleet;
* **watchdog**: a round trip to the broker (an UNSUBSCRIBE of a topic never subscribed:
  no message to anybody) every half keepalive, given half a keepalive to answer, so a
  link that silently drops packets is noticed within one keepalive (the issue asks 1.5).

A failure ends the connection; it is tried again after a :class:`~gateway.uplink.link.Backoff`
delay with jitter. Stopping publishes status ``Disabled`` before disconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.archive.files import ArchiveReader
from gateway.clock import Clock
from gateway.config import GatewayConfig, MeterConfig, UpstreamConfig
from gateway.meter.feed import Delivery
from gateway.meter.model import EventRecord, ProfileData, Snapshot
from gateway.pubsub import codec
from gateway.pubsub.codec import (
    Ack,
    ConfigurationVersion,
    MetaDataMessage,
    NetworkMessage,
    PubSubState,
    ReplayRequest,
    StatusMessage,
)
from gateway.pubsub.topics import Topics, publisher_id_from_uri
from gateway.security.pki import Pki
from gateway.uplink import mqtt
from gateway.uplink.link import Backoff, BrokerUrl, TokenBucket, tls_context
from gateway.uplink.outbox import (
    ALL,
    STATE_FILE,
    Position,
    Row,
    StateFile,
    WriterState,
    initial_position,
    read_after,
)
from gateway.uplink.status import UplinkStatus, WriterStatus
from gateway.uplink.writers import (
    BY_NAME,
    Field,
    LiveFrames,
    Writer,
    WriterSpec,
    archive_columns,
    dataset_message,
    fields_digest,
    metadata,
    record_payload,
    version_time,
    writer_fields,
    writer_id,
)

log = logging.getLogger(__name__)

#: Seconds a clean stop waits to say ``Disabled`` before it disconnects anyway.
_GOODBYE_S = 3.0
#: Seconds between two counts of the backlog on disk (a count reads the day files).
_BACKLOG_EVERY_S = 30.0
#: Seconds after which a reconnect publishes the (retained) metadata again even unchanged:
#: a broker restarted without persistence has lost it.
METADATA_EVERY_S = 6 * 3600.0
#: Largest backlog counted exactly; more shows as this number.
BACKLOG_CAP = 100_000


class LinkDead(Exception):
    """The broker stopped answering: the connection is given up and made again."""


class PublishRefused(Exception):
    """The broker took a message but refused it (MQTT 5 PUBACK with a failure reason)."""


class _Client(mqtt.Client):
    """aiomqtt's client (its waits never lose a cancellation), keeping the broker's refusals.

    A broker whose ACL denies a topic answers a QoS 1 PUBLISH with a PUBACK whose reason
    code is 0x87 "Not authorized" (MQTT 5 §3.4.2.1; mosquitto does, and stays connected).
    aiomqtt drops the reason: without this the cursor would move past records the fleet
    never got.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refusals = 0
        self.last_refusal = ""

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            self.refusals += 1  # counted before the publish's waiter wakes
            self.last_refusal = str(reason_code)
        super()._on_publish(client, userdata, mid, reason_code, properties)


@dataclass(slots=True)
class _Writer:
    """The uplink's working state of one writer of one meter."""

    meter: MeterConfig
    spec: WriterSpec
    id: int
    fields: tuple[Field, ...]
    columns: list[tuple[str, str]]
    state: WriterState
    #: Where the next replayed message starts (the cursor, or ahead of it while acks are due).
    sent: Position
    sequence: int = 0
    last_progress: float = 0.0
    status: WriterStatus = field(default_factory=lambda: WriterStatus("", "", 0))

    @property
    def key(self) -> str:
        return f"{self.meter.id}/{self.spec.name}"


StatusListener = Callable[[UplinkStatus], Awaitable[None]]


class Uplink:
    """Publishes the gateway's meters to the fleet; a poller listener for the live values."""

    #: Live values show the present: a snapshot waiting for a busy uplink is replaced.
    delivery = Delivery.LATEST

    def __init__(
        self,
        config: GatewayConfig,
        clock: Clock,
        readers: dict[str, ArchiveReader],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.up: UpstreamConfig = config.upstream
        self.clock = clock
        self.readers = readers
        self.url = BrokerUrl.parse(self.up.broker)
        self.publisher_id = self.up.publisher_id or publisher_id_from_uri(config.opcua.application_uri)
        self.topics = Topics(self.up.prefix, self.publisher_id)
        self.backoff = Backoff(self.up.reconnect_first_s, self.up.reconnect_max_s, rng)
        self._latest: dict[str, Snapshot] = {}
        self._live: dict[str, LiveFrames] = {}
        self._writers: dict[int, _Writer] = {}
        self._files: dict[str, StateFile] = {}
        self._wake = asyncio.Event()
        self._requests: asyncio.Queue[ReplayRequest] = asyncio.Queue(maxsize=64)
        self._status = UplinkStatus(broker=str(self.url), publisher_id=self.publisher_id, ack=self.up.ack)
        self._changed = asyncio.Event()
        self._backlog_at = -_BACKLOG_EVERY_S
        #: Per writer: the metadata version last published, and when (clock seconds).
        self._metadata_sent: dict[int, tuple[ConfigurationVersion, float]] = {}
        self.status_listeners: list[StatusListener] = []
        #: Set while connected and announced (tests and the bench wait on it).
        self.connected = asyncio.Event()
        self.failures = 0
        #: A session was cancelled: the uplink is being stopped.
        self._stopping = False

    # -- poller listener ----------------------------------------------------------------

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        self._latest[snapshot.meter_id] = snapshot

    async def on_profile(self, meter_id: str, profile: ProfileData) -> None:
        """Profiles go out from the archive once written (the outbox), not from here."""

    async def on_events(self, meter_id: str, events: Sequence[EventRecord]) -> None:
        """Events go out from the archive once written (the outbox), not from here."""

    def archived(self, meter_id: str, stream: str) -> None:
        """The recorder wrote records of ``stream``: look for them now."""
        self._wake.set()

    # -- state --------------------------------------------------------------------------

    def status(self) -> UplinkStatus:
        return replace(self._status, writers=tuple(w.status for w in self._writers.values()))

    async def prepare(self) -> None:
        """Load the cursors, bump metadata versions whose fields changed, build the writers
        (once; :meth:`run` does it if nobody did)."""
        if self._writers:
            return
        now = self.clock.now()
        for index, meter in enumerate(self.config.meters):
            reader = self.readers.get(meter.id)
            file = StateFile(Path(reader.root) / meter.id / STATE_FILE) if reader is not None else None
            saved = await asyncio.to_thread(file.load) if file is not None else {}
            states: dict[str, WriterState] = {}
            for name in self.up.writers:
                spec = BY_NAME[name]
                if spec.stream is not None and reader is None:
                    continue  # no archive, nothing to replay
                fields = writer_fields(meter, spec)
                digest = fields_digest(fields)
                state = saved.get(name)
                if state is None or state.digest != digest:
                    version = version_time(now)
                    cursor = state.cursor if state else initial_position(now, self.up.initial_days)
                    state = WriterState(cursor, ConfigurationVersion(version, version), digest)
                states[name] = state
                wid = writer_id(index, spec)
                w = _Writer(meter, spec, wid, fields, archive_columns(fields), state, state.cursor)
                w.status = WriterStatus(meter.id, name, wid, last_acknowledged=None)
                self._writers[wid] = w
                if spec.name is Writer.LIVE:
                    self._live[meter.id] = LiveFrames(fields, self.up.key_frame_count)
            if file is not None:
                self._files[meter.id] = file
                await self._save(meter.id)

    async def _save(self, meter_id: str) -> None:
        file = self._files.get(meter_id)
        if file is None:
            return
        # Every writer's metadata version, the live writer's too (its cursor is unused).
        states = {str(w.spec.name): w.state for w in self._writers.values() if w.meter.id == meter_id}
        # Shielded: a stop in the middle must not cancel the write before it began (the
        # cursor would lag on disk and the fleet get duplicates after the restart).
        saving = asyncio.ensure_future(asyncio.to_thread(file.save, states))
        try:
            await asyncio.shield(saving)
        except OSError as err:
            # The cursor in memory is right; on disk it lags: after a restart, duplicates.
            log.error("uplink: cannot save the cursors of %s: %s", meter_id, err.strerror or err)

    # -- the connection -----------------------------------------------------------------

    async def run(self) -> None:
        """Connect, publish, reconnect; only cancellation ends it."""
        await self.prepare()
        reported = ""
        self._stopping = False
        while True:
            self._set(state="connecting")
            try:
                await self._session()
            except* (aiomqtt.MqttError, LinkDead, PublishRefused, OSError) as group:
                err = group.exceptions[0]
                text = _describe(err)
                self.failures += 1
                self._set(last_error=text)
                if text != reported:  # one line per distinct failure, not one per retry
                    # A refusal or a certificate is the configuration's fault, not the link's.
                    level = (
                        logging.ERROR
                        if isinstance(err, PublishRefused) or text.startswith("TLS")
                        else logging.WARNING
                    )
                    log.log(level, "uplink to %s: %s; reconnecting with backoff", self.url, text)
                    reported = text
            finally:
                self.connected.clear()
            if self._stopping:
                # Stopped, and the disconnect failed: its MqttError took the cancellation's
                # place and was caught above. (Not task.cancelling(): on Python 3.11 a
                # TaskGroup whose task failed leaves the count raised after every failure.)
                raise asyncio.CancelledError
            delay = self.backoff.next_delay()
            self._set(state="waiting")
            await self.clock.sleep(delay)

    def _will(self) -> aiomqtt.Will:
        msg = StatusMessage(codec.new_message_id(), self.publisher_id, PubSubState.ERROR)
        return aiomqtt.Will(self.topics.status, codec.encode(msg), qos=1, retain=True, properties=_props())

    def _tls(self) -> ssl.SSLContext | None:
        """The TLS context (reads the key files: called in a worker thread)."""
        if not self.url.tls:
            return None
        if self.up.certificate:
            cert, key = Path(self.up.certificate), Path(self.up.key)
        else:
            pki = Pki(self.config.security.pki)
            cert, key = pki.own_certificate_pem(), pki.own_key
        return tls_context(self.up.ca, cert, key)

    def _client_for(self, tls: ssl.SSLContext | None) -> _Client:
        return _Client(
            self.url.host,
            self.url.port,
            identifier=self.publisher_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=self.up.keepalive_s,
            will=self._will(),
            tls_context=tls,
            username=self.up.username or None,
            password=self.up.password or None,
            timeout=float(self.up.keepalive_s),
            clean_start=True,
        )

    async def _session(self) -> None:
        client = self._client_for(await asyncio.to_thread(self._tls))
        async with client:
            self._set(
                state="connected",
                last_connected=self.clock.now(),
                last_error="",
                connects=self._status.connects + 1,
            )
            log.info("uplink connected to %s as %s", self.url, self.publisher_id)
            try:
                await self._announce(client)
                self.backoff.reset()
                self.connected.set()
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self._incoming(client), name="uplink-incoming")
                    tasks.create_task(self._watchdog(client), name="uplink-watchdog")
                    tasks.create_task(self._live_loop(client), name="uplink-live")
                    tasks.create_task(self._replay_loop(client), name="uplink-replay")
                    tasks.create_task(self._report_loop(), name="uplink-report")
                    tasks.create_task(self._status_loop(client), name="uplink-status")
            except asyncio.CancelledError:
                self._stopping = True
                await self._goodbye(client)
                raise

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """Say ``Disabled`` on a clean stop (a clean DISCONNECT discards the Will)."""
        msg = StatusMessage(codec.new_message_id(), self.publisher_id, PubSubState.DISABLED)
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError, asyncio.CancelledError):
            await asyncio.shield(
                client.publish(
                    self.topics.status,
                    codec.encode(msg),
                    qos=1,
                    retain=True,
                    properties=_props(),
                    timeout=_GOODBYE_S,
                )
            )

    def _cyclic_status(self) -> StatusMessage:
        """``Operational``, cyclic (§7.2.5.5.5: Timestamp and NextReportTime), with the SMX
        extension: the backlog of all writers and the messages sent since start."""
        now = self.clock.now()
        return StatusMessage(
            codec.new_message_id(),
            self.publisher_id,
            PubSubState.OPERATIONAL,
            True,
            now,
            now + timedelta(seconds=self.up.status_interval_s),
            backlog=min(sum(w.status.backlog for w in self._writers.values()), 0xFFFFFFFF),
            messages_sent=self._status.messages_sent,
        )

    async def _status_loop(self, client: aiomqtt.Client) -> None:
        """The cyclic status every ``status_interval_s``, retained (the newest report is what
        a head-end starting later reads first)."""
        while True:
            await self.clock.sleep(float(self.up.status_interval_s))
            await self.refresh_backlog()
            msg = codec.encode(self._cyclic_status())
            await self._publish(client, self.topics.status, msg, qos=1, retain=True)

    async def _announce(self, client: aiomqtt.Client) -> None:
        msg = codec.encode(self._cyclic_status())
        await self._publish(client, self.topics.status, msg, qos=1, retain=True)
        now = self.clock.monotonic()
        for w in self._writers.values():
            w.sent = w.state.cursor  # what was sent but not acknowledged goes again
            w.last_progress = now
            # Retained in the broker: sent again only when it changed or a while has passed
            # (a flaky 3G link reconnects often; the metadata of all writers is ~85 kB).
            sent = self._metadata_sent.get(w.id)
            if sent is not None and sent[0] == w.state.version and now - sent[1] < METADATA_EVERY_S:
                continue
            md = MetaDataMessage(
                codec.new_message_id(),
                self.publisher_id,
                w.id,
                w.meter.id,
                str(w.spec.name),
                self.clock.now(),
                metadata(w.meter, w.spec, w.state.version),
            )
            await self._publish(
                client, self.topics.metadata(w.meter.id, w.spec.name), codec.encode(md), qos=1, retain=True
            )
            self._metadata_sent[w.id] = (w.state.version, now)
        for frames in self._live.values():
            frames.restart()
        await client.subscribe(self.topics.replay, qos=1)
        if self.up.ack == "consumer":
            await client.subscribe(self.topics.ack, qos=1)

    async def _publish(
        self,
        client: aiomqtt.Client,
        topic: str,
        data: bytes,
        *,
        qos: int,
        retain: bool = False,
        gzip: bool = False,
    ) -> None:
        refusals = client.refusals if isinstance(client, _Client) else 0
        await client.publish(
            topic, data, qos=qos, retain=retain, properties=_props(gzip), timeout=float(self.up.keepalive_s)
        )
        if isinstance(client, _Client) and client.refusals > refusals:
            raise PublishRefused(
                f"the broker refused publishing on {topic} ({client.last_refusal}): check its ACL and "
                f"[upstream] publisher_id ({self.publisher_id})"
            )
        self._set(
            messages_sent=self._status.messages_sent + 1, bytes_sent=self._status.bytes_sent + len(data)
        )

    def _set(self, **changes: object) -> None:
        status = replace(self._status, **changes)  # type: ignore[arg-type]
        if (status.state, status.connects, status.last_error) != (
            self._status.state, self._status.connects, self._status.last_error,
        ):  # fmt: skip
            self._changed.set()
            self._changed = asyncio.Event()
        self._status = status

    async def changed(self) -> None:
        """Wait until the state, the connection count or the last error changes."""
        await self._changed.wait()

    # -- the tasks of a connection ------------------------------------------------------

    async def _watchdog(self, client: aiomqtt.Client) -> None:
        keepalive = float(self.up.keepalive_s)
        probe = f"{self.topics.status}/probe"
        while True:
            await self.clock.sleep(keepalive / 2)
            # Half a keepalive to answer: a silent link is noticed at most one keepalive
            # after the broker was last heard (a probe just answered, the next one unanswered).
            try:
                await client.unsubscribe(probe, timeout=keepalive / 2)
            except aiomqtt.MqttError as err:
                if "timed out" in str(err):
                    raise LinkDead(
                        f"no answer from the broker within half the keepalive ({keepalive / 2:g} s)"
                    ) from err
                raise

    async def _live_loop(self, client: aiomqtt.Client) -> None:
        spec = BY_NAME[Writer.LIVE]
        if Writer.LIVE not in self.up.writers:
            return
        interval = float(self.up.live_interval_s)
        due = self.clock.monotonic()
        while True:
            await self.clock.sleep_until(due)
            due = max(due + interval, self.clock.monotonic())
            for w in self._writers.values():
                if w.spec is not spec:
                    continue
                snapshot = self._latest.get(w.meter.id)
                if snapshot is None:
                    continue
                kind, payload, worst = self._live[w.meter.id].frame(snapshot)
                w.sequence += 1
                msg = NetworkMessage(
                    codec.new_message_id(),
                    self.publisher_id,
                    w.meter.id,
                    (
                        dataset_message(
                            spec, w.id, w.sequence, w.state.version, snapshot.time, payload, worst, kind
                        ),
                    ),
                )
                data = codec.encode(msg)
                await self._publish(client, self.topics.data(w.meter.id, spec.name), data, qos=spec.qos)
                w.status = replace(
                    w.status,
                    messages=w.status.messages + 1,
                    bytes=w.status.bytes + len(data),
                    last_delivered=snapshot.time,
                )

    async def _replay_loop(self, client: aiomqtt.Client) -> None:
        messages = TokenBucket(
            self.up.replay_messages_per_s, max(1.0, self.up.replay_messages_per_s), self.clock
        )
        volume = TokenBucket(self.up.replay_bytes_per_s, self.up.replay_bytes_per_s, self.clock)
        replayed = [w for w in self._writers.values() if w.spec.stream is not None]
        while True:
            self._wake.clear()
            progressed = False
            while not self._requests.empty():
                await self._serve_request(client, self._requests.get_nowait(), messages, volume)
            for w in replayed:
                if self._awaiting_ack(w):
                    continue
                rows = await asyncio.to_thread(
                    read_after, self.readers[w.meter.id], str(w.spec.stream), w.columns, w.sent, self.up.batch
                )
                if not rows:
                    continue
                await self._send_rows(client, w, rows, messages, volume)
                w.sent = rows[-1].after
                if self.up.ack == "broker":
                    w.state.cursor = w.sent
                    w.status = replace(w.status, last_delivered=rows[-1].time)
                    await self._save(w.meter.id)
                else:
                    w.status = replace(w.status, last_delivered=rows[-1].time)
                progressed = True
            if not progressed:
                await self._idle(5.0)

    async def _send_rows(
        self,
        client: aiomqtt.Client,
        w: _Writer,
        rows: Sequence[Row],
        messages: TokenBucket,
        volume: TokenBucket,
    ) -> None:
        out = []
        for row in rows:
            payload, status = record_payload(w.spec, w.fields, row.status, row.values)
            w.sequence += 1
            out.append(dataset_message(w.spec, w.id, w.sequence, w.state.version, row.time, payload, status))
        data = codec.encode(NetworkMessage(codec.new_message_id(), self.publisher_id, w.meter.id, tuple(out)))
        gzip = self.up.compress
        if gzip:
            data = codec.compress(data)
        await messages.wait(1)
        await volume.wait(len(data))
        await self._publish(
            client, self.topics.data(w.meter.id, w.spec.name), data, qos=w.spec.qos, gzip=gzip
        )
        w.status = replace(w.status, messages=w.status.messages + 1, bytes=w.status.bytes + len(data))

    async def _serve_request(
        self, client: aiomqtt.Client, req: ReplayRequest, messages: TokenBucket, volume: TokenBucket
    ) -> None:
        w = self._writers.get(req.writer_id)
        if w is None or w.spec.stream is None:
            log.warning(
                "uplink: replay request for DataSetWriterId %d, which replays nothing here", req.writer_id
            )
            return
        log.info("uplink: replaying %s from %s to %s on request", w.key, req.start, req.end)
        position = Position(req.start, 0)
        while True:
            rows = await asyncio.to_thread(
                read_after,
                self.readers[w.meter.id],
                str(w.spec.stream),
                w.columns,
                position,
                self.up.batch,
                req.end,
            )
            if not rows:
                return
            await self._send_rows(client, w, rows, messages, volume)
            position = rows[-1].after

    def _awaiting_ack(self, w: _Writer) -> bool:
        """Consumer mode sends one message per writer at a time ("stop and wait"): the next
        goes when the consumer has acknowledged the last. Head-end instances that share the
        fleet's messages (MQTT 5 shared subscriptions) can then acknowledge what they stored
        without knowing what the others hold: no later message of the writer is in flight.
        No acknowledgement within ``ack_timeout_s`` (an instance died before its commit):
        the message goes again."""
        if self.up.ack != "consumer" or w.sent <= w.state.cursor:
            return False
        if self.clock.monotonic() - w.last_progress < self.up.ack_timeout_s:
            return True
        log.warning(
            "uplink: no acknowledgement of %s for %.0f s; sending again from %s",
            w.key, self.up.ack_timeout_s, w.state.cursor.time,
        )  # fmt: skip
        w.sent = w.state.cursor
        w.last_progress = self.clock.monotonic()
        return False

    async def _incoming(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                if topic == self.topics.ack:
                    await self._acknowledged(codec.decode_ack(payload))
                elif topic == self.topics.replay:
                    try:
                        self._requests.put_nowait(codec.decode_replay(payload))
                    except asyncio.QueueFull:
                        log.warning("uplink: too many replay requests waiting; one refused")
                    self._wake.set()
            except codec.MessageError as err:
                log.warning("uplink: refused a message on %s: %s", topic, err)

    async def _acknowledged(self, ack: Ack) -> None:
        w = self._writers.get(ack.writer_id)
        if w is None or w.spec.stream is None:
            log.warning(
                "uplink: acknowledgement for DataSetWriterId %d, which replays nothing here", ack.writer_id
            )
            return
        through = Position(ack.through, ALL)
        if through <= w.state.cursor:
            return
        if through > w.sent:
            # A consumer can only have stored what it was sent: an acknowledgement ahead of
            # that (a clock or a bug on its side) would skip records it never got. One of the
            # time of the last record sent is not ahead: a time acknowledges what was sent of it.
            if ack.through > w.sent.time:
                log.warning("uplink: %s acknowledged through %s, beyond what was sent (%s); taken as that",
                            w.key, ack.through, w.sent.time)  # fmt: skip
            through = w.sent
            if through <= w.state.cursor:
                return
        w.state.cursor = through
        w.last_progress = self.clock.monotonic()
        w.status = replace(w.status, last_acknowledged=through.time)
        await self._save(w.meter.id)

    async def _idle(self, seconds: float) -> None:
        """Wait for new records, a request, or ``seconds`` on the clock."""
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()

    async def _report_loop(self) -> None:
        while True:
            await self.refresh_backlog()
            status = self.status()
            for listener in self.status_listeners:
                await listener(status)
            await self.clock.sleep(1.0)

    async def refresh_backlog(self, *, force: bool = False) -> None:
        """Count the records after each cursor (every :data:`_BACKLOG_EVERY_S` at most)."""
        now = self.clock.monotonic()
        if not force and now - self._backlog_at < _BACKLOG_EVERY_S:
            return
        self._backlog_at = now
        for w in self._writers.values():
            if w.spec.stream is None:
                continue
            rows = await asyncio.to_thread(
                read_after,
                self.readers[w.meter.id],
                str(w.spec.stream),
                w.columns,
                w.state.cursor,
                BACKLOG_CAP,
            )
            w.status = replace(w.status, backlog=len(rows))


def _props(gzip: bool = False) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = codec.CONTENT_TYPE_GZIP if gzip else codec.CONTENT_TYPE
    return props


def _describe(err: BaseException) -> str:
    """A failure in words, with the TLS reason where there is one."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, (ssl.SSLError, ssl.CertificateError)):
            return f"TLS: {cause}"
        cause = cause.__cause__ or cause.__context__
    return str(err) or type(err).__name__
