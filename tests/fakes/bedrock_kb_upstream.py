"""A loopback Bedrock agent runtime: the Knowledge Bases Retrieve API in its JSON format.

`POST /knowledgebases/{knowledgeBaseId}/retrieve` with `retrievalQuery.text` and
`retrievalConfiguration.vectorSearchConfiguration` (`numberOfResults` 1-100,
`overrideSearchType` SEMANTIC | HYBRID, `filter` as a RetrievalFilter) answers
`{"retrievalResults": [{"content", "location", "metadata", "score"}], "nextToken"?}`.
Each knowledge base holds a small in-memory corpus of chunks with vectors (a hashed
bag of words); SEMANTIC ranks by cosine similarity mapped to [0, 1], HYBRID averages
that with the share of query words a chunk contains. Filters are evaluated by
tests.fakes.bedrock_filter. Errors carry `x-amzn-ErrorType` like the real service;
requests must be SigV4-signed for this fake's key, region and the `bedrock` service.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.bedrock_filter import evaluate, validate
from tests.fakes.bedrock_upstream import FakeBedrock

DIMENSIONS = 64
DATA_SOURCE_ID = "FAKEDS0001"
_WORD = re.compile(r"\w+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def embed(text: str) -> list[float]:
    """A deterministic unit vector: each word adds 1 to the dimension its hash picks."""
    vector = [0.0] * DIMENSIONS
    for word in words(text):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMENSIONS] += 1.0
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


@dataclass
class Chunk:
    """One indexed chunk of an S3 document, with its metadata attributes."""

    text: str
    uri: str
    metadata: dict[str, Any] = field(default_factory=dict)
    chunk_id: str = ""
    vector: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.vector = self.vector or embed(self.text)
        self.chunk_id = self.chunk_id or hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def attributes(self) -> dict[str, Any]:
        """The metadata Bedrock returns (and filters on): the chunk's and its own keys."""
        return {
            **self.metadata,
            "x-amz-bedrock-kb-source-uri": self.uri,
            "x-amz-bedrock-kb-chunk-id": self.chunk_id,
            "x-amz-bedrock-kb-data-source-id": DATA_SOURCE_ID,
        }


def score(chunk: Chunk, query: str, search_type: str) -> float:
    query_vector = embed(query)
    cosine = sum(a * b for a, b in zip(chunk.vector, query_vector, strict=True))
    semantic = (1.0 + cosine) / 2.0
    if search_type == "SEMANTIC":
        return round(semantic, 6)
    wanted = words(query)
    overlap = len(wanted & words(chunk.text)) / len(wanted) if wanted else 0.0
    return round((semantic + overlap) / 2.0, 6)


def _problem(body: dict[str, Any]) -> str | None:
    """What the real API refuses with a ValidationException (boto3 checks most first)."""
    query = body.get("retrievalQuery") or {}
    if not isinstance(query.get("text"), str):
        return "retrievalQuery.text is required"
    search = (body.get("retrievalConfiguration") or {}).get("vectorSearchConfiguration") or {}
    count = search.get("numberOfResults", 5)
    if not isinstance(count, int) or not 1 <= count <= 100:
        return "numberOfResults must be between 1 and 100"
    if search.get("overrideSearchType", "SEMANTIC") not in ("SEMANTIC", "HYBRID"):
        return "overrideSearchType must be SEMANTIC or HYBRID"
    return None


class FakeBedrockAgentRuntime(FakeBedrock):
    """Bedrock's loopback (same auth and error shapes) serving Retrieve over corpora."""

    def __init__(self, access_key_id: str = "AKIAFAKEKB", region: str = "us-east-1") -> None:
        super().__init__(access_key_id=access_key_id, region=region)
        route = Route("/knowledgebases/{kb_id}/retrieve", self._retrieve, methods=["POST"])
        self.app.router.routes.append(route)
        self.corpora: dict[str, list[Chunk]] = {}

    def add(self, knowledge_base_id: str, *chunks: Chunk) -> None:
        self.corpora.setdefault(knowledge_base_id, []).extend(chunks)

    async def _retrieve(self, request: Request) -> Response:
        body = await request.json()
        self.record(request, body)
        refused = self._refused(request)
        if refused is not None:
            return refused
        corpus = self.corpora.get(request.path_params["kb_id"])
        if corpus is None:
            return self._error(404, f"Knowledge base {request.path_params['kb_id']} not found")
        problem = _problem(body)
        if problem:
            return self._error(400, problem)
        scenario = await self.scripted_scenario()
        if scenario.status != 200:
            return self._error(scenario.status, scenario.error_message, scenario.headers)
        try:
            return JSONResponse(self._answer(body, corpus))
        except ValueError as exc:  # a malformed filter (BedrockFilterError)
            return self._error(400, str(exc))

    @staticmethod
    def _answer(body: dict[str, Any], corpus: list[Chunk]) -> dict[str, Any]:
        search = body["retrievalConfiguration"]["vectorSearchConfiguration"]
        text = body["retrievalQuery"]["text"]
        search_type = search.get("overrideSearchType", "SEMANTIC")
        condition = search.get("filter")
        if condition is not None:
            validate(condition)  # a BedrockFilterError (ValueError) answers 400
        kept = [
            chunk
            for chunk in corpus
            if condition is None or evaluate(condition, chunk.attributes())
        ]
        ranked = sorted(
            ((score(chunk, text, search_type), chunk) for chunk in kept),
            key=lambda pair: (-pair[0], pair[1].uri, pair[1].chunk_id),
        )
        start = int(base64.b64decode(body["nextToken"]).decode()) if body.get("nextToken") else 0
        end = start + search.get("numberOfResults", 5)
        results = [
            {
                "content": {"type": "TEXT", "text": chunk.text},
                "location": {"type": "S3", "s3Location": {"uri": chunk.uri}},
                "metadata": chunk.attributes(),
                "score": value,
            }
            for value, chunk in ranked[start:end]
        ]
        answer: dict[str, Any] = {"retrievalResults": results}
        if end < len(ranked):
            answer["nextToken"] = base64.b64encode(str(end).encode()).decode()
        return answer
