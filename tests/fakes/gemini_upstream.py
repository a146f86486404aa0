"""A loopback server speaking Google's Generative Language API (Gemini), JSON and SSE.

`POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
`:batchEmbedContents` and `GET /v1beta/models/{model}`, with Google's error shape.
Like the real API, a wrong API key is a 400 whose reason is API_KEY_INVALID.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer, Recorded, Scenario, Seen, play_stream, words

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def error_body(status: int, message: str, reason: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if reason:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return {"error": error}


def _error(status: int, message: str, headers: dict[str, str]) -> Response:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def seen(body: dict[str, Any]) -> Seen:
    """Gemini request → provider-neutral view."""
    view = Seen()
    instruction = body.get("systemInstruction")
    if instruction:
        view.system = "".join(p.get("text", "") for p in instruction["parts"])
    for tool in body.get("tools", []):
        view.tools += [d["name"] for d in tool.get("functionDeclarations", [])]
    view.max_tokens = (body.get("generationConfig") or {}).get("maxOutputTokens")
    for content in body["contents"]:
        texts = []
        for part in content["parts"]:
            if "text" in part:
                texts.append(part["text"])
            elif "inlineData" in part:
                view.images.append(part["inlineData"]["mimeType"])
            elif "functionCall" in part:
                call = part["functionCall"]
                view.tool_calls.append((call["name"], call.get("args", {})))
            elif "functionResponse" in part:
                response = part["functionResponse"]
                result = response["response"]
                text = result.get("result") if set(result) == {"result"} else json.dumps(result)
                view.tool_results.append((response["name"], str(text)))
                texts.append(str(text))
        view.turns.append(("assistant" if content["role"] == "model" else "user", "".join(texts)))
    return view


def _problem(body: dict[str, Any]) -> str | None:
    contents = body.get("contents") or []
    if not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    called: set[str] = set()
    for content in contents:
        if content.get("role") not in ("user", "model"):
            return f"Please use a valid role: user, model. Got {content.get('role')!r}."
        for part in content["parts"]:
            if "functionCall" in part:
                called.add(part["functionCall"]["name"])
            if "functionResponse" in part and part["functionResponse"]["name"] not in called:
                return "function response parts must answer a function call by name"
            if "functionResponse" in part and not isinstance(
                part["functionResponse"].get("response"), dict
            ):
                return "functionResponse.response must be an object"
    return None


class FakeGemini(LoopbackServer):
    """Scripted Gemini upstream; `base_url` is `http://host/v1beta`."""

    def __init__(self, api_key: str | None = "gemini-test-secret") -> None:
        super().__init__(
            [Route("/v1beta/models/{target:path}", self._route, methods=["GET", "POST"])]
        )
        self.api_key = api_key

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1beta"

    def seen(self, index: int = -1) -> Seen:
        return seen(self.requests[index].body)

    def _refused(self, request: Request) -> Response | None:
        presented = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if self.api_key and presented != self.api_key:
            body = error_body(
                400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID"
            )
            return JSONResponse(body, status_code=400)
        return None

    async def _route(self, request: Request) -> Response:
        target = request.path_params["target"]
        model, _, method = target.partition(":")
        refused = self._refused(request)
        if request.method == "GET":
            return refused or JSONResponse({"name": f"models/{model}", "displayName": model})
        body = await request.json()
        record = self.record(request, body)
        if refused is not None:
            return refused
        if method == "batchEmbedContents":
            embeddings = [
                {"values": [float(len(r["content"]["parts"][0]["text"])), 0.25]}
                for r in body["requests"]
            ]
            return JSONResponse({"embeddings": embeddings})
        if method not in ("generateContent", "streamGenerateContent"):
            return JSONResponse(error_body(404, f"method {method} not found"), status_code=404)
        reply = await self.scripted_reply(body, _problem(body), _error, seen)
        if isinstance(reply, Response):
            return reply
        scenario, text = reply
        usage = {
            "promptTokenCount": len(json.dumps(body["contents"]).split()),
            "candidatesTokenCount": len(text.split()),
        }
        usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]
        if method == "streamGenerateContent":
            if request.query_params.get("alt") != "sse":
                return JSONResponse(error_body(400, "this fake only streams with alt=sse"), 400)
            events = self._events(model, text, scenario, usage, record)
            return StreamingResponse(events, media_type="text/event-stream")
        record.finished = True
        parts = self._parts(text, scenario)
        return JSONResponse(self._response(model, parts, "STOP", usage))

    @staticmethod
    def _parts(text: str, scenario: Scenario) -> list[dict[str, Any]]:
        if scenario.tool_calls:
            return [
                {
                    "functionCall": {
                        "name": call["function"]["name"],
                        "args": json.loads(call["function"]["arguments"]),
                    }
                }
                for call in scenario.tool_calls
            ]
        return [{"text": text}]

    @staticmethod
    def _response(
        model: str, parts: list[dict[str, Any]], finish: str | None, usage: dict[str, int] | None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        response: dict[str, Any] = {
            "candidates": [candidate],
            "modelVersion": model,
            "responseId": "fake-response-1",
        }
        if usage:
            response["usageMetadata"] = usage
        return response

    def _events(
        self, model: str, text: str, scenario: Scenario, usage: dict[str, int], record: Recorded
    ) -> Any:
        if scenario.tool_calls:
            pieces = [self._parts(text, scenario)]
        else:
            pieces = [[{"text": word}] for word in words(text)]
        events = []
        for index, parts in enumerate(pieces):
            last = index == len(pieces) - 1
            event = self._response(model, parts, "STOP" if last else None, usage if last else None)
            events.append(f"data: {json.dumps(event)}\r\n\r\n")
        return play_stream(events, scenario, record)
