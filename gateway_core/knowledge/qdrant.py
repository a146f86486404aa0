"""Knowledge bases in Qdrant: a remote server (`url`), or local mode in the data dir.

One collection per knowledge base. Qdrant point ids must be UUIDs or integers, so a
document id maps to a uuid5 and stays in the payload: `{"doc_id", "content",
"metadata"}` (filters address `metadata.<field>`). A filter translates to a native
Qdrant filter plus, for what Qdrant cannot express exactly, a residual that is checked
here; searches with a residual over-fetch page by page until `top_k` hits match or the
collection is exhausted. Qdrant has no BM25: keyword search scores the filter's
candidates here (gateway_core.knowledge.term_scoring), hybrid fuses it with the vector
ranking by reciprocal rank fusion.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import numpy
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from gateway_core.credentials.base import CredentialResolver
from gateway_core.domain.knowledge import (
    BackendHealth,
    Distance,
    EmbeddedDocument,
    KnowledgeBaseRef,
    QdrantBackendConfig,
    SearchHit,
    StoredDocument,
)
from gateway_core.errors import (
    ConfigurationError,
    ConflictError,
    GatewayError,
    InvalidRequestError,
    UpstreamError,
)
from gateway_core.knowledge.backend import DocumentPage, SearchQuery
from gateway_core.knowledge.filters import Filter, matches
from gateway_core.knowledge.filters_qdrant import translate_qdrant
from gateway_core.knowledge.term_scoring import RRF_K, bm25_scores, reciprocal_rank_fusion
from gateway_core.providers.http import error_for_status

NAME = "qdrant"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pmp-gateway/knowledge/qdrant")
_DISTANCES = {
    "cosine": models.Distance.COSINE,
    "l2": models.Distance.EUCLID,
    "inner_product": models.Distance.DOT,
}
# Module-level names: inside the class, `list` is the backend's own method.
Hits = list[SearchHit]
Vector = list[float]
KeywordRanking = list[tuple[SearchHit, float | None]]  # each hit with its vector similarity
PayloadSelector = list[str] | bool
_SCROLL_PAGE = 1000
# Hybrid fuses candidate lists this many times top_k long (at least the minimum), as pgvector.
HYBRID_CANDIDATE_FACTOR = 4
HYBRID_MIN_CANDIDATES = 50
_UPSERT_BATCH = 256


def point_id(document_id: str) -> str:
    """The Qdrant point id of a document id (uuid5, stable across processes)."""
    return str(uuid.uuid5(_ID_NAMESPACE, document_id))


def collection_name(kb: KnowledgeBaseRef) -> str:
    """The configured collection, else one named after the knowledge base."""
    return _config(kb).collection or f"pmp-kb-{kb.id}"


def similarity(distance: Distance, score: float) -> float:
    """Qdrant's score as a similarity: cosine and dot as they are, 1 / (1 + d) for Euclid."""
    return 1.0 / (1.0 + score) if distance == "l2" else score


def _similarity_to(kb: KnowledgeBaseRef, query: list[float] | None, stored: Any) -> float | None:
    """The similarity of a stored vector to the query, computed as Qdrant scores it."""
    if query is None or not isinstance(stored, list):
        return None
    a, b = numpy.asarray(query, dtype=numpy.float64), numpy.asarray(stored, dtype=numpy.float64)
    if kb.distance == "l2":
        return 1.0 / (1.0 + float(numpy.linalg.norm(a - b)))
    if kb.distance == "cosine":
        norms = float(numpy.linalg.norm(a) * numpy.linalg.norm(b))
        return float(a @ b) / norms if norms else 0.0
    return float(a @ b)


def _config(kb: KnowledgeBaseRef) -> QdrantBackendConfig:
    if not isinstance(kb.backend, QdrantBackendConfig):
        raise ConfigurationError(f"knowledge base {kb.id!r} is not a qdrant knowledge base")
    return kb.backend


def _stored(payload: dict[str, Any] | None) -> StoredDocument:
    payload = payload or {}
    return StoredDocument(
        id=str(payload.get("doc_id", "")),
        content=str(payload.get("content", "")),
        metadata=dict(payload.get("metadata") or {}),
    )


def _hit(document: StoredDocument, score: float) -> SearchHit:
    return SearchHit(
        id=document.id, content=document.content, score=score, metadata=document.metadata
    )


