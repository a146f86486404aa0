"""The filter language: parse errors name the JSON path; `matches` is the stated semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from qdrant_client.local.payload_filters import check_filter

from gateway_core.errors import InvalidRequestError
from gateway_core.knowledge import filters_bedrock, filters_pg, filters_qdrant
from gateway_core.knowledge.filters import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    NEGATIONS,
    OPERATORS,
    Condition,
    Group,
    ParsedFilter,
    capability_markdown,
    matches,
    parse_filter,
)
from tests.fakes import bedrock_filter

README = Path(__file__).resolve().parents[2] / "README.md"
OK = {"field": "a", "operator": "eq", "value": 1}


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = OK
    for _ in range(depth):
        node = {"connector": "and", "filters": [node]}
    return node


BAD_FILTERS = [
    ("not an object", "filter", "must be an object"),
    ({"field": "a", "operator": "like", "value": "x"}, "filter.operator", "one of eq, ne"),
    ({"field": "a", "operator": "eq", "valu": 1}, "filter.valu", "unknown key"),
    ({"field": "", "operator": "exists"}, "filter.field", "non-empty"),
    ({"field": "a..b", "operator": "exists"}, "filter.field", "empty segment"),
    ({"field": 'a"b', "operator": "exists"}, "filter.field", "double quotes"),
    ({"field": "a", "operator": "exists", "value": 1}, "filter.value", "takes no value"),
    ({"field": "a", "operator": "eq"}, "filter.value", "requires a value"),
    ({"field": "a", "operator": "gt", "value": True}, "filter.value", "number or a string"),
    ({"field": "a", "operator": "lt", "value": [1]}, "filter.value", "number or a string"),
    ({"field": "a", "operator": "startsWith", "value": 5}, "filter.value", "takes a string"),
    ({"field": "a", "operator": "endsWith", "value": None}, "filter.value", "requires"),
    ({"field": "a", "operator": "in", "value": []}, "filter.value", "non-empty list"),
    ({"field": "a", "operator": "in", "value": "x"}, "filter.value", "list"),
    ({"field": "a", "operator": "notIn", "value": [1, [2]]}, "filter.value", "[1]"),
    ({"field": "a", "operator": "eq", "value": {"k": 1}}, "filter.value", "expected a string"),
    ({"field": "a", "operator": "eq", "value": float("nan")}, "filter.value", "finite"),
    ({"field": "a", "operator": "contains", "value": "a\x00b"}, "filter.value", "NUL"),
    ({"connector": "xor", "filters": [OK]}, "filter.connector", "'and' or 'or'"),
    ({"connector": "and", "filters": []}, "filter.filters", "non-empty list"),
    ({"connector": "or", "field": "a", "filters": [OK]}, "filter", "not both"),
    (
        {"connector": "and", "filters": [OK, {"field": "a", "operator": "in", "value": []}]},
        "filter.filters[1].value",
        "non-empty",
    ),
    (
        {"connector": "and", "filters": [OK, {"connector": "or", "filters": [OK, {"x": 1}]}]},
        "filter.filters[1].filters[1].x",
        "unknown key",
    ),
    (
        _nested(MAX_DEPTH + 1),
        "filter" + ".filters[0]" * MAX_DEPTH,
        f"at most {MAX_DEPTH} deep",
    ),
    (
        {"connector": "or", "filters": [OK] * (MAX_CONDITIONS + 1)},
        f"filter.filters[{MAX_CONDITIONS}]",
        f"at most {MAX_CONDITIONS} conditions",
    ),
]


@pytest.mark.parametrize(("raw", "param", "fragment"), BAD_FILTERS)
def test_a_malformed_filter_is_a_400_naming_the_json_path(
    raw: Any, param: str, fragment: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_filter(raw)
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.message.startswith(param + ": ")
    assert fragment in caught.value.message


def test_the_path_prefix_is_the_callers() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_filter({"field": "a", "operator": "nope"}, path="body.filter")
    assert caught.value.param == "body.filter.operator"


def test_groups_nest_to_the_stated_depth() -> None:
    assert MAX_DEPTH >= 5
    parsed = parse_filter(_nested(MAX_DEPTH))
    assert isinstance(parsed, Group)


def test_a_pydantic_field_parses_with_the_same_errors() -> None:
    class Body(BaseModel):
        filter: ParsedFilter | None = None

    body = Body.model_validate({"filter": {"field": "a.b", "operator": "exists"}})
    assert body.filter == Condition(field="a.b", operator="exists")
    with pytest.raises(InvalidRequestError) as caught:
        Body.model_validate({"filter": {"connector": "and", "filters": [{"field": 1}]}})
    assert caught.value.param == "filter.filters[0].field"


def _cond(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    raw = {"field": field, "operator": operator}
    return raw if value is None else {**raw, "value": value}


DOC = {
    "category": "billing",
    "price": 10,
    "ratio": 0.5,
    "flag": True,
    "zero": 0,
    "tags": ["a", "b", 1],
    "empty": [],
    "nothing": None,
    "date": "2024-01-15",
    "author": {"name": "Ann", "address": {"city": "Oslo"}},
    "people": [{"name": "Ann"}],
    "sql": "'; DROP TABLE x; --",
}
SEMANTICS = [
    (_cond("category", "eq", "billing"), True),
    (_cond("category", "eq", "Billing"), False),
    (_cond("price", "eq", 10.0), True),  # 10 equals 10.0
    (_cond("flag", "eq", 1), False),  # a boolean is not a number
    (_cond("zero", "eq", False), False),
    (_cond("tags", "eq", "a"), False),  # eq on a list is whole-list equality
    (_cond("tags", "eq", ["a", "b", 1.0]), True),
    (_cond("tags", "eq", ["b", "a", 1]), False),
    (_cond("empty", "eq", []), True),
    (_cond("missing", "eq", 1), False),
    (_cond("missing", "ne", 1), True),  # the negation holds without the field
    (_cond("nothing", "ne", 1), True),
    (_cond("tags", "ne", "a"), True),
    (_cond("price", "gt", 9), True),
    (_cond("price", "gt", "9"), False),  # never across types
    (_cond("flag", "gte", 0), False),
    (_cond("ratio", "lt", 1), True),
    (_cond("price", "lte", 10.0), True),
    (_cond("date", "gt", "2024-01-01"), True),  # ISO dates compare as strings
    (_cond("date", "lt", "2024-01-15T00:00:00Z"), True),
    (_cond("date", "gte", 2024), False),
    (_cond("tags", "gt", 0), False),
    (_cond("category", "contains", "ill"), True),
    (_cond("category", "contains", ""), True),
    (_cond("tags", "contains", "a"), True),  # membership on a list
    (_cond("tags", "contains", 1.0), True),
    (_cond("tags", "contains", True), False),
    (_cond("tags", "contains", "ab"), False),
    (_cond("price", "contains", 10), False),
    (_cond("category", "startsWith", "bill"), True),
    (_cond("category", "endsWith", "ing"), True),
    (_cond("category", "endsWith", "bill"), False),
    (_cond("tags", "startsWith", "a"), False),  # strings only
    (_cond("sql", "startsWith", "'; DROP"), True),
    (_cond("category", "in", ["support", "billing"]), True),
    (_cond("price", "in", [10.0]), True),
    (_cond("tags", "in", ["a", "b"]), False),
    (_cond("missing", "in", [1]), False),
    (_cond("missing", "notIn", [1]), True),
    (_cond("category", "notIn", ["billing"]), False),
    (_cond("category", "exists"), True),
    (_cond("zero", "exists"), True),
    (_cond("nothing", "exists"), False),  # null does not exist
    (_cond("empty", "exists"), False),  # nor does an empty list
    (_cond("nothing", "notExists"), True),
    (_cond("missing", "notExists"), True),
    (_cond("author.name", "eq", "Ann"), True),  # a dotted path walks nested objects
    (_cond("author.address.city", "startsWith", "Os"), True),
    (_cond("author.address.zip", "notExists"), True),
    (_cond("people.name", "exists"), False),  # ... objects only, not lists
    (_cond("category.x", "exists"), False),
]


@pytest.mark.parametrize(("raw", "expected"), SEMANTICS)
def test_matches_follows_the_stated_semantics(raw: dict[str, Any], expected: bool) -> None:
    assert matches(parse_filter(raw), DOC) is expected


def test_groups_combine_with_and_and_or() -> None:
    true, false = _cond("price", "eq", 10), _cond("price", "eq", 11)
    assert matches(parse_filter({"connector": "and", "filters": [true, true]}), DOC)
    assert not matches(parse_filter({"connector": "and", "filters": [true, false]}), DOC)
    assert matches(parse_filter({"connector": "or", "filters": [false, true]}), DOC)
    assert not matches(parse_filter({"connector": "or", "filters": [false, false]}), DOC)
    assert matches(None, DOC)


# ---------------------------------------------------------------- properties

# NUL cannot be stored in PostgreSQL, so the parser refuses it.
texts = st.text(st.characters(exclude_characters="\x00"), max_size=4)
scalars = st.one_of(
    texts,
    st.integers(-3, 3),
    st.floats(-3, 3, allow_nan=False).map(lambda x: round(x, 1)),
    st.booleans(),
)
values = st.one_of(scalars, st.none(), st.lists(scalars, max_size=3))
metadata = st.dictionaries(
    st.sampled_from(["a", "b"]),
    st.one_of(values, st.dictionaries(st.sampled_from(["a", "b"]), values, max_size=2)),
    max_size=2,
)
fields = st.sampled_from(["a", "b", "a.a", "a.b", "c"])


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    operator = draw(st.sampled_from(OPERATORS))
    field = draw(fields)
    if operator in ("exists", "notExists"):
        return _cond(field, operator)
    if operator in ("in", "notIn"):
        return _cond(field, operator, draw(st.lists(scalars, min_size=1, max_size=3)))
    if operator in ("startsWith", "endsWith"):
        return _cond(field, operator, draw(texts))
    if operator in ("gt", "gte", "lt", "lte"):
        return _cond(field, operator, draw(st.one_of(texts, st.integers(-3, 3))))
    if operator in ("eq", "ne"):
        return _cond(field, operator, draw(st.one_of(scalars, st.lists(scalars, max_size=2))))
    return _cond(field, operator, draw(scalars))


filters_json = st.recursive(
    conditions(),
    lambda members: st.fixed_dictionaries(
        {
            "connector": st.sampled_from(["and", "or"]),
            "filters": st.lists(members, min_size=1, max_size=3),
        }
    ),
    max_leaves=8,
)


@given(conditions(), metadata)
def test_ne_notin_notexists_are_exact_negations(raw: dict[str, Any], doc: dict[str, Any]) -> None:
    operator = raw["operator"]
    negation = {positive: negative for negative, positive in NEGATIONS.items()}.get(operator)
    if negation is None:
        return
    flipped = parse_filter({**raw, "operator": negation})
    assert matches(flipped, doc) is not matches(parse_filter(raw), doc)


@given(filters_json)
def test_a_parsed_filter_round_trips_through_its_json(raw: dict[str, Any]) -> None:
    parsed = parse_filter(raw)
    assert parse_filter(parsed.model_dump(exclude_none=True)) == parsed
    assert parse_filter(parsed) == parsed


def _bedrock_storable(doc: dict[str, Any]) -> dict[str, Any]:
    def storable(value: Any) -> bool:
        if isinstance(value, list):
            return all(isinstance(item, str) for item in value)
        return isinstance(value, str | int | float)

    return {key: value for key, value in doc.items() if storable(value)}


@given(filters_json, metadata)
def test_qdrant_native_and_residual_are_exactly_the_filter(
    raw: dict[str, Any], doc: dict[str, Any]
) -> None:
    parsed = parse_filter(raw)
    translated = filters_qdrant.translate_qdrant(parsed)
    native = translated.native is None or check_filter(translated.native, doc, 0, {})
    assert (native and matches(translated.residual, doc)) is matches(parsed, doc)


@given(filters_json.filter(lambda raw: "." not in str(raw)), metadata.map(_bedrock_storable))
def test_bedrock_native_and_residual_are_exactly_the_filter(
    raw: dict[str, Any], doc: dict[str, Any]
) -> None:
    parsed = parse_filter(raw)
    translated = filters_bedrock.translate_bedrock(parsed)
    if translated.native is not None:
        bedrock_filter.validate(translated.native)
    native = translated.native is None or bedrock_filter.evaluate(translated.native, doc)
    assert (native and matches(translated.residual, doc)) is matches(parsed, doc)


# ---------------------------------------------------------------- capability tables

TABLES = {
    "pgvector": filters_pg.CAPABILITIES,
    "qdrant": filters_qdrant.CAPABILITIES,
    "bedrock": filters_bedrock.CAPABILITIES,
}


def test_every_backend_states_every_operator() -> None:
    for table in TABLES.values():
        assert set(table) == set(OPERATORS)


def test_the_readme_prints_the_capability_tables() -> None:
    assert capability_markdown(TABLES) in README.read_text()
