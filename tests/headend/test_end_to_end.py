"""The fleet end to end (issue 17, points 1 and 2): gateways -> mosquitto -> head-end
instances of one shared-subscription group -> a database; every record each gateway
archived is stored once, and every hole is found and filled without an operator.

Two kinds of runs:

* **Real processes** (``smx-gateway run``, ``smx-headend run``, mosquitto, a PostgreSQL
  cluster made for the test), started by the fleet tool (:mod:`tools.fleet`, the same code
  as ``make fleet``): the three-site run and the instance SIGKILLed mid-batch. They run in
  real time: a gateway backfills a day of load profile from its simulated meter and
  replays it, the minute records come once a minute.
* **In process, time stretched** (as ``test_fleet.py``: the gateway and the instances on
  one :class:`ScaledClock` at 8x): the five-minute broker stop, the thirty-minute uplink
  cut, the dropped message, where real time would take longer than a test may.

Afterwards every gateway's archive is read with the gateway's own reader and compared with
the database: every record the box had acknowledged (or delivered) is stored, exactly once
(rows per (publisher, meter, stream, field, time)), nothing stored that the box never had;
and the affected local days are complete (:func:`headend.completeness.completeness`) over
what the box had. Waits are for conditions with deadlines; nothing sleeps to let things
happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomqtt
import asyncpg
import pytest

from gateway.archive.files import ArchiveReader
from gateway.clock import ScaledClock, SystemClock
from gateway.config import GatewayConfig
from gateway.uplink.service import Uplink
from gateway.uplink.writers import BY_NAME, writer_fields
from headend.completeness import POWER_DOWN, completeness
from headend.config import CompletenessConfig, SiteConfig
from headend.storage import Repository
from tests.support.broker import blackhole_proxy, mosquitto, require_mosquitto
from tests.support.harness import PUBLISHER, headend_instance, publishing, running_gateway
from tests.support.headend_messages import data_message, lp1_values, metadata_message, topic
from tests.support.mqtt_proxy import dropping_proxy
from tests.support.postgres import require_postgres
from tools.fleet import Fleet, Options, check, drain, fleet, repository, split_of, wait_online

SPEED = 8.0
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
#: The zone of the in-process gateway's site (the demo meter's).
ZONE = "Europe/Vienna"
#: The fleet pages on free ports (a demo may hold 8090).
LISTEN = "127.0.0.1:0"
#: The in-process instances' sites: the publishing gateway and the power-down box.
SITES = (SiteConfig(PUBLISHER, timezone=ZONE), SiteConfig("smx-pd", timezone=ZONE))


@pytest.fixture(autouse=True)
def _mosquitto_installed() -> None:
    require_mosquitto()


async def until(condition: Callable[[], Awaitable[bool] | bool], timeout: float, what: str) -> None:
    """Wait until ``condition`` holds, looking every 0.25 s; fail after ``timeout`` s."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = condition()
                if await result if isinstance(result, Awaitable) else result:
                    return
                await asyncio.sleep(0.25)  # a database or a file has no change event to wait on
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what}") from None


# -- real processes ----------------------------------------------------------------------


async def lp1_days_stored(running: Fleet, repo: Repository, periods: int = 96) -> bool:
    """Whether every site's day of load profile (and a minute record) is in the database."""
    for gw in running.gateways:
        if len(await repo.times(gw.publisher, "meter1", "lp1", *EVER)) < periods:
            return False
        if not await repo.times(gw.publisher, "meter1", "minute", *EVER):
            return False
    return True


async def finish(running: Fleet) -> tuple[list[str], dict[str, tuple[int, int, int]]]:
    """Until the database has what the boxes archived, then stop them (cleanly) and the
    instances; the check's rows printed and asserted, and the split."""
    await drain(running, 120)
    await running.stop_gateways()
    summaries = await running.stop_headends()
    results = await check(running)
    for r in results:
        print(r)
        assert r.acknowledged > 0, r
        assert (r.missing, r.duplicates, r.foreign) == (0, 0, 0), r
        # The records archived after the last acknowledgement: the last minute at the stop.
        assert r.archived - r.acknowledged <= 2, r
    return summaries, split_of(summaries)


