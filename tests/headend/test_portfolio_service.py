"""Two head-end instances aggregate one portfolio through a real mosquitto (issue 18, "Scale").

Each instance is what ``smx-headend run`` runs (the ingest, :class:`Headend`, and its
:class:`PortfolioService` on the same :class:`Ingest`), both on one SQLite database. The
sites publish live values in rounds: every site's power in round ``k`` is its base plus
``STEP * k``, so an aggregate of ``F`` fresh members whose latest values are of rounds
``k - 1`` or ``k`` lies between the ``F`` smallest values of round ``k - 1`` and the ``F``
largest of round ``k`` — whichever members they are, a stale or doubled value breaks it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import SystemClock
from headend.config import AggregationConfig, BrokerConfig, HeadendConfig, StorageConfig
from headend.portfolio.aggregate import BUCKETS, Aggregate
from headend.portfolio.model import parse_portfolio
from headend.portfolio.service import PortfolioService
from headend.service import Headend
from headend.storage.sqlite import SqliteRepository
from tests.support.broker import Broker, mosquitto, mqtt_client, require_mosquitto
from tests.support.portfolio_sites import announce, live_message, site_names, topic

pytestmark = pytest.mark.asyncio(loop_scope="function")

SITES = site_names(40)
BASES = {p: 0.5 + 0.05 * i for i, p in enumerate(SITES)}
STEP = 0.01
NAME = "vpp-pool"
PORTFOLIO = {"name": NAME, "sites": SITES}


def value(site: str, k: int) -> float:
    return round(BASES[site] + STEP * k, 6)


@dataclass
class Instance:
    headend: Headend
    portfolios: PortfolioService
    task: asyncio.Task[None]
    repo: SqliteRepository


@contextlib.asynccontextmanager
async def instance(broker: Broker, db: Path, name: str) -> AsyncIterator[Instance]:
    config = HeadendConfig(
        profile="demo",
        broker=BrokerConfig(url=broker.url, group="g"),
        storage=StorageConfig(backend="sqlite", path=str(db)),
        aggregation=AggregationConfig(stale_after_s=3.0, offline_after_s=60.0, lease_s=3.0),
        portfolios=(parse_portfolio(PORTFOLIO, origin="config"),),
    )
    repo = SqliteRepository(db)
    await repo.open()
    clock = SystemClock()
    headend = Headend(config, repo, clock, name=name)
    portfolios = PortfolioService(config, repo, clock, headend.ingest, name=name)
    headend.observers.append(portfolios)

    async def both() -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(headend.run())
            tasks.create_task(portfolios.run())

    task = asyncio.create_task(both())
    try:
        yield Instance(headend, portfolios, task, repo)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await repo.close()


def bounds(fresh: int, k: int) -> tuple[float, float]:
    """What ``fresh`` members' latest values of rounds k-1 or k may sum to."""
    low = sorted(value(p, k - 1) for p in SITES)[:fresh]
    high = sorted((value(p, k) for p in SITES), reverse=True)[:fresh]
    return sum(low) - 1e-9, sum(high) + 1e-9


async def until(service: PortfolioService, done: object, what: str, ticks: int = 60) -> Aggregate:
    """Wait tick by tick (at most ``ticks``) for ``done(aggregate)``."""
    assert callable(done)
    for _ in range(ticks):
        await asyncio.wait_for(service.next_tick(), 10)
        aggregate = service.aggregate(NAME)
        if aggregate is not None and done(aggregate):
            return aggregate
    raise AssertionError(f"{what}: not within {ticks} ticks; last {service.aggregate(NAME)}")


async def test_two_instances_aggregate_what_the_sites_sent_and_survive_a_kill(tmp_path: Path) -> None:
    require_mosquitto()
    async with (
        mosquitto(tmp_path / "broker") as broker,
        mqtt_client(broker, "sites") as sites,
        instance(broker, tmp_path / "db.sqlite", "headend-1") as one,
        instance(broker, tmp_path / "db.sqlite", "headend-2") as two,
    ):
        await announce(sites, SITES, datetime.now(UTC))
        # Both instances share the 64 buckets, half each, and subscribe to their members.
        for i in (one, two):
            await until(i.portfolios, lambda a: a.buckets_reporting == a.buckets, "every bucket reporting")
        assert len(one.portfolios.owned) == len(two.portfolios.owned) == BUCKETS // 2
        assert one.portfolios.owned.isdisjoint(two.portfolios.owned)

        k = 0

        async def round_() -> None:
            nonlocal k
            k += 1
            now = datetime.now(UTC)
            for p in SITES:
                await sites.publish(topic("data", p, "live"), live_message(p, now, value(p, k), k), qos=0)

        def check(a: Aggregate) -> None:
            low, high = bounds(a.fresh, k)
            assert low <= a.measured_kw <= high, (k, a)
            assert a.fresh + a.stale + a.offline == a.members == len(SITES)

        # Rounds until both instances see every member fresh, with the latest round's sum.
        for _ in range(3):
            await round_()
        expected = sum(value(p, k) for p in SITES)
        for i in (one, two):
            a = await until(i.portfolios, lambda a: abs(a.measured_kw - expected) < 1e-6, "the round's sum")
            assert (a.fresh, a.coverage, a.estimated_kw) == (len(SITES), 1.0, 0.0)
        # From here on every aggregate of every tick is checked, while rounds go on.
        seen_drop = seen_recovery = False
        killed = False
        for _ in range(40):
            await round_()
            a = await until(one.portfolios, lambda a: True, "a tick")
            check(a)
            if not killed and k >= 8:
                # Kill instance 2 (no goodbye: its leases just stop being renewed).
                two.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await two.task
                killed = True
            if killed and a.coverage < 1:
                seen_drop = True
                # Its members are estimated, not dropped nor held at their last value.
                assert a.estimated_kw > 0
                assert abs(a.net_kw - sum(value(p, k) for p in SITES)) <= a.uncertainty_kw + 1e-6
            if seen_drop and a.coverage == 1 and a.fresh == len(SITES):
                seen_recovery = True
                break
        assert seen_drop, "the dead instance's buckets never showed as stale"
        assert seen_recovery, "the survivor never took the dead instance's buckets"
        assert one.portfolios.owned == frozenset(range(BUCKETS))
