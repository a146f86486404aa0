"""The protocol every knowledge-base backend (pgvector, Qdrant, Bedrock) implements.

Scores are similarities, higher is better: cosine similarity in [-1, 1] for `cosine`,
the dot product for `inner_product`, and 1 / (1 + distance) in (0, 1] for `l2`.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway_core.domain.knowledge import (
    BackendHealth,
    EmbeddedDocument,
    KnowledgeBaseRef,
    SearchHit,
    SearchMode,
    StoredDocument,
)
from gateway_core.knowledge.filters import Filter


@dataclass(frozen=True)
class SearchQuery:
    """One search: the query's text (keyword/hybrid) and embedding (vector/hybrid)."""

    text: str
    vector: list[float] | None
    top_k: int = 5
    similarity_threshold: float | None = None
    filter: Filter | None = None
    mode: SearchMode = "vector"


@dataclass(frozen=True)
class DocumentPage:
    """One page of a document listing, ordered by id; `has_more` says if another follows."""

    documents: list[StoredDocument]
    has_more: bool


class KnowledgeBackend(Protocol):
    """Stores and searches the documents of knowledge bases of one backend type."""

    # Bedrock knowledge bases are managed in S3: every write answers 405.
    read_only: bool

    async def prepare(self, kb: KnowledgeBaseRef) -> None:
        """Create what the knowledge base needs (table, index, collection); idempotent."""
        ...

    async def drop(self, kb: KnowledgeBaseRef) -> None:
        """Remove the knowledge base's documents and structures (after its deletion)."""
        ...

    async def upsert(self, kb: KnowledgeBaseRef, documents: Sequence[EmbeddedDocument]) -> None:
        """Insert or replace documents by id, all or nothing."""
        ...

    async def get(self, kb: KnowledgeBaseRef, document_id: str) -> StoredDocument | None: ...

    async def list(
        self, kb: KnowledgeBaseRef, *, filter: Filter | None, limit: int, after: str | None
    ) -> DocumentPage:
        """Documents ordered by id after `after`, matching `filter`."""
        ...

    async def delete(self, kb: KnowledgeBaseRef, document_ids: Sequence[str]) -> int:
        """Delete by id; how many existed."""
        ...

    async def delete_matching(self, kb: KnowledgeBaseRef, filter: Filter) -> int:
        """Delete every document matching `filter`; how many."""
        ...

    async def count(self, kb: KnowledgeBaseRef) -> int: ...

    async def replace_source(
        self, kb: KnowledgeBaseRef, document_id: str, documents: Sequence[EmbeddedDocument]
    ) -> None:
        """Delete every document whose `metadata.document_id` is `document_id`, then store
        `documents` (the chunks of that source's new version); atomic where the backend
        has transactions (pgvector), so a search sees the old chunks or the new ones."""
        ...

    async def source_hash(self, kb: KnowledgeBaseRef, document_id: str) -> str | None:
        """The `metadata.content_hash` stored with a source's chunks, None if none are."""
        ...

    # `builtins.list`: inside this class `list` is the method above.
    async def search(self, kb: KnowledgeBaseRef, query: SearchQuery) -> builtins.list[SearchHit]:
        """At most `top_k` hits best first, each at least `similarity_threshold`.

        A filter operator the backend cannot honour natively is evaluated exactly on the
        gateway side or refused with a 400 naming it, never dropped.
        """
        ...

    async def health(self, kb: KnowledgeBaseRef) -> BackendHealth: ...
