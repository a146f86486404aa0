"""Response-cache policy on the chat path: lookup, replay in the caller's mode, store.

Entries are scoped per API key: the caller's key id is part of every cache key, so two
keys never share an answer, even for the same request. A chain caches by the policy of
its first available step's model; its entries are tagged with the chain id and every
step's model id, so invalidating any of those models drops them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from gateway_api.assembly.groups import CacheGroup
from gateway_api.schemas import CacheRequest
from gateway_api.services.answers import SSE_DONE, Answer, EventStreamAnswer, JsonAnswer, sse_data
from gateway_api.services.routing import Route
from gateway_core.auth.service import Caller
from gateway_core.cache.base import CACHE_ERRORS, CachedAnswer, ResponseCache
from gateway_core.cache.keys import last_user_text, request_key, semantic_scope
from gateway_core.cache.semantic import SemanticIndex
from gateway_core.domain.chat import ResolvedModel
from gateway_core.domain.models import CachePolicy
from gateway_core.metrics import GatewayMetrics
from gateway_core.streaming.assembler import response_to_chunks

logger = logging.getLogger(__name__)


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
        cache: CacheGroup,
        metrics: GatewayMetrics,
        requested: str,
        *,
        policy: CachePolicy | None = None,
        route: Route | None = None,
        body: dict[str, Any] | None = None,
        tenant: str = "",
        control: RequestControl | None = None,
    ) -> None:
        self._cache = cache
        self._metrics = metrics
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
            and self._cache.embedder is not None
            and self._cache.semantic_index is not None
        )

    async def lookup(self) -> CachedAnswer | None:
        """The stored answer for this request (exact, else semantic), or None."""
        if self._policy is None:
            return None
        answer = None
        if self._looks_up:
            try:
                answer = await self._cache.responses.get(self.key)
                if answer is None and self._semantic:
                    answer = await self._semantic_lookup()
                    self.status = "semantic-hit" if answer else "miss"
                else:
                    self.status = "hit" if answer else "miss"
            except CACHE_ERRORS as error:
                logger.warning("response cache lookup failed", extra={"error": repr(error)})
                answer, self.status = None, "miss"
        self._metrics.cache_lookups.labels(self._requested, self.status).inc()
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
        policy, index = self._policy, self._cache.semantic_index
        assert policy is not None and index is not None
        vector = await self._embedding()
        if vector is None:
            return None
        nearest = await index.nearest(self._scope(), vector)
        if nearest is None or nearest[1] < policy.similarity_threshold:
            return None
        answer = await self._cache.responses.get(nearest[0])
        if answer is not None:
            self.similarity = nearest[1]
        return answer

    async def _embedding(self) -> list[float] | None:
        embedder, policy = self._cache.embedder, self._policy
        text = last_user_text(self._body.get("messages") or [])
        if self._vector is None and text and embedder is not None and policy is not None:
            model = self._models[0]
            self._vector = await embedder.embed(text, model, policy.embedding_model)
        return self._vector

    def _scope(self) -> str:
        embedder = self._cache.embedder
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
            cache = self._cache.responses
            stored = await cache.put(
                self.key,
                CachedAnswer(answer, served_by, time.time()),
                tags=self._tags,
                ttl_s=self._ttl_s,
            )
            vector = await self._embedding() if stored and self._semantic else None
            if vector is not None and self._cache.semantic_index is not None:
                await self._cache.semantic_index.add(
                    self.key, self._scope(), self._tags, vector, self._ttl_s
                )
            await refresh_gauges(self._cache, self._metrics)
        except CACHE_ERRORS as error:
            logger.warning("response cache store failed", extra={"error": repr(error)})

    def replay(self, answer: CachedAnswer, *, stream: bool, include_usage: bool) -> Answer:
        """A stored answer in the caller's mode: JSON, or an SSE stream ending with [DONE]."""
        age = max(0, int(time.time() - answer.created_at))
        headers = {**self.headers(), "x-pmp-served-by": answer.served_by, "age": str(age)}
        if stream:
            content = b"".join(sse_frames(answer.response, include_usage))
            return EventStreamAnswer(content, {**headers, "cache-control": "no-cache"})
        metadata = dict(answer.response.get("metadata") or {})
        metadata.update({"pmp_served_by": answer.served_by, "pmp_cache": str(self.status)})
        return JsonAnswer({**answer.response, "metadata": metadata}, headers)


def sse_frames(response: dict[str, Any], include_usage: bool) -> Iterator[bytes]:
    """A whole chat.completion as OpenAI stream frames, then `data: [DONE]`."""
    for chunk in response_to_chunks(response):
        if "usage" in chunk and not include_usage:
            continue
        yield sse_data(chunk)
    yield SSE_DONE


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


async def refresh_gauges(cache: CacheGroup, metrics: GatewayMetrics) -> None:
    stats = await cache.responses.stats()
    metrics.cache_bytes.set(stats.bytes)
    metrics.cache_entries.set(stats.entries)


Invalidation = Callable[[ResponseCache | SemanticIndex], Awaitable[int]]


class ResponseCacheService:
    """The cache's rules for the chat path and its administration."""

    def __init__(self, cache: CacheGroup, metrics: GatewayMetrics) -> None:
        self._cache = cache
        self._metrics = metrics

    def plan(
        self,
        caller: Caller,
        route: Route,
        body: dict[str, Any],
        requested: str,
        control: RequestControl,
    ) -> CachePlan:
        """The plan for a request; caching is off unless the (first) model turns it on."""
        return CachePlan(
            self._cache,
            self._metrics,
            requested,
            policy=route.steps[0].model.cache if route.steps else None,
            route=route,
            body=body,
            tenant=caller.key_id,
            control=control,
        )

    async def stats(self) -> dict[str, Any]:
        """Entries and bytes held, and which backend holds them."""
        stats = await self._cache.responses.stats()
        return {
            "backend": self._cache.responses.name,
            "entries": stats.entries,
            "bytes": stats.bytes,
        }

    async def invalidate(self, remove: Invalidation) -> int:
        """Apply one invalidation to the cache and the semantic index; entries removed."""
        removed = await remove(self._cache.responses)
        if self._cache.semantic_index is not None:
            await remove(self._cache.semantic_index)
        await refresh_gauges(self._cache, self._metrics)
        return removed
