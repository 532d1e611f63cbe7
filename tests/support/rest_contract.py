"""What the REST contract tests of the gateway (tests/integration/test_rest_api.py) and of
the head-end (tests/support/headend_api.py) share.

:func:`check_answer` checks one answer against the served ``/api/openapi.json``
(tests/support/openapi_check.py): the path matches a documented template and method,
every query parameter sent is documented, the status is documented for the operation,
JSON answers say ``application/json``, hold strict JSON (no NaN) and validate against
their schema, an error body repeats the status, an answer documented without content has
none. :class:`Answer` is what a client hands the test.

The gateway's notified profile and the head-end's schedule take their body through the
same code (gateway.jsonbody and the market's make_profile): :func:`profile_refusals` are
the bodies both refuse, with the same statuses, fields and words; :func:`all_refused`
sends them and checks that nothing was stored.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.jsonbody import MAX_BODY
from tests.support.openapi_check import match_path, response_schema, validate

#: Query parameters: a mapping, or pairs (a parameter given twice).
Params = Mapping[str, Any] | list[tuple[str, str]] | None
#: A refused request: (what, path, the request's keywords, status, field or None for a
#: body-level error, words the message holds).
Refusal = tuple[str, str, dict[str, Any], int, str | None, list[str]]
AS_JSON = {"Content-Type": "application/json"}


@dataclass
class Answer:
    method: str
    path: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: The parsed JSON body, or None for a non-JSON answer.
    data: Any

    @property
    def text(self) -> str:
        return f"{self.method} {self.path} -> {self.status}: {self.body[:600].decode(errors='replace')}"

    def error(self, status: int, field: str | None = None) -> str:
        """Assert a JSON error with this status (and field); return its message."""
        assert self.status == status, self.text
        assert isinstance(self.data, dict), self.text
        assert self.data["status"] == status, self.text
        if field is not None:
            assert self.data.get("field") == field, self.text
        return str(self.data["error"])


def no_constant(name: str) -> Any:
    """``json.loads``'s parse_constant: NaN and Infinity are not JSON."""
    raise AssertionError(f"the answer holds {name}, which is not JSON")


def check_answer(
    doc: dict[str, Any],
    method: str,
    path: str,
    params: Params,
    status: int,
    headers: Mapping[str, str],
    body: bytes | None,
) -> tuple[str, Any]:
    """Check one answer against the document; its path template and parsed JSON body (None
    for another content type). ``body`` None: the caller streams it (the head is checked)."""
    where = f"{method} {path} -> {status}"
    shown = "" if body is None else body[:600].decode(errors="replace")
    found = match_path(doc, path)
    assert found is not None, f"{where}: no documented path template matches"
    template = found[0]
    operation = doc["paths"][template].get(method.lower())
    assert operation is not None, f"{where}: {method} {template} is not documented"
    documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    names = {k for k, _ in (params.items() if isinstance(params, Mapping) else params or [])}
    undocumented = names - documented
    assert not undocumented, f"{where}: query parameters {sorted(undocumented)} are not documented"
    try:
        schema = response_schema(doc, template, method, status)
    except KeyError as err:
        raise AssertionError(f"{where}: {err.args[0]}; body: {shown}") from None
    media = headers.get("Content-Type", "").split(";")[0].strip()
    if schema is None:
        content = operation["responses"][str(status)].get("content")
        if content is None:
            assert not body, f"{where}: documented without content, got {shown}"
        else:
            assert media in content, f"{where}: Content-Type {media!r}, documented {sorted(content)}"
        return template, None
    assert media == "application/json", f"{where}: Content-Type {media!r} for JSON; body: {shown}"
    assert body is not None, f"{where}: a JSON answer cannot be streamed"
    data = json.loads(body, parse_constant=no_constant)
    problems = validate(data, schema, doc)
    assert problems == [], f"{where}: the answer does not match the document:\n" + "\n".join(problems)
    if status >= 400:
        assert data["status"] == status, f"{where}: the error body says status {data['status']}"
    return template, data


# -- the notified profile's (the schedule's) body ----------------------------------------------


def raw_values(values: list[float], at: int, literal: str) -> str:
    """The JSON text of {"values": [...]} with ``literal`` (NaN, Infinity, "x") at period ``at``."""
    items = [json.dumps(v) for v in values]
    items[at - 1] = literal
    return '{"values": [' + ", ".join(items) + "]}"


def profile_refusals(path: str, good: list[float]) -> list[Refusal]:
    """The bodies a PUT of ``good`` (a day's right number of values) to ``path`` refuses,
    whatever the day already holds: its form (gateway.jsonbody) and its values (the
    market's make_profile)."""

    def raw(at: int, literal: str) -> dict[str, Any]:
        return {"data": raw_values(good, at, literal), "headers": AS_JSON}

    n = len(good)
    huge = '{"values": [' + ", ".join(["0.25"] * 20_000) + "]}"
    assert len(huge) > MAX_BODY
    return [
        ("wrong length", path, {"json": {"values": good[1:], "replace": True}}, 422, "values",
         [f"{n} settlement periods", f"got {n - 1} values"]),
        ("NaN literal", path, raw(5, "NaN"), 422, "values", ["period 5", "NaN"]),
        ("Infinity literal", path, raw(7, "Infinity"), 422, "values", ["period 7", "finite"]),
        ("-Infinity literal", path, raw(8, "-Infinity"), 422, "values", ["period 8", "finite"]),
        ("string in values", path, raw(3, '"0.5"'), 422, "values", ["period 3", "number"]),
        ("boolean in values", path, raw(4, "true"), 422, "values", ["period 4", "number"]),
        ("null in values", path, raw(6, "null"), 422, "values", ["period 6", "number"]),
        ("values not an array", path, {"json": {"values": "0.25"}}, 400, "values", ["array"]),
        ("unknown key", path, {"json": {"values": good, "colour": "red"}}, 400, "colour", ["'colour'"]),
        ("missing values", path, {"json": {"unit": "kWh"}}, 400, "values", ["'values'"]),
        ("unknown unit", path, {"json": {"values": good, "unit": "MWh", "replace": True}}, 422, "unit",
         ["MWh"]),
        ("replace not a boolean", path, {"json": {"values": good, "replace": "yes"}}, 400, "replace", []),
        ("body not an object", path, {"json": good}, 400, None, ["object"]),
        ("not JSON", path, {"data": "values=1,2,3", "headers": AS_JSON}, 400, None, ["not valid JSON"]),
        ("wrong Content-Type", path,
         {"data": json.dumps({"values": good, "replace": True}), "headers": {"Content-Type": "text/plain"}},
         415, None, ["application/json", "text/plain"]),
        ("body too large", path, {"data": huge, "headers": AS_JSON}, 413, None, [str(MAX_BODY)]),
    ]  # fmt: skip


async def all_refused(
    put: Callable[[str, dict[str, Any]], Awaitable[Answer]],
    cases: list[Refusal],
    stored: Callable[[], Awaitable[object]],
    what: str,
) -> None:
    """Send each refused request with ``put`` (path, keywords): the status, field and words
    are as the case says, and what ``stored`` reads is as before (``what`` names it)."""
    before = await stored()
    for case, where, request, status, field, words in cases:
        answer = await put(where, request)
        message = answer.error(status, field)
        for word in words:
            assert word in message, f"{case}: {answer.text}"
        assert await stored() == before, f"{case}: the refused {what} was stored"
