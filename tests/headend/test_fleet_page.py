"""The head-end's fleet page in headless Chromium (tests/support/browser.py) over the stored
fleet of tests/support/fleet.py: the table of sites with state, backlog, messages/s and seven
days of completeness; a click on a site draws its load profile as SVG bars (asserted on the
DOM: one bar per stored quarter hour, one gap per missing one); the day chosen by a cell or
the date field; the bearer token asked for, kept for the tab, sent. And the portfolio view
over a real PortfolioService fed in-process (tests/support/portfolio_fleet.py): the net power
of the last hour as an SVG line, the advice in words, the running period against its
schedule, coverage and how the aggregate was formed, the members' freshness, the ranking;
it follows the aggregate as it moves on, and another portfolio can be chosen.

Nothing sleeps: the page is waited on (`Page.wait_for`); the API's clock stands still."""

from __future__ import annotations

import importlib.util
import json
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from headend.storage.sqlite import SqliteRepository
from headend.web.api import FleetServer
from tests.support import fleet
from tests.support import portfolio_fleet as pf
from tests.support.browser import Chromium, Page, require_chromium

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]

TOKEN = "page-token-0123456789abcdef"
ROWS = "document.querySelectorAll('#sites tbody tr').length"
#: Every row as the page shows it.
TABLE = """[...document.querySelectorAll('#sites tbody tr')].map((tr) => ({
  publisher: tr.dataset.publisher,
  name: tr.querySelector('.site').textContent,
  state: tr.querySelector('.state').dataset.state,
  backlog: tr.querySelector('.backlog').textContent,
  rate: tr.querySelector('.rate').textContent,
  lastSeen: tr.querySelector('.last-seen').textContent,
  days: [...tr.querySelectorAll('.day')].map((d) => [d.dataset.day, d.dataset.level, d.textContent]),
}))"""


