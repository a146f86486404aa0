"""Every backend's compiled filter selects exactly the documents `matches` selects.

One fixed corpus (missing fields, nulls, mixed types, lists, nested objects, ISO dates and
values that look like SQL) is filtered with every operator on every field, with nested
and/or groups and with seeded random filters, by: the reference `matches`; compile_pg over
a real PostgreSQL jsonb table; Qdrant's local mode with the native filter plus the residual;
the Bedrock RetrievalFilter evaluator of the fake plus the residual.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import psycopg
import pytest
from psycopg import sql
from qdrant_client import AsyncQdrantClient, models

from gateway_core.errors import InvalidRequestError
from gateway_core.knowledge.filters import (
    MAX_DEPTH,
    OPERATORS,
    Condition,
    Filter,
    Group,
    conditions,
    matches,
    parse_filter,
)
from gateway_core.knowledge.filters_bedrock import translate_bedrock
from gateway_core.knowledge.filters_pg import compile_pg
from gateway_core.knowledge.filters_qdrant import translate_qdrant
from tests.fakes import bedrock_filter

SQLISH = ["'; DROP TABLE x; --", "it's", 'quo"te', "back\\slash", "100%", "a_b", "%", "_"]
POOLS: dict[str, list[Any]] = {
    "category": ["billing", "Billing", "support", "", "bill", *SQLISH, 5, None, ["billing"]],
    "price": [0, 1, 1.0, 2.5, -3, 10, 10.0, 1_000_000, "10", True, None],
    "tags": [["a", "b"], ["b", "a"], ["a"], [], "a", [1, 2], [1.0, 2], [True], [1, "a"]],
    "published": ["2024-01-15", "2024-01-15T10:00:00Z", "2023-12-31", "2025-02-01", 2024],
    "active": [True, False, 1, 0, "true", None],
    "author": [
        {"name": "Ann", "address": {"city": "Oslo"}},
        {"name": "Bob", "address": {"city": "'; DROP TABLE x; --"}},
        {"name": "Ann"},
        {"name": 7},
        "Ann",
        [{"name": "Ann"}],
        {"address": None},
    ],
    "title": ["Apple pie", "apple", "Ärger", "zebra", "Zebra crossing", "pie", "50% off", ""],
    "we'ird%_key": ["x", 1, ["x"], "'; DROP TABLE x; --"],
    "nested": [[["a"]], {"deep": {"er": {"est": 3}}}, {"deep": [1]}],
}
FIELDS = [*POOLS, "author.name", "author.address.city", "nested.deep.er.est", "nested.deep"]
VALUES: list[Any] = [
    "billing",
    "bill",
    "",
    "a",
    "Ann",
    "10",
    "2024-01-15",
    "2024",
    "apple",
    "Apple",
    "pie",
    "%",
    "_",
    "x",
    "Oslo",
    *SQLISH,
    0,
    1,
    1.0,
    2.5,
    -3,
    3,
    10,
    2024,
    True,
    False,
]
LIST_VALUES: list[list[Any]] = [
    ["a", "b"],
    ["b", "a"],
    ["a"],
    [],
    [1, 2],
    [1.0, 2.0],
    [True],
    [1, "a"],
    ["x"],
]


def _corpus() -> list[dict[str, Any]]:
    """40 documents: seeded random picks from each pool, each field missing now and then."""
    rng = random.Random(14)
    documents: list[dict[str, Any]] = [{}, {"category": None, "tags": None}]
    for _ in range(38):
        documents.append(
            {name: rng.choice(pool) for name, pool in POOLS.items() if rng.random() < 0.7}
        )
    # Every pool value appears at least once.
    for name, pool in POOLS.items():
        for index, value in enumerate(pool):
            documents[(index * 7 + len(name)) % len(documents)][name] = value
    return documents


CORPUS = _corpus()


def _single_conditions() -> Iterator[dict[str, Any]]:
    for field in FIELDS:
        for operator in OPERATORS:
            if operator in ("exists", "notExists"):
                yield {"field": field, "operator": operator}
                continue
            candidates: list[Any] = (
                LIST_VALUES if operator in ("in", "notIn") else VALUES + LIST_VALUES
            )
            if operator in ("in", "notIn"):
                candidates = [[*v, "billing", 2.5] for v in LIST_VALUES] + [["billing"], [5]]
            for value in candidates:
                raw = {"field": field, "operator": operator, "value": value}
                try:
                    yield parse_filter(raw).model_dump()
                except InvalidRequestError:
                    continue


def _random_filter(rng: random.Random, singles: list[dict[str, Any]], depth: int) -> Any:
    # Deeper levels are more often leaves, so filters stay under MAX_CONDITIONS.
    if depth >= MAX_DEPTH or rng.random() < 0.2 + 0.12 * depth:
        return rng.choice(singles)
    size = rng.randint(1, 4)
    return {
        "connector": rng.choice(["and", "or"]),
        "filters": [_random_filter(rng, singles, depth + 1) for _ in range(size)],
    }


SINGLES = list(_single_conditions())
_rng = random.Random(1414)
GROUPS: list[Filter] = [
    parse_filter(
        {
            "connector": "and",
            "filters": [
                {"field": "category", "operator": "eq", "value": "billing"},
                {
                    "connector": "or",
                    "filters": [
                        {"field": "price", "operator": "gte", "value": 1},
                        {"field": "tags", "operator": "contains", "value": "a"},
                        {"field": "author.name", "operator": "notExists"},
                    ],
                },
            ],
        }
    ),
    parse_filter(
        {
            "connector": "or",
            "filters": [
                {"field": "published", "operator": "gt", "value": "2024-01-01"},
                {"field": "title", "operator": "startsWith", "value": "Apple"},
            ],
        }
    ),
    *(parse_filter(_random_filter(_rng, SINGLES, 0)) for _ in range(400)),
]
FILTERS: list[Filter] = [parse_filter(raw) for raw in SINGLES] + GROUPS


def _expected(filter: Filter, documents: list[dict[str, Any]]) -> set[int]:
    return {index for index, metadata in enumerate(documents) if matches(filter, metadata)}


def test_the_corpus_and_filters_cover_every_operator_and_both_outcomes() -> None:
    operators = {c.operator for f in FILTERS for c in conditions(f)}
    assert operators == set(OPERATORS)
    # Each operator selects some documents with some filter and rejects some with another.
    for operator in OPERATORS:
        selected = [
            len(_expected(f, CORPUS))
            for f in FILTERS
            if isinstance(f, Condition) and f.operator == operator
        ]
        assert max(selected) > 0
        assert min(selected) < len(CORPUS)
    assert any(isinstance(member, Group) for f in GROUPS for member in _walk_groups(f))


def _walk_groups(filter: Filter) -> Iterator[Filter]:
    if isinstance(filter, Group):
        for member in filter.filters:
            yield member
            yield from _walk_groups(member)


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
async def filter_table(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection holding a temporary jsonb table of the corpus, ids by position."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("CREATE TEMP TABLE filter_docs (id integer PRIMARY KEY, meta jsonb)")
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO filter_docs (id, meta) VALUES (%s, %s)",
                [(index, psycopg.types.json.Jsonb(doc)) for index, doc in enumerate(CORPUS)],
            )
        yield conn


# The only quoted SQL text compile_pg writes is these constants of its own.
_OWN_CONSTANTS = re.compile(r"'(null|\[\]|\{\}|string|number|array)'")


async def test_postgres_selects_what_matches_selects(
    filter_table: psycopg.AsyncConnection[Any],
) -> None:
    mismatches = []
    for filter in FILTERS:
        compiled = compile_pg(filter, column="meta")
        query = sql.SQL("SELECT id FROM filter_docs WHERE ") + compiled.clause
        text = query.as_string(filter_table)
        assert "'" not in _OWN_CONSTANTS.sub("", text), text  # no value in the SQL text
        assert "DROP" not in text
        cursor = await filter_table.execute(query, compiled.params)
        got = {row[0] for row in await cursor.fetchall()}
        if got != _expected(filter, CORPUS):
            mismatches.append((filter.model_dump(), sorted(got ^ _expected(filter, CORPUS))))
    assert not mismatches, mismatches[:5]


async def test_postgres_without_a_filter_selects_everything(
    filter_table: psycopg.AsyncConnection[Any],
) -> None:
    compiled = compile_pg(None)
    query = sql.SQL("SELECT count(*) FROM filter_docs WHERE ") + compiled.clause
    cursor = await filter_table.execute(query, compiled.params)
    assert await cursor.fetchone() == (len(CORPUS),)


# ---------------------------------------------------------------- Qdrant


@pytest.fixture(scope="module")
async def qdrant() -> AsyncIterator[AsyncQdrantClient]:
    """Qdrant's local mode with the corpus twice: payload as metadata, and under a key."""
    client = AsyncQdrantClient(location=":memory:")
    params = models.VectorParams(size=2, distance=models.Distance.COSINE)
    for name, wrap in (("flat", False), ("wrapped", True)):
        await client.create_collection(name, vectors_config=params)
        points = [
            models.PointStruct(
                id=index, vector=[1.0, 0.5], payload={"metadata": doc} if wrap else doc
            )
            for index, doc in enumerate(CORPUS)
        ]
        await client.upsert(name, points=points)
    yield client
    await client.close()


