"""The response cache on the chat path: policy, lookup, replay in the caller's mode, store.

Entries are scoped per API key: the caller's key id is part of every cache key, so two
keys never share an answer, even for the same request. A chain caches by the policy of
its first available step's model; its entries are tagged with the chain id and every
step's model id, so invalidating any of those models drops them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError

from gateway_api.chat_runs import Route
from gateway_api.runtime import Runtime
from gateway_api.schemas import CacheRequest
from gateway_core.auth.service import Caller
from gateway_core.cache.base import CachedAnswer, ResponseCache
from gateway_core.cache.keys import last_user_text, request_key, semantic_scope
from gateway_core.cache.semantic import SemanticIndex
from gateway_core.domain.chat import ResolvedModel
from gateway_core.domain.models import CachePolicy
from gateway_core.errors import GatewayError
from gateway_core.streaming.assembler import response_to_chunks

logger = logging.getLogger(__name__)

# A cache that cannot answer (Redis or PostgreSQL down, embeddings refused) is a miss,
# never a failed request.
CACHE_ERRORS = (RedisError, psycopg.Error, GatewayError, OSError)


@dataclass(frozen=True)
class RequestControl:
    """What the caller asked of the cache: `Cache-Control` and the body's `cache` object."""

    no_cache: bool = False
    no_store: bool = False
    ttl_s: int | None = None

    @classmethod
    def parse(cls, cache_control: str | None, body: CacheRequest | None) -> RequestControl:
        directives = {
            part.split("=", 1)[0].strip().lower() for part in (cache_control or "").split(",")
        }
        return cls(
            no_cache="no-cache" in directives or bool(body and body.no_cache),
            no_store="no-store" in directives or bool(body and body.no_store),
            ttl_s=body.ttl if body else None,
        )


