"""POST /v1/crag/score: grade documents for a query as correct, ambiguous or incorrect."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway_api.deps import AuthenticatedDep, CragDep, response_headers
from gateway_api.services.crag import CragRequest, KnowledgeSource
from gateway_core.crag import CandidateDocument, Strategy

router = APIRouter(prefix="/v1/crag", tags=["corrective RAG"])

MAX_DOCUMENTS = 200  # each may cost a judge call; larger sets are a batch job


class DocumentBody(BaseModel):
    """A document to grade; `score` is its retrieval similarity (needed unless `llm`)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=200_000)
    score: float | None = Field(default=None, allow_inf_nan=False)
    metadata: dict[str, Any] = Field(default_factory=dict)


class KnowledgeBaseBody(BaseModel):
    """Grade the hits of a search of this knowledge base for the query."""

    model_config = ConfigDict(extra="forbid")

    knowledge_base_id: str = Field(min_length=1, max_length=200)
    top_k: int = Field(default=5, ge=1, le=MAX_DOCUMENTS)
    filter: Any = None


class ScoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=100_000)
    documents: Annotated[list[DocumentBody], Field(max_length=MAX_DOCUMENTS)] | KnowledgeBaseBody
    strategy: Strategy = "threshold"
    correct_threshold: float | None = Field(default=None, ge=0, le=1)
    ambiguous_threshold: float | None = Field(default=None, ge=0, le=1)
    model_id: str | None = Field(default=None, min_length=1, max_length=200)
    prompt_id: str | None = Field(default=None, min_length=1, max_length=200)

    def source(self) -> list[CandidateDocument] | KnowledgeSource:
        if isinstance(self.documents, KnowledgeBaseBody):
            kb = self.documents
            return KnowledgeSource(kb.knowledge_base_id, top_k=kb.top_k, filter=kb.filter)
        return [
            CandidateDocument(
                id=doc.id if doc.id is not None else str(index),
                content=doc.content,
                metadata=doc.metadata,
                retrieval_score=doc.score,
            )
            for index, doc in enumerate(self.documents)
        ]


@router.post("/score")
async def score_documents(
    body: ScoreBody, http: Request, crag: CragDep, caller: AuthenticatedDep
) -> dict[str, Any]:
    """The documents grouped by classification, a summary, and CRAG's action flags."""
    request = CragRequest(
        query=body.query,
        documents=body.source(),
        strategy=body.strategy,
        correct_threshold=body.correct_threshold,
        ambiguous_threshold=body.ambiguous_threshold,
        model_id=body.model_id,
        prompt_id=body.prompt_id,
        headers=response_headers(http),
    )
    return await crag.score(caller, request)
