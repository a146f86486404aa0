"""POST /v1/crag/score through the real gateway: every strategy, the knowledge-base form,
permissions and validation.

The judge is a model on the loopback OpenAI upstream, scripted per call. Judge calls run
concurrently, so which document got which scripted reply is read back from the requests
the upstream recorded (the n-th request received the n-th reply).
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway_core.config import Settings
from tests.conftest import Gateway, key_client, openai_error, running_gateway
from tests.fakes.openai_upstream import FakeOpenAI, Scenario
from tests.issue_examples import LOCAL_EMBED_MODEL as LOCAL_EMBED
from tests.issue_examples import PRODUCT_DOCS_KB as KB

SCORE = "/v1/crag/score"
QUERY = "How long do refunds take?"
DOCS = [
    {"id": "refunds", "content": "Refunds are paid back to the original card within five days."},
    {"id": "shipping", "content": "Parcels ship from our warehouse and arrive in three days."},
    {"id": "invoices", "content": "Invoices are emailed as PDF files at the start of each month."},
    {"id": "password", "content": "Reset your password from the login page with the email link."},
]


@pytest.fixture
async def judged(gateway: Gateway, upstream: FakeOpenAI) -> Gateway:
    await gateway.add_model("judge", upstream)
    return gateway


def _by_id(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups = ("correct_documents", "ambiguous_documents", "incorrect_documents")
    return {doc["id"]: doc for group in groups for doc in result[group]}


def _judged_doc(upstream: FakeOpenAI, index: int) -> str:
    """The id of the document the upstream's `index`-th chat request asked about."""
    shown = upstream.requests[index].body["messages"][-1]["content"]
    return next(doc["id"] for doc in DOCS if doc["content"] in shown)


