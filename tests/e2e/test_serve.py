"""Drives `pmp-gateway serve` as a user would: a fresh data dir, the SDK, restarts, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import psutil
import pytest
from temporalio.client import Client

from gateway_core.process import free_port
from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.e2e
CLI = str(Path(sys.executable).parent / "pmp-gateway")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    port: int
    temporal_port: int
    ui_port: int
    stderr_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)


async def _start(data_dir: Path, log_dir: Path, name: str) -> ServeProcess:
    port, temporal_port, ui_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "PMP_DATA_DIR": str(data_dir),
        "PMP_PORT": str(port),
        "PMP_TEMPORAL_PORT": str(temporal_port),
        "PMP_TEMPORAL_UI_PORT": str(ui_port),
        UPSTREAM_KEY_ENV: UPSTREAM_KEY,
    }
    for variable in ("PMP_DATABASE_URL", "PMP_TEMPORAL_ADDRESS", "PMP_ADMIN_KEY", "PMP_REDIS_URL"):
        env.pop(variable, None)
    stderr_path = log_dir / f"{name}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen([CLI, "serve"], env=env, stdout=stderr, stderr=stderr)
    served = ServeProcess(process, port, temporal_port, ui_port, stderr_path)
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient() as client:
        while True:
            assert process.poll() is None, stderr_path.read_text()
            try:
                if (await client.get(f"{served.base_url}/ready")).status_code == 200:
                    return served
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gateway did not become ready"
            await asyncio.sleep(0.25)


def _stop(served: ServeProcess, sig: int = signal.SIGTERM) -> tuple[int, list[psutil.Process]]:
    children = served.descendants()
    served.process.send_signal(sig)
    code = served.process.wait(timeout=60)
    _gone, alive = psutil.wait_procs(children, timeout=15)
    return code, alive


@pytest.fixture
async def fake_upstream() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI(api_key=UPSTREAM_KEY)
    await fake.start()
    yield fake
    await fake.stop()


async def test_serve_first_run_chat_restart_and_clean_stop(
    tmp_path: Path, fake_upstream: FakeOpenAI
) -> None:
    data_dir = tmp_path / "data"
    served = await _start(data_dir, tmp_path, "first")
    output = served.stderr_path.read_text()
    key_file = data_dir / "admin-key"
    assert str(key_file) in output and f"127.0.0.1:{served.temporal_port}" in output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    admin_key = key_file.read_text().strip()
    assert admin_key not in output

    headers = {"authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=served.base_url, headers=headers) as admin:
        created = await admin.post(
            "/admin/models",
            json={
                "id": "fast-chat",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "base_url": fake_upstream.base_url,
                "credential": {"source": "env", "name": UPSTREAM_KEY_ENV},
            },
        )
        assert created.status_code == 201, created.text
        ui = await admin.get(f"http://127.0.0.1:{served.ui_port}/")
        assert ui.status_code == 200
    client = openai.AsyncOpenAI(base_url=f"{served.base_url}/v1", api_key=admin_key, max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model="fast-chat", messages=[{"role": "user", "content": "hello e2e"}]
    )
    assert raw.parse().choices[0].message.content == "echo: hello e2e"
    run_id = raw.headers["x-pmp-run-id"]
    stream = await client.chat.completions.create(
        model="fast-chat", messages=[{"role": "user", "content": "stream it"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: stream it"

    children = served.descendants()
    down = subprocess.run(
        ["bash", str(ROOT / "bin" / "down.sh")],
        env={**os.environ, "PMP_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert down.stdout.strip() == "stopped", down.stderr
    code = served.process.wait(timeout=30)
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert not (data_dir / "gateway.pid").exists()
    assert code == 0
    assert alive == []
    assert "Traceback" not in served.stderr_path.read_text()

    again = await _start(data_dir, tmp_path, "second")
    try:
        client = openai.AsyncOpenAI(
            base_url=f"{again.base_url}/v1", api_key=admin_key, max_retries=0
        )
        assert (await client.models.retrieve("fast-chat")).id == "fast-chat"  # same key works
        temporal = await Client.connect(f"127.0.0.1:{again.temporal_port}")
        description = await temporal.get_workflow_handle(run_id).describe()
        assert description.status is not None and description.status.name == "COMPLETED"
        assert "generated an admin key" not in again.stderr_path.read_text()
    finally:
        code, alive = _stop(again, signal.SIGINT)
    assert code == 0 and alive == []
    assert "Traceback" not in again.stderr_path.read_text()


async def test_killed_gateway_leaves_no_orphaned_services(tmp_path: Path) -> None:
    served = await _start(tmp_path / "data", tmp_path, "killed")
    children = served.descendants()
    assert any("temporal" in " ".join(c.cmdline()) for c in children)
    assert any("postgres" in " ".join(c.cmdline()) for c in children)
    served.process.kill()
    served.process.wait(timeout=30)
    _gone, alive = psutil.wait_procs(children, timeout=20)
    assert alive == []
