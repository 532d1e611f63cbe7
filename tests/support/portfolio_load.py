"""A light publisher of many portfolio sites for load (``tests/headend/test_portfolio_load.py``).

The sites are what :mod:`tests.support.portfolio_sites` makes them (the gateway's writer
table and codec: status Operational and the retained metadata of ``live`` and
``registers``, live key frames with the net power's two fields), published fast: each
site's live message is encoded once with sentinels (:class:`~tests.support.mqtt_wire.Template`)
and per message only the MessageId, SequenceNumber, Timestamp and power are put in; the
packets are framed by :mod:`tests.support.mqtt_wire` over a few connections, each site on
one of them.

The live values come in **rounds**: in round ``k`` every site sends ``value(i, k)`` (the
caller's function), all with one Timestamp (the round's :attr:`Round.stamp`), as one burst;
the :class:`Round` says when it was handed to the sockets. Register reads (the net energy
the caller says) are encoded per message: one a site a minute is few.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.pubsub import codec
from gateway.uplink import writers as w
from tests.support.headend_messages import METER, VERSION
from tests.support.mqtt_wire import Connection, Template
from tests.support.portfolio_sites import announce_messages, registers_message, topic

_MID = b"@@MESSAGEID@@"
_SEQ = 3141592653
_TIME = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
_VALUE = 777777.123456
SLOTS = (_MID, str(_SEQ).encode(), codec.format_time(_TIME).encode(), repr(_VALUE).encode())


def live_template(publisher: str) -> Template:
    """The site's live key frame (as :func:`~tests.support.portfolio_sites.live_message`),
    cut at its MessageId, SequenceNumber, Timestamp and import power."""
    spec = w.BY_NAME["live"]
    payload = {
        "ActivePowerImport": codec.FieldValue(_VALUE, 0),
        "ActivePowerExport": codec.FieldValue(0.0, 0),
    }
    message = w.dataset_message(spec, w.writer_id(0, spec), _SEQ, VERSION, _TIME, payload, 0,
                                codec.DataSetMessageType.KEY_FRAME)  # fmt: skip
    encoded = codec.encode(codec.NetworkMessage(_MID.decode(), publisher, METER.id, (message,)))
    return Template.of(encoded, SLOTS)


@dataclass(frozen=True, slots=True)
class Round:
    """One round of live values: its number, the Timestamp all its messages carry (the time
    its first message was rendered) and when it was handed to the sockets (``time.time()``)."""

    k: int
    stamp: datetime
    start: float
    end: float


class LoadSites:
    """``publishers`` sending through ``connections``; ``value(i, k)``: the net power (kW, >= 0)
    of site ``i`` in round ``k``."""

    def __init__(
        self, publishers: Sequence[str], connections: Sequence[Connection], value: Callable[[int, int], float]
    ) -> None:
        self.publishers = list(publishers)
        self.connections = list(connections)
        self.value = value
        self._templates = [live_template(p) for p in self.publishers]
        self._live = [topic("data", p, "live").encode() for p in self.publishers]
        self._registers = [topic("data", p, "registers").encode() for p in self.publishers]
        self.rounds: list[Round] = []

    def _conn(self, i: int) -> Connection:
        return self.connections[i % len(self.connections)]

    async def announce(self, now: datetime) -> None:
        """Every site's status and metadata, retained, QoS 1, all acknowledged."""
        for i, p in enumerate(self.publishers):
            for t, payload in announce_messages(p, now):
                await self._conn(i).publish(t.encode(), payload, 1, retain=True)
        for conn in self.connections:
            await conn.settle()

    async def live_round(self, k: int) -> Round:
        """Round ``k``: every site's live value, QoS 0, at once."""
        start = time.time()
        stamp = datetime.fromtimestamp(start, UTC)
        time_text, seq = codec.format_time(stamp).encode(), str(k).encode()
        for i, template in enumerate(self._templates):
            mid = f"l{k}-{i}".encode()
            payload = template.render((mid, seq, time_text, repr(self.value(i, k)).encode()))
            await self._conn(i).publish(self._live[i], payload, 0)
        for conn in self.connections:
            await conn.flush()
        done = Round(k, stamp, start, time.time())
        self.rounds.append(done)
        return done

    async def registers(self, stamp: datetime, energy: Callable[[int], float]) -> None:
        """Every site's register read at ``stamp`` (``energy(i)``: its net import, kWh), QoS 1."""
        for i, p in enumerate(self.publishers):
            kwh = energy(i)
            payload = registers_message(p, stamp, max(kwh, 0.0), max(-kwh, 0.0))
            await self._conn(i).publish(self._registers[i], payload, 1)
        for conn in self.connections:
            await conn.flush()
