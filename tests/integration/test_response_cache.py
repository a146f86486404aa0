"""Response cache: the same behaviour in memory and Redis, exact and semantic, over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from gateway_core.cache.base import CachedAnswer, CacheLimits, ResponseCache
from gateway_core.cache.memory import MemoryResponseCache
from gateway_core.cache.redis import RedisResponseCache
from gateway_core.cache.semantic import HashingEmbedder
from gateway_core.config import Settings
from tests.conftest import Gateway, running_gateway
from tests.fakes.openai_upstream import FakeOpenAI, Scenario

EXACT = {"mode": "exact", "ttl_seconds": 600}
HELLO = [{"role": "user", "content": "hello there"}]


def _answer(text: str, created_at: float | None = None) -> CachedAnswer:
    response = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }
    return CachedAnswer(response, "fast-chat", time.time() if created_at is None else created_at)


# -- the protocol, against both backends -------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[ResponseCache]:
    limits = CacheLimits(max_entries=3, max_bytes=4096)
    if request.param == "memory":
        yield MemoryResponseCache(limits)
        return
    redis = Redis.from_url(redis_url)
    try:
        yield RedisResponseCache(redis, limits, prefix=f"test:{uuid.uuid4().hex[:8]}:")
    finally:
        await redis.aclose()


async def test_an_entry_is_returned_until_its_ttl_passes(backend: ResponseCache) -> None:
    await backend.put("k", _answer("hi"), tags=["m"], ttl_s=0.3)
    found = await backend.get("k")
    assert found is not None and found.response["choices"][0]["message"]["content"] == "hi"
    await asyncio.sleep(0.4)
    assert await backend.get("k") is None
    assert (await backend.stats()).entries == 0


async def test_the_least_recently_used_entry_goes_when_full(backend: ResponseCache) -> None:
    for key in ("a", "b", "c"):
        await backend.put(key, _answer(key), tags=["m"], ttl_s=60)
    assert await backend.get("a") is not None  # a is now more recent than b
    await backend.put("d", _answer("d"), tags=["m"], ttl_s=60)
    assert await backend.get("b") is None
    assert all([await backend.get(key) is not None for key in ("a", "c", "d")])


async def test_bytes_held_follow_puts_replacements_and_deletes(backend: ResponseCache) -> None:
    first, second = _answer("one"), _answer("two two")
    await backend.put("a", first, tags=["m"], ttl_s=60)
    await backend.put("b", second, tags=["m"], ttl_s=60)
    assert (await backend.stats()).bytes == len(first.encode()) + len(second.encode())
    await backend.put("a", second, tags=["m"], ttl_s=60)
    assert (await backend.stats()).bytes == 2 * len(second.encode())
    assert await backend.delete("a") == 1
    assert await backend.stats() == type(await backend.stats())(1, len(second.encode()))
    assert not await backend.put("huge", _answer("x" * 5000), tags=["m"], ttl_s=60)


async def test_invalidation_by_tag_age_and_all(backend: ResponseCache) -> None:
    now = time.time()
    await backend.put("old", _answer("o", now - 100), tags=["m1", "chain"], ttl_s=60)
    await backend.put("new", _answer("n", now), tags=["m2"], ttl_s=60)
    await backend.put("other", _answer("x", now), tags=["m1"], ttl_s=60)
    assert await backend.delete_tagged("chain") == 1
    assert await backend.get("old") is None
    assert await backend.delete_tagged("m1") == 1
    await backend.put("old", _answer("o", now - 100), tags=["m1"], ttl_s=60)
    assert await backend.delete_older_than(50) == 1
    assert await backend.get("new") is not None
    assert await backend.clear() == 1
    assert await backend.stats() == type(await backend.stats())(0, 0)


# -- through the gateway ----------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def gateway(
    request: pytest.FixtureRequest, settings: Settings, redis_url: str
) -> AsyncIterator[Gateway]:
    if request.param == "redis":
        settings = settings.model_copy(update={"redis_url": SecretStr(redis_url)})
    async with running_gateway(settings, embedder=HashingEmbedder()) as running:
        assert running.runtime.cache.responses.name == request.param
        yield running


async def _ask(
    gateway: Gateway, messages: list[dict[str, Any]] | None = None, **kwargs: Any
) -> tuple[str, httpx.Headers]:
    raw = await gateway.openai().chat.completions.with_raw_response.create(
        model="fast-chat", messages=messages or HELLO, **kwargs
    )
    completion = raw.parse()
    return completion.choices[0].message.content or "", raw.headers


async def test_the_issue_example_body_is_accepted_as_written(gateway: Gateway) -> None:
    body = {"id": "fast-chat", "provider": "openai", "model": "gpt-4o-mini", "cache": EXACT}
    created = await gateway.admin.post("/admin/models", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["cache"]["mode"] == "exact"
    assert created.json()["cache"]["ttl_seconds"] == 600
    bad = await gateway.admin.post(
        "/admin/models", json={**body, "id": "bad", "cache": {"mode": "fuzzy"}}
    )
    assert bad.status_code in (400, 422)


async def test_a_repeated_request_is_answered_from_the_cache_without_a_run(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    text, headers = await _ask(gateway)
    assert headers["x-pmp-cache"] == "miss"
    assert "x-pmp-run-id" in headers
    again, hit = await _ask(gateway)
    assert (again, hit["x-pmp-cache"]) == (text, "hit")
    assert hit["x-pmp-cache-key"] == headers["x-pmp-cache-key"]
    assert hit["x-pmp-served-by"] == "fast-chat"
    assert "x-pmp-run-id" not in hit  # no workflow ran
    assert len(upstream.requests) == 1
    metrics = (await gateway.admin.get("/metrics")).text
    assert 'pmp_cache_lookups_total{requested="fast-chat",result="hit"} 1.0' in metrics
    assert 'pmp_cache_lookups_total{requested="fast-chat",result="miss"} 1.0' in metrics
    assert "pmp_cache_bytes " in metrics and "pmp_cache_bytes 0.0" not in metrics


async def test_models_without_a_cache_policy_are_not_cached(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    _, first = await _ask(gateway)
    _, second = await _ask(gateway)
    assert first["x-pmp-cache"] == "bypass"
    assert second["x-pmp-cache"] == "bypass"
    assert len(upstream.requests) == 2


async def test_changes_that_do_not_change_the_answer_still_hit(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    await _ask(gateway, max_tokens=50, temperature=0)
    _, by_user = await _ask(gateway, max_tokens=50, temperature=0, user="someone-else")
    assert by_user["x-pmp-cache"] == "hit"
    # Another key order, another request id, stream_options: still the same request.
    raw = json.dumps({"temperature": 0, "max_tokens": 50, "messages": HELLO, "model": "fast-chat"})
    response = await gateway.admin.post(
        "/v1/chat/completions",
        content=raw,
        headers={"content-type": "application/json", "x-request-id": "another-request"},
    )
    assert response.headers["x-pmp-cache"] == "hit"
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": "hello here"}]},
        {"max_tokens": 51},
        {"seed": 7},
        {"stop": ["\n"]},
        {"n": 2},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
    ],
)
async def test_changes_that_change_the_answer_miss(
    gateway: Gateway, upstream: FakeOpenAI, change: dict[str, Any]
) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    base: dict[str, Any] = {"model": "fast-chat", "messages": HELLO, "max_tokens": 50}
    first = await gateway.admin.post("/v1/chat/completions", json=base)
    changed = await gateway.admin.post("/v1/chat/completions", json={**base, **change})
    assert first.headers["x-pmp-cache"] == "miss"
    assert changed.headers["x-pmp-cache"] == "miss", changed.text
    assert len(upstream.requests) == 2


async def test_api_keys_never_share_entries(gateway: Gateway, upstream: FakeOpenAI) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    created = await gateway.admin.post(
        "/admin/api-keys", json={"id": "tenant-b", "name": "b", "permissions": {"models": "all"}}
    )
    other = openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=created.json()["key"], max_retries=0
    )
    await _ask(gateway)
    raw = await other.chat.completions.with_raw_response.create(model="fast-chat", messages=HELLO)
    assert raw.headers["x-pmp-cache"] == "miss"
    assert len(upstream.requests) == 2


async def test_an_entry_expires_after_the_models_ttl(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, cache={"mode": "exact", "ttl_seconds": 1})
    await _ask(gateway)
    assert (await _ask(gateway))[1]["x-pmp-cache"] == "hit"
    await asyncio.sleep(1.2)
    assert (await _ask(gateway))[1]["x-pmp-cache"] == "miss"
    assert len(upstream.requests) == 2


async def test_a_request_ttl_can_shorten_the_models(gateway: Gateway, upstream: FakeOpenAI) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    await _ask(gateway, extra_body={"cache": {"ttl": 1}})
    assert "cache" not in upstream.requests[-1].body  # a gateway field, never sent upstream
    await asyncio.sleep(1.2)
    assert (await _ask(gateway))[1]["x-pmp-cache"] == "miss"


async def test_cache_control_no_cache_skips_the_lookup_and_no_store_the_write(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    _, stored = await _ask(gateway, extra_headers={"Cache-Control": "no-store"})
    assert stored["x-pmp-cache"] == "miss"
    _, after_no_store = await _ask(gateway, extra_headers={"Cache-Control": "no-cache"})
    assert after_no_store["x-pmp-cache"] == "bypass"  # looked nothing up, but stored
    assert (await _ask(gateway))[1]["x-pmp-cache"] == "hit"
    _, body_bypass = await _ask(gateway, extra_body={"cache": {"no_cache": True}})
    assert body_bypass["x-pmp-cache"] == "bypass"
    assert len(upstream.requests) == 3


async def test_body_no_store_keeps_the_answer_out(gateway: Gateway, upstream: FakeOpenAI) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    await _ask(gateway, extra_body={"cache": {"no_store": True}})
    assert (await _ask(gateway))[1]["x-pmp-cache"] == "miss"
    assert len(upstream.requests) == 2


async def test_sampling_requests_bypass_unless_the_model_allows_them(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    await _ask(gateway, temperature=0.7)
    assert (await _ask(gateway, temperature=0.7))[1]["x-pmp-cache"] == "bypass"
    await gateway.add_model(
        "warm", upstream, cache={**EXACT, "cache_when_temperature_above_zero": True}
    )
    client = gateway.openai()
    for expected in ("miss", "hit"):
        raw = await client.chat.completions.with_raw_response.create(
            model="warm", messages=HELLO, temperature=0.7
        )
        assert raw.headers["x-pmp-cache"] == expected
    assert len(upstream.requests) == 3


async def test_a_cached_plain_answer_replays_as_a_stream(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    text, _ = await _ask(gateway, messages=[{"role": "user", "content": "one two three"}])
    raw = await gateway.openai().chat.completions.with_raw_response.create(
        model="fast-chat",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-pmp-cache"] == "hit"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = [chunk async for chunk in raw.parse()]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text == "echo: one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    async with gateway.admin.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "fast-chat",
            "stream": True,
            "messages": [{"role": "user", "content": "one two three"}],
        },
    ) as response:
        lines = [line async for line in response.aiter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert not any('"usage":{' in line for line in lines)  # not asked for: not sent
    assert len(upstream.requests) == 1


async def test_a_cached_stream_answers_a_plain_call(gateway: Gateway, upstream: FakeOpenAI) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    raw = await gateway.openai().chat.completions.with_raw_response.create(
        model="fast-chat", messages=HELLO, stream=True
    )
    assert raw.headers["x-pmp-cache"] == "miss"
    pieces = [c.choices[0].delta.content or "" async for c in raw.parse() if c.choices]
    text, headers = await _ask(gateway)
    assert headers["x-pmp-cache"] == "hit"
    assert text == "".join(pieces) == "echo: hello there"
    assert len(upstream.requests) == 1


async def test_errors_are_not_cached(gateway: Gateway, upstream: FakeOpenAI) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    upstream.enqueue(Scenario(status=400, error_message="bad request"))
    with pytest.raises(openai.BadRequestError):
        await _ask(gateway)
    _, headers = await _ask(gateway)
    assert headers["x-pmp-cache"] == "miss"
    assert (await _ask(gateway))[1]["x-pmp-cache"] == "hit"
    assert len(upstream.requests) == 2


async def test_a_stream_the_client_abandons_is_not_cached(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    upstream.enqueue(Scenario(content="a b c d e f g h", chunk_delay_s=0.2))
    stream = await gateway.openai().chat.completions.create(
        model="fast-chat", messages=HELLO, stream=True
    )
    async for _chunk in stream:
        break
    await stream.close()
    await asyncio.sleep(0.5)
    _, headers = await _ask(gateway)
    assert headers["x-pmp-cache"] == "miss"
    assert len(upstream.requests) == 2


async def test_a_stream_broken_mid_way_is_not_cached(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    upstream.enqueue(Scenario(content="a b c d", break_after_chunks=2))
    stream = await gateway.openai().chat.completions.create(
        model="fast-chat", messages=HELLO, stream=True
    )
    with pytest.raises(openai.APIError):
        _ = [chunk async for chunk in stream]
    stats = (await gateway.admin.get("/admin/cache")).json()
    assert stats["entries"] == 0


async def test_invalidation_by_key_model_age_and_all(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, cache=EXACT)
    _, headers = await _ask(gateway)
    removed = await gateway.admin.delete(f"/admin/cache/entries/{headers['x-pmp-cache-key']}")
    assert removed.json()["deleted"] == 1
    assert (await _ask(gateway))[1]["x-pmp-cache"] == "miss"
    assert (await gateway.admin.delete("/admin/cache/models/fast-chat")).json()["deleted"] == 1
    assert (await _ask(gateway))[1]["x-pmp-cache"] == "miss"
    young = await gateway.admin.delete("/admin/cache", params={"older_than_seconds": 3600})
    assert young.json()["deleted"] == 0
    await asyncio.sleep(0.05)
    aged = await gateway.admin.delete("/admin/cache", params={"older_than_seconds": 0})
    assert aged.json()["deleted"] == 1
    await _ask(gateway)
    await _ask(gateway, messages=[{"role": "user", "content": "second"}])
    assert (await gateway.admin.get("/admin/cache")).json()["entries"] == 2
    assert (await gateway.admin.delete("/admin/cache")).json()["deleted"] == 2
    assert (await _ask(gateway))[1]["x-pmp-cache"] == "miss"
    assert len(upstream.requests) == 6
    refused = (
        await gateway.openai()
        .with_options()
        .chat.completions.with_raw_response.create(model="fast-chat", messages=HELLO)
    )
    assert refused.headers["x-pmp-cache"] == "hit"


async def test_a_changed_model_configuration_misses(gateway: Gateway, upstream: FakeOpenAI) -> None:
    model = await gateway.add_model("fast-chat", upstream, cache=EXACT)
    await _ask(gateway)
    update = {
        k: v for k, v in model.items() if k not in ("id", "version", "created_at", "updated_at")
    }
    update["config"] = {"max_tokens": 100}
    assert (await gateway.admin.put("/admin/models/fast-chat", json=update)).status_code == 200
    assert (await _ask(gateway))[1]["x-pmp-cache"] == "miss"
    assert len(upstream.requests) == 2


async def test_admin_cache_endpoints_need_an_admin_key(gateway: Gateway) -> None:
    created = await gateway.admin.post(
        "/admin/api-keys", json={"id": "plain", "name": "p", "permissions": {"models": "all"}}
    )
    headers = {"authorization": f"Bearer {created.json()['key']}"}
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        assert (await client.delete("/admin/cache", headers=headers)).status_code == 403


SEMANTIC = {"mode": "semantic", "ttl_seconds": 600, "similarity_threshold": 0.9}


async def test_a_similar_question_is_a_semantic_hit_above_the_threshold(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, cache=SEMANTIC)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    text, first = await _ask(gateway, messages=question)
    assert first["x-pmp-cache"] == "miss"
    similar = [{"role": "user", "content": "what is the capital of france"}]
    again, headers = await _ask(gateway, messages=similar)
    assert headers["x-pmp-cache"] == "semantic-hit"
    assert float(headers["x-pmp-cache-similarity"]) >= 0.9
    assert again == text
    assert len(upstream.requests) == 1


async def test_a_different_question_misses_below_the_threshold(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, cache=SEMANTIC)
    await _ask(gateway, messages=[{"role": "user", "content": "What is the capital of France?"}])
    other = [{"role": "user", "content": "What is the capital of Spain?"}]  # similarity 5/6
    _, headers = await _ask(gateway, messages=other)
    assert headers["x-pmp-cache"] == "miss"
    # The context must match exactly: another system prompt never hits semantically.
    system = {"role": "system", "content": "answer in French"}
    again = [system, {"role": "user", "content": "what is the capital of france"}]
    assert (await _ask(gateway, messages=again))[1]["x-pmp-cache"] == "miss"
    assert len(upstream.requests) == 3
