"""Async operations: ?async=true, status and results from Temporal, cancel, ownership,
retention, callbacks and idempotency."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway_core.callbacks import SIGNATURE_HEADER, verify
from tests.conftest import ADMIN_KEY, Gateway
from tests.fakes.openai_upstream import FakeOpenAI, Scenario

MESSAGES = [{"role": "user", "content": "later please"}]


async def _submit(
    gateway: Gateway, body: dict[str, Any] | None = None, key: str = ADMIN_KEY, **headers: str
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
        return await client.post(
            "/v1/chat/completions?async=true",
            json=body or {"model": "m", "messages": MESSAGES},
            headers={"authorization": f"Bearer {key}", **headers},
        )


async def _poll(
    gateway: Gateway,
    operation_id: str,
    until: Callable[[dict[str, Any]], bool],
    key: str = ADMIN_KEY,
    timeout_s: float = 20,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        while True:
            response = await client.get(
                f"/v1/operations/{operation_id}", headers={"authorization": f"Bearer {key}"}
            )
            document = dict(response.json())
            if response.status_code == 200 and until(document):
                return document
            assert time.monotonic() < deadline, document
            await asyncio.sleep(0.1)


async def test_async_call_answers_202_then_the_result_in_the_sync_shape(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(delay_s=0.5))
    submitted = await _submit(gateway)
    assert submitted.status_code == 202
    document = submitted.json()
    assert document["status"] == "pending"
    assert document["type"] == "chat.completion"
    operation_id = document["operation_id"]
    assert operation_id.startswith("op-")
    assert submitted.headers["location"] == f"/v1/operations/{operation_id}"
    done = await _poll(gateway, operation_id, lambda d: d["status"] == "completed")
    assert done["result"]["object"] == "chat.completion"
    assert done["result"]["choices"][0]["message"]["content"] == "echo: later please"
    assert done["result"]["metadata"]["pmp_run_id"] == operation_id
    assert done["updated_at"] >= done["created_at"]


async def test_failing_upstream_makes_the_operation_failed_with_the_error(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(status=400, error_message="bad tools"))
    operation_id = (await _submit(gateway)).json()["operation_id"]
    failed = await _poll(gateway, operation_id, lambda d: d["status"] == "failed")
    assert failed["error"]["type"] == "invalid_request_error"
    assert "bad tools" in failed["error"]["message"]


async def test_cancel_closes_the_upstream_request_and_a_second_cancel_is_409(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(hang=True))
    operation_id = (await _submit(gateway)).json()["operation_id"]
    deadline = time.monotonic() + 10
    while not upstream.requests:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    cancelled = await gateway.admin.delete(f"/v1/operations/{operation_id}")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    while not upstream.requests[0].disconnected:
        assert time.monotonic() < deadline + 10
        await asyncio.sleep(0.05)
    again = await gateway.admin.delete(f"/v1/operations/{operation_id}")
    assert again.status_code == 409


async def test_unknown_malformed_and_expired_ids(gateway: Gateway) -> None:
    unknown = await gateway.admin.get(f"/v1/operations/op-{uuid.uuid4()}")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "operation_not_found"
    malformed = await gateway.admin.get("/v1/operations/not-an-id")
    assert malformed.status_code == 400
    old_ms = int((time.time() - 30 * 86400) * 1000)
    expired_id = f"op-{uuid.UUID(int=(old_ms << 80) | (0x7 << 76) | (0b10 << 62))}"
    expired = await gateway.admin.get(f"/v1/operations/{expired_id}")
    assert expired.status_code == 404
    assert "expired" in expired.json()["error"]["message"]


async def test_only_the_owner_or_an_admin_sees_an_operation(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    keys = []
    for key_id in ("owner", "stranger"):
        created = await gateway.admin.post(
            "/admin/api-keys",
            json={"id": key_id, "name": key_id, "permissions": {"models": "all"}},
        )
        keys.append(created.json()["key"])
    owner, stranger = keys
    operation_id = (await _submit(gateway, key=owner)).json()["operation_id"]
    await _poll(gateway, operation_id, lambda d: d["status"] == "completed", key=owner)
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        seen = await client.get(
            f"/v1/operations/{operation_id}", headers={"authorization": f"Bearer {stranger}"}
        )
        cancel = await client.delete(
            f"/v1/operations/{operation_id}", headers={"authorization": f"Bearer {stranger}"}
        )
    assert seen.status_code == 404
    assert cancel.status_code == 404
    assert (await gateway.admin.get(f"/v1/operations/{operation_id}")).status_code == 200


async def test_listing_is_newest_first_filtered_and_paginated(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    created = await gateway.admin.post(
        "/admin/api-keys", json={"id": "lister", "name": "l", "permissions": {"models": "all"}}
    )
    key = created.json()["key"]
    upstream.enqueue(Scenario(), Scenario(status=400), Scenario())
    ids = []
    for _ in range(3):
        ids.append((await _submit(gateway, key=key)).json()["operation_id"])
        await asyncio.sleep(0.05)
    for operation_id in ids:
        await _poll(
            gateway, operation_id, lambda d: d["status"] in ("completed", "failed"), key=key
        )
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=headers) as client:
        deadline = time.monotonic() + 15
        while True:  # visibility is eventually consistent
            listed = (await client.get("/v1/operations")).json()
            done = [d for d in listed["data"] if d["status"] in ("completed", "failed")]
            if len(done) == 3:
                break
            assert time.monotonic() < deadline, listed
            await asyncio.sleep(0.3)
        assert [d["operation_id"] for d in listed["data"]] == list(reversed(ids))
        failed = (await client.get("/v1/operations?status=failed")).json()
        assert [d["operation_id"] for d in failed["data"]] == [ids[1]]
        page = (await client.get("/v1/operations?limit=2")).json()
        assert len(page["data"]) == 2
        assert page["has_more"]
        rest = (await client.get(f"/v1/operations?limit=2&after={page['next_after']}")).json()
        assert [d["operation_id"] for d in rest["data"]] == [ids[0]]
        several = await client.get(f"/v1/operations?ids={ids[0]},{ids[2]},op-{uuid.uuid4()}")
        assert [d["operation_id"] for d in several.json()["data"]] == [ids[0], ids[2]]
        assert len(several.json()["not_found"]) == 1


class Receiver:
    """A loopback callback receiver that fails the first `failures` deliveries."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.deliveries: list[tuple[bytes, str]] = []
        self.port = 0

    async def handle(self, request: Request) -> Response:
        self.deliveries.append((await request.body(), request.headers.get(SIGNATURE_HEADER, "")))
        if len(self.deliveries) <= self.failures:
            return Response(status_code=500)
        return Response(status_code=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    target = Receiver(failures=1)
    app = Starlette(routes=[Route("/hook", target.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    target.port = server.servers[0].sockets[0].getsockname()[1]
    yield target
    server.should_exit = True
    await task


async def test_callback_is_signed_retried_and_its_outcome_shown(
    gateway: Gateway, upstream: FakeOpenAI, receiver: Receiver
) -> None:
    await gateway.add_model("m", upstream)
    body = {
        "model": "m",
        "messages": MESSAGES,
        "callback_url": f"http://127.0.0.1:{receiver.port}/hook",
    }
    accepted = (await _submit(gateway, body)).json()
    operation_id = accepted["operation_id"]
    document = await _poll(
        gateway,
        operation_id,
        lambda d: (d.get("callback") or {}).get("status") == "delivered",
        timeout_s=30,
    )
    assert document["callback"]["attempts"] == 2
    assert "callback_secret" not in document
    assert len(receiver.deliveries) == 2
    payload, signature = receiver.deliveries[-1]
    secret = accepted["callback_secret"].encode()
    assert verify(secret, payload, signature)
    assert not verify(secret, payload + b" ", signature)
    delivered = json.loads(payload)
    assert delivered["operation_id"] == operation_id
    assert delivered["status"] == "completed"
    assert delivered["result"]["choices"][0]["message"]["content"] == "echo: later please"
    assert "callback_url" not in upstream.requests[0].body


async def test_a_cancelled_operation_still_gets_its_callback(
    gateway: Gateway, upstream: FakeOpenAI, receiver: Receiver
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(hang=True))
    body = {
        "model": "m",
        "messages": MESSAGES,
        "callback_url": f"http://127.0.0.1:{receiver.port}/hook",
    }
    operation_id = (await _submit(gateway, body)).json()["operation_id"]
    deadline = time.monotonic() + 10
    while not upstream.requests:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await gateway.admin.delete(f"/v1/operations/{operation_id}")
    document = await _poll(
        gateway,
        operation_id,
        lambda d: (d.get("callback") or {}).get("status") == "delivered",
        timeout_s=30,
    )
    assert document["status"] == "cancelled"
    assert json.loads(receiver.deliveries[-1][0])["status"] == "cancelled"


async def test_idempotency_key_returns_the_same_operation_and_refuses_another_body(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    first = await _submit(gateway, **{"idempotency-key": "order-42"})
    second = await _submit(gateway, **{"idempotency-key": "order-42"})
    assert first.json()["operation_id"] == second.json()["operation_id"]
    other = await _submit(
        gateway,
        {"model": "m", "messages": [{"role": "user", "content": "different"}]},
        **{"idempotency-key": "order-42"},
    )
    assert other.status_code == 409
    await _poll(gateway, first.json()["operation_id"], lambda d: d["status"] == "completed")
    assert len(upstream.requests) == 1
    headers = {"idempotency-key": "sync-1"}
    body = {"model": "m", "messages": MESSAGES}
    one = await gateway.admin.post("/v1/chat/completions", json=body, headers=headers)
    two = await gateway.admin.post("/v1/chat/completions", json=body, headers=headers)
    assert one.headers["x-pmp-run-id"] == two.headers["x-pmp-run-id"]
    assert one.json()["choices"] == two.json()["choices"]
    assert len(upstream.requests) == 2
