"""Portfolios of a small fleet, aggregated by a real :class:`PortfolioService` in-process, for the
portfolio REST tests (tests/headend/test_portfolio_rest.py), the fleet page's portfolio view
(tests/headend/test_fleet_page.py) and its screenshot (tools/screenshots.py).

No broker: the members' messages are handed to the service the way its broker connection
hands them over (:meth:`~PortfolioService.on_live` with the ingest's :class:`LiveSeen`,
:meth:`~PortfolioService.on_registers` with its :class:`Accepted`), the buckets are taken
through the repository's real leases (:meth:`~PortfolioService.own_buckets`), and
:meth:`~PortfolioService.tick` computes the aggregates at a :class:`ManualClock`'s instants.

:func:`scenario` (the tests') runs from 09:45 to :data:`NOW`, Tuesday 2026-10-27 10:07:30 UTC
(11:07:30 in Vienna: period 45, 10:00-10:15 UTC, half over), a step every 10 s:

* ``north`` (the configuration file's, by the tag ``north``): ``site-1`` 2 kW, ``site-2``
  1.5 kW, ``site-3`` 1 kW rising to 3 kW at 10:03 (the flexibility ranking's member),
  ``site-4`` 2.5 kW and silent since 10:06:30 (stale: estimated); a schedule of 1.5 kWh a
  quarter hour for the day, so the advice asks the portfolio to draw less;
* ``vpp-south`` (made through REST, :meth:`~PortfolioService.define`): ``site-2`` and the
  PV site ``site-5`` feeding in 1.2 kW;
* the register reads once a minute, the load profiles (``lp1``) of the periods that ended
  (09:45-10:00: settled, to set against the live estimate).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from gateway.clock import ManualClock
from headend.config import HeadendConfig, parse_config
from headend.ingest import Accepted, Ingest, LiveSeen
from headend.portfolio.member import ENERGY_EXPORT, ENERGY_IMPORT, POWER_EXPORT, POWER_IMPORT
from headend.portfolio.service import PortfolioService
from headend.storage import Batch, Repository, Sample
from headend.web.api import FleetApi, FleetServer

START = datetime(2026, 10, 27, 9, 45, tzinfo=UTC)
NOW = datetime(2026, 10, 27, 10, 7, 30, tzinfo=UTC)
TODAY = date(2026, 10, 27)
METER = "meter1"
STEP_S = 10.0
NORTH, SOUTH = ("site-1", "site-2", "site-3", "site-4"), ("site-2", "site-5")
#: The schedule of ``north`` for every quarter hour of the day, kWh.
NOTIFIED_KWH = 1.5
#: (import kW, export kW) of a member at an instant; None: it sends nothing then.
Power = Callable[[str, datetime], tuple[float, float] | None]


def power(publisher: str, t: datetime) -> tuple[float, float] | None:
    """The members of :func:`scenario`."""
    if publisher == "site-3":
        return (3.0 if t >= datetime(2026, 10, 27, 10, 3, tzinfo=UTC) else 1.0), 0.0
    if publisher == "site-4":
        return None if t > datetime(2026, 10, 27, 10, 6, 30, tzinfo=UTC) else (2.5, 0.0)
    return {"site-1": (2.0, 0.0), "site-2": (1.5, 0.0), "site-5": (0.0, 1.2)}.get(publisher)


def config(sites: Iterable[str] = NORTH, tag: str = "north", **top: object) -> HeadendConfig:
    """A demo head-end whose ``sites`` carry ``tag`` and whose file defines the portfolio ``tag``."""
    return parse_config(
        {
            "profile": "demo",
            "sites": [{"publisher": s, "name": f"House {s[5:]}", "tags": [tag]} for s in sites],
            "portfolios": [{"name": tag, "tags": [tag], "description": "The file's portfolio"}],
            "http": {"listen": "127.0.0.1:0"},
            **top,
        },
        "portfolio-test",
    )


@dataclass
class Feed:
    """Drives a service's members through time: live values every ``step_s``, registers once a
    minute, a tick after each step, the load profile of each quarter hour that ended."""

    service: PortfolioService
    clock: ManualClock
    power: Power
    step_s: float = STEP_S

    def __post_init__(self) -> None:
        #: Each member's registers (import, export kWh) and its running quarter hour's energy.
        self.registers: dict[str, list[float]] = {}
        self.quarter: dict[str, list[float]] = {}
        self.last: dict[str, tuple[float, float]] = {}
        #: The last instant fed and ticked.
        self.done: datetime | None = None

    def members(self) -> list[str]:
        s = self.service
        return sorted({m for name in s.portfolios for m in s.members_of(name)})

    async def run(self, until: datetime) -> None:
        """Steps from the clock's now (or the step after the last one run) to ``until`` (both
        included), then waits for the history to be written."""
        s = self.service
        if self.done is not None and self.clock.now() <= self.done < until:
            self.clock.advance(min(self.step_s, (until - self.done).total_seconds()))
        while True:
            now = self.clock.now()
            self.done = now
            profiles: list[Sample] = []
            for p in self.members():
                registers = self.registers.setdefault(p, [1000.0 + 10 * len(self.registers), 50.0])
                quarter = self.quarter.setdefault(p, [0.0, 0.0])
                value = self.power(p, now)
                if now.minute % 15 == 0 and now.second == 0 and now.microsecond == 0:
                    if any(quarter):  # a quarter hour ended: its load profile, stamped at its end
                        profiles += [
                            Sample(p, METER, "lp1", "APlusPerPeriod", now, round(quarter[0], 9)),
                            Sample(p, METER, "lp1", "AMinusPerPeriod", now, round(quarter[1], 9)),
                        ]
                    quarter[:] = [0.0, 0.0]
                if value is not None:
                    if now.second == 0 and now.microsecond == 0:
                        s.on_registers(Accepted(p, METER, "registers", 3, now, (
                            Sample(p, METER, "registers", ENERGY_IMPORT, now, registers[0]),
                            Sample(p, METER, "registers", ENERGY_EXPORT, now, registers[1]),
                        )))  # fmt: skip
                    s.on_live(LiveSeen(p, METER, now, {POWER_IMPORT: value[0], POWER_EXPORT: value[1]}))
                    self.last[p] = value
                # The meter goes on whether or not its box sends: a silent one at its last power.
                held = self.last.get(p, (0.0, 0.0))
                hours = self.step_s / 3600
                for n in (0, 1):
                    registers[n] += held[n] * hours
                    quarter[n] += held[n] * hours
            if profiles:
                await s.repository.store(Batch(profiles))
            s.tick()
            if now >= until:
                break
            self.clock.advance(min(self.step_s, (until - now).total_seconds()))
        await s.saved()


@dataclass
class Portfolios:
    """A head-end's portfolio service fed to :data:`NOW`, and the API serving it."""

    config: HeadendConfig
    clock: ManualClock
    service: PortfolioService
    server: FleetServer
    #: Feeds on from :data:`NOW` (``await feed.run(later)``).
    feed: Feed


