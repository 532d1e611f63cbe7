"""The OpenAPI 3.1 checker used by the REST contract test: keywords, $ref, document checks, lookups."""

from __future__ import annotations

import copy
import json
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.openapi_check import check_document, match_path, response_schema, validate


def ok(description: str, schema: Any = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {"application/json": {"schema": schema}}
    return response


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


METER_PARAMETER = {"name": "meter", "in": "path", "required": True, "schema": {"type": "string"}}
OBIS_PARAMETER = {"name": "obis", "in": "path", "required": True, "schema": {"type": "string"}}

DOC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "SMX gateway", "version": "1"},
    "paths": {
        "/api/meters/{meter}": {
            "parameters": [METER_PARAMETER],
            "get": {
                "operationId": "getMeter",
                "summary": "One meter",
                "responses": {
                    "200": ok("the meter", ref("Meter")),
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "default": ok("unexpected", ref("Error")),
                },
            },
            "delete": {
                "operationId": "deleteMeter",
                "summary": "Forget a meter",
                "responses": {"204": ok("gone")},
            },
        },
        "/api/meters": {
            "get": {
                "operationId": "listMeters",
                "summary": "All meters",
                "responses": {"200": ok("the meters", {"type": "array", "items": ref("Meter")})},
            }
        },
        "/api/meters/current": {
            "get": {
                "operationId": "currentMeter",
                "summary": "The meter read now",
                "responses": {"200": ok("x")},
            }
        },
        "/api/meters/{meter}/values/{obis}": {
            "get": {
                "operationId": "getValues",
                "summary": "Values of one register",
                "parameters": [METER_PARAMETER, OBIS_PARAMETER],
                "responses": {"200": ok("values", ref("Values")), "4XX": ok("client error", ref("Error"))},
            }
        },
    },
    "components": {
        "schemas": {
            "Meter": {
                "type": "object",
                "description": "A configured meter.",
                "required": ["id", "name"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z0-9-]+$"},
                    "name": {"type": "string", "minLength": 1, "maxLength": 20},
                    "serial": {"type": ["string", "null"]},
                },
                "additionalProperties": False,
            },
            "Values": {
                "type": "object",
                "required": ["values"],
                "properties": {"values": {"type": "array", "items": ref("Value")}},
            },
            "Value": {
                "type": "object",
                "required": ["time", "value"],
                "properties": {
                    "time": {"type": "string", "format": "date-time"},
                    "value": {"type": "number"},
                    "unit": ref("Unit"),
                },
            },
            "Unit": {"enum": ["kWh", "W", "V"], "example": "kWh"},
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "a/b": {"type": "integer"},
            "til~de": {"type": "boolean"},
            "not~1a/b": {"type": "null"},
            "Tree": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": ref("Tree")}},
                "additionalProperties": False,
            },
        },
        "responses": {"NotFound": ok("no such meter", ref("Error"))},
    },
}


def check(instance: Any, schema: Any) -> list[str]:
    return validate(instance, schema, DOC)


# --- keywords ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "value", "valid"),
    [
        ("integer", 3, True),
        ("integer", 1.0, True),  # JSON Schema: a number with a zero fractional part is an integer
        ("integer", 1.5, False),
        ("integer", True, False),
        ("integer", False, False),
        ("integer", "3", False),
        ("number", 1.5, True),
        ("number", 7, True),
        ("number", True, False),
        ("number", None, False),
        ("boolean", False, True),
        ("boolean", 0, False),
        ("string", "", True),
        ("string", 0, False),
        ("null", None, True),
        ("null", 0, False),
        ("array", [], True),
        ("array", {}, False),
        ("object", {}, True),
        ("object", [], False),
        (["string", "null"], None, True),
        (["string", "null"], "x", True),
        (["string", "null"], 1, False),
    ],
)
def test_type(type_: str | list[str], value: Any, valid: bool) -> None:
    errors = check(value, {"type": type_})
    assert len(errors) == (0 if valid else 1)
    assert all(error.startswith("$: expected ") for error in errors)


