"""Knowledge-base documents and search, for API keys with the `knowledge_bases` permission.

Every request is counted against the key's rate limits (with a token estimate of the text
it embeds), checked against the key's permission, then resolved to an enabled knowledge
base and the backend of its type. Documents are embedded in batches of the KB's
`ingestion.embed_batch_size`; a query is embedded for vector and hybrid search only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway_api.services.answers import cursor_page
from gateway_api.services.limits import RateLimitGate
from gateway_core.auth.service import Caller
from gateway_core.domain.knowledge import (
    MAX_TOP_K,
    DocumentIn,
    EmbeddedDocument,
    KnowledgeBase,
    KnowledgeBaseRef,
    SearchMode,
)
from gateway_core.errors import (
    ConfigurationError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    UpstreamError,
)
from gateway_core.knowledge.backend import KnowledgeBackend, SearchQuery
from gateway_core.knowledge.embedding import TextEmbedder
from gateway_core.knowledge.filters import Condition, Filter, parse_filter
from gateway_core.storage.knowledge_bases import KnowledgeBaseRepository
from gateway_core.telemetry import Telemetry
from gateway_core.telemetry.retrieval import traced_search

_CHARS_PER_TOKEN = 4
DOCUMENT_OBJECT = "knowledge_base.document"


class KnowledgeBackends:
    """The backend instance for each `backend.type` (pgvector, qdrant, bedrock)."""

    def __init__(self, by_type: Mapping[str, KnowledgeBackend]) -> None:
        self._by_type = dict(by_type)

    def for_kb(self, kb: KnowledgeBase) -> KnowledgeBackend:
        return self.for_type(kb.backend.type, kb.id)

    def for_type(self, backend_type: str, kb_id: str) -> KnowledgeBackend:
        backend = self._by_type.get(backend_type)
        if backend is None:
            raise ConfigurationError(
                f"knowledge base {kb_id!r} uses backend {backend_type!r},"
                " which this gateway does not run"
            )
        return backend


async def usable_knowledge_base(repository: KnowledgeBaseRepository, kb_id: str) -> KnowledgeBase:
    """The enabled knowledge base `kb_id`; 404 when it does not exist or is disabled."""
    kb = await repository.find(kb_id)
    if kb is None or not kb.enabled:
        state = "does not exist" if kb is None else "is disabled"
        raise NotFoundError(
            f"knowledge base {kb_id!r} {state}",
            param="knowledge_base_id",
            code="knowledge_base_not_found",
        )
    return kb


async def kb_ref(repository: KnowledgeBaseRepository, kb: KnowledgeBase) -> KnowledgeBaseRef:
    """What the backend needs: the KB with the dimensions of its embedding model."""
    model = await repository.embedding_model(kb.embedding_model_id)
    return KnowledgeBaseRef(
        id=kb.id, dimensions=model.dimensions, distance=kb.distance, backend=kb.backend
    )


def refuse_read_only(kb: KnowledgeBase, backend: KnowledgeBackend) -> None:
    """405 for a write to a backend whose documents are managed elsewhere (Bedrock: S3)."""
    if backend.read_only:
        raise MethodNotAllowedError(
            f"knowledge base {kb.id!r} is read-only: its {kb.backend.type} backend manages"
            " its documents itself (for AWS Bedrock, in the knowledge base's S3 data source)"
        )


async def embed_documents(
    embedder: TextEmbedder,
    kb: KnowledgeBase,
    dimensions: int,
    documents: Sequence[DocumentIn],
) -> list[EmbeddedDocument]:
    """Each document with its vector, embedded in batches of `ingestion.embed_batch_size`."""
    size = kb.ingestion.embed_batch_size
    embedded: list[EmbeddedDocument] = []
    for start in range(0, len(documents), size):
        batch = documents[start : start + size]
        vectors = await embed_checked(
            embedder, kb.embedding_model_id, [doc.content for doc in batch], dimensions
        )
        embedded.extend(
            EmbeddedDocument(id=doc.id, content=doc.content, metadata=doc.metadata, embedding=v)
            for doc, v in zip(batch, vectors, strict=True)
        )
    return embedded


async def embed_checked(
    embedder: TextEmbedder, model_id: str, texts: Sequence[str], dimensions: int
) -> list[list[float]]:
    """Vectors for `texts`, one each, of the embedding model's stated dimensions."""
    batch = await embedder.embed_texts(model_id, texts)
    if len(batch.vectors) != len(texts):
        raise UpstreamError(
            f"embedding model {model_id!r} returned {len(batch.vectors)} vectors"
            f" for {len(texts)} texts",
            retryable=False,
        )
    for vector in batch.vectors:
        if len(vector) != dimensions:
            raise UpstreamError(
                f"embedding model {model_id!r} returned {len(vector)} dimensions;"
                f" it is configured with {dimensions}",
                retryable=False,
                code="embedding_dimensions_mismatch",
            )
    return batch.vectors


