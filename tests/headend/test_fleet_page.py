"""The head-end's fleet page in headless Chromium (tests/support/browser.py) over the stored
fleet of tests/support/fleet.py: the table of sites with state, backlog, messages/s and seven
days of completeness; a click on a site draws its load profile as SVG bars (asserted on the
DOM: one bar per stored quarter hour, one gap per missing one); the day chosen by a cell or
the date field; the bearer token asked for, kept for the tab, sent.

Nothing sleeps: the page is waited on (`Page.wait_for`); the API's clock stands still."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from headend.storage.sqlite import SqliteRepository
from headend.web.api import FleetServer
from tests.support import fleet
from tests.support.browser import Chromium, Page, require_chromium

pytestmark = pytest.mark.asyncio(loop_scope="module")

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
