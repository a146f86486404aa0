"""POST /v1/chat/completions, plain and streaming, each call one ChatWorkflow run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from gateway_api.deps import AuthenticatedDep, ChatDep, response_headers
from gateway_api.responses import to_response
from gateway_api.schemas import ChatCompletionRequest
from gateway_api.services.cache_policy import RequestControl
from gateway_api.services.chat import ChatCall

router = APIRouter(prefix="/v1", tags=["chat"])


@router.post("/chat/completions", response_model=None)
async def create_chat_completion(
    request: ChatCompletionRequest,
    http: Request,
    chat: ChatDep,
    caller: AuthenticatedDep,
    run_async: Annotated[bool, Query(alias="async")] = False,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    cache_control: Annotated[str | None, Header()] = None,
) -> Response:
    call = ChatCall(
        caller=caller,
        model=request.model,
        body=request.upstream_body(),
        stream=bool(request.stream),
        include_usage=bool(request.stream_options and request.stream_options.include_usage),
        cache=RequestControl.parse(cache_control, request.cache),
        run_async=run_async,
        idempotency_key=idempotency_key,
        callback_url=request.callback_url,
        headers=response_headers(http),
    )
    return to_response(await chat.create(call))
