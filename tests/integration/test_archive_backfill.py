"""Issue requirement: a meter link cut for two simulated hours; afterwards the
load-profile archive has all 8 missing periods, read from the meter, and HistoryRead
returns them.

The gateway and its in-process simulated meter share one ScaledClock at real speed. The
test waits for the first readout of the meter's profiles to be archived, makes the meter
stop answering until the gateway sees the link fail, moves the shared clock two hours on
at once (the meter keeps capturing its load profile meanwhile), lets the meter answer
again, and checks the archive and OPC UA HistoryRead against the meter's own buffer.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.clock import ScaledClock
from gateway.meter.model import LinkState
from gateway.simulator.physics import LoadProfile1Entry
from tests.support.harness import demo, running_gateway

PERIOD = timedelta(minutes=15)
CHANNELS = ("1-0:1.29.0", "1-0:2.29.0", "1-0:3.29.0", "1-0:4.29.0")
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def last_period_end(t: datetime) -> datetime:
    return EPOCH + (t - EPOCH) // PERIOD * PERIOD


def as_read(e: LoadProfile1Entry) -> tuple[float, ...]:
    """The entry's values as the meter sends them: Wh with scaler -2, read as kWh."""
    return tuple(round(v * 1e5) / 1e5 for v in (e.a_plus, e.a_minus, e.r_plus, e.r_minus))


@pytest.mark.slow
async def test_two_hour_link_cut_is_backfilled_into_archive_and_history() -> None:
    clock = ScaledClock(datetime.now(UTC), 1.0)
    started = clock.now()
    config = demo()
    # The first readout reads 6 hours back, not a day: the test is about the gap after it.
    config = replace(config, archive=replace(config.archive, initial_backfill_days=0.25))
    async with running_gateway(config, clock) as gw:
        gateway = gw.gateway
        poller = gateway.pollers["meter1"]
        recorder = gateway.recorders["meter1"]
        sim = gateway.simulators["meter1"]
        reader = recorder.archive.reader
        assert sim.meter_clock.base is clock  # the meter lives on the gateway's time

        # The first readout (a day of both load profiles and the event log) is archived.
        async with asyncio.timeout(120):
            while not (
                poller.readouts_pending == 0
                and recorder.idle.is_set()
                and (reader.last_time("lp1") or EPOCH) >= last_period_end(started)
            ):
                await poller.wait_snapshot()
        before = reader.last_time("lp1")
        assert before is not None
        phases = [f"first readout archived after {clock.monotonic():.1f} s"]

        # Cut: the meter stops answering; wait until the gateway notices.
        sim.faults.silent = True
        async with asyncio.timeout(30):
            while (await poller.wait_snapshot()).diagnostics.link not in (LinkState.DEGRADED, LinkState.LOST):
                pass
        phases.append(f"link failure seen after {clock.monotonic():.1f} s")
        clock.jump(2 * 3600)
        async with asyncio.timeout(30):
            while (await poller.wait_snapshot()).diagnostics.link is not LinkState.LOST:
                pass  # two hours without an answer: lost, not merely degraded
        assert reader.last_time("lp1") == before  # nothing came in meanwhile

        # Restore: the gateway signs on again and reads what it missed.
        sim.faults.silent = False
        restored = clock.monotonic()
        target = last_period_end(clock.now())
        async with asyncio.timeout(60):
            while (reader.last_time("lp1") or EPOCH) < target or not recorder.idle.is_set():
                await poller.wait_snapshot()
        assert poller.diagnostics.link is LinkState.ONLINE
        phases.append(f"gap archived {clock.monotonic() - restored:.1f} s after the link came back")

        missing = []
        t = before + PERIOD
        while t <= target:
            missing.append(t)
            t += PERIOD
        assert len(missing) in (8, 9)  # two hours, plus one if a period ended while we waited

        meter = {e.end: e for e in sim.physics.load_profile_1}
        archived = list(reader.read("lp1", before, target))
        assert [r.time for r in archived] == [before, *missing]  # contiguous, nothing twice
        for rec in archived[1:]:
            entry = meter[rec.time]
            assert rec.status == int(entry.status)
            assert rec.values == pytest.approx(as_read(entry), abs=1e-9), rec.time
        columns = list(reader.read_columns("lp1", [(c, "") for c in CHANNELS], missing[0], target))
        assert [t for t, _, _ in columns] == missing
        assert [cells for _, _, cells in columns] == [r.values for r in archived[1:]]

        # OPC UA HistoryRead of the A+ channel returns the same periods, stamped with their
        # ends (start inclusive, end exclusive: one second past the last end).
        node = gw.node("meter1.P.01.1-0:1.29.0")
        history = await node.read_raw_history(missing[0], target + timedelta(seconds=1), return_bounds=False)
        assert [utc(v.SourceTimestamp) for v in history] == missing
        assert all(v.StatusCode.is_good() for v in history)
        assert [v.Value.Value for v in history] == pytest.approx([as_read(meter[t])[0] for t in missing])
        print(f"{len(missing)} periods backfilled; " + "; ".join(phases))


def utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
