"""Per-model circuit breaker state and reset: /admin/models/{id}/health."""

from __future__ import annotations

from fastapi import APIRouter

from gateway_api.deps import AdminDep, RuntimeDep
from gateway_core.breaker.base import BreakerStatus

router = APIRouter(prefix="/admin/models/{model_id}/health", tags=["admin"])


@router.get("")
async def model_health(model_id: str, runtime: RuntimeDep, _admin: AdminDep) -> dict[str, object]:
    """Breaker state and the error rate of the current window (shared through Redis)."""
    await runtime.models.get(model_id)
    status = await runtime.breaker.status(model_id)
    runtime.metrics.observe_breaker(model_id, status.state)
    return {"model": model_id, "circuit_breaker": status.model_dump()}


@router.post("/reset")
async def reset_breaker(model_id: str, runtime: RuntimeDep, _admin: AdminDep) -> BreakerStatus:
    await runtime.models.get(model_id)
    await runtime.breaker.reset(model_id)
    return await runtime.breaker.status(model_id)
