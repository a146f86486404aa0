"""Defects a review found (the hardening issue): each test fails on the code before its fix."""

from __future__ import annotations

import logging

import openai
import pytest

from tests.conftest import Gateway
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
