"""Uplink: what the gateway sends to the fleet's MQTT broker, what it costs, and how fast a
24-hour outage drains (``python -m bench uplink [--uplink-minutes 3]``, issue 16).

Processes as on a box: the simulated meter (``smx-gateway simulate``, DLMS LN at 9600 Bd),
the gateway (``smx-gateway run --config``, demo profile, plain ``mqtt://127.0.0.1:PORT``)
and a mosquitto on loopback (:mod:`tests.support.broker`), all started and ended here; one
MQTT 5 subscriber (``opcua/json/#``) records every message with its arrival time, and its
bytes and messages are counted per publisher and topic (writer, metadata, status).

1. **Steady state per live interval** (1, 15, 60 s and the default of ``UpstreamConfig``):
   one gateway and one meter per interval, run side by side (the bytes of a message do not
   depend on the CPU next to it; the CPU is measured alone in part 2). Each gateway starts
   with ``initial_days = 0``: its cursors start at its own start, so the meter history it
   backfills is behind them and never replayed; what the replayed writers send is only
   what the recorder archives from then on — exactly the steady state, with no waiting for
   a replay to drain (checked: every replayed message carries one record). The window is
   ``--uplink-minutes`` whole minutes starting 30 s after a minute boundary (each minute
   record and register sample falls inside exactly once). Part 3's archive is prepared
   meanwhile.
2. **CPU with the uplink off and on** (live 1 s), alternately, two rounds, the same meter
   process, a window of ``max(30, 10 x minutes)`` s each after 15 cycles settled; the
   gateway's user+system CPU from ``/proc``; medians.
3. **Replay of a 24-hour outage** at the default limits (5 messages/s, 16 KiB/s, 60 records
   a message): the archive holds 24 h of minute records and register samples (real records
   of part 1's recorder, repeated minute by minute with :class:`ArchiveWriter`, every value
   varied by up to 2 % with its own number of decimals, so every record has the size a
   real one has and gzip no repeated minutes to find) and the load profiles and events a gateway without
   uplink backfilled from the meter (``[archive] initial_backfill_days`` 1.2). The uplink
   then starts with ``initial_days = 1`` (its cursors 24 h back, as after a day offline);
   drained = the subscriber has every record archived before the start (decoded with
   :mod:`gateway.pubsub.codec`). Once plain, once with ``compress = true`` on a copy of
   the same archive with the same cursors. Live (1 s) runs meanwhile: its largest gap.

The volume per month (30 d) adds the load profiles and events at their daily count (part
3's day) and the size each has as a message of its own (as in the steady state), and a
wire estimate (:func:`wire_bytes`): MQTT 5 framing counted exactly, TLS 1.2 AES-GCM
records (29 B each), TCP/IP (52 B a segment of at most 1448 B), the broker's PUBACK and
TCP ACKs, the watchdog's UNSUBSCRIBE every half keepalive, one reconnect a day. Goals
(issue 16): the uplink at 1-s live adds <= 0.5 % of a core; the defaults fit 1 GB a month.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.tables import table
from gateway.archive.files import ArchiveReader, ArchiveWriter
from gateway.archive.minutes import MinuteAggregator, RegisterSampler
from gateway.config import UpstreamConfig, load_config, one_second_set, register_set
from gateway.obis import CATALOGUE
from gateway.pubsub import codec
from gateway.uplink.outbox import StateFile
from gateway.uplink.writers import BY_NAME, WRITERS, archive_columns, writer_fields
from tests.support.broker import Broker, Received, Subscriber, mosquitto, subscriber
from tests.support.processes import gateway, gateway_config, settled_gateway, simulator

LIVE_INTERVALS = (1, 15, 60)
DEFAULT = UpstreamConfig()
WRITER_NAMES = tuple(str(w.name) for w in WRITERS)
REPLAYED = tuple(str(w.name) for w in WRITERS if w.stream is not None)
METER = "meter1"
#: 1 GB per month (30 days) per meter, the budget of a 3G contract (issue 16).
MONTH_S = 30 * 86400
BUDGET_BYTES = 1e9
CPU_GOAL_PERCENT = 0.5
#: The drain of 24 h is given up after this long (a bench never waits forever).
DRAIN_TIMEOUT_S = 1800.0

# -- the wire model ---------------------------------------------------------------------------
#: TLS 1.2 AES-GCM record: 5 B header + 8 B explicit nonce + 16 B tag (TLS 1.3: 22 B).
TLS_RECORD = 29
TLS_RECORD_MAX = 16384
#: IPv4 20 B + TCP 20 B + the timestamp option 12 B (Linux default) per segment.
TCP_IP = 52
#: Payload of a full segment on a 1500-byte MTU with timestamps.
MSS = 1448
#: A TLS handshake with a client certificate both ways (chains of 1-2 certificates), and
#: the TCP handshake and close: an estimate per (re)connect.
HANDSHAKE = 6000
PUBACK = 4  # MQTT 5 PUBACK, reason Success, no properties


def _varint(n: int) -> int:
    return 1 if n < 128 else 2 if n < 16384 else 3 if n < 2097152 else 4


def mqtt_publish(topic: str, payload: int, qos: int, content_type: str) -> int:
    """Bytes of an MQTT 5 PUBLISH: fixed header, topic, packet id (QoS 1), the properties
    (ContentType, as the uplink sets it) and the payload."""
    props = 1 + 2 + len(content_type)
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + _varint(props) + props + payload
    return 1 + _varint(remaining) + remaining


def _tls_tcp(size: int) -> tuple[int, int]:
    """(bytes on the wire, TCP segments) of ``size`` application bytes in one write."""
    tls = size + TLS_RECORD * max(1, math.ceil(size / TLS_RECORD_MAX))
    segments = max(1, math.ceil(tls / MSS))
    return tls + TCP_IP * segments, segments


def wire_bytes(mqtt: int, qos: int) -> int:
    """What one PUBLISH of ``mqtt`` bytes costs on a metered link, both directions: TLS
    records and TCP/IP headers; back, a TCP ACK every second segment (delayed ACK), and at
    QoS 1 the broker's PUBACK (it carries the last ACK) and the gateway's ACK of it."""
    up, segments = _tls_tcp(mqtt)
    acks = math.ceil(segments / 2)
    back = _tls_tcp(PUBACK)[0] + TCP_IP * acks if qos else TCP_IP * acks
    return up + back


def watchdog_bytes_per_day(publisher: str, keepalive_s: int = DEFAULT.keepalive_s) -> int:
    """The watchdog's UNSUBSCRIBE of ``.../probe`` every half keepalive and its UNSUBACK."""
    topic = f"{DEFAULT.prefix}/json/status/{publisher}/probe"
    unsubscribe = 2 + 2 + 1 + 2 + len(topic)
    unsuback = 2 + 2 + 1 + 1
    one = _tls_tcp(unsubscribe)[0] + _tls_tcp(unsuback)[0] + TCP_IP  # the gateway ACKs the answer
    return one * int(86400 / (keepalive_s / 2))