@pytest.mark.slow
async def test_three_gateways_two_instances_postgresql_every_record_stored_once(tmp_path: Path) -> None:
    require_postgres()
    options = Options(gateways=3, instances=2, storage="postgresql", var=tmp_path / "fleet", http=LISTEN)
    async with fleet(options) as running:
        await wait_online(running, 120, report=False)
        async with repository(running) as repo:
            await until(lambda: lp1_days_stored(running, repo), 150, "every site's day of load profile")
        _summaries, split = await finish(running)
    # Each instance took part of the data (a shared subscription), neither all of it.
    assert len(split) == 2, split
    assert all(accepted > 0 for _m, accepted, _r in split.values()), split
    print(f"split (messages, DataSetMessages accepted, rows) per instance: {split}")


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (its database connections among them)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cells = line.split()
            if cells[9] in inodes:
                ports.add(int(cells[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.slow
async def test_an_instance_killed_mid_batch_loses_nothing(tmp_path: Path) -> None:
    """Mid-batch for certain: the test holds a lock on the samples table, so each instance's
    next store waits in the database with its batch received and not committed; the one
    whose connection waits is SIGKILLed. Its batch was never acknowledged: the boxes send
    it again after ``ack_timeout_s``, and the other instance stores it."""
    require_postgres()
    options = Options(gateways=2, instances=2, storage="postgresql", var=tmp_path / "fleet", http=LISTEN,
                      upstream={"ack_timeout_s": "5"})  # fmt: skip
    async with fleet(options) as running:
        await wait_online(running, 120, report=False)
        victim, survivor = running.headends
        blocker = await asyncpg.connect(running.dsn)
        try:
            lock = blocker.transaction()
            await lock.start()
            await blocker.execute("LOCK TABLE samples IN SHARE MODE")

            async def victim_waits() -> bool:
                waiting = await blocker.fetch(
                    "SELECT client_port FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                )
                return bool({r["client_port"] for r in waiting} & local_ports(victim.pid))

            await until(victim_waits, 60, "the victim's store waiting on the lock")
            victim.signal_group(signal.SIGKILL)
            await victim.process.wait()
            await lock.rollback()
        finally:
            await blocker.close()
        async with repository(running) as repo:
            await until(lambda: lp1_days_stored(running, repo), 150, "every site's day of load profile")
        summaries, split = await finish(running)
    assert victim.process.returncode == -signal.SIGKILL
    # What the victim had taken was never acknowledged: a box sent it again, to the survivor.
    resent = [x for gw in running.gateways if gw.child for x in gw.child.lines if "sending again" in x]
    assert resent
    assert list(split) == [survivor.name], summaries  # the victim never said goodbye
    print(f"survivor's share after the kill: {split}; {len(resent)} resend(s) by the boxes")


# -- in process, time stretched ------------------------------------------------------------


def archived(config: GatewayConfig, reader: ArchiveReader, writer: str) -> list[datetime]:
    columns = [f.column for f in writer_fields(config.meters[0], BY_NAME[writer]) if f.column]
    return [t for t, _s, _v in reader.read_columns(writer, columns, *EVER)]


def caught_up(uplink: Uplink, reader: ArchiveReader, writers: tuple[str, ...], consumer: bool = True) -> bool:
    """Whether the fleet has everything of ``writers`` the archive holds."""
    for writer in writers:
        last = reader.last_time(writer)
        status = next(w for w in uplink.status().writers if w.writer == writer)
        done = status.last_acknowledged if consumer else status.last_delivered
        if last is None or done != last:
            return False
    return True


async def assert_stored_once_and_complete(
    repo: Repository, config: GatewayConfig, reader: ArchiveReader, through: dict[str, datetime],
    days: set[date],
) -> dict[str, int]:  # fmt: skip
    """Every record archived up to ``through`` (per writer: what the fleet had acknowledged
    when the test looked; the stopping gateway archives a last minute after it) is stored,
    once per field, and nothing the box never had; the ``days`` complete over what the box
    had (before its first archived period there was nothing to send)."""
    counts = {}
    for writer, last in through.items():
        times = set(archived(config, reader, writer))
        rows = await repo.samples(PUBLISHER, "meter1", writer, *EVER)
        per_key = Counter((r.field, r.time) for r in rows)
        assert max(per_key.values()) == 1
        stored = {r.time for r in rows}
        assert {t for t in times if t <= last} <= stored, writer
        assert stored <= times, writer
        counts[writer] = len(stored)
    lp1 = archived(config, reader, "lp1")
    first, last = min(lp1), through["lp1"]
    zone = ZoneInfo(ZONE)
    for day in days:
        stored_lp1 = {t: 0 for t in await repo.times(PUBLISHER, "meter1", "lp1", *EVER)}
        verdict = completeness(day, zone, stored_lp1)
        holes = [t for t in verdict.missing if first <= t <= last]
        assert not holes, (day, holes)
    return counts


def acknowledged(uplink: Uplink, writers: tuple[str, ...]) -> dict[str, datetime]:
    """Per writer, the time through which the fleet has acknowledged it."""
    out = {}
    for status in uplink.status().writers:
        if status.writer in writers:
            assert status.last_acknowledged is not None
            out[status.writer] = status.last_acknowledged
    return out


def local_days(start: datetime, end: datetime) -> set[date]:
    zone = ZoneInfo(ZONE)
    return {start.astimezone(zone).date(), end.astimezone(zone).date()}


@pytest.mark.slow
async def test_a_broker_stopped_for_five_minutes_leaves_no_hole(tmp_path: Path) -> None:
    clock = ScaledClock(datetime.now(UTC), SPEED)
    db = tmp_path / "fleet.sqlite"
    writers = ("lp1", "minute")
    async with (
        mosquitto(tmp_path / "broker", persistence=True) as broker,
        headend_instance(broker, db, "headend-1", clock, None, SITES) as first,
        headend_instance(broker, db, "headend-2", clock, None, SITES) as second,
    ):
        config = publishing(tmp_path, broker, ack="consumer", writers=writers, ack_timeout_s=10.0,
                            reconnect_first_s=2.0, reconnect_max_s=4.0)  # fmt: skip
        async with running_gateway(config, clock) as running:
            uplink = running.gateway.uplink
            assert uplink is not None
            reader = running.gateway.recorders["meter1"].archive.reader
            await until(lambda: caught_up(uplink, reader, writers), 120, "the day acknowledged")
            # Two minutes before a quarter hour: the outage spans a load-profile period's end.
            now = clock.now()
            quarter = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0) + timedelta(
                minutes=15
            )
            if quarter - now > timedelta(minutes=2):
                clock.jump((quarter - timedelta(minutes=2) - now).total_seconds())
            outage_start = clock.now()
            await broker.stop()
            await clock.sleep(300)
            outage_end = clock.now()
            await broker.start()

            def after_outage() -> bool:
                minutes = archived(config, reader, "minute")
                return max(minutes) > outage_end and caught_up(uplink, reader, writers)

            await until(after_outage, 120, "what the box archived during the outage acknowledged")
            through = acknowledged(uplink, writers)
        during = [t for t in archived(config, reader, "minute") if outage_start <= t <= outage_end]
        assert len(during) >= 4
        counts = await assert_stored_once_and_complete(
            first.repository, config, reader, through, local_days(outage_start, outage_end)
        )
    split = (first.counters.accepted, second.counters.accepted)
    assert all(n > 0 for n in split), split
    print(f"broker away {outage_end - outage_start} (gateway time); stored {counts}; split {split}")


@pytest.mark.slow
async def test_an_uplink_cut_for_thirty_minutes_is_caught_up(tmp_path: Path) -> None:
    """The link goes silent (no FIN, no RST) for 30 minutes of the gateway's time: the
    watchdog gives it up within a keepalive, the clock jumps over the rest (the meter lives
    through it: its load profile has the periods), then the link is back."""
    clock = ScaledClock(datetime.now(UTC), SPEED)
    db = tmp_path / "fleet.sqlite"
    writers = ("lp1", "minute")
    async with (
        mosquitto(tmp_path / "broker") as broker,
        blackhole_proxy(broker.host, broker.port) as proxy,
        headend_instance(broker, db, "headend-1", clock, None, SITES) as first,
        headend_instance(broker, db, "headend-2", clock, None, SITES),
    ):
        config = publishing(tmp_path, broker, ack="consumer", writers=writers, ack_timeout_s=10.0,
                            keepalive_s=20, reconnect_first_s=2.0, reconnect_max_s=4.0)  # fmt: skip
        config = replace(config, upstream=replace(config.upstream, broker=f"mqtt://127.0.0.1:{proxy.port}"))
        async with running_gateway(config, clock) as running:
            uplink = running.gateway.uplink
            assert uplink is not None
            reader = running.gateway.recorders["meter1"].archive.reader
            await until(lambda: caught_up(uplink, reader, writers), 120, "the day acknowledged")
            cut_start = clock.now()
            proxy.stall()
            await until(lambda: uplink.status().state != "connected", 60, "the watchdog giving the link up")
            clock.jump(max(0.0, 1800 - (clock.now() - cut_start).total_seconds()))
            cut_end = clock.now()
            proxy.cut()
            proxy.resume()

            def after_cut() -> bool:
                lp1 = archived(config, reader, "lp1")
                return max(lp1) >= cut_end - timedelta(minutes=15) and caught_up(uplink, reader, writers)

            await until(after_cut, 120, "the periods of the cut archived and acknowledged")
            through = acknowledged(uplink, writers)
        assert len([t for t in archived(config, reader, "lp1") if cut_start < t <= cut_end]) >= 1
        counts = await assert_stored_once_and_complete(
            first.repository, config, reader, through, local_days(cut_start, cut_end)
        )
    print(f"uplink cut {cut_end - cut_start} (gateway time); stored {counts}")


@pytest.mark.slow
async def test_a_message_dropped_on_the_way_is_found_and_asked_for(tmp_path: Path) -> None:
    """Broker acknowledgements: a proxy swallows the third lp1 message and acknowledges it
    itself, so the box moves on. Only the head-end's completeness check can find the hole;
    it asks the box for it, the box replays it from its archive."""
    clock = ScaledClock(datetime.now(UTC), SPEED)
    db = tmp_path / "fleet.sqlite"
    quick = CompletenessConfig(check_s=2.0, grace_s=0.0, per_publisher_s=2.0)
    async with (
        mosquitto(tmp_path / "broker") as broker,
        dropping_proxy(broker.port, "/lp1", drop=3) as proxy,
        headend_instance(broker, db, "headend-1", clock, quick, SITES) as headend,
    ):
        config = publishing(tmp_path, broker, ack="broker", writers=("lp1",), batch=8)
        config = replace(config, upstream=replace(config.upstream, broker=proxy.url))
        async with running_gateway(config, clock) as running:
            reader = running.gateway.recorders["meter1"].archive.reader
            dropped = await proxy.wait_dropped(60)
            lost = [datetime.fromisoformat(m["Timestamp"]) for m in _messages(dropped.payload)]
            assert lost

            seen: list[datetime] = []
            missing: set[datetime] = set()

            async def filled() -> bool:
                stored = set(await headend.repository.times(PUBLISHER, "meter1", "lp1", *EVER))
                seen[:] = archived(config, reader, "lp1")
                missing.clear()
                missing.update((set(lost) | set(seen)) - stored)
                return not missing

            try:
                await until(filled, 120, f"the dropped periods {lost[0]}..{lost[-1]} stored")
            except AssertionError as err:
                raise AssertionError(f"{err}; missing {sorted(missing)}") from None
            through = {"lp1": max(seen)}
        assert headend.counters.requests >= 1
        await assert_stored_once_and_complete(
            headend.repository, config, reader, through, local_days(lost[0], lost[-1])
        )
    print(f"dropped {len(lost)} period(s) from {lost[0]}; replay requests {headend.counters.requests}")


def _messages(payload: bytes) -> list[dict[str, str]]:
    import json

    messages: list[dict[str, str]] = json.loads(payload)["Messages"]
    return messages


async def test_a_meters_power_down_is_flagged_and_asked_for_once(tmp_path: Path) -> None:
    """Recorded messages through the broker: a day of load profile with two holes. The one
    followed by a period with the power-down bit is most likely the meter's own (it had no
    supply): flagged as not recorded and asked for once only (a message lost just before a
    short outage would look the same); the other one is asked for until given up."""
    db = tmp_path / "fleet.sqlite"
    publisher = "smx-pd"
    zone = ZoneInfo(ZONE)
    clock = SystemClock()
    yesterday = clock.now().astimezone(zone).date() - timedelta(days=1)
    start = datetime.combine(yesterday, datetime.min.time(), tzinfo=zone).astimezone(UTC)
    periods = [start + timedelta(minutes=15) * (n + 1) for n in range(96)]
    outage, lost = periods[40:44], periods[70:72]
    records = []
    for n, t in enumerate(periods):
        if t in outage or t in lost:
            continue
        records.append((t, lp1_values(n), POWER_DOWN if t == periods[44] else 0))
    never = CompletenessConfig(check_s=3600.0, grace_s=0.0, per_publisher_s=0.01)
    async with (
        mosquitto(tmp_path / "broker") as broker,
        headend_instance(broker, db, "headend-1", clock, never, SITES) as headend,
        aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as box,
    ):
        await box.publish(topic("metadata", "lp1", publisher), metadata_message("lp1", publisher), qos=1,
                          retain=True)  # fmt: skip
        for n in range(0, len(records), 30):
            await box.publish(topic("data", "lp1", publisher), data_message("lp1", records[n : n + 30],
                              publisher), qos=1)  # fmt: skip

        async def stored() -> bool:
            return len(await headend.repository.times(publisher, "meter1", "lp1", *EVER)) == len(records)

        await until(stored, 30, "the recorded day stored")
        # The oldest hole first: the outage, asked once (test_completeness.py: then the
        # lost periods until given up, the outage never again).
        requests = [r for r in await headend.holes() if r.publisher == publisher]
        rows = await headend.repository.samples(publisher, "meter1", "lp1", *EVER, ["MeterStatus"])
    assert [(r.start, r.end) for r in requests] == [(outage[0], outage[-1])]
    verdict = completeness(yesterday, zone, {r.time: int(r.value or 0) for r in rows})
    assert verdict.not_recorded == tuple(outage)
    assert verdict.missing == tuple(lost)
