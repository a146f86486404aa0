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


def text_inputs(body: dict[str, Any], provider: str) -> list[str]:
    """The texts of an embeddings request body; a 400 for token arrays (text-only upstreams)."""
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    if not all(isinstance(text, str) for text in texts):
        raise unsupported(provider, "token arrays as embedding input")
    return texts


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


# Sampling options some providers have no equivalent for.
UNMAPPED_SAMPLING = ("seed", "presence_penalty", "frequency_penalty", "logit_bias")


def refuse_unmapped_sampling(model: ResolvedModel, body: dict[str, Any], provider: str) -> None:
    """A 400 naming the first option in UNMAPPED_SAMPLING the request sets, unless the model
    says `drop_unsupported_params` (then they are removed from `body`)."""
    present = [name for name in UNMAPPED_SAMPLING if body.get(name) is not None]
    if not present:
        return
    if not model.drop_unsupported_params:
        raise InvalidRequestError(
            f"`{present[0]}` is not supported by provider {provider}; set"
            " `drop_unsupported_params` on the model to drop such parameters instead",
            param=present[0],
            code="unsupported_by_provider",
        )
    for name in present:
        del body[name]


def refuse_unsupported(
    body: dict[str, Any], provider: str, *, n: bool = False, response_format: bool = False
) -> None:
    """Refuse OpenAI options whose effect this provider cannot give (instead of dropping them).

    `n` and `response_format` say the provider honours those itself.
    """
    if not n and (body.get("n") or 1) > 1:
        raise unsupported(provider, "n > 1")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise unsupported(provider, "logprobs")
    if "audio" in (body.get("modalities") or []) or body.get("audio"):
        raise unsupported(provider, "audio output")
    if not response_format:
        kind = (body.get("response_format") or {}).get("type", "text")
        if kind != "text":
            raise unsupported(provider, f"response_format {kind!r}")


def function_tools(tools: list[dict[str, Any]], provider: str) -> list[dict[str, Any]]:
    """The `function` of each OpenAI tool; a 400 for a tool of another type."""
    functions = []
    for tool in tools:
        if tool.get("type") != "function":
            raise unsupported(provider, f"tools of type {tool.get('type')!r}")
        functions.append(tool.get("function") or {})
    return functions


def input_schema(function: dict[str, Any]) -> dict[str, Any]:
    """A function tool's parameters schema; an object without properties when it has none."""
    schema: dict[str, Any] = function.get("parameters") or {"type": "object", "properties": {}}
    return schema


def stop_sequences(body: dict[str, Any]) -> list[str] | None:
    """OpenAI's `stop` (a string or a list) as a list; None when there is none."""
    stop = body.get("stop")
    if not stop:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def output_limit(body: dict[str, Any]) -> Any:
    """The completion token limit the caller set, if any (the newer field wins)."""
    return body.get("max_completion_tokens") or body.get("max_tokens")


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """An OpenAI tool call from an upstream's (id, name, parsed arguments)."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments or {})},
    }


def assistant_message(texts: list[str], calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The OpenAI assistant message of a reply's texts and tool calls."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    return message


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

    def tool_call_start(self, index: int, call_id: Any, name: Any) -> dict[str, Any]:
        """The chunk that opens a streamed tool call; its arguments follow in pieces."""
        call = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        return self.delta({"tool_calls": [call]})

    def tool_call_arguments(self, index: int, arguments: Any) -> dict[str, Any]:
        """A chunk carrying the next piece of a streamed tool call's arguments."""
        return self.delta({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})


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