# -- what the subscriber saw ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """One message the subscriber received, by publisher and writer (or ``metadata``/``status``)."""

    publisher: str
    writer: str
    message: Received

    @property
    def size(self) -> int:
        return len(self.message.payload)

    @property
    def content_type(self) -> str:
        return self.message.content_type or codec.CONTENT_TYPE

    def decoded(self) -> codec.Message:
        m = self.message
        return codec.decode(codec.decompress(m.payload) if self.content_type == codec.CONTENT_TYPE_GZIP
                            else m.payload)  # fmt: skip


def seen(sub: Subscriber, publisher: str, start: float = 0.0, end: float = math.inf) -> list[Seen]:
    """The messages of ``publisher`` that arrived in ``[start, end)`` (monotonic seconds)."""
    out = []
    for m in list(sub.messages):
        parts = m.topic.split("/")
        if len(parts) < 4 or parts[3] != publisher or not start <= m.time < end:
            continue
        out.append(Seen(publisher, parts[-1] if parts[2] == "data" else parts[2], m))
    return out


def records(s: Seen) -> list[codec.DataSetMessage]:
    msg = s.decoded()
    return list(msg.messages) if isinstance(msg, codec.NetworkMessage) else []


@dataclass
class Tally:
    """The record times of one publisher's replayed writers, decoded as the messages arrive."""

    sub: Subscriber
    publisher: str
    times: dict[str, Counter[datetime]] = field(default_factory=dict)
    singles: dict[str, list[int]] = field(default_factory=dict)
    _next: int = 0

    def update(self) -> None:
        messages = self.sub.messages
        while self._next < len(messages):
            m = messages[self._next]
            self._next += 1
            parts = m.topic.split("/")
            if len(parts) != 6 or parts[2] != "data" or parts[3] != self.publisher or parts[5] == "live":
                continue
            msg = Seen(self.publisher, parts[5], m).decoded()
            assert isinstance(msg, codec.NetworkMessage)
            self.times.setdefault(parts[5], Counter()).update(d.timestamp for d in msg.messages)
            # The size this record has as a message of its own (the steady state sends each alone).
            sizes = self.singles.setdefault(parts[5], [])
            for d in msg.messages[:5]:
                one = codec.NetworkMessage(msg.message_id, msg.publisher_id, msg.writer_group, (d,))
                sizes.append(len(codec.encode(one)))

    def missing(self, expected: dict[str, Counter[datetime]]) -> int:
        self.update()
        return sum(sum((want - self.times.get(w, Counter())).values()) for w, want in expected.items())


