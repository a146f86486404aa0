"""AWS Bedrock through boto3's Converse and ConverseStream, in OpenAI's chat format.

boto3 blocks, so every call (client creation, request, each stream read) runs on the
provider's own thread pool: the event loop never waits on a socket, and a burst of
long streams cannot starve the loop's default executor.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import threading
import uuid
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import urllib3.exceptions
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from gateway_core.domain.chat import ResolvedModel
from gateway_core.errors import (
    ConfigurationError,
    GatewayError,
    InvalidRequestError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gateway_core.providers import bedrock_embeddings as embeddings
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
    text_of,
    tool_arguments,
    tool_call,
    unsupported,
    usage_of,
)
from gateway_core.providers.http import error_for_status
from gateway_core.providers.turns import assistant_blocks, content_blocks, split_turns

NAME = "bedrock"
T = TypeVar("T")
# Titan embeds one text per call: this many calls of one request run at once.
EMBED_CONCURRENCY = 8
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# Error codes (service errors and stream exceptions) to the HTTP status they stand for.
_STATUS_BY_CODE = {
    "throttlingexception": 429,
    "modelnotreadyexception": 429,
    "servicequotaexceededexception": 400,
    "validationexception": 400,
    "resourcenotfoundexception": 404,
    "accessdeniedexception": 403,
    "unrecognizedclientexception": 403,
    "invalidsignatureexception": 403,
    "expiredtokenexception": 403,
    "modeltimeoutexception": 408,
    "modelerrorexception": 502,
    "modelstreamerrorexception": 502,
    "internalserverexception": 500,
    "serviceunavailableexception": 503,
}
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


@dataclass(frozen=True)
class AwsKeys:
    """Static AWS credentials parsed from a credential value."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def parse_aws_keys(value: str | None) -> AwsKeys | None:
    """`{"access_key_id": ..., "secret_access_key": ...}` or `AKID:SECRET[:TOKEN]`; None = chain."""
    if not value:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        akid = parsed.get("access_key_id") or parsed.get("aws_access_key_id")
        secret = parsed.get("secret_access_key") or parsed.get("aws_secret_access_key")
        token = parsed.get("session_token") or parsed.get("aws_session_token")
    else:
        akid, _, rest = value.partition(":")
        secret, _, token = rest.partition(":")
    if not akid or not secret:
        raise ConfigurationError(
            "bedrock credential must hold access_key_id and secret_access_key",
            code="credential_invalid",
        )
    return AwsKeys(str(akid), str(secret), str(token) if token else None)


def _image(part: dict[str, Any]) -> dict[str, Any]:
    url = str((part.get("image_url") or {}).get("url", ""))
    media_type, data = parse_data_url(url, NAME)
    image_format = _IMAGE_FORMATS.get(media_type)
    if image_format is None:
        raise unsupported(NAME, f"images of type {media_type}")
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise InvalidRequestError("image data is not valid base64", param="messages") from None
    return {"image": {"format": image_format, "source": {"bytes": raw}}}


def _text(text: Any) -> dict[str, Any]:
    return {"text": text}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    return content_blocks(content, NAME, text=_text, image=_image)


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    use = {
        "toolUseId": call.get("id"),
        "name": (call.get("function") or {}).get("name"),
        "input": tool_arguments(call),
    }
    return {"toolUse": use}


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    return assistant_blocks(message, NAME, text=_text, tool_use=_tool_use)


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    result = {
        "toolUseId": message.get("tool_call_id"),
        "content": [{"text": text_of(message.get("content"), NAME)}],
    }
    return {"toolResult": result}


def _messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """System text and Converse messages; consecutive turns of one role are merged."""
    return split_turns(
        messages, NAME, user=_user_blocks, assistant=_assistant_blocks, tool_result=_tool_result
    )


