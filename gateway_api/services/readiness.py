"""Readiness: whether the database and Temporal answer, and what is down if not."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway_api.services.run_client import RunClient
from gateway_core.storage.database import Pool

PROBE_TIMEOUT_S = 2
logger = logging.getLogger(__name__)


class Readiness:
    """Probes the process's dependencies; every probe failure means "not ready"."""

    def __init__(self, pool: Pool, runs: RunClient, mode: str) -> None:
        self._pool = pool
        self._runs = runs
        self.mode = mode

    async def check(self) -> dict[str, Any]:
        """{"status", "down", "checks"}: each dependency up, or down with why."""
        postgres, temporal = await asyncio.gather(
            _probe("postgres", self._select_one), _probe("temporal", self._runs.check_health)
        )
        checks = {
            "postgres": {"status": "down", "code": postgres} if postgres else {"status": "up"},
            "temporal": {"status": "down", "code": temporal} if temporal else {"status": "up"},
        }
        down = [name for name, check in checks.items() if check["status"] == "down"]
        return {"status": "not_ready" if down else "ready", "down": down, "checks": checks}

    async def _select_one(self) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")


async def _probe(name: str, probe: Callable[[], Awaitable[None]]) -> str | None:
    """None when the dependency answers, else a stable code (`timeout`, `unreachable`).

    The exception's text can name hosts, users or paths: it goes to the log, never to the
    caller of an unauthenticated route.
    """
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await probe()
    except TimeoutError:
        logger.warning("readiness probe timed out", extra={"component": name})
        return "timeout"
    except Exception as exc:  # any failure means "not ready"
        logger.warning(
            "readiness probe failed", extra={"component": name, "error": type(exc).__name__}
        )
        return "unreachable"
    return None
