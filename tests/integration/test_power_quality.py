"""EN 50160 weeks end to end: a previous week planted in the archive (its 10-minute
records and the meter's events, with issue 20's deviations), a gateway started over it,
and the week as OPC UA variables, REST and the CSV the gateway writes into the archive."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asyncua import ua

from gateway.archive.files import ArchiveWriter
from gateway.archive.recorder import EVENT_COLUMNS, PQ_COLUMNS, pq_record
from gateway.clock import ScaledClock
from gateway.quality.en50160 import TenMinutes, week_of
from gateway.security.users import Role
from tests.support.harness import demo, running_gateway

TEN = timedelta(minutes=10)


def plant_last_week(root: Path, now: datetime) -> tuple[datetime, datetime]:
    """The last complete week (UTC zone): 1,008 means at 230 V / 50 Hz, 12 at 205 V, 6 at
    255 V, 30 of the 10-s frequency means at 49.3 Hz; 3 interruptions and 5 dips in
    intervals of their own. Returns the week's bounds."""
    start, _end = week_of(week_of(now, None)[0] - timedelta(seconds=1), None)
    records = []
    for k in range(1008):
        u = 205.0 if 200 <= k < 212 else 255.0 if 400 <= k < 406 else 230.0
        f_band = 30 if k == 600 else 60
        records.append(TenMinutes(start + k * TEN, 600, (u, u, u), 60, f_band, 60))
    events: list[tuple[datetime, int]] = []
    for k, seconds in ((10, 60), (50, 120), (90, 1200)):  # 2 short, 1 long interruption
        at = start + k * TEN + timedelta(minutes=2)
        events += [(at, 1), (at + timedelta(seconds=seconds), 2)]
    for k in (700, 710, 720, 730, 740):  # dips of 20 s on L1
        at = start + k * TEN + timedelta(minutes=3)
        events += [(at, 76), (at + timedelta(seconds=20), 82)]
    writer = ArchiveWriter(root, "meter1")
    try:
        writer.append("pq10", PQ_COLUMNS, [pq_record(r) for r in records])
        writer.append("events", EVENT_COLUMNS, [(t, 0, (float(code),)) for t, code in sorted(events)])
    finally:
        writer.close()
    return start, start + timedelta(days=7)


@pytest.mark.slow
async def test_the_last_week_in_opcua_rest_and_the_archive(tmp_path: Path) -> None:
    # The gateway and its meter live on a Wednesday noon (a week ahead): whatever the day of
    # the run, the meter's own history (two days) and backfill lie in the running week.
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    wednesday = today + timedelta(days=7 + (2 - today.weekday()) % 7)
    root = tmp_path / "archive"
    start, end = plant_last_week(root, wednesday)
    config = demo()
    meter = config.meters[0]
    assert meter.simulator is not None
    quiet = replace(meter, simulator=replace(meter.simulator, disturbances_per_week=0.0))
    archive = replace(config.archive, path=str(root), initial_backfill_days=0.1)
    config = replace(config, archive=archive, meters=(quiet,))
    async with running_gateway(config, ScaledClock(wednesday), login=Role.OPERATOR) as gw:
        await gw.gateway.pollers["meter1"].wait_snapshot()
        assert gw.gateway.quality is not None
        report = await gw.gateway.quality.week("meter1", last=True)
        # 1,008 means; 3 + 5 intervals flagged (one interruption lasts 20 minutes and
        # flags 3); 1,008 - 10 = 998 judged.
        assert (report.intervals, report.valid, report.flagged) == (1008, 1008, 10)
        clean = 998
        assert report.criterion("Voltage within Un ±10 %").measured == pytest.approx(
            100 * (clean - 18) / clean
        )
        assert report.criterion("Voltage within Un +10 %/−15 %").measured == pytest.approx(
            100 * (clean - 6) / clean
        )
        f = report.criterion("Frequency within 50 Hz ±1 %").measured
        assert f == pytest.approx(100 * (60 * clean - 30) / (60 * clean))
        assert report.verdict.value == "fail"

        # OPC UA: the same numbers below meter1/PowerQuality/LastWeek.
        week = "meter1.PowerQuality.LastWeek"

        async def read(name: str) -> object:
            return await gw.node(f"{week}.{name}").read_value()

        assert gw.gateway.quality_nodes is not None
        await gw.gateway.quality_nodes.refresh()
        assert await read("WeekStart") == start
        assert await read("Verdict") == "fail"
        assert await read("TenMinuteMeans") == 1008
        assert await read("VoltageWithinBand") == pytest.approx(100 * (clean - 18) / clean)
        assert (await read("ShortInterruptions"), await read("LongInterruptions"), await read("Dips")) == (
            2,
            1,
            5,
        )
        running = await gw.node("meter1.PowerQuality.RunningWeek.VoltageWithinBand").read_data_value(False)
        assert running.StatusCode.value in (ua.StatusCodes.Good, ua.StatusCodes.BadNoData)

        # The archive: the completed week as CSV (the gateway looks for it at start and then
        # every 10 minutes; asked here, it finds it written or writes it now).
        await gw.gateway.quality.write_completed()
        path = root / "meter1" / "pq-week" / f"{start.date().isoformat()}.csv"
        assert path.exists()
        text = path.read_text()
        assert "Voltage within Un +10 %/−15 %,4.2.2,99.399,%,≥ 100 % of 10-min means,fail" in text
        assert "Voltage dips,4.2.6,5,,indicative," in text
    assert end > start
