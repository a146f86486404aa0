"""Executing user-defined workflows through the real gateway, step type by step type.

The chat upstream is the loopback OpenAI fake (every chat step and CRAG judge call is a
request it records); the knowledge base is pgvector with the in-process local embedder.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway_core.config import Settings
from gateway_core.crag.models import DEFAULT_AMBIGUOUS_THRESHOLD
from tests.conftest import (
    Gateway,
    api_only,
    key_client,
    openai_error,
    running_gateway,
    start_worker_process,
)
from tests.fakes.loopback import LoopbackServer
from tests.fakes.openai_upstream import FakeOpenAI, Scenario
from tests.issue_examples import ANSWER_WITH_CONTEXT
from tests.issue_examples import LOCAL_EMBED_MODEL as LOCAL_EMBED
from tests.issue_examples import PRODUCT_DOCS_KB as KB

QUESTION = "How long do refunds take?"
DOCS = [
    {"id": "refunds", "content": "Refunds are paid back to the original card within five days."},
    {"id": "shipping", "content": "Parcels ship from our warehouse and arrive in three days."},
    {"id": "invoices", "content": "Invoices are emailed as PDF files at the start of each month."},
    # In the hybrid example's ambiguous band (similarity ~0.42): the judge grades it.
    {"id": "policy", "content": "Our refund policy covers damaged goods."},
]


@pytest.fixture
async def rag(settings: Settings, upstream: FakeOpenAI) -> AsyncIterator[Gateway]:
    """A gateway with `gpt-4` on the fake upstream, PMP_CRAG_JUDGE_MODEL=gpt-4 and the
    `product-docs` knowledge base holding DOCS."""
    configured = settings.model_copy(update={"crag_judge_model": "gpt-4"})
    async with running_gateway(configured) as gateway:
        await gateway.add_model("gpt-4", upstream)
        assert (await gateway.admin.post("/admin/models", json=LOCAL_EMBED)).status_code == 201
        assert (await gateway.admin.post("/admin/knowledge-bases", json=KB)).status_code == 201
        added = await gateway.admin.post(
            "/v1/knowledge-bases/product-docs/documents", json={"documents": DOCS}
        )
        assert added.status_code == 200, added.text
        yield gateway


async def save(gateway: Gateway, definition: dict[str, Any]) -> None:
    response = await gateway.admin.post("/admin/workflows", json=definition)
    assert response.status_code == 201, response.text


async def execute(
    client: httpx.AsyncClient, workflow_id: str, payload: dict[str, Any], **params: str
) -> httpx.Response:
    return await client.post(
        f"/v1/workflows/{workflow_id}/execute", json={"input": payload}, params=params
    )


CORRECT = '{"score": 0.9, "classification": "correct", "reason": "on topic"}'


async def judge_band(gateway: Gateway, question: str = QUESTION) -> list[str]:
    """Ids of the hits the example's hybrid scoring sends to the judge (ambiguous band)."""
    search = await gateway.admin.post(
        "/v1/knowledge-bases/product-docs/search", json={"query": question, "top_k": 10}
    )
    lower = min(DEFAULT_AMBIGUOUS_THRESHOLD, 0.5)
    return [hit["id"] for hit in search.json()["data"] if lower <= hit["score"] < 0.5]


def chat_requests(upstream: FakeOpenAI) -> list[dict[str, Any]]:
    return [r.body for r in upstream.requests if r.path.endswith("/chat/completions")]


