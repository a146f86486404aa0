"""Usage and last-used times, counted in memory and written in batches (not per request)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime

from gateway_core.auth.service import Authenticator
from gateway_core.storage.api_keys import ApiKeyRepository, UsageRow

logger = logging.getLogger(__name__)


class UsageRecorder:
    """Adds up requests and tokens per key, model and day; `flush` writes them in one go."""

    def __init__(self, keys: ApiKeyRepository, authenticator: Authenticator) -> None:
        self._keys = keys
        self._authenticator = authenticator
        self._counts: defaultdict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])

    def record(self, key_id: str, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        day = datetime.now(UTC).date().isoformat()
        counts = self._counts[(key_id, model, day)]
        counts[0] += 1
        counts[1] += prompt_tokens
        counts[2] += completion_tokens

    async def flush(self) -> None:
        counts, self._counts = self._counts, defaultdict(lambda: [0, 0, 0])
        last_used, self._authenticator.last_used = self._authenticator.last_used, {}
        rows = [
            UsageRow(key_id, model, datetime.fromisoformat(day).date(), *values)
            for (key_id, model, day), values in counts.items()
        ]
        if rows or last_used:
            await self._keys.record_activity(last_used, rows)

    async def run(self, interval_s: float) -> None:
        """Flush every `interval_s` until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.flush()
                except Exception:  # a failed batch is logged; the next one tries again
                    logger.exception("could not write API key usage")
        finally:
            await self.flush()
