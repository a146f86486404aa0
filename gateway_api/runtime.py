"""Assembles the gateway's long-lived parts for one process, in start order.

`serve` embeds whatever is not configured and runs the worker in-process;
`api` and `worker` use configured services only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis
from temporalio.client import Client

from gateway_core.auth.keys import AdminKeys, ensure_admin_key
from gateway_core.auth.rate_limit import MemoryRateLimiter, RateLimiter
from gateway_core.auth.rate_limit_redis import RedisRateLimiter
from gateway_core.auth.secrets import KeyHasher, load_or_create_secret
from gateway_core.auth.service import Authenticator
from gateway_core.auth.usage import UsageRecorder
from gateway_core.breaker.base import BreakerConfig, CircuitBreaker, MemoryCircuitBreaker
from gateway_core.breaker.redis import RedisCircuitBreaker
from gateway_core.cache.base import CacheLimits, ResponseCache
from gateway_core.cache.memory import MemoryResponseCache
from gateway_core.cache.redis import RedisResponseCache
from gateway_core.cache.semantic import Embedder, ProviderEmbedder, SemanticIndex
from gateway_core.callbacks import derive_callback_secret
from gateway_core.config import Settings
from gateway_core.credentials.sources import build_resolver
from gateway_core.domain.chains import ModelChain
from gateway_core.domain.models import Model
from gateway_core.domain.prompts import Prompt
from gateway_core.metrics import GatewayMetrics
from gateway_core.providers.registry import ProviderRegistry, build_http_client
from gateway_core.storage.api_keys import ApiKeyRepository
from gateway_core.storage.chains import ChainRepository
from gateway_core.storage.database import Pool, migrate, open_pool
from gateway_core.storage.embedded import EmbeddedPostgres
from gateway_core.storage.model_cache import TtlCache
from gateway_core.storage.models import ModelRepository
from gateway_core.storage.prompts import PromptRepository
from gateway_core.streaming.bus import InProcessStreamBus, RedisStreamBus, StreamBus
from temporal_workers.client import (
    connect_client,
    register_search_attributes,
    set_retention,
)
from temporal_workers.dev_server import EmbeddedTemporal
from temporal_workers.worker import running_worker

logger = logging.getLogger(__name__)

Mode = Literal["serve", "api", "worker"]


@dataclass
class Runtime:
    """What request handlers reach through dependencies."""

    settings: Settings
    mode: Mode
    pool: Pool
    models: ModelRepository
    model_cache: TtlCache[Model]
    prompts: PromptRepository
    prompt_cache: TtlCache[Prompt]
    chain_cache: TtlCache[ModelChain | None]
    chains: ChainRepository
    breaker: CircuitBreaker
    metrics: GatewayMetrics
    admin_keys: AdminKeys
    api_keys: ApiKeyRepository
    authenticator: Authenticator
    rate_limiter: RateLimiter
    usage: UsageRecorder
    temporal: Client
    bus: StreamBus | None
    eager_start: bool
    temporal_address: str
    temporal_ui_url: str | None = None
    # Answers served without a run (see gateway_api.response_cache).
    response_cache: ResponseCache = field(default_factory=MemoryResponseCache)
    semantic_index: SemanticIndex | None = None
    embedder: Embedder | None = None
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        """Run fire-and-forget work (a cancellation) without losing its task or error."""
        task = asyncio.create_task(work)
        self.background.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self.background.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                logger.info(
                    "background work failed",
                    extra={"what": what, "error": repr(finished.exception())},
                )

        task.add_done_callback(done)


@asynccontextmanager
async def open_runtime(settings: Settings, mode: Mode = "serve") -> AsyncIterator[Runtime]:
    """Start (or connect to) every dependency; the exit stack stops them in reverse."""
    if mode != "serve" and (settings.embeds_postgres or settings.embeds_temporal):
        raise SystemExit(
            f"pmp-gateway {mode} needs PMP_DATABASE_URL and PMP_TEMPORAL_ADDRESS; "
            "use `pmp-gateway serve` for the embedded default"
        )
    async with AsyncExitStack() as stack:
        database_url = await _database_url(settings, stack)
        pool = await open_pool(
            database_url, min_size=settings.database_pool_min, max_size=settings.database_pool_max
        )
        stack.push_async_callback(pool.close)
        await migrate(pool)
        admin_keys = AdminKeys(set())
        if mode != "worker":  # workers authenticate nobody
            admin_keys = await ensure_admin_key(
                pool,
                settings.admin_key.get_secret_value() if settings.admin_key else None,
                settings.data_dir,
            )

        temporal_address, ui_url = await _temporal_address(settings, stack)
        client = await connect_client(settings, temporal_address)
        redis = await _redis(settings, stack)
        bus = _stream_bus(redis, mode)
        breaker = _breaker(settings, redis)
        metrics = GatewayMetrics()

        key_hash_secret = load_or_create_secret(
            settings.key_hash_secret.get_secret_value() if settings.key_hash_secret else None,
            settings.data_dir,
        )
        if mode != "worker":
            await register_search_attributes(client, settings.temporal_namespace)
        if settings.embeds_temporal:
            await set_retention(
                client, settings.temporal_namespace, settings.operation_retention_days
            )
        if mode in ("serve", "worker"):
            await stack.enter_async_context(
                running_worker(
                    settings,
                    client,
                    bus or InProcessStreamBus(),
                    breaker,
                    metrics,
                    derive_callback_secret(key_hash_secret),
                )
            )

        hasher = KeyHasher(key_hash_secret)
        api_keys = ApiKeyRepository(pool, hasher)
        authenticator = Authenticator(
            admin_keys, api_keys, hasher, cache_ttl_s=settings.auth_cache_ttl_s
        )
        usage = UsageRecorder(api_keys, authenticator)
        usage_task = asyncio.create_task(usage.run(settings.usage_flush_interval_s))
        stack.push_async_callback(_stop_task, usage_task)

        models = ModelRepository(pool)
        prompts = PromptRepository(pool)
        chains = ChainRepository(pool)
        yield Runtime(
            settings=settings,
            mode=mode,
            pool=pool,
            models=models,
            model_cache=TtlCache(models.get),
            prompts=prompts,
            prompt_cache=TtlCache(prompts.get),
            chain_cache=TtlCache(chains.find),
            chains=chains,
            breaker=breaker,
            metrics=metrics,
            admin_keys=admin_keys,
            api_keys=api_keys,
            authenticator=authenticator,
            rate_limiter=RedisRateLimiter(redis) if redis else MemoryRateLimiter(),
            usage=usage,
            temporal=client,
            bus=bus,
            eager_start=mode == "serve",
            temporal_address=temporal_address,
            temporal_ui_url=ui_url,
            response_cache=_response_cache(settings, redis),
            semantic_index=SemanticIndex(pool),
            embedder=await _embedder(settings, stack) if mode != "worker" else None,
        )


async def _stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _database_url(settings: Settings, stack: AsyncExitStack) -> str:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    postgres = EmbeddedPostgres(settings.data_dir, settings.embedded_postgres_port)
    await stack.enter_async_context(postgres)
    logger.info("embedded PostgreSQL is up", extra={"port": postgres.port})
    return postgres.url


async def _temporal_address(settings: Settings, stack: AsyncExitStack) -> tuple[str, str | None]:
    if settings.temporal_address is not None:
        return settings.temporal_address, None
    server = EmbeddedTemporal(
        settings.data_dir,
        port=settings.temporal_port,
        ui_port=settings.temporal_ui_port,
        ui=settings.temporal_ui,
        namespace=settings.temporal_namespace,
    )
    await stack.enter_async_context(server)
    logger.info(
        "embedded Temporal is up", extra={"address": server.address, "web_ui": server.ui_url}
    )
    return server.address, server.ui_url


async def _redis(settings: Settings, stack: AsyncExitStack) -> Redis | None:
    if settings.redis_url is None:
        return None
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    stack.push_async_callback(redis.aclose)
    return redis


def _breaker(settings: Settings, redis: Redis | None) -> CircuitBreaker:
    config = BreakerConfig(
        failure_ratio=settings.breaker_failure_ratio,
        min_requests=settings.breaker_min_requests,
        window_s=settings.breaker_window_s,
        cooldown_s=settings.breaker_cooldown_s,
        probes=settings.breaker_probes,
    )
    return RedisCircuitBreaker(redis, config) if redis else MemoryCircuitBreaker(config)


def _response_cache(settings: Settings, redis: Redis | None) -> ResponseCache:
    limits = CacheLimits(max_entries=settings.cache_max_entries, max_bytes=settings.cache_max_bytes)
    return RedisResponseCache(redis, limits) if redis else MemoryResponseCache(limits)


async def _embedder(settings: Settings, stack: AsyncExitStack) -> Embedder:
    """The default embedder for semantic caching: the cached model's provider."""
    http = build_http_client(settings.upstream_connect_timeout_s, max_connections=20)
    stack.push_async_callback(http.aclose)
    providers = ProviderRegistry(http)
    stack.callback(providers.close)
    return ProviderEmbedder(
        providers, build_resolver(settings, http), settings.cache_embedding_model
    )


def _stream_bus(redis: Redis | None, mode: Mode) -> StreamBus | None:
    if redis is not None:
        return RedisStreamBus(redis)
    if mode == "serve":
        return InProcessStreamBus()
    logger.warning(
        "PMP_REDIS_URL is not set: streaming needs it when API and worker "
        "run as separate processes; stream requests will answer 503"
    )
    return None
