"""Bedrock embedding models through InvokeModel: Amazon Titan and Cohere Embed bodies.

Titan Text Embeddings take one `inputText` per call (V2 also `dimensions` 256/512/1024
and `normalize`) and answer `embedding` and `inputTextTokenCount`. Cohere Embed takes up
to 96 `texts` with an `input_type` and answers `embeddings` (a list, or by type when
`embedding_types` is sent); Bedrock counts its tokens in the
`x-amzn-bedrock-input-token-count` response header.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway_core.domain.chat import ResolvedModel
from gateway_core.errors import UpstreamError
from gateway_core.providers.base import unsupported

NAME = "bedrock"
COHERE_BATCH = 96
# The fixed vector sizes of the models without a size parameter.
TITAN_V1_SIZE = 1536
COHERE_V3_SIZE = 1024
COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
COUNT_HEADER = "x-amzn-bedrock-input-token-count"
Family = Literal["titan", "cohere"]


@dataclass(frozen=True)
class InvokeRequest:
    """One InvokeModel body and how many of the texts it carries."""

    body: dict[str, Any]
    count: int


def family(model_id: str) -> Family:
    """Which body format a Bedrock embedding model speaks (a region prefix is allowed)."""
    if "amazon.titan-embed-text" in model_id:
        return "titan"
    if "cohere.embed" in model_id:
        return "cohere"
    raise unsupported(NAME, f"embeddings with model {model_id!r} (Titan Text or Cohere Embed)")


def invoke_requests(model: ResolvedModel, body: dict[str, Any]) -> list[InvokeRequest]:
    """The InvokeModel bodies for an OpenAI embeddings request, in input order."""
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    if not all(isinstance(text, str) for text in texts):
        raise unsupported(NAME, "token arrays as embedding input")
    dimensions = body.get("dimensions")
    if family(model.upstream_model) == "titan":
        return [_titan(model.upstream_model, text, dimensions) for text in texts]
    input_type = body.get("input_type") or "search_document"
    if input_type not in COHERE_INPUT_TYPES:
        raise unsupported(NAME, f"input_type {input_type!r}")
    return [
        _cohere(model.upstream_model, texts[start : start + COHERE_BATCH], input_type, dimensions)
        for start in range(0, len(texts), COHERE_BATCH)
    ]


def _titan(model_id: str, text: str, dimensions: int | None) -> InvokeRequest:
    request: dict[str, Any] = {"inputText": text}
    if "v2" in model_id:
        request["normalize"] = True
        if dimensions:
            request["dimensions"] = dimensions
    elif dimensions not in (None, TITAN_V1_SIZE):
        raise unsupported(NAME, f"`dimensions` with {model_id} (Titan V1 has {TITAN_V1_SIZE})")
    return InvokeRequest(request, 1)


def _cohere(
    model_id: str, texts: Sequence[str], input_type: str, dimensions: int | None
) -> InvokeRequest:
    request: dict[str, Any] = {
        "texts": list(texts),
        "input_type": input_type,
        "embedding_types": ["float"],
    }
    if "v4" in model_id:
        if dimensions:
            request["output_dimension"] = dimensions
    elif dimensions not in (None, COHERE_V3_SIZE):
        raise unsupported(NAME, f"`dimensions` with {model_id} (only Cohere Embed v4)")
    return InvokeRequest(request, len(texts))


def vectors_of(answer: dict[str, Any], expected: int) -> list[list[float]]:
    """The float vectors of one InvokeModel answer (Titan or Cohere)."""
    vectors: Any
    if "embedding" in answer:
        vectors = [answer["embedding"]]
    else:
        embeddings = answer.get("embeddings")
        vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
    if not isinstance(vectors, list) or len(vectors) != expected:
        raise UpstreamError("bedrock answered without the expected embeddings", retryable=False)
    return [[float(value) for value in vector] for vector in vectors]


def tokens_of(answer: dict[str, Any], headers: dict[str, str]) -> int:
    """Input tokens of one answer: Titan's body field, else Bedrock's header."""
    counted = answer.get("inputTextTokenCount") or headers.get(COUNT_HEADER) or 0
    return int(counted)


def embeddings_list(
    model: ResolvedModel, vectors: list[list[float]], tokens: int
) -> dict[str, Any]:
    """OpenAI's embeddings `list` object."""
    data = [
        {"object": "embedding", "index": index, "embedding": vector}
        for index, vector in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model.upstream_model, "usage": usage}
