"""Iec21Meter.read_clock: the meter's wall clock (0.9.2 date, 0.9.1 time, no season flag)
in its configured zone, as UTC; Europe/Vienna 2026 (CET = UTC+1, CEST = UTC+2; summer
time from 29 March 01:00 UTC to 25 October 01:00 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from gateway.localtime import meter_zone
from gateway.meter.iec21 import Iec21Meter
from gateway.protocols.iec62056_21 import DataSet

VIENNA = meter_zone("Europe/Vienna")
_FORMATS = {"0.9.2": "%y-%m-%d", "0.9.1": "%H:%M:%S"}


class WallClock:
    """A programming-mode session whose meter shows ``shown`` on its date and time."""

    def __init__(self, shown: datetime) -> None:
        self.shown = shown

    async def read(self, address: str) -> DataSet:
        return DataSet(address, (self.shown.strftime(_FORMATS[address]),))


async def read_clock(shown: datetime, zone: tzinfo | None, near: datetime) -> datetime:
    meter = Iec21Meter(WallClock(shown), zone)  # type: ignore[arg-type]
    return await meter.read_clock(near)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("shown", "near", "expected"),
    [
        # Ordinary days have one reading, whatever the gateway's time.
        (datetime(2026, 1, 15, 12, 0, 0), utc(2026, 1, 15, 11, 0, 0), utc(2026, 1, 15, 11, 0, 0)),
        (datetime(2026, 7, 15, 12, 0, 0), utc(2026, 7, 15, 10, 0, 0), utc(2026, 7, 15, 10, 0, 0)),
        # A meter an hour fast in winter is not taken for one on summer time.
        (datetime(2026, 1, 15, 12, 0, 0), utc(2026, 1, 15, 10, 0, 0), utc(2026, 1, 15, 11, 0, 0)),
        # Autumn: 02:30 is shown twice; the pass the gateway is in is taken.
        (datetime(2026, 10, 25, 2, 30, 0), utc(2026, 10, 25, 0, 30, 1), utc(2026, 10, 25, 0, 30, 0)),
        (datetime(2026, 10, 25, 2, 30, 0), utc(2026, 10, 25, 1, 30, 1), utc(2026, 10, 25, 1, 30, 0)),
        # ... also for a clock a little off: 10 minutes slow in the second pass.
        (datetime(2026, 10, 25, 2, 20, 0), utc(2026, 10, 25, 1, 30, 0), utc(2026, 10, 25, 1, 20, 0)),
        # Spring: 02:30 is no wall time; a meter still on normal time (switching late) or
        # already on summer time (switching early) is read by the instant it counts.
        (datetime(2026, 3, 29, 2, 30, 0), utc(2026, 3, 29, 1, 30, 2), utc(2026, 3, 29, 1, 30, 0)),
        (datetime(2026, 3, 29, 2, 30, 0), utc(2026, 3, 29, 0, 30, 2), utc(2026, 3, 29, 0, 30, 0)),
    ],
    ids=[
        "winter",
        "summer",
        "winter-hour-fast",
        "autumn-first-pass",
        "autumn-second-pass",
        "autumn-second-pass-slow",
        "spring-gap-late-switch",
        "spring-gap-early-switch",
    ],
)
async def test_local_wall_clock_is_read_as_utc(shown: datetime, near: datetime, expected: datetime) -> None:
    assert await read_clock(shown, VIENNA, near) == expected


async def test_without_a_zone_the_clock_is_utc() -> None:
    shown = datetime(2026, 10, 25, 2, 30, 0)
    for near in (utc(2026, 10, 25, 0, 30, 0), utc(2026, 10, 25, 1, 30, 0)):
        assert await read_clock(shown, None, near) == utc(2026, 10, 25, 2, 30, 0)


@pytest.mark.parametrize("day", [utc(2026, 3, 28, 12), utc(2026, 10, 24, 12)], ids=["spring", "autumn"])
async def test_a_right_clock_reads_right_every_minute_around_a_change(day: datetime) -> None:
    """A meter whose clock is right, read by a gateway up to 20 minutes off either way:
    every minute of the day around the change reads as the instant it is."""
    vienna = ZoneInfo("Europe/Vienna")
    for minute in range(24 * 60):
        moment = day + timedelta(minutes=minute, seconds=17)
        shown = moment.astimezone(vienna).replace(tzinfo=None)
        for skew in (-20, 0, 20):
            near = moment + timedelta(minutes=skew)
            assert await read_clock(shown, VIENNA, near) == moment, f"{shown} read near {near}"
