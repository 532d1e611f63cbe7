"""The day export for billing: one line per quarter hour of the site's local day, the
channels as sent, the status word and a completeness flag per line."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from headend.cli import main
from headend.completeness import POWER_DOWN, expected_periods
from headend.config import parse_config
from headend.export import export_day
from headend.storage import Batch, Sample
from headend.storage.sqlite import SqliteRepository

VIENNA = ZoneInfo("Europe/Vienna")
DAY = date(2026, 10, 25)  # 25 hours: 100 quarter hours


def _period(publisher: str, end: object, a_plus: float, status: int) -> list[Sample]:
    return [
        Sample(publisher, "meter1", "lp1", "APlusPerPeriod", end, a_plus, 0),  # type: ignore[arg-type]
        Sample(publisher, "meter1", "lp1", "MeterStatus", end, float(status), 0),  # type: ignore[arg-type]
    ]


async def _fleet(path: Path) -> SqliteRepository:
    repo = SqliteRepository(path)
    await repo.open()
    ends = expected_periods(DAY, VIENNA)
    samples: list[Sample] = []
    for n, end in enumerate(ends):
        if 10 <= n < 14:
            continue  # smx-1: a hole nobody explains
        samples += _period("smx-1", end, 0.25, 0)
    for n, end in enumerate(ends):
        if 50 <= n < 54:
            continue  # smx-2: the meter was down, as its next period says
        samples += _period("smx-2", end, 0.5, POWER_DOWN if n == 54 else 0)
    await repo.store(Batch(samples))
    return repo


async def test_a_day_with_a_hole_and_a_power_down(tmp_path: Path) -> None:
    repo = await _fleet(tmp_path / "h.sqlite")
    config = parse_config({"profile": "demo"}, "x")
    try:
        text = await export_day(repo, config, DAY)
    finally:
        await repo.close()
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert "local day 2026-10-25" in header[0]
    assert (
        "smx-1 meter1: zone Europe/Vienna, 100 periods, 96 stored, 4 missing, 0 not recorded (96.00 %)"
        in header[1]
    )
    assert (
        "smx-2 meter1: zone Europe/Vienna, 100 periods, 96 stored, 0 missing, 4 not recorded (100.00 %)"
        in header[2]
    )
    rows = list(
        csv.DictReader(io.StringIO("\n".join(line for line in text.splitlines() if not line.startswith("#"))))
    )
    assert len(rows) == 200  # 100 quarter hours of each site
    one = [r for r in rows if r["site"] == "smx-1"]
    assert one[0]["start_local"] == "2026-10-25T00:00:00+02:00"
    assert one[0]["start_utc"] == "2026-10-24T22:00:00Z"
    assert one[-1]["end_local"] == "2026-10-26T00:00:00+01:00"  # the clocks went back meanwhile
    assert [r["flag"] for r in one[9:15]] == ["ok", "missing", "missing", "missing", "missing", "ok"]
    assert one[10]["APlusPerPeriod"] == ""
    assert one[9]["APlusPerPeriod"] == "0.25"
    two = [r for r in rows if r["site"] == "smx-2"]
    assert {r["flag"] for r in two[50:54]} == {"not-recorded"}
    assert two[54]["MeterStatus"] == str(POWER_DOWN)


def test_the_command_writes_one_site_to_a_file(tmp_path: Path) -> None:
    async def prepare() -> None:
        repo = await _fleet(tmp_path / "h.sqlite")
        await repo.close()

    asyncio.run(prepare())
    config = tmp_path / "headend.toml"
    config.write_text(f'profile = "demo"\n[storage]\npath = "{tmp_path / "h.sqlite"}"\n')
    out = tmp_path / "day.csv"
    assert (
        main(
            [
                "export",
                "--config",
                str(config),
                "--day",
                DAY.isoformat(),
                "--site",
                "smx-2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    lines = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 1 + 100
    assert all(line.startswith("smx-2,") for line in lines[1:])
    assert (DAY + timedelta(days=1)).isoformat() in lines[-1]
