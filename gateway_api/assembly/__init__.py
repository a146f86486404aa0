"""Runtime assembly: the typed groups of one process, opened in start order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from gateway_api.assembly.factories import (
    build_providers,
    open_auth,
    open_cache,
    open_knowledge,
    open_redis,
    open_storage,
    open_temporal,
)
from gateway_api.assembly.groups import Mode, Runtime
from gateway_api.services.background import Background
from gateway_core.auth.secrets import KeyHasher, load_or_create_secret
from gateway_core.callbacks import derive_callback_secret
from gateway_core.config import Settings
from gateway_core.process import StartupError
from gateway_core.streaming.bus import InProcessStreamBus
from temporal_workers.worker import running_worker

__all__ = ["Mode", "Runtime", "open_runtime"]


@asynccontextmanager
async def open_runtime(settings: Settings, mode: Mode = "serve") -> AsyncIterator[Runtime]:
    """Start (or connect to) every dependency; the exit stack stops them in reverse.

    `serve` embeds whatever is not configured and runs the worker in-process; `api` and
    `worker` use configured services only (StartupError otherwise).
    """
    if mode != "serve" and (settings.embeds_postgres or settings.embeds_temporal):
        raise StartupError(
            f"pmp-gateway {mode} needs PMP_DATABASE_URL and PMP_TEMPORAL_ADDRESS; "
            "use `pmp-gateway serve` for the embedded default"
        )
    async with AsyncExitStack() as stack:
        secret = load_or_create_secret(
            settings.key_hash_secret.get_secret_value() if settings.key_hash_secret else None,
            settings.data_dir,
        )
        hasher = KeyHasher(secret)
        storage = await open_storage(settings, stack, hasher)
        temporal = await open_temporal(settings, stack, mode)
        redis = await open_redis(settings, stack)
        providers = build_providers(settings, redis, mode)
        if mode in ("serve", "worker"):
            await stack.enter_async_context(
                running_worker(
                    settings,
                    temporal.runs.client,
                    providers.bus or InProcessStreamBus(),
                    providers.breaker,
                    providers.metrics,
                    derive_callback_secret(secret),
                )
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
            knowledge=await open_knowledge(settings, stack, storage),
            background=background,
        )
