"""Per-model circuit breaker state and reset: /admin/models/{id}/health."""

from __future__ import annotations

from fastapi import APIRouter

from gateway_api.deps import ModelHealthDep
from gateway_core.breaker.base import BreakerStatus

router = APIRouter(prefix="/models/{model_id}/health", tags=["admin"])


@router.get("")
async def model_health(model_id: str, health: ModelHealthDep) -> dict[str, object]:
    """Breaker state and the error rate of the current window (shared through Redis)."""
    status = await health.status(model_id)
    return {"model": model_id, "circuit_breaker": status.model_dump()}


@router.post("/reset")
async def reset_breaker(model_id: str, health: ModelHealthDep) -> BreakerStatus:
    return await health.reset(model_id)