def _translate(exc: Exception) -> GatewayError:
    """The gateway error for a qdrant-client failure (its texts quote no credential)."""
    if isinstance(exc, UnexpectedResponse):
        status = exc.status_code or 502
        return error_for_status(status, exc.content or b"", None, None)
    if isinstance(exc, ResponseHandlingException | httpx.TransportError | OSError):
        return UpstreamError(f"qdrant unreachable ({type(exc).__name__})", retryable=True)
    return UpstreamError(f"qdrant refused the request: {exc}", retryable=False)


class QdrantBackend:
    """Stores and searches knowledge bases in Qdrant collections."""

    read_only = False

    def __init__(self, credentials: CredentialResolver, local_location: str) -> None:
        # local_location: the folder of local mode's storage, or ":memory:" (tests).
        self._credentials = credentials
        self._local_location = local_location
        self._clients: dict[tuple[str, str], AsyncQdrantClient] = {}
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        """Close every client (local mode releases its storage folder's lock)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    async def _client(self, kb: KnowledgeBaseRef) -> AsyncQdrantClient:
        """One client per server and API key; one for local mode (it locks its folder)."""
        config = _config(kb)
        api_key = await self._credentials.resolve(config.credential) if config.url else None
        key = (config.url or "", hashlib.sha256((api_key or "").encode()).hexdigest())
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._open(config.url, api_key)
                self._clients[key] = client
        return client

    def _open(self, url: str | None, api_key: str | None) -> AsyncQdrantClient:
        if url is not None:
            return AsyncQdrantClient(url=url, api_key=api_key, timeout=30)
        if self._local_location == ":memory:":
            return AsyncQdrantClient(location=":memory:")
        return AsyncQdrantClient(path=self._local_location)

    async def prepare(self, kb: KnowledgeBaseRef) -> None:
        client, name = await self._client(kb), collection_name(kb)
        try:
            if await client.collection_exists(name):
                await self._check_collection(client, kb, name)
                return
            params = models.VectorParams(size=kb.dimensions, distance=_DISTANCES[kb.distance])
            await client.create_collection(name, vectors_config=params)
            if _config(kb).url is not None:  # local mode has no payload indexes
                await client.create_payload_index(name, "doc_id", models.PayloadSchemaType.KEYWORD)
        except (UnexpectedResponse, ResponseHandlingException, httpx.TransportError) as exc:
            raise _translate(exc) from None

    @staticmethod
    async def _check_collection(client: AsyncQdrantClient, kb: KnowledgeBaseRef, name: str) -> None:
        """An existing collection must hold vectors of the knowledge base's shape."""
        vectors = (await client.get_collection(name)).config.params.vectors
        wanted = (kb.dimensions, _DISTANCES[kb.distance])
        found = (
            (vectors.size, vectors.distance) if isinstance(vectors, models.VectorParams) else None
        )
        if found != wanted:
            raise ConflictError(
                f"qdrant collection {name!r} exists with vectors {found}, the knowledge base "
                f"needs {kb.dimensions} dimensions and {kb.distance} distance",
                code="collection_mismatch",
            )

    async def drop(self, kb: KnowledgeBaseRef) -> None:
        client, name = await self._client(kb), collection_name(kb)
        await self._call(client.delete_collection(name))

    async def _call(self, pending: Any) -> Any:
        """Await a client call, translating its failures."""
        try:
            return await pending
        except (UnexpectedResponse, ResponseHandlingException, httpx.TransportError) as exc:
            raise _translate(exc) from None
        except ValueError as exc:  # local mode: e.g. the collection does not exist
            raise ConfigurationError(f"qdrant: {exc}") from None

    async def upsert(self, kb: KnowledgeBaseRef, documents: Sequence[EmbeddedDocument]) -> None:
        for document in documents:
            if len(document.embedding) != kb.dimensions:
                raise InvalidRequestError(
                    f"document {document.id!r} has an embedding of {len(document.embedding)} "
                    f"dimensions; knowledge base {kb.id!r} holds {kb.dimensions}"
                )
        points = [
            models.PointStruct(
                id=point_id(document.id),
                vector=list(document.embedding),
                payload={
                    "doc_id": document.id,
                    "content": document.content,
                    "metadata": document.metadata,
                },
            )
            for document in documents
        ]
        client, name = await self._client(kb), collection_name(kb)
        for start in range(0, len(points), _UPSERT_BATCH):
            batch = points[start : start + _UPSERT_BATCH]
            await self._call(client.upsert(name, points=batch, wait=True))

    async def replace_source(
        self, kb: KnowledgeBaseRef, document_id: str, documents: Sequence[EmbeddedDocument]
    ) -> None:
        """Upsert the new chunks, then delete the source's points that are not among them.

        Qdrant has no transactions: in between, a search may see new chunks beside old
        ones of higher index (never nothing); the README says so.
        """
        await self.upsert(kb, documents)
        keep = {point_id(document.id) for document in documents}
        leftovers = [
            record.id
            async for record in self._source_points(kb, document_id, payload=False)
            if str(record.id) not in keep
        ]
        await self._delete_points(kb, leftovers)

    async def source_hash(self, kb: KnowledgeBaseRef, document_id: str) -> str | None:
        async for record in self._source_points(kb, document_id, payload=["metadata"]):
            metadata = (record.payload or {}).get("metadata") or {}
            found = metadata.get("content_hash")
            return str(found) if found is not None else None
        return None

    async def _source_points(
        self, kb: KnowledgeBaseRef, document_id: str, payload: PayloadSelector
    ) -> AsyncIterator[models.Record]:
        """Every point whose `metadata.document_id` is `document_id`."""
        match = models.FieldCondition(
            key="metadata.document_id", match=models.MatchValue(value=document_id)
        )
        client, name = await self._client(kb), collection_name(kb)
        offset: Any = None
        while True:
            records, offset = await self._call(
                client.scroll(
                    name,
                    scroll_filter=models.Filter(must=[match]),
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_payload=payload,
                )
            )
            for record in records:
                yield record
            if offset is None:
                return

    async def get(self, kb: KnowledgeBaseRef, document_id: str) -> StoredDocument | None:
        client, name = await self._client(kb), collection_name(kb)
        records = await self._call(client.retrieve(name, ids=[point_id(document_id)]))
        return _stored(records[0].payload) if records else None

    async def _scan(
        self,
        kb: KnowledgeBaseRef,
        filter: Filter | None,
        payload: PayloadSelector,
        vectors: bool = False,
    ) -> AsyncIterator[models.Record]:
        """Every point matching `filter` exactly: native part in Qdrant, residual here."""
        native, residual = translate_qdrant(filter, key_prefix="metadata")
        client, name = await self._client(kb), collection_name(kb)
        if residual is not None and isinstance(payload, list) and "metadata" not in payload:
            payload = [*payload, "metadata"]
        offset: Any = None
        while True:
            records, offset = await self._call(
                client.scroll(
                    name,
                    scroll_filter=native,
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_payload=payload,
                    with_vectors=vectors,
                )
            )
            for record in records:
                metadata = (record.payload or {}).get("metadata") or {}
                if residual is None or matches(residual, metadata):
                    yield record
            if offset is None:
                return

    async def list(
        self, kb: KnowledgeBaseRef, *, filter: Filter | None, limit: int, after: str | None
    ) -> DocumentPage:
        # Point ids are hashes, so order by document id here: the scan reads the ids
        # (and metadata for a residual filter) of every matching point, not its content.
        matching: dict[str, Any] = {}
        async for record in self._scan(kb, filter, ["doc_id"]):
            doc_id = str((record.payload or {}).get("doc_id", ""))
            if after is None or doc_id > after:
                matching[doc_id] = record.id
        page_ids = sorted(matching)[: limit + 1]
        client, name = await self._client(kb), collection_name(kb)
        wanted = [matching[doc_id] for doc_id in page_ids[:limit]]
        records = await self._call(client.retrieve(name, ids=wanted)) if wanted else []
        documents = sorted((_stored(record.payload) for record in records), key=lambda d: d.id)
        return DocumentPage(documents=documents, has_more=len(page_ids) > limit)

    async def delete(self, kb: KnowledgeBaseRef, document_ids: Sequence[str]) -> int:
        if not document_ids:
            return 0
        client, name = await self._client(kb), collection_name(kb)
        ids = list({point_id(document_id) for document_id in document_ids})
        existing = await self._call(client.retrieve(name, ids=ids, with_payload=False))
        await self._delete_points(kb, [record.id for record in existing])
        return len(existing)

    async def _delete_points(self, kb: KnowledgeBaseRef, ids: Sequence[Any]) -> None:
        client, name = await self._client(kb), collection_name(kb)
        for start in range(0, len(ids), _SCROLL_PAGE):
            selector = models.PointIdsList(points=list(ids[start : start + _SCROLL_PAGE]))
            await self._call(client.delete(name, points_selector=selector, wait=True))

    async def delete_matching(self, kb: KnowledgeBaseRef, filter: Filter) -> int:
        # Select the ids first (native filter, then the residual here), then delete them.
        ids = [record.id async for record in self._scan(kb, filter, ["doc_id"])]
        await self._delete_points(kb, ids)
        return len(ids)

    async def count(self, kb: KnowledgeBaseRef) -> int:
        client, name = await self._client(kb), collection_name(kb)
        result = await self._call(client.count(name, exact=True))
        return int(result.count)

    async def search(self, kb: KnowledgeBaseRef, query: SearchQuery) -> Hits:
        if query.mode == "keyword":
            return await self._keyword(kb, query)
        if query.vector is None:
            raise InvalidRequestError(f"{query.mode} search needs the query's embedding")
        if query.mode == "vector":
            return await self._vector(kb, query.vector, query.filter, query.top_k, query)
        return await self._hybrid(kb, query)

    async def _vector(
        self,
        kb: KnowledgeBaseRef,
        vector: Vector,
        filter: Filter | None,
        depth: int,
        query: SearchQuery,
    ) -> Hits:
        """The `depth` nearest documents matching the filter, above the threshold."""
        native, residual = translate_qdrant(filter, key_prefix="metadata")
        client, name = await self._client(kb), collection_name(kb)
        page = depth if residual is None else max(4 * depth, 100)
        hits: Hits = []
        offset = 0
        while len(hits) < depth:
            response = await self._call(
                client.query_points(
                    name, query=vector, query_filter=native, limit=page, offset=offset
                )
            )
            for point in response.points:
                score = similarity(kb.distance, point.score)
                if query.similarity_threshold is not None and score < query.similarity_threshold:
                    return hits[:depth]  # best first: every later point scores lower
                document = _stored(point.payload)
                if residual is None or matches(residual, document.metadata):
                    hits.append(_hit(document, score))
            if len(response.points) < page:
                break
            offset += page
        return hits[:depth]

    async def _keyword_ranking(
        self, kb: KnowledgeBaseRef, query: SearchQuery, vector: Vector | None = None
    ) -> KeywordRanking:
        """Filter-matching documents with a query term by BM25 (gateway side), normalised
        to s / (1 + s); each with its vector similarity when `vector` is given."""
        records = [
            record async for record in self._scan(kb, query.filter, True, vector is not None)
        ]
        documents = [_stored(record.payload) for record in records]
        scores = bm25_scores(query.text, [document.content for document in documents])
        ranked = [
            (_hit(document, score / (1.0 + score)), _similarity_to(kb, vector, record.vector))
            for record, document, score in zip(records, documents, scores, strict=True)
            if score > 0
        ]
        ranked.sort(key=lambda pair: (-pair[0].score, pair[0].id))
        return ranked

    async def _keyword(self, kb: KnowledgeBaseRef, query: SearchQuery) -> Hits:
        threshold = query.similarity_threshold
        ranked = [hit for hit, _ in await self._keyword_ranking(kb, query)]
        return [hit for hit in ranked if threshold is None or hit.score >= threshold][: query.top_k]

    async def _hybrid(self, kb: KnowledgeBaseRef, query: SearchQuery) -> Hits:
        """Reciprocal rank fusion (k = 60) of the vector and the keyword candidate lists.

        A threshold keeps only documents whose vector similarity reaches it (as pgvector).
        """
        assert query.vector is not None
        threshold = query.similarity_threshold
        depth = max(HYBRID_MIN_CANDIDATES, HYBRID_CANDIDATE_FACTOR * query.top_k)
        by_vector = await self._vector(kb, query.vector, query.filter, depth, query)
        vector = query.vector if threshold is not None else None
        by_keyword = [
            hit
            for hit, vector_score in await self._keyword_ranking(kb, query, vector)
            if threshold is None or (vector_score is not None and vector_score >= threshold)
        ][:depth]
        fused = reciprocal_rank_fusion(
            [[hit.id for hit in by_vector], [hit.id for hit in by_keyword]], k=RRF_K
        )
        found = {hit.id: hit for hit in [*by_keyword, *by_vector]}
        order = sorted(fused, key=lambda doc_id: (-fused[doc_id], doc_id))[: query.top_k]
        return [found[doc_id].model_copy(update={"score": fused[doc_id]}) for doc_id in order]

    async def health(self, kb: KnowledgeBaseRef) -> BackendHealth:
        try:
            client, name = await self._client(kb), collection_name(kb)
            exists = await self._call(client.collection_exists(name))
        except GatewayError as exc:
            return BackendHealth(status="down", error=exc.message)
        if not exists:
            return BackendHealth(status="down", error=f"qdrant collection {name!r} is missing")
        return BackendHealth(status="up")
