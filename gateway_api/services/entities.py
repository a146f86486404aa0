"""Writes to versioned entities that also drop the entity from this process's TTL cache.

Chat reads models, chains and prompts through short TTL caches; an admin write made
here must be visible to the next request at once, so every write invalidates its id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic

from gateway_api.schemas import RenderedPrompt
from gateway_core.domain.chains import ChainCreate, ChainUpdate, ChainVersion, ModelChain
from gateway_core.domain.models import Model, ModelCreate, ModelUpdate, ModelVersion
from gateway_core.domain.prompts import (
    Prompt,
    PromptCreate,
    PromptUpdate,
    PromptVersion,
    VariableValue,
    render_content,
)
from gateway_core.storage.prompts import PromptRepository
from gateway_core.storage.versioned import (
    CreateT,
    EntityT,
    Page,
    UpdateT,
    VersionedRepository,
    VersionT,
)
from gateway_core.userflows.definition import (
    Workflow,
    WorkflowCreate,
    WorkflowUpdate,
    WorkflowVersion,
)

if TYPE_CHECKING:  # knowledge_admin builds on VersionedEntityService below
    from gateway_api.services.knowledge_admin import KnowledgeBaseAdmin


class VersionedEntityService(Generic[EntityT, VersionT, CreateT, UpdateT]):
    """The admin operations on one entity kind; `invalidate(id)` runs after each write."""

    def __init__(
        self,
        repository: VersionedRepository[EntityT, VersionT, CreateT, UpdateT],
        invalidate: Callable[[str], None],
    ) -> None:
        self._repository = repository
        self._invalidate = invalidate

    async def create(self, body: CreateT) -> EntityT:
        created = await self._repository.create(body)
        self._invalidate(body.id)
        return created

    async def get(self, entity_id: str) -> EntityT:
        return await self._repository.get(entity_id)

    async def list_page(self, *, limit: int, after: str | None) -> Page[EntityT]:
        return await self._repository.list_page(limit=limit, after=after)

    async def update(
        self, entity_id: str, body: UpdateT, *, expected_version: int | None
    ) -> EntityT:
        updated = await self._repository.update(entity_id, body, expected_version=expected_version)
        self._invalidate(entity_id)
        return updated

    async def delete(self, entity_id: str) -> None:
        await self._repository.delete(entity_id)
        self._invalidate(entity_id)

    async def list_versions(
        self, entity_id: str, *, limit: int, before: int | None
    ) -> list[VersionT]:
        return await self._repository.list_versions(entity_id, limit=limit, before=before)

    async def get_version(self, entity_id: str, version: int) -> VersionT:
        return await self._repository.get_version(entity_id, version)

    async def revert(
        self, entity_id: str, version: int, *, expected_version: int | None
    ) -> EntityT:
        reverted = await self._repository.revert(
            entity_id, version, expected_version=expected_version
        )
        self._invalidate(entity_id)
        return reverted


ModelService = VersionedEntityService[Model, ModelVersion, ModelCreate, ModelUpdate]
ChainService = VersionedEntityService[ModelChain, ChainVersion, ChainCreate, ChainUpdate]
WorkflowService = VersionedEntityService[Workflow, WorkflowVersion, WorkflowCreate, WorkflowUpdate]


class PromptService(VersionedEntityService[Prompt, PromptVersion, PromptCreate, PromptUpdate]):
    """Prompts add search by name and tag, and rendering with variables."""

    def __init__(self, repository: PromptRepository, invalidate: Callable[[str], None]) -> None:
        super().__init__(repository, invalidate)
        self._prompts = repository

    async def search(
        self, *, name: str | None, tags: list[str] | None, limit: int, after: str | None
    ) -> Page[Prompt]:
        return await self._prompts.list(name=name, tags=tags, limit=limit, after=after)

    async def render(
        self, prompt_id: str, version: int | None, variables: dict[str, VariableValue]
    ) -> RenderedPrompt:
        """The current (or the given) version's text with `variables` filled in."""
        prompt: Prompt | PromptVersion
        if version is None:
            prompt = await self._prompts.get(prompt_id)
        else:
            prompt = await self._prompts.get_version(prompt_id, version)
        content = render_content(prompt.content, variables)
        return RenderedPrompt(prompt_id=prompt.id, version=prompt.version, content=content)


@dataclass(frozen=True)
class EntityServices:
    """One service per versioned entity kind; a new kind adds a field here."""

    models: ModelService
    chains: ChainService
    prompts: PromptService
    knowledge_bases: KnowledgeBaseAdmin
    workflows: WorkflowService
