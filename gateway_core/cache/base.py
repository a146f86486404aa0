"""The response-cache protocol both backends implement, and the stored answer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from redis.exceptions import RedisError

from gateway_core.errors import GatewayError

# A cache that cannot answer (Redis or PostgreSQL down, embeddings refused) is a miss,
# never a failed request: callers catch exactly these.
CACHE_ERRORS = (RedisError, psycopg.Error, GatewayError, OSError)


@dataclass(frozen=True)
class CachedAnswer:
    """A complete chat.completion as it was answered, and which model served it."""

    response: dict[str, Any]
    served_by: str
    created_at: float

    def encode(self) -> bytes:
        document = {"response": self.response, "served_by": self.served_by, "at": self.created_at}
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> CachedAnswer:
        document = json.loads(raw)
        return cls(document["response"], document["served_by"], float(document["at"]))


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int


@dataclass(frozen=True)
class CacheLimits:
    """Bounds of one cache: least recently used entries go first when either is passed."""

    max_entries: int = 10_000
    max_bytes: int = 64 * 1024 * 1024


class ResponseCache(Protocol):
    """Stores encoded answers by key, each with a TTL and tags (model and chain ids).

    Tags index entries for invalidation by model, so nothing scans the whole keyspace.
    """

    name: str

    async def get(self, key: str) -> CachedAnswer | None:
        """The live entry (and mark it recently used), or None."""
        ...

    async def put(
        self, key: str, answer: CachedAnswer, *, tags: Sequence[str], ttl_s: float
    ) -> bool:
        """Store (or replace) an entry; False when it alone is larger than the cache."""
        ...

    async def delete(self, key: str) -> int:
        """Remove one entry; the number removed (0 or 1)."""
        ...

    async def delete_tagged(self, tag: str) -> int:
        """Remove every entry carrying the tag."""
        ...

    async def delete_older_than(self, age_s: float) -> int:
        """Remove entries stored more than `age_s` seconds ago."""
        ...

    async def clear(self) -> int:
        """Remove every entry."""
        ...

    async def stats(self) -> CacheStats:
        """Live entries and the bytes their encoded answers hold."""
        ...
