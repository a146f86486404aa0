"""Small factories, one per runtime group; each registers its clean-up on the exit stack."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack

from psycopg_pool import PoolTimeout
from redis.asyncio import Redis

from gateway_api.assembly.groups import (
    AuthGroup,
    CacheGroup,
    KnowledgeGroup,
    Mode,
    ProvidersGroup,
    StorageGroup,
    TemporalGroup,
)
from gateway_api.services.run_client import RunClient
from gateway_core.auth.keys import AdminKeys, ensure_admin_key
from gateway_core.auth.rate_limit import MemoryRateLimiter
from gateway_core.auth.rate_limit_redis import RedisRateLimiter
from gateway_core.auth.secrets import KeyHasher
from gateway_core.auth.service import Authenticator
from gateway_core.auth.usage import UsageRecorder
from gateway_core.breaker.base import BreakerConfig, CircuitBreaker, MemoryCircuitBreaker
from gateway_core.breaker.redis import RedisCircuitBreaker
from gateway_core.cache.base import CacheLimits, ResponseCache
from gateway_core.cache.memory import MemoryResponseCache
from gateway_core.cache.redis import RedisResponseCache
from gateway_core.cache.semantic import Embedder, ProviderEmbedder, SemanticIndex
from gateway_core.config import Settings
from gateway_core.credentials.env_policy import EnvNamePolicy
from gateway_core.credentials.sources import build_resolver
from gateway_core.knowledge.backend import KnowledgeBackend
from gateway_core.knowledge.bedrock_kb import BedrockKnowledgeBackend
from gateway_core.knowledge.pgvector import PgvectorBackend
from gateway_core.knowledge.qdrant import QdrantBackend
from gateway_core.metrics import GatewayMetrics
from gateway_core.process import StartupError
from gateway_core.providers.registry import ProviderRegistry, build_http_client
from gateway_core.storage.api_keys import ApiKeyRepository
from gateway_core.storage.chains import ChainRepository
from gateway_core.storage.database import migrate, open_pool
from gateway_core.storage.embedded import EmbeddedPostgres
from gateway_core.storage.knowledge_bases import KnowledgeBaseRepository
from gateway_core.storage.model_cache import TtlCache
from gateway_core.storage.models import ModelRepository
from gateway_core.storage.prompts import PromptRepository
from gateway_core.storage.workflows import WorkflowRepository
from gateway_core.streaming.bus import InProcessStreamBus, RedisStreamBus, StreamBus
from gateway_core.telemetry import Telemetry
from temporal_workers.client import connect_client, register_search_attributes, set_retention
from temporal_workers.dev_server import EmbeddedTemporal
from temporal_workers.payload_codec import AesGcmCodec
from temporal_workers.result_handoff import ResultHandOff

logger = logging.getLogger(__name__)


async def open_storage(
    settings: Settings, stack: AsyncExitStack, hasher: KeyHasher
) -> StorageGroup:
    """The database (embedded when PMP_DATABASE_URL is unset), migrated, and its repositories."""
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
    else:
        postgres = EmbeddedPostgres(settings.data_dir, settings.embedded_postgres_port)
        await stack.enter_async_context(postgres)
        logger.info("embedded PostgreSQL is up", extra={"port": postgres.port})
        url = postgres.url
    try:
        pool = await open_pool(
            url, min_size=settings.database_pool_min, max_size=settings.database_pool_max
        )
    except PoolTimeout:
        raise StartupError("PostgreSQL does not accept connections (PMP_DATABASE_URL)") from None
    stack.push_async_callback(pool.close)
    await migrate(pool)
    env_policy = EnvNamePolicy(settings.credential_env_allow)
    models = ModelRepository(pool, env_policy)
    chains, prompts = ChainRepository(pool), PromptRepository(pool)
    return StorageGroup(
        pool=pool,
        env_policy=env_policy,
        models=models,
        chains=chains,
        prompts=prompts,
        api_keys=ApiKeyRepository(pool, hasher),
        knowledge_bases=KnowledgeBaseRepository(pool),
        workflows=WorkflowRepository(pool),
        model_cache=TtlCache(models.get),
        chain_cache=TtlCache(chains.find),
        prompt_cache=TtlCache(prompts.get),
    )


async def open_auth(
    settings: Settings,
    stack: AsyncExitStack,
    storage: StorageGroup,
    hasher: KeyHasher,
    redis: Redis | None,
    mode: Mode,
) -> AuthGroup:
    """Admin keys (created on first start), key verification, rate limits, usage flushing."""
    admin_keys = AdminKeys(set())
    if mode != "worker":  # workers authenticate nobody
        admin_keys = await ensure_admin_key(
            storage.pool,
            settings.admin_key.get_secret_value() if settings.admin_key else None,
            settings.data_dir,
        )
    authenticator = Authenticator(
        admin_keys, storage.api_keys, hasher, cache_ttl_s=settings.auth_cache_ttl_s
    )
    usage = UsageRecorder(storage.api_keys, authenticator)
    flushing = asyncio.create_task(usage.run(settings.usage_flush_interval_s))
    stack.push_async_callback(_stop_task, flushing)
    return AuthGroup(
        admin_keys=admin_keys,
        authenticator=authenticator,
        rate_limiter=RedisRateLimiter(redis) if redis else MemoryRateLimiter(),
        usage=usage,
    )


async def open_temporal(
    settings: Settings,
    stack: AsyncExitStack,
    mode: Mode,
    codec: AesGcmCodec,
    telemetry: Telemetry | None = None,
) -> TemporalGroup:
    """A client of the configured Temporal, or of an embedded dev server for `serve`."""
    # PMP_TEMPORAL_UI_URL names the Web UI of an external Temporal (or a proxied one).
    address, ui_url = settings.temporal_address, settings.temporal_ui_url
    if address is None:
        server = EmbeddedTemporal(
            settings.data_dir,
            port=settings.temporal_port,
            ui_port=settings.temporal_ui_port,
            ui=settings.temporal_ui,
            namespace=settings.temporal_namespace,
            codec_endpoint=f"http://{_browser_host(settings.host)}:{settings.port}/codec",
        )
        await stack.enter_async_context(server)
        logger.info(
            "embedded Temporal is up", extra={"address": server.address, "web_ui": server.ui_url}
        )
        address, ui_url = server.address, ui_url or server.ui_url
    try:
        client = await connect_client(settings, address, telemetry=telemetry, codec=codec)
    except RuntimeError as error:  # the SDK's "Failed client connect"
        raise StartupError(
            f"cannot connect to Temporal at {address} (PMP_TEMPORAL_ADDRESS): {error}"
        ) from None
    if mode != "worker":
        await register_search_attributes(client, settings.temporal_namespace)
    if settings.embeds_temporal:
        await set_retention(client, settings.temporal_namespace, settings.operation_retention_days)
    runs = RunClient(
        client,
        task_queue=settings.temporal_task_queue,
        namespace=settings.temporal_namespace,
        eager_start=mode == "serve",
        ui_url=ui_url,
        # `serve`'s own worker hands plain calls' results over without a history poll.
        handoff=ResultHandOff() if mode == "serve" else None,
    )
    return TemporalGroup(runs=runs, address=address, ui_url=ui_url, codec=codec)


def _browser_host(host: str) -> str:
    """The API's host as a browser on this machine reaches it (not a wildcard address)."""
    return "localhost" if host in ("0.0.0.0", "::", "") else host  # noqa: S104


