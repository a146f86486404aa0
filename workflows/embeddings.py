"""EmbeddingWorkflow: walks a chain of embedding models, one local activity per step.

The same walk as ChatWorkflow: a step's RetryPolicy is its retry budget, its latency limit
bounds each attempt, an exhausted step falls back to the next one unless it says `fail`
or the error would fail the same way on every model.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from gateway_core.domain.embeddings import (
        EmbedCallInput,
        EmbedCallResult,
        EmbeddingResult,
        EmbeddingWorkflowInput,
    )
    from gateway_core.domain.failures import FailurePayload
    from gateway_core.error_codec import (
        chain_failure,
        empty_chain_failure,
        payload_from_activity_failure,
    )
    from workflows.chat import (
        BACKSTOP,
        CHAIN_ENDING_ERRORS,
        is_cancellation,
        retry_policy,
    )

EMBED_ACTIVITY = "embed"


@workflow.defn(name="EmbeddingWorkflow")
class EmbeddingWorkflow:
    """One embeddings request: the vectors of the first step that answers."""

    @workflow.run
    async def run(self, inp: EmbeddingWorkflowInput) -> EmbeddingResult:
        if not inp.steps:
            raise empty_chain_failure()
        attempts = 0
        failure: FailurePayload | None = None
        for index, step in enumerate(inp.steps):
            call = EmbedCallInput(
                model=step.model,
                inputs=inp.inputs,
                dimensions=inp.dimensions,
                extra=inp.extra,
                attempt_timeout_ms=step.max_latency_ms,
                request_id=inp.request_id,
                chain_id=inp.chain_id,
                step_index=index,
            )
            try:
                result: EmbedCallResult = await workflow.execute_local_activity(
                    EMBED_ACTIVITY,
                    call,
                    start_to_close_timeout=timedelta(milliseconds=step.max_latency_ms) + BACKSTOP,
                    retry_policy=retry_policy(step),
                    result_type=EmbedCallResult,
                )
            except FailureError as error:
                if is_cancellation(error):
                    raise
                failure = payload_from_activity_failure(error, max_retries=step.max_retries)
                attempts += failure.attempt_count
                if failure.kind in CHAIN_ENDING_ERRORS or step.on_exhausted == "fail":
                    break
                continue
            return EmbeddingResult(
                vectors=result.vectors,
                prompt_tokens=result.prompt_tokens,
                served_by=step.model.id,
                steps_tried=index + 1,
                attempts=attempts + result.attempt,
                fallbacks=index,
                chain_id=inp.chain_id,
            )
        raise chain_failure(failure, attempts=attempts)
