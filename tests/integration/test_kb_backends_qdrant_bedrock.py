"""The Qdrant backend (qdrant-client's local mode) and the Bedrock Knowledge Bases backend
(boto3 against a loopback Retrieve API), exercised through the KnowledgeBackend protocol."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from gateway_core.credentials.base import CredentialResolver, EnvCredentialSource
from gateway_core.domain.knowledge import (
    BedrockBackendConfig,
    Distance,
    EmbeddedDocument,
    KnowledgeBaseRef,
    QdrantBackendConfig,
)
from gateway_core.domain.models import CredentialRef
from gateway_core.errors import GatewayError, InvalidRequestError, MethodNotAllowedError
from gateway_core.knowledge.backend import SearchQuery
from gateway_core.knowledge.bedrock_kb import BedrockKnowledgeBackend
from gateway_core.knowledge.filters import matches, parse_filter
from gateway_core.knowledge.qdrant import QdrantBackend, point_id
from gateway_core.knowledge.term_scoring import reciprocal_rank_fusion
from tests.conftest import Gateway
from tests.fakes.bedrock_kb_upstream import Chunk, FakeBedrockAgentRuntime
from tests.fakes.loopback import Scenario

AWS_KEY_ID = "AKIAKBTEST"
AWS_ENV = "KB_TEST_AWS_KEYS"
BEDROCK_KB = "KBTEST0001"
REGION = "eu-west-1"

# Documents in 3 dimensions whose metadata covers missing fields, mixed types and lists.
DOCS = [
    EmbeddedDocument(
        id="a/1",
        content="Refunds for billing errors are issued within five days.",
        metadata={"category": "billing", "year": 2023, "tags": ["refund", "money"]},
        embedding=[1.0, 0.0, 0.0],
    ),
    EmbeddedDocument(
        id="b 2",
        content="Reset your password from the account page.",
        metadata={"category": "account", "year": "2024", "nested": {"level": 3}},
        embedding=[0.0, 1.0, 0.0],
    ),
    EmbeddedDocument(
        id="c-3",
        content="Invoices list every billing line item and refund.",
        metadata={"category": "billing", "year": 2024, "tags": ["invoice"]},
        embedding=[0.8, 0.6, 0.0],
    ),
    EmbeddedDocument(
        id="d-4",
        content="Our office is closed on public holidays.",
        metadata={"title": "holidays.md"},
        embedding=[0.0, 0.0, 1.0],
    ),
    EmbeddedDocument(
        id="e-5",
        content="Billing disputes go to the finance team.",
        metadata={"category": "billing-disputes", "year": 2022, "nested": {"level": 1}},
        embedding=[0.6, 0.0, 0.8],
    ),
]
FILTERS: list[dict[str, Any]] = [
    {"field": "category", "operator": "eq", "value": "billing"},
    {"field": "category", "operator": "ne", "value": "billing"},
    {"field": "year", "operator": "gte", "value": 2023},
    {"field": "year", "operator": "lt", "value": "2025"},
    {"field": "tags", "operator": "contains", "value": "refund"},
    {"field": "category", "operator": "contains", "value": "ill"},
    {"field": "category", "operator": "startsWith", "value": "bill"},
    {"field": "title", "operator": "endsWith", "value": ".md"},
    {"field": "category", "operator": "in", "value": ["account", "billing"]},
    {"field": "category", "operator": "notIn", "value": ["account", "billing"]},
    {"field": "nested.level", "operator": "exists"},
    {"field": "tags", "operator": "notExists"},
    {"field": "tags", "operator": "eq", "value": ["invoice"]},
    {
        "connector": "or",
        "filters": [
            {"field": "title", "operator": "endsWith", "value": ".md"},
            {
                "connector": "and",
                "filters": [
                    {"field": "category", "operator": "startsWith", "value": "billing"},
                    {"field": "nested.level", "operator": "lte", "value": 1},
                ],
            },
        ],
    },
]


def _kb(distance: Distance = "cosine", kb_id: str = "qdrant-kb") -> KnowledgeBaseRef:
    return KnowledgeBaseRef(
        id=kb_id, dimensions=3, distance=distance, backend=QdrantBackendConfig()
    )


def _expected_ids(raw: dict[str, Any]) -> list[str]:
    """The plain-Python evaluation of a filter over DOCS."""
    condition = parse_filter(raw)
    return sorted(doc.id for doc in DOCS if matches(condition, doc.metadata))


@pytest.fixture
async def qdrant() -> AsyncIterator[QdrantBackend]:
    backend = QdrantBackend(CredentialResolver(), local_location=":memory:")
    try:
        yield backend
    finally:
        await backend.close()


async def test_qdrant_stores_lists_and_deletes_documents_by_their_own_ids(
    qdrant: QdrantBackend,
) -> None:
    kb = _kb()
    assert (await qdrant.health(kb)).status == "down"  # no collection yet
    await qdrant.prepare(kb)
    await qdrant.prepare(kb)  # idempotent
    await qdrant.upsert(kb, DOCS)
    await qdrant.upsert(kb, [DOCS[0].model_copy(update={"content": "replaced"})])
    assert await qdrant.count(kb) == len(DOCS)
    stored = await qdrant.get(kb, "a/1")
    assert stored is not None and stored.id == "a/1" and stored.content == "replaced"
    assert stored.metadata == DOCS[0].metadata
    assert await qdrant.get(kb, "missing") is None
    first = await qdrant.list(kb, filter=None, limit=2, after=None)
    assert [d.id for d in first.documents] == ["a/1", "b 2"] and first.has_more
    rest = await qdrant.list(kb, filter=None, limit=10, after="b 2")
    assert [d.id for d in rest.documents] == ["c-3", "d-4", "e-5"] and not rest.has_more
    assert await qdrant.delete(kb, ["b 2", "missing"]) == 1
    billing = parse_filter({"field": "category", "operator": "startsWith", "value": "billing"})
    assert await qdrant.delete_matching(kb, billing) == 3
    assert [d.id for d in (await qdrant.list(kb, filter=None, limit=10, after=None)).documents] == [
        "d-4"
    ]
    assert (await qdrant.health(kb)).status == "up"
    await qdrant.drop(kb)
    assert (await qdrant.health(kb)).status == "down"


async def test_qdrant_point_ids_are_uuid5_of_document_ids_and_keep_them_in_the_payload(
    qdrant: QdrantBackend,
) -> None:
    kb = _kb(kb_id="ids-kb")
    await qdrant.prepare(kb)
    await qdrant.upsert(kb, DOCS[:1])
    client = await qdrant._client(kb)
    records = await client.retrieve("pmp-kb-ids-kb", ids=[point_id("a/1")])
    assert records[0].payload == {
        "doc_id": "a/1",
        "content": DOCS[0].content,
        "metadata": DOCS[0].metadata,
    }
    assert point_id("a/1") != point_id("a/2") and point_id("a/1") == point_id("a/1")


@pytest.mark.parametrize("raw", FILTERS, ids=lambda raw: str(raw)[:60])
async def test_qdrant_filters_match_the_plain_python_evaluation(
    qdrant: QdrantBackend, raw: dict[str, Any]
) -> None:
    kb = _kb(kb_id="filters-kb")
    await qdrant.prepare(kb)
    await qdrant.upsert(kb, DOCS)
    condition = parse_filter(raw)
    expected = _expected_ids(raw)
    listed = await qdrant.list(kb, filter=condition, limit=100, after=None)
    assert [d.id for d in listed.documents] == expected
    query = SearchQuery(text="billing", vector=[1.0, 0.0, 0.0], top_k=100, filter=condition)
    assert sorted(hit.id for hit in await qdrant.search(kb, query)) == expected
    # top_k smaller than the matches: still the best matches (over-fetch past misses).
    probe = [0.3, 0.5, 0.8]  # cosine to DOCS: 0.3, 0.5, 0.54, 0.8, 0.82 (times 1/|probe|)
    best = await qdrant.search(kb, SearchQuery(text="", vector=probe, top_k=1, filter=condition))
    nearest = sorted(
        (doc for doc in DOCS if doc.id in expected),
        key=lambda doc: -sum(a * b for a, b in zip(doc.embedding, probe, strict=True)),
    )
    assert [hit.id for hit in best] == [doc.id for doc in nearest[:1]]


@pytest.mark.parametrize(
    ("distance", "expected"),
    [
        ("cosine", [1.0, 0.8, 0.6]),
        ("inner_product", [1.0, 0.8, 0.6]),
        ("l2", [1.0, 1 / (1 + math.sqrt(0.4)), 1 / (1 + math.sqrt(0.8))]),
    ],
)
async def test_qdrant_scores_are_similarities_for_each_distance(
    qdrant: QdrantBackend, distance: Distance, expected: list[float]
) -> None:
    kb = _kb(distance, kb_id=f"scores-{distance.replace('_', '-')}")
    await qdrant.prepare(kb)
    await qdrant.upsert(kb, DOCS)
    hits = await qdrant.search(kb, SearchQuery(text="", vector=[1.0, 0.0, 0.0], top_k=3))
    assert [hit.id for hit in hits] == ["a/1", "c-3", "e-5"]
    assert [hit.score for hit in hits] == pytest.approx(expected, abs=1e-6)
    between = (expected[1] + expected[2]) / 2
    threshold = SearchQuery(text="", vector=[1.0, 0.0, 0.0], top_k=5, similarity_threshold=between)
    assert [hit.id for hit in await qdrant.search(kb, threshold)] == ["a/1", "c-3"]


async def test_qdrant_keyword_ranks_by_terms_and_hybrid_fuses_both_rankings(
    qdrant: QdrantBackend,
) -> None:
    kb = _kb(kb_id="keyword-kb")
    await qdrant.prepare(kb)
    await qdrant.upsert(kb, DOCS)
    keyword = await qdrant.search(
        kb, SearchQuery(text="refund billing", vector=None, top_k=5, mode="keyword")
    )
    assert keyword[0].id == "c-3"  # the only one with both terms (no stemming: not "Refunds")
    assert {hit.id for hit in keyword} == {"a/1", "c-3", "e-5"}  # no term: no hit
    assert all(0 < hit.score < 1 for hit in keyword)
    query = SearchQuery(text="password", vector=[0.0, 0.1, 1.0], top_k=3, mode="hybrid")
    hybrid = await qdrant.search(kb, query)
    # Vector ranking d-4, e-5, b 2, c-3, a/1; keyword ranking: b 2 alone.
    fused = reciprocal_rank_fusion([["d-4", "e-5", "b 2", "c-3", "a/1"], ["b 2"]])
    assert [hit.id for hit in hybrid] == ["b 2", "d-4", "e-5"]
    assert [hit.score for hit in hybrid] == pytest.approx(
        [fused["b 2"], fused["d-4"], fused["e-5"]]
    )
    # A threshold keeps only documents whose vector similarity reaches it, in both legs.
    strict = await qdrant.search(kb, dataclasses.replace(query, similarity_threshold=0.5))
    assert [hit.id for hit in strict] == ["d-4", "e-5"]
    billing = parse_filter({"field": "category", "operator": "eq", "value": "account"})
    filtered = await qdrant.search(
        kb,
        SearchQuery(
            text="password", vector=[1.0, 0.0, 0.0], top_k=3, mode="hybrid", filter=billing
        ),
    )
    assert [hit.id for hit in filtered] == ["b 2"]


async def test_qdrant_refuses_a_collection_of_another_shape_and_wrong_dimensions(
    qdrant: QdrantBackend,
) -> None:
    await qdrant.prepare(_kb("cosine", kb_id="shape-kb"))
    with pytest.raises(GatewayError) as caught:
        await qdrant.prepare(_kb("l2", kb_id="shape-kb"))
    assert caught.value.status_code == 409
    bad = EmbeddedDocument(id="x", content="x", metadata={}, embedding=[1.0, 0.0])
    with pytest.raises(InvalidRequestError):
        await qdrant.upsert(_kb(kb_id="shape-kb"), [bad])


async def test_qdrant_local_mode_persists_in_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "qdrant"
    first = QdrantBackend(CredentialResolver(), local_location=str(folder))
    await first.prepare(_kb(kb_id="persisted"))
    await first.upsert(_kb(kb_id="persisted"), DOCS[:2])
    await first.close()
    second = QdrantBackend(CredentialResolver(), local_location=str(folder))
    try:
        stored = await second.get(_kb(kb_id="persisted"), "b 2")
        assert stored is not None and stored.content == DOCS[1].content
    finally:
        await second.close()


# --- Bedrock -----------------------------------------------------------------------------

CHUNKS = [
    Chunk(
        "Refunds for billing errors take five days.",
        "s3://docs/billing/refunds.md",
        {"category": "billing", "year": 2023},
    ),
    Chunk(
        "Reset your password on the account page.",
        "s3://docs/account/password.md",
        {"category": "account", "year": 2024},
    ),
    Chunk(
        "Billing invoices list each line item.",
        "s3://docs/billing/invoices.md",
        {"category": "billing", "year": 2024},
    ),
    Chunk(
        "The office closes on public holidays.",
        "s3://docs/office/holidays.txt",
        {"title": "holidays.txt"},
    ),
]


@pytest.fixture
async def fake_kb() -> AsyncIterator[FakeBedrockAgentRuntime]:
    async with FakeBedrockAgentRuntime(access_key_id=AWS_KEY_ID, region=REGION) as fake:
        fake.add(BEDROCK_KB, *CHUNKS)
        fake.add(
            "KBMANY0001",
            *(Chunk(f"note number {i}", f"s3://many/{i:03}.txt", {"n": i}) for i in range(150)),
        )
        yield fake


def _bedrock_kb(fake: FakeBedrockAgentRuntime, kb_id: str = BEDROCK_KB) -> KnowledgeBaseRef:
    backend = BedrockBackendConfig(
        knowledge_base_id=kb_id,
        region=REGION,
        endpoint_url=fake.base_url,
        credential=CredentialRef(source="env", name=AWS_ENV),
    )
    return KnowledgeBaseRef(id="bedrock-kb", dimensions=1024, distance="cosine", backend=backend)


def _bedrock_backend(key_id: str = AWS_KEY_ID) -> BedrockKnowledgeBackend:
    environ = {AWS_ENV: f'{{"access_key_id": "{key_id}", "secret_access_key": "kb-secret"}}'}
    return BedrockKnowledgeBackend(CredentialResolver({"env": EnvCredentialSource(environ)}))


def _boto3_client(fake: FakeBedrockAgentRuntime, key_id: str = AWS_KEY_ID) -> Any:
    return boto3.client(
        "bedrock-agent-runtime",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        region_name=REGION,
        endpoint_url=fake.base_url,
        aws_access_key_id=key_id,
        aws_secret_access_key="kb-secret",
    )


async def test_boto3_reads_the_fake_retrieve_answer_its_filters_and_pages(
    fake_kb: FakeBedrockAgentRuntime,
) -> None:
    client = _boto3_client(fake_kb)
    config = {
        "vectorSearchConfiguration": {
            "numberOfResults": 2,
            "overrideSearchType": "HYBRID",
            "filter": {"equals": {"key": "category", "value": "billing"}},
        }
    }
    answer = await asyncio.to_thread(
        client.retrieve,
        knowledgeBaseId=BEDROCK_KB,
        retrievalQuery={"text": "billing refunds"},
        retrievalConfiguration=config,
    )
    results = answer["retrievalResults"]
    assert [r["location"]["s3Location"]["uri"] for r in results] == [
        "s3://docs/billing/refunds.md",
        "s3://docs/billing/invoices.md",
    ]
    assert results[0]["score"] >= results[1]["score"] and results[0]["content"]["type"] == "TEXT"
    assert (
        results[0]["metadata"]["category"] == "billing" and results[0]["metadata"]["year"] == 2023
    )
    assert fake_kb.requests[-1].path == f"/knowledgebases/{BEDROCK_KB}/retrieve"
    assert fake_kb.requests[-1].body["retrievalConfiguration"] == config
    many = {"vectorSearchConfiguration": {"numberOfResults": 100}}
    page = await asyncio.to_thread(
        client.retrieve,
        knowledgeBaseId="KBMANY0001",
        retrievalQuery={"text": "note"},
        retrievalConfiguration=many,
    )
    assert len(page["retrievalResults"]) == 100 and page["nextToken"]
    rest = await asyncio.to_thread(
        client.retrieve,
        knowledgeBaseId="KBMANY0001",
        retrievalQuery={"text": "note"},
        retrievalConfiguration=many,
        nextToken=page["nextToken"],
    )
    assert len(rest["retrievalResults"]) == 50 and "nextToken" not in rest


async def test_boto3_sees_the_fake_retrieve_errors_as_the_real_ones(
    fake_kb: FakeBedrockAgentRuntime,
) -> None:
    async def code_of(client: Any, kb_id: str, **config: Any) -> str:
        with pytest.raises(ClientError) as caught:
            await asyncio.to_thread(
                client.retrieve,
                knowledgeBaseId=kb_id,
                retrievalQuery={"text": "x"},
                retrievalConfiguration={
                    "vectorSearchConfiguration": config or {"numberOfResults": 1}
                },
            )
        return str(caught.value.response["Error"]["Code"])

    client = _boto3_client(fake_kb)
    assert await code_of(client, "KBMISSING1") == "ResourceNotFoundException"
    assert (
        await code_of(_boto3_client(fake_kb, "AKIAWRONG"), BEDROCK_KB)
        == "UnrecognizedClientException"
    )
    assert await code_of(client, BEDROCK_KB, numberOfResults=500) == "ValidationException"
    fake_kb.enqueue(Scenario(status=429, error_message="Too many requests"))
    assert await code_of(client, BEDROCK_KB) == "ThrottlingException"


async def test_bedrock_search_maps_modes_filters_scores_and_ids(
    fake_kb: FakeBedrockAgentRuntime,
) -> None:
    backend, kb = _bedrock_backend(), _bedrock_kb(fake_kb)
    billing = parse_filter({"field": "category", "operator": "eq", "value": "billing"})
    hits = await backend.search(
        kb, SearchQuery(text="billing refunds", vector=None, top_k=5, filter=billing)
    )
    assert [hit.id for hit in hits] == [
        "s3://docs/billing/refunds.md",
        "s3://docs/billing/invoices.md",
    ]
    assert hits[0].score >= hits[1].score and hits[0].content == CHUNKS[0].text
    assert hits[0].metadata["category"] == "billing"
    search = fake_kb.requests[-1].body["retrievalConfiguration"]["vectorSearchConfiguration"]
    assert search["overrideSearchType"] == "SEMANTIC" and "filter" in search
    await backend.search(kb, SearchQuery(text="billing", vector=None, mode="hybrid"))
    search = fake_kb.requests[-1].body["retrievalConfiguration"]["vectorSearchConfiguration"]
    assert search == {"numberOfResults": 5, "overrideSearchType": "HYBRID"}
    with pytest.raises(InvalidRequestError) as caught:
        await backend.search(kb, SearchQuery(text="billing", vector=None, mode="keyword"))
    assert "bedrock" in caught.value.message and caught.value.param == "mode"
    above = await backend.search(
        kb,
        SearchQuery(
            text="billing refunds", vector=None, top_k=5, similarity_threshold=hits[1].score
        ),
    )
    assert all(hit.score >= hits[1].score for hit in above) and hits[0].id in {h.id for h in above}
    backend.close()


@pytest.mark.parametrize(
    "raw",
    [
        {"field": "title", "operator": "endsWith", "value": ".txt"},
        {"field": "year", "operator": "notExists"},
        {
            "connector": "or",
            "filters": [
                {"field": "category", "operator": "eq", "value": "account"},
                {"field": "year", "operator": "lt", "value": 2024},
            ],
        },
    ],
    ids=lambda raw: str(raw)[:50],
)
async def test_bedrock_filters_match_the_plain_python_evaluation(
    fake_kb: FakeBedrockAgentRuntime, raw: dict[str, Any]
) -> None:
    backend, kb = _bedrock_backend(), _bedrock_kb(fake_kb)
    condition = parse_filter(raw)
    expected = sorted(c.uri for c in CHUNKS if matches(condition, c.attributes()))
    hits = await backend.search(
        kb, SearchQuery(text="the", vector=None, top_k=10, filter=condition)
    )
    assert sorted(hit.id for hit in hits) == expected
    backend.close()


async def test_bedrock_pages_past_100_results_with_next_token(
    fake_kb: FakeBedrockAgentRuntime,
) -> None:
    backend, kb = _bedrock_backend(), _bedrock_kb(fake_kb, "KBMANY0001")
    hits = await backend.search(kb, SearchQuery(text="note", vector=None, top_k=120))
    assert len(hits) == 120 and len({hit.id for hit in hits}) == 120
    numbers = [
        r.body["retrievalConfiguration"]["vectorSearchConfiguration"]["numberOfResults"]
        for r in fake_kb.requests
    ]
    assert numbers == [100, 20] and "nextToken" in fake_kb.requests[-1].body
    backend.close()


async def test_bedrock_is_read_only_and_health_calls_retrieve(
    fake_kb: FakeBedrockAgentRuntime,
) -> None:
    backend, kb = _bedrock_backend(), _bedrock_kb(fake_kb)
    doc = EmbeddedDocument(id="x", content="x", metadata={}, embedding=[0.0])
    writes = [
        backend.upsert(kb, [doc]),
        backend.get(kb, "x"),
        backend.list(kb, filter=None, limit=10, after=None),
        backend.delete(kb, ["x"]),
        backend.delete_matching(kb, parse_filter({"field": "a", "operator": "exists"})),
    ]
    for write in writes:
        with pytest.raises(MethodNotAllowedError) as caught:
            await write
        assert caught.value.status_code == 405 and "S3" in caught.value.message
    await backend.prepare(kb)  # nothing to create
    assert (await backend.health(kb)).status == "up"
    missing = await backend.health(_bedrock_kb(fake_kb, "KBMISSING1"))
    assert missing.status == "down" and "ResourceNotFoundException" in (missing.error or "")
    wrong = _bedrock_backend("AKIAWRONG")
    down = await wrong.health(kb)
    assert down.status == "down" and "kb-secret" not in (down.error or "")
    backend.close()
    wrong.close()


# --- Through the gateway's routes ------------------------------------------------------


async def _admin_post(gateway: Gateway, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await gateway.admin.post(path, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_gateway_serves_a_local_qdrant_and_a_read_only_bedrock_knowledge_base(
    gateway: Gateway, fake_kb: FakeBedrockAgentRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AWS_ENV, f"{AWS_KEY_ID}:kb-secret")
    suffix = uuid.uuid4().hex[:8]
    model = {"provider": "local", "model": "wordllama", "kind": "embedding", "dimensions": 256}
    await _admin_post(gateway, "/admin/models", {"id": f"embed-{suffix}", **model})
    qdrant_kb = f"qdrant-{suffix}"
    await _admin_post(
        gateway,
        "/admin/knowledge-bases",
        {
            "id": qdrant_kb,
            "name": "Q",
            "backend": {"type": "qdrant"},
            "embedding_model_id": f"embed-{suffix}",
            "distance": "cosine",
        },
    )
    documents = [
        {
            "id": "refunds",
            "content": "Refunds are paid back to the card within five days.",
            "metadata": {"category": "billing"},
        },
        {
            "id": "password",
            "content": "Reset a forgotten password from the login page.",
            "metadata": {"category": "account"},
        },
        {
            "id": "invoice",
            "content": "Every invoice lists the billed line items.",
            "metadata": {"category": "billing", "file": "invoice.pdf"},
        },
    ]
    v1 = f"/v1/knowledge-bases/{qdrant_kb}"
    added = await gateway.admin.post(f"{v1}/documents", json={"documents": documents})
    assert added.status_code == 200, added.text
    search = await gateway.admin.post(
        f"{v1}/search",
        json={
            "query": "money back on my card",
            "top_k": 1,
            "filter": {"field": "file", "operator": "notExists"},
        },
    )
    assert search.status_code == 200, search.text
    assert [hit["id"] for hit in search.json()["data"]] == ["refunds"]
    fetched = await gateway.admin.get(f"{v1}/documents/password")
    assert fetched.json()["metadata"] == {"category": "account"}
    deleted = await gateway.admin.request(
        "DELETE",
        f"{v1}/documents",
        json={"filter": {"field": "file", "operator": "endsWith", "value": ".pdf"}},
    )
    assert deleted.json()["deleted"] == 1
    detail = (await gateway.admin.get(f"/admin/knowledge-bases/{qdrant_kb}")).json()
    assert detail["document_count"] == 2 and detail["backend_health"]["status"] == "up"

    bedrock_kb = f"bedrock-{suffix}"
    backend = {
        "type": "bedrock",
        "knowledge_base_id": BEDROCK_KB,
        "region": REGION,
        "endpoint_url": fake_kb.base_url,
        "credential": {"source": "env", "name": AWS_ENV},
    }
    await _admin_post(
        gateway,
        "/admin/knowledge-bases",
        {
            "id": bedrock_kb,
            "name": "B",
            "backend": backend,
            "embedding_model_id": f"embed-{suffix}",
        },
    )
    v1 = f"/v1/knowledge-bases/{bedrock_kb}"
    found = await gateway.admin.post(
        f"{v1}/search",
        json={
            "query": "billing refunds",
            "top_k": 2,
            "mode": "hybrid",
            "filter": {"field": "category", "operator": "eq", "value": "billing"},
        },
    )
    assert found.status_code == 200, found.text
    assert [hit["id"] for hit in found.json()["data"]] == [
        "s3://docs/billing/refunds.md",
        "s3://docs/billing/invoices.md",
    ]
    write = await gateway.admin.post(f"{v1}/documents", json={"documents": documents[:1]})
    assert write.status_code == 405 and "S3" in write.json()["error"]["message"]
    removal = await gateway.admin.delete(f"{v1}/documents/s3-doc")
    assert removal.status_code == 405
    detail = (await gateway.admin.get(f"/admin/knowledge-bases/{bedrock_kb}")).json()
    assert detail["document_count"] is None and detail["backend_health"]["status"] == "up"
    keyword = await gateway.admin.post(f"{v1}/search", json={"query": "x", "mode": "keyword"})
    assert keyword.status_code == 400 and keyword.json()["error"]["param"] == "mode"
