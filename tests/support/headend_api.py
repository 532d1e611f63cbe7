"""The contract-checking client of the head-end's REST API (tests/headend/test_rest_api.py,
test_portfolio_rest.py).

Every request goes through :meth:`Api.call`, which checks the answer against the served
``/api/openapi.json`` (tests/support/openapi_check.py): the path matches a documented
template and method, every query parameter sent is documented, the status is documented
for the operation, JSON answers are strict JSON (no NaN) and validate against their
schema, an error body repeats the status, an answer documented without content has none.
:func:`repository` opens the SQLite or PostgreSQL repository the tests run on.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from headend.storage import Repository
from headend.storage.postgres import PostgresRepository
from headend.storage.sqlite import SqliteRepository
from tests.support.openapi_check import METHODS, match_path, response_schema, validate
from tests.support.postgres import postgres_cluster

#: Query parameters: a mapping, or pairs (a parameter given twice).
Params = Mapping[str, str] | list[tuple[str, str]] | None


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
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    data: Any

    @property
    def text(self) -> str:
        return f"{self.status}: {self.body[:600].decode(errors='replace')}"

    def error(self, status: int, field: str | None = None) -> str:
        """Assert a JSON error with this status (and field); return its message."""
        assert self.status == status, self.text
        assert self.data["status"] == status, self.text
        if field is not None:
            assert self.data.get("field") == field, self.text
        return str(self.data["error"])


def _no_constant(name: str) -> Any:
    raise AssertionError(f"the answer holds {name}, which is not JSON")


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
            data = self.check(method, path, params, resp.status, resp.headers, body)
            return Answer(resp.status, resp.headers, body, data)

    def check(
        self, method: str, path: str, params: Params, status: int, headers: Mapping[str, str], body: bytes
    ) -> Any:
        where, shown = f"{method} {path} -> {status}", body[:600].decode(errors="replace")
        found = match_path(self.doc, path)
        assert found is not None, f"{where}: no documented path template matches"
        template = found[0]
        operation = self.doc["paths"][template].get(method.lower())
        assert operation is not None, f"{where}: {method} {template} is not documented"
        self.called.add((method, template))
        documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        names = {k for k, _ in (params.items() if isinstance(params, Mapping) else params or [])}
        undocumented = names - documented
        assert not undocumented, f"{where}: query parameters {sorted(undocumented)} are not documented"
        try:
            schema = response_schema(self.doc, template, method, status)
        except KeyError as err:
            raise AssertionError(f"{where}: {err.args[0]}; body: {shown}") from None
        media = headers.get("Content-Type", "").split(";")[0].strip()
        if schema is None:
            content = operation["responses"][str(status)].get("content")
            if content is None:
                assert body == b"", f"{where}: documented without content, got {shown}"
            else:
                assert media in content, f"{where}: Content-Type {media}"
            return None
        assert media == "application/json", f"{where}: Content-Type {media!r} for JSON; body: {shown}"
        data = json.loads(body, parse_constant=_no_constant)
        problems = validate(data, schema, self.doc)
        assert problems == [], f"{where}: the answer does not match the document:\n" + "\n".join(problems)
        if status >= 400:
            assert data["status"] == status, f"{where}: the error body says status {data['status']}"
        return data


def operations(doc: dict[str, Any], prefix: str = "/api/") -> set[tuple[str, str]]:
    """(METHOD, template) of every documented operation whose path starts with ``prefix``."""
    return {
        (method.upper(), template) for template, item in doc["paths"].items() for method in item
        if method in METHODS and template.startswith(prefix)
    }  # fmt: skip
