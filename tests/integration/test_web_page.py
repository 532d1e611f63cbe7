"""The gateway's web page in headless Chromium (tests/support/browser.py), against one running demo gateway:
live values that move, the link state and clock, the imbalance advice before and after a profile,
the profile form (an accepted registration checked over OPC UA, refused ones that change nothing),
external data with its stale tag, the archive file links, the phone layout and the screenshots.

Nothing here sleeps: the page is waited on (`Page.wait_for`), and the simulated meter's values
change every second, so every wait ends within seconds when the page works."""

from __future__ import annotations

import importlib.util
import json
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio

from gateway.security.users import Role
from tests.support.browser import Chromium, Page, require_chromium
from tests.support.harness import PASSWORD, Running, add_user, demo, running_gateway
from tests.support.web_page import NUMBER, VOLTAGE

# One gateway and one browser for the module: both live on the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
METER = "meter1"

ADVICE_TEXT = "document.querySelector('#advice-text')"
CLOCK = "document.querySelector('#clock').textContent"
#: The form is ready once the running day is filled in and its number of periods is known.
FORM_READY = (
    "document.querySelector('#profile-form').day.value !== ''"
    " && document.querySelector('#profile-periods').textContent !== ''"
    " && document.querySelector('#profile-form').day.value"
)


def visible_text(selector: str) -> str:
    """A condition: the element is shown and has text; its value is that text."""
    element = f"document.querySelector({json.dumps(selector)})"
    return f"!{element}.hidden && {element}.textContent.trim() !== '' && {element}.textContent.trim()"


def ink(canvas_id: str, color: str) -> str:
    """An expression: how many pixels of `canvas_id` have exactly the colour ``#rrggbb``."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"""(() => {{
      const canvas = document.getElementById({json.dumps(canvas_id)});
      const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 0; i < data.length; i += 4) {{
        if (data[i] === {r} && data[i + 1] === {g} && data[i + 2] === {b}) n++;
      }}
      return n;
    }})()"""


@dataclass(frozen=True)
class Day:
    """The running delivery day as the REST API tells it."""

    day: str
    periods: int
    period_minutes: int


# -- fixtures -----------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    # An absolute archive path: the autouse fixture that chdirs to each test's tmp_path comes
    # after this module-wide gateway has started.
    archive = tmp_path_factory.mktemp("web-page") / "archive"
    config = demo()
    users = str(archive.parent / "users")  # absolute, as the archive
    config = replace(config, archive=replace(config.archive, path=str(archive)),
                     security=replace(config.security, users=users))  # fmt: skip
    add_user(config, "operator", Role.OPERATOR)
    async with running_gateway(config, login=Role.VIEWER) as running:
        yield running


@pytest.fixture(scope="module")
def web_url(running: Running) -> str:
    assert running.gateway.web_url.startswith("http://127.0.0.1:")
    return running.gateway.web_url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """The tests' own REST client: an operator (Basic authentication)."""
    operator = {"Authorization": aiohttp.encode_basic_auth("operator", PASSWORD)}
    async with aiohttp.ClientSession(headers=operator) as session:
        yield session


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Chromium]:
    async with Chromium.launch(require_chromium()) as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Chromium, web_url: str) -> AsyncIterator[Page]:
    """The page at desktop width, loaded (its live feed may not have delivered yet)."""
    page = await browser.new_page(1280, 800)
    try:
        await page.goto(web_url)
        yield page
    finally:
        await page.close()


# -- helpers ------------------------------------------------------------------------------------


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def running_day(http: aiohttp.ClientSession, web_url: str) -> Day:
    status, listing = await get_json(http, f"{web_url}api/meters/{METER}/profiles")
    assert status == 200, listing
    today = listing["today"]
    periods = next(u["periods"] for u in listing["upcoming"] if u["day"] == today)
    return Day(today, periods, listing["period_minutes"])


