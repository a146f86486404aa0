"""GET /admin/export and POST /admin/import: one document, all or nothing, no secrets."""

from __future__ import annotations

from typing import Any

import yaml

from tests.conftest import UPSTREAM_KEY, Gateway, _truncate
from tests.fakes.openai_upstream import FakeOpenAI

LONG_PROMPT = {
    "id": "support",
    "name": "Support agent",
    "description": "Answers customers",
    "tags": ["support", "en"],
    "content": (
        "You help with ${var:product:our product}.\n"
        "Be ${var:tone}.  \n\tPrices look like $$${var:price:9}, templates like $${var:x}.\n"
        "Ünïcode ✓ — 漢字\n"
    ),
}


async def _populate(gateway: Gateway, upstream: FakeOpenAI) -> None:
    await gateway.add_model(
        "fast-chat", upstream, config={"temperature": 0.2, "stop": ["\n\n"]}, description="d"
    )
    await gateway.add_model("off", upstream, enabled=False, stream_usage=False)
    await gateway.add_model("keyless", upstream, credential=None)
    short = {"id": "short", "name": "Short", "content": "Hi ${var:who},\nbye"}
    for prompt in (LONG_PROMPT, short):
        response = await gateway.admin.post("/admin/prompts", json=prompt)
        assert response.status_code == 201, response.text
    chain = {
        "id": "resilient",
        "name": "Resilient",
        "steps": [
            {"model_id": "fast-chat", "max_retries": 1, "max_latency_ms": 800},
            {"model_id": "keyless", "on_exhausted": "fail"},
        ],
    }
    response = await gateway.admin.post("/admin/chains", json=chain)
    assert response.status_code == 201, response.text


async def _export(gateway: Gateway) -> dict[str, Any]:
    response = await gateway.admin.get("/admin/export")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    return dict(response.json())


