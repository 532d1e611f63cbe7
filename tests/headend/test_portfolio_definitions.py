"""Portfolio definitions change without a restart (issue 18): through REST at any instance
(stored in the database, re-read by every instance), and in the configuration file (its
``[[portfolios]]`` and the sites' tags re-read when the file changes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.clock import SystemClock
from gateway.errors import MarketInputError
from headend.config import load_config
from headend.ingest import Ingest
from headend.portfolio.service import PortfolioService
from headend.storage.sqlite import SqliteRepository

pytestmark = pytest.mark.asyncio(loop_scope="function")

FILE = """
profile = "demo"
[[sites]]
publisher = "smx-1"
tags = ["north"]
[[sites]]
publisher = "smx-2"
tags = ["north"]
[[sites]]
publisher = "smx-3"
tags = [{tag3}]
[[portfolios]]
name = "north"
tags = ["north"]
{more}
"""


def write(path: Path, tag3: str = '"south"', more: str = "", bump: int = 0) -> None:
    path.write_text(FILE.format(tag3=tag3, more=more))
    # A new modification time even within the file system's time resolution.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))


async def test_the_file_and_rest_change_portfolios_at_run_time(tmp_path: Path) -> None:
    path = tmp_path / "headend.toml"
    write(path)
    config = load_config(path)
    repos = [SqliteRepository(tmp_path / "db.sqlite") for _ in range(2)]
    for repo in repos:
        await repo.open()
    try:
        one, two = (
            PortfolioService(config, r, SystemClock(), Ingest(), name=f"h{n}") for n, r in enumerate(repos)
        )
        for s in (one, two):
            await s.reload()
            assert s.members_of("north") == ("smx-1", "smx-2")
        # REST at one instance; the other sees it at its next reload (every RELOAD_S).
        portfolio, created = await one.define({"name": "pool", "sites": ["smx-2", "smx-3"]})
        assert created
        await two.reload()
        assert two.portfolio("pool") == portfolio
        assert two.members_of("pool") == ("smx-2", "smx-3")
        with pytest.raises(MarketInputError, match="defined in the configuration file"):
            await two.define({"name": "north", "sites": ["smx-9"]})
        # The file: smx-3 now carries the tag north, and a second portfolio is added.
        write(path, '"north", "south"', '[[portfolios]]\nname = "south"\ntags = ["south"]\n', bump=1)
        await one.reload()
        assert one.members_of("north") == ("smx-1", "smx-2", "smx-3")
        assert one.members_of("south") == ("smx-3",)
        assert one.portfolio("south").origin == "config"
        # A file that no longer reads changes nothing (and is said in the log).
        path.write_text("profile = 'demo'\n[[portfolios]]\nname = 'x y'\n")
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 2_000_000_000))
        await one.reload()
        assert sorted(one.portfolios) == ["north", "pool", "south"]
        # Removed through REST at the other instance: gone here at the next reload.
        assert await two.remove("pool")
        await one.reload()
        assert "pool" not in one.portfolios
    finally:
        for repo in repos:
            await repo.close()