def drawn(day: str) -> str:
    """A condition: the chart shows ``day``; its value is the chart's bars and gaps."""
    return f"""(() => {{
      const svg = document.querySelector('#chart');
      if (svg.dataset.state !== 'drawn' || svg.dataset.day !== {json.dumps(day)}) return null;
      return {{
        channel: svg.dataset.channel,
        bars: [...svg.querySelectorAll('rect.bar')].map((r) => [r.dataset.end, Number(r.dataset.value)]),
        gaps: [...svg.querySelectorAll('rect.gap')].map((r) => r.dataset.end),
        summary: document.querySelector('#profile-summary').textContent,
      }};
    }})()"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def repo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SqliteRepository]:
    repo = SqliteRepository(tmp_path_factory.mktemp("fleet-page") / "h.sqlite")
    await repo.open()
    try:
        await fleet.fill(repo)
        yield repo
    finally:
        await repo.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(repo: SqliteRepository) -> AsyncIterator[FleetServer]:
    async with fleet.serving(fleet.config(), repo) as server:
        assert server.url.startswith("http://127.0.0.1:")
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Chromium]:
    async with Chromium.launch(require_chromium()) as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Chromium, server: FleetServer) -> AsyncIterator[Page]:
    page = await browser.new_page(1280, 900)
    try:
        await page.goto(server.url)
        yield page
        assert page.errors == [], page.errors
    finally:
        await page.close()


async def test_the_sites_with_state_backlog_and_seven_days_of_completeness(page: Page) -> None:
    await page.wait_for(f"{ROWS} === 3")
    rows: list[dict[str, Any]] = await page.evaluate(TABLE)
    one, two, three = rows
    assert [r["publisher"] for r in rows] == ["smx-1", "smx-2", "smx-3"]
    assert (one["name"], one["state"], one["backlog"], one["rate"]) == ("Vienna 1", "online", "3", "0.75")
    assert one["lastSeen"] != "never"
    assert [d[0] for d in one["days"]] == [d.isoformat() for d in fleet.WEEK]
    cells = {d[0]: (d[1], d[2]) for d in one["days"]}
    assert cells["2026-10-24"] == ("partial", "95")  # 92 of 96: the hole (95.8 %, floored)
    assert cells["2026-10-25"] == ("full", "100")
    # The power down is the meter's: the day is complete.
    assert {d[0]: d[1] for d in two["days"]}["2026-10-26"] == "full"
    assert two["state"] == "offline"
    assert (three["state"], three["lastSeen"]) == ("unknown", "never")
    assert {(d[1], d[2]) for d in three["days"]} == {("none", "–")}
    assert await page.text("#site-count") == "3 sites"


async def test_a_click_on_a_site_draws_its_load_profile_of_a_chosen_day(page: Page) -> None:
    await page.wait_for(f"{ROWS} === 3")
    await page.click('#sites tr[data-publisher="smx-1"] td.site')
    # Today first: 11:00 in Vienna, 44 quarter hours stored of the 96.
    today = await page.wait_for(drawn("2026-10-27"))
    assert today["channel"] == "APlusPerPeriod"
    assert (len(today["bars"]), len(today["gaps"])) == (44, 52)
    first = datetime(2026, 10, 26, 23, 15, tzinfo=UTC)  # 00:15 local: the first period's end
    assert today["bars"][0] == [f"{first:%Y-%m-%dT%H:%M}:00.000Z", fleet.a_plus(first)]
    assert await page.text("#site-title") == "Vienna 1"
    assert await page.evaluate("document.querySelector('#sites tr[data-publisher=\"smx-1\"]').ariaSelected")

    # A day's cell: the day with the hole, shown as four gaps.
    await page.click('#sites tr[data-publisher="smx-1"] .day[data-day="2026-10-24"]')
    hole = await page.wait_for(drawn("2026-10-24"))
    assert (len(hole["bars"]), hole["gaps"]) == (
        92,
        [f"2026-10-24T{t}:00.000Z" for t in ("08:15", "08:30", "08:45", "09:00")],
    )
    assert "92 of 96 quarter hours" in hole["summary"]

    # The date field: the day the clocks went back has 100 quarter hours.
    await page.fill("#day", "2026-10-25")
    dst = await page.wait_for(drawn("2026-10-25"))
    assert (len(dst["bars"]), dst["gaps"]) == (100, [])
    expected = sum(fleet.a_plus(datetime.fromisoformat(end)) for end, _v in dst["bars"])
    assert sum(v for _e, v in dst["bars"]) == pytest.approx(expected)

    # Another channel of the same day.
    await page.fill("#channel", "AMinusPerPeriod")
    minus = await page.wait_for(f"(({drawn('2026-10-25')}) || {{}}).channel === 'AMinusPerPeriod' && "
                                f"{drawn('2026-10-25')}")  # fmt: skip
    assert {v for _e, v in minus["bars"]} == {0.0}

    # A site without any load profile says so.
    await page.click('#sites tr[data-publisher="smx-3"] td.site')
    await page.wait_for("document.querySelector('#chart').dataset.state === 'no-meter'")
    assert "No load profile" in await page.text("#profile-summary")


async def test_with_a_token_the_page_asks_for_it_and_keeps_it_for_the_tab(
    browser: Chromium, repo: SqliteRepository, tmp_path: Path
) -> None:
    cfg = fleet.config(http={"listen": "127.0.0.1:0", "token_file": str(tmp_path / "token")})
    async with fleet.serving(cfg, repo, TOKEN) as server:
        page = await browser.new_page(1280, 900)
        try:
            await page.goto(server.url)
            await page.wait_for("!document.querySelector('#token-form').hidden")
            assert await page.evaluate(ROWS) == 0
            await page.fill("#token-form input[name=token]", "not-the-token")
            await page.evaluate("document.querySelector('#token-form').requestSubmit()")
            error = "document.querySelector('#token-error')"
            assert await page.wait_for(f"!{error}.hidden && {error}.textContent") == "wrong bearer token"
            await page.fill("#token-form input[name=token]", TOKEN)
            await page.evaluate("document.querySelector('#token-form').requestSubmit()")
            await page.wait_for(f"{ROWS} === 3")
            assert await page.evaluate("document.querySelector('#token-form').hidden")
            assert await page.evaluate("sessionStorage.getItem('smx-headend-token')") == TOKEN
            # Reloaded, the tab still has it: no question asked.
            await page.goto(server.url)
            await page.wait_for(f"{ROWS} === 3")
            assert await page.evaluate("document.querySelector('#token-form').hidden")
            assert page.errors == [], page.errors
        finally:
            await page.close()


# -- the portfolio view ------------------------------------------------------------------------

#: What the portfolio view shows.
PORTFOLIO = """(() => {
  const view = document.querySelector('#portfolio-view');
  const chart = document.querySelector('#pf-chart');
  const text = (id) => document.querySelector(id).textContent;
  return {
    hidden: view.hidden, portfolio: view.dataset.portfolio, time: view.dataset.time,
    chart: chart.dataset.state, points: Number(chart.dataset.points), last: chart.dataset.last,
    lines: [...chart.querySelectorAll('path')].map((p) =>
      [p.getAttribute('class'), p.getAttribute('d') !== '']),
    net: text('#pf-net'), split: text('#pf-split'), advice: text('#pf-advice'),
    adviceState: document.querySelector('#pf-advice').dataset.state,
    periodName: text('#pf-period-name'), period: text('#pf-period'), coverage: text('#pf-coverage'),
    counts: text('#pf-counts'), how: text('#pf-how'),
    members: [...document.querySelectorAll('#pf-members tbody tr')].map((tr) => [
      tr.dataset.publisher, tr.querySelector('.state').dataset.state, tr.querySelector('.power').textContent,
      tr.querySelector('.age').textContent]),
    ranking: [...document.querySelectorAll('#pf-ranking li')].map((li) =>
      [li.dataset.publisher, li.textContent]),
    rankingNone: document.querySelector('#pf-ranking-none').hidden ? '' : text('#pf-ranking-none'),
  };
})()"""


def showing(name: str, points: int) -> str:
    """A condition: the view shows ``name`` with ``points`` points drawn; its value is the view."""
    return f"""(() => {{
      const v = {PORTFOLIO};
      return v.portfolio === {json.dumps(name)} && v.chart === 'drawn' && v.points === {points} ? v : null;
    }})()"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def portfolios(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[pf.Portfolios]:
    repo = SqliteRepository(tmp_path_factory.mktemp("portfolio-page") / "h.sqlite")
    await repo.open()
    try:
        async with pf.scenario(repo) as fed:
            yield fed
    finally:
        await repo.close()


