"""POST /v1/chat/completions, plain and streaming, each call one ChatWorkflow run."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse

from gateway_api.chat_runs import (
    Route,
    new_run_id,
    resolve_route,
    run_headers,
    run_to_completion,
    with_metadata,
)
from gateway_api.deps import CallerDep, RuntimeDep
from gateway_api.runtime import Runtime
from gateway_api.schemas import ChatCompletionRequest
from gateway_api.stream_relay import StreamRelay
from gateway_core.errors import GatewayError

router = APIRouter(prefix="/v1", tags=["chat"])


@router.post("/chat/completions", response_model=None)
async def create_chat_completion(
    request: ChatCompletionRequest, runtime: RuntimeDep, _caller: CallerDep
) -> Response:
    route = await resolve_route(runtime, request.model)
    run_id = new_run_id()
    started = time.perf_counter()
    outcome, served_by = "error", ""
    try:
        response, served_by = await _run(request, runtime, run_id, route)
        outcome = "ok"
        return response
    except GatewayError as error:
        error.headers["x-pmp-run-id"] = run_id
        outcome = type(error).__name__
        raise
    finally:
        metrics = runtime.metrics
        metrics.requests.labels(request.model, served_by, outcome).inc()
        metrics.request_latency.labels(request.model, str(bool(request.stream))).observe(
            time.perf_counter() - started
        )


async def _run(
    request: ChatCompletionRequest, runtime: Runtime, run_id: str, route: Route
) -> tuple[Response, str]:
    ui_headers: dict[str, str] = {}
    if runtime.temporal_ui_url:
        ui_headers["x-pmp-run-url"] = (
            f"{runtime.temporal_ui_url}/namespaces/{runtime.settings.temporal_namespace}"
            f"/workflows/{run_id}"
        )
    body = request.upstream_body()
    if not request.stream:
        result = await run_to_completion(runtime, run_id, route, body)
        if result.fallbacks and result.chain_id:
            runtime.metrics.fallbacks.labels(result.chain_id).inc(result.fallbacks)
        headers = run_headers(run_id, result.served_by, result.attempts, result.fallbacks)
        response = JSONResponse(with_metadata(result, run_id), headers=headers | ui_headers)
        return response, result.served_by

    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    relay = StreamRelay(runtime, run_id, include_usage)
    await relay.start(route, body)
    headers = relay.headers()
    sse_headers = {**headers, **ui_headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
    stream = StreamingResponse(relay.frames(), media_type="text/event-stream", headers=sse_headers)
    return stream, headers.get("x-pmp-served-by", "")
