"""POST /v1/chat/completions, plain and streaming, each call one ChatWorkflow run."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from gateway_api.accounting import UsageAccount
from gateway_api.chat_runs import (
    Route,
    RunOptions,
    new_run_id,
    request_hash,
    resolve_route,
    run_headers,
    run_to_completion,
    start_run,
    with_metadata,
)
from gateway_api.deps import AuthenticatedDep, RuntimeDep, enforce_rate_limit
from gateway_api.operations import operation_attributes, pending_document
from gateway_api.prompt_refs import render_prompt_references
from gateway_api.response_cache import CachePlan, RequestControl
from gateway_api.runtime import Runtime
from gateway_api.schemas import ChatCompletionRequest
from gateway_api.stream_relay import StreamRelay
from gateway_core.auth.service import Caller
from gateway_core.auth.tokens import estimate_request_tokens
from gateway_core.domain.operations import idempotent_id, new_operation_id
from gateway_core.domain.prompts import PromptUse
from gateway_core.errors import GatewayError, InvalidRequestError

OPERATION_TYPE = "chat.completion"

router = APIRouter(prefix="/v1", tags=["chat"])


@router.post("/chat/completions", response_model=None)
async def create_chat_completion(
    request: ChatCompletionRequest,
    http: Request,
    runtime: RuntimeDep,
    caller: AuthenticatedDep,
    run_async: Annotated[bool, Query(alias="async")] = False,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    cache_control: Annotated[str | None, Header()] = None,
) -> Response:
    body = request.upstream_body()
    # Limits first: an over-limit caller costs no lookups, and every answer (403 and 404
    # included) carries the x-ratelimit-* headers. Prompt references are estimated before
    # rendering; the real usage corrects the estimate afterwards.
    estimate = estimate_request_tokens(body)
    await enforce_rate_limit(http, runtime, caller, tokens=estimate)
    route = await resolve_route(runtime, request.model)
    caller.require("chains" if route.chain_id else "models", request.model)
    body["messages"], prompts = await render_prompt_references(runtime, body["messages"], caller)
    account = UsageAccount(runtime, caller, request.model, estimate)
    options = RunOptions(
        request_hash=request_hash(request.model, body) if idempotency_key else None
    )
    if run_async:
        return await _start_async(
            request, runtime, caller, route, body, prompts, options, idempotency_key, account
        )
    run_id = (
        idempotent_id("chat-", caller.key_id, idempotency_key) if idempotency_key else new_run_id()
    )
    started = time.perf_counter()
    outcome, served_by = "error", ""
    control = RequestControl.parse(cache_control, request.cache)
    cache = CachePlan.for_request(runtime, caller, route, body, request.model, control)
    try:
        hit = await cache.lookup()
        if hit is not None:  # answered without a run: no Temporal, no provider
            outcome, served_by = "ok", hit.served_by
            account.settle(hit.served_by, None)
            include_usage = bool(request.stream_options and request.stream_options.include_usage)
            return cache.replay(hit, stream=bool(request.stream), include_usage=include_usage)
        response, served_by = await _run(
            request, runtime, run_id, route, body, prompts, account, options, cache
        )
        outcome = "ok"
        return response
    except GatewayError as error:
        error.headers["x-pmp-run-id"] = run_id
        outcome = type(error).__name__
        account.settle(None, None)
        raise
    finally:
        metrics = runtime.metrics
        metrics.requests.labels(request.model, served_by, outcome).inc()
        metrics.request_latency.labels(request.model, str(bool(request.stream))).observe(
            time.perf_counter() - started
        )


async def _start_async(
    request: ChatCompletionRequest,
    runtime: Runtime,
    caller: Caller,
    route: Route,
    body: dict[str, Any],
    prompts: list[PromptUse],
    options: RunOptions,
    idempotency_key: str | None,
    account: UsageAccount,
) -> Response:
    """`?async=true`: start the same run and answer 202 with its operation id at once."""
    if request.stream:
        raise InvalidRequestError("`stream` cannot be combined with async=true", param="stream")
    operation_id = (
        idempotent_id("op-", caller.key_id, idempotency_key)
        if idempotency_key
        else new_operation_id()
    )
    options = RunOptions(
        search_attributes=operation_attributes(caller.key_id, OPERATION_TYPE),
        callback_url=request.callback_url,
        operation_type=OPERATION_TYPE,
        request_hash=options.request_hash,
    )
    await start_run(
        runtime, operation_id, route, body, stream=False, prompts=prompts, options=options
    )
    account.submitted()  # nobody waits for the answer: the estimate stays charged
    document = pending_document(operation_id, OPERATION_TYPE)
    headers = {"location": f"/v1/operations/{operation_id}", "x-pmp-run-id": operation_id}
    return JSONResponse(document.model_dump(exclude_none=True), status_code=202, headers=headers)


async def _run(
    request: ChatCompletionRequest,
    runtime: Runtime,
    run_id: str,
    route: Route,
    body: dict[str, Any],
    prompts: list[PromptUse],
    account: UsageAccount,
    options: RunOptions,
    cache: CachePlan,
) -> tuple[Response, str]:
    ui_headers: dict[str, str] = {}
    if runtime.temporal_ui_url:
        ui_headers["x-pmp-run-url"] = (
            f"{runtime.temporal_ui_url}/namespaces/{runtime.settings.temporal_namespace}"
            f"/workflows/{run_id}"
        )
    if not request.stream:
        result = await run_to_completion(
            runtime, run_id, route, body, prompts=prompts, options=options
        )
        account.settle(result.served_by, result.response.get("usage"))
        await cache.store(result.response, result.served_by)
        if result.fallbacks and result.chain_id:
            runtime.metrics.fallbacks.labels(result.chain_id).inc(result.fallbacks)
        headers = run_headers(run_id, result.served_by, result.attempts, result.fallbacks)
        headers |= ui_headers | cache.headers()
        response = JSONResponse(with_metadata(result, run_id), headers=headers)
        return response, result.served_by

    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    relay = StreamRelay(
        runtime,
        run_id,
        include_usage,
        on_done=account.settle,
        on_complete=cache.store if cache.stores else None,
    )
    await relay.start(route, body, prompts=prompts, options=options)
    headers = relay.headers()
    sse_headers = {**headers, **ui_headers, **cache.headers()}
    sse_headers |= {"cache-control": "no-cache", "x-accel-buffering": "no"}
    stream = StreamingResponse(relay.frames(), media_type="text/event-stream", headers=sse_headers)
    return stream, headers.get("x-pmp-served-by", "")
