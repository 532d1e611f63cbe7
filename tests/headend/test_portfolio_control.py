"""A simulated hour: 50 households whose flexible plant follows the portfolio's advice with a
30-second lag land every quarter hour within 1 % of the schedule (issue 18, point 2).

The sites are the gateway's household physics (``gateway/simulator/physics.py``:
base load, evening peak, appliances, ±4 % per-second noise, seeded per site), each with a
flexible plant (a heat pump and a wallbox, 0-4 kW) on the same meter. The head-end's
:class:`PortfolioService` takes each site's live value every second and its registers once
a minute (what its broker connection would hand it, :class:`LiveSeen` / :class:`Accepted`),
and computes the aggregate and the advice each second on a manual clock.

The VPP operator's dispatcher (the test's) reads the advice every second and commands the
plants; a command takes effect 30 s later. It is lag-aware but knows nothing the advice
does not say: the period's notified and measured energy and the time left, and its own
commands. The meters' own energy per quarter hour (the truth, summed from the physics)
must be within 1 % of the notified energy for each of the hour's four quarter hours.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.market.advice import AdviceState
from gateway.simulator.physics import HouseholdModel
from headend.config import parse_config
from headend.ingest import Accepted, Ingest, LiveSeen
from headend.portfolio.member import ENERGY_EXPORT, ENERGY_IMPORT, POWER_EXPORT, POWER_IMPORT
from headend.portfolio.service import PortfolioService
from headend.storage import Sample
from headend.storage.sqlite import SqliteRepository

pytestmark = pytest.mark.asyncio(loop_scope="function")

SITES = [f"house-{i:02d}" for i in range(50)]
#: A winter evening (no sun: the household curve's peak hour), 17:00-18:00 UTC (18-19 local).
DAY = date(2026, 1, 15)
HOUR = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)
#: The schedule: 30 kWh a quarter hour (120 kW average).
NOTIFIED_KWH = 30.0
LAG = timedelta(seconds=30)
PLANT_KW = (0.0, 4.0)


class Dispatcher:
    """Commands the plants so that the period lands on its notified energy.

    From the advice: the energy still to deliver (notified - measured) over the time left.
    Power already commanded for the next LAG seconds is coming anyway; the new command is
    what the rest of the period needs beyond it, over the time after the lag. The plant
    share is what the households do not already draw (their power = net - plant now)."""

    def __init__(self) -> None:
        #: (effective from, plant total kW), in order.
        self.commands: deque[tuple[datetime, float]] = deque([(HOUR - timedelta(hours=1), 60.0)])

    def plant_at(self, t: datetime) -> float:
        value = self.commands[0][1]
        for start, kw in self.commands:
            if start <= t:
                value = kw
        return value

    def decide(
        self, now: datetime, notified: float, measured: float, remaining_s: float, net_kw: float
    ) -> None:
        if remaining_s <= LAG.total_seconds() + 1:
            return  # nothing commanded now takes effect in this period
        households = net_kw - self.plant_at(now)
        # Energy the next LAG seconds bring with what is already commanded.
        coming = 0.0
        for s in range(int(LAG.total_seconds())):
            coming += (households + self.plant_at(now + timedelta(seconds=s))) / 3600
        after_h = (remaining_s - LAG.total_seconds()) / 3600
        needed_kw = (notified - measured - coming) / after_h
        plant = min(max(needed_kw - households, PLANT_KW[0] * len(SITES)), PLANT_KW[1] * len(SITES))
        self.commands.append((now + LAG, plant))
        while len(self.commands) > 1 and self.commands[1][0] <= now:
            self.commands.popleft()


async def test_an_hour_of_50_sites_following_the_advice_lands_each_quarter_hour(tmp_path: Path) -> None:
    config = parse_config(
        {
            "profile": "demo",
            "sites": [{"publisher": p, "tags": ["vpp"]} for p in SITES],
            "portfolios": [{"name": "vpp", "tags": ["vpp"], "timezone": "Europe/Vienna"}],
        },
        "control-test",
    )
    repo = SqliteRepository(tmp_path / "db.sqlite")
    await repo.open()
    start = HOUR - timedelta(minutes=3)
    clock = ManualClock(start)
    service = PortfolioService(config, repo, clock, Ingest(), name="headend-1")
    try:
        await service.reload()
        await service.own_buckets()
        await service.register_schedule("vpp", DAY, [NOTIFIED_KWH] * 96, "kWh")
        houses = {p: HouseholdModel(seed=7 + i, pv_peak_kw=0.0, base_kw=0.3 + 0.01 * i, evening_peak_kw=1.2)
                  for i, p in enumerate(SITES)}  # fmt: skip
        registers = {p: [5000.0 + i, 0.0] for i, p in enumerate(SITES)}
        dispatcher = Dispatcher()
        truth: dict[datetime, float] = {}
        states: set[AdviceState] = set()
        now = start
        while now <= HOUR + timedelta(hours=1):  # the tick at 18:00 closes the last quarter hour
            # Each plant runs the command of 30 s ago: the total shared equally.
            plant = dispatcher.plant_at(now) / len(SITES)
            period = service.portfolio("vpp").calendar.period_at(now)
            for p in SITES:
                instant = houses[p].instant(now)
                net = instant.active_import_kw - instant.active_export_kw + plant
                reg = registers[p]
                reg[0] += max(net, 0.0) / 3600  # the meter's registers over this second
                reg[1] += max(-net, 0.0) / 3600
                truth[period.start] = truth.get(period.start, 0.0) + net / 3600
                service.on_live(
                    LiveSeen(p, "meter1", now, {POWER_IMPORT: max(net, 0.0), POWER_EXPORT: max(-net, 0.0)})
                )
                if now.second == 0:
                    service.on_registers(Accepted(p, "meter1", "registers", 103, now, (
                        Sample(p, "meter1", "registers", ENERGY_IMPORT, now, reg[0]),
                        Sample(p, "meter1", "registers", ENERGY_EXPORT, now, reg[1]),
                    )))  # fmt: skip
            service.tick()
            advice = await service.advice("vpp")
            a = advice.advice
            states.add(a.state)
            if a.state is AdviceState.ADVISED:
                assert a.notified_kwh is not None
                assert a.measured_kwh is not None
                assert a.current_kw is not None
                dispatcher.decide(now, a.notified_kwh, a.measured_kwh, a.remaining_s, a.current_kw)
            now += timedelta(seconds=1)
            clock.advance(1.0)
        # Each of the hour's quarter hours, as the meters measured it.
        lines = []
        for n in range(4):
            begin = HOUR + n * timedelta(minutes=15)
            energy = truth[begin]
            error = (energy - NOTIFIED_KWH) / NOTIFIED_KWH
            lines.append(f"{begin:%H:%M} UTC: {energy:.3f} kWh of {NOTIFIED_KWH} notified ({error:+.3%})")
        print("\n".join(lines))
        for line, n in zip(lines, range(4), strict=True):
            energy = truth[HOUR + n * timedelta(minutes=15)]
            assert abs(energy - NOTIFIED_KWH) <= 0.01 * NOTIFIED_KWH, line
        assert {AdviceState.ADVISED, AdviceState.CLOSING} <= states
        # The head-end's live estimate of each period (its history) says the same, closely.
        await service.saved()
        records = await service.history("vpp", 900, HOUR, HOUR + timedelta(hours=1))
        assert [r.start for r in records] == [HOUR + n * timedelta(minutes=15) for n in range(4)]
        for r in records:
            assert r.energy_kwh == pytest.approx(truth[r.start], rel=0.002)
            assert r.coverage == pytest.approx(1.0)
    finally:
        await repo.close()
