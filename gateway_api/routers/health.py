"""Liveness and readiness: /health, /live, /ready (which says what is down)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway_api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health")
async def health(runtime: RuntimeDep) -> dict[str, str]:
    return {"status": "ok", "mode": runtime.mode}


async def _check_postgres(runtime: RuntimeDep) -> str | None:
    try:
        async with asyncio.timeout(2):
            async with runtime.pool.connection() as conn:
                await conn.execute("SELECT 1")
    except Exception as exc:  # any failure means "not ready"
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


async def _check_temporal(runtime: RuntimeDep) -> str | None:
    try:
        async with asyncio.timeout(2):
            await runtime.temporal.service_client.check_health()
    except Exception as exc:  # any failure means "not ready"
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


@router.get("/metrics", response_model=None)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text format: chat requests, upstream attempts, fallbacks, breakers."""
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/ready", response_model=None)
async def ready(runtime: RuntimeDep) -> JSONResponse:
    postgres, temporal = await asyncio.gather(_check_postgres(runtime), _check_temporal(runtime))
    checks = {
        "postgres": {"status": "down", "error": postgres} if postgres else {"status": "up"},
        "temporal": {"status": "down", "error": temporal} if temporal else {"status": "up"},
    }
    down = [name for name, check in checks.items() if check["status"] == "down"]
    body = {"status": "not_ready" if down else "ready", "down": down, "checks": checks}
    return JSONResponse(body, status_code=503 if down else 200)
