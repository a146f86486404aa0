"""Liveness and readiness: /health, /live, /ready (which says what is down), /metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway_api.deps import MetricsDep, ReadinessDep

router = APIRouter(tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health")
async def health(readiness: ReadinessDep) -> dict[str, str]:
    return {"status": "ok", "mode": readiness.mode}


@router.get("/metrics", response_model=None)
async def metrics(registry: MetricsDep) -> Response:
    """Prometheus text format: chat requests, upstream attempts, fallbacks, breakers."""
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/ready", response_model=None)
async def ready(readiness: ReadinessDep) -> JSONResponse:
    body = await readiness.check()
    return JSONResponse(body, status_code=503 if body["down"] else 200)