async def _qdrant_select(client: AsyncQdrantClient, filter: Filter, wrapped: bool) -> set[int]:
    translated = translate_qdrant(filter, key_prefix="metadata" if wrapped else "")
    records, _ = await client.scroll(
        "wrapped" if wrapped else "flat",
        scroll_filter=translated.native,
        limit=len(CORPUS) + 1,
        with_payload=True,
    )
    selected = set()
    for record in records:
        payload: Mapping[str, Any] = record.payload or {}
        metadata = payload.get("metadata", {}) if wrapped else payload
        if matches(translated.residual, metadata):
            selected.add(int(record.id))
    return selected


@pytest.mark.parametrize("wrapped", [False, True], ids=["payload", "under-key"])
async def test_qdrant_native_plus_residual_selects_what_matches_selects(
    qdrant: AsyncQdrantClient, wrapped: bool
) -> None:
    mismatches = []
    for filter in FILTERS:
        got = await _qdrant_select(qdrant, filter, wrapped)
        if got != _expected(filter, CORPUS):
            mismatches.append((filter.model_dump(), sorted(got ^ _expected(filter, CORPUS))))
    assert not mismatches, mismatches[:5]


async def test_qdrant_decides_exists_alone_and_narrows_eq(qdrant: AsyncQdrantClient) -> None:
    exists = translate_qdrant(parse_filter({"field": "author.name", "operator": "exists"}))
    assert exists.native is not None
    assert exists.residual is None
    eq = translate_qdrant(parse_filter({"field": "category", "operator": "eq", "value": "bill"}))
    assert eq.native is not None
    assert eq.residual is not None
    records, _ = await qdrant.scroll("flat", scroll_filter=eq.native, limit=100)
    assert 0 < len(records) < len(CORPUS)


