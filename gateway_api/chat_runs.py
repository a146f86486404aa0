"""Starts ChatWorkflow runs for the chat route and turns their failures into errors."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError, RPCStatusCode

from gateway_api.runtime import Runtime
from gateway_core.domain.chat import ChainStep, ChatResult, ChatWorkflowInput, ResolvedModel
from gateway_core.domain.models import Model
from gateway_core.errors import (
    GatewayError,
    ModelNotFoundError,
    RequestTooLargeError,
    ServiceUnavailableError,
    UpstreamError,
    error_from_payload,
)
from gateway_core.logging import request_id_var


def new_run_id() -> str:
    return f"chat-{uuid.uuid4().hex}"


async def resolve_steps(runtime: Runtime, model_name: str) -> list[ChainStep]:
    """A model name becomes a chain; a plain model is a chain of one step."""
    try:
        model = await runtime.model_cache.get(model_name)
    except ModelNotFoundError:
        raise ModelNotFoundError(
            f"The model `{model_name}` does not exist or you do not have access to it.",
            param="model",
        ) from None
    if not model.enabled:
        raise ModelNotFoundError(f"The model `{model_name}` is disabled.", param="model")
    settings = runtime.settings
    step = ChainStep(
        model=_resolved(model),
        max_retries=settings.default_max_retries,
        max_latency_ms=settings.default_timeout_ms,
        max_stream_ms=int(settings.stream_max_duration_s * 1000),
        heartbeat_timeout_ms=int(settings.stream_heartbeat_timeout_s * 1000),
    )
    return [step]


def _resolved(model: Model) -> ResolvedModel:
    return ResolvedModel(
        id=model.id,
        version=model.version,
        provider=model.provider,
        upstream_model=model.model,
        base_url=model.base_url,
        credential=model.credential,
        defaults=model.config,
        stream_usage=model.stream_usage,
    )


def failure_to_error(failure: WorkflowFailureError) -> GatewayError:
    """The gateway error a failed run carries (see workflows.chat and activities.errors)."""
    cause = failure.cause
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
        return error_from_payload(cause.details[0])
    if isinstance(cause, CancelledError):
        return UpstreamError("the run was cancelled", retryable=False, code="cancelled")
    return UpstreamError(f"the run failed: {cause or failure}", retryable=False)


def rpc_to_error(error: RPCError) -> GatewayError:
    """Temporal refused or could not take the call."""
    if error.status == RPCStatusCode.INVALID_ARGUMENT and "size" in error.message.lower():
        return RequestTooLargeError("the request is too large to record as a run")
    return ServiceUnavailableError(
        f"Temporal is unavailable ({error.status.name})", code="temporal_unavailable"
    )


async def start_run(
    runtime: Runtime, run_id: str, steps: list[ChainStep], body: dict[str, Any], stream: bool
) -> WorkflowHandle[Any, ChatResult]:
    workflow_input = ChatWorkflowInput(
        steps=steps, body=body, stream=stream, request_id=request_id_var.get()
    )
    try:
        return await runtime.temporal.start_workflow(
            "ChatWorkflow",
            workflow_input,
            id=run_id,
            task_queue=runtime.settings.temporal_task_queue,
            result_type=ChatResult,
            request_eager_start=runtime.eager_start,
        )
    except RPCError as error:
        raise rpc_to_error(error) from None


async def await_result(handle: WorkflowHandle[Any, ChatResult]) -> ChatResult:
    try:
        return await handle.result()
    except WorkflowFailureError as failure:
        raise failure_to_error(failure) from None
    except RPCError as error:
        raise rpc_to_error(error) from None


async def run_to_completion(
    runtime: Runtime, run_id: str, steps: list[ChainStep], body: dict[str, Any]
) -> ChatResult:
    handle = await start_run(runtime, run_id, steps, body, stream=False)
    return await await_result(handle)
