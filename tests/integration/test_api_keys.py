"""API keys: statuses, permissions, rotation, admin flag, usage and the stored secret."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway
from tests.fakes.openai_upstream import FakeOpenAI

MESSAGES = [{"role": "user", "content": "hello"}]
TEAM_A = {
    "id": "team-a",
    "name": "Team A",
    "permissions": {"models": ["fast-chat"], "chains": "all", "prompts": "all"},
    "rate_limits": {"requests_per_minute": 5},
}


async def _key(gateway: Gateway, body: dict[str, Any] | None = None) -> str:
    response = await gateway.admin.post("/admin/api-keys", json=body or TEAM_A)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _client(gateway: Gateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0)


async def test_issue_example_key_is_shown_once_and_limited_to_its_models(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    await gateway.add_model("other", upstream)
    created = await gateway.admin.post("/admin/api-keys", json=TEAM_A)
    assert created.status_code == 201
    body = created.json()
    assert body["id"] == "team-a"
    assert body["key"].startswith("pk_live_")
    assert body["status"] == "active"
    listing = (await gateway.admin.get("/admin/api-keys")).text
    one = (await gateway.admin.get("/admin/api-keys/team-a")).text
    for shown in (listing, one):
        assert body["key"] not in shown
        assert "hash" not in shown
    client = _client(gateway, body["key"])
    answer = await client.chat.completions.create(model="fast-chat", messages=MESSAGES)
    assert answer.choices[0].message.content == "echo: hello"
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await client.chat.completions.create(model="other", messages=MESSAGES)
    assert "'other'" in caught.value.message
    assert [m.id async for m in client.models.list()] == ["fast-chat"]


async def test_statuses_each_answer_401_saying_which(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    key = await _key(gateway)
    client = _client(gateway, key)
    await gateway.admin.post("/admin/api-keys/team-a/suspend")
    with pytest.raises(openai.AuthenticationError, match="suspended"):
        await client.models.list()
    await gateway.admin.post("/admin/api-keys/team-a/activate")
    assert [m.id async for m in client.models.list()] == ["fast-chat"]
    await gateway.admin.post("/admin/api-keys/team-a/revoke")
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        await client.models.list()
    again = await gateway.admin.post("/admin/api-keys/team-a/activate")
    assert again.status_code == 409
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        await client.models.list()
    with pytest.raises(openai.AuthenticationError, match="not valid"):
        await _client(gateway, key[:-3] + "abc").models.list()


async def test_expired_key_is_refused(gateway: Gateway) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    key = await _key(gateway, {**TEAM_A, "id": "old", "expires_at": past})
    with pytest.raises(openai.AuthenticationError, match="expired"):
        await _client(gateway, key).models.list()
    listed = (await gateway.admin.get("/admin/api-keys/old")).json()
    assert listed["expires_at"] is not None


async def test_rotation_keeps_the_old_secret_for_the_grace_period_only(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    old = await _key(gateway)
    rotated = await gateway.admin.post(
        "/admin/api-keys/team-a/rotate", json={"grace_period_seconds": 2}
    )
    new = rotated.json()["key"]
    assert new != old
    assert rotated.json()["permissions"]["models"] == ["fast-chat"]
    for key in (old, new):
        assert [m.id async for m in _client(gateway, key).models.list()] == ["fast-chat"]
    await asyncio.sleep(2.2)
    with pytest.raises(openai.AuthenticationError):
        await _client(gateway, old).models.list()
    assert [m.id async for m in _client(gateway, new).models.list()] == ["fast-chat"]
    immediate = await gateway.admin.post("/admin/api-keys/team-a/rotate")
    with pytest.raises(openai.AuthenticationError):
        await _client(gateway, new).models.list()
    assert [m.id async for m in _client(gateway, immediate.json()["key"]).models.list()]


@pytest.mark.parametrize(("kind", "name"), [("models", "m1"), ("chains", "c1")])
async def test_each_permission_kind_is_enforced(
    gateway: Gateway, upstream: FakeOpenAI, kind: str, name: str
) -> None:
    await gateway.add_model("m1", upstream)
    await gateway.add_model("m2", upstream)
    for chain_id in ("c1", "c2"):
        await gateway.admin.post(
            "/admin/chains", json={"id": chain_id, "name": chain_id, "steps": [{"model_id": "m2"}]}
        )
    key = await _key(gateway, {"id": "k", "name": "k", "permissions": {kind: [name]}})
    client = _client(gateway, key)
    await client.chat.completions.create(model=name, messages=MESSAGES)
    forbidden = "m2" if kind == "models" else "c2"
    with pytest.raises(openai.PermissionDeniedError, match=forbidden):
        await client.chat.completions.create(model=forbidden, messages=MESSAGES)
    assert [m.id async for m in client.models.list()] == [name]


async def test_admin_routes_need_the_admin_flag(gateway: Gateway) -> None:
    plain = await _key(gateway)
    admin = await _key(gateway, {"id": "ops", "name": "Ops", "permissions": {"admin": True}})
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        refused = await client.get("/admin/models", headers={"authorization": f"Bearer {plain}"})
        allowed = await client.get("/admin/models", headers={"authorization": f"Bearer {admin}"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_required"
    assert allowed.status_code == 200


async def test_usage_is_counted_per_key_and_model_and_last_use_recorded(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    key = await _key(gateway)
    client = _client(gateway, key)
    for _ in range(2):
        await client.chat.completions.create(model="fast-chat", messages=MESSAGES)
    stream = await client.chat.completions.create(model="fast-chat", messages=MESSAGES, stream=True)
    async for _chunk in stream:
        pass
    by_model = await gateway.admin.get("/admin/api-keys/team-a/usage?group_by=model")
    rows = by_model.json()["data"]
    assert rows == [
        {
            "model": "fast-chat",
            "requests": 3,
            "prompt_tokens": 3,
            "completion_tokens": 6,
            "total_tokens": 9,
        }
    ]
    today = datetime.now(UTC).date().isoformat()
    by_day = await gateway.admin.get(f"/admin/api-keys/team-a/usage?from={today}&to={today}")
    assert by_day.json()["data"][0]["day"] == today
    assert (await gateway.admin.get("/admin/api-keys/team-a")).json()["last_used_at"]


async def test_the_key_table_holds_no_usable_secret(gateway: Gateway) -> None:
    key = await _key(gateway)
    async with gateway.runtime.storage.pool.connection() as conn:
        cursor = await conn.execute("SELECT * FROM api_keys WHERE id = 'team-a'")
        row = await cursor.fetchone()
    assert row is not None
    stored = " ".join(str(value) for value in row.values())
    assert key not in stored
    assert key[8:] not in stored
    # The hash is keyed: the plain SHA-256 of the key is not what is stored.
    assert hashlib.sha256(key.encode()).hexdigest() not in stored
    assert row["key_hash"] == gateway.runtime.auth.authenticator._hasher.digest(key)


async def test_prompt_permission_is_enforced_on_prompt_references(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    for prompt_id in ("allowed", "secret-sauce"):
        created = await gateway.admin.post(
            "/admin/prompts", json={"id": prompt_id, "name": prompt_id, "content": "Be nice."}
        )
        assert created.status_code == 201, created.text
    key = await _key(
        gateway,
        {"id": "p", "name": "p", "permissions": {"models": "all", "prompts": ["allowed"]}},
    )
    client = _client(gateway, key)
    ok = await client.chat.completions.create(
        model="fast-chat",
        messages=[{"role": "system", "prompt_id": "allowed"}, *MESSAGES],  # type: ignore[list-item]
    )
    assert ok.choices[0].message.content == "echo: hello"
    with pytest.raises(openai.PermissionDeniedError, match="secret-sauce"):
        await client.chat.completions.create(
            model="fast-chat",
            messages=[{"role": "system", "prompt_id": "secret-sauce"}, *MESSAGES],  # type: ignore[list-item]
        )


async def test_key_verification_uses_a_constant_time_comparison(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    compared: list[tuple[str, str]] = []
    original = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    key = await _key(gateway)
    assert [m.id async for m in _client(gateway, key).models.list()] == []
    digest = gateway.runtime.auth.authenticator._hasher.digest(key)
    assert (digest, digest) in compared  # the stored hash was checked with compare_digest
    rotated = await gateway.admin.post(
        "/admin/api-keys/team-a/rotate", json={"grace_period_seconds": 60}
    )
    assert rotated.status_code == 200
    compared.clear()
    assert [m.id async for m in _client(gateway, key).models.list()] == []
    assert (digest, digest) in compared  # and so was the previous one during its grace


async def test_a_key_id_cannot_pass_for_the_bootstrap_admin(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    submitted = await gateway.admin.post(
        "/v1/chat/completions?async=true",
        json={"model": "m", "messages": MESSAGES},
    )
    operation_id = submitted.json()["operation_id"]
    impostor = await _key(gateway, {"id": "admin", "name": "x", "permissions": {"models": "all"}})
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        seen = await client.get(
            f"/v1/operations/{operation_id}", headers={"authorization": f"Bearer {impostor}"}
        )
    assert seen.status_code == 404
