"""`pmp-gateway export`, `import` and `serve --config`, run as the real CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from gateway_core.config import Settings
from gateway_core.process import free_port
from tests.conftest import ADMIN_KEY, Gateway, _truncate
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.e2e
CLI = str(Path(sys.executable).parent / "pmp-gateway")

CONFIG = """\
version: 1
models:
- id: from-file
  provider: openai
  model: gpt-4o-mini
  base_url: http://127.0.0.1:9/v1
prompts:
- id: {prompt_id}
  name: From a file
  content: |
    Hello ${{var:who:world}}.
    Second line.
"""


async def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the CLI without blocking the loop that serves the gateway under test."""
    process = await asyncio.create_subprocess_exec(
        CLI,
        *args,
        env={**os.environ, "PMP_ADMIN_KEY": ADMIN_KEY, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_export_to_a_file_and_import_it_into_an_emptied_gateway(
    gateway: Gateway, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    await gateway.add_model("fast-chat", upstream, config={"temperature": 0.3})
    prompt = {"id": "p1", "name": "P1", "content": "Line ${var:a}\nline two", "tags": ["x"]}
    await gateway.admin.post("/admin/prompts", json=prompt)
    before = (await gateway.admin.get("/admin/export")).json()

    code, exported, stderr = await _cli("export", "--url", gateway.base_url)
    assert code == 0, stderr
    config = tmp_path / "config.yaml"
    config.write_text(exported)

    await _truncate(gateway.runtime)
    code, stdout, stderr = await _cli("import", str(config), "--url", gateway.base_url)
    assert code == 0, stderr
    assert stdout.splitlines() == ["models: created fast-chat", "prompts: created p1"]
    assert (await gateway.admin.get("/admin/export")).json() == before

    code, stdout, _ = await _cli("import", str(config), "--url", gateway.base_url, "--dry-run")
    assert stdout.splitlines()[0] == "dry run: nothing was written"
    assert "models: unchanged fast-chat" in stdout


async def test_import_of_an_invalid_file_fails_listing_every_problem(
    gateway: Gateway, tmp_path: Path
) -> None:
    config = tmp_path / "broken.json"
    config.write_text(
        '{"version": 1, "models": [{"id": "m"}], "prompts": [{"id": "p", "name": "P",'
        ' "content": "${var:}"}]}'
    )
    code, stdout, stderr = await _cli("import", str(config), "--url", gateway.base_url)
    assert code == 1 and stdout == ""
    assert "models[0] (m): provider: Field required" in stderr
    assert "prompts[0] (p): content: `${var:}` at line 1, column 1" in stderr
    assert (await gateway.admin.get("/admin/export")).json()["models"] == []


async def test_export_without_a_running_gateway_says_where_it_looked() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, stderr = await _cli("export", "--url", url)
    assert code == 1 and f"no gateway answers at {url}" in stderr


async def test_serve_with_an_invalid_config_exits_before_starting(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\nprompts:\n- id: p\n  name: P\n  content: ${nope:x}\n")
    env = {"PMP_DATA_DIR": str(tmp_path / "data"), "PMP_PORT": str(free_port())}
    started = time.monotonic()
    code, _, stderr = await _cli("serve", "--config", str(config), env=env)
    assert code == 1
    assert str(config) in stderr and "unknown namespace `nope`" in stderr
    assert time.monotonic() - started < 30  # nothing was started


async def test_serve_applies_the_config_file_at_start_up(
    settings: Settings, tmp_path: Path
) -> None:
    prompt_id = f"p-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(prompt_id=prompt_id))
    port = free_port()
    assert settings.database_url is not None
    env = {
        **os.environ,
        "PMP_ADMIN_KEY": ADMIN_KEY,
        "PMP_DATA_DIR": str(tmp_path / "data"),
        "PMP_PORT": str(port),
        "PMP_DATABASE_URL": settings.database_url.get_secret_value(),
        "PMP_TEMPORAL_ADDRESS": str(settings.temporal_address),
        "PMP_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            CLI, "serve", "--config", str(config), env=env, stdout=output, stderr=output
        )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {ADMIN_KEY}"}
        ) as client:
            await _wait_ready(client, process, log)
            prompt = (await client.get(f"/admin/prompts/{prompt_id}")).json()
            assert prompt["content"] == "Hello ${var:who:world}.\nSecond line.\n"
            model = (await client.get("/admin/models/from-file")).json()
            assert model["model"] == "gpt-4o-mini"
        assert f"prompts: created {prompt_id}" in log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0


async def _wait_ready(
    client: httpx.AsyncClient, process: asyncio.subprocess.Process, log: Path
) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert process.returncode is None, log.read_text()
        try:
            if (await client.get("/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        await asyncio.sleep(0.2)
