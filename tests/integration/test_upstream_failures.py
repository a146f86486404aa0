"""How upstream failures surface: retries, fallback of errors, timeouts, broken streams."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from gateway_core.process import free_port
from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV, Gateway
from tests.fakes.openai_upstream import FakeOpenAI, Scenario

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_server_errors_are_retried_until_success(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(status=500), Scenario(status=503))
    completion = await gateway.openai().chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: hi"
    assert len(upstream.requests) == 3


async def test_exhausted_retries_answer_502_with_the_upstream_message(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(*[Scenario(status=500, error_message="overloaded")] * 3)
    with pytest.raises(openai.InternalServerError) as caught:
        await gateway.openai().chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert "overloaded" in caught.value.message
    assert len(upstream.requests) == 3  # 1 attempt + default_max_retries=2


async def test_upstream_bad_request_is_not_retried_and_passes_through_as_400(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(status=400, error_message="Invalid value for 'tools'"))
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.openai().chat.completions.create(model="m", messages=MESSAGES)
    assert "Invalid value for 'tools'" in caught.value.message
    assert len(upstream.requests) == 1


async def test_rate_limit_is_retried_after_the_upstream_retry_after(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(status=429, headers={"retry-after": "1"}))
    started = time.monotonic()
    completion = await gateway.openai().chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: hi"
    assert time.monotonic() - started >= 0.9
    assert len(upstream.requests) == 2


async def test_rejected_upstream_credential_is_502_without_the_secret(
    gateway: Gateway, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    await gateway.add_model("m", upstream)
    monkeypatch.setenv(UPSTREAM_KEY_ENV, "sk-wrong-secret-value")
    with pytest.raises(openai.APIStatusError) as caught:
        await gateway.openai().chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert "Incorrect API key" in caught.value.message
    assert "sk-wrong-secret-value" not in caught.value.message
    assert len(upstream.requests) == 1


async def test_missing_credential_variable_is_a_configuration_error(
    gateway: Gateway, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    await gateway.add_model("m", upstream)
    monkeypatch.delenv(UPSTREAM_KEY_ENV)
    with pytest.raises(openai.InternalServerError) as caught:
        await gateway.openai().chat.completions.create(model="m", messages=MESSAGES)
    # The variable's name is the operator's business (hardening 7): only the code says why.
    assert UPSTREAM_KEY_ENV not in caught.value.message
    assert caught.value.code == "credential_missing"
    assert upstream.requests == []


async def test_unreachable_upstream_is_502_after_retries(gateway: Gateway) -> None:
    response = await gateway.admin.post(
        "/admin/models",
        json={
            "id": "gone",
            "provider": "openai",
            "model": "x",
            "base_url": f"http://127.0.0.1:{free_port()}/v1",
        },
    )
    assert response.status_code == 201
    with pytest.raises(openai.InternalServerError) as caught:
        await gateway.openai().chat.completions.create(model="gone", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert "unreachable" in caught.value.message


async def test_slow_upstream_is_504_and_the_upstream_request_is_closed(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    gateway.runtime.settings.default_timeout_ms = 500
    gateway.runtime.settings.default_max_retries = 0
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(hang=True))
    with pytest.raises(openai.APIStatusError) as caught:
        await gateway.openai().chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 504
    await _eventually(lambda: upstream.requests[0].disconnected)


async def test_stream_broken_after_first_chunk_is_not_retried_and_ends_with_an_error(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(content="a b c d", break_after_chunks=3))
    stream = await gateway.openai().chat.completions.create(
        model="m", messages=MESSAGES, stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "a b"
    assert "interrupted" in caught.value.message
    assert len(upstream.requests) == 1


async def test_stream_failing_before_first_chunk_is_retried_without_duplicates(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(break_after_chunks=0), Scenario(status=502))
    stream = await gateway.openai().chat.completions.create(
        model="m", messages=MESSAGES, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: hi"
    assert len(upstream.requests) == 3


async def test_stream_error_before_any_chunk_answers_an_http_error(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(status=400, error_message="bad tools"))
    with pytest.raises(openai.BadRequestError):
        await gateway.openai().chat.completions.create(model="m", messages=MESSAGES, stream=True)


async def test_client_disconnect_mid_stream_cancels_the_run_and_closes_upstream(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(content=" ".join(["w"] * 200), chunk_delay_s=0.05))
    async with (
        httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            headers={"authorization": gateway.admin.headers["authorization"]},
            json={"model": "m", "stream": True, "messages": MESSAGES},
        ) as response,
    ):
        run_id = response.headers["x-pmp-run-id"]
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                break
    await _eventually(lambda: upstream.requests[0].disconnected)
    handle = gateway.runtime.temporal.runs.client.get_workflow_handle(run_id)

    async def cancelled() -> bool:
        return (await handle.describe()).status is not None and (
            (await handle.describe()).status.name == "CANCELED"
        )

    await _eventually_async(cancelled)
    assert upstream.requests[0].finished is False


async def test_a_stream_cut_off_after_text_is_never_replayed_by_a_retry(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    # The whole-stream limit fires after text went out; Temporal retries the activity,
    # and the retry must refuse rather than stream the same text again.
    gateway.runtime.settings.stream_max_duration_s = 1.5
    await gateway.add_model("m", upstream)
    words = " ".join(f"w{i}" for i in range(40))
    upstream.enqueue(Scenario(content=words, chunk_delay_s=0.1), Scenario(content=words))
    stream = await gateway.openai().chat.completions.create(
        model="m", messages=MESSAGES, stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    text = "".join(received)
    assert text.startswith("w0 w1")
    assert text.count("w0 ") == 1
    assert "repeat" in caught.value.message or "interrupted" in caught.value.message
    assert len(upstream.requests) == 1


async def test_rejected_credential_with_control_characters_never_reaches_the_error(
    gateway: Gateway, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    await gateway.add_model("m", upstream)
    monkeypatch.setenv(UPSTREAM_KEY_ENV, "sk-topsecret\x01value")
    with pytest.raises(openai.InternalServerError) as caught:
        await gateway.openai().chat.completions.create(model="m", messages=MESSAGES)
    assert "topsecret" not in caught.value.message
    assert caught.value.code == "credential_invalid"  # the detail is the operator's (log)
    assert upstream.requests == []


async def _eventually(check: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _eventually_async(check: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


_ = UPSTREAM_KEY
