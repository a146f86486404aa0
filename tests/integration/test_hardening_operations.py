"""Hardening 6 (rest): `messages` is bounded, and reading several operations costs one
visibility query instead of RPCs per operation."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, key_client, openai_error
from tests.fakes.openai_upstream import FakeOpenAI
from tests.replay_scenarios import CallbackReceiver


async def test_messages_over_the_limit_are_a_400_in_openai_format(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    limit = gateway.runtime.settings.max_messages
    assert limit == 2048
    messages = [{"role": "user", "content": "x"}] * (limit + 1)
    response = await gateway.admin.post(
        "/v1/chat/completions", json={"model": "m", "messages": messages}
    )
    error = openai_error(response, 400)
    assert (error["param"], error["code"]) == ("messages", "too_many_messages")
    assert not upstream.requests
    within = await gateway.admin.post(
        "/v1/chat/completions", json={"model": "m", "messages": messages[:limit]}
    )
    assert within.status_code == 200, within.text


def _count_calls(monkeypatch: pytest.MonkeyPatch, target: Any, names: list[str]) -> Counter[str]:
    calls: Counter[str] = Counter()
    for name in names:
        original: Callable[..., Awaitable[Any]] = getattr(target, name)

        async def counted(
            *args: Any, _name: str = name, _original: Any = original, **kwargs: Any
        ) -> Any:
            calls[_name] += 1
            return await _original(*args, **kwargs)

        monkeypatch.setattr(target, name, counted)
    return calls


async def _completed_operations(
    gateway: Gateway, client: httpx.AsyncClient, bodies: list[dict[str, Any]]
) -> list[str]:
    ids = []
    for body in bodies:
        accepted = await client.post("/v1/chat/completions?async=true", json=body)
        assert accepted.status_code == 202, accepted.text
        ids.append(accepted.json()["operation_id"])
    temporal = gateway.runtime.temporal.runs.client
    for operation_id in ids:
        await temporal.get_workflow_handle(operation_id).result()
    # Visibility is eventually consistent: wait until the listing shows every run closed
    # (callback children included).
    wanted = [*ids, *(f"{i}-callback" for i in ids[-1:])]
    deadline = time.monotonic() + 10
    query = " OR ".join(f"WorkflowId = '{i}'" for i in wanted)
    while True:
        closed = [
            w async for w in temporal.list_workflows(f"({query}) AND ExecutionStatus != 'Running'")
        ]
        if len(closed) == len(wanted):
            return ids
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


async def test_several_operations_cost_visibility_queries_and_no_describes(
    gateway: Gateway,
    upstream: FakeOpenAI,
    receiver: CallbackReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await gateway.add_model("m", upstream)
    bodies: list[dict[str, Any]] = [
        {"model": "m", "messages": [{"role": "user", "content": f"op {i}"}]} for i in range(3)
    ]
    bodies[-1]["callback_url"] = receiver.url("/ok")
    async with await key_client(gateway, {"models": "all"}) as client:
        ids = await _completed_operations(gateway, client, bodies)
        calls = _count_calls(monkeypatch, gateway.runtime.temporal.runs, ["describe", "list_page"])
        unknown = f"op-{uuid.uuid4()}"
        several = await client.get(f"/v1/operations?ids={ids[2]},{unknown},{ids[0]},{ids[1]}")
        assert several.status_code == 200, several.text
        page = several.json()
        assert [d["operation_id"] for d in page["data"]] == [ids[2], ids[0], ids[1]]
        assert all(d["status"] == "completed" and d["result"] for d in page["data"])
        assert page["data"][0]["callback"]["status"] == "delivered"
        assert page["not_found"] == [unknown]
        # One listing of the operations, one of their callback children; only the id the
        # listing did not show is described (to tell "not there yet" from "none").
        assert calls == Counter({"list_page": 2, "describe": 1})
        calls.clear()
        listed = await client.get("/v1/operations?limit=10")
        assert {d["operation_id"] for d in listed.json()["data"]} == set(ids)
        assert calls == Counter({"list_page": 2})


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    async with CallbackReceiver() as running:
        yield running
