"""Knowledge bases on the real gateway: admin bodies as written, documents, search, limits.

The gateway runs with its embedded PostgreSQL (pgvector) and the `local` wordllama model;
backend-level tests drive PgvectorBackend on the same database with random unit vectors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest

from gateway_core.domain.knowledge import EmbeddedDocument, KnowledgeBaseRef
from gateway_core.knowledge.backend import SearchQuery
from gateway_core.knowledge.filters import parse_filter
from gateway_core.knowledge.pgvector import PgvectorBackend
from tests.conftest import Gateway, key_client, openai_error
from tests.issue_examples import LOCAL_EMBED_MODEL as MODEL_BODY
from tests.issue_examples import PRODUCT_DOCS_KB as KB_BODY

DOCS = [
    {
        "id": "refunds",
        "content": "Refunds are paid back to the original card within five days.",
        "metadata": {"category": "billing", "year": 2024, "tags": ["money", "cards"]},
    },
    {
        "id": "invoices",
        "content": "Invoices are emailed as PDF files at the start of each month.",
        "metadata": {"category": "billing", "year": 2023},
    },
    {
        "id": "password",
        "content": "Reset your password from the login page with the email link.",
        "metadata": {"category": "account", "year": 2024},
    },
    {
        "id": "two-factor",
        "content": "Turn on two-factor authentication with an authenticator app.",
        "metadata": {"category": "account", "year": 2022, "tags": ["security"]},
    },
    {
        "id": "shipping",
        "content": "Parcels ship from our warehouse and arrive in three days.",
        "metadata": {"category": "delivery", "year": 2024},
    },
]
BASE = "/v1/knowledge-bases/product-docs"


@pytest.fixture
async def kb(gateway: Gateway) -> Gateway:
    """The gateway with the issue's local embedding model and knowledge base, as written."""
    model = await gateway.admin.post("/admin/models", json=MODEL_BODY)
    assert model.status_code == 201, model.text
    created = await gateway.admin.post("/admin/knowledge-bases", json=KB_BODY)
    assert created.status_code == 201, created.text
    return gateway


async def _add(gateway: Gateway, docs: list[dict[str, Any]], kb_id: str = "product-docs") -> None:
    response = await gateway.admin.post(
        f"/v1/knowledge-bases/{kb_id}/documents", json={"documents": docs}
    )
    assert response.status_code == 200, response.text


async def _search(gateway: Gateway, **body: Any) -> httpx.Response:
    return await gateway.admin.post(f"{BASE}/search", json=body)


async def test_the_issue_bodies_create_a_kb_that_shows_count_and_health(kb: Gateway) -> None:
    shown = await kb.admin.get("/admin/knowledge-bases/product-docs")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["document_count"] == 0
    assert body["backend_health"] == {"status": "up", "error": None}
    assert body["embedding_model_id"] == "local-embed"
    await _add(kb, DOCS)
    assert (await kb.admin.get("/admin/knowledge-bases/product-docs")).json()[
        "document_count"
    ] == len(DOCS)


async def test_a_chat_model_cannot_embed_a_kb(kb: Gateway) -> None:
    body = {**KB_BODY, "id": "bad-kb", "embedding_model_id": "no-such-model"}
    error = openai_error(await kb.admin.post("/admin/knowledge-bases", json=body), 400)
    assert error["param"] == "embedding_model_id"


async def test_documents_are_added_read_replaced_and_deleted(kb: Gateway) -> None:
    await _add(kb, DOCS)
    got = await kb.admin.get(f"{BASE}/documents/refunds")
    assert got.status_code == 200, got.text
    assert got.json()["metadata"]["tags"] == ["money", "cards"]
    replaced = {**DOCS[0], "content": "Refunds now take ten days.", "metadata": {"v": 2}}
    await _add(kb, [replaced])
    assert (await kb.admin.get(f"{BASE}/documents/refunds")).json()["content"] == replaced[
        "content"
    ]
    deleted = await kb.admin.delete(f"{BASE}/documents/refunds")
    assert deleted.json() == {"object": "knowledge_base.document", "id": "refunds", "deleted": True}
    error = openai_error(await kb.admin.get(f"{BASE}/documents/refunds"), 404)
    assert error["code"] == "document_not_found"
    openai_error(await kb.admin.delete(f"{BASE}/documents/refunds"), 404)


