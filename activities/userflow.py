"""Activities of user-defined workflows: the steps that do I/O outside the chat path.

Chat steps and CRAG judges walk their chains with the chat path's `chat_complete`
activity; here are the knowledge-base search and the outbound HTTP request. Each
checks the caller's permission again, and fails with the gateway's error payload
(retryable only for a retryable upstream error), like the other activities.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
from temporalio import activity

from activities.embeddings import EmbeddingActivities
from activities.heartbeats import heartbeating
from activities.model_check import HttpCredentialCheck
from gateway_core.credentials.base import CredentialResolver
from gateway_core.domain.embeddings import EmbedCallInput
from gateway_core.domain.knowledge import SearchHit
from gateway_core.domain.models import CredentialRef
from gateway_core.error_codec import application_error
from gateway_core.errors import (
    ConfigurationError,
    GatewayError,
    PermissionDeniedError,
    UpstreamError,
)
from gateway_core.knowledge.backend import KnowledgeBackend, SearchQuery
from gateway_core.knowledge.filters import parse_filter
from gateway_core.logging import request_id_var
from gateway_core.outbound import OutboundPolicy
from gateway_core.providers.local import LocalEmbedder
from gateway_core.telemetry import Telemetry
from gateway_core.telemetry.retrieval import traced_search
from gateway_core.userflows.runs import (
    HTTP_REQUEST_ACTIVITY,
    KB_SEARCH_ACTIVITY,
    HttpRequestInput,
    KbSearchInput,
)

# A response body larger than this is cut: step outputs live in the run's history.
MAX_RESPONSE_BYTES = 256 * 1024
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def _failure(error: GatewayError) -> Exception:
    return application_error(error, attempt=activity.info().attempt)


class UserflowActivities:
    """Holds the knowledge backends, the embedding call and the outbound HTTP client."""

    def __init__(
        self,
        backends: Mapping[str, KnowledgeBackend],
        embeddings: EmbeddingActivities,
        credentials: CredentialResolver,
        outbound: httpx.AsyncClient,
        policy: OutboundPolicy,
        credential_uses: HttpCredentialCheck,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._backends = dict(backends)
        self._embeddings = embeddings
        self._local = LocalEmbedder()
        self._credentials = credentials
        self._outbound = outbound
        self._policy = policy
        self._credential_uses = credential_uses
        self._telemetry = telemetry or Telemetry.off()

    @activity.defn(name=KB_SEARCH_ACTIVITY)
    async def kb_search(self, inp: KbSearchInput) -> dict[str, Any]:
        """Embed the query with the KB's model and search its backend: documents, count."""
        request_id_var.set(inp.request_id)
        try:
            # Heartbeats let a cancellation of the run reach the call in flight.
            async with heartbeating():
                hits = await self._search(inp)
        except GatewayError as error:
            raise _failure(error) from None
        documents = [hit.model_dump(mode="json") for hit in hits]
        return {"documents": documents, "count": len(documents)}

    async def _search(self, inp: KbSearchInput) -> list[SearchHit]:
        if not inp.caller.permissions.allows("knowledge_bases", inp.knowledge_base_id):
            raise PermissionDeniedError(
                f"API key {inp.caller.key_id!r} may not use knowledge base"
                f" {inp.knowledge_base_id!r}",
                code="permission_denied",
            )
        ref = inp.knowledge_base.ref
        backend = self._backends.get(ref.backend.type)
        if backend is None:
            raise ConfigurationError(
                f"knowledge base {ref.id!r} uses backend {ref.backend.type!r},"
                " which this worker does not run"
            )
        query = SearchQuery(
            text=inp.query,
            vector=await self._query_vector(inp),
            top_k=inp.top_k,
            similarity_threshold=inp.similarity_threshold,
            filter=None if inp.filter is None else parse_filter(inp.filter, path="filter"),
        )
        return await traced_search(self._telemetry, backend, ref, query)

    async def _query_vector(self, inp: KbSearchInput) -> list[float]:
        """The query's vector: a local model in-process, others by the embedding call."""
        model = inp.knowledge_base.embedding.model
        dimensions = inp.knowledge_base.ref.dimensions
        if model.provider == "local":
            embedded = await self._local.embed_texts(model.upstream_model, [inp.query], dimensions)
            return [float(value) for value in embedded.vectors[0]]
        call = EmbedCallInput(
            model=model,
            inputs=[inp.query],
            dimensions=dimensions,
            attempt_timeout_ms=inp.knowledge_base.embedding.max_latency_ms,
            request_id=inp.request_id,
        )
        result = await self._embeddings.embed(call)
        return result.vectors.rows()[0]

    @activity.defn(name=HTTP_REQUEST_ACTIVITY)
    async def http_request(self, inp: HttpRequestInput) -> dict[str, Any]:
        """One outbound request past the address policy: status, headers, body."""
        try:
            self._policy.check_url(inp.url)
            # Before the credential is read: it goes only where the stored step sends it.
            await self._credential_uses.verify(inp)
            headers = {**inp.headers, **await self._auth_header(inp)}
            # Heartbeats let a cancellation of the run reach the request in flight.
            async with heartbeating():
                response = await self._send(inp, headers)
        except GatewayError as error:
            raise _failure(error) from None
        return response

    async def _auth_header(self, inp: HttpRequestInput) -> dict[str, str]:
        if inp.credential is None:
            return {}
        ref = CredentialRef.model_validate(inp.credential["credential"])
        secret = await self._credentials.resolve(ref)
        if not secret:
            raise ConfigurationError("the http_request step's credential has no value")
        scheme = inp.credential.get("scheme")
        header = str(inp.credential.get("header") or "Authorization")
        return {header: f"{scheme} {secret}" if scheme else secret}

    async def _send(self, inp: HttpRequestInput, headers: dict[str, str]) -> dict[str, Any]:
        content: bytes | None = None
        if inp.body is not None:
            if isinstance(inp.body, str):
                content = inp.body.encode()
            else:
                content = json.dumps(inp.body).encode()
                headers.setdefault("content-type", "application/json")
        try:
            response = await self._outbound.request(
                inp.method, inp.url, headers=headers, content=content, timeout=inp.timeout_s
            )
        except httpx.TransportError as error:
            host = httpx.URL(inp.url).host
            raise UpstreamError(
                f"the request to {host!r} failed: {type(error).__name__}", retryable=True
            ) from None
        if response.status_code >= 400:
            raise UpstreamError(
                f"{inp.method} {httpx.URL(inp.url).host!r} answered {response.status_code}",
                retryable=response.status_code in _RETRYABLE_STATUS,
                upstream_status=response.status_code,
                code="http_request_failed",
            )
        return {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": _body(response),
        }


def _body(response: httpx.Response) -> Any:
    """JSON when the response says so and parses, else its text (cut to a bound)."""
    raw = response.content[:MAX_RESPONSE_BYTES]
    if "json" in response.headers.get("content-type", ""):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode(errors="replace")