@contextlib.asynccontextmanager
async def scenario(
    repo: Repository, token: str = "", cfg: HeadendConfig | None = None
) -> AsyncIterator[Portfolios]:
    """:func:`config`'s service over ``repo``, fed from :data:`START` to :data:`NOW` (see the
    module), and the REST API and page serving it on a loopback port."""
    cfg = cfg or config()
    clock = ManualClock(START)
    service = PortfolioService(cfg, repo, clock, Ingest(cfg.broker.prefix), name="headend-test")
    await service.reload()
    await service.define({"name": "vpp-south", "sites": list(SOUTH), "description": "PV and a house"})
    await service.own_buckets()
    await service.register_schedule("north", TODAY, [NOTIFIED_KWH] * 96, replace=True)
    feed = Feed(service, clock, power)
    await feed.run(NOW)
    async with serving(cfg, repo, clock, service, token) as server:
        yield Portfolios(cfg, clock, service, server, feed)


@contextlib.asynccontextmanager
async def serving(
    cfg: HeadendConfig, repo: Repository, clock: ManualClock, service: PortfolioService, token: str = ""
) -> AsyncIterator[FleetServer]:
    server = FleetServer(FleetApi(cfg, repo, clock, token, service), cfg.http.host, cfg.http.port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def household(publisher: str, t: datetime) -> tuple[float, float] | None:
    """A member of a livelier fleet (the screenshot's): a household's base and fridge, a kettle
    and a cooker now and then, a little noise, and on every third one PV with passing clouds;
    each with its own phase (deterministic: the same every run)."""
    k = int(publisher.rsplit("-", 1)[-1])
    minutes = t.hour * 60 + t.minute + t.second / 60
    base = 0.3 + 0.08 * (k % 5) + 0.15 * math.sin((minutes + 37 * k) / 11.0) ** 2
    fridge = 0.12 if (minutes * 60 + 97 * k) % 1800 < 600 else 0.0
    kettle = 1.8 if (minutes + 7 * k) % 37 < 2 else 0.0
    cooker = 2.0 if (minutes + 23 * k) % 90 < 8 else 0.0
    noise = 0.05 * math.sin(t.timestamp() / 7.0 + 3 * k) * math.sin(t.timestamp() / 3.0 + k)
    clouds = 0.75 + 0.25 * math.sin(minutes / 3.0 + k) * math.sin(minutes / 7.0)
    pv = 1.6 * max(0.0, math.cos((minutes - 12 * 60) / 200)) * clouds if k % 3 == 0 else 0.0
    net = base + fridge + kettle + cooker + noise - pv
    return (net, 0.0) if net >= 0 else (0.0, -net)


#: The livelier fleet of :func:`showcase`: twelve households, one silent for 50 s (stale),
#: one for 8 minutes (offline).
HOUSES = tuple(f"house-{k:02}" for k in range(1, 13))
SILENT = {"house-05": NOW - timedelta(seconds=50), "house-11": NOW - timedelta(minutes=8)}


def showcase_power(publisher: str, t: datetime) -> tuple[float, float] | None:
    silent = SILENT.get(publisher)
    return None if silent is not None and t > silent else household(publisher, t)


@contextlib.asynccontextmanager
async def showcase(repo: Repository) -> AsyncIterator[Portfolios]:
    """:data:`HOUSES` (``north``) through the hour before :data:`NOW`, a step every 5 s, with a
    schedule of 90 % of what they draw at each period's middle: the portfolio view as the
    README shows it."""
    cfg = parse_config(
        {
            "profile": "demo",
            "sites": [{"publisher": h, "name": f"House {h[6:]}", "tags": ["north"]} for h in HOUSES],
            "portfolios": [{"name": "north", "tags": ["north"], "description": "BRP portfolio Vienna north"}],
            "http": {"listen": "127.0.0.1:0"},
        },
        "portfolio-showcase",
    )
    start = NOW - timedelta(hours=1)
    clock = ManualClock(start)
    service = PortfolioService(cfg, repo, clock, Ingest(cfg.broker.prefix), name="headend-showcase")
    await service.reload()
    await service.own_buckets()
    calendar = service.portfolio("north").calendar
    schedule = []
    for period in calendar.periods(TODAY):
        middle = period.start + (period.end - period.start) / 2
        powers = [household(h, middle) or (0.0, 0.0) for h in HOUSES]
        schedule.append(round(0.9 * sum(i - e for i, e in powers) * 0.25, 3))
    await service.register_schedule("north", TODAY, schedule, replace=True)
    feed = Feed(service, clock, showcase_power, step_s=5.0)
    await feed.run(NOW)
    async with serving(cfg, repo, clock, service) as server:
        yield Portfolios(cfg, clock, service, server, feed)
