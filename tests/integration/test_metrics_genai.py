"""/metrics speaks the OpenTelemetry GenAI names, on the API and on a split-mode worker."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from gateway_core.config import Settings
from gateway_core.logging import JsonFormatter
from gateway_core.process import free_port
from tests.conftest import (
    UPSTREAM_KEY,
    UPSTREAM_KEY_ENV,
    Gateway,
    key_client,
    running_gateway,
    start_worker_process,
)
from tests.fakes.openai_upstream import FakeOpenAI

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "pmp-gateway.json"
MESSAGES = [{"role": "user", "content": "count these five words"}]


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of `name` whose labels include `labels`."""
    found = []
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{key}="{value}"' in match.group(1) for key, value in labels.items()):
            found.append(float(match.group(2)))
    assert len(found) == 1, (name, labels, found)
    return found[0]


async def _chat_and_usage(gateway: Gateway, model: str, *, stream: bool) -> tuple[int, int]:
    client = gateway.openai()
    if not stream:
        completion = await client.chat.completions.create(model=model, messages=MESSAGES)
        assert completion.usage is not None
        return completion.usage.prompt_tokens, completion.usage.completion_tokens
    chunks = await client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    usage = None
    async for chunk in chunks:
        usage = chunk.usage or usage
    assert usage is not None
    return usage.prompt_tokens, usage.completion_tokens


def _assert_genai(text: str, model: str, prompt: int, completion: int, *, stream: bool) -> None:
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "pmp_model_id": model,
    }
    input_sum = _sample(text, "gen_ai_client_token_usage_sum", **labels, gen_ai_token_type="input")
    output_sum = _sample(
        text, "gen_ai_client_token_usage_sum", **labels, gen_ai_token_type="output"
    )
    assert (input_sum, output_sum) == (prompt, completion)
    calls = _sample(text, "gen_ai_client_operation_duration_seconds_count", **labels, error_type="")
    assert calls == 1
    if stream:
        assert _sample(text, "gen_ai_server_time_to_first_token_seconds_count", **labels) == 1
        assert _sample(text, "gen_ai_server_time_per_output_token_seconds_count", **labels) == 1


async def test_api_metrics_count_tokens_timing_and_overhead_of_a_plain_and_a_stream_call(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("plain-m", upstream)
    await gateway.add_model("stream-m", upstream)
    plain = await _chat_and_usage(gateway, "plain-m", stream=False)
    streamed = await _chat_and_usage(gateway, "stream-m", stream=True)
    text = (await gateway.admin.get("/metrics")).text
    _assert_genai(text, "plain-m", *plain, stream=False)
    _assert_genai(text, "stream-m", *streamed, stream=True)
    assert _sample(text, "pmp_gateway_overhead_seconds_count", stream="False") >= 1
    assert _sample(text, "pmp_gateway_overhead_seconds_count", stream="True") >= 1
    route = {"route": "/v1/chat/completions", "status": "200"}
    assert _sample(text, "pmp_http_requests_total", **route) == 2


async def test_split_mode_worker_serves_genai_and_temporal_sdk_metrics(
    settings: Settings, upstream: FakeOpenAI, tmp_path: Path, redis_url: str
) -> None:
    """API in this process, the worker apart: the worker's own /metrics has the call."""
    split = settings.model_copy(update={"redis_url": SecretStr(redis_url)})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics_port, sdk_port = free_port(), free_port()
    worker = start_worker_process(
        split,
        tmp_path / "worker.log",
        metrics_port=metrics_port,
        env={
            UPSTREAM_KEY_ENV: UPSTREAM_KEY,
            "PMP_REDIS_URL": redis_url,
            "PMP_TEMPORAL_METRICS_PORT": str(sdk_port),
        },
    )
    try:
        async with running_gateway(split, mode="api") as gateway:
            await gateway.add_model("split-m", upstream)
            # A plain call waits in Temporal until the worker process polls.
            prompt, completion = await _chat_and_usage(gateway, "split-m", stream=False)
            api_text = (await gateway.admin.get("/metrics")).text
        async with httpx.AsyncClient() as http:
            worker_text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            sdk_text = await _sdk_metrics(http, sdk_port)
        _assert_genai(worker_text, "split-m", prompt, completion, stream=False)
        assert "gen_ai_client_token_usage_sum{" not in api_text.replace("# ", "")
        assert "temporal_workflow_completed{" in sdk_text
        assert "temporal_worker_task_slots_available{" in sdk_text
        _assert_dashboard_reads_existing_metrics(api_text + worker_text + sdk_text)
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)


def _assert_dashboard_reads_existing_metrics(exposition: str) -> None:
    """Every metric the Grafana dashboard queries is one some process exposes."""
    declared = set(re.findall(r"^# TYPE (\S+) ", exposition, re.MULTILINE))
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(
            r"\b((?:gen_ai|pmp|temporal)_[a-z_]+)", _without_labels(target["expr"])
        )
    }
    assert queried, "the dashboard queries nothing"
    assert queried <= declared, queried - declared


def _without_labels(expr: str) -> str:
    return re.sub(r"by \([^)]*\)|\{[^}]*\}", "", expr)


async def _sdk_metrics(http: httpx.AsyncClient, port: int) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
            if "temporal_" in response.text:
                return response.text
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the Temporal SDK metrics never answered"
        await asyncio.sleep(0.2)


async def test_access_line_and_refusal_counter_of_a_rate_limited_key(
    gateway: Gateway, upstream: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    await gateway.add_model("limited-m", upstream)
    client = await key_client(gateway, {"models": ["limited-m"]}, requests_per_minute=1)
    body = {
        "model": "limited-m",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with client:
        with caplog.at_level(logging.INFO, logger="gateway_api.access"):
            answered = await client.post("/v1/chat/completions", json=body)
            refused = await client.post("/v1/chat/completions", json=body)
    assert (answered.status_code, refused.status_code) == (200, 429)
    key = client.headers["authorization"].removeprefix("Bearer ")
    lines = [r for r in caplog.records if r.name == "gateway_api.access"]
    assert all(key not in JsonFormatter().format(r) for r in lines)
    ok, limited = (r.__dict__ for r in lines[-2:])
    assert ok["key_id"].startswith("k-") and ok["key_id"] == limited["key_id"]
    assert (ok["model"], ok["served_by"], ok["status"]) == ("limited-m", "limited-m", 200)
    assert ok["run_id"] == answered.headers["x-pmp-run-id"]
    assert ok["completion_tokens"] > 0 and ok["prompt_tokens"] > 0
    assert ok["first_byte_ms"] <= ok["duration_ms"]
    assert "upstream_ms" in ok and "overhead_ms" in ok
    assert limited["status"] == 429 and "run_id" not in limited
    text = (await gateway.admin.get("/metrics")).text
    assert _sample(text, "pmp_rate_limit_refusals_total", route="/v1/chat/completions") == 1