async def stored_profile(http: aiohttp.ClientSession, web_url: str, day: str) -> dict[str, Any]:
    status, body = await get_json(http, f"{web_url}api/meters/{METER}/profiles/{day}")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def ensure_profile(http: aiohttp.ClientSession, web_url: str, day: Day) -> dict[str, Any]:
    """The running day's stored profile; registered over REST if the form test did not run."""
    status, body = await get_json(http, f"{web_url}api/meters/{METER}/profiles/{day.day}")
    if status == 404:
        values = form_values(day.periods)
        url = f"{web_url}api/meters/{METER}/profiles/{day.day}"
        async with http.put(url, json={"values": values}) as response:
            assert response.status == 201, await response.text()
        return await stored_profile(http, web_url, day.day)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def form_values(periods: int) -> list[float]:
    """A profile whose values differ from period to period (so their order is checked)."""
    return [round(0.1 + 0.05 * (n % 11), 2) for n in range(periods)]


def as_typed(values: list[float]) -> str:
    """The values as a person types them: every separator the form accepts, mixed."""
    separators = [" ", ", ", "\n", ";", "  "]
    return "".join(f"{v:g}{separators[n % len(separators)]}" for n, v in enumerate(values)).strip()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG format puts first."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def log_in(page: Page, user: str = "operator") -> None:
    """Log in through the page's own dialog."""
    if not await page.evaluate("document.querySelector('#login').open"):
        await page.click("#login-open")
    await page.fill("#login-form input[name=user]", user)
    await page.fill("#login-form input[name=password]", PASSWORD)
    await page.click("#login-form button[type=submit]")
    assert await page.wait_for(f"document.querySelector('#who').textContent === '{user} ({user})'")
    assert await page.evaluate("document.querySelector('#login').open") is False


def assert_clean(page: Page) -> None:
    assert page.errors == []
    assert [line for line in page.console if line.startswith(("error:", "warning:"))] == []


# -- tests, in the order a person would use the page ------------------------------------------------


async def test_live_values_change_link_is_online_and_clock_runs(page: Page) -> None:
    # The first values come a few seconds after the gateway starts (this is the module's first test).
    first = await page.wait_for(f"{NUMBER}.test({VOLTAGE}) && {VOLTAGE}", timeout=20)
    assert 200 <= float(first) <= 260, first
    # The simulated meter's voltage varies each second: the cell must follow.
    second = await page.wait_for(
        f"{NUMBER}.test({VOLTAGE}) && {VOLTAGE} !== {json.dumps(first)} && {VOLTAGE}"
    )
    assert 200 <= float(second) <= 260, second

    assert await page.wait_for("document.querySelector('#link-state').textContent === 'online'")
    assert await page.evaluate("document.querySelector('#link-state').dataset.state") == "online"
    clock = await page.wait_for(f"{CLOCK} !== '–' && {CLOCK}")
    later = await page.wait_for(f"{CLOCK} !== {json.dumps(clock)} && {CLOCK}")
    assert later != clock
    assert await page.evaluate("document.querySelector('#feed-error').hidden") is True
    assert_clean(page)