async def test_the_portfolio_view_shows_the_aggregate_the_advice_and_the_members(
    browser: Chromium, portfolios: pf.Portfolios
) -> None:
    page = await browser.new_page(1280, 1400)
    try:
        await page.goto(portfolios.server.url)
        view = await page.wait_for(showing("north", 136))  # 09:45:00 to 10:07:30, every 10 s
        assert view["hidden"] is False
        assert view["lines"] == [["measured", True], ["net", True]]
        assert (view["net"], view["last"]) == ("9.0 kW", "9")
        assert view["split"] == "6.5 kW measured, 2.5 kW ± 2.5 estimated"
        assert view["adviceState"] == "advised"
        assert view["advice"].startswith("reduce by 5.2 kW to 3.8 kW for the remaining 8 minutes")
        assert view["advice"].endswith("(±0.4 kWh: 1 of 4 members estimated)")
        assert view["periodName"] == "· period 45, 11:00–11:15"  # Vienna's quarter hour
        for words in ("± 0.04 so far", "of 1.50 kWh notified", "7:30 left", "3.8 kW required"):
            assert words in view["period"], view["period"]
        assert (view["coverage"], view["counts"]) == ("67 %", "3 fresh · 1 stale · 0 offline of 4")
        assert "3 of 4 members measured" in view["how"]
        assert view["members"] == [
            ["site-4", "stale", "2.50", "60 s"],
            ["site-1", "fresh", "2.00", "0 s"],
            ["site-2", "fresh", "1.50", "0 s"],
            ["site-3", "fresh", "3.00", "0 s"],
        ]
        [(who, why)] = view["ranking"]
        assert who == "site-3"
        assert why == "House 3: its power rose by 2.00 kW to 3.00 kW while the portfolio should draw less"

        # The aggregate moves on: the view follows without a reload (it asks every few seconds).
        await portfolios.feed.run(pf.NOW + timedelta(seconds=20))
        later = await page.wait_for(showing("north", 138), timeout=15)
        assert later["time"] == "2026-10-27T10:07:50Z"
        assert "7:10 left" in later["period"]

        # Another portfolio, chosen in the list; the address remembers it.
        await page.fill("#portfolio", "vpp-south")
        south = await page.wait_for(showing("vpp-south", 138))
        assert (south["net"], south["adviceState"], south["advice"]) == (
            "0.3 kW", "no-notification", "no notification for this period"
        )  # fmt: skip
        assert "no schedule for this period" in south["period"]
        assert [m[:2] for m in south["members"]] == [["site-2", "fresh"], ["site-5", "fresh"]]
        assert (south["ranking"], south["rankingNone"]) == ([], "No correction asked for: nothing to rank.")
        assert await page.evaluate("location.hash") == "#portfolio=vpp-south"
        await page.goto(portfolios.server.url + "#portfolio=vpp-south")
        await page.wait_for(showing("vpp-south", 138))
        assert page.errors == [], page.errors
    finally:
        await page.close()


