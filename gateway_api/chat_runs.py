"""Starts ChatWorkflow runs for the chat route and turns their failures into errors."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, CancelledError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from gateway_api.runtime import Runtime
from gateway_core.config import Settings
from gateway_core.domain.chains import ChainStepSpec
from gateway_core.domain.chat import ChainStep, ChatResult, ChatWorkflowInput, ResolvedModel
from gateway_core.domain.models import Model
from gateway_core.domain.operations import response_with_metadata
from gateway_core.domain.prompts import PromptUse
from gateway_core.errors import (
    ConflictError,
    GatewayError,
    ModelNotFoundError,
    RequestTooLargeError,
    ServiceUnavailableError,
    UpstreamError,
    error_from_payload,
)
from gateway_core.logging import request_id_var

logger = logging.getLogger(__name__)


def new_run_id() -> str:
    return f"chat-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Route:
    """What a requested name resolved to: the chain of steps a run walks."""

    requested: str
    steps: list[ChainStep]
    chain_id: str | None = None
    chain_version: int | None = None


async def resolve_route(runtime: Runtime, name: str) -> Route:
    """A chain id gives its steps; a model id is a chain of one step with default budgets."""
    chain = await runtime.chain_cache.get(name)
    if chain is not None and chain.enabled:
        steps = [
            step
            for index, spec in enumerate(chain.steps)
            if (step := await _chain_step(runtime, chain.id, index, spec)) is not None
        ]
        if not steps:
            raise ServiceUnavailableError(
                f"no model of chain `{name}` is available", code="chain_unavailable"
            )
        return Route(name, steps, chain.id, chain.version)
    if chain is not None:
        raise ModelNotFoundError(f"The model `{name}` is disabled.", param="model")
    try:
        model = await runtime.model_cache.get(name)
    except ModelNotFoundError:
        raise ModelNotFoundError(
            f"The model `{name}` does not exist or you do not have access to it.",
            param="model",
        ) from None
    if not model.enabled:
        raise ModelNotFoundError(f"The model `{name}` is disabled.", param="model")
    settings = runtime.settings
    step = ChainStep(
        model=_resolved(model),
        max_retries=settings.default_max_retries,
        max_latency_ms=settings.default_timeout_ms,
        **_stream_limits(settings),
    )
    return Route(name, [step])


def _stream_limits(settings: Settings) -> dict[str, int]:
    return {
        "max_stream_ms": int(settings.stream_max_duration_s * 1000),
        "heartbeat_timeout_ms": int(settings.stream_heartbeat_timeout_s * 1000),
    }


async def _chain_step(
    runtime: Runtime, chain_id: str, index: int, spec: ChainStepSpec
) -> ChainStep | None:
    """The step for a stored spec; None (skipped) when its model was since removed."""
    try:
        model = await runtime.model_cache.get(spec.model_id)
    except ModelNotFoundError:
        model = None
    if model is None or not model.enabled:
        logger.warning(
            "chain step skipped: model unavailable",
            extra={"chain": chain_id, "step": index, "model": spec.model_id},
        )
        return None
    return ChainStep(
        model=_resolved(model),
        max_retries=spec.max_retries,
        max_latency_ms=spec.max_latency_ms,
        max_time_to_first_token_ms=spec.max_time_to_first_token_ms,
        on_exhausted=spec.on_exhausted,
        **_stream_limits(runtime.settings),
    )


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
        api_version=model.api_version,
        deployment=model.deployment,
        region=model.region,
        auth=model.auth,
        cache=model.cache,
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


@dataclass(frozen=True)
class RunOptions:
    """How a run is started beyond its input: operation attributes, idempotency."""

    search_attributes: TypedSearchAttributes | None = None
    callback_url: str | None = None
    operation_type: str | None = None
    # With an Idempotency-Key: attach to the run of that key instead of starting another.
    request_hash: str | None = None


async def start_run(
    runtime: Runtime,
    run_id: str,
    route: Route,
    body: dict[str, Any],
    stream: bool,
    *,
    prompts: list[PromptUse] | None = None,
    options: RunOptions | None = None,
) -> WorkflowHandle[Any, ChatResult]:
    options = options or RunOptions()
    workflow_input = ChatWorkflowInput(
        prompts=prompts or [],
        steps=route.steps,
        body=body,
        stream=stream,
        request_id=request_id_var.get(),
        chain_id=route.chain_id,
        chain_version=route.chain_version,
        callback_url=options.callback_url,
        operation_type=options.operation_type,
    )
    idempotent = options.request_hash is not None
    try:
        handle = await runtime.temporal.start_workflow(
            "ChatWorkflow",
            workflow_input,
            id=run_id,
            task_queue=runtime.settings.temporal_task_queue,
            result_type=ChatResult,
            request_eager_start=runtime.eager_start,
            search_attributes=options.search_attributes,
            memo=_memo(options),
            id_conflict_policy=(
                WorkflowIDConflictPolicy.USE_EXISTING
                if idempotent
                else WorkflowIDConflictPolicy.UNSPECIFIED
            ),
            id_reuse_policy=(
                WorkflowIDReusePolicy.REJECT_DUPLICATE
                if idempotent
                else WorkflowIDReusePolicy.ALLOW_DUPLICATE
            ),
        )
    except WorkflowAlreadyStartedError:
        handle = runtime.temporal.get_workflow_handle(run_id, result_type=ChatResult)
    except RPCError as error:
        raise rpc_to_error(error) from None
    if idempotent:
        await _same_request(handle, options.request_hash)
    return handle


REQUEST_MEMO = "pmp_request_hash"
CALLBACK_MEMO = "pmp_callback"


def _memo(options: RunOptions) -> dict[str, Any] | None:
    """What a run remembers about its request: the idempotency hash, whether it calls back."""
    memo: dict[str, Any] = {}
    if options.request_hash is not None:
        memo[REQUEST_MEMO] = options.request_hash
    if options.callback_url is not None:
        memo[CALLBACK_MEMO] = True
    return memo or None


async def _same_request(handle: WorkflowHandle[Any, ChatResult], request_hash: str | None) -> None:
    """An Idempotency-Key names one request: reusing it for another is a 409."""
    description = await handle.describe()
    recorded = await description.memo_value(REQUEST_MEMO, default=None)
    if recorded is not None and recorded != request_hash:
        raise ConflictError(
            "this Idempotency-Key was already used with a different request",
            code="idempotency_key_reused",
        )


def request_hash(model: str, body: dict[str, Any]) -> str:
    canonical = json.dumps({"model": model, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def await_result(handle: WorkflowHandle[Any, ChatResult]) -> ChatResult:
    try:
        return await handle.result()
    except WorkflowFailureError as failure:
        raise failure_to_error(failure) from None
    except RPCError as error:
        raise rpc_to_error(error) from None


async def run_to_completion(
    runtime: Runtime,
    run_id: str,
    route: Route,
    body: dict[str, Any],
    *,
    prompts: list[PromptUse] | None = None,
    options: RunOptions | None = None,
) -> ChatResult:
    handle = await start_run(
        runtime, run_id, route, body, stream=False, prompts=prompts, options=options
    )
    return await await_result(handle)


def run_headers(run_id: str, served_by: str, attempts: int, fallbacks: int) -> dict[str, str]:
    """Which model served the run and what it took, as response headers."""
    return {
        "x-pmp-run-id": run_id,
        "x-pmp-served-by": served_by,
        "x-pmp-attempts": str(attempts),
        "x-pmp-fallbacks": str(fallbacks),
    }


def with_metadata(result: ChatResult, run_id: str) -> dict[str, Any]:
    """The response body with the run's facts in `metadata`."""
    return response_with_metadata(result, run_id)
