"""A small OpenAPI 3.1 checker for the REST contract tests (no third-party validator).

``validate`` checks a JSON value against a schema using the JSON Schema 2020-12 subset in ``KEYWORDS``;
any other keyword (or an unknown ``type``/``format``) raises ``ValueError``, so the document cannot rely
on something this module would silently skip. ``check_document`` checks the document's structure,
``response_schema`` and ``match_path`` find what a concrete response has to conform to.
Error messages start with a path: ``$.values[3].time`` for instances, a JSON pointer (``#/paths/...``)
or ``GET /api/...`` for the document.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

KEYWORDS = frozenset(
    {
        "$ref", "type", "enum", "const", "properties", "required", "additionalProperties", "items",
        "prefixItems", "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "minLength", "maxLength", "pattern", "format", "oneOf", "anyOf", "allOf", "not",
    }
)  # fmt: skip
ANNOTATIONS = frozenset({"description", "title", "example", "examples", "default", "readOnly", "deprecated"})
TYPES = frozenset({"null", "boolean", "integer", "number", "string", "array", "object"})
FORMATS = frozenset({"date-time", "date", "uri-reference"})
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATE_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:[Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"0|[1-9][0-9]*")
_Refs = frozenset[tuple[str, str]]  # ($ref, instance path) pairs being followed


def resolve(document: Any, ref: str) -> Any:
    """The value a local ``$ref`` (``#/components/schemas/A``, ``#/a/b~1c``) points at; else ValueError."""
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    pointer = unquote(ref[1:])
    if pointer and not pointer.startswith("/"):
        raise ValueError(f"$ref {ref!r} is not a JSON pointer")
    node = document
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and _INDEX.fullmatch(token) and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ValueError(f"unresolved $ref {ref!r} (no {token!r})")
    return node


def check_schema(schema: Any) -> None:
    """Raise ``ValueError`` if this schema node (not its subschemas) uses anything unsupported."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise ValueError(f"a schema must be an object or a boolean, got {_show(schema)}")
    unknown = sorted(set(schema) - KEYWORDS - ANNOTATIONS)
    if unknown:
        raise ValueError(f"unsupported schema keyword(s): {', '.join(unknown)}")
    types = schema.get("type", [])
    for name in [types] if isinstance(types, str) else types:
        if name not in TYPES:
            raise ValueError(f"unknown type {name!r}")
    if "format" in schema and schema["format"] not in FORMATS:
        raise ValueError(f"unsupported format {schema['format']!r}")
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in schema and not _has_type(schema[key], "number"):
            raise ValueError(f"{key} must be a number, got {_show(schema[key])}")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except re.error as error:
            raise ValueError(f"invalid pattern {schema['pattern']!r}: {error}") from None


def validate(instance: Any, schema: Any, document: Any) -> list[str]:
    """Error messages for ``instance`` against ``schema`` (``$ref`` resolved in ``document``); [] = valid.

    ``ValueError`` if the schema, or any schema it references, is unsupported or has a broken ``$ref``.
    """
    problems = list(_schema_problems(schema, "schema", document, set()))
    if problems:
        raise ValueError("; ".join(problems))
    validator = _Validator(document)
    validator.run(instance, schema, "$", frozenset())
    return validator.errors


class _Validator:
    def __init__(self, document: Any) -> None:
        self.document = document
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def branch(self, value: Any, schema: Any, path: str, refs: _Refs) -> list[str]:
        sub = _Validator(self.document)
        sub.run(value, schema, path, refs)
        return sub.errors

    def run(self, value: Any, schema: Any, path: str, refs: _Refs) -> None:
        if schema is True:
            return
        if schema is False:
            return self.fail(path, f"no value allowed here, got {_show(value)}")
        if "$ref" in schema:
            ref = schema["$ref"]
            if (ref, path) in refs:  # the same $ref again without consuming any of the instance
                raise ValueError(f"$ref cycle through {ref!r} at {path}")
            self.run(value, resolve(self.document, ref), path, refs | {(ref, path)})
        if "type" in schema:
            names = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
            if not any(_has_type(value, name) for name in names):
                wanted = " or ".join(names)
                if names == ["string"] and "format" in schema:
                    wanted += f" in {schema['format']} format"
                self.fail(path, f"expected {wanted}, got {_show(value)}")
        if "enum" in schema and not any(_equal(value, option) for option in schema["enum"]):
            self.fail(path, f"expected one of {_show(schema['enum'])}, got {_show(value)}")
        if "const" in schema and not _equal(value, schema["const"]):
            self.fail(path, f"expected {_show(schema['const'])}, got {_show(value)}")
        if isinstance(value, str):
            self.string(value, schema, path)
        elif _has_type(value, "number"):
            self.number(value, schema, path)
        elif isinstance(value, list):
            prefix = schema.get("prefixItems", [])
            for index, item in enumerate(value):
                item_schema = prefix[index] if index < len(prefix) else schema.get("items", True)
                self.run(item, item_schema, f"{path}[{index}]", refs)
            self.bounds(len(value), schema, path, "minItems", "maxItems", "items")
        elif isinstance(value, dict):
            self.object(value, schema, path, refs)
        self.combinators(value, schema, path, refs)

    def string(self, value: str, schema: dict[str, Any], path: str) -> None:
        self.bounds(len(value), schema, path, "minLength", "maxLength", "characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            self.fail(path, f"expected a string matching {schema['pattern']!r}, got {_show(value)}")
        if "format" in schema and not _format_ok(schema["format"], value):
            self.fail(path, f"expected string in {schema['format']} format, got {_show(value)}")

    def number(self, value: float, schema: dict[str, Any], path: str) -> None:
        for key, sign, ok in (
            ("minimum", ">=", operator.ge),
            ("maximum", "<=", operator.le),
            ("exclusiveMinimum", ">", operator.gt),
            ("exclusiveMaximum", "<", operator.lt),
        ):
            if key in schema and not ok(value, schema[key]):
                self.fail(path, f"expected a number {sign} {schema[key]}, got {_show(value)}")

    def bounds(self, size: int, schema: dict[str, Any], path: str, low: str, high: str, unit: str) -> None:
        if low in schema and size < schema[low]:
            self.fail(path, f"expected at least {schema[low]} {unit}, got {size}")
        if high in schema and size > schema[high]:
            self.fail(path, f"expected at most {schema[high]} {unit}, got {size}")

    def object(self, value: dict[str, Any], schema: dict[str, Any], path: str, refs: _Refs) -> None:
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                self.fail(_child(path, name), "required property is missing")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                self.run(item, properties[name], _child(path, name), refs)
            elif extra is False:
                self.fail(_child(path, name), "property not allowed (additionalProperties is false)")
            else:
                self.run(item, extra, _child(path, name), refs)

    def combinators(self, value: Any, schema: dict[str, Any], path: str, refs: _Refs) -> None:
        for sub in schema.get("allOf", []):
            self.run(value, sub, path, refs)
        if "anyOf" in schema:
            results = [self.branch(value, sub, path, refs) for sub in schema["anyOf"]]
            if all(results):
                self.fail(path, f"matches no anyOf alternative ({_first_errors(results)})")
        if "oneOf" in schema:
            results = [self.branch(value, sub, path, refs) for sub in schema["oneOf"]]
            matched = [index for index, errors in enumerate(results) if not errors]
            if not matched:
                self.fail(path, f"matches no oneOf alternative ({_first_errors(results)})")
            elif len(matched) > 1:
                self.fail(path, f"expected exactly one oneOf alternative to match, alternatives {matched} do")
        if "not" in schema and not self.branch(value, schema["not"], path, refs):
            self.fail(path, f"must not match {_show(schema['not'])}")


def check_document(document: Any) -> list[str]:
    """Structural problems of an OpenAPI 3.1 document (see the module docstring); [] = fine."""
    problems: list[str] = []
    if not str(document.get("openapi", "")).startswith("3.1"):
        problems.append(f"openapi must be 3.1.x, got {_show(document.get('openapi'))}")
    info = document.get("info")
    for key in ("title", "version"):
        if not isinstance(info, dict) or not info.get(key):
            problems.append(f"info.{key} is missing")
    for where, ref in _refs(document, "#"):
        try:
            resolve(document, ref)
        except ValueError as error:
            problems.append(f"{where}: {error}")
    for where, schema in _schemas(document, "#"):
        problems.extend(_schema_problems(schema, where))
    return problems + _operation_problems(document)


def _operation_problems(document: Any) -> list[str]:
    problems: list[str] = []
    owners: dict[str, str] = {}
    for template, item in document.get("paths", {}).items():
        names = re.findall(r"\{([^{}/]+)\}", template)
        for method in METHODS:
            if method not in item:
                continue
            operation, where = item[method], f"{method.upper()} {template}"
            operation_id = operation.get("operationId")
            if not operation_id:
                problems.append(f"{where}: missing operationId")
            elif operation_id in owners:
                problems.append(f"{where}: operationId {operation_id!r} also used by {owners[operation_id]}")
            else:
                owners[operation_id] = where
            if not operation.get("summary"):
                problems.append(f"{where}: missing summary")
            responses = operation.get("responses", {})
            if not any(str(code).startswith("2") for code in responses):
                problems.append(f"{where}: no 2xx response")
            for code, response in responses.items():
                content = _deref(document, response).get("content")
                if content is not None and not content:
                    problems.append(f"{where} {code}: content has no media type")
                for media, body in (content or {}).items():
                    if "schema" not in body:
                        problems.append(f"{where} {code}: {media} has no schema")
            declared: dict[str, Any] = {}  # an operation's parameter overrides the path item's
            for parameter in [*item.get("parameters", []), *operation.get("parameters", [])]:
                parameter = _deref(document, parameter)
                if parameter.get("in") == "path":
                    declared[str(parameter.get("name"))] = parameter
            for name in names:
                if name not in declared:
                    problems.append(f"{where}: path parameter {name!r} is not declared")
                elif declared[name].get("required") is not True:
                    problems.append(f"{where}: path parameter {name!r} must have required: true")
            for name in sorted(set(declared) - set(names), key=str):
                problems.append(f"{where}: path parameter {name!r} is not in the path template")
    return problems


def response_schema(
    document: Any, path_template: str, method: str, status: int | str
) -> dict[str, Any] | None:
    """The JSON schema documented for a response: exact status, then its ``4XX`` range, then ``default``.

    None when that response has no JSON content (e.g. 204); ``KeyError`` when it is not documented.
    A response ``$ref`` that does not resolve counts as no content (``check_document`` reports it).
    """
    operation = document.get("paths", {}).get(path_template, {}).get(method.lower())
    if not isinstance(operation, dict):
        raise KeyError(f"{method.upper()} {path_template} is not documented")
    responses = {str(code): response for code, response in operation.get("responses", {}).items()}
    code = str(status)
    for key in (code, f"{code[:1]}XX", "default"):
        if key in responses:
            content = _deref(document, responses[key]).get("content") or {}
            json_types = [media for media in content if media.split(";")[0].endswith(("/json", "+json"))]
            return content[json_types[0]].get("schema") if json_types else None
    documented = ", ".join(responses) or "none"
    raise KeyError(f"{method.upper()} {path_template}: no response for {code} documented (only {documented})")


def match_path(document: Any, concrete_path: str) -> tuple[str, dict[str, str]] | None:
    """The path template matching a concrete path and its (percent-decoded) parameters, or None.

    A parameter matches within one segment; where several templates match, the one with the leftmost
    literal segment wins (``/meters/current`` over ``/meters/{meter}``).
    """
    path = concrete_path.split("?", 1)[0]
    best: tuple[tuple[bool, ...], str, dict[str, str]] | None = None
    for template in document.get("paths", {}):
        names, pattern = [], []
        for piece in re.split(r"(\{[^{}/]+\})", template):
            if piece.startswith("{") and piece.endswith("}"):
                names.append(piece[1:-1])
                pattern.append("([^/]+)")
            else:
                pattern.append(re.escape(piece))
        match = re.fullmatch("".join(pattern), path)
        if match:
            rank = tuple("{" in segment for segment in template.split("/"))
            if best is None or rank < best[0]:
                best = (rank, template, dict(zip(names, map(unquote, match.groups()), strict=True)))
    return None if best is None else (best[1], best[2])


def _deref(document: Any, node: Any) -> dict[str, Any]:
    """Follow Reference Objects (``{"$ref": ...}``); {} where that fails (``check_document`` reports it)."""
    for _ in range(64):
        if not isinstance(node, dict):
            return {}
        if not isinstance(node.get("$ref"), str):
            return node
        try:
            node = resolve(document, node["$ref"])
        except ValueError:
            return {}
    return {}  # a cycle


def _refs(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """(location, ref) of every ``$ref`` string in the document."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if key == "$ref" and isinstance(value, str):
            yield where, value
        else:
            yield from _refs(value, f"{where}/{_escape(key)}")


def _schemas(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    """(location, schema) of every top-level schema: ``components/schemas/*`` and every ``schema`` value."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        here = f"{where}/{_escape(key)}"
        if key == "schema":
            yield here, value
        elif where == "#/components" and key == "schemas":
            yield from ((f"{here}/{_escape(name)}", schema) for name, schema in value.items())
        elif key not in ("example", "examples"):
            yield from _schemas(value, here)


def _schema_problems(
    schema: Any, where: str, document: Any = None, seen: set[str] | None = None
) -> Iterator[str]:
    """Problems of a schema and its subschemas; with a ``document``, of the schemas it references too."""
    try:
        check_schema(schema)
    except ValueError as error:
        yield f"{where}: {error}"
        return
    if isinstance(schema, bool):
        return
    ref = schema.get("$ref")
    if seen is not None and isinstance(ref, str) and ref not in seen:
        seen.add(ref)
        try:
            target = resolve(document, ref)
        except ValueError as error:
            yield f"{where}: {error}"
        else:
            yield from _schema_problems(target, ref, document, seen)
    for name, sub in schema.get("properties", {}).items():
        yield from _schema_problems(sub, f"{where}/properties/{_escape(name)}", document, seen)
    for key in ("additionalProperties", "items", "not"):
        if key in schema:
            yield from _schema_problems(schema[key], f"{where}/{key}", document, seen)
    for key in ("prefixItems", "allOf", "anyOf", "oneOf"):
        for index, sub in enumerate(schema.get(key, [])):
            yield from _schema_problems(sub, f"{where}/{key}/{index}", document, seen)


def _has_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean" or isinstance(value, bool):  # True is no integer or number in JSON
        return name == "boolean" and isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, int | float)
    return isinstance(value, {"string": str, "array": list, "object": dict}[name])


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[key], b[key]) for key in a)
    return bool(a == b)


def _format_ok(fmt: str, text: str) -> bool:
    if fmt == "date":
        return _is_date(text)
    if fmt == "date-time":
        match = _DATE_TIME.fullmatch(text)
        if not match or not _is_date(match[1]):
            return False
        hour, minute, second = int(match[2]), int(match[3]), int(match[4])
        offset_ok = match[5] is None or (int(match[5]) < 24 and int(match[6]) < 60)
        return hour < 24 and minute < 60 and second <= 60 and offset_ok  # second 60: a leap second
    return True  # uri-reference: any string


def _is_date(text: str) -> bool:
    match = _DATE.fullmatch(text)
    if match is None:
        return False
    try:
        dt.date(*map(int, match.groups()))
    except ValueError:
        return False
    return True


def _first_errors(results: list[list[str]]) -> str:
    return "; ".join(f"[{index}] {errors[0]}" for index, errors in enumerate(results))


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if _IDENTIFIER.fullmatch(name) else f"{path}[{json.dumps(name)}]"


def _escape(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:77] + "..."
