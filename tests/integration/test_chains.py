"""Model chains: retries, latency limits, fallback and circuit breakers through ChatWorkflow."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import SecretStr

from gateway_core.config import Settings
from tests.conftest import ADMIN_KEY, Gateway, gateway_process, running_gateway
from tests.fakes.openai_upstream import FakeOpenAI, Scenario

MESSAGES = [{"role": "user", "content": "hi"}]
RESILIENT = {
    "id": "resilient",
    "name": "Resilient chat",
    "steps": [
        {"model_id": "primary", "max_retries": 1, "max_latency_ms": 800},
        {"model_id": "backup", "max_retries": 0, "max_latency_ms": 5000},
    ],
}


async def _chain(gateway: Gateway, primary: FakeOpenAI, backup: FakeOpenAI, **step0: Any) -> None:
    await gateway.add_model("primary", primary)
    await gateway.add_model("backup", backup)
    body = json.loads(json.dumps(RESILIENT))
    body["steps"][0].update(step0)
    response = await gateway.admin.post("/admin/chains", json=body)
    assert response.status_code == 201, response.text


async def test_issue_example_chain_is_created_and_answers_by_its_name(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await _chain(gateway, upstream, backup)
    chain = (await gateway.admin.get("/admin/chains/resilient")).json()
    assert chain["version"] == 1
    assert [s["model_id"] for s in chain["steps"]] == ["primary", "backup"]
    raw = await gateway.openai().chat.completions.with_raw_response.create(
        model="resilient", messages=MESSAGES
    )
    assert raw.headers["x-pmp-served-by"] == "primary"
    assert raw.headers["x-pmp-fallbacks"] == "0"
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hi"
    metadata = completion.metadata or {}
    assert metadata["pmp_served_by"] == "primary"
    assert metadata["pmp_chain"] == "resilient"
    ids = [model.id async for model in gateway.openai().models.list()]
    assert ids == ["backup", "primary", "resilient"]


async def test_chain_naming_unknown_or_disabled_models_is_rejected_with_the_names(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("off", upstream, enabled=False)
    body = {**RESILIENT, "steps": [{"model_id": "ghost"}, {"model_id": "off"}]}
    response = await gateway.admin.post("/admin/chains", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "'ghost' does not exist" in error["message"]
    assert "'off' is disabled" in error["message"]
    assert error["param"] == "steps[0].model_id"


async def test_chains_and_models_share_one_namespace(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await _chain(gateway, upstream, backup)
    clash = await gateway.admin.post("/admin/chains", json={**RESILIENT, "id": "primary"})
    assert clash.status_code == 409
    model_clash = await gateway.admin.post(
        "/admin/models", json={"id": "resilient", "provider": "openai", "model": "x"}
    )
    assert model_clash.status_code == 409


async def test_server_errors_are_retried_within_the_step_before_any_fallback(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await _chain(gateway, upstream, backup, max_retries=2)
    upstream.enqueue(Scenario(status=500), Scenario(status=502))
    raw = await gateway.openai().chat.completions.with_raw_response.create(
        model="resilient", messages=MESSAGES
    )
    assert raw.headers["x-pmp-served-by"] == "primary"
    assert raw.headers["x-pmp-attempts"] == "3"
    assert len(upstream.requests) == 3
    assert backup.requests == []
    # The local activity's marker in the run's history records the attempts and backoff.
    handle = gateway.runtime.temporal.runs.client.get_workflow_handle(raw.headers["x-pmp-run-id"])
    # The answer is handed over before the task completion that records the marker.
    await handle.result()
    history = await handle.fetch_history()
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert markers
    marker_data = markers[-1].marker_recorded_event_attributes.details["data"].payloads[0].data
    assert json.loads(marker_data)["attempt"] == 3


async def test_step_slower_than_its_limit_falls_back_and_the_slow_call_is_closed(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await _chain(gateway, upstream, backup, max_retries=0, max_latency_ms=400)
    upstream.enqueue(Scenario(hang=True))
    raw = await gateway.openai().chat.completions.with_raw_response.create(
        model="resilient", messages=MESSAGES
    )
    assert raw.headers["x-pmp-served-by"] == "backup"
    assert raw.headers["x-pmp-fallbacks"] == "1"
    assert raw.headers["x-pmp-attempts"] == "2"
    await _until(lambda: upstream.requests[0].disconnected)


async def test_bad_request_is_neither_retried_nor_walked_to_the_next_model(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await _chain(gateway, upstream, backup)
    upstream.enqueue(Scenario(status=400, error_message="unsupported parameter"))
    with pytest.raises(openai.BadRequestError):
        await gateway.openai().chat.completions.create(model="resilient", messages=MESSAGES)
    assert len(upstream.requests) == 1
    assert backup.requests == []


async def test_step_marked_fail_ends_the_chain_with_its_error(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await _chain(gateway, upstream, backup, max_retries=0, on_exhausted="fail")
    upstream.enqueue(Scenario(status=503, error_message="primary is down"))
    with pytest.raises(openai.InternalServerError) as caught:
        await gateway.openai().chat.completions.create(model="resilient", messages=MESSAGES)
    assert "primary is down" in caught.value.message
    assert backup.requests == []


async def test_stream_with_a_slow_first_token_falls_back_before_any_chunk(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await _chain(gateway, upstream, backup, max_retries=0, max_time_to_first_token_ms=300)
    upstream.enqueue(Scenario(content="from primary", delay_s=3))
    backup.enqueue(Scenario(content="from backup"))
    raw = await gateway.openai().chat.completions.with_raw_response.create(
        model="resilient", messages=MESSAGES, stream=True
    )
    assert raw.headers["x-pmp-served-by"] == "backup"
    text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    assert text == "from backup"


async def _step_failures(gateway: Gateway, raw: Any) -> list[str]:
    """Why a run's steps failed, from the markers in its history (for a failing assert)."""
    client = gateway.runtime.temporal.runs.client
    handle = client.get_workflow_handle(raw.headers["x-pmp-run-id"])
    await handle.result()
    history = await handle.fetch_history()
    markers = [
        event.marker_recorded_event_attributes
        for event in history.events
        if event.HasField("marker_recorded_event_attributes")
    ]
    failures = [m.failure for m in markers if m.HasField("failure")]
    return [repr(await client.data_converter.decode_failure(f)) for f in failures]


