"""A span around every knowledge-base search, the retrieval step of a RAG call.

The API's search endpoint, CRAG's retrieval and a workflow's `knowledge_base_search` step
all search through `traced_search`, so each search is one `search {kb}` client span
(database conventions: system, operation, collection) with what was asked and how many
documents came back; the query text is an attribute only with PMP_TRACE_CONTENT.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.semconv.attributes import db_attributes, error_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway_core.domain.knowledge import KnowledgeBaseRef, SearchHit
from gateway_core.knowledge.backend import KnowledgeBackend, SearchQuery
from gateway_core.telemetry.setup import Telemetry

# db.system.name values of the conventions, by backend type.
SYSTEM_NAMES = {"pgvector": "postgresql", "qdrant": "qdrant", "bedrock": "aws.bedrock"}


async def traced_search(
    telemetry: Telemetry, backend: KnowledgeBackend, ref: KnowledgeBaseRef, query: SearchQuery
) -> list[SearchHit]:
    """`backend.search(ref, query)`, inside a span when tracing is on."""
    tracer = telemetry.tracer()
    if tracer is None:
        return await backend.search(ref, query)
    attributes: dict[str, Any] = {
        db_attributes.DB_SYSTEM_NAME: SYSTEM_NAMES.get(ref.backend.type, ref.backend.type),
        db_attributes.DB_OPERATION_NAME: "search",
        db_attributes.DB_COLLECTION_NAME: ref.id,
        "pmp.search.mode": query.mode,
        "pmp.search.top_k": query.top_k,
        "pmp.search.filtered": query.filter is not None,
    }
    if telemetry.trace_content:
        attributes["pmp.search.query"] = query.text
    with tracer.start_as_current_span(
        f"search {ref.id}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            hits = await backend.search(ref, query)
        except Exception as error:
            span.set_attribute(error_attributes.ERROR_TYPE, type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
        span.set_attribute("pmp.search.hits", len(hits))
        return hits
