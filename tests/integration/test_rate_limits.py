"""Rate limits: the same sliding windows in memory and Redis, and shared across processes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from gateway_core.auth.rate_limit import MemoryRateLimiter, RateLimiter
from gateway_core.auth.rate_limit_redis import RedisRateLimiter
from gateway_core.config import Settings
from gateway_core.domain.api_keys import RateLimits
from tests.conftest import Gateway, gateway_process, running_gateway
from tests.fakes.openai_upstream import FakeOpenAI

MESSAGES = [{"role": "user", "content": "hello"}]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # a minute boundary

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def limiter_and_clock(
    request: pytest.FixtureRequest, redis_url: str
) -> AsyncIterator[tuple[RateLimiter, Clock]]:
    clock = Clock()
    if request.param == "memory":
        yield MemoryRateLimiter(clock), clock
        return
    redis = Redis.from_url(redis_url)
    try:
        yield RedisRateLimiter(redis, clock), clock
    finally:
        await redis.aclose()


def _key() -> str:
    return f"k-{uuid.uuid4().hex[:8]}"


async def _limited_key(gateway: Gateway, key_id: str, **limits: int) -> str:
    """A key that may use every model, with these rate limits; returns the secret."""
    created = await gateway.admin.post(
        "/admin/api-keys",
        json={
            "id": key_id,
            "name": key_id,
            "permissions": {"models": "all"},
            "rate_limits": limits,
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


async def test_requests_count_down_to_the_limit_then_wait(
    limiter_and_clock: tuple[RateLimiter, Clock],
) -> None:
    limiter, clock = limiter_and_clock
    key, limits = _key(), RateLimits(requests_per_minute=5)
    remaining = []
    for _ in range(5):
        decision = await limiter.acquire(key, limits, 0)
        assert decision.allowed
        assert decision.requests is not None
        remaining.append(decision.requests.remaining)
        clock.now += 1
    assert remaining == [4, 3, 2, 1, 0]
    refused = await limiter.acquire(key, limits, 0)
    assert not refused.allowed
    assert refused.retry_after_s > 0
    assert "5 requests per minute" in refused.reason


async def test_no_burst_of_twice_the_limit_at_a_window_edge(
    limiter_and_clock: tuple[RateLimiter, Clock],
) -> None:
    limiter, clock = limiter_and_clock
    key, limits = _key(), RateLimits(requests_per_minute=10)
    clock.now += 59.5  # the end of one fixed minute
    assert all([(await limiter.acquire(key, limits, 0)).allowed for _ in range(10)])
    clock.now += 1.0  # just past the edge: a fixed window would allow 10 more at once
    burst = [(await limiter.acquire(key, limits, 0)).allowed for _ in range(10)]
    assert sum(burst) == 0
    clock.now += 30  # half the old burst has slid out of the window
    later = [(await limiter.acquire(key, limits, 0)).allowed for _ in range(10)]
    assert 4 <= sum(later) <= 5


async def test_every_window_must_admit_the_request(
    limiter_and_clock: tuple[RateLimiter, Clock],
) -> None:
    limiter, clock = limiter_and_clock
    key = _key()
    limits = RateLimits(requests_per_minute=100, requests_per_hour=3)
    for _ in range(3):
        assert (await limiter.acquire(key, limits, 0)).allowed
        clock.now += 120
    refused = await limiter.acquire(key, limits, 0)
    assert not refused.allowed
    assert "per hour" in refused.reason


async def test_token_estimates_are_corrected_with_real_usage(
    limiter_and_clock: tuple[RateLimiter, Clock],
) -> None:
    limiter, _clock = limiter_and_clock
    key, limits = _key(), RateLimits(tokens_per_minute=100)
    first = await limiter.acquire(key, limits, 60)
    assert first.allowed
    assert first.tokens is not None
    assert first.tokens.remaining == 40
    assert not (await limiter.acquire(key, limits, 60)).allowed
    await limiter.adjust_tokens(key, limits, -50)  # the call used 10, not 60
    assert (await limiter.acquire(key, limits, 60)).allowed


async def test_over_the_limit_is_429_with_retry_after_and_openai_headers(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    key = await _limited_key(gateway, "rl", requests_per_minute=3, tokens_per_minute=10_000)
    client = openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0)
    seen = []
    for _ in range(3):
        raw = await client.chat.completions.with_raw_response.create(
            model="fast-chat", messages=MESSAGES
        )
        seen.append(raw.headers["x-ratelimit-remaining-requests"])
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-limit-tokens"] == "10000"
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert seen == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="fast-chat", messages=MESSAGES)
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert caught.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    assert len(upstream.requests) == 3


async def test_two_processes_sharing_redis_stay_within_one_limit(
    settings: Settings, redis_url: str, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    shared = settings.model_copy(
        update={"redis_url": SecretStr(redis_url), "key_hash_secret": SecretStr("s" * 40)}
    )
    other = shared.model_copy(update={"temporal_task_queue": settings.temporal_task_queue + "-b"})
    async with (
        running_gateway(shared) as first,
        gateway_process(other, tmp_path / "second.log") as second_url,
    ):
        await first.add_model("fast-chat", upstream)
        key_id = f"shared-{uuid.uuid4().hex[:6]}"
        key = await _limited_key(first, key_id, requests_per_minute=6)
        statuses = []
        for index in range(12):
            target = (first.base_url, second_url)[index % 2]
            async with httpx.AsyncClient(base_url=target) as client:
                response = await client.post(
                    "/v1/chat/completions",
                    headers={"authorization": f"Bearer {key}"},
                    json={"model": "fast-chat", "messages": MESSAGES},
                )
            statuses.append(response.status_code)
        assert statuses.count(200) == 6
        assert statuses.count(429) == 6
        assert statuses[:6] == [200] * 6


async def test_async_runs_keep_their_token_estimate_charged(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    key = await _limited_key(gateway, "tpm", tokens_per_minute=1000)
    statuses = []
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        for _ in range(3):
            response = await client.post(
                "/v1/chat/completions?async=true",
                headers={"authorization": f"Bearer {key}"},
                json={"model": "fast-chat", "messages": MESSAGES, "max_tokens": 450},
            )
            statuses.append(response.status_code)
    assert statuses == [202, 202, 429]


async def test_a_request_larger_than_the_token_limit_is_refused_without_retry_after(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    key = await _limited_key(gateway, "small", tokens_per_minute=100, requests_per_minute=10)
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        headers = {"authorization": f"Bearer {key}"}
        huge = await client.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": "fast-chat", "messages": MESSAGES, "max_tokens": 5000},
        )
        unknown = await client.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": "nope", "messages": MESSAGES},
        )
    assert huge.status_code == 429
    assert huge.json()["error"]["code"] == "request_too_large"
    assert "retry-after" not in huge.headers
    assert unknown.status_code == 404
    assert unknown.headers["x-ratelimit-limit-requests"] == "10"
    assert upstream.requests == []
