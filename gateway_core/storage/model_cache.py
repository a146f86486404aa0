"""Short-lived in-process caches of definitions, off the database hot path."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TtlCache(Generic[T]):
    """Serves `get` from memory for `ttl_s`; writes through this process invalidate at once.

    Other processes see an admin change within `ttl_s` (default 2 s).
    """

    def __init__(self, load: Callable[[str], Awaitable[T]], ttl_s: float = 2.0) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[float, T]] = {}

    async def get(self, key: str) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = await self._load(key)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (now + self._ttl_s, value)
        return value

    def invalidate(self, key: str | None = None) -> None:
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)