def test_type_error_message_names_the_types() -> None:
    assert check(True, {"type": "integer"}) == ["$: expected integer, got true"]
    assert check(1, {"type": ["string", "null"]}) == ["$: expected string or null, got 1"]


def test_enum_and_const_use_json_equality() -> None:
    assert check("W", ref("Unit")) == []
    assert check("Wh", ref("Unit")) == ['$: expected one of ["kWh", "W", "V"], got "Wh"']
    assert check(1.0, {"enum": [1, 2]}) == []
    assert check(True, {"enum": [1, 2]}) != []  # True == 1 in Python, not in JSON
    assert check(1, {"enum": [True]}) != []
    assert check({"a": [1, None]}, {"const": {"a": [1.0, None]}}) == []
    assert check({"a": [True]}, {"const": {"a": [1]}}) == ['$: expected {"a": [1]}, got {"a": [true]}']
    assert check([1, 2], {"const": [1, 2, 3]}) != []


def test_properties_required_and_additional_properties() -> None:
    assert check({"id": "m-1", "name": "House"}, ref("Meter")) == []
    assert check({"id": "m-1", "name": "House", "serial": None}, ref("Meter")) == []
    assert check({"id": "m-1"}, ref("Meter")) == ["$.name: required property is missing"]
    assert check({"id": "m-1", "name": "House", "colour": "red"}, ref("Meter")) == [
        "$.colour: property not allowed (additionalProperties is false)"
    ]
    assert check({"id": "M 1", "name": "", "serial": 5}, ref("Meter")) == [
        "$.id: expected a string matching '^[a-z0-9-]+$', got \"M 1\"",
        "$.name: expected at least 1 characters, got 0",
        "$.serial: expected string or null, got 5",
    ]
    extra_ints = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": {"type": "integer"},
    }
    assert check({"a": "x", "b": 1, "c-d": "2"}, extra_ints) == ['$["c-d"]: expected integer, got "2"']
    assert check({"a": "x", "b": 1}, extra_ints) == []
    object_only = {"required": ["a"], "properties": {"a": False}}  # object keywords ignore other types
    assert check("not an object", object_only) == []


def test_items_prefix_items_and_array_length() -> None:
    pair = {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False}
    assert check(["a", 1], pair) == []
    assert check(["a"], pair) == []
    assert check([1, "a"], pair) == ["$[0]: expected string, got 1", '$[1]: expected integer, got "a"']
    assert check(["a", 1, None], pair) == ["$[2]: no value allowed here, got null"]
    numbers = {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 2}
    assert check([1, 2.5], numbers) == []
    assert check([], numbers) == ["$: expected at least 1 items, got 0"]
    assert check([1, 2, 3], numbers) == ["$: expected at most 2 items, got 3"]
    assert check([1, "2"], numbers) == ['$[1]: expected number, got "2"']


def test_error_path_through_refs_and_arrays() -> None:
    good = {"time": "2024-03-31T01:00:00Z", "value": 1.5, "unit": "kWh"}
    values = {"values": [good, good, good, {"time": 12, "value": 2}]}
    assert check(values, ref("Values")) == ["$.values[3].time: expected string in date-time format, got 12"]
    values["values"][1] = {"time": "2024-03-31T01:00:00", "value": True, "unit": "Wh"}
    assert check(values, ref("Values")) == [
        '$.values[1].time: expected string in date-time format, got "2024-03-31T01:00:00"',
        "$.values[1].value: expected number, got true",
        '$.values[1].unit: expected one of ["kWh", "W", "V"], got "Wh"',
        "$.values[3].time: expected string in date-time format, got 12",
    ]


@pytest.mark.parametrize(
    ("keyword", "bound", "good", "bad"),
    [
        ("minimum", 0, [0, 0.0, 5], [-1, -0.5]),
        ("maximum", 10, [10, 9.99], [10.01, 11]),
        ("exclusiveMinimum", 0, [0.001, 1], [0, -1]),
        ("exclusiveMaximum", 10, [9, 9.999], [10, 10.0]),
    ],
)
def test_numeric_bounds(keyword: str, bound: float, good: list[float], bad: list[float]) -> None:
    for value in good:
        assert check(value, {keyword: bound}) == []
    for value in bad:
        assert len(check(value, {keyword: bound})) == 1
    assert check("x", {keyword: bound}) == []  # numeric keywords ignore other types
    assert check(True, {keyword: bound}) == []  # booleans are no numbers


