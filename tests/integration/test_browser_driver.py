"""The headless Chromium driver (tests/support/browser.py) against a tiny page served on 127.0.0.1: it loads,
reads, clicks, fills, waits without polling from Python, collects console output and uncaught
errors, takes screenshots of the right size, and never leaves a browser running."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from tests.support import browser as driver
from tests.support.browser import CdpError, Chromium, Page, require_chromium
from tests.support.loopback import serve

# One browser and one server for the module: both live on the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Driver test</title>
  <style>
    body { margin: 0; padding: 16px; font-family: sans-serif; }
    .tall { height: 1500px; background: linear-gradient(#fff, #9cf); }
  </style>
</head>
<body>
  <h1 id="title">
    Driver test page
  </h1>
  <button id="later" onclick="setTimeout(() => { this.textContent = 'Done'; }, 300)">Start</button>
  <input id="name">
  <textarea id="notes"></textarea>
  <select id="mode"><option value="auto">Auto</option><option value="manual">Manual</option></select>
  <p id="echo"></p>
  <button id="log" onclick="console.log('clicked', 42, {a: 1})">Log</button>
  <button id="boom" onclick="throw new Error('deliberate boom')">Boom</button>
  <div class="tall"></div>
  <script>
    for (const id of ["name", "notes", "mode"]) {
      document.getElementById(id).addEventListener(id === "mode" ? "change" : "input", (event) => {
        document.getElementById("echo").textContent = `${id}=${event.target.value}`;
      });
    }
    console.info("page script ran");
  </script>
</body>
</html>
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def url() -> AsyncIterator[str]:
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    async with serve(app) as base:
        yield base


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_chromium()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: str) -> AsyncIterator[Chromium]:
    async with Chromium.launch(chromium) as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Chromium, url: str) -> AsyncIterator[Page]:
    page = await browser.new_page()
    try:
        await page.goto(url)
        yield page
    finally:
        await page.close()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG format puts first."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_page_loads_and_text_is_read_stripped(page: Page) -> None:
    assert await page.text("#title") == "Driver test page"
    assert await page.evaluate("document.title") == "Driver test"
    assert page.console == ["info: page script ran"]


async def test_click_then_wait_for_sees_the_delayed_change(page: Page) -> None:
    await page.click("#later")
    assert await page.text("#later") == "Start"  # the change comes 300 ms later
    text = await page.wait_for("document.querySelector('#later').textContent === 'Done' && 'changed'")
    assert text == "changed"
    assert await page.text("#later") == "Done"


async def test_wait_for_times_out_naming_the_condition(page: Page) -> None:
    with pytest.raises(TimeoutError, match=r"window\.neverSet === 1"):
        await page.wait_for("window.neverSet === 1", timeout=0.2)


async def test_wait_for_tolerates_errors_until_the_condition_holds(page: Page) -> None:
    await page.evaluate("setTimeout(() => { window.later = {ready: 'yes'}; }, 100)")
    assert await page.wait_for("window.later.ready;") == "yes"  # throws TypeError until then


@pytest.mark.parametrize(
    ("selector", "value", "echo"),
    [
        ("#name", "Zählerstand 1", "name=Zählerstand 1"),
        ("#notes", "a\nb", "notes=a\nb"),
        ("#mode", "manual", "mode=manual"),
    ],
)
async def test_fill_sets_value_and_fires_events(page: Page, selector: str, value: str, echo: str) -> None:
    await page.fill(selector, value)
    assert await page.evaluate(f"document.querySelector('{selector}').value") == value
    assert await page.text("#echo") == echo


async def test_fill_rejects_a_missing_select_option(page: Page) -> None:
    with pytest.raises(CdpError, match="refused the value"):
        await page.fill("#mode", "turbo")


async def test_click_on_nothing_raises(page: Page) -> None:
    with pytest.raises(CdpError, match="no element matches #missing"):
        await page.click("#missing")


async def test_console_messages_and_uncaught_errors_are_collected(page: Page) -> None:
    await page.click("#log")
    await page.click("#boom")
    # The handlers ran within the clicks, so their events came in before the clicks' replies.
    assert page.console == ["info: page script ran", "log: clicked 42 Object"]
    assert len(page.errors) == 1
    assert page.errors[0].startswith("Error: deliberate boom"), page.errors


async def test_evaluate_of_a_throwing_expression_raises_cdp_error(page: Page) -> None:
    with pytest.raises(CdpError, match="TypeError: Cannot read properties of null"):
        await page.evaluate("document.querySelector('#missing').textContent")
    with pytest.raises(CdpError, match="rejected on purpose"):
        await page.evaluate("Promise.reject(new Error('rejected on purpose'))")
    assert page.errors == []  # an exception of evaluate itself is not an uncaught page error


async def test_evaluate_returns_json_values(page: Page) -> None:
    assert await page.evaluate("({a: [1, 'x', null, true]})") == {"a": [1, "x", None, True]}
    assert await page.evaluate("undefined") is None
    assert await page.evaluate("Promise.resolve(2 ** 70).then((x) => -x)") == -(2.0**70)
    assert await page.evaluate("10n ** 20n") == 10**20


async def test_dialogs_are_accepted_instead_of_blocking_the_page(page: Page) -> None:
    assert await page.evaluate("alert('hello'); confirm('sure?')") is True
    assert page.dialogs == ["alert: hello", "confirm: sure?"]


async def test_goto_an_unreachable_url_raises(page: Page) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(CdpError, match="ERR_CONNECTION_REFUSED"):
        await page.goto(f"http://127.0.0.1:{port}/")


@pytest.mark.parametrize(
    ("width", "height", "mobile", "scale"),
    [(390, 844, True, 1), (390, 844, True, 2), (1280, 800, False, 1)],
    ids=["phone", "phone-2x", "desktop"],
)
@pytest.mark.parametrize("full_page", [True, False], ids=["full", "viewport"])
async def test_screenshot_is_a_png_of_the_viewport_width(
    browser: Chromium,
    url: str,
    tmp_path: Path,
    width: int,
    height: int,
    mobile: bool,
    scale: int,
    full_page: bool,
) -> None:
    page = await browser.new_page(width, height, mobile=mobile, device_scale_factor=scale)
    try:
        await page.goto(url)
        emulated = await page.evaluate("[innerWidth, devicePixelRatio, navigator.maxTouchPoints > 0]")
        assert emulated == [width, scale, mobile]
        path = await page.screenshot(tmp_path / "shot.png", full_page=full_page)
    finally:
        await page.close()
    shot_width, shot_height = png_size(path.read_bytes())
    assert shot_width == width * scale
    if full_page:
        assert shot_height > height * scale  # the page is taller than the viewport
    else:
        assert shot_height == height * scale


@pytest.mark.parametrize("fails", [False, True], ids=["normal-exit", "test-fails-inside"])
async def test_browser_is_stopped_and_profile_removed_on_exit(chromium: str, url: str, fails: bool) -> None:
    failure = pytest.raises(RuntimeError, match="failing inside") if fails else contextlib.nullcontext()
    with failure:
        async with Chromium.launch(chromium) as browser:
            process, profile = browser.process, browser.user_data_dir
            page = await browser.new_page()
            await page.goto(url)
            if fails:
                raise RuntimeError("a test failing inside the block")
    assert process.returncode is not None
    assert not profile.exists()
    # Helpers (renderers, GPU, crash handler) run with the profile in their command line.
    assert not [cmd for cmd in _live_command_lines() if str(profile) in cmd]


def _live_command_lines() -> list[str]:
    lines = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # exited, waiting only for its parent (init, here) to collect it
            lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return lines


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), (None, pytest.skip.Exception)])
async def test_missing_chromium_fails_on_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str | None, outcome: type[BaseException]
) -> None:
    # Async only because the module's asyncio mark applies to every test in it.
    monkeypatch.setattr(driver, "find_chromium", lambda: None)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=r"chromium not installed \(apt-get install chromium\)"):
        require_chromium()
