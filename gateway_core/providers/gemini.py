"""Google's Generative Language API (Gemini), translated to and from OpenAI's chat format."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote

import httpx

from gateway_core.domain.chat import ResolvedModel
from gateway_core.errors import UpstreamError
from gateway_core.providers.base import (
    ChunkFactory,
    assistant_message,
    chat_completion,
    function_tools,
    merge_defaults,
    output_limit,
    parse_data_url,
    refuse_unsupported,
    stop_sequences,
    text_inputs,
    text_of,
    tool_arguments,
    tool_call,
    unsupported,
    usage_of,
)
from gateway_core.providers.http import open_stream, parse_event, send_json, sse_events
from gateway_core.providers.turns import assistant_blocks, content_blocks, split_turns

NAME = "gemini"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
_CONFIG_FIELDS = {
    "temperature": "temperature",
    "top_p": "topP",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
    "n": "candidateCount",
}


def _text(text: Any) -> dict[str, Any]:
    return {"text": text}


def _image(part: dict[str, Any]) -> dict[str, Any]:
    url = str((part.get("image_url") or {}).get("url", ""))
    media_type, data = parse_data_url(url, NAME)
    return {"inlineData": {"mimeType": media_type, "data": data}}


def _parts(content: Any) -> list[dict[str, Any]]:
    return content_blocks(content, NAME, text=_text, image=_image)


def _function_response(content: Any) -> dict[str, Any]:
    text = text_of(content, NAME)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"result": text}


def _contents(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """System text and Gemini contents; a tool result names its call by function name."""
    call_names: dict[str, str] = {}

    def function_call(call: dict[str, Any]) -> dict[str, Any]:
        name = str((call.get("function") or {}).get("name", ""))
        call_names[str(call.get("id"))] = name
        return {"functionCall": {"name": name, "args": tool_arguments(call)}}

    def model_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
        return assistant_blocks(message, NAME, text=_text, tool_use=function_call)

    def function_response(message: dict[str, Any]) -> dict[str, Any]:
        call_id = str(message.get("tool_call_id", ""))
        response = {
            "name": call_names.get(call_id, call_id),
            "response": _function_response(message.get("content")),
        }
        return {"functionResponse": response}

    return split_turns(
        messages,
        NAME,
        user=_parts,
        assistant=model_parts,
        tool_result=function_response,
        assistant_role="model",
        blocks_key="parts",
    )


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        return {"functionCallingConfig": {"mode": mode}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise unsupported(NAME, f"tool_choice {choice!r}")


def _declarations(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    declarations = []
    for function in function_tools(tools, NAME):
        declaration: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def _generation_config(merged: dict[str, Any]) -> dict[str, Any]:
    config = {theirs: merged[ours] for ours, theirs in _CONFIG_FIELDS.items() if ours in merged}
    limit = output_limit(merged)
    if limit:
        config["maxOutputTokens"] = limit
    stop = stop_sequences(merged)
    if stop:
        config["stopSequences"] = stop
    response_format = merged.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    return config


def to_generate_request(model: ResolvedModel, body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request as a Gemini generateContent request."""
    merged = merge_defaults(model, body)
    refuse_unsupported(merged, NAME, n=True, response_format=True)
    system, contents = _contents(merged.get("messages") or [])
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": [{"text": system}]}
    if merged.get("tools"):
        request["tools"] = _declarations(merged["tools"])
        tool_config = _tool_config(merged.get("tool_choice"))
        if tool_config:
            request["toolConfig"] = tool_config
    config = _generation_config(merged)
    if config:
        request["generationConfig"] = config
    return request


def _usage(metadata: dict[str, Any]) -> dict[str, Any]:
    completion = int(metadata.get("candidatesTokenCount") or 0) + int(
        metadata.get("thoughtsTokenCount") or 0
    )
    cached = int(metadata.get("cachedContentTokenCount") or 0)
    return usage_of(int(metadata.get("promptTokenCount") or 0), completion, cached)


def _tool_call(part: dict[str, Any], index: int | None = None) -> dict[str, Any]:
    function_call = part["functionCall"]
    call_id = function_call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
    call = tool_call(call_id, function_call.get("name", ""), function_call.get("args"))
    return call if index is None else {"index": index, **call}


def _finish(candidate: dict[str, Any], has_calls: bool) -> str:
    reason = FINISH_REASONS.get(str(candidate.get("finishReason")), "stop")
    return "tool_calls" if has_calls and reason == "stop" else reason


def _choice(index: int, candidate: dict[str, Any]) -> dict[str, Any]:
    parts = (candidate.get("content") or {}).get("parts") or []
    texts = [p["text"] for p in parts if "text" in p and not p.get("thought")]
    calls = [_tool_call(p) for p in parts if "functionCall" in p]
    return {
        "index": index,
        "message": assistant_message(texts, calls),
        "logprobs": None,
        "finish_reason": _finish(candidate, bool(calls)),
    }


