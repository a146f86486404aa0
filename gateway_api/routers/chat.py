"""POST /v1/chat/completions, plain and streaming, each call one ChatWorkflow run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse

from gateway_api.chat_runs import new_run_id, resolve_steps, run_to_completion
from gateway_api.deps import CallerDep, RuntimeDep
from gateway_api.runtime import Runtime
from gateway_api.schemas import ChatCompletionRequest
from gateway_api.stream_relay import StreamRelay
from gateway_core.domain.chat import ChainStep
from gateway_core.errors import GatewayError

router = APIRouter(prefix="/v1", tags=["chat"])


@router.post("/chat/completions", response_model=None)
async def create_chat_completion(
    request: ChatCompletionRequest, runtime: RuntimeDep, _caller: CallerDep
) -> Response:
    steps = await resolve_steps(runtime, request.model)
    run_id = new_run_id()
    try:
        return await _run(request, runtime, run_id, steps)
    except GatewayError as error:
        error.headers["x-pmp-run-id"] = run_id
        raise


async def _run(
    request: ChatCompletionRequest, runtime: Runtime, run_id: str, steps: list[ChainStep]
) -> Response:
    headers = {"x-pmp-run-id": run_id}
    if runtime.temporal_ui_url:
        headers["x-pmp-run-url"] = (
            f"{runtime.temporal_ui_url}/namespaces/{runtime.settings.temporal_namespace}"
            f"/workflows/{run_id}"
        )
    body = request.upstream_body()
    if not request.stream:
        result = await run_to_completion(runtime, run_id, steps, body)
        headers["x-pmp-served-by"] = result.served_by
        return JSONResponse(result.response, headers=headers)

    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    relay = StreamRelay(runtime, run_id, include_usage)
    await relay.start(steps, body)
    sse_headers: dict[str, Any] = {
        **headers,
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
    }
    return StreamingResponse(relay.frames(), media_type="text/event-stream", headers=sse_headers)
