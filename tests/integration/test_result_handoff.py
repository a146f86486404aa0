"""RunClient.execute with the in-process hand-off, on a real dev server.

The plain call's round-trip count (tests/integration/test_rpc_count.py) shows the
hand-off replaces the history long poll; these tests hold the other ways a run can end:
it fails here, or another worker (without the hand-off) finishes it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from gateway_api.services.run_client import RunClient
from gateway_core.error_codec import application_error
from gateway_core.errors import GatewayError, UpstreamError
from temporal_workers.result_handoff import HandOffInterceptor, ResultHandOff


class Echo(BaseModel):
    text: str


@workflow.defn(name="HandOffEcho")
class HandOffEcho:
    @workflow.run
    async def run(self, inp: Echo) -> Echo:
        if inp.text == "fail":
            raise application_error(UpstreamError("refused upstream", retryable=False), attempt=1)
        return Echo(text=inp.text.upper())


@asynccontextmanager
async def worker_on(
    client: Client, queue: str, handoff: ResultHandOff | None
) -> AsyncIterator[None]:
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[HandOffEcho],
        workflow_runner=UnsandboxedWorkflowRunner(),
        interceptors=[HandOffInterceptor(handoff)] if handoff is not None else [],
    )
    async with worker:
        yield


def run_client(client: Client, queue: str, handoff: ResultHandOff) -> RunClient:
    return RunClient(
        client, task_queue=queue, namespace="default", eager_start=True, handoff=handoff
    )


async def execute(runs: RunClient, text: str) -> Echo:
    return await runs.execute(
        "HandOffEcho", Echo(text=text), run_id=f"handoff-{uuid.uuid4().hex}", result_type=Echo
    )


async def test_the_worker_hands_the_result_over(temporal_env: WorkflowEnvironment) -> None:
    client, queue, handoff = temporal_env.client, f"q-{uuid.uuid4().hex}", ResultHandOff()
    async with worker_on(client, queue, handoff):
        assert await execute(run_client(client, queue, handoff), "hello") == Echo(text="HELLO")
    assert not handoff._waiting  # every waiter left its slot


async def test_a_failed_run_answers_with_its_recorded_error(
    temporal_env: WorkflowEnvironment,
) -> None:
    client, queue, handoff = temporal_env.client, f"q-{uuid.uuid4().hex}", ResultHandOff()
    async with worker_on(client, queue, handoff):
        with pytest.raises(GatewayError, match="refused upstream"):
            await execute(run_client(client, queue, handoff), "fail")


async def test_a_run_finished_by_another_worker_is_read_from_history(
    temporal_env: WorkflowEnvironment,
) -> None:
    # The worker that runs it has no hand-off (another process's): the waiter's history
    # long poll takes over after its wait for the hand-off alone.
    client, queue = temporal_env.client, f"q-{uuid.uuid4().hex}"
    async with worker_on(client, queue, None):
        runs = run_client(client, queue, ResultHandOff())
        runs.eager_start = False  # the task goes through the queue to that worker
        assert await execute(runs, "elsewhere") == Echo(text="ELSEWHERE")
