"""In-process hand-off of a run's result from the worker to the request awaiting it.

In `serve` the API and the worker share one process and one client, and a plain chat run
is started eagerly, so its whole life is one workflow task of this process's worker. The
request awaiting it need not long-poll the run's history for the close event (one more
RPC and more server work per call): the worker hands the workflow's return value over
the moment the workflow code produces it, in the workflow task whose completion records
that result. What this means for durability is stated in the README ("What a plain call
records, and when").

A run that ends any other way (it failed, or another process's worker finished it) hands
nothing over; its waiter reads the outcome from history as before.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from temporalio import workflow
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

# What a waiter gets when the run ended here without a result (it failed or was
# cancelled): read the outcome from the run's history.
FROM_HISTORY: Any = object()


class ResultHandOff:
    """Waiters by workflow id; the worker's interceptor settles them from its own thread.

    Unsandboxed workflow code runs on the worker's workflow-task threads, not on the
    event loop of the waiting request, hence the lock and `call_soon_threadsafe`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}

    @contextmanager
    def awaiting(self, workflow_id: str) -> Iterator[asyncio.Future[Any]]:
        """A future for the result of `workflow_id`, registered before the run starts."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._waiting[workflow_id] = (loop, future)
        try:
            yield future
        finally:
            with self._lock:
                if self._waiting.get(workflow_id, (loop, None))[1] is future:
                    del self._waiting[workflow_id]

    def deliver(self, workflow_id: str, outcome: Any) -> None:
        """Settle the waiter of `workflow_id`, if this process has one."""
        with self._lock:
            entry = self._waiting.pop(workflow_id, None)
        if entry is not None:
            loop, future = entry
            loop.call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if not future.done():  # the request may have gone (client disconnected)
        future.set_result(outcome)


class HandOffInterceptor(Interceptor):
    """Worker interceptor: gives each workflow's return value to its in-process waiter."""

    def __init__(self, handoff: ResultHandOff) -> None:
        self._handoff = handoff

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        handoff = self._handoff

        class _HandOffInbound(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                workflow_id = workflow.info().workflow_id
                try:
                    result = await super().execute_workflow(input)
                except BaseException:
                    _deliver_live(handoff, workflow_id, FROM_HISTORY)
                    raise
                _deliver_live(handoff, workflow_id, result)
                return result

        return _HandOffInbound


def _deliver_live(handoff: ResultHandOff, workflow_id: str, outcome: Any) -> None:
    # A replay (after an eviction, or on another worker) re-derives a result that was
    # already handed over or already recorded: nobody in this process awaits it.
    if not workflow.unsafe.is_replaying():
        handoff.deliver(workflow_id, outcome)