def to_chat_completion(response: dict[str, Any], model: str) -> dict[str, Any]:
    """A Gemini GenerateContentResponse as an OpenAI chat.completion."""
    candidates = response.get("candidates") or []
    result = chat_completion(
        str(response.get("responseId") or f"chatcmpl-{uuid.uuid4().hex}"),
        str(response.get("modelVersion") or model),
        {"role": "assistant", "content": "", "refusal": None},
        # No candidate at all: the prompt itself was blocked.
        "content_filter",
        _usage(response.get("usageMetadata") or {}),
    )
    if candidates:
        result["choices"] = [_choice(i, c) for i, c in enumerate(candidates)]
    return result


def _key_refusal(error: UpstreamError) -> UpstreamError:
    """Google answers a wrong API key with 400 API_KEY_INVALID: report it as the 401 it is,
    so the credential is refetched (rotation) and the call is not taken for a bad request."""
    if error.upstream_status == 400 and "API key not valid" in error.message:
        return UpstreamError(error.message, retryable=False, upstream_status=401)
    return error


class GeminiProvider:
    """Speaks `models/{model}:generateContent` and `:streamGenerateContent?alt=sse`."""

    name = NAME

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    def _url(self, model: ResolvedModel, method: str) -> str:
        root = (model.base_url or DEFAULT_BASE_URL).rstrip("/")
        name = quote(model.upstream_model.removeprefix("models/"), safe="")
        return f"{root}/models/{name}{method}"

    @staticmethod
    def _headers(api_key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if api_key:
            headers["x-goog-api-key"] = api_key
        return headers

    async def complete(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        payload = to_generate_request(model, body)
        url = self._url(model, ":generateContent")
        request = self._http.build_request(
            "POST", url, json=payload, headers=self._headers(api_key)
        )
        try:
            response = await send_json(self._http, request, api_key)
        except UpstreamError as error:
            raise _key_refusal(error) from None
        return to_chat_completion(response, model.upstream_model)

    async def stream(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> AsyncGenerator[dict[str, Any]]:
        payload = to_generate_request(model, body)
        if (payload.get("generationConfig") or {}).get("candidateCount", 1) > 1:
            raise unsupported(NAME, "n > 1 when streaming")
        url = self._url(model, ":streamGenerateContent?alt=sse")
        headers = {**self._headers(api_key), "accept": "text/event-stream"}
        request = self._http.build_request("POST", url, json=payload, headers=headers)
        chunks = ChunkFactory(f"chatcmpl-{uuid.uuid4().hex}", model.upstream_model)
        started, finished, calls, usage = False, False, 0, None
        async with contextlib.AsyncExitStack() as stack:
            try:
                lines = await stack.enter_async_context(open_stream(self._http, request, api_key))
            except UpstreamError as error:
                raise _key_refusal(error) from None
            async for _name, data in sse_events(lines):
                event = parse_event(data)
                if not started:
                    started = True
                    yield chunks.delta({"role": "assistant", "content": ""})
                usage = event.get("usageMetadata") or usage
                candidate = (event.get("candidates") or [{}])[0]
                for part in (candidate.get("content") or {}).get("parts") or []:
                    if "functionCall" in part:
                        yield chunks.delta({"tool_calls": [_tool_call(part, calls)]})
                        calls += 1
                    elif part.get("text") and not part.get("thought"):
                        yield chunks.delta({"content": part["text"]})
                if candidate.get("finishReason"):
                    finished = True
                    yield chunks.delta({}, _finish(candidate, calls > 0))
                elif event.get("promptFeedback", {}).get("blockReason"):
                    finished = True
                    yield chunks.delta({}, "content_filter")
        # Gemini's stream has no end marker: a stream without a finish reason was cut off.
        if not finished:
            raise UpstreamError("upstream stream ended before a finish reason", retryable=True)
        if model.stream_usage and usage:
            yield chunks.usage(_usage(usage))

    async def embed(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        texts = text_inputs(body, NAME)
        name = f"models/{model.upstream_model.removeprefix('models/')}"
        requests = []
        for text in texts:
            one: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
            if body.get("dimensions"):
                one["outputDimensionality"] = body["dimensions"]
            requests.append(one)
        url = self._url(model, ":batchEmbedContents")
        request = self._http.build_request(
            "POST", url, json={"requests": requests}, headers=self._headers(api_key)
        )
        response = await send_json(self._http, request, api_key)
        data = [
            {"object": "embedding", "index": i, "embedding": item.get("values") or []}
            for i, item in enumerate(response.get("embeddings") or [])
        ]
        return {
            "object": "list",
            "data": data,
            "model": model.upstream_model,
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }

    async def check(self, model: ResolvedModel, api_key: str | None) -> None:
        request = self._http.build_request(
            "GET", self._url(model, ""), headers=self._headers(api_key)
        )
        await send_json(self._http, request, api_key)
