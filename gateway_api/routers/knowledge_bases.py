"""/v1/knowledge-bases: documents (add, get, list, delete) and search, per API key.

Listing takes its filter as a JSON query parameter (`?filter={"field": ...}`, URL-encoded);
`POST .../documents/list` takes the same as a body, for filters too long for a URL.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway_api.deps import AuthenticatedDep, KnowledgeDep, response_headers
from gateway_api.services.knowledge import SearchRequest
from gateway_core.domain.knowledge import MAX_TOP_K, DocumentIn, SearchMode
from gateway_core.errors import InvalidRequestError

router = APIRouter(prefix="/v1/knowledge-bases", tags=["knowledge bases"])

MAX_DOCUMENTS_PER_REQUEST = 1000
MAX_LIST_LIMIT = 1000


class DocumentsBody(BaseModel):
    """POST .../documents: documents to embed and upsert."""

    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS_PER_REQUEST)


class FilterBody(BaseModel):
    """DELETE .../documents: the filter that selects what to delete."""

    model_config = ConfigDict(extra="forbid")

    filter: Any = None


class ListBody(BaseModel):
    """POST .../documents/list: a listing with its filter in the body."""

    model_config = ConfigDict(extra="forbid")

    filter: Any = None
    limit: int = Field(default=20, ge=1, le=MAX_LIST_LIMIT)
    after: str | None = Field(default=None, max_length=200)


class SearchBody(BaseModel):
    """POST .../search."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=100_000)
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K)
    similarity_threshold: float | None = None
    filter: Any = None
    mode: SearchMode = "vector"


def _json_filter(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidRequestError("`filter` is not valid JSON", param="filter") from None


@router.get("")
async def list_knowledge_bases(
    http: Request, knowledge: KnowledgeDep, caller: AuthenticatedDep
) -> dict[str, Any]:
    """The enabled knowledge bases this key may use."""
    return await knowledge.list_knowledge_bases(caller, response_headers(http))


@router.post("/{kb_id}/documents")
async def add_documents(
    kb_id: str,
    body: DocumentsBody,
    http: Request,
    knowledge: KnowledgeDep,
    caller: AuthenticatedDep,
) -> dict[str, Any]:
    """Embed the documents in batches and upsert them by id, all or nothing."""
    return await knowledge.add_documents(caller, kb_id, body.documents, response_headers(http))


@router.get("/{kb_id}/documents")
async def list_documents(
    kb_id: str,
    http: Request,
    knowledge: KnowledgeDep,
    caller: AuthenticatedDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 20,
    after: Annotated[str | None, Query(max_length=200)] = None,
    filter: Annotated[str | None, Query(max_length=20_000)] = None,
) -> dict[str, Any]:
    """Documents by id; pass `last_id` as `after` for the next page; `filter` is JSON."""
    return await knowledge.list_documents(
        caller,
        kb_id,
        raw_filter=_json_filter(filter),
        limit=limit,
        after=after,
        headers=response_headers(http),
    )


@router.post("/{kb_id}/documents/list")
async def list_documents_by_body(
    kb_id: str, body: ListBody, http: Request, knowledge: KnowledgeDep, caller: AuthenticatedDep
) -> dict[str, Any]:
    """The same listing as GET .../documents, with the filter in the body."""
    return await knowledge.list_documents(
        caller,
        kb_id,
        raw_filter=body.filter,
        limit=body.limit,
        after=body.after,
        headers=response_headers(http),
    )


@router.delete("/{kb_id}/documents")
async def delete_matching_documents(
    kb_id: str,
    http: Request,
    knowledge: KnowledgeDep,
    caller: AuthenticatedDep,
    body: FilterBody | None = None,
    document_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> dict[str, Any]:
    """`?document_id=` deletes every chunk of an ingested source; otherwise every
    document the body's `filter` matches."""
    if document_id is not None:
        return await knowledge.delete_source(caller, kb_id, document_id, response_headers(http))
    raw_filter = body.filter if body is not None else None
    return await knowledge.delete_matching(caller, kb_id, raw_filter, response_headers(http))


@router.get("/{kb_id}/documents/{document_id}")
async def get_document(
    kb_id: str, document_id: str, http: Request, knowledge: KnowledgeDep, caller: AuthenticatedDep
) -> dict[str, Any]:
    return await knowledge.get_document(caller, kb_id, document_id, response_headers(http))


@router.delete("/{kb_id}/documents/{document_id}")
async def delete_document(
    kb_id: str, document_id: str, http: Request, knowledge: KnowledgeDep, caller: AuthenticatedDep
) -> dict[str, Any]:
    return await knowledge.delete_document(caller, kb_id, document_id, response_headers(http))


@router.post("/{kb_id}/search")
async def search(
    kb_id: str, body: SearchBody, http: Request, knowledge: KnowledgeDep, caller: AuthenticatedDep
) -> dict[str, Any]:
    """Hits best first, `{"object": "list", "data": [{id, content, score, metadata}]}`."""
    request = SearchRequest(
        query=body.query,
        top_k=body.top_k,
        similarity_threshold=body.similarity_threshold,
        filter=body.filter,
        mode=body.mode,
    )
    return await knowledge.search(caller, kb_id, request, response_headers(http))
