"""Workflow definitions through /admin/workflows on the real gateway: CRUD, history, checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.issue_examples import ANSWER_WITH_CONTEXT as EXAMPLE

EMBED_MODEL = {
    "id": "local-embed",
    "provider": "local",
    "model": "wordllama",
    "kind": "embedding",
    "dimensions": 256,
}
KB = {"id": "product-docs", "name": "Product docs", "embedding_model_id": "local-embed"}


@pytest.fixture
async def named(gateway: Gateway) -> Gateway:
    """The gateway with the model `gpt-4` and the knowledge base `product-docs`."""
    for path, body in (
        ("/admin/models", {"id": "gpt-4", "provider": "openai", "model": "gpt-4"}),
        ("/admin/models", EMBED_MODEL),
        ("/admin/knowledge-bases", KB),
    ):
        created = await gateway.admin.post(path, json=body)
        assert created.status_code == 201, created.text
    return gateway


async def test_the_issue_example_saves_as_written_and_reads_back(named: Gateway) -> None:
    created = await named.admin.post("/admin/workflows", json=EXAMPLE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == "answer-with-context" and body["version"] == 1
    assert body["max_steps"] == 100 and body["steps"][2]["threshold"] == 0.5
    read = await named.admin.get("/admin/workflows/answer-with-context")
    assert read.json() == body
    listed = await named.admin.get("/admin/workflows")
    assert [item["id"] for item in listed.json()["data"]] == ["answer-with-context"]


async def test_updates_keep_versions_and_revert_restores_one(named: Gateway) -> None:
    await named.admin.post("/admin/workflows", json=EXAMPLE)
    read = (await named.admin.get("/admin/workflows/answer-with-context")).json()
    read["steps"][0]["top_k"] = 3  # read, edit, PUT the document GET answered
    updated = await named.admin.put(
        "/admin/workflows/answer-with-context", json=read, headers={"if-match": "1"}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2 and updated.json()["steps"][0]["top_k"] == 3
    stale = await named.admin.put(
        "/admin/workflows/answer-with-context", json=read, headers={"if-match": "1"}
    )
    assert stale.status_code == 409
    versions = (await named.admin.get("/admin/workflows/answer-with-context/versions")).json()
    assert [v["version"] for v in versions["data"]] == [2, 1]
    reverted = await named.admin.post(
        "/admin/workflows/answer-with-context/revert", json={"version": 1}
    )
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["version"] == 3 and reverted.json()["steps"][0]["top_k"] == 10
    deleted = await named.admin.delete("/admin/workflows/answer-with-context")
    assert deleted.json() == {"id": "answer-with-context", "object": "workflow", "deleted": True}
    gone = await named.admin.get("/admin/workflows/answer-with-context")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "workflow_not_found"


def _error(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


async def test_structural_problems_come_back_in_one_400(named: Gateway) -> None:
    broken = copy.deepcopy(EXAMPLE)
    broken["steps"][0]["zzz"] = 1
    broken["steps"][1]["default_action"] = {"go_to_step": "nowhere"}
    broken["steps"][3]["user_message"] = "${step:later:content}"
    error = _error(await named.admin.post("/admin/workflows", json=broken))
    assert error["code"] == "invalid_workflow" and error["param"] == "steps[0].zzz"
    assert len(error["message"].split("; ")) == 3, error["message"]


async def test_unknown_models_knowledge_bases_and_prompts_are_all_named(gateway: Gateway) -> None:
    # Nothing exists here: every id the definition names is reported, with its path.
    body = copy.deepcopy(EXAMPLE)
    body["steps"][3]["prompt_id"] = "no-prompt"
    error = _error(await gateway.admin.post("/admin/workflows", json=body))
    assert error["code"] == "invalid_workflow"
    parts = error["message"].split("; ")
    assert parts == [
        "steps[3].model_id: model 'gpt-4' does not exist (no model or chain has this id)",
        "steps[0].knowledge_base_id: knowledge base 'product-docs' does not exist",
        "steps[3].prompt_id: prompt 'no-prompt' does not exist",
    ]
    assert error["param"] == "steps[3].model_id"


async def test_an_embedding_model_cannot_answer_a_chat_step(named: Gateway) -> None:
    body = copy.deepcopy(EXAMPLE)
    body["steps"][3]["model_id"] = "local-embed"
    error = _error(await named.admin.post("/admin/workflows", json=body))
    assert "is an embedding model" in error["message"]


async def test_an_update_is_checked_like_a_create(named: Gateway) -> None:
    await named.admin.post("/admin/workflows", json=EXAMPLE)
    body = {k: v for k, v in copy.deepcopy(EXAMPLE).items() if k != "id"}
    body["steps"][2]["name"] = "search"
    error = _error(await named.admin.put("/admin/workflows/answer-with-context", json=body))
    assert error["param"] == "steps[2].name"
    body["input_schema"] = {"type": "objekt"}
    body["steps"][2]["name"] = "score"
    error = _error(await named.admin.put("/admin/workflows/answer-with-context", json=body))
    assert error["param"] == "input_schema.type"