# ---------------------------------------------------------------- Bedrock


def _bedrock_metadata(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What a Bedrock metadata file can hold: strings, numbers, booleans, lists of strings."""

    def storable(value: Any) -> bool:
        if isinstance(value, list):
            return all(isinstance(item, str) for item in value)
        return isinstance(value, str | int | float)

    return {key: value for key, value in doc.items() if storable(value)}


BEDROCK_CORPUS = [_bedrock_metadata(doc) for doc in CORPUS]


def test_bedrock_native_plus_residual_selects_what_matches_selects() -> None:
    mismatches, refused, checked = [], 0, 0
    for filter in FILTERS:
        if any("." in condition.field for condition in conditions(filter)):
            with pytest.raises(InvalidRequestError, match="Bedrock metadata is flat"):
                translate_bedrock(filter)
            refused += 1
            continue
        translated = translate_bedrock(filter)
        if translated.native is not None:
            bedrock_filter.validate(translated.native)
        got = {
            index
            for index, metadata in enumerate(BEDROCK_CORPUS)
            if (translated.native is None or bedrock_filter.evaluate(translated.native, metadata))
            and matches(translated.residual, metadata)
        }
        checked += 1
        if got != _expected(filter, BEDROCK_CORPUS):
            mismatches.append((filter.model_dump(), translated.native))
    assert not mismatches, mismatches[:5]
    assert refused > 0
    assert checked > len(FILTERS) / 2


def test_bedrock_strict_mode_refuses_what_it_cannot_decide_alone() -> None:
    exact = parse_filter(
        {
            "connector": "and",
            "filters": [
                {"field": "price", "operator": "gte", "value": 1},
                {"field": "active", "operator": "ne", "value": True},
                {"field": "price", "operator": "notIn", "value": [10, 2.5]},
            ],
        }
    )
    translated = translate_bedrock(exact, strict=True)
    assert translated.residual is None
    assert translated.native == {
        "andAll": [
            {"greaterThanOrEquals": {"key": "price", "value": 1}},
            {"notEquals": {"key": "active", "value": True}},
            {
                "andAll": [
                    {"notEquals": {"key": "price", "value": 10}},
                    {"notEquals": {"key": "price", "value": 2.5}},
                ]
            },
        ]
    }
    inexact = parse_filter(
        {
            "connector": "or",
            "filters": [
                {"field": "price", "operator": "gte", "value": 1},
                {"field": "title", "operator": "endsWith", "value": "pie"},
            ],
        }
    )
    with pytest.raises(InvalidRequestError) as refused:
        translate_bedrock(inexact, strict=True)
    assert refused.value.param == "filter.filters[1].operator"
    assert "endsWith" in refused.value.message


def test_bedrock_groups_of_more_than_five_are_nested() -> None:
    members = [{"field": "price", "operator": "ne", "value": n} for n in range(12)]
    translated = translate_bedrock(parse_filter({"connector": "and", "filters": members}))
    assert translated.native is not None
    bedrock_filter.validate(translated.native)
    assert len(translated.native["andAll"]) == 3
