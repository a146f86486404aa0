"""ChunkAssembler rebuilds the chat.completion a stream delivered piece by piece."""

from __future__ import annotations

from typing import Any

from gateway_core.streaming.assembler import ChunkAssembler, response_to_chunks


def _chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def test_text_deltas_join_into_one_message_with_usage() -> None:
    assembler = ChunkAssembler()
    for chunk in (
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        _chunk({}, "stop"),
    ):
        assembler.add(chunk)
    assembler.add({"id": "c1", "choices": [], "usage": {"total_tokens": 9}})
    response = assembler.response()
    assert response["object"] == "chat.completion"
    assert response["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert response["choices"][0]["finish_reason"] == "stop"
    assert response["usage"] == {"total_tokens": 9}
    assert assembler.chunks == 5


def test_tool_call_argument_deltas_are_concatenated_per_call() -> None:
    assembler = ChunkAssembler()
    assembler.add(
        _chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ],
            }
        )
    )
    assembler.add(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}))
    assembler.add(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}))
    assembler.add(
        _chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "call_b", "function": {"name": "now", "arguments": "{}"}}
                ]
            }
        )
    )
    assembler.add(_chunk({}, "tool_calls"))
    message = assembler.response()["choices"][0]["message"]
    assert message["content"] is None
    assert [c["id"] for c in message["tool_calls"]] == ["call_a", "call_b"]
    assert message["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    }


def test_choices_with_n_greater_than_one_stay_separate() -> None:
    assembler = ChunkAssembler()
    assembler.add(_chunk({"content": "a"}, index=1))
    assembler.add(_chunk({"content": "b"}, index=0))
    choices = assembler.response()["choices"]
    assert [c["message"]["content"] for c in choices] == ["b", "a"]


def test_response_to_chunks_reassembles_to_the_same_response() -> None:
    response = {
        "id": "c9",
        "object": "chat.completion",
        "created": 5,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "logprobs": None,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
            },
            {
                "index": 1,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": "hi"},
            },
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    assembler = ChunkAssembler()
    for chunk in response_to_chunks(response):
        assert chunk["object"] == "chat.completion.chunk"
        assembler.add(chunk)
    assert assembler.response() == response