# -- configuration ----------------------------------------------------------------------------


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(value)


def config_file(
    work: Path, meter_url: str, broker: Broker | None, backfill_days: float = 0.0, **upstream: object
) -> Path:
    """:func:`gateway_config` in ``work``, with an ``[upstream]`` table to ``broker`` (none:
    the uplink off) and the archive's first backfill ``backfill_days`` (0: the default)."""
    path = gateway_config(work, meter_url)
    text = path.read_text()
    if backfill_days:
        text = text.replace("[archive]\n", f"[archive]\ninitial_backfill_days = {backfill_days}\n", 1)
    if broker is not None:
        lines = {"broker": broker.url, **upstream}
        text += "[upstream]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in lines.items())
    path.write_text(text)
    return path


# -- 1. steady state --------------------------------------------------------------------------


async def _steady(root: Path, broker: Broker, sub: Subscriber, minutes: int) -> dict[str, Any]:
    intervals = sorted({*LIVE_INTERVALS, DEFAULT.live_interval_s})
    async with contextlib.AsyncExitStack() as stack:
        for interval in intervals:
            work = root / f"live-{interval}"
            work.mkdir()
            _sim, url = await stack.enter_async_context(simulator(work, history_days=0.05))
            config = config_file(work, url, broker, publisher_id=f"bench-live-{interval}",
                                 live_interval_s=interval, initial_days=0.0)  # fmt: skip
            await stack.enter_async_context(gateway(work, config))
        # Whole minutes from 30 s after a boundary, at least 20 s after the last start.
        wall = time.time()
        begin = math.ceil((wall + 20 - 30) / 60) * 60 + 30
        start = time.monotonic() + (begin - wall)
        end = start + minutes * 60
        await asyncio.sleep(end + 2 - time.monotonic())  # the window, and a message in flight
    rows, checks = [], []
    for interval in intervals:
        got = seen(sub, f"bench-live-{interval}", start, end)
        window = end - start
        for writer in (*WRITER_NAMES, "metadata", "status"):
            mine = [s for s in got if s.writer == writer]
            per = [len(records(s)) for s in mine] if writer in WRITER_NAMES else []
            rows.append({
                "live s": interval,
                "writer": writer,
                "messages": len(mine),
                "msg/s": len(mine) / window,
                "B/s": sum(s.size for s in mine) / window,
                "median B/msg": statistics.median(s.size for s in mine) if mine else 0,
                "records/msg max": max(per, default=0),
            })  # fmt: skip
        first = seen(sub, f"bench-live-{interval}")
        checks.append({
            "live s": interval,
            "connect: status + metadata B": sum(s.size for s in first if s.writer in ("metadata", "status")
                                                and s.message.time < start),
        })  # fmt: skip
    return {"uplink_steady": rows, "uplink_connect": checks, "uplink_window_s": end - start}