async def test_the_portfolio_view_with_the_token_of_the_tab(
    browser: Chromium, portfolios: pf.Portfolios
) -> None:
    p = portfolios
    async with pf.serving(p.config, p.service.repository, p.clock, p.service, TOKEN) as server:
        page = await browser.new_page(1280, 900)
        try:
            await page.goto(server.url)
            await page.wait_for("!document.querySelector('#token-form').hidden")
            assert await page.evaluate("document.querySelector('#portfolio-view').hidden")
            await page.fill("#token-form input[name=token]", TOKEN)
            await page.evaluate("document.querySelector('#token-form').requestSubmit()")
            view = await page.wait_for(
                "(() => { const v = document.querySelector('#portfolio-view');"
                " return !v.hidden && v.dataset.portfolio === 'north' && v.dataset.time"
                " && document.querySelector('#pf-net').textContent; })()"
            )
            assert view.endswith(" kW")
            assert page.errors == [], page.errors
        finally:
            await page.close()


async def test_without_portfolios_the_view_stays_hidden(page: Page) -> None:
    await page.wait_for(f"{ROWS} === 3")
    # The fleet's server runs no portfolio service: the list is empty, the view hidden.
    await page.wait_for("document.querySelector('#portfolio-view').hidden === true")
    assert await page.evaluate("document.querySelector('#pf-chart').dataset.state") is None


async def test_the_portfolio_view_screenshot_is_the_view_s_card(browser: Chromium, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "tools" / "screenshots.py")
    assert spec is not None
    assert spec.loader is not None
    screenshots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(screenshots)
    repo = SqliteRepository(tmp_path / "showcase.sqlite")
    await repo.open()
    try:
        async with pf.showcase(repo) as fed:
            path = await screenshots.take_portfolio_screenshot(
                fed.server.url, tmp_path / "shots", browser=browser
            )
    finally:
        await repo.close()
    assert path.name == "headend-portfolio.png"
    head = path.read_bytes()[:24]
    assert (head[:8], head[12:16]) == (b"\x89PNG\r\n\x1a\n", b"IHDR")
    width, height = struct.unpack(">II", head[16:24])
    # The card (and a margin) of a 1280-px page: neither the whole page nor one screen of it.
    assert 1200 < width <= 1280
    assert 600 < height < 1400
