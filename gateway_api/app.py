"""The FastAPI app factory; the lifespan owns the runtime (pools, clients, worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from gateway_api.assembly import Mode, Runtime, open_runtime
from gateway_api.assembly.services import build_services
from gateway_api.errors import install_error_handlers
from gateway_api.middleware import (
    AccessLogOptions,
    BodySizeLimit,
    DrainState,
    RequestContextMiddleware,
)
from gateway_api.routers import (
    admin,
    chat,
    codec,
    crag,
    embeddings,
    health,
    ingestion,
    knowledge_bases,
    models,
    operations,
    workflow_runs,
)
from gateway_api.routers.ui import mount_ui
from gateway_api.ui import cors_origins
from gateway_core.config import Settings
from gateway_core.telemetry import Telemetry, open_telemetry

_NO_NATIVE_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}

# Every API router, in the order they are registered.
ROUTERS = (
    health.router,
    models.router,
    chat.router,
    embeddings.router,
    admin.router,
    operations.router,
    knowledge_bases.router,
    ingestion.router,
    crag.router,
    workflow_runs.router,
    codec.router,
)


def create_app(settings: Settings, mode: Mode = "serve", runtime: Runtime | None = None) -> FastAPI:
    """Build the app; with `runtime` given (tests), the caller owns its lifetime."""

    telemetry = (
        runtime.providers.telemetry
        if runtime is not None
        else open_telemetry(settings.trace_content)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            yield
            return
        async with open_runtime(settings, mode, telemetry) as opened:
            app.state.runtime = opened
            app.state.services = build_services(opened)
            yield

    app = FastAPI(
        title="PMP LLM Gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # FastAPI's own OpenTelemetry spans would duplicate the instrumentation's server
        # span (and cost time per request when tracing is off): tracing is ours alone.
        telemetry=_NO_NATIVE_TELEMETRY,
    )
    if runtime is not None:
        app.state.runtime = runtime
        app.state.services = build_services(runtime)
    _add_middleware(app, settings)
    install_error_handlers(app)
    _instrument(app, telemetry)
    for router in ROUTERS:
        app.include_router(router)
    mount_ui(app)
    return app


def _instrument(app: FastAPI, telemetry: Telemetry) -> None:
    """A server span per request (outermost, around every middleware) when tracing is on.

    The ASGI `receive`/`send` spans are left out (one per chunk of a stream), and so
    are probes and scrapes.
    """
    if telemetry.tracer_provider is None:
        return
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=telemetry.tracer_provider,
        exclude_spans=["receive", "send"],
        excluded_urls="/live,/ready,/health,/metrics",
    )


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """The middleware stack, innermost first."""
    # Added first, so it runs inside the request-context middleware (id, access log).
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes, exempt_suffixes=("/ingest",))
    # Shared with the server (cli.py), which drains before it stops on SIGTERM.
    app.state.drain = DrainState()
    app.add_middleware(
        RequestContextMiddleware,
        drain=app.state.drain,
        options=AccessLogOptions.from_settings(settings),
    )
    if origins := cors_origins(settings.cors_origins):
        # Outermost, so preflights and error answers carry the headers too.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["*"],
        )
