"""Worker assembly: the workflows and activities of the gateway on one task queue."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.chat import ChatActivities
from workflows.chat import ChatWorkflow

WORKFLOWS = [ChatWorkflow]


def build_worker(client: Client, task_queue: str, chat: ChatActivities) -> Worker:
    """A worker for every gateway workflow.

    Workflows run unsandboxed for latency (a sandboxed task costs ~10 ms more on two
    cores); determinism is guarded by replaying recorded histories under the sandbox
    in tests/integration/test_replay.py.
    """
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[chat.complete, chat.stream],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_concurrent_workflow_tasks=200,
        max_concurrent_activities=500,
        max_concurrent_local_activities=500,
        # Cancellation reaches an activity only with a heartbeat response: send them often.
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        default_heartbeat_throttle_interval=timedelta(seconds=1),
    )
