"""A loopback server speaking Anthropic's Messages API: JSON, SSE events, error shapes.

It checks what the real API checks (x-api-key, anthropic-version, max_tokens, roles
alternating from `user`, tool_result answering the previous turn's tool_use ids), so a
translation mistake fails here the way it would fail against Anthropic.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import (
    LoopbackServer,
    Recorded,
    Scenario,
    Seen,
    play_stream,
    split_arguments,
    sse,
    words,
)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


# A scripted break counts only events that carry something (as the OpenAI fake counts chunks).
_COUNTED_EVENTS = ("event: message_start\n", "event: content_block_delta\n")


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _error(status: int, message: str, headers: dict[str, str]) -> Response:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def _block_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


def seen(body: dict[str, Any]) -> Seen:
    """Anthropic request → provider-neutral view."""
    view = Seen(max_tokens=body.get("max_tokens"), tools=[t["name"] for t in body.get("tools", [])])
    system = body.get("system")
    view.system = _block_text(system) if system is not None else None
    for message in body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        texts = []
        for block in blocks:
            if block["type"] == "text":
                texts.append(block["text"])
            elif block["type"] == "image":
                source = block["source"]
                view.images.append(source.get("media_type") or source.get("url", ""))
            elif block["type"] == "tool_use":
                view.tool_calls.append((block["name"], block["input"]))
            elif block["type"] == "tool_result":
                result = _block_text(block["content"])
                view.tool_results.append((block["tool_use_id"], result))
                texts.append(result)
        view.turns.append((message["role"], "".join(texts)))
    return view


def _problem(body: dict[str, Any]) -> str | None:
    """What the real API would refuse in this body, if anything."""
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages") or []
    if not messages or messages[0]["role"] != "user":
        return "messages: first message must use the user role"
    pending: set[str] = set()
    for previous, message in zip([None, *messages], messages, strict=False):
        if message["role"] not in ("user", "assistant"):
            return f"messages: Unexpected role {message['role']!r}"
        if previous is not None and previous["role"] == message["role"]:
            return "messages: roles must alternate between user and assistant"
        content = message["content"]
        blocks = [] if isinstance(content, str) else content
        results = {b["tool_use_id"] for b in blocks if b["type"] == "tool_result"}
        if results - pending:
            return "messages: tool_result block(s) provided without a matching tool_use"
        pending = {b["id"] for b in blocks if b["type"] == "tool_use"}
    return None


class FakeAnthropic(LoopbackServer):
    """Scripted Anthropic upstream; `base_url` is https://host form (no /v1)."""

    def __init__(self, api_key: str | None = "sk-ant-test-secret") -> None:
        super().__init__(
            [
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        self.api_key = api_key
        # When set, a scripted break sends this `error` event type instead of dropping the line.
        self.stream_error: str | None = None
        self.quote_keys = False

    @property
    def base_url(self) -> str:
        return self.root_url

    def seen(self, index: int = -1) -> Seen:
        return seen(self.requests[index].body)

    def _refused(self, request: Request) -> Response | None:
        # The API takes the key as `x-api-key`; current official SDKs send it as a bearer token.
        presented = request.headers.get("x-api-key") or request.headers.get(
            "authorization", ""
        ).removeprefix("Bearer ")
        if self.api_key and presented != self.api_key:
            # Quoting the refused key, as some providers do, tests that the gateway redacts it.
            message = f"invalid x-api-key: {presented}" if self.quote_keys else "invalid x-api-key"
            return JSONResponse(error_body(401, message), status_code=401)
        if not request.headers.get("anthropic-version"):
            message = "anthropic-version: header is required"
            return JSONResponse(error_body(400, message), status_code=400)
        return None

    async def _models(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        model = {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude"}
        return JSONResponse({"data": [model], "has_more": False, "first_id": None})

    async def _messages(self, request: Request) -> Response:
        body = await request.json()
        record = self.record(request, body)
        refused = self._refused(request)
        if refused is not None:
            return refused
        reply = await self.scripted_reply(body, _problem(body), _error, seen)
        if isinstance(reply, Response):
            return reply
        scenario, text = reply
        usage = {"input_tokens": len(json.dumps(body["messages"]).split()), "output_tokens": 0}
        usage["output_tokens"] = len(text.split())
        if body.get("stream"):
            events = self._events(body, text, scenario, usage, record)
            return StreamingResponse(events, media_type="text/event-stream")
        record.finished = True
        return JSONResponse(self._message(body, text, scenario, usage))

    @staticmethod
    def _message(
        body: dict[str, Any], text: str, scenario: Scenario, usage: dict[str, int]
    ) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        stop = "end_turn"
        if scenario.tool_calls:
            stop = "tool_use"
            for call in scenario.tool_calls:
                call_id, name, arguments, _ = split_arguments(call)
                content.append(
                    {
                        "type": "tool_use",
                        "id": call_id,
                        "name": name,
                        "input": json.loads(arguments),
                    }
                )
        else:
            content.append({"type": "text", "text": text})
        return {
            "id": "msg_fake123",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    def _events(
        self,
        body: dict[str, Any],
        text: str,
        scenario: Scenario,
        usage: dict[str, int],
        record: Recorded,
    ) -> Any:
        message = {**self._message(body, text, scenario, usage), "content": []}
        message["stop_reason"] = None
        message["usage"] = {"input_tokens": usage["input_tokens"], "output_tokens": 1}
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": message})
        ]
        if scenario.tool_calls:
            for index, call in enumerate(scenario.tool_calls):
                call_id, name, _, pieces = split_arguments(call)
                block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
                events.append(
                    (
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": block},
                    )
                )
                for piece in pieces:
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    events.append(
                        (
                            "content_block_delta",
                            {"type": "content_block_delta", "index": index, "delta": delta},
                        )
                    )
                events.append(
                    ("content_block_stop", {"type": "content_block_stop", "index": index})
                )
            stop = "tool_use"
        else:
            block = {"type": "text", "text": ""}
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": block},
                )
            )
            events.append(("ping", {"type": "ping"}))
            for word in words(text):
                delta = {"type": "text_delta", "text": word}
                events.append(
                    (
                        "content_block_delta",
                        {"type": "content_block_delta", "index": 0, "delta": delta},
                    )
                )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
            stop = "end_turn"
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        break_with = None
        if self.stream_error:
            error = error_body(529, scenario.error_message)
            error["error"]["type"] = self.stream_error
            break_with = sse("error", error)
        return play_stream(
            [sse(name, data) for name, data in events],
            scenario,
            record,
            counts=lambda chunk: chunk.startswith(_COUNTED_EVENTS),
            break_with=break_with,
        )
