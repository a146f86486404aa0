"""POST /v1/embeddings: OpenAI's embeddings API, each call one EmbeddingWorkflow run."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway_api.deps import AuthenticatedDep, EmbeddingsDep, response_headers
from gateway_api.responses import to_response
from gateway_api.schemas import EmbeddingRequest
from gateway_api.services.embeddings import EmbeddingCall

router = APIRouter(prefix="/v1", tags=["embeddings"])


@router.post("/embeddings", response_model=None)
async def create_embeddings(
    request: EmbeddingRequest,
    http: Request,
    embeddings: EmbeddingsDep,
    caller: AuthenticatedDep,
) -> Response:
    call = EmbeddingCall(
        caller=caller,
        model=request.model,
        inputs=request.inputs(),
        encoding_format=request.encoding_format,
        dimensions=request.dimensions,
        extra=request.passthrough(),
        headers=response_headers(http),
    )
    return to_response(await embeddings.create(call))