async def test_profile_registered_through_the_form(
    page: Page, running: Running, http: aiohttp.ClientSession, web_url: str
) -> None:
    day = await running_day(http, web_url)
    # No profile yet: the advice says so, and so does the profile card.
    advice = await page.wait_for(
        f"!['–', 'waiting for the first reading'].includes({ADVICE_TEXT}.textContent)"
        f" && {ADVICE_TEXT}.textContent"
    )
    assert advice == "no notification for this period"
    assert await page.evaluate(f"{ADVICE_TEXT}.dataset.state") == "no-notification"
    assert await page.wait_for(FORM_READY) == day.day  # prefilled with the running market day
    assert await page.text("#profile-summary") == f"No profile notified for {day.day}."
    assert await page.text("#profile-periods") == (
        f"{day.day} has {day.periods} periods of {day.period_minutes} min"
    )

    # "Fill the day" writes the constant once per period of the day.
    await page.fill("#profile-form input[name=constant]", "0.25")
    await page.click("#fill-constant")
    filled = await page.evaluate("document.querySelector('#profile-form').values.value")
    assert filled.split() == ["0.25"] * day.periods

    values = form_values(day.periods)
    await page.fill("#profile-form textarea[name=values]", as_typed(values))
    await page.fill("#profile-form select[name=unit]", "kWh")
    assert await page.evaluate("document.querySelector('#profile-form').replace.checked") is False
    # Not logged in: the server says 401, the page asks for an operator's login and keeps the form.
    assert await page.text("#who") == "not logged in"
    await page.click("#profile-submit")
    assert await page.wait_for("document.querySelector('#login').open")
    assert await page.text("#login-why") == "Registering a profile needs an operator."
    assert await page.text("#profile-error") == "Log in as an operator to register profiles."
    assert await get_json(http, f"{web_url}api/meters/{METER}/profiles/{day.day}") == (
        404,
        {"status": 404, "error": f"no profile notified for {day.day}", "field": "day"},
    )
    # A wrong password is shown in the dialog, which stays open.
    await page.fill("#login-form input[name=user]", "operator")
    await page.fill("#login-form input[name=password]", "not the password")
    await page.click("#login-form button[type=submit]")
    assert "wrong" in await page.wait_for(visible_text("#login-error"))
    await log_in(page)
    await page.click("#profile-submit")

    ok = await page.wait_for(visible_text("#profile-ok"))
    stored = await stored_profile(http, web_url, day.day)
    total = stored["total_kwh"]
    assert ok == f"Registered {day.periods} periods for {day.day} ({total:.3f} kWh)."
    assert await page.evaluate("document.querySelector('#profile-error').hidden") is True
    summary = await page.wait_for(
        "document.querySelector('#profile-summary').textContent.includes('in total')"
        " && document.querySelector('#profile-summary').textContent"
    )
    assert summary == f"{day.periods} periods of {day.period_minutes} min, {total:.3f} kWh in total"
    assert total == pytest.approx(sum(values))
    # The profile chart draws its bars (light blue; the running period's bar in orange).
    assert await page.wait_for(ink("profile-chart", "#7fb0e6")) > 0

    # What the form sent is what OPC UA reads back, period by period.
    starts, energies = await running.node(f"{METER}.Market").call_method(
        running.node(f"{METER}.Market.ReadProfile"), day.day
    )
    assert energies == pytest.approx(values, abs=1e-12)
    assert len(starts) == day.periods
    first_start = datetime.fromisoformat(stored["periods"][0]["start"].replace("Z", "+00:00"))
    assert starts[0].replace(tzinfo=UTC) == first_start
    assert [e["energy_kwh"] for e in stored["periods"]] == pytest.approx(values, abs=1e-12)
    notified_days = await running.node(f"{METER}.Market.NotifiedDays").read_value()
    assert day.day in notified_days

    # The advice now knows the period's notified energy. The gateway started mid-period, so it
    # says "no measurement" until the next period starts, then advises (or says "closing").
    state, text = await page.wait_for(
        f"{ADVICE_TEXT}.dataset.state !== 'no-notification'"
        f" && [{ADVICE_TEXT}.dataset.state, {ADVICE_TEXT}.textContent]"
    )
    assert state in ("no-measurement", "advised", "closing"), (state, text)
    if state == "no-measurement":
        assert text == "no measurement for this period yet"
    number, shown = await page.wait_for(
        f"""(() => {{
          const energies = {json.dumps(values)};
          const period = document.querySelector('#advice-period').textContent.match(/^period (\\d+),/);
          const shown = document.querySelector('#advice-notified').textContent;
          return period !== null && shown === energies[Number(period[1]) - 1].toFixed(3)
            && [Number(period[1]), shown];
        }})()"""
    )
    assert 1 <= number <= day.periods
    assert float(shown) == pytest.approx(values[number - 1], abs=5e-4)
    assert_clean(page)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("1 2 3", "{day} has {periods} settlement periods of {minutes} min, got 3 values"),
        ("1 x 3", "period 2: x is not a number"),
        ("", "Enter one value per settlement period."),
        ("<a whole day>", "{day} is already notified; replacing it needs the replace flag"),
    ],
    ids=["wrong-count", "not-a-number", "empty", "already-notified"],
)
async def test_refused_profile_shows_why_and_changes_nothing(
    page: Page, http: aiohttp.ClientSession, web_url: str, typed: str, message: str
) -> None:
    day = await running_day(http, web_url)
    before = await ensure_profile(http, web_url, day)
    await log_in(page)
    assert await page.wait_for(FORM_READY) == day.day
    if typed == "<a whole day>":  # a valid profile, but the day has one and "replace" is not ticked
        typed = " ".join(["0.3"] * day.periods)
    await page.fill("#profile-form textarea[name=values]", typed)
    assert await page.evaluate("document.querySelector('#profile-form').replace.checked") is False
    await page.click("#profile-submit")

    expected = message.format(day=day.day, periods=day.periods, minutes=day.period_minutes)
    shown = await page.wait_for(visible_text("#profile-error"))
    assert shown == expected
    assert await page.evaluate("document.querySelector('#profile-ok').hidden") is True
    assert await stored_profile(http, web_url, day.day) == before
    assert_clean(page)


