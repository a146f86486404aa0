"""Rebuilds a chat.completion from the chunks of an OpenAI stream."""

from __future__ import annotations

from typing import Any


class ChunkAssembler:
    """Rebuilds the `chat.completion` object from the chunks of a stream."""

    def __init__(self) -> None:
        self.chunks = 0
        self._meta: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        self.chunks += 1
        for field in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(field) is not None:
                self._meta.setdefault(field, chunk[field])
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            self._add_choice(choice)

    def _add_choice(self, choice: dict[str, Any]) -> None:
        index = int(choice.get("index", 0))
        slot = self._choices.setdefault(
            index,
            {
                "index": index,
                "message": {"role": "assistant", "content": None},
                "finish_reason": None,
                "logprobs": None,
            },
        )
        message = slot["message"]
        delta = choice.get("delta") or {}
        if delta.get("role"):
            message["role"] = delta["role"]
        if delta.get("content") is not None:
            message["content"] = (message["content"] or "") + delta["content"]
        if delta.get("refusal") is not None:
            message["refusal"] = (message.get("refusal") or "") + delta["refusal"]
        for call in delta.get("tool_calls") or []:
            self._add_tool_call(message, call)
        if choice.get("finish_reason") is not None:
            slot["finish_reason"] = choice["finish_reason"]

    @staticmethod
    def _add_tool_call(message: dict[str, Any], delta: dict[str, Any]) -> None:
        calls: list[dict[str, Any]] = message.setdefault("tool_calls", [])
        index = int(delta.get("index", len(calls)))
        while len(calls) <= index:
            calls.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        call = calls[index]
        if delta.get("id"):
            call["id"] = delta["id"]
        function = delta.get("function") or {}
        if function.get("name"):
            call["function"]["name"] += function["name"]
        if function.get("arguments"):
            call["function"]["arguments"] += function["arguments"]

    def response(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "id": self._meta.get("id", ""),
            "object": "chat.completion",
            "created": self._meta.get("created", 0),
            "model": self._meta.get("model", ""),
            "choices": [self._choices[i] for i in sorted(self._choices)],
        }
        for field in ("system_fingerprint", "service_tier"):
            if field in self._meta:
                result[field] = self._meta[field]
        if self._usage is not None:
            result["usage"] = self._usage
        return result


def response_to_chunks(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The inverse of ChunkAssembler: a whole chat.completion as stream chunks."""
    base = {
        "id": response.get("id", ""),
        "object": "chat.completion.chunk",
        "created": response.get("created", 0),
        "model": response.get("model", ""),
    }
    if "system_fingerprint" in response:
        base["system_fingerprint"] = response["system_fingerprint"]
    chunks: list[dict[str, Any]] = []
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": message.get("role", "assistant")}
        if message.get("content") is not None:
            delta["content"] = message["content"]
        if message.get("refusal") is not None:
            delta["refusal"] = message["refusal"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {"index": index, **call} for index, call in enumerate(message["tool_calls"])
            ]
        index = choice.get("index", 0)
        chunks.append(
            {
                **base,
                "choices": [
                    {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
                ],
            }
        )
        chunks.append(
            {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": {},
                        "logprobs": None,
                        "finish_reason": choice.get("finish_reason"),
                    }
                ],
            }
        )
    if response.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": response["usage"]})
    return chunks
