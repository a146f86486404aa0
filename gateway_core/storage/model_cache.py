"""A short-lived in-process cache of model definitions, off the database hot path."""

from __future__ import annotations

import time

from gateway_core.domain.models import Model
from gateway_core.storage.models import ModelRepository


class ModelCache:
    """Serves `get` from memory for `ttl_s`; writes through this process invalidate at once.

    Other processes see an admin change within `ttl_s` (default 2 s).
    """

    def __init__(self, repository: ModelRepository, ttl_s: float = 2.0) -> None:
        self._repository = repository
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Model]] = {}

    async def get(self, model_id: str) -> Model:
        now = time.monotonic()
        entry = self._entries.get(model_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        model = await self._repository.get(model_id)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[model_id] = (now + self._ttl_s, model)
        return model

    def invalidate(self, model_id: str | None = None) -> None:
        if model_id is None:
            self._entries.clear()
        else:
            self._entries.pop(model_id, None)
