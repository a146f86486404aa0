"""Determinism guard: a recorded history of every workflow branch must replay under the sandbox.

The worker runs workflows unsandboxed for latency; these replays use the default
sandboxed runner, so non-deterministic or sandbox-unsafe workflow code fails here.
Set PMP_RECORD_HISTORIES=1 to refresh tests/histories from fresh runs
(tests/replay_scenarios.py drives one run per branch).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from temporal_workers.payload_codec import AesGcmCodec, encrypted_converter, parse_key
from temporal_workers.worker import WORKFLOWS
from tests.conftest import TEST_PAYLOAD_KEY, Gateway
from tests.fakes.openai_upstream import FakeOpenAI
from tests.replay_scenarios import SCENARIOS, CallbackReceiver, Rig

HISTORIES = Path(__file__).parent.parent / "histories"
# Fresh runs are encrypted with the test payload key; recorded plain histories pass through.
REPLAY_CONVERTER = encrypted_converter(AesGcmCodec(parse_key(TEST_PAYLOAD_KEY)))


class Expected(NamedTuple):
    """How a branch's run ends, and whether it starts a CallbackWorkflow child."""

    ends: EventType.ValueType
    starts_callback: bool = False


COMPLETED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
FAILED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
CANCELED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
CHILD_STARTED = EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED

# Every branch of workflows/chat.py, embeddings.py, ingestion.py and callback.py; CI fails
# without its history.
EXPECTED: dict[str, Expected] = {
    "chat_plain": Expected(COMPLETED),
    "chat_stream": Expected(COMPLETED),
    "chat_failed_after_retry": Expected(FAILED),
    "chat_stream_failed": Expected(FAILED),
    "chain_fallback": Expected(COMPLETED),
    "chain_exhausted": Expected(FAILED),
    "chain_step_fail": Expected(FAILED),
    "chat_cancelled": Expected(CANCELED),
    "chat_stream_abandoned": Expected(CANCELED),
    "chat_callback": Expected(COMPLETED, starts_callback=True),
    "chat_failed_with_callback": Expected(FAILED, starts_callback=True),
    "chat_cancelled_with_callback": Expected(CANCELED, starts_callback=True),
    "embeddings_plain": Expected(COMPLETED),
    "embeddings_fallback": Expected(COMPLETED),
    "ingestion_partial": Expected(COMPLETED),
    "callback_delivered": Expected(COMPLETED),
    "callback_failed": Expected(COMPLETED),
    # UserWorkflow: chat steps and CRAG judges walk their chains as regular activities.
    "userflow_rag": Expected(COMPLETED),
    "userflow_branches": Expected(COMPLETED),
    "userflow_wait_input": Expected(COMPLETED),
    "userflow_loop_bound": Expected(FAILED),
    "userflow_cancelled": Expected(CANCELED),
}


def _temporal(gateway: Gateway) -> Client:
    """The gateway's Temporal client (the one place that knows where the runtime keeps it)."""
    return gateway.runtime.temporal.runs.client


async def _replay(history: WorkflowHistory) -> None:
    """Replay under the sandbox; raises on any non-determinism (a failed run replays to
    the same failure)."""
    replayer = Replayer(workflows=WORKFLOWS, data_converter=REPLAY_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None, history.workflow_id


def _assert_branch(name: str, history: WorkflowHistory) -> None:
    """The history is of the branch its name says: how it ended, whether it called back."""
    expected = EXPECTED[name]
    kinds = [event.event_type for event in history.events]
    assert kinds[-1] == expected.ends, (name, EventType.Name(kinds[-1]))
    assert (CHILD_STARTED in kinds) == expected.starts_callback, name


def _load(file: Path) -> WorkflowHistory:
    history = WorkflowHistory.from_json(file.stem, file.read_text())
    # Replay needs the run's real id (a callback child's id is derived from it); the
    # started event names it (the time-skipping server leaves it out: no child there).
    started = history.events[0].workflow_execution_started_event_attributes
    return dataclasses.replace(history, workflow_id=started.workflow_id or file.stem)


def test_every_branch_has_a_scenario() -> None:
    assert list(SCENARIOS) == list(EXPECTED)


RECORDED = sorted(set(EXPECTED) | {file.stem for file in HISTORIES.glob("*.json")})


@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_history_replays_deterministically(name: str) -> None:
    file = HISTORIES / f"{name}.json"
    if not file.exists():
        pytest.fail(
            f"tests/histories/{file.name} is missing: record it with PMP_RECORD_HISTORIES=1"
            " .venv/bin/pytest tests/integration/test_replay.py"
        )
    history = _load(file)
    await _replay(history)
    if name in EXPECTED:
        _assert_branch(name, history)


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    async with CallbackReceiver() as running:
        yield running


@pytest.mark.parametrize("name", list(EXPECTED))
async def test_fresh_run_of_each_branch_replays(
    name: str,
    gateway: Gateway,
    upstream: FakeOpenAI,
    backup: FakeOpenAI,
    receiver: CallbackReceiver,
) -> None:
    rig = Rig(gateway, _temporal(gateway), upstream, backup, receiver)
    history = await SCENARIOS[name](rig)
    _assert_branch(name, history)
    await _replay(history)
    if os.environ.get("PMP_RECORD_HISTORIES") == "1":
        (HISTORIES / f"{name}.json").write_text(history.to_json())