def parse_optional_filter(raw: Any, path: str = "filter") -> Filter | None:
    """The filter language's parse of a JSON value (400 naming the path), None if absent."""
    return None if raw is None else parse_filter(raw, path=path)


def _tokens(texts: Sequence[str]) -> int:
    return sum(len(text) for text in texts) // _CHARS_PER_TOKEN + 1


def document_answer(document: Any) -> dict[str, Any]:
    return {"object": DOCUMENT_OBJECT, **document.model_dump(mode="json")}


@dataclass(frozen=True)
class SearchRequest:
    """One search as the router parsed it; `filter` is the raw JSON."""

    query: str
    top_k: int = 5
    similarity_threshold: float | None = None
    filter: Any = None
    mode: SearchMode = "vector"


@dataclass(frozen=True)
class ResolvedKnowledgeBase:
    """An enabled knowledge base the caller may use, with its backend."""

    kb: KnowledgeBase
    ref: KnowledgeBaseRef
    backend: KnowledgeBackend


class KnowledgeService:
    """The /v1/knowledge-bases use cases: documents and search."""

    def __init__(
        self,
        *,
        repository: KnowledgeBaseRepository,
        backends: KnowledgeBackends,
        embedder: TextEmbedder,
        limits: RateLimitGate,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._repository = repository
        self._backends = backends
        self._embedder = embedder
        self._limits = limits
        self._telemetry = telemetry or Telemetry.off()

    async def _resolve(
        self, caller: Caller, kb_id: str, headers: dict[str, str], *, tokens: int = 0
    ) -> ResolvedKnowledgeBase:
        # Limits first (every answer carries the x-ratelimit-* headers), then the
        # permission, so a key learns nothing of knowledge bases it may not use.
        await self._limits.admit(caller, tokens=tokens, headers=headers)
        caller.require("knowledge_bases", kb_id)
        kb = await usable_knowledge_base(self._repository, kb_id)
        backend = self._backends.for_kb(kb)
        return ResolvedKnowledgeBase(kb, await kb_ref(self._repository, kb), backend)

    async def resolve_writable(
        self, caller: Caller, kb_id: str, headers: dict[str, str]
    ) -> ResolvedKnowledgeBase:
        """The knowledge base a write goes to: past limits, permission, existence, and
        the read-only check (405 for Bedrock)."""
        found = await self._resolve(caller, kb_id, headers)
        refuse_read_only(found.kb, found.backend)
        return found

    async def list_knowledge_bases(self, caller: Caller, headers: dict[str, str]) -> dict[str, Any]:
        """The enabled knowledge bases this key may search."""
        await self._limits.admit(caller, tokens=0, headers=headers)
        usable = [
            kb.model_dump(mode="json")
            for kb in await self._repository.list_all()
            if kb.enabled and caller.permissions.allows("knowledge_bases", kb.id)
        ]
        return {"object": "list", "data": usable}

    async def add_documents(
        self, caller: Caller, kb_id: str, documents: Sequence[DocumentIn], headers: dict[str, str]
    ) -> dict[str, Any]:
        """Embed and upsert (all or nothing); a later document with the same id wins."""
        tokens = _tokens([doc.content for doc in documents])
        found = await self._resolve(caller, kb_id, headers, tokens=tokens)
        refuse_read_only(found.kb, found.backend)
        unique = list({doc.id: doc for doc in documents}.values())
        embedded = await embed_documents(self._embedder, found.kb, found.ref.dimensions, unique)
        await found.backend.upsert(found.ref, embedded)
        return {
            "object": "list",
            "data": [{"object": DOCUMENT_OBJECT, "id": doc.id} for doc in unique],
            "upserted": len(unique),
        }

    async def get_document(
        self, caller: Caller, kb_id: str, document_id: str, headers: dict[str, str]
    ) -> dict[str, Any]:
        found = await self._resolve(caller, kb_id, headers)
        document = await found.backend.get(found.ref, document_id)
        if document is None:
            raise _document_not_found(kb_id, document_id)
        return document_answer(document)

    async def delete_document(
        self, caller: Caller, kb_id: str, document_id: str, headers: dict[str, str]
    ) -> dict[str, Any]:
        found = await self._resolve(caller, kb_id, headers)
        refuse_read_only(found.kb, found.backend)
        if await found.backend.delete(found.ref, [document_id]) == 0:
            raise _document_not_found(kb_id, document_id)
        return {"object": DOCUMENT_OBJECT, "id": document_id, "deleted": True}

    async def list_documents(
        self,
        caller: Caller,
        kb_id: str,
        *,
        raw_filter: Any,
        limit: int,
        after: str | None,
        headers: dict[str, str],
    ) -> dict[str, Any]:
        """Documents by id after `after`, matching the filter; `last_id` is the next cursor."""
        found = await self._resolve(caller, kb_id, headers)
        filter = parse_optional_filter(raw_filter)
        page = await found.backend.list(found.ref, filter=filter, limit=limit, after=after)
        return cursor_page([document_answer(doc) for doc in page.documents], page.has_more)

    async def delete_matching(
        self, caller: Caller, kb_id: str, raw_filter: Any, headers: dict[str, str]
    ) -> dict[str, Any]:
        """Delete every document the filter matches (a filter is required)."""
        found = await self._resolve(caller, kb_id, headers)
        refuse_read_only(found.kb, found.backend)
        if raw_filter is None:
            raise InvalidRequestError(
                "a filter is required; delete documents one by one by id otherwise",
                param="filter",
            )
        deleted = await found.backend.delete_matching(
            found.ref, parse_filter(raw_filter, path="filter")
        )
        return {"object": "knowledge_base.documents.deleted", "deleted": deleted}

    async def delete_source(
        self, caller: Caller, kb_id: str, document_id: str, headers: dict[str, str]
    ) -> dict[str, Any]:
        """Delete every chunk an ingestion stored for `document_id` (its metadata's)."""
        found = await self.resolve_writable(caller, kb_id, headers)
        match = Condition(field="document_id", operator="eq", value=document_id)
        deleted = await found.backend.delete_matching(found.ref, match)
        return {
            "object": "knowledge_base.documents.deleted",
            "document_id": document_id,
            "deleted": deleted,
        }

    async def search(
        self, caller: Caller, kb_id: str, request: SearchRequest, headers: dict[str, str]
    ) -> dict[str, Any]:
        """Hits best first: `{"object": "list", "data": [{id, content, score, metadata}]}`."""
        if not 1 <= request.top_k <= MAX_TOP_K:
            raise InvalidRequestError(f"top_k must be between 1 and {MAX_TOP_K}", param="top_k")
        found = await self._resolve(caller, kb_id, headers, tokens=_tokens([request.query]))
        filter = parse_optional_filter(request.filter)
        vector = None
        if request.mode != "keyword":
            vectors = await embed_checked(
                self._embedder, found.kb.embedding_model_id, [request.query], found.ref.dimensions
            )
            vector = vectors[0]
        query = SearchQuery(
            text=request.query,
            vector=vector,
            top_k=request.top_k,
            similarity_threshold=request.similarity_threshold,
            filter=filter,
            mode=request.mode,
        )
        hits = await traced_search(self._telemetry, found.backend, found.ref, query)
        return {"object": "list", "data": [hit.model_dump(mode="json") for hit in hits]}


def _document_not_found(kb_id: str, document_id: str) -> NotFoundError:
    return NotFoundError(
        f"knowledge base {kb_id!r} has no document {document_id!r}",
        param="document_id",
        code="document_not_found",
    )