def _tool_config(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any]:
    specs = []
    for function in function_tools(tools, NAME):
        spec: dict[str, Any] = {
            "name": function.get("name"),
            "inputSchema": {"json": input_schema(function)},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice in (None, "auto"):
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        config["toolChoice"] = {"tool": {"name": (choice.get("function") or {}).get("name")}}
    else:
        raise unsupported(NAME, f"tool_choice {choice!r}")
    return config


def to_converse_request(model: ResolvedModel, body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request as Converse keyword arguments."""
    merged = merge_defaults(model, body)
    refuse_unsupported(merged, NAME)
    refuse_unmapped_sampling(model, merged, NAME)
    system, messages = _messages(merged.get("messages") or [])
    request: dict[str, Any] = {"modelId": model.upstream_model, "messages": messages}
    if system:
        request["system"] = [{"text": system}]
    inference: dict[str, Any] = {}
    limit = output_limit(merged)
    if limit:
        inference["maxTokens"] = limit
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP")):
        if merged.get(ours) is not None:
            inference[theirs] = merged[ours]
    stop = stop_sequences(merged)
    if stop:
        inference["stopSequences"] = stop
    if inference:
        request["inferenceConfig"] = inference
    if merged.get("tools"):
        request["toolConfig"] = _tool_config(merged["tools"], merged.get("tool_choice"))
    return request


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    cached = int(usage.get("cacheReadInputTokens") or 0)
    prompt = int(usage.get("inputTokens") or 0) + cached
    prompt += int(usage.get("cacheWriteInputTokens") or 0)
    return usage_of(prompt, int(usage.get("outputTokens") or 0), cached)


def to_chat_completion(response: dict[str, Any], model: str) -> dict[str, Any]:
    """A Converse response as an OpenAI chat.completion."""
    content = ((response.get("output") or {}).get("message") or {}).get("content") or []
    texts = [block["text"] for block in content if "text" in block]
    uses = [block["toolUse"] for block in content if "toolUse" in block]
    calls = [tool_call(use.get("toolUseId"), use.get("name"), use.get("input")) for use in uses]
    request_id = (response.get("ResponseMetadata") or {}).get("RequestId") or uuid.uuid4().hex
    return chat_completion(
        f"chatcmpl-{request_id}",
        model,
        assistant_message(texts, calls),
        FINISH_REASONS.get(str(response.get("stopReason")), "stop"),
        _usage(response.get("usage") or {}),
    )


class _StreamTranslator:
    """Turns ConverseStream events into OpenAI chunks."""

    def __init__(self, model: str, stream_usage: bool) -> None:
        self._chunks = ChunkFactory(f"chatcmpl-{uuid.uuid4().hex}", model)
        self._stream_usage = stream_usage
        self._tool_index: dict[int, int] = {}
        self.stopped = False

    def translate(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        if "messageStart" in event:
            return [self._chunks.delta({"role": "assistant", "content": ""})]
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = (start.get("start") or {}).get("toolUse")
            if not use:
                return []
            index = int(start.get("contentBlockIndex", 0))
            position = self._tool_index[index] = len(self._tool_index)
            return [self._chunks.tool_call_start(position, use.get("toolUseId"), use.get("name"))]
        if "contentBlockDelta" in event:
            return self._delta(event["contentBlockDelta"])
        if "messageStop" in event:
            self.stopped = True
            reason = event["messageStop"].get("stopReason")
            return [self._chunks.delta({}, FINISH_REASONS.get(str(reason), "stop"))]
        if "metadata" in event and self._stream_usage:
            return [self._chunks.usage(_usage(event["metadata"].get("usage") or {}))]
        return []

    def _delta(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        delta = block.get("delta") or {}
        if "text" in delta:
            return [self._chunks.delta({"content": delta["text"]})]
        index = int(block.get("contentBlockIndex", 0))
        if "toolUse" in delta and index in self._tool_index:
            piece = delta["toolUse"].get("input", "")
            return [self._chunks.tool_call_arguments(self._tool_index[index], piece)]
        return []  # reasoning content has no OpenAI counterpart


def _client_error(exc: ClientError, secrets: tuple[str | None, ...]) -> UpstreamError:
    error = exc.response.get("Error") or {}
    code = str(error.get("Code") or "UnknownError")
    status = _STATUS_BY_CODE.get(code.lower())
    if status is None:
        status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 500)
    message = redact(f"{code}: {error.get('Message') or ''}", *secrets)
    return error_for_status(status, json.dumps({"message": message}).encode(), None, None)


def translate_error(exc: Exception, secrets: tuple[str | None, ...]) -> GatewayError:
    """The gateway error for a boto3/botocore/urllib3 failure, secrets removed."""
    kind = type(exc).__name__
    if isinstance(exc, ClientError):
        return _client_error(exc, secrets)
    if isinstance(exc, NoCredentialsError):
        return ConfigurationError("no AWS credentials for bedrock", code="credential_missing")
    if isinstance(exc, ParamValidationError):
        return InvalidRequestError(redact(f"bedrock refused the request: {exc}", *secrets))
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return UpstreamTimeoutError(f"upstream timed out ({kind})", retryable=True)
    # Only the exception's kind: botocore's texts can quote request details.
    return UpstreamError(f"upstream unreachable ({kind})", retryable=True)


_FAILURES = (BotoCoreError, ClientError, urllib3.exceptions.HTTPError, OSError)


class BedrockProvider:
    """Calls bedrock-runtime Converse / ConverseStream / InvokeModel with SigV4 (boto3)."""

    name = NAME

    def __init__(self, max_threads: int = 64) -> None:
        self._max_threads = max_threads
        self._pool: ThreadPoolExecutor | None = None
        self._clients: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    async def _run(self, work: Callable[[], T]) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._max_threads, thread_name_prefix="bedrock")
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _client(self, service: str, model: ResolvedModel, api_key: str | None) -> Any:
        """A cached boto3 client per service, region, endpoint and credential."""
        keys = parse_aws_keys(api_key)
        digest = hashlib.sha256((api_key or "").encode()).hexdigest()
        cache_key = (service, model.region or "", model.base_url or "", digest)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                session = boto3.session.Session(
                    aws_access_key_id=keys.access_key_id if keys else None,
                    aws_secret_access_key=keys.secret_access_key if keys else None,
                    aws_session_token=keys.session_token if keys else None,
                    region_name=model.region,
                )
                config = Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},  # Temporal retries
                    connect_timeout=10,
                    read_timeout=600,
                    max_pool_connections=self._max_threads,
                )
                client = session.client(service, endpoint_url=model.base_url, config=config)
                self._clients[cache_key] = client
        return client

    async def _call(
        self, model: ResolvedModel, api_key: str | None, service: str, method: str, **kwargs: Any
    ) -> dict[str, Any]:
        secrets = _secrets(api_key)

        def call() -> dict[str, Any]:
            result: dict[str, Any] = getattr(self._client(service, model, api_key), method)(
                **kwargs
            )
            return result

        try:
            return await self._run(call)
        except _FAILURES as exc:
            raise translate_error(exc, secrets) from None

    async def complete(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        request = to_converse_request(model, body)
        response = await self._call(model, api_key, "bedrock-runtime", "converse", **request)
        return to_chat_completion(response, model.upstream_model)

    async def stream(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> AsyncGenerator[dict[str, Any]]:
        request = to_converse_request(model, body)
        response = await self._call(model, api_key, "bedrock-runtime", "converse_stream", **request)
        events = response["stream"]
        iterator: Iterator[dict[str, Any]] = iter(events)
        translator = _StreamTranslator(model.upstream_model, model.stream_usage)
        try:
            while True:
                try:
                    event = await self._run(lambda: next(iterator, None))
                except _FAILURES as exc:
                    raise translate_error(exc, _secrets(api_key)) from None
                if event is None:
                    break
                for chunk in translator.translate(event):
                    yield chunk
        finally:
            events.close()
        if not translator.stopped:
            raise UpstreamError("upstream stream ended before messageStop", retryable=True)

    async def embed(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        """Titan or Cohere embeddings: one InvokeModel per text (Titan) or per 96 (Cohere)."""
        requests = embeddings.invoke_requests(model, body)
        limit = asyncio.Semaphore(EMBED_CONCURRENCY)

        async def invoke(request: embeddings.InvokeRequest) -> tuple[list[list[float]], int]:
            async with limit:
                answer, headers = await self._invoke(model, api_key, request.body)
            return embeddings.vectors_of(answer, request.count), embeddings.tokens_of(
                answer, headers
            )

        answers = await asyncio.gather(*(invoke(request) for request in requests))
        vectors = [vector for batch, _ in answers for vector in batch]
        return embeddings.embeddings_list(model, vectors, sum(tokens for _, tokens in answers))

    async def _invoke(
        self, model: ResolvedModel, api_key: str | None, body: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """One InvokeModel call: the JSON answer and the HTTP headers (read on our pool)."""

        def call() -> tuple[dict[str, Any], dict[str, str]]:
            response = self._client("bedrock-runtime", model, api_key).invoke_model(
                modelId=model.upstream_model,
                body=json.dumps(body).encode(),
                contentType="application/json",
                accept="application/json",
            )
            answer = json.loads(response["body"].read())
            headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
            return answer, headers

        try:
            return await self._run(call)
        except _FAILURES as exc:
            raise translate_error(exc, _secrets(api_key)) from None
        except ValueError:
            raise UpstreamError("bedrock sent a malformed answer", retryable=True) from None

    async def check(self, model: ResolvedModel, api_key: str | None) -> None:
        await self._call(
            model,
            api_key,
            "bedrock",
            "get_foundation_model",
            modelIdentifier=model.upstream_model,
        )


def _secrets(api_key: str | None) -> tuple[str | None, ...]:
    keys = parse_aws_keys(api_key) if api_key else None
    if keys is None:
        return (api_key,)
    return (api_key, keys.secret_access_key, keys.session_token)