# -- 2. CPU off and on ------------------------------------------------------------------------


async def _cpu(root: Path, broker: Broker, window_s: float) -> list[dict[str, Any]]:
    work = root / "cpu"
    work.mkdir()
    rows = []
    async with simulator(work, history_days=0.05) as (_sim, url):
        async with settled_gateway(work, config_file(work, url, None)):
            pass  # the box's first start: certificate, node cache, first backfill
        for round_ in (1, 2):
            for on in (False, True):
                (work / "archive" / METER / "uplink.json").unlink(missing_ok=True)
                upstream: dict[str, Any] = {
                    "publisher_id": "bench-cpu",
                    "live_interval_s": 1,
                    "initial_days": 0.0,
                }
                config = config_file(work, url, broker, **upstream) if on else config_file(work, url, None)
                async with settled_gateway(work, config) as (gw, _endpoint):
                    cpu0, wall0 = gw.cpu(), time.monotonic()
                    await asyncio.sleep(window_s)
                    cpu, wall = gw.cpu() - cpu0, time.monotonic() - wall0
                    rows.append({
                        "round": round_,
                        "uplink": "on, live 1 s" if on else "off",
                        "window s": wall,
                        "CPU %": 100 * cpu / wall,
                        "RSS MiB": gw.rss(),
                    })  # fmt: skip
    return rows


def cpu_verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    off = statistics.median(r["CPU %"] for r in rows if r["uplink"] == "off")
    on = statistics.median(r["CPU %"] for r in rows if r["uplink"] != "off")
    return {
        "CPU % off (median)": off,
        "CPU % on (median)": on,
        "added % of a core": on - off,
        "on / off": on / off if off else float("nan"),
        "goal": f"<= {CPU_GOAL_PERCENT} %",
        "verdict": "PASS" if on - off <= CPU_GOAL_PERCENT else "FAIL",
    }


# -- 3. replay of a 24-hour outage ------------------------------------------------------------


def _columns(work: Path) -> tuple[Any, Any, Any]:
    meter = load_config(work / "smx.toml").meters[0]
    by_obis = {i.obis: i for i in CATALOGUE}
    minute = MinuteAggregator([by_obis[o] for o in one_second_set(meter)]).columns
    registers = RegisterSampler(register_set(meter)).columns
    return meter, minute, registers


def _templates(source: Path, stream: str, columns: Sequence[Any]) -> list[list[tuple[int, tuple[Any, ...]]]]:
    """Per whole minute recorded in ``source`` (not the first or last): (microseconds into
    the minute, values) of each record."""
    keys = [(c.obis, c.qualifier) for c in columns]
    minutes: dict[datetime, list[tuple[int, tuple[Any, ...]]]] = {}
    for t, _status, values in ArchiveReader(source, METER).read_columns(stream, keys):
        m = t.replace(second=0, microsecond=0)
        minutes.setdefault(m, []).append((int((t - m) / timedelta(microseconds=1)), values))
    whole = [minutes[m] for m in sorted(minutes)][1:-1]
    if not whole:
        raise RuntimeError(f"no whole minute of {stream} recorded in {source}")
    return whole


