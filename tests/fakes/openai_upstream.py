"""A loopback server that speaks OpenAI's chat-completions wire format (JSON and SSE).

Tests script it: each queued Scenario answers one request; with none queued it echoes.
It records every request and whether the caller hung up before the answer finished.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Scenario:
    """How the upstream answers one request."""

    content: str | None = None  # reply text (default: echo of the last user message)
    status: int = 200  # != 200 answers an OpenAI error body
    error_message: str = "upstream says no"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the first byte
    chunk_delay_s: float = 0.0  # between stream chunks
    break_after_chunks: int | None = None  # drop the connection mid-stream
    hang: bool = False  # never answer (until the caller hangs up)
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    disconnected: bool = False
    finished: bool = False
    # The caller's end of the TCP connection: equal ports are one reused connection.
    client_port: int | None = None

    @classmethod
    def of(cls, request: Request, body: dict[str, Any]) -> Recorded:
        port = request.client.port if request.client else None
        return cls(request.url.path, dict(request.headers), body, client_port=port)


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [part if i == 0 else " " + part for i, part in enumerate(parts)]


class FakeOpenAI:
    """The scripted upstream; `base_url` is what a gateway model points at."""

    def __init__(
        self, api_key: str | None = "sk-upstream-test-secret", embedding_dimensions: int = 16
    ) -> None:
        self.api_key = api_key
        # The native vector size of every embedding model here (text-embedding-3-small: 1536).
        self.embedding_dimensions = embedding_dimensions
        self.scenarios: deque[Scenario] = deque()
        self.requests: list[Recorded] = []
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/openai/deployments/{name}/chat/completions", self._chat, methods=["POST"]),
            ]
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *scenarios: Scenario) -> None:
        self.scenarios.extend(scenarios)

    async def start(self, port: int = 0) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    def _error(self, status: int, message: str, headers: dict[str, str]) -> Response:
        return JSONResponse(
            {
                "error": {
                    "message": message,
                    "type": "invalid_request_error" if status < 500 else "server_error",
                    "param": None,
                    "code": None,
                }
            },
            status_code=status,
            headers=headers,
        )

    async def _embeddings(self, request: Request) -> Response:
        """OpenAI's /v1/embeddings: text or token-id inputs, float or base64 vectors."""
        body = await request.json()
        self.requests.append(Recorded.of(request, body))
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided", {})
        scenario = self.scenarios.popleft() if self.scenarios else Scenario()
        if scenario.delay_s:
            await asyncio.sleep(scenario.delay_s)
        if scenario.status != 200:
            return self._error(scenario.status, scenario.error_message, scenario.headers)
        problem = _embedding_problem(body)
        if problem:
            return self._error(400, problem, {})
        inputs = body["input"]
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        size = body.get("dimensions") or self.embedding_dimensions
        encoding = body.get("encoding_format", "float")
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(item, size, encoding)}
            for i, item in enumerate(inputs)
        ]
        tokens = sum(len(i) if isinstance(i, list) else len(i.split()) for i in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        answer = {"object": "list", "data": data, "model": body["model"], "usage": usage}
        return JSONResponse(answer)

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        record = Recorded.of(request, body)
        self.requests.append(record)
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided", {})
        scenario = self.scenarios.popleft() if self.scenarios else Scenario()
        if scenario.hang:
            while not await request.is_disconnected():
                await asyncio.sleep(0.05)
            record.disconnected = True
            return Response(status_code=499)
        if scenario.delay_s:
            await asyncio.sleep(scenario.delay_s)
        if scenario.status != 200:
            return self._error(scenario.status, scenario.error_message, scenario.headers)
        text = scenario.content
        if text is None:
            last_user = next((m for m in reversed(body["messages"]) if m["role"] == "user"), {})
            text = f"echo: {last_user.get('content', '')}"
        if body.get("stream"):
            return StreamingResponse(
                self._stream(body, text, scenario, record), media_type="text/event-stream"
            )
        record.finished = True
        return JSONResponse(self._completion(body, text, scenario))

    @staticmethod
    def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
        prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion = len(text.split())
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, body: dict[str, Any], text: str, scenario: Scenario) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        finish = "stop"
        if scenario.tool_calls:
            message = {"role": "assistant", "content": None, "tool_calls": scenario.tool_calls}
            finish = "tool_calls"
        return {
            "id": "chatcmpl-fake123",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": self._usage(body, text),
        }

    async def _stream(
        self, body: dict[str, Any], text: str, scenario: Scenario, record: Recorded
    ) -> Any:
        base = {
            "id": "chatcmpl-fake123",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": word} for word in _words(text)]
        finish = "stop"
        if scenario.tool_calls:  # OpenAI streams a call's name first, then argument pieces
            deltas, finish = [{"role": "assistant", "content": None}], "tool_calls"
            for index, call in enumerate(scenario.tool_calls):
                head = {**call, "index": index, "function": {**call["function"], "arguments": ""}}
                arguments = call["function"]["arguments"]
                half = len(arguments) // 2
                deltas.append({"tool_calls": [head]})
                for piece in (arguments[:half], arguments[half:]):
                    piece_delta = {"index": index, "function": {"arguments": piece}}
                    deltas.append({"tool_calls": [piece_delta]})
        try:
            for sent, delta in enumerate(deltas):
                if scenario.break_after_chunks is not None and sent >= scenario.break_after_chunks:
                    raise ConnectionAbortedError("scripted mid-stream failure")
                chunk = {
                    **base,
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
                    ],
                }
                if include_usage:
                    chunk["usage"] = None
                yield f"data: {json.dumps(chunk)}\n\n"
                if scenario.chunk_delay_s:
                    await asyncio.sleep(scenario.chunk_delay_s)
            final = {
                **base,
                "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}],
            }
            yield f"data: {json.dumps(final)}\n\n"
            if include_usage:
                usage = {**base, "choices": [], "usage": self._usage(body, text)}
                yield f"data: {json.dumps(usage)}\n\n"
            yield "data: [DONE]\n\n"
            record.finished = True
        except asyncio.CancelledError:
            record.disconnected = True
            raise


def _embedding_problem(body: dict[str, Any]) -> str | None:
    """What OpenAI refuses in an embeddings request (the subset tests reach)."""
    inputs = body.get("input")
    if inputs in (None, "", []):
        return "'$.input' is invalid. Please check the API reference."
    if body.get("encoding_format", "float") not in ("float", "base64"):
        return "'encoding_format' must be one of 'float' or 'base64'"
    if "dimensions" in body and not str(body.get("model", "")).startswith("text-embedding-3"):
        return "This model does not support specifying dimensions."
    return None


def fake_vector(item: Any, size: int, encoding: str = "float") -> list[float] | str:
    """A unit vector that depends only on the input (and, like OpenAI's, on `size`)."""
    seed = hashlib.sha256(json.dumps(item).encode()).digest()
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(size)]
    norm = sum(value * value for value in values) ** 0.5
    vector = [value / norm for value in values]
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
    return vector
