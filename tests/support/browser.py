"""A small driver of headless Chromium over the Chrome DevTools Protocol (CDP), for end-to-end tests.

It does what web-page tests need and no more: launch a throwaway browser, open pages with a given
viewport, navigate, run JavaScript, click, fill and read elements, wait for a condition in the page
and take screenshots. Console messages and uncaught exceptions are collected, so a test can assert
that the page ran cleanly::

    async with Chromium.launch(require_chromium()) as browser:
        page = await browser.new_page(width=390, height=844, mobile=True)
        await page.goto(url)
        await page.click("#start")
        await page.wait_for("document.querySelector('#status').textContent === 'done'")
        assert page.errors == []
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import functools
import itertools
import json
import logging
import math
import os
import re
import shutil
import signal
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
EventHandler = Callable[[JsonObject], None]
EventPredicate = Callable[[JsonObject], bool]

CHROMIUM_PATHS = ("/usr/bin/chromium", "chromium", "chromium-browser")

#: Flags for a quiet, reproducible, throwaway browser: no sandbox (tests run as root in containers),
#: no GPU, and nothing that reaches the network on its own (updates, sync, QUIC probes). Scrollbars
#: are hidden so that layout and full-page screenshots are as wide as the emulated viewport.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)

#: Marks the rejection of `Page.wait_for`'s promise, so it can be told from an error of the condition.
_WAIT_TIMEOUT_MARK = "wait_for timed out"


class CdpError(RuntimeError):
    """A DevTools command failed, JavaScript in the page threw, or the connection went away."""


def find_chromium() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    for name in CHROMIUM_PATHS:
        if found := shutil.which(name):
            return found
    return None


def require_chromium() -> str:
    """The Chromium executable for a test; skips the test without one, but fails it on CI (which
    installs Chromium, so a missing one there is a broken setup, not a reason to pass quietly)."""
    executable = find_chromium()
    if executable is not None:
        return executable
    reason = "chromium not installed (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class _Pending:
    method: str
    session_id: str | None
    future: asyncio.Future[JsonObject]


@dataclass
class _Waiter:
    method: str
    session_id: str | None
    predicate: EventPredicate | None
    future: asyncio.Future[JsonObject] = field(repr=False)


class CdpConnection:
    """One DevTools WebSocket: numbered commands answered through futures, and events that are
    collected in `events`, passed to handlers (`on`) and can be awaited (`wait_event`)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._waiters: list[_Waiter] = []
        self._handlers: dict[tuple[str, str | None], list[EventHandler]] = {}
        self._closed: str | None = None
        #: Every event received, in order, as the raw message (``method``, ``params``, ``sessionId``).
        self.events: list[JsonObject] = []
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, url: str) -> CdpConnection:
        # Screenshots of long pages arrive as one message of many megabytes: no size limit.
        ws = await http.ws_connect(url, max_msg_size=0)
        return cls(ws)

    async def send(
        self,
        method: str,
        params: JsonObject | None = None,
        *,
        session_id: str | None = None,
        timeout: float = 30,
    ) -> JsonObject:
        """Run a command (in the target of `session_id`, or on the browser) and return its result."""
        if self._closed is not None:
            raise CdpError(f"{method}: {self._closed}")
        message_id = next(self._ids)
        message: JsonObject = {"id": message_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        pending = _Pending(method, session_id, asyncio.get_running_loop().create_future())
        self._pending[message_id] = pending
        try:
            try:
                await self._ws.send_str(json.dumps(message))
            except (ConnectionError, aiohttp.ClientError) as exc:
                raise CdpError(f"{method}: connection failed: {exc!r}") from exc
            async with asyncio.timeout(timeout):
                return await pending.future
        except TimeoutError:
            raise TimeoutError(f"{method}: no reply within {timeout} s") from None
        finally:
            del self._pending[message_id]

    def on(self, method: str, handler: EventHandler, *, session_id: str | None = None) -> Callable[[], None]:
        """Call `handler(params)` for each `method` event (of `session_id` only, if given); returns a
        function that removes the handler."""
        handlers = self._handlers.setdefault((method, session_id), [])
        handlers.append(handler)
        return lambda: handlers.remove(handler)

    def cursor(self) -> int:
        """A mark in `events`, for `wait_event(since=...)`: take it before the command that causes
        the event, so an event that arrives before `wait_event` is called is not missed."""
        return len(self.events)

    async def wait_event(
        self,
        method: str,
        predicate: EventPredicate | None = None,
        timeout: float = 10,
        *,
        session_id: str | None = None,
        since: int | None = None,
    ) -> JsonObject:
        """The params of the next `method` event (of `session_id`, if given) that `predicate` accepts;
        with `since`, an event already received after that `cursor()` counts too."""
        if since is not None:
            for event in self.events[since:]:
                if self._matches(event, method, session_id, predicate):
                    params: JsonObject = event.get("params", {})
                    return params
        if self._closed is not None:
            raise CdpError(f"waiting for {method}: {self._closed}")
        waiter = _Waiter(method, session_id, predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter.future
        except TimeoutError:
            raise TimeoutError(f"no {method} event within {timeout} s") from None
        finally:
            self._waiters.remove(waiter)

    async def close(self) -> None:
        """Close the WebSocket and stop reading; commands still waiting fail with `CdpError`."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._fail_all("connection closed")

    @staticmethod
    def _matches(
        event: JsonObject, method: str, session_id: str | None, predicate: EventPredicate | None
    ) -> bool:
        if event.get("method") != method:
            return False
        if session_id is not None and event.get("sessionId") != session_id:
            return False
        return predicate is None or predicate(event.get("params", {}))

    async def _read(self) -> None:
        reason = "connection closed by the browser"
        try:
            async for message in self._ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self._dispatch(json.loads(message.data))
                elif message.type is aiohttp.WSMsgType.ERROR:
                    reason = f"connection failed: {self._ws.exception()!r}"
        except Exception as exc:  # the reason is what matters: every waiting command gets it
            reason = f"connection failed: {exc!r}"
        finally:
            self._fail_all(reason)

    def _dispatch(self, message: JsonObject) -> None:
        if "id" in message:
            pending = self._pending.get(message["id"])
            if pending is None or pending.future.done():
                return  # the sender gave up (timeout or cancellation)
            if "error" in message:
                error = message["error"]
                detail = f" ({error['data']})" if error.get("data") else ""
                pending.future.set_exception(CdpError(f"{pending.method}: {error.get('message')}{detail}"))
            else:
                pending.future.set_result(message.get("result", {}))
            return
        self.events.append(message)
        method, params = message.get("method", ""), message.get("params", {})
        session_id = message.get("sessionId")
        if method == "Target.detachedFromTarget":
            # Commands sent to a closed or crashed page would otherwise wait for their full timeout.
            self._fail_session(params.get("sessionId"), "target detached (page closed or crashed)")
        handlers = list(self._handlers.get((method, None), ()))
        if session_id is not None:
            handlers += self._handlers.get((method, session_id), ())
        for handler in handlers:
            try:
                handler(params)
            except Exception:
                # One broken handler must not stop the reader: every later reply would be lost.
                log.exception("handler of %s failed", method)
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            try:
                if self._matches(message, waiter.method, waiter.session_id, waiter.predicate):
                    waiter.future.set_result(params)
            except Exception as exc:
                waiter.future.set_exception(exc)

    def _fail_session(self, session_id: str | None, reason: str) -> None:
        for pending in self._pending.values():
            if pending.session_id == session_id and not pending.future.done():
                pending.future.set_exception(CdpError(f"{pending.method}: {reason}"))

    def _fail_all(self, reason: str) -> None:
        self._closed = self._closed or reason
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(CdpError(f"{pending.method}: {reason}"))
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(CdpError(f"waiting for {waiter.method}: {reason}"))


class Chromium:
    """A running headless Chromium; made by `Chromium.launch`, which also stops it."""

    def __init__(self, process: asyncio.subprocess.Process, cdp: CdpConnection, user_data_dir: Path) -> None:
        self.process = process
        self.cdp = cdp
        self.user_data_dir = user_data_dir

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(
        cls, executable: str | None = None, *, timeout: float = 30, args: Sequence[str] = ()
    ) -> AsyncIterator[Chromium]:
        """Start Chromium with a fresh profile and connect to it; on exit stop it (killing it if it
        does not stop) and remove the profile, whatever happened inside the block."""
        executable = executable or find_chromium()
        if executable is None:
            raise FileNotFoundError("chromium not installed (apt-get install chromium)")
        user_data_dir = Path(tempfile.mkdtemp(prefix="cdp-chromium-"))
        process: asyncio.subprocess.Process | None = None
        stderr_tail: deque[str] = deque(maxlen=30)
        drain: asyncio.Task[None] | None = None
        http: aiohttp.ClientSession | None = None
        cdp: CdpConnection | None = None
        kill_at_exit: Callable[[], None] | None = None
        try:
            process = await asyncio.create_subprocess_exec(
                executable,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={user_data_dir}",
                *args,
                "about:blank",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                # Its own process group, so the renderer and GPU helpers can be killed with it.
                start_new_session=True,
                # The crash handler's database and caches go to ~/.config and ~/.cache otherwise.
                env={
                    **os.environ,
                    "XDG_CONFIG_HOME": str(user_data_dir / "xdg-config"),
                    "XDG_CACHE_HOME": str(user_data_dir / "xdg-cache"),
                },
            )
            # If the event loop never gets to the `finally` below (interpreter exit), still kill it.
            kill_at_exit = functools.partial(_kill_group, process.pid)
            atexit.register(kill_at_exit)
            assert process.stderr is not None
            drain = asyncio.create_task(_drain(process.stderr, stderr_tail), name="chromium-stderr")
            endpoint = await _devtools_endpoint(process, user_data_dir, stderr_tail, timeout)
            http = aiohttp.ClientSession()
            cdp = await CdpConnection.connect(http, endpoint)
            yield cls(process, cdp, user_data_dir)
        finally:
            await _shutdown(process, cdp, http, drain)
            if kill_at_exit is not None:
                atexit.unregister(kill_at_exit)
            await asyncio.to_thread(shutil.rmtree, user_data_dir, ignore_errors=True)

    async def new_page(
        self, width: int = 1280, height: int = 800, mobile: bool = False, device_scale_factor: float = 1
    ) -> Page:
        """A new tab with its viewport emulated, in a browser context of its own (so cookies and
        storage do not leak between pages of one shared browser)."""
        context = (await self.cdp.send("Target.createBrowserContext"))["browserContextId"]
        try:
            target = await self.cdp.send(
                "Target.createTarget", {"url": "about:blank", "browserContextId": context}
            )
            target_id = target["targetId"]
            attached = await self.cdp.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})
        except BaseException:
            # Disposing of the context closes its tab too.
            with contextlib.suppress(CdpError, TimeoutError):
                await self.cdp.send("Target.disposeBrowserContext", {"browserContextId": context}, timeout=5)
            raise
        page = Page(self.cdp, target_id, attached["sessionId"], context)
        try:
            await page._set_up(width, height, mobile, device_scale_factor)
        except BaseException:
            await page.close()
            raise
        return page


async def _drain(stream: asyncio.StreamReader, tail: deque[str]) -> None:
    # Chromium (and its helpers, which share the pipe) would block once the pipe is full.
    while line := await stream.readline():
        tail.append(line.decode(errors="replace").rstrip())


async def _devtools_endpoint(
    process: asyncio.subprocess.Process, user_data_dir: Path, stderr_tail: deque[str], timeout: float
) -> str:
    """The browser's WebSocket URL, from the ``DevToolsActivePort`` file Chromium writes (port on the
    first line, path on the second) once it listens."""
    port_file = user_data_dir / "DevToolsActivePort"
    exited = asyncio.create_task(process.wait())
    try:
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(FileNotFoundError):
                    lines = port_file.read_text().split()
                    if len(lines) == 2 and lines[0].isdigit():  # else still being written
                        return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
                done, _ = await asyncio.wait({exited}, timeout=0.05)
                if done:
                    tail = "\n".join(stderr_tail)
                    raise CdpError(f"chromium exited ({process.returncode}) before DevTools was up:\n{tail}")
    except TimeoutError:
        tail = "\n".join(stderr_tail)
        raise TimeoutError(f"chromium did not open DevTools within {timeout} s:\n{tail}") from None
    finally:
        exited.cancel()


async def _shutdown(
    process: asyncio.subprocess.Process | None,
    cdp: CdpConnection | None,
    http: aiohttp.ClientSession | None,
    drain: asyncio.Task[None] | None,
) -> None:
    """Stop the browser: politely (Browser.close), then SIGTERM, then SIGKILL of its process group."""
    asked_to_close = False
    if cdp is not None:
        # A graceful close lets Chromium take its helpers down and finish writing the profile.
        with contextlib.suppress(CdpError, TimeoutError):
            await cdp.send("Browser.close", timeout=5)
            asked_to_close = True
        await cdp.close()
    if http is not None:
        await http.close()
    if process is not None:
        stops: list[Callable[[], None] | None] = [None] if asked_to_close else []
        for stop in [*stops, process.terminate, process.kill]:
            if process.returncode is not None:
                break
            if stop is not None:
                with contextlib.suppress(ProcessLookupError):
                    stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 5)
        if process.returncode is None:
            await process.wait()  # after SIGKILL this cannot take long
        _kill_group(process.pid)  # helpers that outlived the browser
    if drain is not None:
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Page:
    """One tab, driven through its own CDP session. `console` holds ``"type: text"`` per console
    call, `errors` the uncaught exceptions, `dialogs` the alert/confirm/prompt messages (accepted)."""

    def __init__(self, cdp: CdpConnection, target_id: str, session_id: str, browser_context_id: str) -> None:
        self.cdp = cdp
        self.target_id = target_id
        self.session_id = session_id
        self.browser_context_id = browser_context_id
        self.console: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe = [
            cdp.on("Runtime.consoleAPICalled", self._on_console, session_id=session_id),
            cdp.on("Runtime.exceptionThrown", self._on_exception, session_id=session_id),
            cdp.on("Page.javascriptDialogOpening", self._on_dialog, session_id=session_id),
        ]

    async def send(self, method: str, params: JsonObject | None = None, timeout: float = 30) -> JsonObject:
        """A CDP command in this page's session."""
        return await self.cdp.send(method, params, session_id=self.session_id, timeout=timeout)

    async def _set_up(self, width: int, height: int, mobile: bool, device_scale_factor: float) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": device_scale_factor, "mobile": mobile},
        )
        if mobile:
            await self.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
        await self.send("Page.enable")
        await self.send("Runtime.enable")

    async def goto(self, url: str, timeout: float = 30) -> None:
        """Navigate and wait for the load event; raises `CdpError` if the navigation failed."""
        try:
            async with asyncio.timeout(timeout):
                await self._navigate(url, timeout)
        except TimeoutError:
            raise TimeoutError(f"goto {url}: not loaded within {timeout} s") from None

    async def _navigate(self, url: str, timeout: float) -> None:
        # Events are looked for from before the command on, as the load event may come in before
        # this coroutine runs again after the reply.
        mark = self.cdp.cursor()
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"navigation to {url} failed: {result['errorText']}")
        if "loaderId" not in result:
            return  # same-document navigation (only the #fragment changed): no load event
        await self.cdp.wait_event(
            "Page.loadEventFired", timeout=timeout, session_id=self.session_id, since=mark
        )

    async def evaluate(self, expression: str, timeout: float = 10) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited); raises `CdpError` with
        the exception's description if it throws."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True, "userGesture": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            raise CdpError(_exception_text(result["exceptionDetails"]))
        return _remote_value(result["result"])

    async def wait_for(self, condition: str, timeout: float = 10) -> Any:
        """Wait until the JavaScript expression `condition` is truthy and return its value; raises
        `TimeoutError` naming the condition. The page itself re-checks it on every DOM change and
        every 50 ms, so the test does not poll."""
        source = condition.strip().rstrip(";")
        expression = _fill_in(
            _WAIT_FOR_JS,
            CONDITION=source,
            MESSAGE=json.dumps(f"{_WAIT_TIMEOUT_MARK} after {timeout} s: {source}"),
            TIMEOUT_MS=str(round(timeout * 1000)),
        )
        try:
            # The page enforces the timeout; the extra seconds only guard against a stuck page.
            return await self.evaluate(expression, timeout=timeout + 5)
        except CdpError as exc:
            if _WAIT_TIMEOUT_MARK in str(exc):
                raise TimeoutError(str(exc).removeprefix("Error: ").split("\n    at ")[0]) from None
            raise

    async def click(self, selector: str) -> None:
        """Scroll the first element matching `selector` into view and click it."""
        await self.evaluate(_fill_in(_CLICK_JS, SELECTOR=json.dumps(selector)))

    async def fill(self, selector: str, value: str) -> None:
        """Set the value of an input, textarea or select and fire ``input`` and ``change``."""
        await self.evaluate(_fill_in(_FILL_JS, SELECTOR=json.dumps(selector), VALUE=json.dumps(value)))

    async def text(self, selector: str) -> str:
        """The text content of the first element matching `selector`, stripped."""
        text: str = await self.evaluate(_fill_in(_TEXT_JS, SELECTOR=json.dumps(selector)))
        return text

    async def screenshot(self, path: str | os.PathLike[str], full_page: bool = True) -> Path:
        """Save a PNG of the viewport, or of the whole page (at the viewport's width unless the
        content is wider); returns the path."""
        params: JsonObject = {"format": "png"}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            content, viewport = metrics["cssContentSize"], metrics["cssLayoutViewport"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": math.ceil(max(content["width"], viewport["clientWidth"])),
                "height": math.ceil(max(content["height"], viewport["clientHeight"])),
                "scale": 1,
            }
        result = await self.send("Page.captureScreenshot", params)
        target = Path(path)
        await asyncio.to_thread(target.write_bytes, base64.b64decode(result["data"]))
        return target

    async def close(self) -> None:
        """Close the tab and its browser context."""
        if self._closed:
            return
        self._closed = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        for task in self._tasks:
            task.cancel()
        # Best effort: the browser may already be gone, and closing must not hide the test's own error.
        with contextlib.suppress(CdpError, TimeoutError):
            await self.cdp.send("Target.closeTarget", {"targetId": self.target_id}, timeout=5)
        with contextlib.suppress(CdpError, TimeoutError):
            await self.cdp.send(
                "Target.disposeBrowserContext", {"browserContextId": self.browser_context_id}, timeout=5
            )

    def _on_console(self, params: JsonObject) -> None:
        text = " ".join(_describe(arg) for arg in params.get("args", []))
        self.console.append(f"{params.get('type', 'log')}: {text}")

    def _on_exception(self, params: JsonObject) -> None:
        self.errors.append(_exception_text(params.get("exceptionDetails", {})))

    def _on_dialog(self, params: JsonObject) -> None:
        # An open alert() blocks the page's JavaScript, so every later evaluate would hang: accept it.
        self.dialogs.append(f"{params.get('type', 'alert')}: {params.get('message', '')}")
        task = asyncio.create_task(self.send("Page.handleJavaScriptDialog", {"accept": True}))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _describe(remote: JsonObject) -> str:
    """A console argument (a CDP RemoteObject) as DevTools would print it."""
    if "value" in remote:
        value = remote["value"]
        return value if isinstance(value, str) else json.dumps(value)
    if "unserializableValue" in remote:
        return str(remote["unserializableValue"])
    return str(remote.get("description", remote.get("type", "")))


