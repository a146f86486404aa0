"""Renders chat messages that reference a stored prompt instead of carrying content.

`{"role": "system", "prompt_id": "support", "variables": {...}, "prompt_version": 3}`
becomes `{"role": "system", "content": "<rendered text>"}` before the run starts.
"""

from __future__ import annotations

from typing import Any

from gateway_core.auth.service import Caller
from gateway_core.domain.prompts import Prompt, PromptUse, PromptVersion, render_content
from gateway_core.errors import NotFoundError, PromptNotFoundError
from gateway_core.storage.model_cache import TtlCache
from gateway_core.storage.prompts import PromptRepository
from gateway_core.templating import MissingVariablesError

REFERENCE_KEYS = ("prompt_id", "prompt_version", "variables")


class PromptReferences:
    """Resolves prompt references: the current version briefly cached, pinned ones stored."""

    def __init__(self, prompts: PromptRepository, current: TtlCache[Prompt]) -> None:
        self._prompts = prompts
        self._current = current

    async def render(
        self, messages: list[dict[str, Any]], caller: Caller | None = None
    ) -> tuple[list[dict[str, Any]], list[PromptUse]]:
        """Messages with every prompt reference rendered, and the prompt versions used.

        Unknown prompts or versions are 404 and missing variables 400; both name the
        message. A caller's key must be allowed to use each referenced prompt (403).
        """
        rendered: list[dict[str, Any]] = []
        uses: list[PromptUse] = []
        for index, message in enumerate(messages):
            if message.get("prompt_id") is None:
                rendered.append(message)
                continue
            if caller is not None:
                caller.require("prompts", str(message["prompt_id"]))
            prompt = await self._load(index, message)
            use = PromptUse(prompt_id=prompt.id, version=prompt.version)
            if use not in uses:
                uses.append(use)
            rendered.append(_rendered_message(index, message, prompt))
        return rendered, uses

    async def _load(self, index: int, message: dict[str, Any]) -> Prompt | PromptVersion:
        """The referenced prompt: the pinned version, else the current one."""
        prompt_id = str(message["prompt_id"])
        version = message.get("prompt_version")
        try:
            if version is None:
                return await self._current.get(prompt_id)
            return await self._prompts.get_version(prompt_id, int(version))
        except PromptNotFoundError:
            raise PromptNotFoundError(
                f"messages[{index}]: the prompt `{prompt_id}` does not exist",
                param=f"messages[{index}].prompt_id",
            ) from None
        except NotFoundError:
            raise PromptNotFoundError(
                f"messages[{index}]: the prompt `{prompt_id}` has no version {version}",
                param=f"messages[{index}].prompt_version",
                code="version_not_found",
            ) from None


def _rendered_message(
    index: int, message: dict[str, Any], prompt: Prompt | PromptVersion
) -> dict[str, Any]:
    """The message with `content` rendered and the reference keys removed."""
    try:
        content = render_content(prompt.content, message.get("variables") or {})
    except MissingVariablesError as error:
        raise MissingVariablesError(
            error.names,
            param=f"messages[{index}].variables",
            context=f"messages[{index}]: prompt `{prompt.id}` version {prompt.version}",
        ) from None
    kept = {key: value for key, value in message.items() if key not in REFERENCE_KEYS}
    return {**kept, "content": content}
