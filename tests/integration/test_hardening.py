"""Defects a review found (the hardening issue): each test fails on the code before its fix."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from pydantic import SecretStr

from gateway_api.app import create_app
from gateway_core.config import Settings
from gateway_core.credentials.base import EnvCredentialSource
from gateway_core.credentials.env_policy import EnvNamePolicy
from gateway_core.domain.models import CredentialRef
from gateway_core.errors import ConfigurationError
from gateway_core.storage.database import open_pool
from tests.conftest import Gateway, running_gateway
from tests.fakes.openai_upstream import FakeOpenAI, Scenario


async def test_access_log_duration_is_the_request_time_in_milliseconds(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    # The request-started flag used to overwrite the start time with False, so a request
    # of microseconds logged its duration as perf_counter() itself (hundreds of thousands).
    with caplog.at_level(logging.INFO, logger="gateway_api.access"):
        assert (await gateway.admin.get("/live")).status_code == 200
    durations = [r.duration_ms for r in caplog.records if r.name == "gateway_api.access"]
    assert durations, "no access-log line"
    assert all(0 <= duration < 60_000 for duration in durations), durations


async def test_a_failed_usage_flush_keeps_its_batch_for_the_next(gateway: Gateway) -> None:
    usage = gateway.runtime.auth.usage
    await usage.flush()  # start from nothing pending
    pool = gateway.runtime.storage.pool
    usage.record("_admin", "flush-model", 7, 3)
    async with pool.connection() as conn:
        await conn.execute("ALTER TABLE api_key_usage RENAME TO api_key_usage_away")
    try:
        with pytest.raises(Exception, match="api_key_usage"):
            await usage.flush()
    finally:
        async with pool.connection() as conn:
            await conn.execute("ALTER TABLE api_key_usage_away RENAME TO api_key_usage")
    usage.record("_admin", "flush-model", 1, 1)
    await usage.flush()
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT requests, prompt_tokens, completion_tokens FROM api_key_usage"
            " WHERE key_id = '_admin' AND model = 'flush-model'"
        )
        rows = await cursor.fetchall()
    assert [(r["requests"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        (2, 8, 4)
    ]


@pytest.mark.parametrize("kind", ["models", "chains", "prompts"])
async def test_put_accepts_the_document_get_returned(
    gateway: Gateway, upstream: FakeOpenAI, kind: str
) -> None:
    await gateway.add_model("m", upstream)
    bodies = {
        "chains": {"id": "c", "name": "C", "steps": [{"model_id": "m"}]},
        "prompts": {"id": "p", "name": "P", "content": "Hello ${var:who}"},
    }
    entity_id = "m"
    if kind != "models":
        created = await gateway.admin.post(f"/admin/{kind}", json=bodies[kind])
        assert created.status_code == 201, created.text
        entity_id = bodies[kind]["id"]
    read = (await gateway.admin.get(f"/admin/{kind}/{entity_id}")).json()
    edited = {**read, "description": "edited from a GET"}
    put = await gateway.admin.put(f"/admin/{kind}/{entity_id}", json=edited)
    assert put.status_code == 200, put.text
    assert put.json()["version"] == read["version"] + 1
    assert put.json()["description"] == "edited from a GET"
    wrong = await gateway.admin.put(f"/admin/{kind}/{entity_id}", json={**read, "id": "other"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["param"] == "id"


async def test_an_upstream_404_falls_back_while_a_bad_request_still_ends_the_chain(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await gateway.add_model("primary", upstream)
    await gateway.add_model("backup", backup)
    chain = {
        "id": "gone-then-backup",
        "name": "404 falls back",
        "steps": [{"model_id": "primary", "max_retries": 2}, {"model_id": "backup"}],
    }
    assert (await gateway.admin.post("/admin/chains", json=chain)).status_code == 201
    messages = [{"role": "user", "content": "hi"}]
    upstream.enqueue(Scenario(status=404, error_message="The model `gpt-x` does not exist"))
    raw = await gateway.openai().chat.completions.with_raw_response.create(
        model="gone-then-backup", messages=messages
    )
    assert raw.headers["x-pmp-served-by"] == "backup"
    assert len(upstream.requests) == 1  # a gone model is not retried
    upstream.enqueue(Scenario(status=400))
    with pytest.raises(openai.BadRequestError):
        await gateway.openai().chat.completions.create(model="gone-then-backup", messages=messages)
    assert len(backup.requests) == 1  # the bad request did not reach the backup


async def test_env_credentials_may_name_only_allowed_variables(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    body = {
        "id": "sneaky",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": upstream.base_url,
        "credential": {"source": "env", "name": "AWS_SECRET_ACCESS_KEY"},
    }
    refused = await gateway.admin.post("/admin/models", json=body)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == "credential.name" and "PMP_CREDENTIAL_ENV_ALLOW" in error["message"]
    imported = await gateway.admin.post("/admin/import", json={"version": 1, "models": [body]})
    assert imported.status_code == 400 and "PMP_CREDENTIAL_ENV_ALLOW" in imported.text
    assert (await gateway.admin.get("/admin/models/sneaky")).status_code == 404


async def test_the_worker_reads_no_variable_outside_the_allowed_names() -> None:
    # A run's input may not come from the gateway: the worker checks the name itself.
    source = EnvCredentialSource(
        environ={"AWS_SECRET_ACCESS_KEY": "aws-secret"}, policy=EnvNamePolicy()
    )
    with pytest.raises(ConfigurationError, match="PMP_CREDENTIAL_ENV_ALLOW") as refused:
        await source.fetch(CredentialRef(source="env", name="AWS_SECRET_ACCESS_KEY"))
    assert "aws-secret" not in str(refused.value)
    allowed = EnvCredentialSource(environ={"OPENAI_API_KEY": "sk-1"}, policy=EnvNamePolicy())
    assert await allowed.fetch(CredentialRef(source="env", name="OPENAI_API_KEY")) == "sk-1"


async def test_ready_names_what_is_down_without_the_exceptions_text(
    gateway: Gateway, database_url: str
) -> None:
    closed = await open_pool(database_url)
    await closed.close()
    storage = dataclasses.replace(gateway.runtime.storage, pool=closed)
    app = create_app(
        gateway.runtime.settings, runtime=dataclasses.replace(gateway.runtime, storage=storage)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["postgres"] == {"status": "down", "code": "unreachable"}
    # The pool's error text names the database host and user; none of it is shown.
    assert "PoolClosed" not in response.text and "pool" not in response.text.lower()


async def test_metrics_can_require_a_key_of_their_own(settings: Settings) -> None:
    metrics_key = "metrics-" + "k" * 24
    keyed = settings.model_copy(update={"metrics_key": SecretStr(metrics_key)})
    async with running_gateway(keyed) as running:
        async with httpx.AsyncClient(base_url=running.base_url) as anonymous:
            assert (await anonymous.get("/metrics")).status_code == 401
            wrong = await anonymous.get("/metrics", headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert wrong.json()["error"]["code"] == "invalid_metrics_key"
            right = await anonymous.get(
                "/metrics", headers={"authorization": f"Bearer {metrics_key}"}
            )
        assert right.status_code == 200 and "pmp_chat_requests" in right.text
        assert (await running.admin.get("/ready")).status_code == 200  # other routes as before


async def test_request_bodies_over_the_limit_are_413_whether_declared_or_streamed(
    settings: Settings, upstream: FakeOpenAI
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 4096})
    async with running_gateway(small) as running:
        await running.add_model("m", upstream)
        big = {"model": "m", "messages": [{"role": "user", "content": "x" * 10_000}]}
        declared = await running.admin.post("/v1/chat/completions", json=big)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "request_too_large"
        assert "x-request-id" in declared.headers

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read as it comes
            payload = json.dumps(big).encode()
            for start in range(0, len(payload), 1024):
                yield payload[start : start + 1024]

        streamed = await running.admin.post(
            "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["type"] == "invalid_request_error"
        small_enough = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        assert (await running.admin.post("/v1/chat/completions", json=small_enough)).is_success


async def test_config_import_refuses_yaml_aliases(gateway: Gateway) -> None:
    # Nested aliases expand exponentially (the "billion laughs"): refused, not expanded.
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nmodels: *c\n"
    response = await gateway.admin.post(
        "/admin/import", content=bomb, headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 400
    assert "aliases" in response.json()["error"]["message"]
