"""Admin writes to knowledge bases: their backend structures follow the definition.

Creating a KB prepares its backend (a pgvector table and indexes, a Qdrant collection);
deleting it drops its documents. A change that moves vectors (another embedding model,
distance or backend) to a KB holding documents is refused with 409 unless the caller asks
for re-embedding: then every document is read, embedded with the new model, and written
to the new structure.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway_api.services.entities import VersionedEntityService
from gateway_api.services.knowledge import (
    KnowledgeBackends,
    embed_documents,
    kb_ref,
    refuse_read_only,
)
from gateway_core.domain.knowledge import (
    BackendHealth,
    DocumentIn,
    EmbeddedDocument,
    KnowledgeBase,
    KnowledgeBaseBase,
    KnowledgeBaseCreate,
    KnowledgeBaseRef,
    KnowledgeBaseUpdate,
    KnowledgeBaseVersion,
)
from gateway_core.errors import ConflictError, GatewayError
from gateway_core.knowledge.embedding import TextEmbedder
from gateway_core.storage.knowledge_bases import KnowledgeBaseRepository

# Re-embedding reads the documents in pages of this many.
REEMBED_PAGE = 500


class KnowledgeBaseDetail(KnowledgeBase):
    """A knowledge base as the admin API shows it: with its documents and backend state."""

    document_count: int | None = None
    backend_health: BackendHealth | None = None


def _moves_vectors(current: KnowledgeBaseBase, new: KnowledgeBaseBase) -> bool:
    return (
        current.embedding_model_id != new.embedding_model_id
        or current.distance != new.distance
        or current.backend != new.backend
    )


class KnowledgeBaseAdmin(
    VersionedEntityService[
        KnowledgeBase, KnowledgeBaseVersion, KnowledgeBaseCreate, KnowledgeBaseUpdate
    ]
):
    """CRUD at /admin/knowledge-bases, keeping backend structures in step."""

    def __init__(
        self,
        repository: KnowledgeBaseRepository,
        backends: KnowledgeBackends,
        embedder: TextEmbedder,
        invalidate: Callable[[str], None] = lambda _id: None,
    ) -> None:
        super().__init__(repository, invalidate)
        self._kbs = repository
        self._backends = backends
        self._embedder = embedder

    async def _ref(self, kb: KnowledgeBaseBase, kb_id: str) -> KnowledgeBaseRef:
        model = await self._kbs.embedding_model(kb.embedding_model_id)
        return KnowledgeBaseRef(
            id=kb_id, dimensions=model.dimensions, distance=kb.distance, backend=kb.backend
        )

    async def detail(self, kb: KnowledgeBase) -> KnowledgeBaseDetail:
        """The KB with its document count and backend health (count None when down)."""
        backend = self._backends.for_kb(kb)
        ref = await kb_ref(self._kbs, kb)
        health = await backend.health(ref)
        # A read-only backend (Bedrock) cannot count its documents: count None.
        counted = health.status == "up" and not backend.read_only
        count = await backend.count(ref) if counted else None
        fields = kb.model_dump()
        return KnowledgeBaseDetail(**fields, document_count=count, backend_health=health)

    async def create(self, body: KnowledgeBaseCreate) -> KnowledgeBaseDetail:
        # The backend first: a KB is never listed whose structures could not be made.
        ref = await self._ref(body, body.id)
        backend = self._backends.for_type(body.backend.type, body.id)
        await backend.prepare(ref)
        return await self.detail(await super().create(body))

    async def get(self, entity_id: str) -> KnowledgeBaseDetail:
        return await self.detail(await self._kbs.get(entity_id))

    async def update(
        self,
        entity_id: str,
        body: KnowledgeBaseUpdate,
        *,
        expected_version: int | None,
        reembed: bool = False,
    ) -> KnowledgeBaseDetail:
        """A new version; 409 if it moves the vectors of a KB with documents (unless
        `reembed`: then the documents are embedded anew and moved)."""
        current = await self._kbs.get(entity_id)
        if not _moves_vectors(current, body):
            updated = await super().update(entity_id, body, expected_version=expected_version)
            return await self.detail(updated)
        old_ref = await kb_ref(self._kbs, current)
        new_ref = await self._ref(body, entity_id)
        old_backend = self._backends.for_kb(current)
        count = 0 if old_backend.read_only else await old_backend.count(old_ref)
        moved: list[EmbeddedDocument] = []
        if count and not reembed:
            raise ConflictError(
                f"knowledge base {entity_id!r} holds {count} documents embedded with"
                f" {current.embedding_model_id!r} ({current.distance}, {current.backend.type});"
                " this change needs them embedded again: repeat it with ?reembed=true",
                param="embedding_model_id",
                code="knowledge_base_not_empty",
            )
        if count:
            moved = await self._reembedded(current, body, old_ref, new_ref.dimensions)
        updated = await super().update(entity_id, body, expected_version=expected_version)
        await self._move(current, old_ref, updated, new_ref, moved)
        return await self.detail(updated)

    async def _reembedded(
        self,
        current: KnowledgeBase,
        body: KnowledgeBaseBase,
        old_ref: KnowledgeBaseRef,
        dimensions: int,
    ) -> list[EmbeddedDocument]:
        """Every document of the KB embedded with the new definition's model (in memory,
        before anything is written, so a failing embedder leaves the KB as it was)."""
        backend = self._backends.for_kb(current)
        target = KnowledgeBase.model_validate(
            {**current.model_dump(), **body.model_dump(include=set(KnowledgeBaseBase.model_fields))}
        )
        refuse_read_only(target, self._backends.for_kb(target))
        documents: list[DocumentIn] = []
        after: str | None = None
        while True:
            page = await backend.list(old_ref, filter=None, limit=REEMBED_PAGE, after=after)
            documents.extend(DocumentIn.model_validate(doc.model_dump()) for doc in page.documents)
            if not page.has_more or not page.documents:
                break
            after = page.documents[-1].id
        return await embed_documents(self._embedder, target, dimensions, documents)

    async def _move(
        self,
        current: KnowledgeBase,
        old_ref: KnowledgeBaseRef,
        updated: KnowledgeBase,
        new_ref: KnowledgeBaseRef,
        documents: list[EmbeddedDocument],
    ) -> None:
        """Rebuild the structures for the new definition and write the new vectors there.

        Same backend, dimensions and distance: replaced in place, all or nothing.
        Otherwise the old structure is dropped first (a failure then leaves the KB empty).
        """
        old_backend, new_backend = self._backends.for_kb(current), self._backends.for_kb(updated)
        same_place = old_backend is new_backend and old_ref == new_ref
        if not same_place:
            if not old_backend.read_only:
                await old_backend.drop(old_ref)
            await new_backend.prepare(new_ref)
        if documents:
            await new_backend.upsert(new_ref, documents)

    async def delete(self, entity_id: str) -> None:
        """Remove the KB and drop its documents (its version history stays)."""
        kb = await self._kbs.get(entity_id)
        await super().delete(entity_id)
        backend = self._backends.for_kb(kb)
        if backend.read_only:
            return
        try:
            ref = await kb_ref(self._kbs, kb)
        except GatewayError:  # the embedding model is gone: the table name needs only the id
            ref = KnowledgeBaseRef(id=kb.id, dimensions=1, distance=kb.distance, backend=kb.backend)
        await backend.drop(ref)

    async def revert(
        self, entity_id: str, version: int, *, expected_version: int | None
    ) -> KnowledgeBaseDetail:
        """An old version made current again, with the same 409 rule as an update."""
        old = await self._kbs.get_version(entity_id, version)
        body = KnowledgeBaseUpdate.model_validate(
            old.model_dump(include=set(KnowledgeBaseUpdate.model_fields))
        )
        return await self.update(entity_id, body, expected_version=expected_version)
