"""Replay scenarios of UserWorkflow: one run per group of step types and per way a run ends.

Driven through HTTP like every scenario in tests/replay_scenarios.py (which lists these in
SCENARIOS); each returns the ended run's history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio.client import WorkflowHistory

from tests.fakes.openai_upstream import Scenario

if TYPE_CHECKING:
    from tests.replay_scenarios import Rig

LOCAL_EMBED = {"provider": "local", "model": "wordllama", "kind": "embedding", "dimensions": 256}
DOCS = [
    {"id": "refunds", "content": "Refunds are paid back to the original card within five days."},
    {"id": "policy", "content": "Our refund policy covers damaged goods."},
    {"id": "invoices", "content": "Invoices are emailed as PDF files at the start of each month."},
]


def _chat(name: str, message: str, **fields: Any) -> dict[str, Any]:
    step = {"name": name, "type": "chat_completion", "model_id": "m", "user_message": message}
    return {**step, **fields}


async def _save(rig: Rig, definition: dict[str, Any]) -> None:
    created = await rig.gateway.admin.post("/admin/workflows", json=definition)
    assert created.status_code == 201, created.text


async def _run(rig: Rig, workflow_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = await rig.gateway.admin.post(
        f"/v1/workflows/{workflow_id}/execute", json={"input": payload}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _start(rig: Rig, workflow_id: str) -> str:
    response = await rig.gateway.admin.post(
        f"/v1/workflows/{workflow_id}/execute?async=true", json={"input": {}}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["operation_id"])


async def _paused(rig: Rig, operation_id: str) -> None:
    from tests.replay_scenarios import _eventually

    async def waiting() -> bool:
        document = (await rig.gateway.admin.get(f"/v1/operations/{operation_id}")).json()
        return bool((document.get("progress") or {}).get("waiting_for_input"))

    await _eventually(waiting, f"{operation_id} paused for input")


async def userflow_rag(rig: Rig) -> WorkflowHistory:
    """knowledge_base_search, conditional, crag_scoring (hybrid, judge children), chat."""
    await rig.gateway.add_model("m", rig.primary)
    for body in (
        {"id": "emb", **LOCAL_EMBED},
        {"id": "kb", "name": "kb", "embedding_model_id": "emb"},
    ):
        path = "/admin/models" if "provider" in body else "/admin/knowledge-bases"
        assert (await rig.gateway.admin.post(path, json=body)).status_code == 201
    added = await rig.gateway.admin.post(
        "/v1/knowledge-bases/kb/documents", json={"documents": DOCS}
    )
    assert added.status_code == 200, added.text
    steps = [
        {"name": "search", "type": "knowledge_base_search", "knowledge_base_id": "kb",
         "query": "${request:question}"},
        {"name": "check", "type": "conditional",
         "conditions": [{"field": "${step:search:documents}", "operator": "is_empty",
                         "action": {"end_workflow": {"answer": "none"}}}]},
        {"name": "score", "type": "crag_scoring", "input_documents": "${step:search:documents}",
         "query": "${request:question}", "threshold": 0.5, "strategy": "hybrid", "model_id": "m"},
        _chat("answer", "${request:question}\n${step:score:correct_documents}"),
    ]  # fmt: skip
    await _save(rig, {"id": "rag", "name": "rag", "steps": steps})
    rig.primary.enqueue(Scenario(content='{"score": 0.9, "classification": "correct"}'))
    run = await _run(rig, "rag", {"question": "How long do refunds take?"})
    assert [step["name"] for step in run["steps"]] == ["search", "check", "score", "answer"]
    judged = [r for r in rig.primary.requests if "Document:" in str(r.body.get("messages"))]
    assert len(judged) == 1, "exactly the policy document is in the ambiguous band"
    return await rig.history(run["run_id"])


async def userflow_branches(rig: Rig) -> WorkflowHistory:
    """parallel, for_each, http_request, on_error skip, and a go_to_step jump."""
    await rig.gateway.add_model("m", rig.primary)
    await rig.gateway.add_model("broken", rig.backup)
    rig.backup.enqueue(Scenario(status=400))
    steps = [
        {"name": "jump", "type": "conditional",
         "conditions": [{"field": "${request:skip}", "operator": "eq", "value": True,
                         "action": {"go_to_step": "fan-out"}}]},
        _chat("skipped-by-jump", "never"),
        {"name": "fan-out", "type": "parallel",
         "branches": {"a": [_chat("a-chat", "a")], "b": [_chat("b-chat", "b")]}},
        {"name": "each", "type": "for_each", "items": "${request:items}", "concurrency": 2,
         "steps": [_chat("item", "item ${step:each:item}")]},
        {"name": "notify", "type": "http_request", "method": "POST", "url": rig.receiver.url(),
         "body": {"done": "${step:each:results}"}},
        _chat("flaky", "fails", model_id="broken", on_error="skip"),
    ]  # fmt: skip
    await _save(rig, {"id": "branches", "name": "branches", "steps": steps})
    run = await _run(rig, "branches", {"skip": True, "items": ["x", "y"]})
    statuses = {step["name"]: step["status"] for step in run["steps"]}
    assert "skipped-by-jump" not in statuses and statuses["flaky"] == "skipped"
    assert statuses["notify"] == "completed" and len(rig.receiver.delivered) == 1
    return await rig.history(run["run_id"])


async def userflow_wait_input(rig: Rig) -> WorkflowHistory:
    """wait_for_input resumed by the input endpoint, then one that times out and goes on."""
    schema = {"type": "object", "required": ["ok"]}
    steps = [
        {"name": "ask", "type": "wait_for_input", "input_schema": schema},
        {"name": "again", "type": "wait_for_input", "timeout_s": 1, "on_timeout": "continue"},
    ]
    await _save(rig, {"id": "ask", "name": "ask", "steps": steps})
    operation_id = await _start(rig, "ask")
    await _paused(rig, operation_id)
    url = f"/v1/operations/{operation_id}/input"
    delivered = await rig.gateway.admin.post(url, json={"input": {"ok": True}})
    assert delivered.status_code == 200, delivered.text
    return await rig.history(operation_id)


async def userflow_loop_bound(rig: Rig) -> WorkflowHistory:
    """A go_to_step loop stopped by max_steps: the run fails."""
    loop = {"name": "again", "type": "conditional",
            "conditions": [{"field": "${request:n:1}", "operator": "gt", "value": 0,
                            "action": {"go_to_step": "again"}}]}  # fmt: skip
    await _save(rig, {"id": "loop", "name": "loop", "max_steps": 3, "steps": [loop]})
    response = await rig.gateway.admin.post("/v1/workflows/loop/execute", json={"input": {}})
    assert response.status_code == 400, response.text
    return await rig.history(response.headers["x-pmp-run-id"])


async def userflow_cancelled(rig: Rig) -> WorkflowHistory:
    """A run cancelled while it waits for input."""
    await _save(
        rig, {"id": "idle", "name": "idle", "steps": [{"name": "w", "type": "wait_for_input"}]}
    )
    operation_id = await _start(rig, "idle")
    await _paused(rig, operation_id)
    cancelled = await rig.gateway.admin.delete(f"/v1/operations/{operation_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    return await rig.history(operation_id)


USERFLOW_SCENARIOS = (
    userflow_rag,
    userflow_branches,
    userflow_wait_input,
    userflow_loop_bound,
    userflow_cancelled,
)