async def test_export_imported_into_an_empty_gateway_reproduces_the_configuration(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await _populate(gateway, upstream)
    exported = await _export(gateway)
    as_yaml = await gateway.admin.get("/admin/export", headers={"accept": "application/yaml"})
    assert as_yaml.headers["content-type"] == "application/yaml"
    assert yaml.safe_load(as_yaml.text) == exported
    # Multi-line prompts stay readable in git (text with trailing blanks is quoted instead).
    assert "content: |-\n    Hi ${var:who},\n    bye\n" in as_yaml.text
    assert as_yaml.text.startswith("version: 1\nmodels:\n- id: fast-chat\n")
    assert UPSTREAM_KEY not in as_yaml.text
    assert exported["version"] == 1
    assert [m["id"] for m in exported["models"]] == ["fast-chat", "keyless", "off"]
    assert exported["models"][0]["credential"] == {"source": "env", "name": "UPSTREAM_TEST_API_KEY"}
    assert "version" not in exported["prompts"][1] and "variables" not in exported["prompts"][1]

    await _truncate(gateway.runtime)
    gateway.runtime.storage.model_cache.invalidate()
    gateway.runtime.storage.chain_cache.invalidate()
    assert (await _export(gateway)) == {"version": 1, "models": [], "chains": [], "prompts": []}
    imported = await gateway.admin.post(
        "/admin/import", content=as_yaml.text, headers={"content-type": "application/yaml"}
    )
    assert imported.status_code == 200, imported.text
    report = imported.json()
    assert report["models"]["created"] == ["fast-chat", "keyless", "off"]
    assert report["prompts"]["created"] == ["short", "support"]
    assert report["chains"]["created"] == ["resilient"]
    assert (await _export(gateway)) == exported
    assert exported["chains"][0]["steps"][1]["on_exhausted"] == "fail"
    prompt = (await gateway.admin.get("/admin/prompts/support")).json()
    assert prompt["content"] == LONG_PROMPT["content"] and prompt["version"] == 1
    # The imported model and chain serve chat at once.
    for name in ("fast-chat", "resilient"):
        completion = await gateway.openai().chat.completions.create(
            model=name, messages=[{"role": "user", "content": "ok"}]
        )
        assert completion.choices[0].message.content == "echo: ok"


async def test_import_with_several_errors_reports_all_and_changes_nothing(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await _populate(gateway, upstream)
    before = await _export(gateway)
    document = {
        "version": 2,
        "workflows": [],
        "models": [
            {"id": "brand-new", "provider": "openai", "model": "gpt-4o"},
            {"id": "hot", "provider": "openai", "model": "m", "config": {"temperature": 5}},
            {"id": "brand-new", "provider": "openai", "model": "again"},
            {"id": "sneaky", "provider": "openai", "model": "m", "credential": {"name": "PMP_X"}},
        ],
        "prompts": [
            {"id": "fine", "name": "Fine", "content": "ok"},
            {"id": "broken", "name": "Broken", "content": "Hi ${var:bad name} ${var:"},
            {"name": "No id", "content": "x"},
        ],
    }
    response = await gateway.admin.post("/admin/import", json=document)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    message = error["message"]
    assert message.startswith("the configuration has 8 problems:")
    for expected in (
        "version: must be 1, got 2",
        "workflows: unknown section",
        "models[1] (hot): config.temperature: Input should be less than or equal to 2",
        "models[2] (brand-new): duplicate id (also models[0])",
        "models[3] (sneaky): credential: Value error, PMP_* variables",
        "prompts[1] (broken): content: `${var:bad name}` at line 1, column 4",
        "prompts[1] (broken): content: `${var:` at line 1, column 20: has no closing",
        "prompts[2]: id: Field required",
    ):
        assert expected in message, expected
    assert (await _export(gateway)) == before


async def test_import_updates_what_changed_and_prunes_only_when_asked(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await _populate(gateway, upstream)
    document = await _export(gateway)
    again = (await gateway.admin.post("/admin/import", json=document)).json()
    assert again["models"]["unchanged"] == ["fast-chat", "keyless", "off"]
    assert again["prompts"]["unchanged"] == ["short", "support"]
    assert again["models"]["created"] == again["prompts"]["updated"] == []

    document["prompts"] = [p | {"content": "Changed"} for p in document["prompts"][1:]]
    document["models"] = document["models"][:2]
    dry = await gateway.admin.post("/admin/import?prune=true&dry_run=true", json=document)
    assert dry.json()["dry_run"] is True and dry.json()["models"]["deleted"] == ["off"]
    assert (await gateway.admin.get("/admin/models/off")).status_code == 200

    merged = (await gateway.admin.post("/admin/import", json=document)).json()
    assert merged["prompts"]["updated"] == ["support"] and merged["models"]["deleted"] == []
    support = (await gateway.admin.get("/admin/prompts/support")).json()
    assert support["content"] == "Changed" and support["version"] == 2
    assert (await gateway.admin.get("/admin/models/off")).status_code == 200

    pruned = (await gateway.admin.post("/admin/import?prune=true", json=document)).json()
    assert pruned["models"]["deleted"] == ["off"] and pruned["prompts"]["deleted"] == ["short"]
    assert (await gateway.admin.get("/admin/models/off")).status_code == 404
    assert (await gateway.admin.get("/admin/prompts/short")).status_code == 404


async def test_a_write_that_fails_mid_import_rolls_back_every_earlier_write(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("base", upstream)
    chain = {"id": "taken", "name": "Taken", "steps": [{"model_id": "base"}]}
    assert (await gateway.admin.post("/admin/chains", json=chain)).status_code == 201
    before = await _export(gateway)
    document = {
        "version": 1,
        "models": [
            {"id": "aaa-first", "provider": "openai", "model": "gpt-4o"},
            {"id": "taken", "provider": "openai", "model": "gpt-4o"},  # a chain's id
        ],
        "prompts": [{"id": "p", "name": "P", "content": "x"}],
    }
    response = await gateway.admin.post("/admin/import", json=document)
    assert response.status_code == 409, response.text
    assert "taken" in response.json()["error"]["message"]
    assert (await _export(gateway)) == before
    assert (await gateway.admin.get("/admin/models/aaa-first")).status_code == 404


async def test_unreadable_documents_are_400(gateway: Gateway) -> None:
    for content, content_type, expected in (
        ("models: [", "application/yaml", "not valid YAML"),
        ('{"version": 1,', "application/json", "not valid JSON"),
        ("- just a list", "application/yaml", "must be a mapping"),
        ("", "application/yaml", "must be a mapping"),
    ):
        response = await gateway.admin.post(
            "/admin/import", content=content, headers={"content-type": content_type}
        )
        assert response.status_code == 400, content
        assert expected in response.json()["error"]["message"]
    json_as_yaml = await gateway.admin.post(
        "/admin/import",
        content='{"version": 1, "prompts": [{"id": "j", "name": "J", "content": "x"}]}',
        headers={"content-type": "text/plain"},
    )
    assert json_as_yaml.json()["prompts"]["created"] == ["j"]
