"""Readiness: whether the database and Temporal answer, and what is down if not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from gateway_api.services.run_client import RunClient
from gateway_core.storage.database import Pool

PROBE_TIMEOUT_S = 2


class Readiness:
    """Probes the process's dependencies; every probe failure means "not ready"."""

    def __init__(self, pool: Pool, runs: RunClient, mode: str) -> None:
        self._pool = pool
        self._runs = runs
        self.mode = mode

    async def check(self) -> dict[str, Any]:
        """{"status", "down", "checks"}: each dependency up, or down with why."""
        postgres, temporal = await asyncio.gather(
            _probe(self._select_one), _probe(self._runs.check_health)
        )
        checks = {
            "postgres": {"status": "down", "error": postgres} if postgres else {"status": "up"},
            "temporal": {"status": "down", "error": temporal} if temporal else {"status": "up"},
        }
        down = [name for name, check in checks.items() if check["status"] == "down"]
        return {"status": "not_ready" if down else "ready", "down": down, "checks": checks}

    async def _select_one(self) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")


async def _probe(probe: Callable[[], Awaitable[None]]) -> str | None:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await probe()
    except Exception as exc:  # any failure means "not ready"
        return f"{type(exc).__name__}: {exc}"[:300]
    return None
