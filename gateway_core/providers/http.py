"""HTTP plumbing shared by the httpx-based providers: errors, JSON calls, SSE streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway_core.errors import (
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamModelNotFoundError,
    UpstreamRateLimitError,
    UpstreamTimeoutError,
)
from gateway_core.providers.base import redact

_RETRYABLE_STATUS = frozenset({408, 409, 429})
_CLIENT_STATUS = frozenset({400, 404, 413, 415, 422})


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the upstream asked us to wait (`retry-after-ms` or `retry-after`)."""
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


def upstream_message(raw: bytes) -> str:
    """The human message of an error body: OpenAI, Anthropic and Google all nest it in `error`."""
    try:
        payload = json.loads(raw)
    except ValueError:
        return raw[:500].decode("utf-8", "replace") or "empty response"
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]  # Google may wrap the error in a list
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if payload.get("message"):
            return str(payload["message"])
    return raw[:500].decode("utf-8", "replace")


def error_for_status(
    status: int, raw: bytes, retry_after: float | None, api_key: str | None
) -> UpstreamError:
    """Translate an upstream HTTP failure into the gateway's error, secrets removed."""
    message = redact(f"upstream returned {status}: {upstream_message(raw)}", api_key)
    if status == 429:
        return UpstreamRateLimitError(
            message, retryable=True, upstream_status=status, retry_after_s=retry_after
        )
    if status in _RETRYABLE_STATUS or status >= 500:
        return UpstreamError(
            message, retryable=True, upstream_status=status, retry_after_s=retry_after
        )
    if status == 404:
        return UpstreamModelNotFoundError(message, retryable=False, upstream_status=status)
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


async def send_json(
    http: httpx.AsyncClient, request: httpx.Request, api_key: str | None
) -> dict[str, Any]:
    """Send a request whose answer is one JSON object; upstream failures become errors."""
    try:
        response = await http.send(request)
    except httpx.TransportError as exc:
        raise error_for_transport(exc, api_key) from None
    if response.status_code >= 400:
        raise error_for_status(
            response.status_code, response.content, retry_after(response), api_key
        )
    try:
        result = response.json()
    except ValueError:
        raise UpstreamError("upstream sent a body that is not JSON", retryable=True) from None
    if not isinstance(result, dict):
        raise UpstreamError("upstream sent JSON that is not an object", retryable=True)
    return result


# A finished stream's rest (after the provider's end marker, the body's closing chunk) is
# read before the response is closed: closed unread, its connection is dropped, not pooled,
# and every stream opened a new one (a TCP and TLS handshake against a real upstream). The
# wait is bounded for an upstream that keeps the body open after its end marker.
_REST_TIMEOUT_S = 0.25
_REST_MAX_LINES = 100


@asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient, request: httpx.Request, api_key: str | None
) -> AsyncIterator[AsyncIterator[str]]:
    """The lines of a streamed response: one iterator, shared by whoever reads them.

    Error statuses and network failures become errors. When the reader is done without
    an error, the rest of the body is read so the connection goes back to the pool; a
    reader that stops early (cancelled, failed) closes it.
    """
    try:
        response = await http.send(request, stream=True)
    except httpx.TransportError as exc:
        raise error_for_transport(exc, api_key) from None
    try:
        if response.status_code >= 400:
            raw = await response.aread()
            raise error_for_status(response.status_code, raw, retry_after(response), api_key)
        lines = response.aiter_lines()
        yield lines
        await _read_rest(lines)
    except httpx.TransportError as exc:
        raise error_for_transport(exc, api_key) from None
    finally:
        await response.aclose()


async def _read_rest(lines: AsyncIterator[str]) -> None:
    """Read what is left of a finished stream, within a bound; the answer is already whole."""
    try:
        async with asyncio.timeout(_REST_TIMEOUT_S):
            for _ in range(_REST_MAX_LINES):
                await anext(lines)
    except (StopAsyncIteration, TimeoutError, httpx.HTTPError):
        pass  # read to its end, or not worth waiting for: the connection is closed instead


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """The (event name, data) of each server-sent event; the name is `message` when unset."""
    event, data = "message", list[str]()
    async for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def parse_event(data: str) -> dict[str, Any]:
    """One SSE `data` payload as a JSON object."""
    try:
        event = json.loads(data)
    except ValueError:
        raise UpstreamError("upstream sent a malformed stream event", retryable=True) from None
    if not isinstance(event, dict):
        raise UpstreamError("upstream sent a malformed stream event", retryable=True)
    return event
