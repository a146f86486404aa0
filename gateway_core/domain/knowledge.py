"""Knowledge bases and their documents as the API, the services and the backends see them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gateway_core.domain.models import CredentialRef, ResourceId
from gateway_core.domain.updates import ReadBackUpdate

Distance = Literal["cosine", "l2", "inner_product"]
SearchMode = Literal["vector", "keyword", "hybrid"]
DocumentId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
MAX_TOP_K = 1000


class PgvectorBackendConfig(BaseModel):
    """Documents in the gateway's own PostgreSQL (pgvector), one table per knowledge base."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["pgvector"] = "pgvector"


class QdrantBackendConfig(BaseModel):
    """A Qdrant collection; without `url`, Qdrant's local mode in the data dir."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["qdrant"] = "qdrant"
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    collection: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,100}$")] | None = None
    credential: CredentialRef | None = None  # the API key, for Qdrant Cloud


class BedrockBackendConfig(BaseModel):
    """An AWS Bedrock Knowledge Base (documents live in S3: read-only here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["bedrock"] = "bedrock"
    knowledge_base_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,40}$")]
    region: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,40}$")]
    credential: CredentialRef | None = None  # AWS keys; None: the default AWS chain
    endpoint_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None


BackendConfig = Annotated[
    PgvectorBackendConfig | QdrantBackendConfig | BedrockBackendConfig,
    Field(discriminator="type"),
]


class IngestionDefaults(BaseModel):
    """How documents are split before embedding (used by ingestion; callers may override)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunker: Literal["recursive", "sentence", "markdown", "none"] = "recursive"
    chunk_size: int = Field(default=1000, ge=50, le=20_000)
    chunk_overlap: int = Field(default=200, ge=0, le=5_000)
    embed_batch_size: int = Field(default=64, ge=1, le=2048)


class KnowledgeBaseBase(BaseModel):
    """Fields an operator sets on a knowledge base."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: str | None = Field(default=None, max_length=2000)
    backend: BackendConfig = Field(default_factory=PgvectorBackendConfig)
    embedding_model_id: ResourceId
    distance: Distance = "cosine"
    ingestion: IngestionDefaults = Field(default_factory=IngestionDefaults)
    enabled: bool = True


class KnowledgeBaseCreate(KnowledgeBaseBase):
    """Body of POST /admin/knowledge-bases."""

    id: ResourceId


class KnowledgeBaseUpdate(ReadBackUpdate, KnowledgeBaseBase):
    """Body of PUT /admin/knowledge-bases/{id}: the whole new definition."""

    # What GET adds about the stored documents.
    READ_ONLY_FIELDS = ReadBackUpdate.READ_ONLY_FIELDS | {"document_count", "backend_health"}


class KnowledgeBase(KnowledgeBaseBase):
    """A stored knowledge base; `version` increases on every update."""

    id: ResourceId
    version: int = 1
    created_at: datetime
    updated_at: datetime


class KnowledgeBaseVersion(KnowledgeBaseBase):
    """One version of a knowledge base as it was written."""

    id: ResourceId
    version: int
    created_at: datetime


class KnowledgeBaseRef(BaseModel):
    """What a backend needs to know of a knowledge base to store and search it."""

    model_config = ConfigDict(frozen=True)

    id: str
    dimensions: int
    distance: Distance
    backend: BackendConfig


class DocumentIn(BaseModel):
    """One document as a caller submits it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: DocumentId
    content: Annotated[str, StringConstraints(min_length=1, max_length=1_000_000)]
    metadata: dict[str, Any] = Field(default_factory=dict)


class EmbeddedDocument(BaseModel):
    """A document with its embedding, ready for a backend's upsert."""

    model_config = ConfigDict(frozen=True)

    id: str
    content: str
    metadata: dict[str, Any]
    embedding: list[float]


class StoredDocument(BaseModel):
    """A document as a backend returns it (no embedding)."""

    model_config = ConfigDict(frozen=True)

    id: str
    content: str
    metadata: dict[str, Any]


class SearchHit(BaseModel):
    """One search result: a similarity `score`, higher is better (see the README's scale)."""

    model_config = ConfigDict(frozen=True)

    id: str
    content: str
    score: float
    metadata: dict[str, Any]


class BackendHealth(BaseModel):
    """Whether a backend answers, and why not when it does not."""

    status: Literal["up", "down"]
    error: str | None = None
