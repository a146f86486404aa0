"""What every provider-call activity does around its call: the circuit breaker and metrics.

An attempt is admitted only while the model's breaker is closed; its outcome is recorded
there (did the upstream answer?) and in the per-attempt metrics.
"""

from __future__ import annotations

import time

from gateway_core.breaker.base import CircuitBreaker
from gateway_core.error_codec import application_error
from gateway_core.errors import (
    CircuitOpenError,
    GatewayError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamModelNotFoundError,
)
from gateway_core.metrics import GatewayMetrics


def health_signal(error: GatewayError) -> bool | None:
    """What a failure says about the model: False unhealthy, True alive, None nothing."""
    if isinstance(error, UpstreamModelNotFoundError):
        return False  # every call to it will fail the same way: let the breaker open
    if isinstance(error, UpstreamBadRequestError):
        return True  # it answered; the request was at fault
    if isinstance(error, UpstreamError):
        return False
    return None  # a gateway-side problem (configuration): the upstream was not called


class AttemptGuard:
    """Admits attempts past the breaker and settles their outcome."""

    def __init__(self, breaker: CircuitBreaker, metrics: GatewayMetrics) -> None:
        self._breaker = breaker
        self._metrics = metrics

    async def admit(self, model_id: str) -> None:
        """Raise the (non-retryable) activity failure when the model's breaker is open."""
        admission = await self._breaker.admit(model_id)
        self._metrics.observe_breaker(model_id, admission.state)
        if not admission.allowed:
            raise application_error(
                CircuitOpenError(f"circuit breaker of model {model_id!r} is open", retryable=False),
                attempt=0,
            )

    async def settle(
        self,
        model_id: str,
        chain_id: str | None,
        step_index: int,
        started: float,
        error: BaseException | None,
    ) -> None:
        """Record one attempt's outcome in the breaker and the metrics.

        An exception that is no GatewayError (an upstream answer nothing could read, a
        bug) is a failed attempt: unhealthy for the breaker, named in the metrics.
        """
        healthy: bool | None = False
        if error is None:
            healthy = True
        elif isinstance(error, GatewayError):
            healthy = health_signal(error)
        if healthy is not None:
            state = await self._breaker.record(model_id, healthy)
            self._metrics.observe_breaker(model_id, state)
        outcome = "ok" if error is None else type(error).__name__
        self._metrics.observe_attempt(
            model=model_id,
            chain=chain_id,
            step=step_index,
            outcome=outcome,
            seconds=time.monotonic() - started,
        )