async def test_the_issue_example_runs_synchronously_end_to_end(
    rag: Gateway, upstream: FakeOpenAI
) -> None:
    await save(rag, ANSWER_WITH_CONTEXT)
    judged = await judge_band(rag)
    assert judged, "the example must exercise the hybrid judge"
    upstream.enqueue(*(Scenario(content=CORRECT) for _ in judged))
    response = await execute(rag.admin, "answer-with-context", {"question": QUESTION})
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["workflow_id"] == "answer-with-context" and run["version"] == 1
    assert run["status"] == "completed" and run["run_id"].startswith("wf-")
    assert [(s["name"], s["status"]) for s in run["steps"]] == [
        ("search", "completed"),
        ("check-results", "completed"),
        ("score", "completed"),
        ("answer", "completed"),
    ]
    assert all(isinstance(step["duration_ms"], int) for step in run["steps"])
    assert run["steps"][0]["output"]["count"] == len(DOCS)
    score = run["steps"][2]["output"]
    assert {d["id"] for d in score["correct_documents"]} >= set(judged)
    requests = chat_requests(upstream)
    assert len(requests) == len(judged) + 1  # one judge call per ambiguous hit, one answer
    prompt = requests[-1]["messages"][-1]["content"]
    assert prompt.startswith(f"Question: {QUESTION}\n\nContext:\n")
    for doc in score["correct_documents"]:
        assert doc["content"] in prompt
    assert run["output"]["content"] == f"echo: {prompt}"