def test_string_length_counts_code_points_and_pattern_searches() -> None:
    assert check("é€😀", {"minLength": 3, "maxLength": 3}) == []
    assert check("ab", {"maxLength": 1}) == ["$: expected at most 1 characters, got 2"]
    assert check("xxabyy", {"pattern": "ab"}) == []  # re.search: patterns are not anchored
    assert check("xxayy", {"pattern": "ab"}) == ["$: expected a string matching 'ab', got \"xxayy\""]


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-31T02:30:00Z",
        "2024-03-31T02:30:00+02:00",
        "2024-10-27T02:30:00.123456-00:30",
        "2024-02-29t23:59:59z",
        "2016-12-31T23:59:60Z",  # leap second
    ],
)
def test_date_time_valid(text: str) -> None:
    assert check(text, {"type": "string", "format": "date-time"}) == []


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-31T02:30:00",  # no zone
        "2024-03-31T02:30:00+0200",
        "2024-03-31T02:30:00+02",
        "2024-03-31 02:30:00Z",
        "2024-03-31T02:30Z",
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-03-31T24:00:00Z",
        "2024-03-31T02:60:00Z",
        "2024-03-31T02:30:61Z",
        "2024-03-31T02:30:00+24:00",
        "2024-03-31T02:30:00Z\n",
        "2024-03-31",
        "",
    ],
)
def test_date_time_invalid(text: str) -> None:
    assert check(text, {"format": "date-time"}) == [
        f"$: expected string in date-time format, got {json.dumps(text)}"
    ]


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2024-02-29", True),
        ("1970-01-01", True),
        ("2023-02-29", False),
        ("2024-13-01", False),
        ("2024-1-01", False),
        ("20240101", False),
        ("2024-01-01T00:00:00Z", False),
        ("2024-01-01\n", False),
    ],
)
def test_date(text: str, valid: bool) -> None:
    assert (check(text, {"format": "date"}) == []) is valid


def test_uri_reference_accepts_any_string_and_formats_ignore_other_types() -> None:
    assert check("../values?from=2024", {"format": "uri-reference"}) == []
    assert check(12, {"format": "date-time"}) == []  # format applies to strings; `type` rejects the rest


def test_one_of_needs_exactly_one_match() -> None:
    schema = {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]}
    assert check(-3, schema) == []  # only the integer
    assert check(2.5, schema) == []  # only the non-negative number
    assert check(3, schema) == ["$: expected exactly one oneOf alternative to match, alternatives [0, 1] do"]
    errors = check(-2.5, schema)
    assert errors == [
        "$: matches no oneOf alternative "
        "([0] $: expected integer, got -2.5; [1] $: expected a number >= 0, got -2.5)"
    ]


def test_any_of_all_of_not() -> None:
    any_of = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert check(None, any_of) == []
    assert check("x", any_of) == []
    assert check(1, any_of) == [
        "$: matches no anyOf alternative ([0] $: expected string, got 1; [1] $: expected null, got 1)"
    ]
    all_of = {"allOf": [ref("Error"), {"properties": {"code": {"type": "integer"}}}]}
    assert check({"error": "x", "code": 4}, all_of) == []
    assert check({"code": "4"}, all_of) == [
        "$.error: required property is missing",
        '$.code: expected integer, got "4"',
    ]
    assert check(1, {"not": {"type": "string"}}) == []
    assert check("x", {"not": {"type": "string"}}) == ['$: must not match {"type": "string"}']