async def test_threshold_strategy_groups_summarizes_and_sets_crag_flags(judged: Gateway) -> None:
    documents = [{**doc, "score": s} for doc, s in zip(DOCS, (0.91, 0.5, 0.2, -0.3), strict=True)]
    response = await judged.admin.post(
        SCORE, json={"query": QUERY, "documents": documents, "strategy": "threshold"}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["object"] == "crag.result" and result["judge_model"] is None
    assert [d["id"] for d in result["correct_documents"]] == ["refunds"]
    assert [d["id"] for d in result["ambiguous_documents"]] == ["shipping"]
    assert [d["id"] for d in result["incorrect_documents"]] == ["invoices", "password"]
    clamped = result["incorrect_documents"][1]
    assert (clamped["score"], clamped["retrieval_score"]) == (0.0, -0.3)
    assert result["summary"] == {
        "total": 4,
        "correct": 1,
        "ambiguous": 1,
        "incorrect": 2,
        "correct_percentage": 25.0,
        "ambiguous_percentage": 25.0,
        "incorrect_percentage": 50.0,
    }
    assert (result["action"], result["needs_correction"], result["should_try_web_search"]) == (
        "correct",
        False,
        False,
    )
    low = [{**doc, "score": 0.1} for doc in DOCS]
    none_relevant = (await judged.admin.post(SCORE, json={"query": QUERY, "documents": low})).json()
    assert none_relevant["needs_correction"] is True
    assert none_relevant["should_try_web_search"] is True


async def test_llm_strategy_reads_correct_irrelevant_malformed_and_fenced_replies(
    judged: Gateway, upstream: FakeOpenAI
) -> None:
    replies = [
        '{"score": 0.95, "classification": "correct", "reason": "states the refund time"}',
        "Irrelevant: this is about shipping.",
        "As an AI I would rather not say",
        'Sure!\n```json\n{"relevance": 0.5, "label": "ambiguous"}\n```',
    ]
    upstream.enqueue(*(Scenario(content=reply) for reply in replies))
    response = await judged.admin.post(
        SCORE, json={"query": QUERY, "documents": DOCS, "strategy": "llm", "model_id": "judge"}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["judge_model"] == "judge"
    graded = _by_id(result)
    expected = [("correct", 0.95), ("incorrect", 0.0), ("ambiguous", 0.5), ("ambiguous", 0.5)]
    assert len(upstream.requests) == 4
    for index, (classification, score) in enumerate(expected):
        doc = graded[_judged_doc(upstream, index)]
        assert (doc["classification"], doc["score"], doc["scored_by"]) == (
            classification,
            score,
            "llm",
        )
    malformed = graded[_judged_doc(upstream, 2)]
    assert "could not be parsed" in malformed["reason"] and "rather not say" in malformed["reason"]
    assert graded[_judged_doc(upstream, 0)]["reason"] == "states the refund time"
    asked = upstream.requests[0].body["messages"]
    assert asked[0]["role"] == "system" and QUERY in asked[-1]["content"]
    assert result["action"] == "correct"


async def test_hybrid_calls_the_judge_only_for_the_ambiguous_band(
    judged: Gateway, upstream: FakeOpenAI
) -> None:
    documents = [{**doc, "score": s} for doc, s in zip(DOCS, (0.9, 0.5, 0.1, 0.05), strict=True)]
    upstream.enqueue(Scenario(content="not relevant"))
    response = await judged.admin.post(
        SCORE,
        json={
            "query": QUERY,
            "documents": documents,
            "strategy": "hybrid",
            "model_id": "judge",
            "correct_threshold": 0.8,
            "ambiguous_threshold": 0.4,
        },
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert len(upstream.requests) == 1 and _judged_doc(upstream, 0) == "shipping"
    graded = _by_id(result)
    assert graded["shipping"]["classification"] == "incorrect"
    assert graded["shipping"]["scored_by"] == "llm"
    assert graded["refunds"]["scored_by"] == "threshold"
    assert result["summary"]["incorrect"] == 3
    assert (result["correct_threshold"], result["ambiguous_threshold"]) == (0.8, 0.4)


async def test_the_configured_judge_is_the_default_and_a_stored_prompt_is_rendered(
    settings: Settings, upstream: FakeOpenAI
) -> None:
    configured = settings.model_copy(update={"crag_judge_model": "judge"})
    async with running_gateway(configured) as gateway:
        await gateway.add_model("judge", upstream)
        prompt = {
            "id": "strict-grader",
            "name": "Strict grader",
            "content": "Grade strictly.\nQ: ${var:query}\nDOC: ${var:document}\nJSON only.",
        }
        assert (await gateway.admin.post("/admin/prompts", json=prompt)).status_code == 201
        upstream.enqueue(Scenario(content='{"score": 0.8}'))
        response = await gateway.admin.post(
            SCORE,
            json={
                "query": QUERY,
                "documents": [DOCS[0]],
                "strategy": "llm",
                "prompt_id": "strict-grader",
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["judge_model"] == "judge"
        assert response.json()["correct_documents"][0]["score"] == 0.8
        assert upstream.requests[-1].body["messages"] == [
            {
                "role": "user",
                "content": f"Grade strictly.\nQ: {QUERY}\nDOC: {DOCS[0]['content']}\nJSON only.",
            }
        ]


async def test_knowledge_base_form_grades_the_search_hits(
    judged: Gateway, upstream: FakeOpenAI
) -> None:
    assert (await judged.admin.post("/admin/models", json=LOCAL_EMBED)).status_code == 201
    assert (await judged.admin.post("/admin/knowledge-bases", json=KB)).status_code == 201
    added = await judged.admin.post(
        "/v1/knowledge-bases/product-docs/documents", json={"documents": DOCS}
    )
    assert added.status_code == 200, added.text
    search = await judged.admin.post(
        "/v1/knowledge-bases/product-docs/search", json={"query": QUERY, "top_k": 3}
    )
    hits = {hit["id"]: hit["score"] for hit in search.json()["data"]}
    source = {"knowledge_base_id": "product-docs", "top_k": 3}
    threshold = await judged.admin.post(
        SCORE, json={"query": QUERY, "documents": source, "correct_threshold": 0.5}
    )
    assert threshold.status_code == 200, threshold.text
    graded = _by_id(threshold.json())
    assert {doc_id: doc["retrieval_score"] for doc_id, doc in graded.items()} == hits
    for doc in graded.values():
        expected = "correct" if doc["score"] >= 0.5 else "ambiguous"
        assert doc["classification"] == (expected if doc["score"] >= 0.3 else "incorrect")
    filtered = {**source, "filter": {"field": "category", "operator": "eq", "value": "x"}}
    upstream.enqueue(*(Scenario(content="Relevant.") for _ in range(3)))
    judged_kb = await judged.admin.post(
        SCORE, json={"query": QUERY, "documents": source, "strategy": "llm", "model_id": "judge"}
    )
    assert judged_kb.json()["summary"]["correct"] == 3
    assert {_judged_doc(upstream, i) for i in range(3)} == set(hits)
    empty = await judged.admin.post(SCORE, json={"query": QUERY, "documents": filtered})
    assert empty.status_code == 200, empty.text
    assert empty.json()["summary"]["total"] == 0 and empty.json()["should_try_web_search"]


async def test_permissions_are_the_callers(judged: Gateway, upstream: FakeOpenAI) -> None:
    no_models = await key_client(judged, {"knowledge_bases": "all"})
    body = {"query": QUERY, "documents": DOCS, "strategy": "llm", "model_id": "judge"}
    async with no_models:
        error = openai_error(await no_models.post(SCORE, json=body), 403)
        assert error["param"] == "model_id" and error["code"] == "permission_denied"
        kb_source = {"query": QUERY, "documents": {"knowledge_base_id": "product-docs"}}
        only_models = await key_client(judged, {"models": ["judge"]})
        async with only_models:
            assert openai_error(await only_models.post(SCORE, json=kb_source), 403)
            with_prompt = {**body, "prompt_id": "strict-grader"}
            assert openai_error(await only_models.post(SCORE, json=with_prompt), 403)
            upstream.enqueue(*(Scenario(content="correct") for _ in DOCS))
            allowed = await only_models.post(SCORE, json=body)
            assert allowed.status_code == 200, allowed.text
    assert len(upstream.requests) == len(DOCS)  # the refused requests called no judge


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"correct_threshold": 0.4, "ambiguous_threshold": 0.6}, "ambiguous_threshold", None),
        ({"documents": [{"content": "no score"}]}, "documents[0].score", None),
        ({"strategy": "llm"}, "model_id", "judge_model_required"),
        ({"strategy": "hybrid"}, "model_id", "judge_model_required"),
        ({"strategy": "sideways"}, None, None),
        ({"documents": [{"content": ""}]}, None, None),
        ({"documents": {"top_k": 3}}, None, None),
        ({"surprise": True}, None, None),
    ],
)
async def test_invalid_requests_are_400_in_openai_format(
    gateway: Gateway, body: dict[str, Any], param: str | None, code: str | None
) -> None:
    request = {"query": QUERY, "documents": [{"content": "x", "score": 0.5}], **body}
    error = openai_error(await gateway.admin.post(SCORE, json=request), 400)
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code


async def test_unknown_judge_prompt_and_knowledge_base_are_404(judged: Gateway) -> None:
    base = {"query": QUERY, "documents": DOCS, "strategy": "llm"}
    model = openai_error(await judged.admin.post(SCORE, json={**base, "model_id": "nope"}), 404)
    assert model["param"] == "model_id"
    prompt = {**base, "model_id": "judge", "prompt_id": "nope"}
    assert openai_error(await judged.admin.post(SCORE, json=prompt), 404)["param"] == "prompt_id"
    kb = {"query": QUERY, "documents": {"knowledge_base_id": "nope"}}
    assert openai_error(await judged.admin.post(SCORE, json=kb), 404)["code"] == (
        "knowledge_base_not_found"
    )


async def test_scoring_is_rate_limited(gateway: Gateway) -> None:
    limited = await key_client(gateway, {}, requests_per_minute=1)
    body = {"query": QUERY, "documents": [{"content": "x", "score": 0.9}]}
    async with limited:
        first = await limited.post(SCORE, json=body)
        assert first.status_code == 200, first.text
        assert first.headers["x-ratelimit-limit-requests"] == "1"
        error = openai_error(await limited.post(SCORE, json=body), 429)
        assert error["code"] == "rate_limit_exceeded"


async def test_a_judge_chain_falls_back_and_a_refusing_judge_fails_the_request(
    judged: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await judged.add_model("judge-backup", backup)
    chain = {
        "id": "judges",
        "name": "Judges",
        "steps": [
            {"model_id": "judge", "max_retries": 0, "max_latency_ms": 5000},
            {"model_id": "judge-backup", "max_retries": 0, "max_latency_ms": 5000},
        ],
    }
    assert (await judged.admin.post("/admin/chains", json=chain)).status_code == 201
    upstream.enqueue(Scenario(status=500))
    backup.enqueue(Scenario(content='{"score": 0.9, "label": "correct"}'))
    body = {"query": QUERY, "documents": [DOCS[0]], "strategy": "llm", "model_id": "judges"}
    response = await judged.admin.post(SCORE, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["correct_documents"][0]["id"] == "refunds"
    assert len(upstream.requests) == 1 and len(backup.requests) == 1
    upstream.enqueue(Scenario(status=400, error_message="bad judge request"))
    refused = await judged.admin.post(SCORE, json={**body, "model_id": "judge"})
    assert "bad judge request" in openai_error(refused, 400)["message"]
