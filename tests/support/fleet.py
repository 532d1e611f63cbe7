"""A small stored fleet for the head-end's REST and page tests (tests/headend/test_rest_api.py,
test_fleet_page.py), written with the repository's real ``store()``, and the API serving it.

The clock stands still at :data:`NOW`, Tuesday 2026-10-27 11:00 in Vienna, so the last seven
local days hold the Sunday the clocks went back (2026-10-25: 100 quarter hours) and today
has 44 quarter hours due:

* ``smx-1`` (Vienna): every quarter hour of the week so far, but for a hole of four on
  2026-10-24 nobody explains; minute records and events of this morning; online, backlog 3.
* ``smx-2`` (London): a hole of four on 2026-10-26 that the meter itself did not record
  (the next period's status word has the power-down bit); offline.
* ``smx-3``: configured, never heard of.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.clock import ManualClock
from headend.completeness import POWER_DOWN, expected_periods
from headend.config import HeadendConfig, parse_config
from headend.storage import Batch, Event, Repository, Sample, SiteState
from headend.web.api import FleetApi, FleetServer

NOW = datetime(2026, 10, 27, 10, 0, tzinfo=UTC)
VIENNA, LONDON = ZoneInfo("Europe/Vienna"), ZoneInfo("Europe/London")
WEEK = [date(2026, 10, 21) + timedelta(days=n) for n in range(7)]
DST_DAY = date(2026, 10, 25)
HOLE_DAY, HOLE = date(2026, 10, 24), range(40, 44)  # smx-1: periods 41..44 of the day missing
DOWN_DAY, DOWN = date(2026, 10, 26), range(20, 24)  # smx-2: not recorded, period 25 says so
METER = "meter1"
#: Minute records of smx-1: 09:50 to 09:59 UTC.
MINUTES = [NOW - timedelta(minutes=10 - n) for n in range(10)]
EVENT_TIMES = [NOW - timedelta(hours=2), NOW - timedelta(minutes=30)]


def config(**top: object) -> HeadendConfig:
    return parse_config(
        {
            "profile": "demo",
            "sites": [
                {"publisher": "smx-1", "name": "Vienna 1", "timezone": "Europe/Vienna"},
                {"publisher": "smx-2", "name": "London 2", "timezone": "Europe/London"},
                {"publisher": "smx-3", "name": "Not yet", "timezone": "Europe/Vienna"},
            ],
            "http": {"listen": "127.0.0.1:0"},
            **top,
        },
        "fleet-test",
    )


def a_plus(end: datetime) -> float:
    """The energy of a period: varies through the day, exactly representable."""
    return 0.25 + (end.hour % 8) * 0.125


def _lp(publisher: str, end: datetime, status: int = 0) -> list[Sample]:
    return [
        Sample(publisher, METER, "lp1", "APlusPerPeriod", end, a_plus(end)),
        Sample(publisher, METER, "lp1", "AMinusPerPeriod", end, 0.0),
        Sample(publisher, METER, "lp1", "MeterStatus", end, float(status)),
    ]


async def fill(repo: Repository) -> None:
    samples: list[Sample] = []
    for day in WEEK:
        for n, end in enumerate(expected_periods(day, VIENNA)):
            if end <= NOW and not (day == HOLE_DAY and n in HOLE):
                samples += _lp("smx-1", end)
        for n, end in enumerate(expected_periods(day, LONDON)):
            if end <= NOW and not (day == DOWN_DAY and n in DOWN):
                samples += _lp("smx-2", end, POWER_DOWN if day == DOWN_DAY and n == DOWN.stop else 0)
    for t in MINUTES:
        samples += [
            Sample("smx-1", METER, "minute", "PowerMean", t, 1.5),
            Sample("smx-1", METER, "minute", "PowerMax", t, None),
        ]
    events = [
        Event("smx-1", METER, EVENT_TIMES[0], 61, 2, "PowerDown", 0x80),
        Event("smx-1", METER, EVENT_TIMES[1], 62, 1, "PowerUp", 0),
    ]
    await repo.store(Batch(samples, events))
    await repo.save_site(
        SiteState("smx-1", "online", NOW - timedelta(seconds=5), 3, {"version": "1.0"}, 0.75)
    )
    await repo.save_site(SiteState("smx-2", "offline", NOW - timedelta(hours=3), 0))


@contextlib.asynccontextmanager
async def serving(cfg: HeadendConfig, repo: Repository, token: str = "") -> AsyncIterator[FleetServer]:
    """The REST API and page over ``repo`` on a loopback port, its clock standing at :data:`NOW`."""
    server = FleetServer(FleetApi(cfg, repo, ManualClock(NOW), token), cfg.http.host, cfg.http.port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
