"""The head-end's connections to the fleet's MQTT broker: the ingest's
(:class:`headend.service.Headend`) and the portfolios' (:class:`headend.portfolio.service.PortfolioService`).

Each is an MQTT 5 client of ``[broker]`` (TLS with its certificates for an ``mqtts://``
URL) kept connected by :func:`keep_connected`: a session that ends on a broker or
database failure is started again after a back-off; only cancellation ends it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiomqtt

from gateway.clock import Clock
from gateway.uplink import mqtt
from gateway.uplink.link import Backoff, BrokerUrl, tls_context
from headend.config import BrokerConfig
from headend.storage import StorageError

#: What aiomqtt logs for every incoming message its full queue discards.
QUEUE_FULL = "Message queue is full. Discarding message."


class DiscardSummary(logging.Filter):
    """One line per ``every_s`` for the messages a full incoming queue discards.

    aiomqtt warns once per discarded message: an instance behind by thousands of messages
    a second would flood the journal, and formatting those lines cost it 6 % of its CPU in
    the portfolio bench's overload. The first discard is logged as it happens, the next
    ones are counted and said with the first discard after ``every_s``; :attr:`discarded`
    counts them all."""

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self._clock = clock
        self.discarded = 0
        self._unsaid = 0
        self._said_at: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != QUEUE_FULL:
            return True
        self.discarded += 1
        self._unsaid += 1
        now = self._clock()
        if self._said_at is not None and now - self._said_at < self.every_s:
            return False
        record.msg = "incoming queue full: %d message(s) discarded since the last such line (%d in all)"
        record.args = (self._unsaid, self.discarded)
        self._unsaid, self._said_at = 0, now
        return True


def discard_summary(
    identifier: str, clock: Callable[[], float] = time.monotonic
) -> tuple[logging.Logger, DiscardSummary]:
    """The logger of the client ``identifier`` (``headend.mqtt.<identifier>``) and its
    :class:`DiscardSummary` (made once per logger, with ``clock``)."""
    logger = logging.getLogger(f"headend.mqtt.{identifier}")
    for f in logger.filters:
        if isinstance(f, DiscardSummary):
            return logger, f
    summary = DiscardSummary(clock=clock)
    logger.addFilter(summary)
    return logger, summary


async def mqtt_client(broker: BrokerConfig, url: BrokerUrl, identifier: str, queue: int) -> aiomqtt.Client:
    """A client of the broker at ``url`` as ``identifier``, holding at most ``queue``
    incoming messages (the TLS context is made in a thread: it reads files); the messages a
    full queue discards are summed up in its log (:class:`DiscardSummary`). Its waits never
    lose a cancellation (:class:`gateway.uplink.mqtt.Client`)."""
    tls = None
    if url.tls:
        tls = await asyncio.to_thread(tls_context, broker.ca, Path(broker.certificate), Path(broker.key))
    logger, _ = discard_summary(identifier)
    return mqtt.Client(
        url.host, url.port, identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5,
        keepalive=broker.keepalive_s, tls_context=tls, username=broker.username or None,
        password=broker.password or None, max_queued_incoming_messages=queue,
        timeout=float(broker.keepalive_s), logger=logger,
    )  # fmt: skip


async def keep_connected(
    what: str,
    url: BrokerUrl,
    session: Callable[[], Awaitable[None]],
    ended: Callable[[], None],
    clock: Clock,
    backoff: Backoff,
    log: logging.Logger,
) -> None:
    """Run ``session`` again and again, ``ended`` after each, waiting ``backoff``'s delay
    between them (the session resets it once connected); a broker or database failure is
    logged as ``what``'s; only cancellation ends it."""
    while True:
        try:
            await session()
        except* (aiomqtt.MqttError, OSError) as group:
            log.warning("%s: broker %s: %s; reconnecting", what, url, group.exceptions[0])
        except* StorageError as group:
            # A failed write ends the session (its batch was never acknowledged: the
            # boxes send it again); the database may be back by the next one.
            log.warning("%s: storage: %s; reconnecting", what, group.exceptions[0])
        finally:
            ended()
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Cancelled while the connection failed (a stop closes it): the failure
            # was caught above, the cancellation must not be.
            raise asyncio.CancelledError
        await clock.sleep(backoff.next_delay())
