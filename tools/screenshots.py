"""Screenshots of the gateway's web page, at a desktop and a phone width, and of the head-end's
portfolio view.

``take_screenshots(web_url, out_dir)`` opens the page of a running gateway in headless Chromium
(tests/support/browser.py), waits until the live values, the advice and the notified profile are shown
and writes ``web-desktop.png`` (1280 px wide) and ``web-phone.png`` (390 px at scale 2, so
780 px), both of the whole page. The web-page tests call it; run as a script, it starts the
demo gateway of ``make run`` itself::

    python tools/screenshots.py docs/screenshots [--only gateway|portfolio]

The demo gateway runs in a temporary working directory (its archive goes there), on ports
the OS picks. Before the shots it gets a notified profile for the running delivery day, in
the shape of a daily load curve, and the two external values of the demo.

``headend-portfolio.png`` is the fleet page's portfolio view (1280 px wide, the view's card)
over a real portfolio service fed in-process with twelve households through an hour
(tests/support/portfolio_fleet.py ``showcase``), on SQLite in the temporary directory.

``web-quality-report.png`` is the printable EN 50160 report of the demo meter's last week,
computed from a week of the simulated meter's physics written into the archive first.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import math
import os
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
#: The operator the demo data is registered as (a fresh password each run, in a temporary folder).
OPERATOR, PASSWORD = "screenshots", secrets.token_urlsafe(16)
if str(ROOT) not in sys.path:  # run as a script: tools/ is on the path, the project is not
    sys.path.insert(0, str(ROOT))

from gateway.app import Gateway  # noqa: E402
from gateway.archive.files import ArchiveWriter  # noqa: E402
from gateway.archive.minutes import REGISTER_STREAM, MinuteAggregator, RegisterSampler  # noqa: E402
from gateway.archive.minutes import STREAM as MINUTE_STREAM  # noqa: E402
from gateway.archive.recorder import EVENT_COLUMNS, PQ_COLUMNS, pq_record  # noqa: E402
from gateway.config import GatewayConfig, demo_config, one_second_set  # noqa: E402
from gateway.obis import CATALOGUE, Refresh  # noqa: E402
from gateway.quality.en50160 import TenMinuteAggregator, TenMinutes, week_of  # noqa: E402
from gateway.security.users import Role, UserDb  # noqa: E402
from gateway.simulator.physics import HouseholdModel  # noqa: E402
from headend.storage.sqlite import SqliteRepository  # noqa: E402
from tests.support import portfolio_fleet  # noqa: E402
from tests.support.browser import Chromium, Page  # noqa: E402

#: (file name, viewport width, height, mobile, device scale factor, whole page): the phone shows
#: what fits its screen, the first cards (the whole page is six screens long).
SHOTS = (
    ("web-desktop.png", 1280, 900, False, 1, True),
    ("web-phone.png", 390, 844, True, 2, False),
)

#: The page is ready for a picture: live values in the table (the energy registers too, which
#: are read every few seconds, not every second), the advice in words, the profile card filled
#: in (day, number of periods), the archive list loaded and a few points of net power in the chart.
READY = """
(() => {
  const voltage = document.querySelector('#values tr[data-obis="1-0:32.7.0"] .value');
  const advice = document.querySelector("#advice-text");
  const waiting = document.querySelectorAll('#values tr[data-quality="waiting"]').length;
  return voltage !== null && /^\\d/.test(voltage.textContent) && waiting === 0
    && advice.textContent.trim() !== "–" && advice.dataset.state !== undefined
    && document.querySelector("#profile-day").textContent !== ""
    && document.querySelector("#profile-periods").textContent !== ""
    && document.querySelector("#archive-files").textContent !== ""
    && state.power.length >= 3;
})()
"""


#: The head-end's portfolio view: (file name, viewport width, height).
PORTFOLIO_SHOT = ("headend-portfolio.png", 1280, 1000)
#: The portfolio view is ready: the chart holds the hour, the members' table and the advice are in.
PORTFOLIO_READY = """
(() => {
  const view = document.querySelector("#portfolio-view");
  const chart = document.querySelector("#pf-chart");
  return !view.hidden && view.dataset.portfolio === "north" && chart.dataset.state === "drawn"
    && Number(chart.dataset.points) > 600 && document.querySelectorAll("#pf-members tbody tr").length > 0
    && document.querySelector("#pf-advice").dataset.state !== undefined;
})()
"""


async def take_screenshots(web_url: str, out_dir: Path, *, browser: Chromium | None = None) -> list[Path]:
    """Write ``web-desktop.png`` and ``web-phone.png`` of the page at ``web_url`` into ``out_dir``;
    returns their paths. Uses ``browser`` if given, else launches (and stops) one of its own."""
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        if browser is None:  # one of its own (Chromium.launch finds it, or says it is not installed)
            browser = await stack.enter_async_context(Chromium.launch())
        paths = []
        for name, width, height, mobile, scale, whole in SHOTS:
            page = await browser.new_page(width, height, mobile=mobile, device_scale_factor=scale)
            try:
                paths.append(await _shoot(page, web_url, out_dir / name, whole))
            finally:
                await page.close()
        return paths


async def _shoot(page: Page, web_url: str, path: Path, whole: bool) -> Path:
    await page.goto(web_url)
    await page.wait_for(READY, timeout=30)
    if page.errors:
        raise RuntimeError(f"the page at {web_url} threw: {page.errors}")
    return await page.screenshot(path, full_page=whole)


async def take_portfolio_screenshot(
    fleet_url: str, out_dir: Path, *, browser: Chromium | None = None, portfolio: str = "north"
) -> Path:
    """Write ``headend-portfolio.png``: the portfolio view's card of the head-end's fleet page at
    ``fleet_url``, showing ``portfolio``; returns its path."""
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    name, width, height = PORTFOLIO_SHOT
    async with contextlib.AsyncExitStack() as stack:
        if browser is None:  # one of its own (Chromium.launch finds it, or says it is not installed)
            browser = await stack.enter_async_context(Chromium.launch())
        page = await browser.new_page(width, height)
        try:
            await page.goto(f"{fleet_url}#portfolio={portfolio}")
            await page.wait_for(PORTFOLIO_READY.replace('"north"', json.dumps(portfolio)), timeout=30)
            if page.errors:
                raise RuntimeError(f"the page at {fleet_url} threw: {page.errors}")
            return await _element_shot(page, "#portfolio-view", out_dir / name)
        finally:
            await page.close()


async def _element_shot(page: Page, selector: str, path: Path, margin: int = 8) -> Path:
    """A PNG of the element (and ``margin`` px around it), scrolled into view first."""
    x, y, w, h = await page.evaluate(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
        " const r = e.getBoundingClientRect();"
        " return [r.left + scrollX, r.top + scrollY, r.width, r.height]; })()"
    )
    clip = {"x": max(0, x - margin), "y": max(0, y - margin), "width": w + 2 * margin,
            "height": h + 2 * margin, "scale": 1}  # fmt: skip
    result = await page.send("Page.captureScreenshot", {"format": "png", "clip": clip})
    await asyncio.to_thread(path.write_bytes, base64.b64decode(result["data"]))
    return path


async def shoot_portfolio(out_dir: Path) -> Path:
    """The showcase fleet's portfolio service on SQLite (in the working directory), served, shot."""
    repo = SqliteRepository(Path(os.getcwd()) / "portfolio-showcase.sqlite")
    await repo.open()
    try:
        async with portfolio_fleet.showcase(repo) as fed:
            return await take_portfolio_screenshot(fed.server.url, out_dir)
    finally:
        await repo.close()


