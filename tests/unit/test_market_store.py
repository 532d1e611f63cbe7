"""Notified profiles on disk: whole-day files, replaced atomically, old versions kept."""

from __future__ import annotations

import csv
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.errors import ArchiveError
from gateway.localtime import meter_zone
from gateway.market.periods import MarketCalendar
from gateway.market.profiles import NotifiedProfile, make_profile
from gateway.market.store import ProfileStore
from tests.support.disks import fill, tiny_disk

VIENNA = meter_zone("Europe/Vienna")
assert VIENNA is not None
Q15 = MarketCalendar(VIENNA, 15)
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def store(root: Path) -> ProfileStore:
    return ProfileStore(root, "meter1", Q15, "Europe/Vienna")


def test_profile_round_trip_on_a_dst_day_and_the_file_reads_as_csv(tmp_path: Path) -> None:
    day = date(2026, 3, 29)
    profile = make_profile(Q15, day, [0.25 * (n % 4) - 0.5 for n in range(92)], now=NOW)
    profiles = store(tmp_path)
    profiles.save(profile, registered=NOW)
    assert profiles.load(day) == profile
    assert profiles.load(date(2026, 3, 30)) is None
    assert profiles.days() == [day]
    with open(profiles.path(day), newline="") as f:
        rows = list(csv.reader(line for line in f if not line.startswith("#")))
    assert rows[0] == ["time", "status", "1-0:16.29.0 [kWh]"]
    assert rows[1] == ["2026-03-28T23:00:00Z", "1", "-0.5"]  # local midnight CET
    assert rows[-1] == ["2026-03-29T21:45:00Z", "92", "0.25"]  # the last quarter before local midnight CEST
    assert "delivery day 2026-03-29 (Europe/Vienna), 92 periods of 15 min" in profiles.path(day).read_text()


def test_replacing_keeps_the_old_profile_for_the_audit(tmp_path: Path) -> None:
    day = date(2026, 6, 2)
    profiles = store(tmp_path)
    first = NotifiedProfile(day, 15, (1.0,) * 96)
    second = NotifiedProfile(day, 15, (2.0,) * 96)
    profiles.save(first, registered=NOW)
    old_bytes = profiles.path(day).read_bytes()
    profiles.save(second, registered=NOW)
    assert profiles.load(day) == second
    assert (profiles.folder / "2026-06-02.csv.replaced-1").read_bytes() == old_bytes
    assert sorted(os.listdir(profiles.folder)) == ["2026-06-02.csv", "2026-06-02.csv.replaced-1"]


def test_full_disk_leaves_the_stored_profile_intact(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk") as disk:
        profiles = store(disk)
        day = date(2026, 6, 2)
        first = NotifiedProfile(day, 15, (1.0,) * 96)
        profiles.save(first, registered=NOW)
        fill(disk)
        with pytest.raises(ArchiveError, match="cannot store the profile of 2026-06-02: No space left"):
            profiles.save(NotifiedProfile(day, 15, (123456.789,) * 96), registered=NOW)
        assert profiles.load(day) == first
        assert not list(profiles.folder.glob("*.tmp"))
