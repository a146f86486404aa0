"""Knowledge-base repository: versioned definitions, checked against their embedding model."""

from __future__ import annotations

from dataclasses import dataclass

from gateway_core.domain.knowledge import (
    KnowledgeBase,
    KnowledgeBaseBase,
    KnowledgeBaseCreate,
    KnowledgeBaseUpdate,
    KnowledgeBaseVersion,
)
from gateway_core.errors import InvalidRequestError, NotFoundError
from gateway_core.storage.database import Connection, ConnectionSource
from gateway_core.storage.versioned import VersionedRepository, VersionedSpec


class KnowledgeBaseNotFoundError(NotFoundError):
    default_code = "knowledge_base_not_found"


@dataclass(frozen=True)
class EmbeddingModelInfo:
    """What a knowledge base needs of its embedding model."""

    id: str
    dimensions: int
    enabled: bool


_EMBEDDING_MODEL = (
    "SELECT id, definition->>'kind' AS kind, (definition->>'dimensions')::int AS dimensions,"
    " COALESCE((definition->>'enabled')::boolean, true) AS enabled FROM models WHERE id = %s"
)


async def _embedding_model(conn: Connection, model_id: str) -> EmbeddingModelInfo:
    """The named model if it exists and is an embedding model with dimensions (400 if not)."""
    cursor = await conn.execute(_EMBEDDING_MODEL, (model_id,))
    row = await cursor.fetchone()
    param = "embedding_model_id"
    if row is None:
        raise InvalidRequestError(
            f"model {model_id!r} does not exist", param=param, code="invalid_model"
        )
    if row["kind"] != "embedding":
        raise InvalidRequestError(
            f"model {model_id!r} is a {row['kind'] or 'chat'} model, not an embedding model",
            param=param,
            code="invalid_model",
        )
    if row["dimensions"] is None:
        raise InvalidRequestError(
            f"embedding model {model_id!r} does not state its dimensions",
            param=param,
            code="invalid_model",
        )
    return EmbeddingModelInfo(row["id"], row["dimensions"], row["enabled"])


async def _check_embedding_model(conn: Connection, kb: KnowledgeBaseBase) -> None:
    await _embedding_model(conn, kb.embedding_model_id)


KNOWLEDGE_BASES = VersionedSpec(
    kind="knowledge base",
    table="knowledge_bases",
    versions_table="knowledge_base_versions",
    key_column="knowledge_base_id",
    entity_model=KnowledgeBase,
    version_model=KnowledgeBaseVersion,
    create_model=KnowledgeBaseCreate,
    update_model=KnowledgeBaseUpdate,
    not_found_error=KnowledgeBaseNotFoundError,
    not_found_param="knowledge_base_id",
    check=_check_embedding_model,
)


class KnowledgeBaseRepository(
    VersionedRepository[
        KnowledgeBase, KnowledgeBaseVersion, KnowledgeBaseCreate, KnowledgeBaseUpdate
    ]
):
    """Stores knowledge-base definitions as JSON documents keyed by id."""

    def __init__(self, pool: ConnectionSource) -> None:
        super().__init__(pool, KNOWLEDGE_BASES)
        self._source = pool

    async def embedding_model(self, model_id: str) -> EmbeddingModelInfo:
        """The embedding model a knowledge base names (400 when it is not one)."""
        async with self._source.connection() as conn:
            return await _embedding_model(conn, model_id)