# -- the demo gateway of the script ------------------------------------------------------------


def load_curve(periods: int) -> list[float]:
    """Net import energy per period (kWh) of a household-like day: a night base of 0.1 kWh, a
    morning peak near 07:30 and a higher evening peak near 19:00 (at most 0.6 kWh per period)."""
    values = []
    for n in range(periods):
        hour = (n + 0.5) * 24 / periods
        morning = 0.30 * math.exp(-(((hour - 7.5) / 1.3) ** 2))
        midday = 0.12 * math.exp(-(((hour - 12.5) / 2.0) ** 2))
        evening = 0.50 * math.exp(-(((hour - 19.0) / 2.0) ** 2))
        values.append(round(min(0.6, 0.1 + morning + midday + evening), 3))
    return values


async def feed_demo_data(web_url: str, password: str, meter: str = "meter1") -> None:
    """A notified profile for the running delivery day and both demo external values, over REST
    as the operator ``screenshots`` (see :func:`demo_gateway`)."""
    operator = {"Authorization": aiohttp.encode_basic_auth(OPERATOR, password)}
    async with aiohttp.ClientSession(raise_for_status=True, headers=operator) as http:
        async with http.get(f"{web_url}api/meters/{meter}/profiles") as response:
            listing = await response.json()
        today = listing["today"]
        periods = next(u["periods"] for u in listing["upcoming"] if u["day"] == today)
        profile = {"values": load_curve(periods), "unit": "kWh", "replace": True}
        async with http.put(f"{web_url}api/meters/{meter}/profiles/{today}", json=profile):
            pass
        async with http.put(f"{web_url}api/external/spot_price", json={"value": 87.5}):
            pass
        ten_minutes_ago = (datetime.now(UTC) - timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
        share = {"value": 63.0, "time": ten_minutes_ago}
        async with http.put(f"{web_url}api/external/renewable_share", json=share):
            pass


def archive_last_hour(config: GatewayConfig, now: datetime) -> None:
    """The archive of the hour before ``now`` as a gateway reading the simulated meter would have
    written it, from the meter's own physics: minute records of the active powers (the page's
    one-hour chart) and a register sample per minute (A+ and A- run back from the registers the
    simulated meter starts with, 12345 and 2345 kWh), which let the advice start at once."""
    meter = config.meters[0]
    assert meter.simulator is not None
    model = HouseholdModel(seed=meter.simulator.seed)
    by_obis = {i.obis: i for i in CATALOGUE}
    minutes = MinuteAggregator([by_obis[o] for o in one_second_set(meter)])
    registers = RegisterSampler([i for i in CATALOGUE if i.refresh is Refresh.REGISTER])
    first = now.replace(second=0, microsecond=0) - timedelta(hours=1)
    seconds = [first + timedelta(seconds=n) for n in range(int((now - first).total_seconds()))]
    powers = [(model.instant(t).active_import_kw, model.instant(t).active_export_kw) for t in seconds]
    # The registers at each second, integrated backwards from their value now.
    a_plus, a_minus = [0.0] * len(seconds), [0.0] * len(seconds)
    energy_in, energy_out = 12345.0, 2345.0
    for n in range(len(seconds) - 1, -1, -1):
        energy_in -= powers[n][0] / 3600
        energy_out -= powers[n][1] / 3600
        a_plus[n], a_minus[n] = energy_in, energy_out
    minute_rows, register_rows = [], []
    for k in range(60):
        part = powers[k * 60 : (k + 1) * 60]
        columns = {"1-0:1.7.0": [p[0] for p in part], "1-0:2.7.0": [p[1] for p in part]}
        values: list[float | None] = []
        for column in minutes.columns:
            samples = columns.get(column.obis)
            if samples is None:
                values.append(None)
            else:
                values.append({
                    "mean": sum(samples) / len(samples), "min": min(samples), "max": max(samples),
                    "count": float(len(samples)),
                }[column.qualifier])  # fmt: skip
        minute_rows.append((seconds[k * 60], None, tuple(values)))
        at = k * 60 + 30
        sample = {"1-0:1.8.0": a_plus[at], "1-0:2.8.0": a_minus[at]}
        register_rows.append((seconds[at], None, tuple(sample.get(c.obis) for c in registers.columns)))
    writer = ArchiveWriter(config.archive.path, meter.id)
    try:
        writer.append(MINUTE_STREAM, minutes.columns, minute_rows)
        writer.append(REGISTER_STREAM, registers.columns, register_rows)
    finally:
        writer.close()


def archive_last_week(config: GatewayConfig, now: datetime) -> None:
    """The last complete week's EN 50160 aggregates (``pq10``) and voltage events as the gateway
    would have archived them, from the simulated meter's physics second by second (its own
    sags and swells), with an evening of low voltage and one 10-minute outage added - what
    the weekly report shows in the README."""
    meter = config.meters[0]
    assert meter.simulator is not None
    model = HouseholdModel(seed=meter.simulator.seed)
    start, end = week_of(week_of(now, None)[0] - timedelta(seconds=1), None)
    model.plant(start + timedelta(days=2, hours=18), start + timedelta(days=2, hours=20), voltage=204.0)
    outage = (start + timedelta(days=4, hours=9, minutes=3), start + timedelta(days=4, hours=9, minutes=13))
    aggregator = TenMinuteAggregator()
    records: list[TenMinutes] = []
    t = start
    while t < end:
        if not outage[0] <= t < outage[1]:
            sample = model.instant(t)
            records += aggregator.add(t, [ph.voltage_v for ph in sample.phases], sample.frequency_hz)
        t += timedelta(seconds=1)
    records += [r for r in (aggregator.flush(),) if r is not None]
    events: list[tuple[datetime, int]] = [(outage[0], 1), (outage[1], 2)]
    for d in model.disturbances_between(start, end):
        base = 76 if d.kind.value == "sag" else 79
        events += [(d.start, base + p - 1) for p in d.phases] + [(d.end, 82 + p - 1) for p in d.phases]
    events += [(start + timedelta(days=2, hours=18), 76 + k) for k in range(3)]
    events += [(start + timedelta(days=2, hours=20), 82 + k) for k in range(3)]
    writer = ArchiveWriter(config.archive.path, meter.id)
    try:
        writer.append("pq10", PQ_COLUMNS, [pq_record(r) for r in records])
        writer.append("events", EVENT_COLUMNS, [(at, 0, (float(code),)) for at, code in sorted(events)])
    finally:
        writer.close()


async def take_report_screenshot(web_url: str, out_dir: Path, *, browser: Chromium | None = None) -> Path:
    """Write ``web-quality-report.png``: the printable EN 50160 report of the last week."""
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        if browser is None:
            browser = await stack.enter_async_context(Chromium.launch())
        page = await browser.new_page(1000, 1200)
        try:
            await page.goto(f"{web_url}static/quality.html?meter=meter1&week=last")
            await page.wait_for("document.querySelectorAll('#criteria tr').length > 0", timeout=30)
            if page.errors:
                raise RuntimeError(f"the report page threw: {page.errors}")
            return await page.screenshot(out_dir / "web-quality-report.png", full_page=True)
        finally:
            await page.close()


@contextlib.asynccontextmanager
async def demo_gateway() -> AsyncIterator[Gateway]:
    """The demo gateway (``make run``) on ports the OS picks, until the block ends."""
    config = demo_config()
    config = replace(config, web=replace(config.web, port=0), opcua=replace(config.opcua, port=0))
    archive_last_hour(config, datetime.now(UTC))
    archive_last_week(config, datetime.now(UTC))
    # An operator to register the demo profile with, in this run's own users file.
    users = UserDb.load(config.security.users)
    users.add(OPERATOR, Role.OPERATOR, password=PASSWORD)
    Path(config.security.users).parent.mkdir(parents=True, exist_ok=True)
    users.save()
    gateway = Gateway(config)
    task = asyncio.create_task(gateway.run(), name="gateway")
    try:
        ready = asyncio.create_task(gateway.ready.wait())
        async with asyncio.timeout(60):
            done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises what stopped the gateway
        yield gateway
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def shoot_demo(out_dir: Path) -> list[Path]:
    """Start the demo gateway, give it a profile and external values, and take the screenshots."""
    async with demo_gateway() as gateway:
        await feed_demo_data(gateway.web_url, PASSWORD)
        shots = await take_screenshots(gateway.web_url, out_dir)
        return [*shots, await take_report_screenshot(gateway.web_url, out_dir)]


def main(out_dir: Path, which: str = "all") -> list[Path]:
    """`shoot_demo` and `shoot_portfolio` (``which``: all, gateway or portfolio) in a temporary
    working directory (the demo's archive and the showcase's database go there)."""
    out_dir = out_dir.resolve()
    start = Path.cwd()
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="smx-screenshots-") as work:
        os.chdir(work)
        try:
            if which in ("all", "gateway"):
                written += asyncio.run(shoot_demo(out_dir))
            if which in ("all", "portfolio"):
                written.append(asyncio.run(shoot_portfolio(out_dir)))
            return written
        finally:
            os.chdir(start)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "out_dir", type=Path, help="where to write web-desktop.png, web-phone.png and headend-portfolio.png"
    )
    parser.add_argument("--only", choices=["all", "gateway", "portfolio"], default="all")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for written in main(args.out_dir, args.only):
        print(f"wrote {written}")
