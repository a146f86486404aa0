"""Anthropic's Messages API, translated to and from OpenAI's chat format."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx

from gateway_core.domain.chat import ResolvedModel
from gateway_core.errors import UpstreamError
from gateway_core.providers.base import (
    ChunkFactory,
    assistant_message,
    chat_completion,
    function_tools,
    input_schema,
    merge_defaults,
    output_limit,
    parse_data_url,
    redact,
    refuse_unmapped_sampling,
    refuse_unsupported,
    stop_sequences,
    tool_arguments,
    tool_call,
    unsupported,
    usage_of,
)
from gateway_core.providers.http import open_stream, parse_event, send_json, sse_events
from gateway_core.providers.turns import assistant_blocks, content_blocks, split_turns

NAME = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Stream `error` events that another attempt may get past.
_RETRYABLE_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


def _image(part: dict[str, Any]) -> dict[str, Any]:
    url = str((part.get("image_url") or {}).get("url", ""))
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = parse_data_url(url, NAME)
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _text(text: Any) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    return content_blocks(content, NAME, text=_text, image=_image)


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    name = (call.get("function") or {}).get("name", "")
    return {"type": "tool_use", "id": call.get("id"), "name": name, "input": tool_arguments(call)}


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    return assistant_blocks(message, NAME, text=_text, tool_use=_tool_use)


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    result = content if isinstance(content, str) else _user_blocks(content)
    return {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": result}


def _messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """System text and Anthropic messages; consecutive turns of one role are merged."""
    return split_turns(
        messages, NAME, user=_user_blocks, assistant=_assistant_blocks, tool_result=_tool_result
    )


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    if choice in (None, "auto"):
        translated: dict[str, Any] = {"type": "auto"}
    elif choice == "none":
        translated = {"type": "none"}
    elif choice == "required":
        translated = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        translated = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        raise unsupported(NAME, f"tool_choice {choice!r}")
    if parallel is False and translated["type"] != "none":
        translated["disable_parallel_tool_use"] = True
    return translated


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    translated = []
    for function in function_tools(tools, NAME):
        spec: dict[str, Any] = {
            "name": function.get("name"),
            "input_schema": input_schema(function),
        }
        if function.get("description"):
            spec["description"] = function["description"]
        translated.append(spec)
    return translated


def to_messages_request(model: ResolvedModel, body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request as an Anthropic Messages request."""
    merged = merge_defaults(model, body)
    refuse_unsupported(merged, NAME)
    refuse_unmapped_sampling(model, merged, NAME)
    system, messages = _messages(merged.get("messages") or [])
    request: dict[str, Any] = {
        "model": model.upstream_model,
        "messages": messages,
        "max_tokens": output_limit(merged) or DEFAULT_MAX_TOKENS,
    }
    if system:
        request["system"] = system
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p")):
        if merged.get(ours) is not None:
            request[theirs] = merged[ours]
    stop = stop_sequences(merged)
    if stop:
        request["stop_sequences"] = stop
    if merged.get("tools"):
        request["tools"] = _tools(merged["tools"])
    choice = _tool_choice(merged.get("tool_choice"), merged.get("parallel_tool_calls"))
    if choice is not None and merged.get("tools"):
        request["tool_choice"] = choice
    if merged.get("user"):
        request["metadata"] = {"user_id": str(merged["user"])}
    return request


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = (
        int(usage.get("input_tokens") or 0)
        + cached
        + int(usage.get("cache_creation_input_tokens") or 0)
    )
    return usage_of(prompt, int(usage.get("output_tokens") or 0), cached)


