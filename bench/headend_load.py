"""The load generator of ``python -m bench headend``: a fleet of simulated sites publishing
through one MQTT broker as the gateway's uplink does (issue 17, point 4).

Every message is what a gateway sends: built once per writer with the uplink's writer table
(:mod:`gateway.uplink.writers`: fields, ``record_payload``, ``dataset_message``) and encoded
with :mod:`gateway.pubsub.codec`, with sentinels where a message differs from the next (the
PublisherId, the MessageId, the SequenceNumber, the Timestamp); per message only those are
put in (:class:`Template`), so 10,000 sites cost the generator little CPU.

* ``announce``: per site its status (Operational) and the metadata of its six writers,
  retained, QoS 1, as the uplink announces itself on connect.
* ``run``: per site the live writer every ``--live`` seconds (QoS 0; every
  ``KEY_FRAME_COUNT``-th a key frame, the others delta frames with two thirds of the
  fields), ``minute`` and ``registers`` records every minute and ``lp1``/``lp2`` periods every
  15 minutes (QoS 1), one record per message (the uplink's steady state). The sites are
  spread evenly over each interval. A record's Timestamp is the time it is published (to
  the microsecond), so whoever stores it knows its publish-to-commit lag from the row alone.

MQTT 5 on plain TCP, a few connections for all sites (each site's messages on one of them),
packets framed by :mod:`tests.support.mqtt_wire`: paho's per-message cost would be the
generator's, not the head-end's. QoS 1 publishes respect the broker's Receive Maximum.

    python -m bench.headend_load announce|run --url mqtt://127.0.0.1:PORT --sites 10000 ...

prints one JSON line when done: what was published, per writer, and the CPU it took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.config import MeterConfig, demo_config
from gateway.pubsub import codec
from gateway.pubsub.codec import (
    ConfigurationVersion,
    DataSetMessageType,
    FieldValue,
    MetaDataMessage,
    NetworkMessage,
    PubSubState,
    StatusMessage,
)
from gateway.pubsub.topics import Topics
from gateway.uplink.writers import (
    BY_NAME,
    WRITERS,
    Writer,
    archive_columns,
    dataset_message,
    metadata,
    record_payload,
    significant,
    version_time,
    writer_fields,
    writer_id,
)
from tests.support.mqtt_wire import Template
from tests.support.mqtt_wire import connections as mqtt_connections

PREFIX = "opcua"
#: Every site's one meter (the demo's) and its writers' metadata version.
VERSION_TIME = datetime(2026, 1, 1, tzinfo=UTC)
KEY_FRAME_COUNT = 6
#: Record intervals of the replayed writers (s) in the steady state.
INTERVALS = {Writer.MINUTE: 60.0, Writer.REGISTERS: 60.0, Writer.LOAD_PROFILE_1: 900.0,
             Writer.LOAD_PROFILE_2: 900.0}  # fmt: skip
#: Value variants per writer (sites use them in turn).
VARIANTS = 8
TICK_S = 0.01

# Sentinels: unique texts in an encoded message, replaced per message.
_PUB = "@@PUBLISHER@@"
_MID = "@@MESSAGEID@@"
_SEQ = 3141592653
_TIME = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
SLOTS = (_PUB.encode(), _MID.encode(), str(_SEQ).encode(), codec.format_time(_TIME).encode())


def site_name(i: int) -> str:
    return f"site-{i:05d}"


# -- templates --------------------------------------------------------------------------------


def cut(encoded: bytes) -> Template:
    """``encoded`` cut at this generator's sentinels (:data:`SLOTS`)."""
    return Template.of(encoded, SLOTS)


def meter() -> MeterConfig:
    return demo_config().meters[0]


def version() -> ConfigurationVersion:
    v = version_time(VERSION_TIME)
    return ConfigurationVersion(v, v)


def _value(name: str, rng: random.Random) -> float:
    """A plausible value for a field by its name (the head-end only checks type and finiteness)."""
    if "Voltage" in name:
        return significant(rng.uniform(225, 236))
    if "Frequency" in name:
        return significant(rng.uniform(49.95, 50.05))
    if "Factor" in name:
        return significant(rng.uniform(0.85, 1.0))
    return significant(rng.uniform(0, 30) if "Current" in name else rng.uniform(0, 9000))


