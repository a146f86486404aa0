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
        """Write what was counted since the last flush; on failure keep it for the next."""
        counts, self._counts = self._counts, defaultdict(lambda: [0, 0, 0])
        last_used, self._authenticator.last_used = self._authenticator.last_used, {}
        rows = [
            UsageRow(key_id, model, datetime.fromisoformat(day).date(), *values)
            for (key_id, model, day), values in counts.items()
        ]
        if not rows and not last_used:
            return
        try:
            await self._keys.record_activity(last_used, rows)
        except BaseException:
            self._restore(counts, last_used)
            raise

    def _restore(
        self, counts: dict[tuple[str, str, str], list[int]], last_used: dict[str, datetime]
    ) -> None:
        """Put an unwritten batch back, merged with what was counted meanwhile."""
        for key, values in counts.items():
            merged = self._counts[key]
            for index, value in enumerate(values):
                merged[index] += value
        for key_id, used_at in last_used.items():
            newer = self._authenticator.last_used.get(key_id)
            if newer is None or newer < used_at:
                self._authenticator.last_used[key_id] = used_at

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
