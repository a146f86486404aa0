"""ChatWorkflow: walks a chain of model steps, each one activity with its retry budget.

A step's RetryPolicy is its retry budget and its timeouts are its latency limits; when a
step is exhausted the workflow falls back to the next one, unless the step says `fail`
or the error would fail the same way on every model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    FailureError,
    is_cancelled_exception,
)
from temporalio.workflow import ActivityCancellationType, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from gateway_core.domain.chat import (
        ChainStep,
        ChatResult,
        ChatWorkflowInput,
        ProviderCallInput,
        ProviderCallResult,
    )
    from gateway_core.domain.failures import FailureKind, FailurePayload
    from gateway_core.domain.operations import (
        CallbackInput,
        OperationDoc,
        OperationStatus,
        callback_run_id,
        response_with_metadata,
    )
    from gateway_core.error_codec import (
        callback_error,
        chain_failure,
        empty_chain_failure,
        payload_from_activity_failure,
    )

CALLBACK_WORKFLOW = "CallbackWorkflow"
COMPLETE_ACTIVITY = "chat_complete"
STREAM_ACTIVITY = "chat_stream"

# Errors that fail the same way on every model: end the chain instead of walking it.
CHAIN_ENDING_ERRORS: tuple[FailureKind, ...] = (
    "UpstreamBadRequestError",
    "StreamInterruptedError",
    "InvalidRequestError",
)
NON_RETRYABLE_ERRORS: list[str] = [
    *CHAIN_ENDING_ERRORS,
    "ConfigurationError",
    "CircuitOpenError",
    # The model is gone upstream: retrying it is pointless, the next model may answer.
    "UpstreamModelNotFoundError",
]
# The activity enforces the latency limit itself (a clear, counted timeout error); the
# Temporal timeout is the backstop for an attempt that does not even manage that.
BACKSTOP = timedelta(seconds=2)


def retry_policy(step: ChainStep) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=step.max_retries + 1,
        non_retryable_error_types=NON_RETRYABLE_ERRORS,
    )


def is_cancellation(error: FailureError) -> bool:
    return isinstance(error, CancelledError) or isinstance(error.cause, CancelledError)


@workflow.defn(name="ChatWorkflow")
class ChatWorkflow:
    """One chat completion run; plain calls use a local activity, streams a regular one."""

    def __init__(self) -> None:
        self._chain = ChainWalk()

    @workflow.run
    async def run(self, inp: ChatWorkflowInput) -> ChatResult:
        if inp.callback_url is None:
            return await self._chain.walk(inp)
        try:
            result = await self._chain.walk(inp)
        except Exception as error:
            # A cancelled run surfaces as ActivityError(cause=CancelledError) or as the
            # CancelledError itself; either way its callback says "cancelled".
            if is_cancelled_exception(error):
                await self._callback(inp, "cancelled")
            elif isinstance(error, ApplicationError):
                await self._callback(inp, "failed", error=callback_error(error))
            raise
        await self._callback(
            inp, "completed", result=response_with_metadata(result, workflow.info().workflow_id)
        )
        return result

    async def _callback(
        self,
        inp: ChatWorkflowInput,
        status: OperationStatus,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """Hand the final operation document to an abandoned CallbackWorkflow child."""
        info = workflow.info()
        document = OperationDoc(
            operation_id=info.workflow_id,
            type=inp.operation_type or "chat.completion",
            status=status,
            created_at=int(info.start_time.timestamp()),
            updated_at=int(workflow.now().timestamp()),
            result=result,
            error=error,
        )
        await workflow.start_child_workflow(
            CALLBACK_WORKFLOW,
            CallbackInput(url=str(inp.callback_url), document=document),
            id=callback_run_id(info.workflow_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )


@dataclass(frozen=True)
class InnerStep:
    """A chain walked as one step of another run (a user workflow's chat step).

    Its plain calls are then regular activities, named by `summary` and identified by
    `next_id()`, not local ones: a local activity keeps the run's workflow task open, so
    the run could answer no progress query and take no cancellation while it is in flight.
    """

    summary: str
    next_id: Callable[[], str]


class ChainWalk:
    """One walk of a chain of model steps, counting attempts across the steps."""

    def __init__(self, inner: InnerStep | None = None) -> None:
        self.attempts = 0
        self._inner = inner

    async def walk(self, inp: ChatWorkflowInput) -> ChatResult:
        if not inp.steps:
            raise empty_chain_failure()
        failure: FailurePayload | None = None
        for index, step in enumerate(inp.steps):
            call = ProviderCallInput(
                model=step.model,
                body=inp.body,
                request_id=inp.request_id,
                chain_id=inp.chain_id,
                step_index=index,
                prior_attempts=self.attempts,
            )
            try:
                result = await self._call(step, call, inp.stream)
            except FailureError as error:
                if is_cancellation(error):
                    raise
                failure = payload_from_activity_failure(error, max_retries=step.max_retries)
                self.attempts += failure.attempt_count
                if failure.kind in CHAIN_ENDING_ERRORS or step.on_exhausted == "fail":
                    break
                continue
            self.attempts += result.attempt
            return ChatResult(
                response=result.response,
                served_by=step.model.id,
                steps_tried=index + 1,
                attempts=self.attempts,
                fallbacks=index,
                chain_id=inp.chain_id,
            )
        raise chain_failure(failure, attempts=self.attempts)

    async def _call(
        self, step: ChainStep, call: ProviderCallInput, stream: bool
    ) -> ProviderCallResult:
        if stream:
            streamed = call.model_copy(
                update={
                    "stream_key": workflow.info().workflow_id,
                    "first_chunk_timeout_ms": step.max_time_to_first_token_ms
                    or step.max_latency_ms,
                }
            )
            streamed_result: ProviderCallResult = await workflow.execute_activity(
                STREAM_ACTIVITY,
                streamed,
                start_to_close_timeout=timedelta(milliseconds=step.max_stream_ms),
                heartbeat_timeout=timedelta(milliseconds=step.heartbeat_timeout_ms),
                retry_policy=retry_policy(step),
                # The run ends as cancelled only once the upstream request is closed.
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                result_type=ProviderCallResult,
            )
            return streamed_result
        plain = call.model_copy(update={"attempt_timeout_ms": step.max_latency_ms})
        if self._inner is not None:
            return await self._as_inner_step(self._inner, step, plain)
        plain_result: ProviderCallResult = await workflow.execute_local_activity(
            COMPLETE_ACTIVITY,
            plain,
            start_to_close_timeout=timedelta(milliseconds=step.max_latency_ms) + BACKSTOP,
            retry_policy=retry_policy(step),
            result_type=ProviderCallResult,
        )
        return plain_result

    async def _as_inner_step(
        self, inner: InnerStep, step: ChainStep, plain: ProviderCallInput
    ) -> ProviderCallResult:
        inner_result: ProviderCallResult = await workflow.execute_activity(
            COMPLETE_ACTIVITY,
            plain,
            activity_id=inner.next_id(),
            summary=f"{inner.summary} ({step.model.id})",
            start_to_close_timeout=timedelta(milliseconds=step.max_latency_ms) + BACKSTOP,
            heartbeat_timeout=timedelta(milliseconds=step.heartbeat_timeout_ms),
            retry_policy=retry_policy(step),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            result_type=ProviderCallResult,
        )
        return inner_result
