"""The shared versioned-entity routes: chain history and revert, cursor paging of lists."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.fakes.openai_upstream import FakeOpenAI

MESSAGES = [{"role": "user", "content": "hi"}]


def _chain(*model_ids: str, name: str = "Chain") -> dict[str, Any]:
    return {"name": name, "steps": [{"model_id": m, "max_retries": 0} for m in model_ids]}


async def _two_models_and_a_chain(gateway: Gateway, upstream: FakeOpenAI) -> None:
    await gateway.add_model("first", upstream, model="model-one")
    await gateway.add_model("second", upstream, model="model-two")
    created = await gateway.admin.post("/admin/chains", json={"id": "duo"} | _chain("first"))
    assert created.status_code == 201, created.text


async def test_chain_history_lists_reads_and_reverts_versions(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await _two_models_and_a_chain(gateway, upstream)
    changed = await gateway.admin.put("/admin/chains/duo", json=_chain("second", name="Two"))
    assert changed.status_code == 200 and changed.json()["version"] == 2
    history = (await gateway.admin.get("/admin/chains/duo/versions")).json()["data"]
    assert [(v["version"], v["steps"][0]["model_id"]) for v in history] == [
        (2, "second"),
        (1, "first"),
    ]
    older = await gateway.admin.get("/admin/chains/duo/versions", params={"before": 2})
    assert [v["version"] for v in older.json()["data"]] == [1]
    first = (await gateway.admin.get("/admin/chains/duo/versions/1")).json()
    assert first["id"] == "duo" and first["name"] == "Chain"
    stale = await gateway.admin.post(
        "/admin/chains/duo/revert", json={"version": 1}, headers={"if-match": "1"}
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    await gateway.openai().chat.completions.create(model="duo", messages=MESSAGES)
    assert upstream.requests[-1].body["model"] == "model-two"
    # Chat now holds version 2 in its cache; the revert must reach it at once.
    reverted = await gateway.admin.post(
        "/admin/chains/duo/revert", json={"version": 1}, headers={"if-match": "2"}
    )
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["version"] == 3 and reverted.json()["name"] == "Chain"
    await gateway.openai().chat.completions.create(model="duo", messages=MESSAGES)
    assert upstream.requests[-1].body["model"] == "model-one"


async def test_chain_history_errors_name_what_is_missing(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await _two_models_and_a_chain(gateway, upstream)
    missing = await gateway.admin.get("/admin/chains/duo/versions/9")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "version_not_found"
    nowhere = await gateway.admin.post("/admin/chains/duo/revert", json={"version": 9})
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "version_not_found"
    never = await gateway.admin.get("/admin/chains/never/versions")
    assert never.status_code == 404 and never.json()["error"]["code"] == "chain_not_found"
    # A deleted chain keeps its history, and a re-created one continues it.
    await gateway.admin.delete("/admin/chains/duo")
    kept = await gateway.admin.get("/admin/chains/duo/versions")
    assert [v["version"] for v in kept.json()["data"]] == [1]
    again = await gateway.admin.post("/admin/chains", json={"id": "duo"} | _chain("second"))
    assert again.json()["version"] == 2


async def test_chain_revert_is_validated_like_an_update(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await _two_models_and_a_chain(gateway, upstream)
    await gateway.admin.put("/admin/chains/duo", json=_chain("second"))
    first = (await gateway.admin.get("/admin/models/first")).json()
    disabled = {k: v for k, v in first.items() if k not in ("id", "version")}
    for stamp in ("created_at", "updated_at"):
        disabled.pop(stamp)
    response = await gateway.admin.put("/admin/models/first", json=disabled | {"enabled": False})
    assert response.status_code == 200, response.text
    refused = await gateway.admin.post("/admin/chains/duo/revert", json={"version": 1})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_model"
    assert "'first' is disabled" in refused.json()["error"]["message"]
    current = (await gateway.admin.get("/admin/chains/duo")).json()
    assert current["version"] == 2 and current["steps"][0]["model_id"] == "second"


async def test_concurrent_chain_updates_with_one_expected_version_one_wins(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await _two_models_and_a_chain(gateway, upstream)
    responses = await asyncio.gather(
        *(
            gateway.admin.put(
                "/admin/chains/duo", json=_chain("second", name=f"w{n}"), headers={"if-match": "1"}
            )
            for n in range(5)
        )
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 4
    history = (await gateway.admin.get("/admin/chains/duo/versions")).json()["data"]
    assert [v["version"] for v in history] == [2, 1]


async def _page_through(gateway: Gateway, path: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"after": after} if after else {})
        response = await gateway.admin.get(path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids = [item["id"] for item in page["data"]]
        pages.append(ids)
        assert (page["first_id"], page["last_id"]) == (ids[0], ids[-1])
        if not page["has_more"]:
            return pages
        after = page["last_id"]


@pytest.mark.parametrize("kind", ["models", "chains"])
async def test_model_and_chain_lists_page_by_cursor(
    gateway: Gateway, upstream: FakeOpenAI, kind: str
) -> None:
    await gateway.add_model("base", upstream)
    names = ["e-five", "a-one", "d-four", "c-three", "b-two"]
    for name in names:
        if kind == "models":
            await gateway.add_model(name, upstream)
        else:
            body = {"id": name} | _chain("base")
            assert (await gateway.admin.post("/admin/chains", json=body)).status_code == 201
    expected = sorted(names + (["base"] if kind == "models" else []))
    pages = await _page_through(gateway, f"/admin/{kind}", limit=2)
    assert pages == [expected[i : i + 2] for i in range(0, len(expected), 2)]
    everything = (await gateway.admin.get(f"/admin/{kind}")).json()
    assert [item["id"] for item in everything["data"]] == expected
    assert everything["has_more"] is False
    too_many = await gateway.admin.get(f"/admin/{kind}", params={"limit": 501})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "limit"
