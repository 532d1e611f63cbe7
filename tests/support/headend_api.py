"""The contract-checking client of the head-end's REST API (tests/headend/test_rest_api.py,
test_portfolio_rest.py).

Every request goes through :meth:`Api.call`, which checks the answer against the served
``/api/openapi.json`` as the gateway's contract test does (tests/support/rest_contract.py).
:func:`repository` opens the SQLite or PostgreSQL repository the tests run on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from headend.storage import Repository
from headend.storage.postgres import PostgresRepository
from headend.storage.sqlite import SqliteRepository
from tests.support.openapi_check import METHODS
from tests.support.postgres import postgres_cluster
from tests.support.rest_contract import Answer, Params, check_answer


@contextlib.asynccontextmanager
async def repository(backend: str, work: Path, database: str) -> AsyncIterator[Repository]:
    """An open repository on ``backend`` ("sqlite": a file in ``work``; "postgres": the
    ``database`` of a cluster of its own in ``work``), closed after."""
    async with contextlib.AsyncExitStack() as stack:
        if backend == "sqlite":
            repo: Repository = SqliteRepository(work / "h.sqlite")
        else:
            cluster = await stack.enter_async_context(postgres_cluster(work))
            repo = PostgresRepository(await stack.enter_async_context(cluster.database(database)))
        await repo.open()
        stack.push_async_callback(repo.close)
        yield repo


@dataclass
class Api:
    session: aiohttp.ClientSession
    base: str
    doc: dict[str, Any]
    repo: Repository
    #: (METHOD, template) of every documented operation called.
    called: set[tuple[str, str]] = field(default_factory=set)

    async def call(self, path: str, params: Params = None, *, method: str = "GET", **kw: Any) -> Answer:
        """Send ``method`` ``path`` and check the answer against the document."""
        url = URL(self.base + path, encoded=True)
        async with self.session.request(method, url, params=params, **kw) as resp:
            body = await resp.read()
            template, data = check_answer(self.doc, method, path, params, resp.status, resp.headers, body)
            self.called.add((method, template))
            return Answer(method, path, resp.status, resp.headers, body, data)

    async def put(self, path: str, request: Mapping[str, Any]) -> Answer:
        """PUT ``path`` with the request's keywords (json, data, headers), checked as any call."""
        return await self.call(path, method="PUT", **request)


def operations(doc: dict[str, Any], prefix: str = "/api/") -> set[tuple[str, str]]:
    """(METHOD, template) of every documented operation whose path starts with ``prefix``."""
    return {
        (method.upper(), template) for template, item in doc["paths"].items() for method in item
        if method in METHODS and template.startswith(prefix)
    }  # fmt: skip