def data_templates(writer: Writer, variants: int = VARIANTS, seed: int = 1) -> list[Template]:
    """Encoded data messages of ``writer`` (one record each), in ``variants`` value sets; for
    the live writer key frames first, then as many delta frames."""
    rng = random.Random(f"{seed}/{writer}")
    m, spec = meter(), BY_NAME[writer]
    fields = writer_fields(m, spec)
    wid = writer_id(0, spec)
    out = []
    kinds: list[DataSetMessageType | None] = [None]
    if writer is Writer.LIVE:
        kinds = [DataSetMessageType.KEY_FRAME, DataSetMessageType.DELTA_FRAME]
    for kind in kinds:
        for _ in range(variants):
            status = 0
            payload: dict[str, Any]
            if writer is Writer.LIVE:
                payload = {f.meta.name: FieldValue(_value(f.meta.name, rng), 0) for f in fields}
                if kind is DataSetMessageType.DELTA_FRAME:  # what changed since the last second
                    payload = {k: v for n, (k, v) in enumerate(payload.items()) if n % 3 != 2}
            else:
                values: list[float | None] = []
                for obis, qualifier in archive_columns(fields):
                    name = next(f.meta.name for f in fields if f.column == (obis, qualifier))
                    values.append(float(rng.randint(50, 60)) if qualifier == "count" else _value(name, rng))
                payload, status = record_payload(spec, fields, 0, values)
            dsm = dataset_message(spec, wid, _SEQ, version(), _TIME, payload, status, kind)
            msg = NetworkMessage(_MID, _PUB, m.id, (dsm,))
            out.append(cut(codec.encode(msg)))
    return out


def announcements(publisher: str, writers: Collection[Writer] = tuple(Writer)) -> list[tuple[str, bytes]]:
    """(topic, payload) of a site's retained status and its ``writers``' metadata."""
    m, topics = meter(), Topics(PREFIX, publisher)
    now = datetime.now(UTC)
    out = [(topics.status, codec.encode(StatusMessage(codec.new_message_id(), publisher,
                                                      PubSubState.OPERATIONAL)))]  # fmt: skip
    for i, spec in enumerate(WRITERS):
        assert i == spec.number - 1
        if spec.name not in writers:
            continue
        md = MetaDataMessage(codec.new_message_id(), publisher, writer_id(0, spec), m.id, str(spec.name),
                             now, metadata(m, spec, version()))  # fmt: skip
        out.append((topics.metadata(m.id, spec.name), codec.encode(md)))
    return out


# -- the schedule -----------------------------------------------------------------------------


@dataclass
class Stream:
    """One writer of every site: site ``i`` publishes at ``t0 + k * interval + phase(i)``."""

    writer: Writer
    interval: float
    sites: int
    qos: int
    templates: list[Template]
    #: Sites and rounds so far (the next is site ``i`` of round ``k``).
    i: int = 0
    k: int = 0
    sent: int = 0
    offset: float = 0.0

    def phase(self, i: int) -> float:
        """Rising with ``i`` (``due`` walks the sites in order); ``offset`` (s) keeps the
        writers of one site apart."""
        return self.offset + (i + 0.5) / self.sites * self.interval

    def due(self, t0: float, now: float) -> list[tuple[int, int]]:
        """(site, round) of every message due by ``now``, in order."""
        out = []
        while True:
            at = t0 + self.k * self.interval + self.phase(self.i)
            if at > now:
                return out
            out.append((self.i, self.k))
            self.i += 1
            if self.i == self.sites:
                self.i, self.k = 0, self.k + 1

    def template(self, i: int, k: int) -> Template:
        variant = (i + k) % VARIANTS
        if self.writer is Writer.LIVE and k % KEY_FRAME_COUNT != 0:
            return self.templates[VARIANTS + variant]  # a delta frame
        return self.templates[variant]


def streams(sites: int, live_s: float, writers: Sequence[Writer] = tuple(BY_NAME)) -> list[Stream]:
    """The writers the steady state sends (events are rare: left out)."""
    intervals = {Writer.LIVE: live_s, **INTERVALS}
    out = []
    for n, w in enumerate(x for x in writers if x in intervals):
        out.append(Stream(w, intervals[w], sites, BY_NAME[w].qos, data_templates(w), offset=n * 0.1))
    return out


