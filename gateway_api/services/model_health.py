"""A model's circuit breaker: its state (shared through Redis) and a manual reset."""

from __future__ import annotations

from gateway_core.breaker.base import BreakerStatus, CircuitBreaker
from gateway_core.metrics import GatewayMetrics
from gateway_core.storage.models import ModelRepository


class ModelHealth:
    """Breaker status and reset for stored models; an unknown model is a 404."""

    def __init__(
        self, *, models: ModelRepository, breaker: CircuitBreaker, metrics: GatewayMetrics
    ) -> None:
        self._models = models
        self._breaker = breaker
        self._metrics = metrics

    async def status(self, model_id: str) -> BreakerStatus:
        """The breaker's state and current error rate, also set on the breaker gauge."""
        await self._models.get(model_id)
        status = await self._breaker.status(model_id)
        self._metrics.observe_breaker(model_id, status.state)
        return status

    async def reset(self, model_id: str) -> BreakerStatus:
        """Close the breaker and forget its window; the state after the reset."""
        await self._models.get(model_id)
        await self._breaker.reset(model_id)
        return await self._breaker.status(model_id)
