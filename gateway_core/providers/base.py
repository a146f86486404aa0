"""The provider protocol every upstream adapter implements."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from gateway_core.domain.chat import ResolvedModel
from gateway_core.errors import InvalidRequestError


class LlmProvider(Protocol):
    """Calls one kind of upstream in OpenAI's chat-completions shape."""

    async def complete(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        """Return one OpenAI `chat.completion` object."""
        ...

    def stream(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> AsyncGenerator[dict[str, Any]]:
        """Yield OpenAI `chat.completion.chunk` objects until the upstream is done."""
        ...

    async def embed(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        """Return an OpenAI embeddings `list` for an OpenAI embeddings request body.

        A provider without embeddings raises `unsupported(...)` (a 400).
        """
        ...

    async def check(self, model: ResolvedModel, api_key: str | None) -> None:
        """A cheap call proving the upstream answers and accepts the credential.

        Returns on success, raises an UpstreamError otherwise.
        """
        ...


def unsupported(provider: str, feature: str) -> InvalidRequestError:
    """The 400 a provider answers for an OpenAI feature it cannot honour."""
    return InvalidRequestError(
        f"{feature} is not supported by provider {provider}", code="unsupported_by_provider"
    )


def text_of(content: Any, provider: str) -> str:
    """The text of a message `content` (a string or text parts); other parts are refused."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise unsupported(provider, f"content part {kind!r} in this message")
        texts.append(str(part.get("text", "")))
    return "".join(texts)


def parse_data_url(url: str, provider: str) -> tuple[str, str]:
    """The (media type, base64 data) of a `data:<type>;base64,<data>` image URL."""
    header, sep, data = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise unsupported(provider, "an image URL that is not a base64 data: URL")
    return header[5:-7], data


def tool_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """The parsed `arguments` of an OpenAI tool call; a 400 when they are not a JSON object."""
    raw = (call.get("function") or {}).get("arguments") or "{}"
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidRequestError(
            "tool call arguments must be a JSON object", param="messages", code="invalid_tool_call"
        )
    return parsed


def refuse_unsupported(body: dict[str, Any], provider: str, *, n: bool = False) -> None:
    """Refuse OpenAI options whose effect this provider cannot give (instead of dropping them)."""
    if not n and (body.get("n") or 1) > 1:
        raise unsupported(provider, "n > 1")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise unsupported(provider, "logprobs")
    if "audio" in (body.get("modalities") or []) or body.get("audio"):
        raise unsupported(provider, "audio output")


def chat_completion(
    response_id: str,
    model: str,
    message: dict[str, Any],
    finish_reason: str | None,
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    """An OpenAI `chat.completion` object with one choice."""
    result: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
    }
    if usage is not None:
        result["usage"] = usage
    return result


def usage_of(prompt: int, completion: int, cached: int | None = None) -> dict[str, Any]:
    """OpenAI's `usage` object."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


class ChunkFactory:
    """Builds the OpenAI `chat.completion.chunk` objects of one stream."""

    def __init__(self, response_id: str, model: str) -> None:
        self.base = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            **self.base,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

    def usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        return {**self.base, "choices": [], "usage": usage}


def merge_defaults(model: ResolvedModel, body: dict[str, Any]) -> dict[str, Any]:
    """The upstream body: model defaults first, the caller's own fields win."""
    merged: dict[str, Any] = model.defaults.model_dump(exclude_none=True)
    merged.update(body)
    merged["model"] = model.upstream_model
    return merged


def redact(text: str, *secrets: str | None) -> str:
    """Remove every secret value from text that may reach a caller or a log."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text
