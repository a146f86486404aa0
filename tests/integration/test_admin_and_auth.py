"""Admin model CRUD, /v1/models, authentication, request validation and readiness."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import openai
import pytest
from temporalio.client import Client

from gateway_api.app import create_app
from gateway_api.services.run_client import RunClient
from gateway_core.process import free_port
from gateway_core.storage.database import open_pool
from tests.conftest import ADMIN_KEY, Gateway
from tests.fakes.openai_upstream import FakeOpenAI

SPEC_EXAMPLE: dict[str, Any] = {
    "id": "fast-chat",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "base_url": "http://127.0.0.1:9100/v1",
    "credential": {"source": "env", "name": "OPENAI_API_KEY"},
    "config": {"temperature": 0.2, "max_tokens": 256},
}


async def test_issue_example_model_is_created_and_read_back(gateway: Gateway) -> None:
    created = await gateway.admin.post("/admin/models", json=SPEC_EXAMPLE)
    assert created.status_code == 201
    body = created.json()
    assert body["version"] == 1 and body["config"]["temperature"] == 0.2
    fetched = await gateway.admin.get("/admin/models/fast-chat")
    assert fetched.json()["credential"] == {"source": "env", "name": "OPENAI_API_KEY"}
    listed = await gateway.admin.get("/admin/models")
    assert [m["id"] for m in listed.json()["data"]] == ["fast-chat"]


async def test_update_bumps_the_version_and_if_match_guards_lost_updates(
    gateway: Gateway,
) -> None:
    await gateway.admin.post("/admin/models", json=SPEC_EXAMPLE)
    update = {k: v for k, v in SPEC_EXAMPLE.items() if k != "id"} | {"model": "gpt-4o"}
    first = await gateway.admin.put(
        "/admin/models/fast-chat", json=update, headers={"if-match": "1"}
    )
    assert first.status_code == 200 and first.json()["version"] == 2
    stale = await gateway.admin.put(
        "/admin/models/fast-chat", json=update, headers={"if-match": "1"}
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "version_conflict"
    assert (await gateway.admin.get("/admin/models/fast-chat")).json()["model"] == "gpt-4o"


async def test_duplicate_id_is_409_and_delete_then_get_is_404(gateway: Gateway) -> None:
    await gateway.admin.post("/admin/models", json=SPEC_EXAMPLE)
    again = await gateway.admin.post("/admin/models", json=SPEC_EXAMPLE)
    assert again.status_code == 409 and again.json()["error"]["type"] == "conflict_error"
    deleted = await gateway.admin.delete("/admin/models/fast-chat")
    assert deleted.json() == {"id": "fast-chat", "object": "model", "deleted": True}
    missing = await gateway.admin.get("/admin/models/fast-chat")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


async def test_recreated_model_continues_its_version_history(gateway: Gateway) -> None:
    await gateway.admin.post("/admin/models", json=SPEC_EXAMPLE)
    await gateway.admin.delete("/admin/models/fast-chat")
    again = await gateway.admin.post("/admin/models", json=SPEC_EXAMPLE)
    assert again.status_code == 201
    assert again.json()["version"] == 2


async def test_credential_may_not_name_a_gateway_setting(gateway: Gateway) -> None:
    body = SPEC_EXAMPLE | {"credential": {"source": "env", "name": "PMP_DATABASE_URL"}}
    response = await gateway.admin.post("/admin/models", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "credential"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "has space"}, "id"),
        ({"id": "x" * 51}, "id"),
        ({"provider": "nobody"}, "provider"),
        ({"config": {"temperature": 2.5}}, "config.temperature"),
        ({"config": {"top_p": -0.1}}, "config.top_p"),
        ({"config": {"max_tokens": 0}}, "config.max_tokens"),
        ({"config": {"presence_penalty": 3}}, "config.presence_penalty"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_invalid_model_fields_are_400_naming_the_field(
    gateway: Gateway, change: dict[str, Any], field: str
) -> None:
    response = await gateway.admin.post("/admin/models", json=SPEC_EXAMPLE | change)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == field
    assert field in error["message"]


async def test_v1_models_lists_enabled_models_only(gateway: Gateway, upstream: FakeOpenAI) -> None:
    await gateway.add_model("on", upstream)
    await gateway.add_model("off", upstream, enabled=False)
    client = gateway.openai()
    ids = [model.id async for model in client.models.list()]
    assert ids == ["on"]
    card = await client.models.retrieve("on")
    assert card.owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("off")
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(
            model="off", messages=[{"role": "user", "content": "x"}]
        )


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"x-api-key": "wrong"}, {"authorization": "Basic abc"}],
)
async def test_requests_without_a_valid_key_are_401(
    gateway: Gateway, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        for method, path in (
            ("GET", "/v1/models"),
            ("POST", "/v1/chat/completions"),
            ("GET", "/admin/models"),
        ):
            response = await client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, path
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["code"] in ("invalid_api_key", "missing_api_key")


async def test_x_api_key_header_is_accepted(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        response = await client.get("/v1/models", headers={"x-api-key": ADMIN_KEY})
    assert response.status_code == 200 and response.json()["object"] == "list"


async def test_malformed_json_is_400_invalid_json(gateway: Gateway) -> None:
    response = await gateway.admin.post(
        "/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 5},
            "temperature",
        ),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
async def test_invalid_chat_fields_are_400_naming_the_field(
    gateway: Gateway, body: dict[str, Any], field: str
) -> None:
    response = await gateway.admin.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field


async def test_unknown_route_is_404_in_openai_shape(gateway: Gateway) -> None:
    response = await gateway.admin.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_responses_carry_a_request_id_and_echo_a_given_one(gateway: Gateway) -> None:
    response = await gateway.admin.get("/v1/models", headers={"x-request-id": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    generated = await gateway.admin.get("/v1/models")
    assert generated.headers["x-request-id"].startswith("req_")


async def test_ready_reports_up_and_names_postgres_when_it_is_down(
    gateway: Gateway, database_url: str
) -> None:
    assert (await gateway.admin.get("/ready")).json()["status"] == "ready"
    assert (await gateway.admin.get("/live")).status_code == 200
    closed = await open_pool(database_url)
    await closed.close()
    storage = dataclasses.replace(gateway.runtime.storage, pool=closed)
    broken = dataclasses.replace(gateway.runtime, storage=storage)
    app = create_app(gateway.runtime.settings, runtime=broken)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["down"] == ["postgres"]


async def test_ready_names_temporal_when_it_is_down(gateway: Gateway) -> None:
    unreachable = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    runs = RunClient(unreachable, task_queue="unused", namespace="default", eager_start=False)
    temporal = dataclasses.replace(gateway.runtime.temporal, runs=runs)
    broken = dataclasses.replace(gateway.runtime, temporal=temporal)
    app = create_app(gateway.runtime.settings, runtime=broken)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["down"] == ["temporal"]
