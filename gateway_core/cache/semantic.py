"""Semantic matching: embeddings of the last user message, compared in pgvector.

The index holds vectors and cache keys only; the answers stay in the response cache,
so its TTL, LRU bound and invalidation decide what a semantic hit can return.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Protocol

from gateway_core.credentials.base import CredentialResolver
from gateway_core.domain.chat import ResolvedModel
from gateway_core.errors import UpstreamError
from gateway_core.providers.registry import ProviderRegistry
from gateway_core.storage.database import ConnectionSource


class Embedder(Protocol):
    """Turns a text into a vector; `name` tells vectors of different embedders apart."""

    name: str

    async def embed(
        self, text: str, model: ResolvedModel, embedding_model: str | None
    ) -> list[float]: ...


class ProviderEmbedder:
    """The default: the cached model's own provider, asked for an embedding model."""

    name = "provider"

    def __init__(
        self, providers: ProviderRegistry, credentials: CredentialResolver, default_model: str
    ) -> None:
        self._providers = providers
        self._credentials = credentials
        self._default_model = default_model

    async def embed(
        self, text: str, model: ResolvedModel, embedding_model: str | None
    ) -> list[float]:
        name = embedding_model or self._default_model
        target = model.model_copy(update={"upstream_model": name})
        api_key = await self._credentials.resolve(model.credential)
        answer = await self._providers.get(model.provider).embed(
            target, {"model": name, "input": text}, api_key
        )
        try:
            return [float(value) for value in answer["data"][0]["embedding"]]
        except (KeyError, IndexError, TypeError, ValueError):
            raise UpstreamError("the embeddings answer has no vector", retryable=False) from None


class HashingEmbedder:
    """A deterministic bag-of-words vector (hashed words, unit length): no model needed."""

    def __init__(self, dimensions: int = 256) -> None:
        self._dimensions = dimensions
        self.name = f"hashing-{dimensions}"

    async def embed(
        self, text: str, model: ResolvedModel, embedding_model: str | None
    ) -> list[float]:
        vector = [0.0] * self._dimensions
        for word in re.findall(r"\w+", text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest[:4], "big") % self._dimensions] += 1.0
        norm = math.sqrt(sum(value * value for value in vector)) or 1.0
        return [value / norm for value in vector]


def _literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(value)) for value in vector) + "]"


class SemanticIndex:
    """Vectors of cached requests by scope (the request minus its last user message)."""

    def __init__(self, pool: ConnectionSource) -> None:
        self._pool = pool

    async def nearest(self, scope: str, vector: Sequence[float]) -> tuple[str, float] | None:
        """The cache key of the most similar live vector in the scope, with its similarity."""
        literal = _literal(vector)
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT cache_key, 1 - (embedding <=> %s::vector) AS similarity"
                " FROM semantic_cache WHERE scope = %s AND expires_at > now()"
                " AND vector_dims(embedding) = %s"
                " ORDER BY embedding <=> %s::vector LIMIT 1",
                (literal, scope, len(vector), literal),
            )
            row = await cursor.fetchone()
        if row is None or row["similarity"] is None or math.isnan(row["similarity"]):
            return None
        return str(row["cache_key"]), float(row["similarity"])

    async def add(
        self, key: str, scope: str, tags: Sequence[str], vector: Sequence[float], ttl_s: float
    ) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO semantic_cache (cache_key, scope, tags, embedding, expires_at)"
                " VALUES (%s, %s, %s, %s::vector, now() + make_interval(secs => %s))"
                " ON CONFLICT (cache_key) DO UPDATE SET scope = EXCLUDED.scope,"
                " tags = EXCLUDED.tags, embedding = EXCLUDED.embedding,"
                " created_at = now(), expires_at = EXCLUDED.expires_at",
                (key, scope, list(tags), _literal(vector), ttl_s),
            )

    async def delete(self, key: str) -> int:
        return await self._delete("cache_key = %s", key)

    async def delete_tagged(self, tag: str) -> int:
        return await self._delete("%s = ANY(tags)", tag)

    async def delete_older_than(self, age_s: float) -> int:
        return await self._delete("created_at <= now() - make_interval(secs => %s)", age_s)

    async def clear(self) -> int:
        return await self._delete("expires_at IS NOT NULL", None)

    async def _delete(self, condition: str, argument: object) -> int:
        # Also drops expired rows, so the table does not grow with dead vectors.
        params = () if argument is None else (argument,)
        async with self._pool.connection() as conn:
            cursor = await conn.execute(f"DELETE FROM semantic_cache WHERE {condition}", params)
            await conn.execute("DELETE FROM semantic_cache WHERE expires_at <= now()")
        return cursor.rowcount
