"""Ingestion activities: one per stage of one document, over staged blobs.

Each reads its input blob, does its stage (parse and chunk on a thread, so heartbeats
keep flowing), stages its output as a new blob, and returns its id. A retried attempt
writes a new blob; the run's clean-up deletes every blob of the run, orphans included.
Storing replaces all of a document's chunks at once, so a repeated attempt (after a
worker died) stores each chunk exactly once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from temporalio import activity

from activities.embeddings import EmbeddingActivities
from activities.heartbeats import heartbeating
from gateway_core.domain.embeddings import EmbedCallInput, PackedVectors
from gateway_core.domain.ingestion import (
    ChunkInput,
    ChunkOutcome,
    CleanupInput,
    EmbedBatchInput,
    EmbedBatchOutcome,
    ParseInput,
    ParseOutcome,
    StagedChunk,
    UpsertInput,
    UpsertOutcome,
    chunk_id,
    chunk_metadata,
    source_fingerprint,
)
from gateway_core.domain.knowledge import EmbeddedDocument, KnowledgeBaseRef
from gateway_core.error_codec import application_error
from gateway_core.errors import ConfigurationError, GatewayError, InvalidRequestError
from gateway_core.ingestion import chunkers, parsers
from gateway_core.ingestion.model import Chunk, DocumentParseError, ParsedDocument
from gateway_core.knowledge.backend import KnowledgeBackend
from gateway_core.knowledge.filters import Condition
from gateway_core.storage.blobs import BlobStore


def _failure(error: GatewayError) -> Exception:
    return application_error(error, attempt=activity.info().attempt)


def _staged_chunks(
    chunks: list[Chunk], parsed: ParsedDocument, inp: ChunkInput
) -> list[StagedChunk]:
    """Each chunk with its id and merged metadata (see chunk_metadata for the order)."""
    document = inp.document
    staged = []
    for chunk in chunks:
        extracted: dict[str, Any] = {"start": chunk.start, "end": chunk.end}
        if document.filename:
            extracted["source"] = document.filename
        if chunk.page is not None:
            extracted["page"] = chunk.page
        if chunk.heading_path:
            extracted["heading_path"] = list(chunk.heading_path)
        reserved = {
            "document_id": document.document_id,
            "chunk_index": chunk.index,
            "total_chunks": len(chunks),
            "content_hash": inp.content_hash,
        }
        metadata = chunk_metadata(
            caller=document.metadata,
            document=parsed.metadata,
            extracted=extracted,
            reserved=reserved,
        )
        staged.append(
            StagedChunk(
                id=chunk_id(document.document_id, chunk.index),
                content=chunk.text,
                metadata=metadata,
            )
        )
    return staged


def _read_chunks(raw: bytes) -> list[StagedChunk]:
    return [StagedChunk.model_validate(item) for item in json.loads(raw)]


class IngestionActivities:
    """Holds the blob store, the knowledge backends and the embedding call."""

    def __init__(
        self,
        blobs: BlobStore,
        backends: Mapping[str, KnowledgeBackend],
        embeddings: EmbeddingActivities,
    ) -> None:
        self._blobs = blobs
        self._backends = dict(backends)
        self._embeddings = embeddings

    def _backend(self, kb: KnowledgeBaseRef) -> KnowledgeBackend:
        backend = self._backends.get(kb.backend.type)
        if backend is None:
            raise _failure(
                ConfigurationError(f"this worker runs no {kb.backend.type!r} knowledge backend")
            )
        return backend

    @activity.defn(name="ingest_parse")
    async def parse(self, inp: ParseInput) -> ParseOutcome:
        """Parse the upload unless the same bytes with the same settings are stored."""
        content = await self._blobs.get(inp.document.blob_id)
        fingerprint = source_fingerprint(
            content,
            {
                "parser": inp.parser,
                "chunker": inp.chunker.model_dump(),
                "metadata": inp.document.metadata,
                "filename": inp.document.filename,
                "embedding": [inp.embedding_model_id, inp.kb.dimensions],
            },
        )
        backend = self._backend(inp.kb)
        if await backend.source_hash(inp.kb, inp.document.document_id) == fingerprint:
            stored = await self._stored_chunks(backend, inp.kb, inp.document.document_id)
            return ParseOutcome(content_hash=fingerprint, unchanged=True, stored_chunks=stored)
        async with heartbeating():
            try:
                parsed = await asyncio.to_thread(
                    parsers.parse,
                    content,
                    filename=inp.document.filename,
                    content_type=inp.document.content_type,
                    parser=inp.parser,
                )
            except DocumentParseError as error:
                raise _failure(InvalidRequestError(error.message, code=error.code)) from None
        blob_id = await self._blobs.put(inp.run_id, "parsed", parsed.model_dump_json().encode())
        return ParseOutcome(
            content_hash=fingerprint,
            parsed_blob_id=blob_id,
            format=parsed.format,
            characters=len(parsed.text),
        )

    @staticmethod
    async def _stored_chunks(backend: KnowledgeBackend, kb: KnowledgeBaseRef, doc: str) -> int:
        """How many chunks the stored version has (its chunks' `total_chunks`)."""
        match = Condition(field="document_id", operator="eq", value=doc)
        page = await backend.list(kb, filter=match, limit=1, after=None)
        if not page.documents:
            return 0
        return int(page.documents[0].metadata.get("total_chunks") or 0)

    @activity.defn(name="ingest_chunk")
    async def chunk(self, inp: ChunkInput) -> ChunkOutcome:
        """Split the parsed text; stage the chunks with their ids and metadata."""
        raw = await self._blobs.get(inp.parsed_blob_id)
        parsed = ParsedDocument.model_validate_json(raw)
        async with heartbeating():
            chunks = await asyncio.to_thread(chunkers.chunk, parsed, inp.chunker)
        chunks = [piece for piece in chunks if piece.text.strip()]
        if not chunks:
            raise _failure(
                InvalidRequestError(
                    "the document has no text to store", code="empty_document", param="file"
                )
            )
        staged = _staged_chunks(chunks, parsed, inp)
        payload = json.dumps([item.model_dump() for item in staged]).encode()
        blob_id = await self._blobs.put(inp.run_id, "chunks", payload)
        return ChunkOutcome(chunks_blob_id=blob_id, count=len(staged))

    @activity.defn(name="ingest_embed_batch")
    async def embed_batch(self, inp: EmbedBatchInput) -> EmbedBatchOutcome:
        """Embed one batch through the embedding activity's provider call (breaker,
        credentials, latency limit, checks); stage the packed vectors."""
        chunks = _read_chunks(await self._blobs.get(inp.chunks_blob_id))
        texts = [item.content for item in chunks[inp.start : inp.start + inp.size]]
        call = EmbedCallInput(
            model=inp.embedding.model,
            inputs=list(texts),
            attempt_timeout_ms=inp.embedding.max_latency_ms,
            request_id=inp.request_id,
        )
        async with heartbeating():
            result = await self._embeddings.embed(call)
        blob_id = await self._blobs.put(
            inp.run_id, "vectors", result.vectors.model_dump_json().encode()
        )
        return EmbedBatchOutcome(
            vectors_blob_id=blob_id, count=len(texts), prompt_tokens=result.prompt_tokens
        )

    @activity.defn(name="ingest_upsert")
    async def upsert(self, inp: UpsertInput) -> UpsertOutcome:
        """Replace the document's stored chunks with the new ones (atomic on pgvector)."""
        chunks = _read_chunks(await self._blobs.get(inp.chunks_blob_id))
        vectors: list[list[float]] = []
        for blob_id in inp.vectors_blob_ids:
            vectors.extend(PackedVectors.model_validate_json(await self._blobs.get(blob_id)).rows())
        if len(vectors) != len(chunks):
            raise _failure(
                ConfigurationError(f"{len(vectors)} vectors staged for {len(chunks)} chunks")
            )
        documents = [
            EmbeddedDocument(
                id=item.id, content=item.content, metadata=item.metadata, embedding=vector
            )
            for item, vector in zip(chunks, vectors, strict=True)
        ]
        async with heartbeating():
            try:
                await self._backend(inp.kb).replace_source(inp.kb, inp.document_id, documents)
            except GatewayError as error:
                raise _failure(error) from None
        return UpsertOutcome(stored=len(documents))

    @activity.defn(name="ingest_cleanup")
    async def cleanup(self, inp: CleanupInput) -> int:
        """Delete every staged blob of the run; how many parts went."""
        return await self._blobs.delete_run(inp.run_id)