def _vary(value: float | None, qualifier: str, rng: random.Random) -> float | None:
    """``value`` moved by up to 2 %, with as many decimals as it had (a minute mean keeps
    its 15-17 digits, a meter's 230.1 its one): a day of different numbers of the real
    lengths, so gzip finds what it would find in a real day, not a repeated minute."""
    text = repr(value)
    if value is None or qualifier == "count" or "e" in text:
        return value
    decimals = len(text.split(".")[1]) if "." in text else 0
    return round(value * (1 + rng.uniform(-0.02, 0.02)), decimals)


def write_day(work: Path, source: Path, end: datetime, span: timedelta) -> None:
    """Minute records and register samples for ``span`` before ``end``: the whole minutes of
    ``source``'s archive (part 1's recorder) one after another, each value varied (:func:`_vary`)."""
    _meter, minute_cols, register_cols = _columns(work)
    rng = random.Random(16)
    writer = ArchiveWriter(work / "archive", METER)
    try:
        for stream, cols in (("minute", minute_cols), ("registers", register_cols)):
            templates = _templates(source, stream, cols)
            rows = []
            first = end - span
            for n in range(int(span / timedelta(minutes=1))):
                m = first + timedelta(minutes=n)
                for offset, values in templates[n % len(templates)]:
                    varied = tuple(_vary(v, c.qualifier, rng) for v, c in zip(values, cols, strict=True))
                    rows.append((m + timedelta(microseconds=offset), 0, varied))
            writer.append(stream, cols, rows)
    finally:
        writer.close()


def archived_times(work: Path) -> dict[str, list[datetime]]:
    meter, _m, _r = _columns(work)
    reader = ArchiveReader(work / "archive", METER)
    out = {}
    for name in REPLAYED:
        spec = BY_NAME[name]
        cols = archive_columns(writer_fields(meter, spec))
        out[name] = [t for t, _s, _v in reader.read_columns(str(spec.stream), cols)]
    return out


