"""OpenAI chat completions over httpx; also any OpenAI-compatible server via base_url."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx

from gateway_core.domain.chat import ResolvedModel
from gateway_core.errors import UpstreamError
from gateway_core.providers.base import merge_defaults, redact
from gateway_core.providers.http import (
    error_for_status,
    error_for_transport,
    open_stream,
    send_json,
    upstream_message,
)

__all__ = ["DEFAULT_BASE_URL", "OpenAIProvider", "error_for_status", "error_for_transport"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider:
    """Speaks OpenAI's /chat/completions, plain JSON and SSE; /embeddings; /models."""

    name = "openai"

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    def _url(self, model: ResolvedModel, path: str) -> str:
        return f"{(model.base_url or DEFAULT_BASE_URL).rstrip('/')}/{path}"

    def _auth_headers(self, model: ResolvedModel, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def _request(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None, stream: bool
    ) -> httpx.Request:
        payload = merge_defaults(model, body)
        payload["stream"] = stream
        if not stream:
            payload.pop("stream_options", None)
        elif model.stream_usage:
            # Usage for history and accounting; the API drops it again for callers
            # that did not ask for it.
            payload["stream_options"] = {
                **(payload.get("stream_options") or {}),
                "include_usage": True,
            }
        headers = {"content-type": "application/json", **self._auth_headers(model, api_key)}
        if stream:
            headers["accept"] = "text/event-stream"
        url = self._url(model, "chat/completions")
        return self._http.build_request("POST", url, json=payload, headers=headers)

    async def complete(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        request = self._request(model, body, api_key, stream=False)
        result = await send_json(self._http, request, api_key)
        if "choices" not in result:
            raise UpstreamError("upstream sent no chat completion", retryable=True)
        return result

    async def stream(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> AsyncGenerator[dict[str, Any]]:
        request = self._request(model, body, api_key, stream=True)
        async with open_stream(self._http, request, api_key) as lines:
            async for chunk in _sse_events(lines, api_key):
                yield chunk

    async def embed(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        payload = {**body, "model": model.upstream_model}
        headers = {"content-type": "application/json", **self._auth_headers(model, api_key)}
        request = self._http.build_request(
            "POST", self._url(model, "embeddings"), json=payload, headers=headers
        )
        return await send_json(self._http, request, api_key)

    async def check(self, model: ResolvedModel, api_key: str | None) -> None:
        request = self._http.build_request(
            "GET", self._url(model, "models"), headers=self._auth_headers(model, api_key)
        )
        await send_json(self._http, request, api_key)


async def _sse_events(
    lines: AsyncIterator[str], api_key: str | None
) -> AsyncIterator[dict[str, Any]]:
    """Parse `data:` events of an OpenAI stream; stop at [DONE], raise on `error` events."""
    done = False
    async for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            event = json.loads(data)
        except ValueError:
            raise UpstreamError("upstream sent a malformed stream event", retryable=True) from None
        if isinstance(event, dict) and "error" in event:
            message = redact(upstream_message(data.encode()), api_key)
            raise UpstreamError(f"upstream stream error: {message}", retryable=True)
        yield event
    if not done:
        raise UpstreamError("upstream stream ended before [DONE]", retryable=True)
