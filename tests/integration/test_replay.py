"""Determinism guard: recorded ChatWorkflow histories must replay under the sandbox.

The worker runs workflows unsandboxed for latency; these replays use the default
sandboxed runner, so non-deterministic or sandbox-unsafe workflow code fails here.
Set PMP_RECORD_HISTORIES=1 to refresh tests/histories from fresh runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import openai
import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from temporal_workers.worker import WORKFLOWS
from tests.conftest import Gateway
from tests.fakes.openai_upstream import FakeOpenAI, Scenario

HISTORIES = Path(__file__).parent.parent / "histories"


def _replayer() -> Replayer:
    return Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)


async def test_recorded_histories_replay_deterministically() -> None:
    files = sorted(HISTORIES.glob("*.json"))
    assert len(files) >= 3, "recorded histories missing from tests/histories"
    for file in files:
        history = WorkflowHistory.from_json(file.stem, file.read_text())
        # Raises on any non-determinism; a recorded failed run replays to the same failure.
        result = await _replayer().replay_workflow(history, raise_on_replay_failure=True)
        assert result.replay_failure is None, file.name


async def test_fresh_runs_of_each_kind_replay(gateway: Gateway, upstream: FakeOpenAI) -> None:
    await gateway.add_model("m", upstream)
    client = gateway.openai()
    messages = [{"role": "user", "content": "replay me"}]
    runs: dict[str, str] = {}
    plain = await client.chat.completions.with_raw_response.create(model="m", messages=messages)
    runs["chat_plain"] = plain.headers["x-pmp-run-id"]
    streamed = await client.chat.completions.with_raw_response.create(
        model="m", messages=messages, stream=True
    )
    async for _chunk in streamed.parse():
        pass
    runs["chat_stream"] = streamed.headers["x-pmp-run-id"]
    upstream.enqueue(Scenario(status=500), Scenario(status=400))
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.with_raw_response.create(model="m", messages=messages)
    runs["chat_failed_after_retry"] = caught.value.response.headers.get("x-pmp-run-id", "")
    runs = {name: run_id for name, run_id in runs.items() if run_id}
    replayer = _replayer()
    for name, run_id in runs.items():
        history = await gateway.runtime.temporal.get_workflow_handle(run_id).fetch_history()
        await replayer.replay_workflow(history)
        if os.environ.get("PMP_RECORD_HISTORIES") == "1":
            (HISTORIES / f"{name}.json").write_text(history.to_json())
    assert {"chat_plain", "chat_stream"} <= set(runs)