def _breaker_settings(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(
        update={
            "breaker_min_requests": 3,
            "breaker_failure_ratio": 0.5,
            "breaker_cooldown_s": 1.0,
            **changes,
        }
    )


async def test_breaker_opens_on_a_failing_model_skips_it_and_a_probe_closes_it(
    settings: Settings, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    async with running_gateway(_breaker_settings(settings)) as gateway:
        await _chain(gateway, upstream, backup, max_retries=0)
        upstream.enqueue(*[Scenario(status=500)] * 20)
        client = gateway.openai()
        for _ in range(8):
            raw = await client.chat.completions.with_raw_response.create(
                model="resilient", messages=MESSAGES
            )
            assert raw.headers["x-pmp-served-by"] == "backup"
        assert len(upstream.requests) == 3  # the breaker opened after three failures
        health = (await gateway.admin.get("/admin/models/primary/health")).json()
        assert health["circuit_breaker"]["state"] == "open"
        upstream.scenarios.clear()  # the primary recovers
        # Past the cool-down by the breaker's own clock. One CI run once saw this probe fall
        # back, cause not found; should it happen again, the assertion says why.
        await asyncio.sleep(max(0.0, health["circuit_breaker"]["open_until"] - time.time()) + 0.1)
        raw = await client.chat.completions.with_raw_response.create(
            model="resilient", messages=MESSAGES
        )
        served_by = raw.headers["x-pmp-served-by"]
        why = "" if served_by == "primary" else await _step_failures(gateway, raw)
        assert served_by == "primary", why  # the probe went through
        health = (await gateway.admin.get("/admin/models/primary/health")).json()
        assert health["circuit_breaker"]["state"] == "closed"
        metrics = (await gateway.admin.get("/metrics")).text
        assert 'pmp_upstream_attempts_total{chain="resilient",model="primary"' in metrics
        assert 'outcome="CircuitOpenError"' not in metrics  # skipped steps make no call
        assert 'pmp_chain_fallbacks_total{chain="resilient"} 8.0' in metrics


async def test_admin_can_reset_an_open_breaker(
    settings: Settings, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    async with running_gateway(_breaker_settings(settings, breaker_cooldown_s=600)) as gateway:
        await _chain(gateway, upstream, backup, max_retries=0)
        upstream.enqueue(*[Scenario(status=500)] * 3)
        for _ in range(4):
            await gateway.openai().chat.completions.create(model="resilient", messages=MESSAGES)
        reset = await gateway.admin.post("/admin/models/primary/health/reset")
        assert reset.json()["state"] == "closed"
        raw = await gateway.openai().chat.completions.with_raw_response.create(
            model="resilient", messages=MESSAGES
        )
        assert raw.headers["x-pmp-served-by"] == "primary"


async def test_breaker_opened_by_one_process_is_honoured_by_another(
    settings: Settings, redis_url: str, upstream: FakeOpenAI, backup: FakeOpenAI, tmp_path: Path
) -> None:
    shared = _breaker_settings(settings, redis_url=SecretStr(redis_url), breaker_cooldown_s=600)
    other = shared.model_copy(update={"temporal_task_queue": settings.temporal_task_queue + "-b"})
    async with running_gateway(shared) as first:
        await first.runtime.providers.breaker.reset("primary")
        await _chain(first, upstream, backup, max_retries=0)
        async with gateway_process(other, tmp_path / "second.log") as second_url:
            upstream.enqueue(*[Scenario(status=500)] * 10)
            for _ in range(3):
                await first.openai().chat.completions.create(model="resilient", messages=MESSAGES)
            assert len(upstream.requests) == 3
            second = openai.AsyncOpenAI(
                base_url=f"{second_url}/v1", api_key=ADMIN_KEY, max_retries=0
            )
            raw = await second.chat.completions.with_raw_response.create(
                model="resilient", messages=MESSAGES
            )
            assert raw.headers["x-pmp-served-by"] == "backup"
            assert len(upstream.requests) == 3  # the second process never called the primary
        await first.runtime.providers.breaker.reset("primary")


async def _until(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)
