"""Admin API for knowledge bases at /admin/knowledge-bases: CRUD, history, revert.

GET, POST, PUT and revert answer the KB with its `document_count` and `backend_health`.
PUT takes `?reembed=true` to re-embed the documents when the change needs it (another
embedding model, distance or backend); without it such a change to a KB with documents
is a 409.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from gateway_api.deps import EntitiesDep, IfMatchDep
from gateway_api.routers.versioned import VersionedRoutes, versioned_router
from gateway_api.services.knowledge_admin import KnowledgeBaseDetail
from gateway_core.domain.knowledge import (
    KnowledgeBase,
    KnowledgeBaseCreate,
    KnowledgeBaseUpdate,
    KnowledgeBaseVersion,
)

PREFIX = "/knowledge-bases"

router = versioned_router(
    VersionedRoutes[KnowledgeBase, KnowledgeBaseVersion, KnowledgeBaseCreate, KnowledgeBaseUpdate](
        prefix=PREFIX,
        entity="knowledge_base",
        create_body=KnowledgeBaseCreate,
        update_body=KnowledgeBaseUpdate,
        entity_model=KnowledgeBaseDetail,
        version_model=KnowledgeBaseVersion,
        service=lambda services: services.knowledge_bases,
        update_route=False,  # this module's PUT takes `reembed`
    )
)


@router.put("/{entity_id}", response_model=KnowledgeBaseDetail)
async def update_knowledge_base(
    entity_id: str,
    body: KnowledgeBaseUpdate,
    services: EntitiesDep,
    expected_version: IfMatchDep,
    reembed: Annotated[bool, Query()] = False,
) -> KnowledgeBase:
    """Replace the definition as a new version; `reembed=true` re-embeds the documents
    when the embedding model, distance or backend changes (409 otherwise)."""
    return await services.knowledge_bases.update(
        entity_id, body, expected_version=expected_version, reembed=reembed
    )
