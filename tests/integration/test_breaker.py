"""The circuit breaker behaves the same in memory and in Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from activities.guard import AttemptGuard
from gateway_core.breaker.base import BreakerConfig, CircuitBreaker, MemoryCircuitBreaker
from gateway_core.breaker.redis import RedisCircuitBreaker
from gateway_core.errors import UpstreamError
from gateway_core.metrics import GatewayMetrics

CONFIG = BreakerConfig(failure_ratio=0.5, min_requests=4, window_s=10, cooldown_s=5, probes=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def breaker_and_clock(
    request: pytest.FixtureRequest, redis_url: str
) -> AsyncIterator[tuple[CircuitBreaker, Clock]]:
    clock = Clock()
    if request.param == "memory":
        yield MemoryCircuitBreaker(CONFIG, clock), clock
        return
    redis = Redis.from_url(redis_url)
    try:
        yield RedisCircuitBreaker(redis, CONFIG, clock), clock
    finally:
        await redis.aclose()


def _model() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


async def _tripped(breaker: CircuitBreaker) -> str:
    """A fresh model whose breaker the failures just opened (min_requests is 4)."""
    model = _model()
    for _ in range(4):
        await breaker.record(model, False)
    return model


async def test_opens_only_after_min_requests_at_the_failure_ratio(
    breaker_and_clock: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, clock = breaker_and_clock
    model = _model()
    for _ in range(3):
        await breaker.record(model, False)
        clock.now += 0.1
    assert (await breaker.status(model)).state == "closed"  # 3 < min_requests
    await breaker.record(model, False)
    status = await breaker.status(model)
    assert status.state == "open"
    assert status.failures == 4
    assert not await breaker.allow(model)


async def test_a_healthy_share_keeps_it_closed(
    breaker_and_clock: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, clock = breaker_and_clock
    model = _model()
    for outcome in (True, True, True, False, True, False):
        await breaker.record(model, outcome)
        clock.now += 0.1
    status = await breaker.status(model)
    assert status.state == "closed"
    assert status.error_rate == pytest.approx(2 / 6)


async def test_old_failures_leave_the_window(
    breaker_and_clock: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, clock = breaker_and_clock
    model = _model()
    for _ in range(3):
        await breaker.record(model, False)
    clock.now += 30
    await breaker.record(model, False)
    assert (await breaker.status(model)).state == "closed"


async def test_half_open_probe_closes_on_success_and_reopens_on_failure(
    breaker_and_clock: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, clock = breaker_and_clock
    model = await _tripped(breaker)
    assert not await breaker.allow(model)
    clock.now += 6  # cool-down over
    assert await breaker.allow(model)  # the probe
    assert not await breaker.allow(model)  # only one probe at a time
    await breaker.record(model, False)
    assert (await breaker.status(model)).state == "open"
    clock.now += 6
    assert await breaker.allow(model)
    await breaker.record(model, True)
    assert (await breaker.status(model)).state == "closed"
    assert await breaker.allow(model)
    assert (await breaker.status(model)).failures == 0


async def test_reset_closes_an_open_breaker(
    breaker_and_clock: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, clock = breaker_and_clock
    model = await _tripped(breaker)
    await breaker.reset(model)
    assert await breaker.allow(model)
    assert (await breaker.status(model)).requests == 0
    clock.now += 1


async def test_a_probe_that_never_reports_back_does_not_wedge_the_breaker(
    breaker_and_clock: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, clock = breaker_and_clock
    model = await _tripped(breaker)
    clock.now += 6
    assert await breaker.allow(model)  # the probe goes out... and is never recorded
    assert not await breaker.allow(model)
    clock.now += 6  # its lease ran out: another probe may go
    assert await breaker.allow(model)
    await breaker.record(model, True)
    assert (await breaker.status(model)).state == "closed"


async def test_the_breaker_gauge_follows_every_state_closed_open_half_open_closed(
    breaker_and_clock: tuple[CircuitBreaker, Clock],
) -> None:
    # Hardening 11: the gauge used to be set only on a refusal or a health read, so it
    # never went back to closed and never showed half-open.
    breaker, clock = breaker_and_clock
    metrics = GatewayMetrics()
    guard = AttemptGuard(breaker, metrics)
    model = _model()

    def gauge() -> float | None:
        return metrics.registry.get_sample_value("pmp_circuit_breaker_state", {"model": model})

    await guard.admit(model)
    assert gauge() == 0  # closed
    for _ in range(4):
        await guard.settle(model, None, 0, time.monotonic(), UpstreamError("x", retryable=True))
    assert gauge() == 2  # open
    clock.now += CONFIG.cooldown_s + 1
    await guard.admit(model)  # the probe
    assert gauge() == 1  # half-open
    await guard.settle(model, None, 0, time.monotonic(), None)
    assert gauge() == 0  # closed again