def _exception_text(details: JsonObject) -> str:
    exception = details.get("exception") or {}
    if "description" in exception:
        return str(exception["description"])
    if "value" in exception:  # a thrown non-Error, like `throw "text"`
        return f"{details.get('text', 'Uncaught')} {_describe(exception)}"
    return str(details.get("text", "unknown exception"))


def _fill_in(template: str, **values: str) -> str:
    """`template` with each ``__NAME__`` replaced by ``values[NAME]``, in one pass, so text put in
    (a selector, a condition) is never itself searched for placeholders."""
    return re.sub(r"__([A-Z_]+)__", lambda match: values[match[1]], template)


_UNSERIALIZABLE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0": -0.0}


def _remote_value(remote: JsonObject) -> Any:
    """A returned RemoteObject as Python: JSON values as they are, NaN/±Infinity/-0 as floats,
    BigInts as ints, undefined as None."""
    if "unserializableValue" in remote:
        raw = remote["unserializableValue"]
        return _UNSERIALIZABLE[raw] if raw in _UNSERIALIZABLE else int(raw.rstrip("n"))
    return remote.get("value")


# The condition is pasted in as source (not run through `new Function`, which a page's Content
# Security Policy may forbid). A MutationObserver reacts to DOM changes at once; the interval
# catches conditions on state the DOM does not show (variables, layout, timers).
_WAIT_FOR_JS = """
new Promise((resolve, reject) => {
  const condition = () => (
__CONDITION__
  );
  let lastError = null;
  let settled = false;
  const settle = (how, value) => {
    settled = true;
    observer.disconnect();
    clearInterval(interval);
    clearTimeout(deadline);
    how(value);
  };
  const check = () => {
    if (settled) return;
    try {
      const value = condition();
      lastError = null;
      if (value) settle(resolve, value);
    } catch (error) {
      lastError = error;  // e.g. the element is not there yet: keep waiting
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  const interval = setInterval(check, 50);
  const deadline = setTimeout(() => {
    const cause = lastError === null ? "" : ` (last error: ${lastError})`;
    settle(reject, new Error(__MESSAGE__ + cause));
  }, __TIMEOUT_MS__);
  check();
})
"""

