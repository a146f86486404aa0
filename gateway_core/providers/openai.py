"""OpenAI chat completions over httpx; also any OpenAI-compatible server via base_url."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx

from gateway_core.domain.chat import ResolvedModel
from gateway_core.errors import (
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamRateLimitError,
    UpstreamTimeoutError,
)
from gateway_core.providers.base import merge_defaults, redact

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_CLIENT_STATUS = frozenset({400, 404, 413, 415, 422})


def _retry_after(response: httpx.Response) -> float | None:
    for header in ("retry-after-ms", "retry-after"):
        raw = response.headers.get(header)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        return value / 1000 if header == "retry-after-ms" else value
    return None


def _upstream_message(raw: bytes) -> str:
    try:
        payload = json.loads(raw)
    except ValueError:
        return raw[:500].decode("utf-8", "replace") or "empty response"
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return raw[:500].decode("utf-8", "replace")


def error_for_status(
    status: int, raw: bytes, retry_after: float | None, api_key: str | None
) -> UpstreamError:
    """Translate an upstream HTTP failure into the gateway's error, secrets removed."""
    message = redact(f"upstream returned {status}: {_upstream_message(raw)}", api_key)
    if status == 429:
        return UpstreamRateLimitError(
            message, retryable=True, upstream_status=status, retry_after_s=retry_after
        )
    if status in _RETRYABLE_STATUS or status >= 500:
        return UpstreamError(
            message, retryable=True, upstream_status=status, retry_after_s=retry_after
        )
    if status in _CLIENT_STATUS:
        return UpstreamBadRequestError(message, retryable=False, upstream_status=status)
    return UpstreamError(message, retryable=False, upstream_status=status)


def error_for_transport(exc: httpx.TransportError, api_key: str | None) -> UpstreamError:
    """Translate a network-level failure (timeout, refused, reset) into a retryable error."""
    # Only the exception's kind: its text can quote request headers, credential included.
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"upstream timed out ({kind})", retryable=True)
    if isinstance(exc, httpx.ProtocolError) and not isinstance(exc, httpx.RemoteProtocolError):
        return UpstreamError(f"request to upstream could not be sent ({kind})", retryable=False)
    return UpstreamError(f"upstream unreachable ({kind})", retryable=True)


class OpenAIProvider:
    """Speaks OpenAI's /chat/completions, plain JSON and SSE."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

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
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        if stream:
            headers["accept"] = "text/event-stream"
        url = f"{(model.base_url or DEFAULT_BASE_URL).rstrip('/')}/chat/completions"
        return self._http.build_request("POST", url, json=payload, headers=headers)

    async def complete(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        request = self._request(model, body, api_key, stream=False)
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            raise error_for_transport(exc, api_key) from None
        if response.status_code >= 400:
            raise error_for_status(
                response.status_code, response.content, _retry_after(response), api_key
            )
        try:
            result = response.json()
        except ValueError:
            raise UpstreamError("upstream sent a body that is not JSON", retryable=True) from None
        if not isinstance(result, dict) or "choices" not in result:
            raise UpstreamError("upstream sent no chat completion", retryable=True)
        return result

    async def stream(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> AsyncGenerator[dict[str, Any]]:
        request = self._request(model, body, api_key, stream=True)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise error_for_transport(exc, api_key) from None
        try:
            if response.status_code >= 400:
                raw = await response.aread()
                raise error_for_status(response.status_code, raw, _retry_after(response), api_key)
            async for chunk in _sse_events(response, api_key):
                yield chunk
        except httpx.TransportError as exc:
            raise error_for_transport(exc, api_key) from None
        finally:
            await response.aclose()


async def _sse_events(
    response: httpx.Response, api_key: str | None
) -> AsyncIterator[dict[str, Any]]:
    """Parse `data:` events of an OpenAI stream; stop at [DONE], raise on `error` events."""
    done = False
    async for line in response.aiter_lines():
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
            message = redact(_upstream_message(data.encode()), api_key)
            raise UpstreamError(f"upstream stream error: {message}", retryable=True)
        yield event
    if not done:
        raise UpstreamError("upstream stream ended before [DONE]", retryable=True)
