"""The FastAPI app factory; the lifespan owns the runtime (pools, clients, worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway_api.assembly import Mode, Runtime, open_runtime
from gateway_api.assembly.services import build_services
from gateway_api.errors import install_error_handlers
from gateway_api.middleware import BodySizeLimit, RequestContextMiddleware
from gateway_api.routers import (
    admin,
    chat,
    crag,
    embeddings,
    health,
    ingestion,
    knowledge_bases,
    models,
    operations,
)
from gateway_core.config import Settings


def create_app(settings: Settings, mode: Mode = "serve", runtime: Runtime | None = None) -> FastAPI:
    """Build the app; with `runtime` given (tests), the caller owns its lifetime."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            yield
            return
        async with open_runtime(settings, mode) as opened:
            app.state.runtime = opened
            app.state.services = build_services(opened)
            yield

    app = FastAPI(
        title="PMP LLM Gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    if runtime is not None:
        app.state.runtime = runtime
        app.state.services = build_services(runtime)
    # Added first, so it runs inside the request-context middleware (id, access log).
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes, exempt_suffixes=("/ingest",))
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    for router in (
        health.router,
        models.router,
        chat.router,
        embeddings.router,
        admin.router,
        operations.router,
        knowledge_bases.router,
        ingestion.router,
        crag.router,
    ):
        app.include_router(router)
    return app
