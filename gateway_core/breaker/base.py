"""Circuit breaker per model: stop calling an upstream that keeps failing, probe it later.

closed    -> calls go through; outcomes are counted in a sliding window.
open      -> after `min_requests` calls in the window with a failure share >= `failure_ratio`;
             calls are refused until `cooldown_s` has passed.
half_open -> up to `probes` calls go through; a success closes, a failure opens again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from pydantic import BaseModel, Field

State = Literal["closed", "open", "half_open"]


class BreakerConfig(BaseModel):
    """Thresholds of every model's breaker (settings PMP_BREAKER_*)."""

    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    min_requests: int = Field(default=5, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=30.0, gt=0)
    probes: int = Field(default=1, ge=1)


class BreakerStatus(BaseModel):
    """What GET /admin/models/{id}/health shows."""

    state: State
    requests: int
    failures: int
    error_rate: float
    open_until: float | None = None


class Admission(NamedTuple):
    """Whether a call may go out, and the breaker's state when it was asked."""

    allowed: bool
    state: State


class CircuitBreaker(Protocol):
    """Shared by every process that calls upstreams (Redis) or by one process (memory)."""

    async def admit(self, model_id: str) -> Admission:
        """May a call to this model go out now? (In half-open, this takes a probe.)"""
        ...

    async def allow(self, model_id: str) -> bool:
        """`admit(...).allowed`."""
        ...

    async def record(self, model_id: str, success: bool) -> State:
        """Count one call's outcome (only failures that say the model is unhealthy);
        the state it leaves the breaker in."""
        ...

    async def status(self, model_id: str) -> BreakerStatus: ...

    async def reset(self, model_id: str) -> None: ...


@dataclass
class _Circuit:
    state: State = "closed"
    open_until: float = 0.0
    probes_taken: int = 0
    probe_at: float = 0.0
    outcomes: deque[tuple[float, bool]] = field(default_factory=deque)


class MemoryCircuitBreaker:
    """In-process breaker, for a single gateway process."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def _circuit(self, model_id: str) -> _Circuit:
        circuit = self._circuits.setdefault(model_id, _Circuit())
        horizon = self._clock() - self._config.window_s
        while circuit.outcomes and circuit.outcomes[0][0] < horizon:
            circuit.outcomes.popleft()
        return circuit

    async def allow(self, model_id: str) -> bool:
        return (await self.admit(model_id)).allowed

    async def admit(self, model_id: str) -> Admission:
        circuit = self._circuit(model_id)
        if circuit.state == "closed":
            return Admission(True, "closed")
        if circuit.state == "open":
            if self._clock() < circuit.open_until:
                return Admission(False, "open")
            circuit.state, circuit.probes_taken = "half_open", 0
        now = self._clock()
        # A probe whose outcome never came back (cancelled, worker lost) is a lease that
        # runs out after a cool-down, so the breaker cannot stay half-open forever.
        if now - circuit.probe_at >= self._config.cooldown_s:
            circuit.probes_taken = 0
        if circuit.probes_taken < self._config.probes:
            circuit.probes_taken += 1
            circuit.probe_at = now
            return Admission(True, "half_open")
        return Admission(False, "half_open")

    async def record(self, model_id: str, success: bool) -> State:
        circuit = self._circuit(model_id)
        now = self._clock()
        if circuit.state == "half_open":
            if success:
                self._circuits[model_id] = _Circuit()
                return "closed"
            circuit.state, circuit.open_until = "open", now + self._config.cooldown_s
            return "open"
        circuit.outcomes.append((now, success))
        if circuit.state == "closed" and not success and self._should_open(circuit):
            circuit.state, circuit.open_until = "open", now + self._config.cooldown_s
        return circuit.state

    def _should_open(self, circuit: _Circuit) -> bool:
        total = len(circuit.outcomes)
        failures = sum(1 for _when, ok in circuit.outcomes if not ok)
        return total >= self._config.min_requests and failures / total >= self._config.failure_ratio

    async def status(self, model_id: str) -> BreakerStatus:
        circuit = self._circuit(model_id)
        total = len(circuit.outcomes)
        failures = sum(1 for _when, ok in circuit.outcomes if not ok)
        return BreakerStatus(
            state=circuit.state,
            requests=total,
            failures=failures,
            error_rate=failures / total if total else 0.0,
            open_until=circuit.open_until if circuit.state == "open" else None,
        )

    async def reset(self, model_id: str) -> None:
        self._circuits.pop(model_id, None)
