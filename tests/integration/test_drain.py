"""SIGTERM drains: /ready turns 503, new work is refused, streams in flight finish."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from gateway_core.config import Settings
from tests.conftest import (
    ADMIN_KEY,
    UPSTREAM_KEY,
    UPSTREAM_KEY_ENV,
    gateway_process,
    running_gateway,
    start_worker_process,
)
from tests.fakes.openai_upstream import FakeOpenAI, Scenario

STREAMS = 6
WORDS = "one two three four five six seven eight"  # 8 chunks, 0.4 s apart: ~3.5 s a stream


def _model(upstream: FakeOpenAI) -> dict[str, object]:
    """A model of its own per test: a gateway process does not empty the shared database."""
    return {
        "id": f"slow-{uuid.uuid4().hex[:8]}",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": upstream.base_url,
        "credential": {"source": "env", "name": UPSTREAM_KEY_ENV},
    }


async def _stream(
    client: httpx.AsyncClient, model: str, started: asyncio.Event, counter: list[int]
) -> str:
    """One streamed completion read to its end; the text it carried."""
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "stream": True}
    text = []
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                return "".join(text).strip()
            if line.startswith("data: ") and '"content"' in line:
                counter[0] += 1
                if counter[0] >= STREAMS:
                    started.set()
                text.append(
                    httpx.Response(200, content=line[6:]).json()["choices"][0]["delta"]["content"]
                )
    raise AssertionError("the stream ended without [DONE]")


async def test_sigterm_lets_streams_in_flight_finish_while_ready_says_503(
    settings: Settings, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    draining = settings.model_copy(update={"drain_seconds": 20.0})
    async with gateway_process(draining, tmp_path / "gateway.log") as base_url:
        headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
            model = _model(upstream)
            created = await client.post("/admin/models", json=model)
            assert created.status_code == 201, created.text
            upstream.enqueue(*[Scenario(content=WORDS, chunk_delay_s=0.4) for _ in range(STREAMS)])
            started, counter = asyncio.Event(), [0]
            streams = [
                asyncio.create_task(_stream(client, str(model["id"]), started, counter))
                for _ in range(STREAMS)
            ]
            await asyncio.wait_for(started.wait(), 20)
            pid = int((tmp_path / f"data-{base_url.rsplit(':', 1)[1]}" / "gateway.pid").read_text())
            os.kill(pid, signal.SIGTERM)
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient(base_url=base_url, timeout=5) as probe:
                ready = await probe.get("/ready")
                refused = await probe.post("/v1/chat/completions", headers=headers, json={})
            texts = await asyncio.gather(*streams)
    assert ready.status_code == 503, ready.text
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "draining"
    assert texts == [WORDS] * STREAMS, "every stream in the drain window ended with all its text"
    assert "draining: waiting for requests in flight" in (tmp_path / "gateway.log").read_text()


async def test_a_stream_longer_than_the_drain_window_is_cut_and_its_run_cancelled(
    settings: Settings, upstream: FakeOpenAI, tmp_path: Path, temporal_env: WorkflowEnvironment
) -> None:
    short = settings.model_copy(update={"drain_seconds": 1.0})
    async with gateway_process(short, tmp_path / "gateway.log") as base_url:
        headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
            model = _model(upstream)
            created = await client.post("/admin/models", json=model)
            assert created.status_code == 201, created.text
            words = " ".join(f"w{n}" for n in range(40))  # 40 chunks, 0.5 s apart: 20 s
            upstream.enqueue(Scenario(content=words, chunk_delay_s=0.5))
            body = {
                "model": model["id"],
                "messages": [{"role": "user", "content": "x"}],
                "stream": True,
            }
            seen, started = [], time.monotonic()
            with pytest.raises(httpx.RemoteProtocolError):  # the stream is cut, not finished
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    run_id = response.headers["x-pmp-run-id"]
                    async for line in response.aiter_lines():
                        seen.append(line)
                        if len(seen) == 2:
                            pid = int(
                                (
                                    tmp_path / f"data-{base_url.rsplit(':', 1)[1]}" / "gateway.pid"
                                ).read_text()
                            )
                            os.kill(pid, signal.SIGTERM)
    assert "data: [DONE]" not in seen
    assert time.monotonic() - started < 15, "cut when the drain window ended, not at the end"
    history = await temporal_env.client.get_workflow_handle(run_id).fetch_history()
    kinds = {event.event_type for event in history.events}
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED in kinds


async def test_sigterm_on_a_worker_lets_its_running_call_finish_there(
    settings: Settings, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    """The worker stops polling but its in-flight activity completes: one upstream call."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "worker.log"
    worker = start_worker_process(
        settings, log, env={UPSTREAM_KEY_ENV: UPSTREAM_KEY, "PMP_DRAIN_SECONDS": "20"}
    )
    try:
        async with running_gateway(settings, mode="api") as gateway:
            await gateway.add_model("slow", upstream)
            upstream.enqueue(Scenario(content="finished while draining", delay_s=3))
            submitted = await gateway.admin.post(
                "/v1/chat/completions?async=true",
                json={"model": "slow", "messages": [{"role": "user", "content": "x"}]},
            )
            assert submitted.status_code == 202, submitted.text
            operation = submitted.json()["operation_id"]
            deadline = time.monotonic() + 30
            while not upstream.requests:
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.1)
            worker.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(worker.wait, 30)
            document = (await gateway.admin.get(f"/v1/operations/{operation}")).json()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert code == 0, log.read_text()
    assert document["status"] == "completed", document
    assert document["result"]["choices"][0]["message"]["content"] == "finished while draining"
    assert len(upstream.requests) == 1, "finished by the draining worker, not retried elsewhere"
