"""In-process response cache: bounded LRU with a TTL per entry."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway_core.cache.base import CachedAnswer, CacheLimits, CacheStats


@dataclass(frozen=True)
class _Entry:
    raw: bytes
    tags: tuple[str, ...]
    created_at: float
    expires_at: float


class MemoryResponseCache:
    """One process's cache; the least recently used entries go first when full."""

    name = "memory"

    def __init__(
        self, limits: CacheLimits | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._limits = limits or CacheLimits()
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._tagged: dict[str, set[str]] = {}
        self._bytes = 0

    async def get(self, key: str) -> CachedAnswer | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return CachedAnswer.decode(entry.raw)

    async def put(
        self, key: str, answer: CachedAnswer, *, tags: Sequence[str], ttl_s: float
    ) -> bool:
        raw = answer.encode()
        if len(raw) > self._limits.max_bytes:
            return False
        self._remove(key)
        now = self._clock()
        self._entries[key] = _Entry(raw, tuple(tags), answer.created_at, now + ttl_s)
        self._bytes += len(raw)
        for tag in tags:
            self._tagged.setdefault(tag, set()).add(key)
        self._evict()
        return True

    def _evict(self) -> None:
        limits = self._limits
        while len(self._entries) > limits.max_entries or self._bytes > limits.max_bytes:
            self._remove(next(iter(self._entries)))

    def _remove(self, key: str) -> int:
        entry = self._entries.pop(key, None)
        if entry is None:
            return 0
        self._bytes -= len(entry.raw)
        for tag in entry.tags:
            keys = self._tagged.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tagged[tag]
        return 1

    def _prune(self) -> None:
        now = self._clock()
        for key in [k for k, entry in self._entries.items() if entry.expires_at <= now]:
            self._remove(key)

    async def delete(self, key: str) -> int:
        return self._remove(key)

    async def delete_tagged(self, tag: str) -> int:
        return sum(self._remove(key) for key in list(self._tagged.get(tag, ())))

    async def delete_older_than(self, age_s: float) -> int:
        cutoff = self._clock() - age_s
        old = [key for key, entry in self._entries.items() if entry.created_at <= cutoff]
        return sum(self._remove(key) for key in old)

    async def clear(self) -> int:
        removed = len(self._entries)
        self._entries.clear()
        self._tagged.clear()
        self._bytes = 0
        return removed

    async def stats(self) -> CacheStats:
        self._prune()
        return CacheStats(entries=len(self._entries), bytes=self._bytes)
