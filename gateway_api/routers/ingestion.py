"""POST /v1/knowledge-bases/{id}/ingest: files (multipart) or sources (JSON) into a KB.

The body is handed to the service unread, as a stream: it checks the caller and the
knowledge base first, then stages the uploads piece by piece under the size limits.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from gateway_api.deps import AuthenticatedDep, IngestionDep, response_headers
from gateway_api.responses import to_response
from gateway_api.services.ingestion import IngestCall

router = APIRouter(prefix="/v1/knowledge-bases", tags=["knowledge bases"])


def _declared_length(http: Request) -> int | None:
    raw = http.headers.get("content-length", "")
    return int(raw) if raw.isdigit() else None


@router.post("/{kb_id}/ingest", response_model=None)
async def ingest(
    kb_id: str,
    http: Request,
    ingestion: IngestionDep,
    caller: AuthenticatedDep,
    run_async: Annotated[bool, Query(alias="async")] = False,
) -> Response:
    """Parse, chunk, embed and store documents; per-document outcomes in the answer."""
    call = IngestCall(
        caller=caller,
        kb_id=kb_id,
        content_type=http.headers.get("content-type", ""),
        body=http.stream(),
        declared_length=_declared_length(http),
        run_async=run_async,
        headers=response_headers(http),
    )
    return to_response(await ingestion.ingest(call))