async def test_replace_checkbox_replaces_the_profile(
    page: Page, http: aiohttp.ClientSession, web_url: str
) -> None:
    day = await running_day(http, web_url)
    await ensure_profile(http, web_url, day)
    await log_in(page)
    assert await page.wait_for(FORM_READY) == day.day
    await page.fill("#profile-form input[name=constant]", "0.2")
    await page.click("#fill-constant")
    await page.click("#profile-form input[name=replace]")
    assert await page.evaluate("document.querySelector('#profile-form').replace.checked") is True
    await page.click("#profile-submit")
    total = 0.2 * day.periods
    assert await page.wait_for(visible_text("#profile-ok")) == (
        f"Registered {day.periods} periods for {day.day} ({total:.3f} kWh)."
    )
    stored = await stored_profile(http, web_url, day.day)
    assert [p["energy_kwh"] for p in stored["periods"]] == [0.2] * day.periods
    assert await page.wait_for(
        f"document.querySelector('#profile-summary').textContent.includes('{total:.3f} kWh')"
    )
    assert_clean(page)


async def test_external_values_show_with_stale_tag(
    page: Page, http: aiohttp.ClientSession, web_url: str
) -> None:
    async with http.put(f"{web_url}api/external/spot_price", json={"value": 87.5}) as response:
        assert response.status == 200, await response.text()
    row = """document.querySelector('#external-rows tr[data-name="spot_price"]')"""
    assert await page.wait_for(f"{row}.cells[1].textContent === '87.50' && {row}.dataset.stale === 'false'")
    assert await page.evaluate(f"{row}.querySelector('.tag') === null")
    assert await page.evaluate(f"{row}.cells[2].textContent") == "EUR/MWh"

    # Two hours old, fresh for 900 s: shown, but tagged stale.
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    body = {"value": 42, "time": two_hours_ago}
    async with http.put(f"{web_url}api/external/renewable_share", json=body) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["stale"] is True
    row = """document.querySelector('#external-rows tr[data-name="renewable_share"]')"""
    assert await page.wait_for(f"{row}.cells[1].textContent === '42.00' && {row}.dataset.stale === 'true'")
    assert await page.evaluate(f"{row}.querySelector('.tag').textContent") == "stale"
    assert (await page.evaluate(f"{row}.cells[3].textContent")).startswith("2.0 h")
    # The fresh value keeps no tag.
    assert await page.evaluate(
        """document.querySelector('#external-rows tr[data-name="spot_price"] .tag') === null"""
    )
    assert_clean(page)