def test_annotations_are_ignored() -> None:
    schema = {
        "type": "integer",
        "title": "t",
        "description": "d",
        "example": "not even an integer",
        "examples": [1],
        "default": 0,
        "readOnly": True,
        "deprecated": True,
    }
    assert check(1, schema) == []


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "object", "minProperties": 1}, "minProperties"),
        ({"items": {"uniqueItems": True}}, "uniqueItems"),  # nested, and reached although the array is empty
        (ref("Nope"), "Nope"),
        ({"properties": {"a": {"$ref": "#/components/schemas/Missing"}}}, "Missing"),
        ({"$ref": "other.json#/components/schemas/Meter"}, "other.json"),
        ({"format": "email"}, "email"),
        ({"type": "int"}, "int"),
        ({"exclusiveMinimum": True}, "exclusiveMinimum"),  # the OpenAPI 3.0 form
        ({"pattern": "("}, "pattern"),
        ({"discriminator": {"propertyName": "kind"}}, "discriminator"),
    ],
)
def test_unsupported_schema_or_broken_ref_raises(schema: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        check([], schema)


def test_ref_resolution() -> None:
    assert check(3, {"$ref": "#/components/schemas/a~1b"}) == []
    assert check(3, {"$ref": "#/components/schemas/til~0de"}) == ["$: expected boolean, got 3"]
    assert check(None, {"$ref": "#/components/schemas/not~01a~1b"}) == []  # ~01 is "~1", not "/"
    assert check(3, {"$ref": "#/components/schemas/a%7E1b"}) == []  # a URI fragment may be percent-encoded
    pointer_into_schema = {"$ref": "#/components/schemas/Meter/properties/id"}
    assert check("BAD", pointer_into_schema) == ["$: expected a string matching '^[a-z0-9-]+$', got \"BAD\""]
    chained = {"$ref": "#/components/responses/NotFound/content/application~1json/schema"}  # -> Error
    assert check({"error": 5}, chained) == ["$.error: expected string, got 5"]
    assert check(
        {"error": "x"}, {"allOf": [chained, {"$ref": "#/paths/~1api~1meters~1{meter}/parameters/0/schema"}]}
    ) == ['$: expected string, got {"error": "x"}']


def test_recursive_schema_and_ref_cycle() -> None:
    tree = {"children": [{"children": []}, {"children": [{"children": [{}]}]}]}
    assert check(tree, ref("Tree")) == []
    tree["children"][1]["children"][0]["leaf"] = 1  # type: ignore[index]
    assert check(tree, ref("Tree")) == [
        "$.children[1].children[0].leaf: property not allowed (additionalProperties is false)"
    ]
    looping = copy.deepcopy(DOC)
    looping["components"]["schemas"]["A"] = {"$ref": "#/components/schemas/B"}
    looping["components"]["schemas"]["B"] = {"$ref": "#/components/schemas/A"}
    with pytest.raises(ValueError, match="cycle"):
        validate(1, ref("A"), looping)


# --- the document -----------------------------------------------------------------------------------


def test_sample_document_is_clean() -> None:
    assert check_document(DOC) == []


def broken(change: Any) -> list[str]:
    document = copy.deepcopy(DOC)
    change(document)
    return check_document(document)


def test_document_header() -> None:
    def old(doc: dict[str, Any]) -> None:
        doc["openapi"] = "3.0.3"
        del doc["info"]["version"]

    assert broken(old) == ['openapi must be 3.1.x, got "3.0.3"', "info.version is missing"]


def test_document_operation_ids_and_summaries() -> None:
    def change(doc: dict[str, Any]) -> None:
        del doc["paths"]["/api/meters"]["get"]["operationId"]
        doc["paths"]["/api/meters/current"]["get"]["operationId"] = "getMeter"
        del doc["paths"]["/api/meters/current"]["get"]["summary"]

    assert broken(change) == [
        "GET /api/meters: missing operationId",
        "GET /api/meters/current: operationId 'getMeter' also used by GET /api/meters/{meter}",
        "GET /api/meters/current: missing summary",
    ]


def test_document_unresolved_refs() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["components"]["schemas"]["Value"]["properties"]["unit"] = ref("Units")
        doc["paths"]["/api/meters/{meter}"]["get"]["responses"]["404"] = {
            "$ref": "#/components/responses/Gone"
        }

    assert broken(change) == [
        "#/paths/~1api~1meters~1{meter}/get/responses/404: "
        "unresolved $ref '#/components/responses/Gone' (no 'Gone')",
        "#/components/schemas/Value/properties/unit: "
        "unresolved $ref '#/components/schemas/Units' (no 'Units')",
    ]


def test_document_path_parameters() -> None:
    def change(doc: dict[str, Any]) -> None:
        values = doc["paths"]["/api/meters/{meter}/values/{obis}"]["get"]
        values["parameters"] = [METER_PARAMETER, {**OBIS_PARAMETER, "required": False}]
        doc["paths"]["/api/meters/{meter}"]["parameters"] = [{**METER_PARAMETER, "in": "query"}]
        doc["paths"]["/api/meters"]["get"]["parameters"] = [{**OBIS_PARAMETER}]

    assert broken(change) == [
        "GET /api/meters/{meter}: path parameter 'meter' is not declared",
        "DELETE /api/meters/{meter}: path parameter 'meter' is not declared",
        "GET /api/meters: path parameter 'obis' is not in the path template",
        "GET /api/meters/{meter}/values/{obis}: path parameter 'obis' must have required: true",
    ]


def test_document_path_parameter_by_ref_at_operation_level() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["components"]["parameters"] = {"Meter": METER_PARAMETER}
        item = doc["paths"]["/api/meters/{meter}"]
        del item["parameters"]
        for operation in (item["get"], item["delete"]):
            operation["parameters"] = [{"$ref": "#/components/parameters/Meter"}]

    assert broken(change) == []


def test_document_responses() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["paths"]["/api/meters"]["get"]["responses"] = {"400": ok("bad")}
        doc["paths"]["/api/meters/current"]["get"]["responses"]["200"]["content"] = {"text/csv": {}}
        doc["components"]["responses"]["NotFound"]["content"] = {}

    assert broken(change) == [
        "GET /api/meters/{meter} 404: content has no media type",
        "GET /api/meters: no 2xx response",
        "GET /api/meters/current 200: text/csv has no schema",
    ]


def test_document_schemas_use_supported_keywords_only() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["components"]["schemas"]["Meter"]["properties"]["name"]["minProperties"] = 1
        doc["components"]["schemas"]["Values"]["properties"]["values"]["items"] = {
            "$ref": ref("Value")["$ref"],
            "x-unit": 1,
        }
        doc["paths"]["/api/meters/{meter}"]["parameters"][0] = {
            **METER_PARAMETER,
            "schema": {"format": "uuid"},
        }

    assert broken(change) == [
        "#/paths/~1api~1meters~1{meter}/parameters/0/schema: unsupported format 'uuid'",
        "#/components/schemas/Meter/properties/name: unsupported schema keyword(s): minProperties",
        "#/components/schemas/Values/properties/values/items: unsupported schema keyword(s): x-unit",
    ]


# --- lookups ----------------------------------------------------------------------------------------


def test_response_schema_exact_range_default() -> None:
    assert response_schema(DOC, "/api/meters/{meter}", "get", 200) == ref("Meter")
    # 404 is a $ref to components/responses; the status may be a string and the method upper case
    assert response_schema(DOC, "/api/meters/{meter}", "GET", "404") == ref("Error")
    assert response_schema(DOC, "/api/meters/{meter}", "get", 500) == ref("Error")  # default
    assert response_schema(DOC, "/api/meters/{meter}/values/{obis}", "get", 422) == ref("Error")  # 4XX
    assert response_schema(DOC, "/api/meters/{meter}", "delete", 204) is None  # documented, no content


def test_response_schema_prefers_exact_code_over_range_over_default() -> None:
    document = copy.deepcopy(DOC)
    document["paths"]["/api/meters"]["get"]["responses"].update(
        {"404": ok("a", {"const": 1}), "4XX": ok("b", {"const": 2}), "default": ok("c", {"const": 3})}
    )
    schemas = [response_schema(document, "/api/meters", "get", code) for code in (404, 400, 503)]
    assert schemas == [{"const": 1}, {"const": 2}, {"const": 3}]


def test_response_schema_undocumented() -> None:
    with pytest.raises(KeyError, match="POST /api/meters is not documented"):
        response_schema(DOC, "/api/meters", "post", 200)
    with pytest.raises(KeyError, match="/api/nothing"):
        response_schema(DOC, "/api/nothing", "get", 200)
    with pytest.raises(KeyError, match=r"GET /api/meters: no response for 404 documented \(only 200\)"):
        response_schema(DOC, "/api/meters", "get", 404)


def test_match_path_literal_wins_over_template() -> None:
    assert match_path(DOC, "/api/meters/current") == ("/api/meters/current", {})
    assert match_path(DOC, "/api/meters/house") == ("/api/meters/{meter}", {"meter": "house"})
    assert match_path(DOC, "/api/meters") == ("/api/meters", {})


def test_match_path_parameters() -> None:
    assert match_path(DOC, "/api/meters/m1/values/1-0:1.8.0*255?from=2024-01-01") == (
        "/api/meters/{meter}/values/{obis}",
        {"meter": "m1", "obis": "1-0:1.8.0*255"},
    )
    assert match_path(DOC, "/api/meters/a%2Fb/values/x") == (
        "/api/meters/{meter}/values/{obis}",
        {"meter": "a/b", "obis": "x"},
    )
    assert match_path(DOC, "/api/meters/m1/values") is None  # a parameter is one whole segment
    assert match_path(DOC, "/api/meters/m1/x/values/y") is None
    assert match_path(DOC, "/api/meters//values/y") is None  # and never empty
    assert match_path(DOC, "/api/other") is None


def test_match_path_leftmost_literal_wins_whatever_the_order() -> None:
    paths = {"/a/{x}/c": {}, "/a/b/{y}": {}, "/{z}/b/c": {}}
    assert match_path({"paths": paths}, "/a/b/c") == ("/a/b/{y}", {"y": "c"})
    assert match_path({"paths": dict(reversed(paths.items()))}, "/a/b/c") == ("/a/b/{y}", {"y": "c"})
    assert match_path({"paths": paths}, "/a/q/c") == ("/a/{x}/c", {"x": "q"})


# --- property: generated instances of generated schemas ---------------------------------------------

FIELD_TYPES = {
    "integer": st.integers(min_value=-(2**53), max_value=2**53),
    "string": st.text(max_size=10),
    "null": st.none(),
}
WRONG = {"integer": ["1", 1.5, True, None], "string": [1, None, False, []], "null": [0, "", {}]}


@st.composite
def schema_and_instance(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    names = draw(
        st.lists(st.text(string.ascii_lowercase, min_size=1, max_size=6), min_size=1, max_size=6, unique=True)
    )
    types = {name: draw(st.sampled_from(sorted(FIELD_TYPES))) for name in names}
    required = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    schema = {
        "type": "object",
        "required": required,
        "properties": {name: {"type": type_} for name, type_ in types.items()},
        "additionalProperties": draw(st.booleans()),
    }
    present = [name for name in names if name in required or draw(st.booleans())]
    instance = {name: draw(FIELD_TYPES[types[name]]) for name in present}
    return schema, instance, required


@given(schema_and_instance(), st.data())
def test_generated_instances_validate_and_a_wrong_type_is_named(
    case: tuple[dict[str, Any], dict[str, Any], list[str]], data: st.DataObject
) -> None:
    schema, instance, required = case
    document = {"components": {"schemas": {"Thing": schema}}}
    thing = {"$ref": "#/components/schemas/Thing"}
    assert validate(instance, thing, document) == []
    in_array = {"properties": {"items": {"items": thing}}}
    assert validate({"items": [instance, instance]}, in_array, document) == []

    name = data.draw(st.sampled_from(required))
    wrong = data.draw(st.sampled_from(WRONG[schema["properties"][name]["type"]]))
    errors = validate({**instance, name: wrong}, thing, document)
    assert len(errors) == 1
    assert errors[0].startswith(f"$.{name}: expected {schema['properties'][name]['type']}, got ")
    del instance[name]
    assert validate(instance, thing, document) == [f"$.{name}: required property is missing"]