def to_chat_completion(response: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages response as an OpenAI chat.completion."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in response.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(tool_call(block.get("id"), block.get("name"), block.get("input")))
    finish = FINISH_REASONS.get(str(response.get("stop_reason")), "stop")
    return chat_completion(
        str(response.get("id", "")),
        str(response.get("model", "")),
        assistant_message(texts, calls),
        finish,
        _usage(response.get("usage") or {}),
    )


class _StreamTranslator:
    """Turns Anthropic stream events into OpenAI chunks, one event at a time."""

    def __init__(self, stream_usage: bool, api_key: str | None) -> None:
        self._stream_usage = stream_usage
        self._api_key = api_key
        self._chunks = ChunkFactory("", "")
        self._tool_index: dict[int, int] = {}
        self._usage: dict[str, Any] = {}
        self.done = False

    def translate(self, name: str, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type", name)
        if kind == "message_start":
            message = event.get("message") or {}
            self._chunks = ChunkFactory(str(message.get("id", "")), str(message.get("model", "")))
            self._usage = dict(message.get("usage") or {})
            return [self._chunks.delta({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(int(event.get("index", 0)), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index", 0)), event.get("delta") or {})
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v})
            reason = (event.get("delta") or {}).get("stop_reason")
            finish = FINISH_REASONS.get(str(reason), "stop")
            chunks = [self._chunks.delta({}, finish)]
            if self._stream_usage:
                chunks.append(self._chunks.usage(_usage(self._usage)))
            return chunks
        if kind == "message_stop":
            self.done = True
        elif kind == "error":
            raise self._error(event.get("error") or {})
        return []  # ping, content_block_stop, and event kinds added later

    def _block_start(self, index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        if block.get("type") == "text" and block.get("text"):
            return [self._chunks.delta({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        position = self._tool_index[index] = len(self._tool_index)
        return [self._chunks.tool_call_start(position, block.get("id"), block.get("name"))]

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        if delta.get("type") == "text_delta":
            return [self._chunks.delta({"content": delta.get("text", "")})]
        if delta.get("type") == "input_json_delta" and index in self._tool_index:
            piece = delta.get("partial_json", "")
            return [self._chunks.tool_call_arguments(self._tool_index[index], piece)]
        return []  # thinking and signature deltas have no OpenAI counterpart

    def _error(self, error: dict[str, Any]) -> UpstreamError:
        kind = str(error.get("type", "error"))
        message = redact(str(error.get("message", kind)), self._api_key)
        return UpstreamError(
            f"upstream stream error: {message}",
            retryable=kind in _RETRYABLE_STREAM_ERRORS,
            code=kind,
        )


class AnthropicProvider:
    """Speaks `POST /v1/messages` with `x-api-key` and `anthropic-version`."""

    name = NAME

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    def _url(self, model: ResolvedModel, path: str) -> str:
        # Accept both `https://host` and `https://host/v1`.
        root = (model.base_url or DEFAULT_BASE_URL).rstrip("/").removesuffix("/v1")
        return f"{root}/v1/{path}"

    def _headers(self, model: ResolvedModel, api_key: str | None) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "anthropic-version": model.api_version or DEFAULT_VERSION,
        }
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    async def complete(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        payload = to_messages_request(model, body)
        request = self._http.build_request(
            "POST",
            self._url(model, "messages"),
            json=payload,
            headers=self._headers(model, api_key),
        )
        response = await send_json(self._http, request, api_key)
        if response.get("type") != "message":
            raise UpstreamError("upstream sent no message", retryable=True)
        return to_chat_completion(response)

    async def stream(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> AsyncGenerator[dict[str, Any]]:
        payload = {**to_messages_request(model, body), "stream": True}
        headers = {**self._headers(model, api_key), "accept": "text/event-stream"}
        request = self._http.build_request(
            "POST", self._url(model, "messages"), json=payload, headers=headers
        )
        translator = _StreamTranslator(model.stream_usage, api_key)
        async with open_stream(self._http, request, api_key) as lines:
            async for name, data in sse_events(lines):
                for chunk in translator.translate(name, parse_event(data)):
                    yield chunk
                if translator.done:
                    return
        raise UpstreamError("upstream stream ended before message_stop", retryable=True)

    async def embed(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        raise unsupported(NAME, "embeddings")

    async def check(self, model: ResolvedModel, api_key: str | None) -> None:
        request = self._http.build_request(
            "GET", self._url(model, "models?limit=1"), headers=self._headers(model, api_key)
        )
        await send_json(self._http, request, api_key)