async def operation(client: httpx.AsyncClient, operation_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/operations/{operation_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def until(
    client: httpx.AsyncClient, operation_id: str, holds: Any, timeout_s: float = 60
) -> dict[str, Any]:
    """Poll the operation until `holds(document)`; fail after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            document = await operation(client, operation_id)
            if holds(document):
                return document
            await asyncio.sleep(0.05)


def ended(document: dict[str, Any]) -> bool:
    return document["status"] in ("completed", "failed", "cancelled")


def current_steps(document: dict[str, Any]) -> list[str]:
    return list((document.get("progress") or {}).get("current_steps") or [])


async def test_the_issue_example_runs_as_an_operation_showing_its_current_step(
    rag: Gateway, upstream: FakeOpenAI
) -> None:
    await save(rag, ANSWER_WITH_CONTEXT)
    judged = await judge_band(rag)
    upstream.enqueue(*(Scenario(content=CORRECT) for _ in judged))
    upstream.enqueue(Scenario(content="Within five days.", delay_s=2))
    started = await execute(
        rag.admin, "answer-with-context", {"question": QUESTION}, **{"async": "true"}
    )
    assert started.status_code == 202, started.text
    document = started.json()
    assert document["type"] == "workflow.execution" and document["status"] == "pending"
    operation_id = document["operation_id"]
    assert started.headers["location"] == f"/v1/operations/{operation_id}"
    running = await until(rag.admin, operation_id, lambda d: current_steps(d) == ["answer"])
    assert running["status"] == "running"
    assert running["progress"]["steps_done"] == 3
    assert running["progress"]["workflow_id"] == "answer-with-context"
    done = await until(rag.admin, operation_id, ended)
    assert done["status"] == "completed", done
    result = done["result"]
    assert result["run_id"] == operation_id and result["status"] == "completed"
    assert result["output"]["content"] == "Within five days."
    assert [step["name"] for step in result["steps"]] == [
        "search",
        "check-results",
        "score",
        "answer",
    ]


async def test_the_issue_example_ends_early_when_the_search_finds_nothing(
    rag: Gateway, upstream: FakeOpenAI
) -> None:
    await save(rag, ANSWER_WITH_CONTEXT)
    for doc in DOCS:
        deleted = await rag.admin.delete(f"/v1/knowledge-bases/product-docs/documents/{doc['id']}")
        assert deleted.status_code in (200, 204), deleted.text
    response = await execute(rag.admin, "answer-with-context", {"question": QUESTION})
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["output"] == {"answer": "No results found"}
    assert [step["name"] for step in run["steps"]] == ["search", "check-results"]
    assert run["steps"][1]["output"] == {
        "matched": 0,
        "action": {"end_workflow": {"answer": "No results found"}},
    }
    assert chat_requests(upstream) == []


def chat(name: str, message: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "chat_completion",
        "model_id": "m",
        "user_message": message,
        **fields,
    }


TOOLBOX: dict[str, Any] = {
    "id": "toolbox",
    "name": "Every flow-shaping step",
    "input_schema": {
        "type": "object",
        "properties": {"items": {"type": "array"}, "mode": {"type": "string"}},
        "required": ["items", "mode"],
    },
    "steps": [
        {
            "name": "route",
            "type": "conditional",
            "conditions": [
                {
                    "field": "${request:mode}",
                    "operator": "eq",
                    "value": "short",
                    "action": {"go_to_step": "final"},
                }
            ],
        },
        {
            "name": "fan-out",
            "type": "parallel",
            "branches": {
                "left": [chat("left-chat", "left ${request:mode}")],
                "right": [chat("right-chat", "right ${request:mode}")],
            },
        },
        {
            "name": "each",
            "type": "for_each",
            "items": "${request:items}",
            "concurrency": 2,
            "max_items": 3,
            "steps": [chat("item-chat", "item ${step:each:index}=${step:each:item}")],
        },
        chat("flaky", "this one fails", model_id="broken", on_error="skip"),
        chat("final", "final after ${step:flaky:error.type:none}"),
    ],
}


async def test_parallel_for_each_skip_and_go_to_step(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    await gateway.add_model("broken", backup)
    await save(gateway, TOOLBOX)
    backup.enqueue(Scenario(status=400, error_message="no such thing"))
    response = await execute(gateway.admin, "toolbox", {"items": ["a", "b", "c"], "mode": "long"})
    assert response.status_code == 200, response.text
    run = response.json()
    by_name = {step["name"]: step for step in run["steps"]}
    fan_out = by_name["fan-out"]["output"]
    assert fan_out["left"]["content"] == "echo: left long"
    assert fan_out["right"]["content"] == "echo: right long"
    results = by_name["each"]["output"]["results"]
    assert [r["content"] for r in results] == ["echo: item 0=a", "echo: item 1=b", "echo: item 2=c"]
    assert [s["name"] for s in run["steps"]].count("item-chat") == 3
    flaky = by_name["flaky"]
    assert flaky["status"] == "skipped" and "no such thing" in flaky["error"]["message"]
    assert "output" not in flaky
    assert run["output"]["content"] == f"echo: final after {flaky['error']['type']}"

    short = await execute(gateway.admin, "toolbox", {"items": [], "mode": "short"})
    assert short.status_code == 200, short.text
    assert [s["name"] for s in short.json()["steps"]] == ["route", "final"]
    assert short.json()["output"]["content"] == "echo: final after none"

    too_many = await execute(gateway.admin, "toolbox", {"items": [1, 2, 3, 4], "mode": "long"})
    error = openai_error(too_many, 400)
    assert error["code"] == "too_many_items" and "each" in error["message"]


APPROVAL: dict[str, Any] = {
    "id": "approval",
    "name": "Ask a human",
    "steps": [
        {
            "name": "ask",
            "type": "wait_for_input",
            "input_schema": {
                "type": "object",
                "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
                "required": ["approved"],
            },
        },
        {
            "name": "decide",
            "type": "conditional",
            "conditions": [
                {
                    "field": "${step:ask:input.approved}",
                    "operator": "eq",
                    "value": True,
                    "action": {
                        "end_workflow": {"approved": True, "note": "${step:ask:input.note:-}"}
                    },
                }
            ],
            "default_action": {"end_workflow": {"approved": False}},
        },
    ],
}


def waiting(document: dict[str, Any]) -> list[str]:
    return [w["name"] for w in (document.get("progress") or {}).get("waiting_for_input") or []]


async def test_wait_for_input_pauses_survives_a_worker_restart_and_resumes(
    settings: Settings,
) -> None:
    async with running_gateway(settings) as gateway:
        await save(gateway, APPROVAL)
        started = await execute(gateway.admin, "approval", {}, **{"async": "true"})
        assert started.status_code == 202, started.text
        operation_id = started.json()["operation_id"]
        paused = await until(gateway.admin, operation_id, lambda d: waiting(d) == ["ask"])
        assert paused["status"] == "running" and current_steps(paused) == ["ask"]
        # Editing the workflow now does not change the run in flight (version 1 is pinned).
        edited = {k: v for k, v in APPROVAL.items() if k != "id"}
        edited["steps"] = [APPROVAL["steps"][0]]
        put = await gateway.admin.put("/admin/workflows/approval", json=edited)
        assert put.status_code == 200, put.text
    # The gateway and its worker are gone; a new one takes the paused run over.
    async with running_gateway(settings, truncate=False) as gateway:
        url = f"/v1/operations/{operation_id}/input"
        invalid = await gateway.admin.post(url, json={"input": {"approved": "yes", "extra": 1}})
        error = openai_error(invalid, 400)
        assert (
            error["code"] == "invalid_input"
            and "'yes' is not of type 'boolean'" in error["message"]
        )
        missing = openai_error(await gateway.admin.post(url, json={"input": {}}), 400)
        assert "'approved' is a required property" in missing["message"]
        delivered = await gateway.admin.post(url, json={"input": {"approved": True, "note": "ok"}})
        assert delivered.status_code == 200, delivered.text
        done = await until(gateway.admin, operation_id, ended)
        assert done["status"] == "completed", done
        assert done["result"]["output"] == {"approved": True, "note": "ok"}
        assert done["result"]["version"] == 1
        assert [s["name"] for s in done["result"]["steps"]] == ["ask", "decide"]
        assert done["result"]["steps"][0]["output"] == {"input": {"approved": True, "note": "ok"}}
        late = openai_error(await gateway.admin.post(url, json={"input": {"approved": False}}), 409)
        assert late["code"] == "not_waiting_for_input"


async def test_wait_for_input_timeout_takes_its_action_and_input_elsewhere_is_409(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    timed = {
        "id": "timed",
        "name": "Wait briefly",
        "steps": [
            {
                "name": "ask",
                "type": "wait_for_input",
                "timeout_s": 1,
                "on_timeout": {"end_workflow": {"timed_out": True}},
            },
            chat("never", "not reached"),
        ],
    }
    await gateway.add_model("m", upstream)
    await save(gateway, timed)
    response = await execute(gateway.admin, "timed", {})
    assert response.status_code == 200, response.text
    assert response.json()["output"] == {"timed_out": True}
    assert [s["name"] for s in response.json()["steps"]] == ["ask"]
    assert chat_requests(upstream) == []
    await save(
        gateway, {"id": "plain", "name": "No pause", "steps": [chat("only", "hi", temperature=0)]}
    )
    upstream.enqueue(Scenario(hang=True))
    started = await execute(gateway.admin, "plain", {}, **{"async": "true"})
    operation_id = started.json()["operation_id"]
    await until(gateway.admin, operation_id, lambda d: current_steps(d) == ["only"])
    url = f"/v1/operations/{operation_id}/input"
    error = openai_error(await gateway.admin.post(url, json={"input": 1}), 409)
    assert error["code"] == "not_waiting_for_input"
    cancelled = await gateway.admin.delete(f"/v1/operations/{operation_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    # The step in flight was cancelled: the upstream request was closed.
    [request] = [r for r in upstream.requests if r.path.endswith("/chat/completions")]
    async with asyncio.timeout(20):
        while not request.disconnected:
            await asyncio.sleep(0.05)
    assert request.body["temperature"] == 0


async def test_a_go_to_step_loop_stops_at_max_steps(gateway: Gateway) -> None:
    loop = {
        "id": "loop",
        "name": "Forever",
        "max_steps": 5,
        "steps": [
            {
                "name": "again",
                "type": "conditional",
                "conditions": [
                    {
                        "field": "${request:x:1}",
                        "operator": "gte",
                        "value": 0,
                        "action": {"go_to_step": "again"},
                    }
                ],
            }
        ],
    }
    await save(gateway, loop)
    error = openai_error(await execute(gateway.admin, "loop", {}), 400)
    assert error["code"] == "max_steps_exceeded" and "5" in error["message"]


async def test_permissions_enabled_flag_and_input_schema(
    rag: Gateway, upstream: FakeOpenAI
) -> None:
    await save(rag, ANSWER_WITH_CONTEXT)
    body = {"question": QUESTION}
    no_workflows = await key_client(rag, {"models": "all", "knowledge_bases": "all"})
    only_workflow = await key_client(
        rag, {"workflows": ["answer-with-context"], "knowledge_bases": "all"}
    )
    everything = await key_client(
        rag, {"workflows": ["answer-with-context"], "knowledge_bases": "all", "models": ["gpt-4"]}
    )
    async with no_workflows, only_workflow, everything:
        denied = openai_error(await execute(no_workflows, "answer-with-context", body), 403)
        assert "answer-with-context" in denied["message"]
        no_model = openai_error(await execute(only_workflow, "answer-with-context", body), 403)
        assert "gpt-4" in no_model["message"]
        assert chat_requests(upstream) == []  # refused before the run started
        invalid = openai_error(
            await execute(everything, "answer-with-context", {"question": 7}), 400
        )
        assert invalid["code"] == "invalid_input" and "input.question" in invalid["message"]
        several = openai_error(await execute(everything, "answer-with-context", {}), 400)
        assert "'question' is a required property" in several["message"]
        upstream.enqueue(*(Scenario(content=CORRECT) for _ in await judge_band(rag)))
        allowed = await execute(everything, "answer-with-context", body)
        assert allowed.status_code == 200, allowed.text
        read = (await rag.admin.get("/admin/workflows/answer-with-context")).json()
        disabled = {**read, "enabled": False}
        assert (
            await rag.admin.put("/admin/workflows/answer-with-context", json=disabled)
        ).status_code == 200
        off = openai_error(await execute(everything, "answer-with-context", body), 409)
        assert off["code"] == "workflow_disabled"
        missing = openai_error(await execute(rag.admin, "no-such-workflow", body), 404)
        assert "no-such-workflow" in missing["message"]


class Hook(LoopbackServer):
    """A loopback HTTP endpoint that records what reached it and answers JSON."""

    def __init__(self) -> None:
        super().__init__([Route("/hook", self._hook, methods=["POST"])])
        self.seen: list[tuple[dict[str, str], Any]] = []

    async def _hook(self, request: Request) -> Response:
        self.seen.append((dict(request.headers), await request.json()))
        return JSONResponse({"received": True, "echo": self.seen[-1][1]}, status_code=201)


def hook_workflow(url: str) -> dict[str, Any]:
    return {
        "id": "notify",
        "name": "Call a hook",
        "steps": [
            {
                "name": "call",
                "type": "http_request",
                "method": "POST",
                "url": url,
                "headers": {"x-topic": "${request:topic}"},
                "body": {"topic": "${request:topic}", "n": "${request:n}"},
                "auth": {"credential": {"source": "env", "name": "HOOK_TOKEN"}},
            }
        ],
    }


async def test_http_request_reaches_an_allowed_address_with_a_credential_reference(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "hook-secret-1")
    opened = settings.model_copy(update={"callback_allow": "127.0.0.1/32"})
    async with Hook() as hook, running_gateway(opened) as gateway:
        await save(gateway, hook_workflow(hook.root_url + "/hook"))
        response = await execute(gateway.admin, "notify", {"topic": "refunds", "n": 3})
        assert response.status_code == 200, response.text
        output = response.json()["output"]
        assert output["status"] == 201
        assert output["body"] == {"received": True, "echo": {"topic": "refunds", "n": 3}}
        [(headers, body)] = hook.seen
        assert headers["authorization"] == "Bearer hook-secret-1"
        assert headers["x-topic"] == "refunds" and body == {"topic": "refunds", "n": 3}
        handle = gateway.runtime.temporal.runs.client.get_workflow_handle(response.json()["run_id"])
        await handle.result()  # the whole history: the answer is handed over before it closes
        history = await handle.fetch_history()
        assert "hook-secret-1" not in history.to_json()  # the secret never enters the run


async def test_http_request_to_a_private_address_is_refused_by_default(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "hook-secret-1")
    closed = settings.model_copy(update={"callback_allow": ""})
    async with Hook() as hook, running_gateway(closed) as gateway:
        await save(gateway, hook_workflow(hook.root_url + "/hook"))
        error = openai_error(await execute(gateway.admin, "notify", {"topic": "x", "n": 1}), 400)
        assert error["code"] == "outbound_address_refused" and "call" in error["message"]
        assert hook.seen == []


async def test_a_worker_killed_mid_run_is_replaced_and_completed_steps_do_not_rerun(
    settings: Settings, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    # The dead worker's attempt is retried once its heartbeat times out.
    settings = settings.model_copy(update={"stream_heartbeat_timeout_s": 5.0})
    async with running_gateway(settings) as gateway:  # stores the definitions (and truncates)
        await gateway.add_model("m", upstream)
        await save(
            gateway,
            {
                "id": "three-steps",
                "name": "Three chats",
                "steps": [chat("one", "first"), chat("two", "second"), chat("three", "third")],
            },
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = start_worker_process(settings, tmp_path / "worker-1.log")
    replacement = None
    try:
        async with api_only(settings) as api:
            upstream.enqueue(Scenario(), Scenario(hang=True))  # "two" hangs on the first worker
            started = await execute(api.admin, "three-steps", {}, **{"async": "true"})
            assert started.status_code == 202, started.text
            operation_id = started.json()["operation_id"]
            await until(api.admin, operation_id, lambda d: current_steps(d) == ["two"])
            async with asyncio.timeout(30):
                while len(chat_requests(upstream)) < 2:
                    await asyncio.sleep(0.05)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            replacement = start_worker_process(settings, tmp_path / "worker-2.log")
            done = await until(api.admin, operation_id, ended, timeout_s=120)
            assert done["status"] == "completed", done
            sent = [body["messages"][-1]["content"] for body in chat_requests(upstream)]
            # "one" completed before the kill: its answer came from the history, not again.
            assert sent.count("first") == 1 and sent.count("third") == 1
            assert sent.count("second") == 2  # the attempt in flight when the worker died
            assert done["result"]["output"]["content"] == "echo: third"
    finally:
        for process in (worker, replacement):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


async def test_a_chat_step_renders_its_prompt_and_falls_back_along_its_chain(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await gateway.add_model("primary", upstream)
    await gateway.add_model("backup", backup)
    chain = {
        "id": "pair",
        "name": "pair",
        "steps": [{"model_id": "primary", "max_retries": 0}, {"model_id": "backup"}],
    }
    assert (await gateway.admin.post("/admin/chains", json=chain)).status_code == 201
    prompt = {"id": "tone", "name": "tone", "content": "Answer as ${var:persona}."}
    assert (await gateway.admin.post("/admin/prompts", json=prompt)).status_code == 201
    step = chat(
        "reply",
        "${request:question}",
        model_id="pair",
        prompt_id="tone",
        prompt_variables={"persona": "${request:persona}"},
        max_tokens=50,
    )
    await save(gateway, {"id": "styled", "name": "styled", "steps": [step]})
    upstream.enqueue(Scenario(status=500))
    payload = {"question": "Why?", "persona": "a pirate"}
    response = await execute(gateway.admin, "styled", payload)
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["content"] == "echo: Why?" and output["usage"]["total_tokens"] > 0
    assert len(chat_requests(upstream)) == 1  # failed once, no retry: max_retries 0
    [sent] = chat_requests(backup)
    assert sent["messages"] == [
        {"role": "system", "content": "Answer as a pirate."},
        {"role": "user", "content": "Why?"},
    ]
    assert sent["max_tokens"] == 50
    no_prompts = await key_client(gateway, {"workflows": "all", "chains": "all"})
    async with no_prompts:
        denied = openai_error(await execute(no_prompts, "styled", payload), 403)
        assert "tone" in denied["message"]