async def open_redis(settings: Settings, stack: AsyncExitStack) -> Redis | None:
    if settings.redis_url is None:
        return None
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    stack.push_async_callback(redis.aclose)
    return redis


def build_providers(
    settings: Settings, redis: Redis | None, mode: Mode, telemetry: Telemetry | None = None
) -> ProvidersGroup:
    """Breaker (shared through Redis when there is one), stream bus and metrics."""
    config = BreakerConfig(
        failure_ratio=settings.breaker_failure_ratio,
        min_requests=settings.breaker_min_requests,
        window_s=settings.breaker_window_s,
        cooldown_s=settings.breaker_cooldown_s,
        probes=settings.breaker_probes,
    )
    breaker: CircuitBreaker = (
        RedisCircuitBreaker(redis, config) if redis else MemoryCircuitBreaker(config)
    )
    return ProvidersGroup(
        breaker=breaker,
        bus=_stream_bus(redis, mode),
        metrics=GatewayMetrics(),
        telemetry=telemetry or Telemetry.off(),
    )


async def open_cache(
    settings: Settings,
    stack: AsyncExitStack,
    storage: StorageGroup,
    redis: Redis | None,
    mode: Mode,
) -> CacheGroup:
    """Response cache in Redis when configured (else memory) and the semantic index."""
    limits = CacheLimits(max_entries=settings.cache_max_entries, max_bytes=settings.cache_max_bytes)
    responses: ResponseCache = (
        RedisResponseCache(redis, limits) if redis else MemoryResponseCache(limits)
    )
    embedder = await _embedder(settings, stack) if mode != "worker" else None
    return CacheGroup(
        responses=responses, semantic_index=SemanticIndex(storage.pool), embedder=embedder
    )


async def _embedder(settings: Settings, stack: AsyncExitStack) -> Embedder:
    """The default embedder for semantic caching: the cached model's provider."""
    http = build_http_client(settings.upstream_connect_timeout_s, max_connections=20)
    stack.push_async_callback(http.aclose)
    providers = ProviderRegistry(http)
    stack.callback(providers.close)
    return ProviderEmbedder(
        providers, build_resolver(settings, http), settings.cache_embedding_model
    )


async def open_knowledge(
    settings: Settings, stack: AsyncExitStack, storage: StorageGroup
) -> KnowledgeGroup:
    """One backend instance per knowledge-base backend type."""
    backends: dict[str, KnowledgeBackend] = {"pgvector": PgvectorBackend(storage.pool)}
    backends.update(await _remote_knowledge_backends(settings, stack))
    return KnowledgeGroup(backends=backends)


async def _remote_knowledge_backends(
    settings: Settings, stack: AsyncExitStack
) -> dict[str, KnowledgeBackend]:
    """Qdrant (local mode in the data dir unless a KB names a url) and AWS Bedrock KBs."""
    http = build_http_client(settings.upstream_connect_timeout_s, max_connections=20)
    stack.push_async_callback(http.aclose)
    credentials = build_resolver(settings, http)
    qdrant = QdrantBackend(credentials, local_location=str(settings.data_dir / "qdrant"))
    stack.push_async_callback(qdrant.close)
    bedrock = BedrockKnowledgeBackend(credentials)
    stack.callback(bedrock.close)
    return {"qdrant": qdrant, "bedrock": bedrock}


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


async def _stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
