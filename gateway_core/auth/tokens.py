"""A token estimate that needs no tokenizer download: about four characters per token."""

from __future__ import annotations

import json
from typing import Any

_CHARS_PER_TOKEN = 4
_PER_MESSAGE = 4


def estimate_prompt_tokens(messages: list[dict[str, Any]], tools: Any = None) -> int:
    """An upper-leaning estimate of a request's prompt tokens."""
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif content is not None:
            chars += len(json.dumps(content))
        if message.get("tool_calls"):
            chars += len(json.dumps(message["tool_calls"]))
    if tools:
        chars += len(json.dumps(tools))
    return chars // _CHARS_PER_TOKEN + _PER_MESSAGE * len(messages) + 1


def estimate_request_tokens(body: dict[str, Any]) -> int:
    """Prompt estimate plus the completion budget the request asks for (as OpenAI counts)."""
    prompt = estimate_prompt_tokens(body.get("messages") or [], body.get("tools"))
    budget = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return prompt + int(budget)
