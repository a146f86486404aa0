"""OpenAI chat messages as the system text and alternating turns other APIs expect.

Anthropic, Bedrock and Gemini all take the system prompt apart from the conversation,
want the conversation as user/assistant turns that alternate, and carry tool results in
a user turn. What differs is only the shape of a block, so each adapter passes small
callables that build its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway_core.providers.base import text_of, unsupported

Block = dict[str, Any]


def content_blocks(
    content: Any,
    provider: str,
    *,
    text: Callable[[Any], Block],
    image: Callable[[dict[str, Any]], Block],
) -> list[Block]:
    """The blocks of a message `content`: a string, or text and `image_url` parts."""
    if isinstance(content, str):
        return [text(content)]
    blocks: list[Block] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            blocks.append(text(part.get("text", "")))
        elif kind == "image_url":
            blocks.append(image(part))
        else:
            raise unsupported(provider, f"content part {kind!r}")
    return blocks


def assistant_blocks(
    message: dict[str, Any],
    provider: str,
    *,
    text: Callable[[str], Block],
    tool_use: Callable[[dict[str, Any]], Block],
) -> list[Block]:
    """The blocks of an assistant message: its text (when any), then one per tool call."""
    blocks: list[Block] = []
    content = text_of(message.get("content"), provider)
    if content:
        blocks.append(text(content))
    for call in message.get("tool_calls") or []:
        blocks.append(tool_use(call))
    return blocks


def split_turns(
    messages: list[dict[str, Any]],
    provider: str,
    *,
    user: Callable[[Any], list[Block]],
    assistant: Callable[[dict[str, Any]], list[Block]],
    tool_result: Callable[[dict[str, Any]], Block],
    assistant_role: str = "assistant",
    blocks_key: str = "content",
) -> tuple[str | None, list[dict[str, Any]]]:
    """The system text (None when there is none) and the turns of a conversation.

    `user` builds the blocks of a user message's content, `assistant` those of an
    assistant message, `tool_result` the one block of a tool message (sent in a user
    turn). Consecutive turns of one role are merged into one, their blocks in order.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text_of(message.get("content"), provider))
            continue
        if role == "user":
            turn, blocks = "user", user(message.get("content"))
        elif role == "assistant":
            turn, blocks = assistant_role, assistant(message)
        elif role == "tool":
            turn, blocks = "user", [tool_result(message)]
        else:
            raise unsupported(provider, f"messages with role {role!r}")
        if turns and turns[-1]["role"] == turn:
            turns[-1][blocks_key].extend(blocks)
        else:
            turns.append({"role": turn, blocks_key: blocks})
    return ("\n\n".join(system) if system else None), turns
