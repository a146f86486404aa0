"""Operations survive process deaths: a worker killed mid-call, an API restarted."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_core.config import Settings
from gateway_core.process import free_port
from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV, api_only, start_worker_process
from tests.fakes.openai_upstream import FakeOpenAI, Scenario

pytestmark = pytest.mark.e2e
CLI = str(Path(sys.executable).parent / "pmp-gateway")


def _start_worker(settings: Settings, log: Path, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    return start_worker_process(
        settings, log, metrics_port=metrics_port, env={UPSTREAM_KEY_ENV: UPSTREAM_KEY}
    )


async def _poll(client: httpx.AsyncClient, operation_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        document = dict((await client.get(f"/v1/operations/{operation_id}")).json())
        if document.get("status") in ("completed", "failed", "cancelled"):
            return document
        assert time.monotonic() < deadline, document
        await asyncio.sleep(0.25)


async def _submit(client: httpx.AsyncClient, model: str) -> str:
    response = await client.post(
        "/v1/chat/completions?async=true",
        json={"model": model, "messages": [{"role": "user", "content": "survive"}]},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["operation_id"])


async def _model(client: httpx.AsyncClient, upstream: FakeOpenAI) -> str:
    model = f"m-{uuid.uuid4().hex[:8]}"
    created = await client.post(
        "/admin/models",
        json={
            "id": model,
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": upstream.base_url,
            "credential": {"source": "env", "name": UPSTREAM_KEY_ENV},
        },
    )
    assert created.status_code == 201, created.text
    return model


async def test_operation_completes_after_its_worker_is_killed_mid_call(
    settings: Settings, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = _start_worker(settings, tmp_path / "worker-1.log")
    replacement = None
    try:
        async with api_only(settings) as api:
            client = api.admin
            model = await _model(client, upstream)
            upstream.enqueue(Scenario(content="first try", delay_s=30), Scenario(content="done"))
            operation_id = await _submit(client, model)
            deadline = time.monotonic() + 30
            while not upstream.requests:
                assert time.monotonic() < deadline, (tmp_path / "worker-1.log").read_text()
                await asyncio.sleep(0.1)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            metrics_port = free_port()
            replacement = _start_worker(settings, tmp_path / "worker-2.log", metrics_port)
            document = await _poll(client, operation_id, timeout_s=60)
            # The worker has no API: its own /metrics shows the attempt it made.
            async with httpx.AsyncClient() as http:
                metrics = await http.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert 'pmp_upstream_attempts_total{chain="",model="' in metrics.text, metrics.text
        assert document["status"] == "completed", document
        assert document["result"]["choices"][0]["message"]["content"] == "done"
        assert len(upstream.requests) == 2
    finally:
        for process in (worker, replacement):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


async def test_operation_is_found_after_the_api_restarts(
    settings: Settings, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = _start_worker(settings, tmp_path / "worker.log")
    try:
        async with api_only(settings) as api:
            client = api.admin
            model = await _model(client, upstream)
            upstream.enqueue(Scenario(content="after restart", delay_s=1))
            operation_id = await _submit(client, model)
        async with api_only(settings) as restarted_api:
            restarted = restarted_api.admin
            document = await _poll(restarted, operation_id, timeout_s=30)
        assert document["status"] == "completed"
        assert document["result"]["choices"][0]["message"]["content"] == "after restart"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