class CachePlan:
    """The cache's part in one chat request: look up, replay a hit, store a fresh answer."""

    def __init__(
        self,
        runtime: Runtime,
        requested: str,
        *,
        policy: CachePolicy | None = None,
        route: Route | None = None,
        body: dict[str, Any] | None = None,
        tenant: str = "",
        control: RequestControl | None = None,
    ) -> None:
        self._runtime = runtime
        self._requested = requested
        self._policy = policy
        self._route = route
        self._body = body or {}
        self._tenant = tenant
        control = control or RequestControl()
        sampled = (
            policy is not None
            and _samples(self._body, route)
            and not (policy.cache_when_temperature_above_zero)
        )
        self._looks_up = policy is not None and not sampled and not control.no_cache
        self.stores = policy is not None and not sampled and not control.no_store
        ttl_s = policy.ttl_seconds if policy else 0
        if control.ttl_s is not None:
            ttl_s = min(ttl_s, control.ttl_s)
        self._ttl_s = ttl_s
        if ttl_s <= 0:
            self.stores = False
        self.key = self._key() if policy is not None else ""
        self.status: str | None = None if policy is None else "bypass"
        self.similarity: float | None = None
        self._vector: list[float] | None = None

    @classmethod
    def for_request(
        cls,
        runtime: Runtime,
        caller: Caller,
        route: Route,
        body: dict[str, Any],
        requested: str,
        control: RequestControl,
    ) -> CachePlan:
        """The plan for a request; caching is off unless the (first) model turns it on."""
        policy = route.steps[0].model.cache if route.steps else None
        return cls(
            runtime,
            requested,
            policy=policy,
            route=route,
            body=body,
            tenant=caller.key_id,
            control=control,
        )

    def _key(self) -> str:
        route = self._route
        return request_key(
            tenant=self._tenant,
            chain_id=route.chain_id if route else None,
            chain_version=route.chain_version if route else None,
            models=self._models,
            body=self._body,
        )

    @property
    def _models(self) -> list[ResolvedModel]:
        return [step.model for step in self._route.steps] if self._route else []

    @property
    def _tags(self) -> list[str]:
        tags = {model.id for model in self._models}
        if self._route is not None and self._route.chain_id:
            tags.add(self._route.chain_id)
        return sorted(tags)

    @property
    def _semantic(self) -> bool:
        return (
            self._policy is not None
            and self._policy.mode == "semantic"
            and self._runtime.embedder is not None
            and self._runtime.semantic_index is not None
        )

    async def lookup(self) -> CachedAnswer | None:
        """The stored answer for this request (exact, else semantic), or None."""
        if self._policy is None:
            return None
        answer = None
        if self._looks_up:
            try:
                answer = await self._runtime.response_cache.get(self.key)
                if answer is None and self._semantic:
                    answer = await self._semantic_lookup()
                    self.status = "semantic-hit" if answer else "miss"
                else:
                    self.status = "hit" if answer else "miss"
            except CACHE_ERRORS as error:
                logger.warning("response cache lookup failed", extra={"error": repr(error)})
                answer, self.status = None, "miss"
        self._runtime.metrics.cache_lookups.labels(self._requested, self.status).inc()
        if answer is not None:
            logger.info(
                "response cache %s",
                self.status,
                extra={
                    "requested": self._requested,
                    "cache_key": self.key,
                    "similarity": self.similarity,
                },
            )
        return answer

    async def _semantic_lookup(self) -> CachedAnswer | None:
        policy, index = self._policy, self._runtime.semantic_index
        assert policy is not None and index is not None
        vector = await self._embedding()
        if vector is None:
            return None
        nearest = await index.nearest(self._scope(), vector)
        if nearest is None or nearest[1] < policy.similarity_threshold:
            return None
        answer = await self._runtime.response_cache.get(nearest[0])
        if answer is not None:
            self.similarity = nearest[1]
        return answer

    async def _embedding(self) -> list[float] | None:
        embedder, policy = self._runtime.embedder, self._policy
        text = last_user_text(self._body.get("messages") or [])
        if self._vector is None and text and embedder is not None and policy is not None:
            model = self._models[0]
            self._vector = await embedder.embed(text, model, policy.embedding_model)
        return self._vector

    def _scope(self) -> str:
        embedder = self._runtime.embedder
        route = self._route
        return semantic_scope(
            tenant=self._tenant,
            chain_id=route.chain_id if route else None,
            chain_version=route.chain_version if route else None,
            models=self._models,
            body=self._body,
            embedder=embedder.name if embedder else "",
        )

    def headers(self) -> dict[str, str]:
        """`x-pmp-cache` (and the key, and a semantic hit's similarity) for the response."""
        if self.status is None:
            return {"x-pmp-cache": "bypass"}  # the model does not cache
        headers = {"x-pmp-cache": self.status, "x-pmp-cache-key": self.key}
        if self.similarity is not None:
            headers["x-pmp-cache-similarity"] = f"{self.similarity:.4f}"
        return headers

    async def store(self, response: dict[str, Any], served_by: str) -> None:
        """Keep a successful complete answer (a no-op when this request may not store)."""
        if not self.stores or not _complete(response):
            return
        answer = {key: value for key, value in response.items() if key != "metadata"}
        try:
            cache = self._runtime.response_cache
            stored = await cache.put(
                self.key,
                CachedAnswer(answer, served_by, time.time()),
                tags=self._tags,
                ttl_s=self._ttl_s,
            )
            vector = await self._embedding() if stored and self._semantic else None
            if vector is not None and self._runtime.semantic_index is not None:
                await self._runtime.semantic_index.add(
                    self.key, self._scope(), self._tags, vector, self._ttl_s
                )
            await refresh_gauges(self._runtime)
        except CACHE_ERRORS as error:
            logger.warning("response cache store failed", extra={"error": repr(error)})

    def replay(self, answer: CachedAnswer, *, stream: bool, include_usage: bool) -> Response:
        """A stored answer in the caller's mode: JSON, or an SSE stream ending with [DONE]."""
        age = max(0, int(time.time() - answer.created_at))
        headers = {**self.headers(), "x-pmp-served-by": answer.served_by, "age": str(age)}
        if stream:
            content = b"".join(sse_frames(answer.response, include_usage))
            headers["cache-control"] = "no-cache"
            return Response(content, media_type="text/event-stream", headers=headers)
        metadata = dict(answer.response.get("metadata") or {})
        metadata.update({"pmp_served_by": answer.served_by, "pmp_cache": str(self.status)})
        return JSONResponse({**answer.response, "metadata": metadata}, headers=headers)


def sse_frames(response: dict[str, Any], include_usage: bool) -> Iterator[bytes]:
    """A whole chat.completion as OpenAI stream frames, then `data: [DONE]`."""
    for chunk in response_to_chunks(response):
        if "usage" in chunk and not include_usage:
            continue
        yield f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _samples(body: dict[str, Any], route: Route | None) -> bool:
    """Whether the request samples: a temperature above zero, sent or the model's default.

    With neither set the request counts as not sampling, so that a model's cache works
    for callers that send no temperature at all.
    """
    temperature = body.get("temperature")
    if temperature is None and route is not None and route.steps:
        temperature = route.steps[0].model.defaults.temperature
    return bool(temperature and temperature > 0)


def _complete(response: dict[str, Any]) -> bool:
    choices = response.get("choices") or []
    return bool(choices) and all(choice.get("finish_reason") for choice in choices)


async def refresh_gauges(runtime: Runtime) -> None:
    stats = await runtime.response_cache.stats()
    runtime.metrics.cache_bytes.set(stats.bytes)
    runtime.metrics.cache_entries.set(stats.entries)


Invalidation = Callable[[ResponseCache | SemanticIndex], Awaitable[int]]


async def invalidate(runtime: Runtime, remove: Invalidation) -> int:
    """Apply one invalidation to the cache and the semantic index; entries removed."""
    removed = await remove(runtime.response_cache)
    if runtime.semantic_index is not None:
        await remove(runtime.semantic_index)
    await refresh_gauges(runtime)
    return removed
