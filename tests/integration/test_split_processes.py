"""`pmp-gateway api` + `pmp-gateway worker` apart: runs cross through Temporal, chunks
through Redis Streams (two runtimes with their own clients, as two processes would)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn
from pydantic import SecretStr

from gateway_api.app import create_app
from gateway_api.assembly import open_runtime
from gateway_core.config import Settings
from gateway_core.process import StartupError, free_port
from gateway_core.streaming.bus import RedisStreamBus
from tests.conftest import ADMIN_KEY, TEST_KEY_HASH_SECRET, TEST_PAYLOAD_KEY, UPSTREAM_KEY_ENV
from tests.fakes.openai_upstream import FakeOpenAI


@pytest.fixture
async def split_gateway(settings: Settings, redis_url: str) -> AsyncIterator[str]:
    split = settings.model_copy(update={"redis_url": SecretStr(redis_url)})
    async with open_runtime(split, "worker"), open_runtime(split, "api") as api:
        assert isinstance(api.providers.bus, RedisStreamBus)
        assert api.temporal.runs.eager_start is False
        async with api.storage.pool.connection() as conn:
            await conn.execute("TRUNCATE models, model_versions")
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(split, runtime=api), host="127.0.0.1", port=0, log_level="warning"
            )
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        server.should_exit = True
        await task


async def test_api_and_worker_apart_serve_plain_and_streaming_calls(
    split_gateway: str, upstream: FakeOpenAI
) -> None:
    async with httpx.AsyncClient(
        base_url=split_gateway, headers={"authorization": f"Bearer {ADMIN_KEY}"}
    ) as admin:
        created = await admin.post(
            "/admin/models",
            json={
                "id": "m",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "base_url": upstream.base_url,
                "credential": {"source": "env", "name": UPSTREAM_KEY_ENV},
            },
        )
        assert created.status_code == 201
    client = openai.AsyncOpenAI(base_url=f"{split_gateway}/v1", api_key=ADMIN_KEY, max_retries=0)
    messages = [{"role": "user", "content": "across processes"}]
    plain = await client.chat.completions.create(model="m", messages=messages)
    assert plain.choices[0].message.content == "echo: across processes"
    stream = await client.chat.completions.create(
        model="m", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: across processes"
    assert chunks[-1].usage is not None


async def test_api_mode_refuses_to_embed_services() -> None:
    with pytest.raises(StartupError, match="PMP_DATABASE_URL"):
        async with open_runtime(Settings(database_url=None, temporal_address=None), "api"):
            pass


async def test_api_mode_names_an_unreachable_temporal_in_one_startup_error(
    database_url: str, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        temporal_address=address,  # type: ignore[arg-type]
        key_hash_secret=TEST_KEY_HASH_SECRET,
        payload_key=TEST_PAYLOAD_KEY,
    )
    with pytest.raises(StartupError, match=f"cannot connect to Temporal at {address}"):
        async with open_runtime(settings, "api"):
            pass
