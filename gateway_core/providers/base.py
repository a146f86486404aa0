"""The provider protocol every upstream adapter implements."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Protocol

from gateway_core.domain.chat import ResolvedModel


class LlmProvider(Protocol):
    """Calls one kind of upstream in OpenAI's chat-completions shape."""

    async def complete(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        """Return one OpenAI `chat.completion` object."""
        ...

    def stream(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> AsyncGenerator[dict[str, Any]]:
        """Yield OpenAI `chat.completion.chunk` objects until the upstream is done."""
        ...


def merge_defaults(model: ResolvedModel, body: dict[str, Any]) -> dict[str, Any]:
    """The upstream body: model defaults first, the caller's own fields win."""
    merged: dict[str, Any] = model.defaults.model_dump(exclude_none=True)
    merged.update(body)
    merged["model"] = model.upstream_model
    return merged


def redact(text: str, *secrets: str | None) -> str:
    """Remove every secret value from text that may reach a caller or a log."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text
