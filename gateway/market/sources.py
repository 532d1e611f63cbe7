"""Pulling external energy data from configured sources (``[[external]] source = ...``).

A source is an HTTP(S) URL answering JSON, or a local JSON file (written by a script or
another program on the box). Every ``pull_s`` seconds the document is fetched, the value
taken from ``field`` (dotted keys and list indexes: ``data.0.price``) and its time from
``time_field`` if configured, and the pair goes through the same validation as a REST
PUT. A failing source is logged once when it fails and once when it is back, and its
error is shown next to the value; the last good value stays, turning stale on its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from gateway.clock import Clock
from gateway.config import ExternalConfig
from gateway.errors import MarketInputError
from gateway.market.external import ExternalData

log = logging.getLogger(__name__)

#: Longest wait for a source's answer, seconds.
TIMEOUT_S = 10.0
#: Largest document read from a source.
MAX_BYTES = 1 << 20


class SourceError(Exception):
    """The source could not be read or did not hold the configured field."""


def pick(document: Any, path: str) -> Any:
    """The element at a dotted ``path`` ("data.0.price") of a JSON document."""
    node = document
    for key in path.split("."):
        if isinstance(node, list) and key.lstrip("-").isdigit():
            index = int(key)
            if not -len(node) <= index < len(node):
                raise SourceError(f"{path}: index {index} is outside a list of {len(node)}")
            node = node[index]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            raise SourceError(f"{path}: no {key!r} in the document")
    return node


def parse(config: ExternalConfig, raw: bytes) -> tuple[Any, datetime | None]:
    """The value and (if configured) its time from a source's document."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise SourceError(f"not JSON: {err}") from err
    value = pick(document, config.field)
    if not config.time_field:
        return value, None
    text = pick(document, config.time_field)
    if not isinstance(text, str):
        raise SourceError(f"{config.time_field}: expected an ISO 8601 time, got {text!r}")
    try:
        return value, datetime.fromisoformat(text)
    except ValueError as err:
        raise SourceError(f"{config.time_field}: {err}") from err


class SourcePuller:
    """Pulls every configured source of ``data`` on its own period."""

    def __init__(self, data: ExternalData, clock: Clock) -> None:
        self.data = data
        self.clock = clock
        self._failing: dict[str, bool] = {}
        self._changed = asyncio.Event()

    @property
    def configs(self) -> list[ExternalConfig]:
        return [c for c in self.data.configs.values() if c.source]

    def reconfigure(self) -> None:
        """``data.configs`` changed (a reload): the pulls start again with the new ones."""
        self._changed.set()

    async def run(self) -> None:
        """Pull every source on its period; again from the start after :meth:`reconfigure`;
        only cancellation ends it."""
        while True:
            self._changed.clear()
            pulls = asyncio.create_task(self._pull_all(self.configs))
            changed = asyncio.create_task(self._changed.wait())
            try:
                await asyncio.wait({pulls, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pulls, changed):
                    task.cancel()
                await asyncio.gather(pulls, changed, return_exceptions=True)
            error = pulls.exception() if pulls.done() and not pulls.cancelled() else None
            if error is not None:
                raise error  # a bug: _keep_running logs it and starts the pulls again

    async def _pull_all(self, configs: list[ExternalConfig]) -> None:
        if not configs:
            await asyncio.Event().wait()  # nothing to pull until a reload brings a source
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session, asyncio.TaskGroup() as tasks:
            for config in configs:
                tasks.create_task(self._pull_forever(session, config), name=f"external-{config.name}")

    async def _pull_forever(self, session: aiohttp.ClientSession, config: ExternalConfig) -> None:
        while True:
            await self.pull(session, config)
            await self.clock.sleep(config.pull_s)

    async def pull(self, session: aiohttp.ClientSession, config: ExternalConfig) -> bool:
        """One pull of ``config``'s source; True if a value was accepted."""
        name = config.name
        try:
            raw = await self._fetch(session, config.source)
            value, at = parse(config, raw)
            self.data.put(name, value, now=self.clock.now(), time=at, origin=config.source)
        except (SourceError, MarketInputError) as err:
            self._failed(config, str(err))
            return False
        except Exception as err:  # a source is foreign input: whatever it sends, the gateway runs on
            log.debug("external %s: unexpected failure", name, exc_info=True)
            self._failed(config, f"{type(err).__name__}: {err}")
            return False
        if self._failing.get(name):
            log.info("external %s: source %s is back", name, config.source)
        self._failing[name] = False
        self.data.set_source_error(name, "")
        return True

    def _failed(self, config: ExternalConfig, error: str) -> None:
        if not self._failing.get(config.name):
            log.warning("external %s: source %s failed: %s", config.name, config.source, error)
        self._failing[config.name] = True
        self.data.set_source_error(config.name, error)

    @staticmethod
    async def _fetch(session: aiohttp.ClientSession, source: str) -> bytes:
        if source.startswith(("http://", "https://")):
            try:
                async with session.get(source) as response:
                    if response.status != 200:
                        raise SourceError(f"HTTP {response.status} {response.reason}")
                    # read(n) returns what is buffered; a document comes in several chunks.
                    raw = b""
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        raw += chunk
                        if len(raw) > MAX_BYTES:
                            break
            except (aiohttp.ClientError, TimeoutError) as err:
                raise SourceError(f"{type(err).__name__}: {err}") from err
        else:
            try:
                raw = await asyncio.to_thread(_read_file, Path(source))
            except OSError as err:
                raise SourceError(f"cannot read {source}: {err.strerror or err}") from err
        if len(raw) > MAX_BYTES:
            raise SourceError(f"document larger than {MAX_BYTES} bytes")
        return raw


def _read_file(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(MAX_BYTES + 1)
