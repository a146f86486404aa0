"""A loopback Bedrock runtime: Converse JSON and ConverseStream in AWS event-stream framing.

Each event-stream message is: total length and headers length (uint32, big-endian),
a CRC32 of those 8 bytes, headers (name length, name, type 7 = string, value length,
value), the JSON payload, and a CRC32 of everything before it — what botocore decodes.
Requests must carry a SigV4 Authorization header whose scope names this fake's access
key id, region and the `bedrock` service.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
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
    words,
)
from tests.fakes.openai_upstream import fake_vector

ERROR_CODES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value
    )


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return event_message(headers, json.dumps(payload).encode())


def exception_event(code: str, message: str) -> bytes:
    kind = code[0].lower() + code[1:]
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return event_message(headers, json.dumps({"message": message}).encode())


def seen(body: dict[str, Any]) -> Seen:
    """Converse request → provider-neutral view."""
    view = Seen()
    if body.get("system"):
        view.system = "".join(block.get("text", "") for block in body["system"])
    view.max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
    tools = (body.get("toolConfig") or {}).get("tools", [])
    view.tools = [tool["toolSpec"]["name"] for tool in tools]
    for message in body["messages"]:
        texts = []
        for block in message["content"]:
            if "text" in block:
                texts.append(block["text"])
            elif "image" in block:
                view.images.append(f"image/{block['image']['format']}")
            elif "toolUse" in block:
                view.tool_calls.append((block["toolUse"]["name"], block["toolUse"]["input"]))
            elif "toolResult" in block:
                result = "".join(c.get("text", "") for c in block["toolResult"]["content"])
                view.tool_results.append((block["toolResult"]["toolUseId"], result))
                texts.append(result)
        view.turns.append((message["role"], "".join(texts)))
    return view


def _problem(body: dict[str, Any]) -> str | None:
    messages = body.get("messages") or []
    if not messages or messages[0]["role"] != "user":
        return "A conversation must start with a user message."
    pending: set[str] = set()
    uses_tools = False
    for previous, message in zip([None, *messages], messages, strict=False):
        if previous is not None and previous["role"] == message["role"]:
            return "A conversation must alternate between user and assistant roles."
        results = {b["toolResult"]["toolUseId"] for b in message["content"] if "toolResult" in b}
        if results - pending:
            return "The toolResult blocks do not match the toolUse blocks of the previous turn."
        pending = {b["toolUse"]["toolUseId"] for b in message["content"] if "toolUse" in b}
        uses_tools = uses_tools or bool(results or pending)
        for block in message["content"]:
            if "image" in block:
                base64.b64decode(block["image"]["source"]["bytes"], validate=True)
    if uses_tools and not body.get("toolConfig"):
        return "toolConfig field must be defined when using toolUse and toolResult content blocks."
    return None


class FakeBedrock(LoopbackServer):
    """Scripted Bedrock runtime; `base_url` is the endpoint_url boto3 is given."""

    def __init__(self, access_key_id: str = "AKIAFAKEBEDROCK", region: str = "us-east-1") -> None:
        super().__init__(
            [
                Route("/model/{model_id:path}/converse", self._converse, methods=["POST"]),
                Route("/model/{model_id:path}/converse-stream", self._converse, methods=["POST"]),
                Route("/model/{model_id:path}/invoke", self._invoke, methods=["POST"]),
                Route("/foundation-models/{model_id:path}", self._foundation_model),
            ]
        )
        self.access_key_id = access_key_id
        self.region = region
        # When set, a scripted break sends this stream exception instead of dropping the line.
        self.stream_exception: str | None = None

    @property
    def base_url(self) -> str:
        return self.root_url

    def seen(self, index: int = -1) -> Seen:
        return seen(self.requests[index].body)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        code = ERROR_CODES.get(status, "InternalServerException")
        return JSONResponse(
            {"message": message},
            status_code=status,
            headers={"x-amzn-errortype": f"{code}:http://internal.amazon.com/", **(headers or {})},
        )

    def _refused(self, request: Request) -> Response | None:
        scope = _SCOPE.search(request.headers.get("authorization", ""))
        if scope is None or not request.headers.get("x-amz-date"):
            return JSONResponse(
                {"message": "Missing Authentication Token"},
                status_code=403,
                headers={"x-amzn-errortype": "MissingAuthenticationTokenException:"},
            )
        access_key_id, region, service = scope.groups()
        if access_key_id != self.access_key_id:
            return JSONResponse(
                {"message": "The security token included in the request is invalid."},
                status_code=403,
                headers={"x-amzn-errortype": "UnrecognizedClientException:"},
            )
        if region != self.region or service != "bedrock":
            return self._error(403, f"Credential should be scoped to a valid region ({region})")
        return None

    async def _foundation_model(self, request: Request) -> Response:
        refused = self._refused(request)
        model_id = request.path_params["model_id"]
        summary = {"modelId": model_id, "modelArn": f"arn:aws:bedrock:::{model_id}"}
        return refused or JSONResponse({"modelDetails": summary})

    async def _invoke(self, request: Request) -> Response:
        """InvokeModel for the embedding models: Titan Text Embeddings and Cohere Embed."""
        body = await request.json()
        self.record(request, body)
        refused = self._refused(request)
        if refused is not None:
            return refused
        scenario = await self.scripted_scenario()
        if scenario.status != 200:
            return self._error(scenario.status, scenario.error_message, scenario.headers)
        model_id = request.path_params["model_id"]
        if "amazon.titan-embed-text" in model_id:
            answer, tokens = _titan_answer(model_id, body)
        elif "cohere.embed" in model_id:
            answer, tokens = _cohere_answer(model_id, body)
        else:
            return self._error(400, f"The provided model identifier is invalid: {model_id}")
        if isinstance(answer, str):
            return self._error(400, answer)
        headers = {"x-amzn-bedrock-input-token-count": str(tokens)}
        return JSONResponse(answer, headers=headers)

    async def _converse(self, request: Request) -> Response:
        body = await request.json()
        record = self.record(request, body)
        refused = self._refused(request)
        if refused is not None:
            return refused
        reply = await self.scripted_reply(body, _problem(body), self._error, seen)
        if isinstance(reply, Response):
            return reply
        scenario, text = reply
        usage = {"inputTokens": len(json.dumps(body["messages"]).split())}
        usage["outputTokens"] = len(text.split())
        usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
        if request.url.path.endswith("/converse-stream"):
            events = self._events(text, scenario, usage, record)
            return StreamingResponse(events, media_type="application/vnd.amazon.eventstream")
        record.finished = True
        return JSONResponse(self._response(text, scenario, usage))

    @staticmethod
    def _response(text: str, scenario: Scenario, usage: dict[str, int]) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"text": text}]
        stop = "end_turn"
        if scenario.tool_calls:
            stop = "tool_use"
            content = []
            for call in scenario.tool_calls:
                call_id, name, arguments, _ = split_arguments(call)
                use = {"toolUseId": call_id, "name": name, "input": json.loads(arguments)}
                content.append({"toolUse": use})
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": usage,
            "metrics": {"latencyMs": 12},
        }

    @staticmethod
    def _stream_events(text: str, scenario: Scenario, usage: dict[str, int]) -> list[bytes]:
        events = [event("messageStart", {"role": "assistant"})]
        stop = "end_turn"
        if scenario.tool_calls:
            stop = "tool_use"
            for index, call in enumerate(scenario.tool_calls):
                call_id, name, _, pieces = split_arguments(call)
                start = {"toolUse": {"toolUseId": call_id, "name": name}}
                events.append(
                    event("contentBlockStart", {"contentBlockIndex": index, "start": start})
                )
                for piece in pieces:
                    delta = {"toolUse": {"input": piece}}
                    events.append(
                        event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
                    )
                events.append(event("contentBlockStop", {"contentBlockIndex": index}))
        else:
            for word in words(text):
                events.append(
                    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word}})
                )
            events.append(event("contentBlockStop", {"contentBlockIndex": 0}))
        events.append(event("messageStop", {"stopReason": stop}))
        events.append(event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}))
        return events

    def _events(
        self, text: str, scenario: Scenario, usage: dict[str, int], record: Recorded
    ) -> Any:
        break_with = None
        if self.stream_exception:
            break_with = exception_event(self.stream_exception, scenario.error_message)
        events = self._stream_events(text, scenario, usage)
        return play_stream(events, scenario, record, break_with=break_with)


TITAN_V2_SIZES = (256, 512, 1024)
COHERE_V4_SIZES = (256, 512, 1024, 1536)
COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")


def _malformed(problem: str) -> str:
    return f"Malformed input request: #: {problem}, please reformat your input and try again."


def _titan_answer(model_id: str, body: dict[str, Any]) -> tuple[dict[str, Any] | str, int]:
    """Titan Text Embeddings: one `inputText`; V2 takes `dimensions` and `normalize`."""
    allowed = {"inputText", "dimensions", "normalize", "embeddingTypes"}
    if "v2" not in model_id:
        allowed = {"inputText"}
    for key in body:
        if key not in allowed:
            return _malformed(f"extraneous key [{key}] is not permitted"), 0
    text = body.get("inputText")
    if not isinstance(text, str):
        return _malformed("required key [inputText] not found"), 0
    if not text:
        return _malformed("expected minLength: 1, actual: 0"), 0
    size = body.get("dimensions", 1024) if "v2" in model_id else 1536
    if size not in (TITAN_V2_SIZES if "v2" in model_id else (1536,)):
        return _malformed(f"{size} is not a valid enum value"), 0
    vector = fake_vector(text, size)
    tokens = len(text.split())
    answer: dict[str, Any] = {"embedding": vector, "inputTextTokenCount": tokens}
    if "v2" in model_id:
        answer["embeddingsByType"] = {"float": vector}
    return answer, tokens


def _cohere_answer(model_id: str, body: dict[str, Any]) -> tuple[dict[str, Any] | str, int]:
    """Cohere Embed: up to 96 `texts` with an `input_type`; v4 also `output_dimension`."""
    texts = body.get("texts")
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        return "texts: required, an array of strings", 0
    if len(texts) > 96:
        return f"Malformed input request: expected maxItems: 96, actual: {len(texts)}", 0
    if body.get("input_type") not in COHERE_INPUT_TYPES:
        return "input_type: required, one of " + ", ".join(COHERE_INPUT_TYPES), 0
    if "v4" in model_id:
        size = body.get("output_dimension", 1536)
        if size not in COHERE_V4_SIZES:
            return f"output_dimension: {size} is not one of 256, 512, 1024, 1536", 0
    elif "output_dimension" in body:
        return "Malformed input request: extraneous key [output_dimension] is not permitted", 0
    else:
        size = 1024
    vectors = [fake_vector([body["input_type"], text], size) for text in texts]
    answer: dict[str, Any] = {"id": "emb-fake-cohere", "texts": texts}
    if body.get("embedding_types"):
        answer |= {"embeddings": {"float": vectors}, "response_type": "embeddings_by_type"}
    else:
        answer |= {"embeddings": vectors, "response_type": "embeddings_floats"}
    return answer, sum(len(text.split()) for text in texts)
