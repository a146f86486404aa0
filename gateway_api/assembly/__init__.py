"""Runtime assembly: the typed groups of one process, opened in start order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from temporalio.worker import Worker

from gateway_api.assembly.factories import (
    build_providers,
    open_auth,
    open_cache,
    open_knowledge,
    open_redis,
    open_storage,
    open_temporal,
)
from gateway_api.assembly.groups import (
    KnowledgeGroup,
    Mode,
    ProvidersGroup,
    Runtime,
    StorageGroup,
    TemporalGroup,
)
from gateway_api.assembly.secrets import process_secrets
from gateway_api.services.background import Background
from gateway_core.auth.secrets import KeyHasher
from gateway_core.callbacks import CallbackTargets, derive_callback_secret
from gateway_core.config import Settings
from gateway_core.outbound import OutboundPolicy
from gateway_core.process import StartupError
from gateway_core.streaming.bus import InProcessStreamBus
from gateway_core.telemetry import Telemetry, open_telemetry
from temporal_workers.worker import running_worker

__all__ = ["Mode", "Runtime", "open_runtime"]


def _worker(
    settings: Settings,
    temporal: TemporalGroup,
    providers: ProvidersGroup,
    secret: bytes,
    storage: StorageGroup,
    knowledge: KnowledgeGroup,
) -> AbstractAsyncContextManager[Worker]:
    """The in-process worker of `serve` and `worker` modes, on this process's clients."""
    return running_worker(
        settings,
        temporal.runs.client,
        providers.bus or InProcessStreamBus(),
        providers.breaker,
        providers.metrics,
        derive_callback_secret(secret),
        storage.pool,
        knowledge.backends,
        telemetry=providers.telemetry,
        handoff=temporal.runs.handoff,
    )


@asynccontextmanager
async def open_runtime(
    settings: Settings, mode: Mode = "serve", telemetry: Telemetry | None = None
) -> AsyncIterator[Runtime]:
    """Start (or connect to) every dependency; the exit stack stops them in reverse.

    `telemetry` replaces tracing from the OTEL_* variables (tests: an in-memory exporter).

    `serve` embeds whatever is not configured and runs the worker in-process; `api` and
    `worker` use configured services only (StartupError otherwise).
    """
    if mode != "serve" and (settings.embeds_postgres or settings.embeds_temporal):
        raise StartupError(
            f"pmp-gateway {mode} needs PMP_DATABASE_URL and PMP_TEMPORAL_ADDRESS; "
            "use `pmp-gateway serve` for the embedded default"
        )
    async with AsyncExitStack() as stack:
        secret, codec = process_secrets(settings, mode)
        hasher = KeyHasher(secret)
        if telemetry is None:
            telemetry = open_telemetry(settings.trace_content)
            stack.callback(telemetry.shutdown)
        storage = await open_storage(settings, stack, hasher)
        temporal = await open_temporal(settings, stack, mode, codec, telemetry)
        redis = await open_redis(settings, stack)
        providers = build_providers(settings, redis, mode, telemetry)
        # Before the worker: its ingestion activities store through the same backends
        # (Qdrant's local mode locks its folder, so API and worker must share one client).
        knowledge = await open_knowledge(settings, stack, storage)
        if mode in ("serve", "worker"):
            await stack.enter_async_context(
                _worker(settings, temporal, providers, secret, storage, knowledge)
            )
        auth = await open_auth(settings, stack, storage, hasher, redis, mode)
        background = Background()
        stack.push_async_callback(background.aclose)
        yield Runtime(
            settings=settings,
            mode=mode,
            storage=storage,
            auth=auth,
            temporal=temporal,
            cache=await open_cache(settings, stack, storage, redis, mode),
            providers=providers,
            knowledge=knowledge,
            background=background,
            callbacks=CallbackTargets(
                OutboundPolicy.from_settings(settings), derive_callback_secret(secret)
            ),
        )
