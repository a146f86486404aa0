"""Prompt repository: every version of a prompt is kept; updates can be made conditional."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from gateway_core.domain.prompts import (
    Prompt,
    PromptBase,
    PromptCreate,
    PromptUpdate,
    PromptVersion,
    prompt_variables,
)
from gateway_core.errors import PromptNotFoundError
from gateway_core.storage.database import ConnectionSource
from gateway_core.storage.versioned import Page, VersionedRepository, VersionedSpec

PromptPage = Page[Prompt]

_SEARCH = (
    "(%(pattern)s::text IS NULL OR definition->>'name' ILIKE %(pattern)s"
    " OR id ILIKE %(pattern)s)"
    " AND definition->'tags' @> %(tags)s"
)


def _definition(prompt: PromptBase) -> dict[str, Any]:
    """The stored document: the operator's fields plus the variables found in the content."""
    fields = prompt.model_dump(mode="json", include=set(PromptBase.model_fields))
    fields["variables"] = [v.model_dump(mode="json") for v in prompt_variables(prompt.content)]
    return fields


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


PROMPTS = VersionedSpec(
    kind="prompt",
    table="prompts",
    versions_table="prompt_versions",
    key_column="prompt_id",
    entity_model=Prompt,
    version_model=PromptVersion,
    create_model=PromptCreate,
    update_model=PromptUpdate,
    not_found_error=PromptNotFoundError,
    not_found_param="prompt_id",
    definition=_definition,
)


class PromptRepository(VersionedRepository[Prompt, PromptVersion, PromptCreate, PromptUpdate]):
    """Stores prompts as JSON documents keyed by id, with their version history."""

    def __init__(self, pool: ConnectionSource) -> None:
        super().__init__(pool, PROMPTS)

    async def list(
        self,
        *,
        name: str | None = None,
        tags: list[str] | None = None,
        limit: int = 20,
        after: str | None = None,
    ) -> PromptPage:
        """Prompts ordered by id after the id `after`, whose name or id contains `name`
        (case-insensitively) and which carry every tag in `tags`."""
        params = {"pattern": _like_pattern(name) if name else None, "tags": Jsonb(tags or [])}
        return await self.list_page(limit=limit, after=after, where=_SEARCH, params=params)