async def _until(check: Any, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not check():  # noqa: ASYNC110 - archive files, another process's: nothing to wait on
                await asyncio.sleep(1.0)
    except TimeoutError:
        raise RuntimeError(f"not within {timeout:.0f} s: {what}") from None


async def prepare_outage(work: Path, url: str, source: Path) -> None:
    """The archive of a day offline: 24 h (and a margin) of minute records and register
    samples, then the meter's profiles and events backfilled by a gateway without uplink.
    Runs beside part 1 (its bytes do not depend on the CPU): it waits until part 1's first
    gateway has recorded the minutes it copies."""
    minutes = ArchiveReader(source, METER)
    await _until(lambda: sum(1 for _ in minutes.read("minute")) >= 4, 600, "minutes recorded to copy")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    config = config_file(work, url, None, backfill_days=1.2)
    write_day(work, source, now - timedelta(minutes=1), timedelta(hours=24, minutes=30))
    reader = ArchiveReader(work / "archive", METER)

    def backfilled() -> bool:
        recent = datetime.now(UTC) - timedelta(minutes=40)
        lp2 = reader.last_time("lp2")
        lp1 = reader.last_time("lp1")
        return lp1 is not None and lp1 >= recent and lp2 is not None and lp2 >= recent - timedelta(hours=1)

    async with gateway(work, config):
        await _until(backfilled, 600, "the meter's profiles backfilled")
        await asyncio.sleep(5)  # the event log readout after the profiles, if any


async def _drain(
    work: Path, broker: Broker, sub: Subscriber, publisher: str, compress: bool, cursors: str | None
) -> tuple[dict[str, Any], str, dict[str, list[int]], dict[str, int]]:
    """Start the gateway with the uplink on the outage archive in ``work`` until the
    subscriber has every archived record; its row, the cursors it started from (the state
    file's text), the sizes of records as single messages and the records per writer."""
    state = work / "archive" / METER / "uplink.json"
    if cursors is not None:
        state.write_text(cursors)
    stored = archived_times(work)
    url = load_config(work / "smx.toml").meters[0].url
    config = config_file(work, url, broker, publisher_id=publisher, live_interval_s=1, initial_days=1.0,
                         compress=compress)  # fmt: skip
    tally = Tally(sub, publisher)
    async with gateway(work, config) as (gw, _endpoint):
        t0, cpu0 = time.monotonic(), gw.cpu()
        text = state.read_text()  # written before the gateway announced itself
        start = StateFile(state).load()
        expected = {w: Counter(t for t in stored[w] if t > start[w].cursor.time) for w in REPLAYED}
        total = sum(sum(c.values()) for c in expected.values())
        try:
            await sub.wait_for(lambda _msgs: tally.missing(expected) == 0, timeout=DRAIN_TIMEOUT_S)
            done = True
        except AssertionError:
            done = False
        t1, cpu1 = time.monotonic(), gw.cpu()
    got = seen(sub, publisher, t0, t1 + 0.001)
    replay = [s for s in got if s.writer in REPLAYED]
    live = sorted(s.message.time for s in got if s.writer == "live")
    gaps = [b - a for a, b in itertools.pairwise(live)]
    row = {
        "compress": "gzip" if compress else "no",
        "records": f"{total - tally.missing(expected)}/{total}",
        "drain s": t1 - t0,
        "replay messages": len(replay),
        "replay MB": sum(s.size for s in replay) / 1e6,
        "replay kB/s": sum(s.size for s in replay) / 1e3 / (t1 - t0),
        "msg/s": len(replay) / (t1 - t0),
        "CPU %": 100 * (cpu1 - cpu0) / (t1 - t0),
        "live msgs": len(live),
        "live gap median s": statistics.median(gaps) if gaps else float("nan"),
        "live gap max s": max(gaps, default=float("nan")),
        "complete": "yes" if done else f"NO after {DRAIN_TIMEOUT_S:.0f} s",
    }
    per_day = {w: sum(c.values()) for w, c in expected.items()}
    return row, text, tally.singles, per_day


async def _replay(
    root: Path, broker: Broker, sub: Subscriber, prepared: asyncio.Task[None]
) -> dict[str, Any]:
    work, twin = root / "outage", root / "outage-gzip"
    await prepared
    shutil.copytree(work, twin, ignore=shutil.ignore_patterns("cache"))
    plain, cursors, singles, per_day = await _drain(work, broker, sub, "bench-outage", False, None)
    zipped, _, _, _ = await _drain(twin, broker, sub, "bench-outage-gzip", True, cursors)
    zipped["replay MB / plain"] = zipped["replay MB"] / plain["replay MB"]
    plain["replay MB / plain"] = 1.0
    per_writer = [
        {
            "writer": w,
            "records in 24 h": per_day[w],
            "alone: median B/msg": statistics.median(singles[w]) if singles.get(w) else 0,
        }
        for w in REPLAYED
    ]
    return {"uplink_replay": [plain, zipped], "uplink_day": per_writer}


# -- the volume per month ---------------------------------------------------------------------


def volume(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Bytes per day and month per meter, per live interval: live, minute and registers as
    measured in the steady state, the load profiles and events at part 3's daily count."""
    day = {x["writer"]: x for x in r["uplink_day"]}
    topic_len = {w: len(f"opcua/json/data/bench-live-10/{METER}/{w}") for w in WRITER_NAMES}
    rows = []
    connect = {c["live s"]: c["connect: status + metadata B"] for c in r["uplink_connect"]}
    for interval in sorted({row["live s"] for row in r["uplink_steady"]}):
        steady = {x["writer"]: x for x in r["uplink_steady"] if x["live s"] == interval}
        payload = mqtt = wire = 0.0
        for w in WRITER_NAMES:
            qos = 0 if w == "live" else 1
            if w in ("live", "minute", "registers"):
                per_day = steady[w]["msg/s"] * 86400
                size = steady[w]["B/s"] / steady[w]["msg/s"] if steady[w]["msg/s"] else 0
            else:
                per_day, size = day[w]["records in 24 h"], day[w]["alone: median B/msg"]
            m = mqtt_publish("x" * topic_len[w], int(size), qos, codec.CONTENT_TYPE)
            payload += per_day * size
            mqtt += per_day * m
            wire += per_day * wire_bytes(m, qos)
        reconnect = connect.get(interval, 0)
        mqtt += reconnect
        wire += wire_bytes(reconnect, 1) + HANDSHAKE + watchdog_bytes_per_day("bench-live-10")
        rows.append({
            "live s": interval,
            "default": "yes" if interval == DEFAULT.live_interval_s else "",
            "payload B/s": payload / 86400,
            "payload MB/day": payload / 1e6,
            "payload MB/month": payload * 30 / 1e6,
            "MQTT MB/month": mqtt * 30 / 1e6,
            "wire MB/month (TLS, TCP/IP, ACKs)": wire * 30 / 1e6,
            "wire B/s": wire / 86400,
            "of 1 GB": f"{100 * wire * 30 / BUDGET_BYTES:.0f} %",
            "fits 1 GB": "yes" if wire * 30 <= BUDGET_BYTES else "NO",
        })  # fmt: skip
    return rows


# -- the part ---------------------------------------------------------------------------------


async def measure_uplink(minutes: float = 3.0) -> dict[str, Any]:
    whole = max(1, round(minutes))
    with tempfile.TemporaryDirectory(prefix="smx-bench-uplink-") as tmp:
        root = Path(tmp)
        outage = root / "outage"
        outage.mkdir()
        async with (
            mosquitto(root / "broker") as broker,
            subscriber(broker, "opcua/json/#") as sub,
            simulator(outage, history_days=1.5) as (_sim, url),
        ):
            source = root / f"live-{LIVE_INTERVALS[0]}" / "archive"
            prepared = asyncio.create_task(prepare_outage(outage, url, source))
            try:
                results = await _steady(root, broker, sub, whole)
                await prepared  # before the CPU is measured: nothing else runs then
                results["uplink_cpu"] = await _cpu(root, broker, max(30.0, 10.0 * minutes))
                results.update(await _replay(root, broker, sub, prepared))
            finally:
                prepared.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await prepared
    results["uplink_cpu_goal"] = [cpu_verdict(results["uplink_cpu"])]
    results["uplink_volume"] = volume(results)
    return results


def print_uplink(results: dict[str, Any]) -> None:
    window = results.get("uplink_window_s", 0) / 60
    print(table(f"Uplink steady state per writer, {window:.0f} min window (payload bytes; own processes, "
                "mosquitto on loopback)", results["uplink_steady"]))  # fmt: skip
    print()
    print(table("Bytes per meter and month (30 d); load profiles and events at their count of a day",
                results["uplink_volume"]))  # fmt: skip
    print(f"  wire model: MQTT 5 PUBLISH exact; TLS 1.2 AES-GCM {TLS_RECORD} B per record "
          f"(<= {TLS_RECORD_MAX} B); TCP/IP {TCP_IP} B per segment of <= {MSS} B; back: PUBACK "
          f"(QoS 1) or an ACK every 2nd segment; watchdog UNSUBSCRIBE every {DEFAULT.keepalive_s / 2:g} s; "
          f"1 reconnect a day (TLS handshake ~{HANDSHAKE} B + status and metadata)")  # fmt: skip
    print()
    title = "Gateway CPU with the uplink off and on (alternately, one meter process)"
    print(table(title, results["uplink_cpu"]))
    print(table("", results["uplink_cpu_goal"]))
    print()
    print(table(f"Replay of a 24-hour outage at the default limits ({DEFAULT.replay_messages_per_s:g} msg/s, "
                f"{DEFAULT.replay_bytes_per_s:g} B/s, batch {DEFAULT.batch}); live 1 s meanwhile",
                results["uplink_replay"]))  # fmt: skip
    print(table("", results["uplink_day"]))
