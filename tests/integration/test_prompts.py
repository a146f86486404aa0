"""Admin prompts: CRUD, search, pagination, history, revert, render; model history."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.fakes.openai_upstream import FakeOpenAI

ISSUE_PROMPT: dict[str, Any] = {
    "id": "support",
    "name": "Support agent",
    "content": "You help with ${var:product:our product}. Be ${var:tone}.",
}


async def _create(gateway: Gateway, prompt_id: str, **fields: Any) -> dict[str, Any]:
    body = {"id": prompt_id, "name": prompt_id.title(), "content": "Hello"} | fields
    response = await gateway.admin.post("/admin/prompts", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _replacement(content: str, **fields: Any) -> dict[str, Any]:
    return {"name": "Support agent", "content": content} | fields


async def test_issue_example_is_created_and_renders_as_written(gateway: Gateway) -> None:
    created = await gateway.admin.post("/admin/prompts", json=ISSUE_PROMPT)
    assert created.status_code == 201, created.text
    prompt = created.json()
    assert prompt["version"] == 1 and prompt["tags"] == [] and prompt["description"] is None
    assert prompt["variables"] == [
        {"name": "product", "default": "our product", "required": False},
        {"name": "tone", "default": None, "required": True},
    ]
    rendered = await gateway.admin.post(
        "/admin/prompts/support/render", json={"variables": {"tone": "brief"}}
    )
    assert rendered.status_code == 200
    assert rendered.json()["content"] == "You help with our product. Be brief."
    assert rendered.json()["version"] == 1


async def test_invalid_placeholder_is_400_naming_it_and_its_position(gateway: Gateway) -> None:
    body = ISSUE_PROMPT | {"content": "Line one\nHello ${var:bad name} and ${nope:x}"}
    response = await gateway.admin.post("/admin/prompts", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "content" and error["code"] == "invalid_template"
    assert "`${var:bad name}` at line 2, column 7" in error["message"]
    assert "`${nope:x}` at line 2, column 27" in error["message"]
    assert (await gateway.admin.get("/admin/prompts/support")).status_code == 404
    fixed = await gateway.admin.post("/admin/prompts", json=ISSUE_PROMPT)
    assert fixed.status_code == 201
    update = await gateway.admin.put("/admin/prompts/support", json=_replacement("${var:"))
    assert update.status_code == 400 and "no closing" in update.json()["error"]["message"]


async def test_render_is_400_naming_every_missing_variable_without_default(
    gateway: Gateway,
) -> None:
    await _create(gateway, "greet", content="${var:a} ${var:b:fine} ${var:c} ${var:a}")
    response = await gateway.admin.post("/admin/prompts/greet/render", json={})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "missing_variables" and error["param"] == "variables"
    assert error["message"].endswith("without a default: a, c")
    partial = await gateway.admin.post(
        "/admin/prompts/greet/render", json={"variables": {"c": 3, "a": True}}
    )
    assert partial.json()["content"] == "true fine 3 true"
    unknown = await gateway.admin.post("/admin/prompts/nobody/render", json={})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "prompt_not_found"


async def test_crud_round_trip_and_validation(gateway: Gateway) -> None:
    await _create(gateway, "faq", tags=["support", "faq", "support"], description="FAQ")
    fetched = (await gateway.admin.get("/admin/prompts/faq")).json()
    assert fetched["tags"] == ["support", "faq"] and fetched["description"] == "FAQ"
    again = await gateway.admin.post(
        "/admin/prompts", json={"id": "faq", "name": "x", "content": "y"}
    )
    assert again.status_code == 409
    updated = await gateway.admin.put("/admin/prompts/faq", json=_replacement("New ${var:x}"))
    assert updated.json()["version"] == 2 and updated.json()["variables"][0]["name"] == "x"
    deleted = await gateway.admin.delete("/admin/prompts/faq")
    assert deleted.json() == {"id": "faq", "object": "prompt", "deleted": True}
    assert (await gateway.admin.get("/admin/prompts/faq")).status_code == 404
    assert (await gateway.admin.delete("/admin/prompts/faq")).status_code == 404
    for bad, field in (
        ({"id": "has space"}, "id"),
        ({"id": "x" * 51}, "id"),
        ({"content": ""}, "content"),
        ({"tags": ["no spaces allowed"]}, "tags[0]"),
        ({"extra": 1}, "extra"),
    ):
        response = await gateway.admin.post("/admin/prompts", json=ISSUE_PROMPT | bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["param"] == field


async def test_list_searches_by_name_and_tag_and_pages_after_an_id(gateway: Gateway) -> None:
    await _create(gateway, "billing-help", name="Billing Helper", tags=["support", "billing"])
    await _create(gateway, "sales-pitch", name="Sales pitch", tags=["sales"])
    await _create(gateway, "support-agent", name="Support agent", tags=["support"])
    await _create(gateway, "tech-help", name="Tech 100% helper", tags=["support", "tech"])
    await _create(gateway, "translator", name="Translator")

    async def ids(**params: Any) -> list[str]:
        response = await gateway.admin.get("/admin/prompts", params=params)
        assert response.status_code == 200, response.text
        return [prompt["id"] for prompt in response.json()["data"]]

    assert await ids(name="HELP") == ["billing-help", "tech-help"]
    assert await ids(name="100%") == ["tech-help"]  # LIKE wildcards are literal
    assert await ids(name="_") == []
    assert await ids(tag="support") == ["billing-help", "support-agent", "tech-help"]
    assert await ids(tag=["support", "tech"]) == ["tech-help"]
    assert await ids(name="help", tag="billing") == ["billing-help"]

    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 2} | ({"after": after} if after else {})
        page = (await gateway.admin.get("/admin/prompts", params=params)).json()
        seen += [prompt["id"] for prompt in page["data"]]
        assert page["first_id"] == page["data"][0]["id"]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == ["billing-help", "sales-pitch", "support-agent", "tech-help", "translator"]
    too_many = await gateway.admin.get("/admin/prompts", params={"limit": 101})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "limit"


async def test_every_update_keeps_the_previous_version(gateway: Gateway) -> None:
    await gateway.admin.post("/admin/prompts", json=ISSUE_PROMPT)
    for text in ("second ${var:x}", "third"):
        response = await gateway.admin.put("/admin/prompts/support", json=_replacement(text))
        assert response.status_code == 200
    history = (await gateway.admin.get("/admin/prompts/support/versions")).json()["data"]
    assert [v["version"] for v in history] == [3, 2, 1]
    assert [v["content"] for v in history] == ["third", "second ${var:x}", ISSUE_PROMPT["content"]]
    assert history[1]["variables"] == [{"name": "x", "default": None, "required": True}]
    older = await gateway.admin.get(
        "/admin/prompts/support/versions", params={"before": 3, "limit": 1}
    )
    assert [v["version"] for v in older.json()["data"]] == [2]
    first = (await gateway.admin.get("/admin/prompts/support/versions/1")).json()
    assert first["content"] == ISSUE_PROMPT["content"] and first["version"] == 1
    missing = await gateway.admin.get("/admin/prompts/support/versions/9")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "version_not_found"
    rendered_v1 = await gateway.admin.post(
        "/admin/prompts/support/render", json={"version": 1, "variables": {"tone": "kind"}}
    )
    assert rendered_v1.json()["content"] == "You help with our product. Be kind."


async def test_revert_makes_an_old_version_current_as_a_new_version(gateway: Gateway) -> None:
    await gateway.admin.post("/admin/prompts", json=ISSUE_PROMPT | {"tags": ["a"]})
    await gateway.admin.put("/admin/prompts/support", json=_replacement("v2", tags=["b"]))
    reverted = await gateway.admin.post("/admin/prompts/support/revert", json={"version": 1})
    assert reverted.status_code == 200, reverted.text
    current = reverted.json()
    assert current["version"] == 3
    assert current["content"] == ISSUE_PROMPT["content"] and current["tags"] == ["a"]
    assert current["variables"][1]["name"] == "tone"
    history = (await gateway.admin.get("/admin/prompts/support/versions")).json()["data"]
    assert [(v["version"], v["content"]) for v in history] == [
        (3, ISSUE_PROMPT["content"]),
        (2, "v2"),
        (1, ISSUE_PROMPT["content"]),
    ]
    stale = await gateway.admin.post(
        "/admin/prompts/support/revert", json={"version": 2}, headers={"if-match": "2"}
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    nowhere = await gateway.admin.post("/admin/prompts/support/revert", json={"version": 7})
    assert nowhere.status_code == 404
    no_prompt = await gateway.admin.post("/admin/prompts/ghost/revert", json={"version": 1})
    assert no_prompt.status_code == 404


async def test_concurrent_updates_one_wins_the_other_gets_409_and_nothing_is_lost(
    gateway: Gateway,
) -> None:
    await gateway.admin.post("/admin/prompts", json=ISSUE_PROMPT)
    writers = [f"writer {n} was here" for n in range(6)]
    responses = await asyncio.gather(
        *(
            gateway.admin.put(
                "/admin/prompts/support", json=_replacement(text), headers={"if-match": "1"}
            )
            for text in writers
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * 5
    [winner] = [r.json()["content"] for r in responses if r.status_code == 200]
    current = (await gateway.admin.get("/admin/prompts/support")).json()
    assert current["version"] == 2 and current["content"] == winner
    # A loser re-reads, then writes on top of the winner; both texts stay in the history.
    loser = next(t for t, r in zip(writers, responses, strict=True) if r.status_code == 409)
    retry = await gateway.admin.put(
        "/admin/prompts/support", json=_replacement(loser), headers={"if-match": "2"}
    )
    assert retry.status_code == 200 and retry.json()["version"] == 3
    history = (await gateway.admin.get("/admin/prompts/support/versions")).json()["data"]
    assert [v["content"] for v in history] == [loser, winner, ISSUE_PROMPT["content"]]


async def test_deleted_prompt_keeps_its_history_and_a_recreate_continues_it(
    gateway: Gateway,
) -> None:
    await gateway.admin.post("/admin/prompts", json=ISSUE_PROMPT)
    await gateway.admin.put("/admin/prompts/support", json=_replacement("v2"))
    await gateway.admin.delete("/admin/prompts/support")
    history = await gateway.admin.get("/admin/prompts/support/versions")
    assert [v["version"] for v in history.json()["data"]] == [2, 1]
    again = await gateway.admin.post("/admin/prompts", json=ISSUE_PROMPT)
    assert again.json()["version"] == 3
    never = await gateway.admin.get("/admin/prompts/never-existed/versions")
    assert never.status_code == 404 and never.json()["error"]["code"] == "prompt_not_found"


async def test_prompt_routes_need_the_admin_key(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as anonymous:
        for method, path in (
            ("GET", "/admin/prompts"),
            ("POST", "/admin/prompts"),
            ("GET", "/admin/prompts/support/versions"),
            ("POST", "/admin/prompts/support/render"),
            ("POST", "/admin/models/m/revert"),
            ("GET", "/admin/export"),
            ("POST", "/admin/import"),
        ):
            response = await anonymous.request(method, path, json={})
            assert response.status_code == 401, path


async def test_model_history_lists_reads_and_reverts_versions(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    created = await gateway.add_model("fast-chat", upstream, config={"temperature": 0.2})
    update = {k: v for k, v in created.items() if k not in ("id", "version", "created_at")}
    update.pop("updated_at")
    changed = await gateway.admin.put(
        "/admin/models/fast-chat", json=update | {"model": "gpt-4o", "config": {}}
    )
    assert changed.json()["version"] == 2
    history = (await gateway.admin.get("/admin/models/fast-chat/versions")).json()["data"]
    assert [(v["version"], v["model"]) for v in history] == [(2, "gpt-4o"), (1, "gpt-4o-mini")]
    first = (await gateway.admin.get("/admin/models/fast-chat/versions/1")).json()
    assert first["config"]["temperature"] == 0.2 and first["id"] == "fast-chat"
    stale = await gateway.admin.post(
        "/admin/models/fast-chat/revert", json={"version": 1}, headers={"if-match": "1"}
    )
    assert stale.status_code == 409
    reverted = await gateway.admin.post("/admin/models/fast-chat/revert", json={"version": 1})
    assert reverted.status_code == 200, reverted.text
    current = reverted.json()
    assert current["version"] == 3 and current["model"] == "gpt-4o-mini"
    assert current["config"]["temperature"] == 0.2
    # The revert takes effect for chat at once: the upstream sees the reverted model name.
    await gateway.openai().chat.completions.create(
        model="fast-chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert upstream.requests[-1].body["model"] == "gpt-4o-mini"
    assert upstream.requests[-1].body["temperature"] == 0.2
    missing = await gateway.admin.get("/admin/models/fast-chat/versions/8")
    assert missing.status_code == 404
    unknown = await gateway.admin.post("/admin/models/nobody/revert", json={"version": 1})
    assert unknown.status_code == 404


@pytest.mark.parametrize("body", [{}, {"version": 0}, {"version": "one"}, {"version": 1, "x": 1}])
async def test_revert_body_must_name_a_version(gateway: Gateway, body: dict[str, Any]) -> None:
    await gateway.admin.post("/admin/prompts", json=ISSUE_PROMPT)
    response = await gateway.admin.post("/admin/prompts/support/revert", json=body)
    assert response.status_code == 400