def expected_rates(sites: int, live_s: float) -> dict[str, float]:
    """Messages per second each writer sends in the steady state."""
    return {str(s.writer): sites / s.interval for s in streams_light(sites, live_s)}


def streams_light(sites: int, live_s: float) -> list[Stream]:
    intervals = {Writer.LIVE: live_s, **INTERVALS}
    return [Stream(w, t, sites, BY_NAME[w].qos, []) for w, t in intervals.items()]


def rows_per_message() -> dict[str, int]:
    """Rows the head-end stores per message of each writer (live: none)."""
    m = meter()
    return {str(w.name): 0 if w.name is Writer.LIVE else len(writer_fields(m, w)) for w in WRITERS}


@dataclass
class Ids:
    """MessageIds unique over the run, shaped as the uplink's UUIDs."""

    prefix: str = field(default_factory=lambda: os.urandom(4).hex())
    n: int = 0

    def next(self) -> bytes:
        self.n += 1
        t = f"{self.n:022x}"
        return f"{self.prefix}-{t[0:4]}-4{t[4:7]}-8{t[7:10]}-{t[10:22]}".encode()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values``, by linear interpolation (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# -- the processes ----------------------------------------------------------------------------


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


async def announce(
    url: str, sites: int, connections: int, writers: Collection[Writer] = tuple(Writer)
) -> dict[str, Any]:
    """Every site's retained status and its ``writers``' metadata, all acknowledged."""
    conns = await mqtt_connections(url, connections, f"announce-{os.getpid()}")
    started, cpu0, sent, size = time.monotonic(), _cpu(), 0, 0
    for i in range(sites):
        conn = conns[i % len(conns)]
        for topic, payload in announcements(site_name(i), writers):
            await conn.publish(topic.encode(), payload, 1, retain=True)
            sent += 1
            size += len(payload)
        if len(conn.buffer) > 64:
            await conn.flush()
    for conn in conns:
        await conn.settle()
        await conn.close()
    return {"messages": sent, "bytes": size, "seconds": time.monotonic() - started, "cpu_s": _cpu() - cpu0}


async def run(
    url: str, sites: int, live_s: float, seconds: float, connections: int,
    writers: Collection[Writer] = tuple(Writer),
) -> dict[str, Any]:  # fmt: skip
    """Publish the steady state of ``writers`` for ``seconds``; what was sent, per writer."""
    conns = await mqtt_connections(url, connections, f"load-{os.getpid()}")
    plan = streams(sites, live_s, tuple(writers))
    topics = {(s.writer, i): Topics(PREFIX, site_name(i)).data("meter1", s.writer).encode()
              for s in plan for i in range(sites)}  # fmt: skip
    names = [site_name(i).encode() for i in range(sites)]
    ids = Ids()
    cpu0 = _cpu()
    t0 = time.time()
    end = t0 + seconds
    late = 0.0
    while True:
        now = time.time()
        if now >= end:
            break
        stamp = codec.format_time(datetime.fromtimestamp(now, UTC)).encode()
        for s in plan:
            for i, k in s.due(t0, now):
                payload = s.template(i, k).render((names[i], ids.next(), str(k + 1).encode(), stamp))
                await conns[i % len(conns)].publish(topics[(s.writer, i)], payload, s.qos)
                s.sent += 1
        for conn in conns:
            await conn.flush()
        spent = time.time() - now
        late = max(late, spent)
        await asyncio.sleep(max(0.0, TICK_S - spent))
    for conn in conns:
        await conn.flush()
        await conn.close()
    elapsed = time.time() - t0
    return {
        "seconds": elapsed,
        "cpu_s": _cpu() - cpu0,
        "sent": {str(s.writer): s.sent for s in plan},
        "messages": sum(s.sent for s in plan),
        "longest_tick_s": late,
    }


def _writers(text: str) -> tuple[Writer, ...]:
    try:
        return tuple(Writer(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"writers of {', '.join(BY_NAME)}, got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("announce", "run"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--live", type=float, default=15.0, help="live interval, s")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--writers", type=_writers, default=tuple(Writer), help="comma-separated writers (default: all)"
    )
    args = parser.parse_args()
    if args.mode == "announce":
        result = asyncio.run(announce(args.url, args.sites, args.connections, args.writers))
    else:
        result = asyncio.run(
            run(args.url, args.sites, args.live, args.seconds, args.connections, args.writers)
        )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
