"""Defects a review found (the hardening issue): each test fails on the code before its fix."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import Gateway


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