async def test_listing_pages_by_cursor_and_filters(kb: Gateway) -> None:
    docs = [
        {"id": f"d{i:02d}", "content": f"note number {i}", "metadata": {"n": i, "odd": i % 2 == 1}}
        for i in range(25)
    ]
    await _add(kb, docs)
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 10, **({"after": after} if after else {})}
        page = (await kb.admin.get(f"{BASE}/documents", params=params)).json()
        seen += [doc["id"] for doc in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == [doc["id"] for doc in docs]
    wanted = (
        '{"connector": "and", "filters": [{"field": "odd", "operator": "eq", "value": true},'
        ' {"field": "n", "operator": "lt", "value": 10}]}'
    )
    filtered = (await kb.admin.get(f"{BASE}/documents", params={"filter": wanted})).json()
    assert [doc["id"] for doc in filtered["data"]] == ["d01", "d03", "d05", "d07", "d09"]
    by_body = await kb.admin.post(
        f"{BASE}/documents/list", json={"filter": {"field": "n", "operator": "gte", "value": 23}}
    )
    assert [doc["id"] for doc in by_body.json()["data"]] == ["d23", "d24"]
    bad = await kb.admin.get(f"{BASE}/documents", params={"filter": '{"field": "n"}'})
    assert openai_error(bad, 400)["param"].startswith("filter")
    openai_error(await kb.admin.get(f"{BASE}/documents", params={"filter": "{"}), 400)


async def test_delete_by_filter_removes_exactly_the_matches(kb: Gateway) -> None:
    await _add(kb, DOCS)
    response = await kb.admin.request(
        "DELETE",
        f"{BASE}/documents",
        json={"filter": {"field": "category", "operator": "eq", "value": "billing"}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] == 2
    left = (await kb.admin.get(f"{BASE}/documents")).json()["data"]
    assert sorted(doc["id"] for doc in left) == ["password", "shipping", "two-factor"]
    openai_error(await kb.admin.request("DELETE", f"{BASE}/documents", json={}), 400)


async def test_each_search_mode_finds_the_document_that_answers(kb: Gateway) -> None:
    await _add(kb, DOCS)
    for mode in ("vector", "keyword", "hybrid"):
        response = await _search(kb, query="how do I reset my password", top_k=3, mode=mode)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list"
        assert body["data"][0]["id"] == "password", (mode, body)
        assert set(body["data"][0]) == {"id", "content", "score", "metadata"}
        scores = [hit["score"] for hit in body["data"]]
        assert scores == sorted(scores, reverse=True)
    vector = (await _search(kb, query="reset my password", top_k=5)).json()["data"]
    assert all(-1.0 <= hit["score"] <= 1.0 for hit in vector)
    assert len(vector) == 5
    filtered = await _search(
        kb,
        query="reset my password",
        top_k=5,
        filter={"field": "category", "operator": "eq", "value": "billing"},
    )
    assert {hit["id"] for hit in filtered.json()["data"]} == {"refunds", "invoices"}


async def test_threshold_keeps_only_hits_that_reach_it(kb: Gateway) -> None:
    await _add(kb, DOCS)
    every = (await _search(kb, query="reset my password", top_k=5)).json()["data"]
    cut = (every[0]["score"] + every[-1]["score"]) / 2
    kept = (await _search(kb, query="reset my password", top_k=5, similarity_threshold=cut)).json()[
        "data"
    ]
    assert 0 < len(kept) < len(every)
    assert all(hit["score"] >= cut for hit in kept)
    hybrid = (
        await _search(kb, query="password", top_k=5, mode="hybrid", similarity_threshold=cut)
    ).json()["data"]
    assert {hit["id"] for hit in hybrid} <= {hit["id"] for hit in kept}


async def test_top_k_must_lie_between_1_and_1000(kb: Gateway) -> None:
    for top_k in (0, 1001):
        openai_error(await _search(kb, query="x", top_k=top_k), 400)
    assert (await _search(kb, query="x", top_k=1000)).status_code == 200


async def test_a_key_without_knowledge_bases_gets_403_everywhere(kb: Gateway) -> None:
    async with await key_client(kb, {"models": "all"}) as client:
        for method, path, body in (
            ("POST", f"{BASE}/search", {"query": "x"}),
            ("POST", f"{BASE}/documents", {"documents": [DOCS[0]]}),
            ("GET", f"{BASE}/documents", None),
            ("GET", f"{BASE}/documents/refunds", None),
            ("DELETE", f"{BASE}/documents/refunds", None),
        ):
            response = await client.request(method, path, json=body)
            assert openai_error(response, 403)["type"] == "permission_error"
        assert (await client.get("/v1/knowledge-bases")).json()["data"] == []
    async with await key_client(kb, {"knowledge_bases": ["product-docs"]}) as client:
        listed = (await client.get("/v1/knowledge-bases")).json()["data"]
        assert [item["id"] for item in listed] == ["product-docs"]
        assert (await client.post(f"{BASE}/search", json={"query": "x"})).status_code == 200


async def test_knowledge_base_requests_count_against_rate_limits(kb: Gateway) -> None:
    async with await key_client(kb, {"knowledge_bases": "all"}, requests_per_minute=2) as client:
        for _ in range(2):
            response = await client.post(f"{BASE}/search", json={"query": "x"})
            assert response.status_code == 200, response.text
        refused = await client.get(f"{BASE}/documents")
        assert openai_error(refused, 429)["type"] == "rate_limit_error"
        assert "retry-after" in refused.headers


async def test_changing_the_embedding_model_needs_reembedding(kb: Gateway) -> None:
    small = {**MODEL_BODY, "id": "local-embed-128", "dimensions": 128}
    assert (await kb.admin.post("/admin/models", json=small)).status_code == 201
    update = {key: value for key, value in KB_BODY.items() if key != "id"}
    update["embedding_model_id"] = "local-embed-128"
    await _add(kb, DOCS)
    refused = await kb.admin.put("/admin/knowledge-bases/product-docs", json=update)
    assert openai_error(refused, 409)["code"] == "knowledge_base_not_empty"
    moved = await kb.admin.put(
        "/admin/knowledge-bases/product-docs", params={"reembed": "true"}, json=update
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["document_count"] == len(DOCS)
    assert moved.json()["version"] == 2
    hits = (await _search(kb, query="how do I reset my password", top_k=1)).json()["data"]
    assert hits[0]["id"] == "password"


async def test_deleting_a_kb_drops_its_documents(kb: Gateway) -> None:
    await _add(kb, DOCS)
    assert (await kb.admin.delete("/admin/knowledge-bases/product-docs")).status_code == 200
    openai_error(await _search(kb, query="x"), 404)
    assert (await kb.admin.post("/admin/knowledge-bases", json=KB_BODY)).status_code == 201
    shown = (await kb.admin.get("/admin/knowledge-bases/product-docs")).json()
    assert shown["document_count"] == 0


async def test_sql_looking_metadata_is_stored_and_matched_as_data(kb: Gateway) -> None:
    sly = "'; DROP TABLE knowledge_bases; --"
    await _add(kb, [{"id": "x'); --", "content": "odd text", "metadata": {"note": sly}}, DOCS[0]])
    response = await kb.admin.post(
        f"{BASE}/documents/list", json={"filter": {"field": "note", "operator": "eq", "value": sly}}
    )
    assert [doc["id"] for doc in response.json()["data"]] == ["x'); --"]
    assert (await kb.admin.get("/admin/knowledge-bases/product-docs")).json()["document_count"] == 2


# --- the backend itself: exact and HNSW paths ------------------------------------------


def _random_documents(count: int, dimensions: int, seed: int) -> list[EmbeddedDocument]:
    rows = np.random.default_rng(seed).standard_normal((count, dimensions))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return [
        EmbeddedDocument(
            id=f"v{i:05d}",
            content=f"vector {i}",
            metadata={"rare": i % 100 == 0, "n": i},
            embedding=rows[i].tolist(),
        )
        for i in range(count)
    ]


@pytest.fixture
async def loaded_backend(gateway: Gateway) -> AsyncIterator[tuple[KnowledgeBaseRef, list[Any]]]:
    """A pgvector KB of 3,000 random 32-dim unit vectors, 1% of them `rare`."""
    ref = KnowledgeBaseRef.model_validate(
        {"id": "paths", "dimensions": 32, "distance": "cosine", "backend": {"type": "pgvector"}}
    )
    backend = PgvectorBackend(gateway.runtime.storage.pool)
    await backend.prepare(ref)
    documents = _random_documents(3000, 32, seed=7)
    await backend.upsert(ref, documents)
    try:
        yield ref, documents
    finally:
        await backend.drop(ref)


async def test_small_tables_search_exactly_and_large_ones_walk_hnsw(
    gateway: Gateway, loaded_backend: tuple[KnowledgeBaseRef, list[Any]]
) -> None:
    ref, documents = loaded_backend
    pool = gateway.runtime.storage.pool
    exact, hnsw = PgvectorBackend(pool), PgvectorBackend(pool, exact_below=1000)
    query = SearchQuery(text="", vector=documents[42].embedding, top_k=10)
    assert not await exact.uses_index(ref, query)  # 3,000 rows: below 10,000
    assert await hnsw.uses_index(ref, query)
    exact_ids = [hit.id for hit in await exact.search(ref, query)]
    hnsw_ids = [hit.id for hit in await hnsw.search(ref, query)]
    assert exact_ids[0] == hnsw_ids[0] == "v00042"
    assert len(set(exact_ids) & set(hnsw_ids)) >= 8


async def test_a_selective_filter_still_returns_top_k_through_hnsw(
    gateway: Gateway, loaded_backend: tuple[KnowledgeBaseRef, list[Any]]
) -> None:
    ref, documents = loaded_backend
    hnsw = PgvectorBackend(gateway.runtime.storage.pool, exact_below=1000)
    exact = PgvectorBackend(gateway.runtime.storage.pool)
    # `n < 30` keeps 1% and no index pre-selects it: the HNSW walk must go on past it.
    first = parse_filter({"field": "n", "operator": "lt", "value": 30}, path="filter")
    query = SearchQuery(text="", vector=documents[1].embedding, top_k=10, filter=first)
    assert await hnsw.uses_index(ref, query)
    hits = await hnsw.search(ref, query)
    assert len(hits) == 10  # a single beam of ef_search would hold about one of them
    assert all(hit.metadata["n"] < 30 for hit in hits)
    assert len({hit.id for hit in hits} & {hit.id for hit in await exact.search(ref, query)}) >= 8
    # `rare = true` (1% too) may be pre-selected by the GIN index: the same answer, exact.
    rare = parse_filter({"field": "rare", "operator": "eq", "value": True}, path="filter")
    query = SearchQuery(text="", vector=documents[1].embedding, top_k=10, filter=rare)
    found = [hit.id for hit in await hnsw.search(ref, query)]
    assert found == [hit.id for hit in await exact.search(ref, query)]
    assert len(found) == 10