_FIND_JS = """
  const selector = __SELECTOR__;
  const element = document.querySelector(selector);
  if (element === null) throw new Error(`no element matches ${selector}`);
"""

_CLICK_JS = f"""(() => {{{_FIND_JS}
  element.scrollIntoView({{block: "center", inline: "center"}});
  element.click();
}})()"""

_TEXT_JS = f"""(() => {{{_FIND_JS}
  return element.textContent.trim();
}})()"""

# The value goes through the prototype's setter, not `element.value = ...`: frameworks (React and
# the like) shadow `value` on the element and would not notice the change otherwise.
_FILL_JS = f"""(() => {{{_FIND_JS}
  const value = __VALUE__;
  const types = [HTMLInputElement, HTMLTextAreaElement, HTMLSelectElement];
  const type = types.find((t) => element instanceof t);
  if (type === undefined) throw new Error(`${{selector}} is a <${{element.localName}}>: not fillable`);
  if (element.type === "checkbox" || element.type === "radio") {{
    throw new Error(`${{selector}} is a ${{element.type}}: click it instead`);
  }}
  element.scrollIntoView({{block: "center", inline: "center"}});
  element.focus();
  Object.getOwnPropertyDescriptor(type.prototype, "value").set.call(element, value);
  if (element.value === "" && value !== "") {{
    throw new Error(`${{selector}} refused the value ${{JSON.stringify(value)}}`);
  }}
  element.dispatchEvent(new Event("input", {{bubbles: true}}));
  element.dispatchEvent(new Event("change", {{bubbles: true}}));
}})()"""
