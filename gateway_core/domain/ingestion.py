"""Ingestion runs as they travel through IngestionWorkflow and its activities.

Bytes never do: uploads, parsed text, chunks and vectors are staged blobs
(gateway_core.storage.blobs) and cross Temporal as ids. What a caller sends as
`options` is validated here too, and the one rule for a chunk's metadata lives here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway_core.domain.chat import ChainStep
from gateway_core.domain.knowledge import DocumentId, IngestionDefaults, KnowledgeBaseRef
from gateway_core.errors import InvalidRequestError
from gateway_core.ingestion.model import ChunkerOptions, ChunkStrategy, ParserName

OPERATION_TYPE = "knowledge_base.ingestion"
WORKFLOW_NAME = "IngestionWorkflow"
PROGRESS_QUERY = "progress"
MAX_DOCUMENTS = 1000  # per request
DocumentStatus = Literal["ingested", "unchanged", "failed"]
RunStatus = Literal["completed", "partial", "failed"]
# Set by the gateway on every chunk, whatever the caller sends: re-ingestion, deletion by
# document and the unchanged check rely on them.
RESERVED_KEYS = ("document_id", "chunk_index", "total_chunks", "content_hash")
# A KB's `ingestion.chunker` names (older, coarser) as chunking strategies.
_KB_STRATEGIES: dict[str, ChunkStrategy] = {
    "recursive": "recursive",
    "sentence": "sentence",
    "markdown": "recursive",  # the recursive chunker splits at headings first
    "none": "fixed",
}


class ChunkerOverrides(BaseModel):
    """`options.chunker`: any of strategy, size, overlap; the rest from the KB."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: ChunkStrategy | None = None
    chunk_size: int | None = Field(default=None, ge=50, le=20_000)
    chunk_overlap: int | None = Field(default=None, ge=0, le=5_000)

    def resolve(self, defaults: IngestionDefaults) -> ChunkerOptions:
        """The options to chunk with: these fields over the knowledge base's defaults."""
        size = self.chunk_size or defaults.chunk_size
        if self.chunk_overlap is None:
            # The KB's overlap fits its own size; under a smaller size given here, shrink it.
            overlap = min(defaults.chunk_overlap, size // 2)
        elif self.chunk_overlap >= size:
            raise InvalidRequestError(
                f"chunk_overlap ({self.chunk_overlap}) must be below chunk_size ({size})",
                param="options.chunker.chunk_overlap",
            )
        else:
            overlap = self.chunk_overlap
        return ChunkerOptions(
            strategy=self.strategy or _KB_STRATEGIES[defaults.chunker],
            chunk_size=size,
            chunk_overlap=overlap,
        )


class IngestionOptions(BaseModel):
    """`options` of an ingestion request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parser: ParserName = "auto"
    chunker: ChunkerOverrides = Field(default_factory=ChunkerOverrides)
    batch_size: int | None = Field(default=None, ge=1, le=2048)  # default: the KB's
    metadata: dict[str, Any] = Field(default_factory=dict)  # applied to every document


class JsonSource(BaseModel):
    """One source of the JSON form: its text (`content`) or bytes (`content_base64`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    document_id: DocumentId | None = None
    filename: str | None = Field(default=None, max_length=1000)
    content: str | None = None
    content_base64: str | None = None
    content_type: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_content(self) -> JsonSource:
        if (self.content is None) == (self.content_base64 is None):
            raise ValueError("give exactly one of `content` and `content_base64`")
        return self


class IngestJsonBody(BaseModel):
    """The JSON form of POST /v1/knowledge-bases/{id}/ingest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[JsonSource] = Field(min_length=1, max_length=MAX_DOCUMENTS)
    options: IngestionOptions = Field(default_factory=IngestionOptions)


class SourceDocument(BaseModel):
    """One document of a run: its staged upload and what the caller said about it."""

    model_config = ConfigDict(frozen=True)

    document_id: DocumentId
    filename: str | None = None
    content_type: str | None = None
    blob_id: str
    size: int
    metadata: dict[str, Any] = Field(default_factory=dict)  # the caller's, for this document


class IngestionWorkflowInput(BaseModel):
    """Everything IngestionWorkflow needs; no document content."""

    kb: KnowledgeBaseRef
    embedding: ChainStep  # the KB's embedding model, with its retry budget and latency limit
    documents: list[SourceDocument]
    parser: ParserName = "auto"
    chunker: ChunkerOptions = Field(default_factory=ChunkerOptions)
    batch_size: int = 64
    concurrency: int = 4  # documents in flight at once
    request_id: str | None = None


class ParseInput(BaseModel):
    run_id: str
    kb: KnowledgeBaseRef
    document: SourceDocument
    parser: ParserName
    chunker: ChunkerOptions
    embedding_model_id: str


class ParseOutcome(BaseModel):
    """A parsed document (its text staged), or `unchanged` with the chunks already stored."""

    content_hash: str
    unchanged: bool = False
    stored_chunks: int = 0
    parsed_blob_id: str | None = None
    format: str | None = None
    characters: int = 0


class ChunkInput(BaseModel):
    run_id: str
    document: SourceDocument
    parsed_blob_id: str
    chunker: ChunkerOptions
    content_hash: str


class ChunkOutcome(BaseModel):
    chunks_blob_id: str
    count: int


class EmbedBatchInput(BaseModel):
    """Embed chunks [start, start + size) of a staged chunk list."""

    run_id: str
    chunks_blob_id: str
    start: int
    size: int
    embedding: ChainStep
    request_id: str | None = None


class EmbedBatchOutcome(BaseModel):
    vectors_blob_id: str
    count: int
    prompt_tokens: int = 0


class UpsertInput(BaseModel):
    """Replace every stored chunk of the document with the staged chunks and vectors."""

    kb: KnowledgeBaseRef
    document_id: str
    chunks_blob_id: str
    vectors_blob_ids: list[str]


class UpsertOutcome(BaseModel):
    stored: int


class CleanupInput(BaseModel):
    run_id: str


class IngestionProgress(BaseModel):
    """What the `progress` query answers while a run goes on."""

    documents_done: int = 0
    documents_total: int = 0
    chunks_stored: int = 0
    chunks_embedded: int = 0


class DocumentOutcome(BaseModel):
    """One document's line in the answer; `error` in OpenAI's shape for a failure."""

    document_id: str
    filename: str | None = None
    status: DocumentStatus
    chunks: int = 0
    error: dict[str, Any] | None = None


class IngestionResult(BaseModel):
    """The answer: completed (no failure), partial (some), failed (every document)."""

    knowledge_base_id: str
    status: RunStatus
    documents: list[DocumentOutcome]

    @classmethod
    def of(cls, kb_id: str, documents: list[DocumentOutcome]) -> IngestionResult:
        failed = sum(1 for document in documents if document.status == "failed")
        status: RunStatus = "completed"
        if failed:
            status = "failed" if failed == len(documents) else "partial"
        return cls(knowledge_base_id=kb_id, status=status, documents=documents)

    def answer(self) -> dict[str, Any]:
        """The HTTP answer (and an operation's `result`)."""
        return {"object": OPERATION_TYPE, **self.model_dump(mode="json")}


class StagedChunk(BaseModel):
    """A chunk as staged between chunking and storing: its id, text and final metadata."""

    id: str
    content: str
    metadata: dict[str, Any]


def chunk_id(document_id: str, index: int) -> str:
    return f"{document_id}#{index}"


def chunk_metadata(
    *,
    caller: dict[str, Any],
    document: dict[str, Any],
    extracted: dict[str, Any],
    reserved: dict[str, Any],
) -> dict[str, Any]:
    """A chunk's metadata: reserved keys > the caller's > the document's > the chunk's.

    `extracted` holds what the chunker found (source, page, heading_path, start, end),
    `document` what the parser read from the file (title, author, ...).
    """
    return {**extracted, **document, **caller, **reserved}


def source_fingerprint(content: bytes, settings: dict[str, Any]) -> str:
    """sha256 over the bytes and every setting that shapes the stored chunks.

    Equal fingerprints mean a re-ingestion would store exactly what is stored: unchanged.
    """
    digest = hashlib.sha256(content)
    digest.update(b"\x00")
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()