async def test_external_value_timed_ahead_shows_a_readable_age(
    page: Page, http: aiohttp.ClientSession, web_url: str
) -> None:
    """The API accepts a value whose time is ahead of now by less than its freshness (a price for
    the coming half hour); the page then writes its negative age in raw seconds."""
    ahead = (datetime.now(UTC) + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    async with http.put(f"{web_url}api/external/spot_price", json={"value": 90, "time": ahead}) as response:
        assert response.status == 200, await response.text()
    row = """document.querySelector('#external-rows tr[data-name="spot_price"]')"""
    age = await page.wait_for(f"{row}.cells[1].textContent === '90.00' && {row}.cells[3].textContent")
    assert_clean(page)
    assert not age.startswith("-"), age


async def test_archive_lists_the_notified_profile_file(
    page: Page, http: aiohttp.ClientSession, web_url: str
) -> None:
    day = await running_day(http, web_url)
    await ensure_profile(http, web_url, day)
    # The list is fetched at load and then once a minute: load the page again to see the file.
    await page.goto(web_url)
    href = await page.wait_for(
        """(() => {
          const a = document.querySelector('#archive-files a[href*="/archive/notified/"]');
          return a !== null && a.getAttribute("href");
        })()""",
        timeout=15,
    )
    assert href == f"/api/meters/{METER}/archive/notified/{day.day}.csv"
    assert await page.evaluate("document.querySelectorAll('#archive-files a').length") >= 1
    async with http.get(f"{web_url}{href.lstrip('/')}") as response:
        assert response.status == 200
        text = await response.text()
    assert text.startswith(f"# smx-archive 1 stream=notified meter={METER}\n")
    assert len([line for line in text.splitlines() if line[:1].isdigit()]) == day.periods
    assert_clean(page)


async def test_an_alarm_is_shown_and_acknowledged_by_an_operator_on_the_page(
    page: Page, running: Running
) -> None:
    alarms = running.gateway.alarms
    assert alarms is not None
    # The meter's terminal cover event as the poller hands it over (the OPC UA and REST
    # tests drive it through the simulated meter; this one is about the page).
    notes = alarms.meters[METER].on_event(datetime.now(UTC), 40)
    await alarms.publish(notes)
    row = "document.querySelector('#alarm-rows tr[data-acknowledged=\"false\"]')"
    assert await page.wait_for(f"{row} !== null && {row}.textContent.includes('TerminalCover')", timeout=15)
    assert await page.evaluate(f"{row}.children[0].textContent") == "900"
    assert "terminal cover opened" in await page.evaluate(f"{row}.children[3].textContent")
    await log_in(page)
    await page.click("#alarm-rows tr[data-acknowledged='false'] button")
    acked = (
        "Array.from(document.querySelectorAll('#alarm-rows tr'))"
        ".find((r) => r.textContent.includes('TerminalCover'))"
    )
    assert await page.wait_for(f"{acked} && {acked}.dataset.acknowledged === 'true'", timeout=15)
    state = alarms.condition(METER, "TerminalCover").state
    assert (state.acked, state.user, state.comment) == (True, "operator", "acknowledged on the web page")
    assert_clean(page)


async def test_the_weekly_power_quality_report_page(browser: Chromium, web_url: str) -> None:
    page = await browser.new_page(1000, 1200)
    try:
        await page.goto(f"{web_url}static/quality.html?meter={METER}&week=running")
        assert await page.wait_for("document.querySelectorAll('#criteria tr').length === 11", timeout=15)
        verdict = await page.evaluate("document.querySelector('#verdict').textContent")
        assert verdict in ("pass", "fail", "no data")
        first = await page.evaluate("document.querySelector('#criteria tr td').textContent")
        assert first == "Voltage within Un ±10 %"
        assert await page.evaluate("document.querySelector('#csv').getAttribute('href')") == (
            f"/api/meters/{METER}/power-quality.csv?week=running"
        )
        assert_clean(page)
    finally:
        await page.close()


async def test_phone_layout_is_one_column_without_horizontal_scroll(browser: Chromium, web_url: str) -> None:
    page = await browser.new_page(390, 844, mobile=True)
    try:
        await page.goto(web_url)
        first = await page.wait_for(f"{NUMBER}.test({VOLTAGE}) && {VOLTAGE}")
        # Wait for every card to be filled in, so the layout is the one a person sees.
        await page.wait_for(
            "document.querySelectorAll('#external-rows tr').length > 0"
            " && document.querySelector('#archive-files').textContent !== ''"
            " && document.querySelector('#profile-periods').textContent !== ''"
        )
        layout = await page.evaluate(
            """(() => {
              const grid = document.querySelector("main.grid");
              // The cards in the order they are shown (the column wrappers vanish on a phone).
              const cards = [...grid.querySelectorAll("section.card")]
                .map((c) => c.getBoundingClientRect()).sort((a, b) => a.top - b.top);
              const overflowing = [...document.body.querySelectorAll("*")]
                .filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5)
                .map((e) => e.id || e.className || e.localName);
              return {
                innerWidth,
                scrollWidth: document.documentElement.scrollWidth,
                columns: getComputedStyle(grid).gridTemplateColumns.split(" ").length,
                lefts: [...new Set(cards.map((r) => Math.round(r.left)))],
                stacked: cards.every((r, i) => i === 0 || r.top >= cards[i - 1].bottom),
                overflowing,
              };
            })()"""
        )
        assert layout["innerWidth"] == 390
        assert layout["scrollWidth"] <= 390, layout
        assert layout["columns"] == 1, layout
        assert len(layout["lefts"]) == 1, layout
        assert layout["stacked"], layout
        assert layout["overflowing"] == [], layout
        # The live values still move on the phone.
        second = await page.wait_for(
            f"{NUMBER}.test({VOLTAGE}) && {VOLTAGE} !== {json.dumps(first)} && {VOLTAGE}"
        )
        assert 200 <= float(second) <= 260, second
        assert_clean(page)
    finally:
        await page.close()


def afternoon_zone(now: datetime) -> str:
    """A fixed-offset zone in which `now` is about 15:00 (so a 12-hour clock says "03:… PM")."""
    offset = (15 - now.astimezone(UTC).hour) % 24
    if offset > 14:  # Etc/GMT zones span UTC-12 .. UTC+14
        offset -= 24
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # the Etc/GMT sign is inverted


async def test_advice_period_times_are_right_in_a_12_hour_locale(
    browser: Chromium, http: aiohttp.ClientSession, web_url: str
) -> None:
    """The advice names its period "period 69, 17:00–17:15"; in an en-US browser in the afternoon it
    says "05:00–05:15" (toLocaleTimeString gives "05:00:00 PM", cut to five characters)."""
    day = await running_day(http, web_url)
    profile = await ensure_profile(http, web_url, day)  # its periods give each period's start and end
    zone = afternoon_zone(datetime.now(UTC))
    page = await browser.new_page(1280, 800)
    try:
        await page.send("Emulation.setLocaleOverride", {"locale": "en-US"})
        await page.send("Emulation.setTimezoneOverride", {"timezoneId": zone})
        await page.goto(web_url)
        shown = await page.wait_for(
            r"/^period \d+, /.test(document.querySelector('#advice-period').textContent)"
            " && document.querySelector('#advice-period').textContent"
        )
        match = re.match(r"period (\d+), ", shown)
        assert match is not None
        period = profile["periods"][int(match[1]) - 1]

        def hh_mm(iso: str) -> str:
            return (
                datetime.fromisoformat(iso.replace("Z", "+00:00"))
                .astimezone(ZoneInfo(zone))
                .strftime("%H:%M")
            )

        assert_clean(page)
        assert shown == f"period {match[1]}, {hh_mm(period['start'])}–{hh_mm(period['end'])}"
    finally:
        await page.close()


#: Inked pixels of the power chart in its x-axis label band (below the zero line) in the last
#: 2 CSS px of the canvas: the grid and the line stop 4 px before the right edge.
POWER_CHART_RIGHT_EDGE = """(() => {
  const canvas = document.getElementById("power-chart");
  const ratio = canvas.width / canvas.clientWidth;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let y = canvas.height - Math.round(16 * ratio); y < canvas.height; y++) {
    for (let x = canvas.width - Math.round(2 * ratio); x < canvas.width; x++) {
      if (data[(y * canvas.width + x) * 4 + 3] > 0) inked++;
    }
  }
  return inked;
})()"""


async def test_power_chart_axis_labels_stay_inside_the_canvas(page: Page) -> None:
    await page.wait_for("state.power.length > 1")  # drawn from the live feed
    assert await page.evaluate(POWER_CHART_RIGHT_EDGE) == 0
    assert_clean(page)


async def test_screenshots_are_written_at_desktop_and_phone_width(
    browser: Chromium, http: aiohttp.ClientSession, web_url: str, tmp_path: Path
) -> None:
    await ensure_profile(http, web_url, await running_day(http, web_url))
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "tools" / "screenshots.py")
    assert spec is not None
    assert spec.loader is not None
    screenshots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(screenshots)

    paths = await screenshots.take_screenshots(web_url, tmp_path / "shots", browser=browser)
    assert [p.name for p in paths] == ["web-desktop.png", "web-phone.png"]
    desktop, phone = (png_size(p) for p in paths)
    assert desktop[0] == 1280
    assert phone[0] == 780  # 390 px at device scale 2
    # The desktop shot is the whole page (taller than the window); the phone shot its first screen.
    assert desktop[1] > 900
    assert phone[1] == 844 * 2
