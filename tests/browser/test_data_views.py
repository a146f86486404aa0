"""Chains, credentials, knowledge bases and workflows through their views."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from tests.browser.conftest import UiStack, sign_in, unique


async def test_a_chain_is_built_from_ordered_steps(page: Page, ui_stack: UiStack) -> None:
    first, second = await ui_stack.add_model("first"), await ui_stack.add_model("second")
    chain_id = unique("ui-chain")
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="Chains").click()
    await page.get_by_role("button", name="New chain").click()
    form = page.get_by_role("form", name="Chain")
    await form.get_by_label("Id", exact=True).fill(chain_id)
    await form.get_by_label("Name", exact=True).fill("Two steps")
    await form.get_by_label("Model").select_option(first)
    await form.get_by_role("button", name="Add step").click()
    await form.get_by_label("Model").nth(1).select_option(second)
    await form.get_by_role("button", name="Move step 2 up").click()
    await form.get_by_role("button", name="Save chain").click()
    row = page.locator(f"tr[data-chain='{chain_id}']")
    await expect(row).to_contain_text(f"{second} → {first}")
    stored = (await ui_stack.gateway.admin.get(f"/admin/chains/{chain_id}")).json()
    assert [step["model_id"] for step in stored["steps"]] == [second, first]


async def test_credential_sources_show_their_state_and_users(page: Page, ui_stack: UiStack) -> None:
    model_id = await ui_stack.add_model("cred")
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="Credentials").click()
    env = page.locator("tr[data-source='env']")
    await expect(env).to_contain_text(model_id)


async def test_a_knowledge_base_takes_an_upload_and_answers_a_search(
    page: Page, ui_stack: UiStack, tmp_path: Path
) -> None:
    embedder = unique("embed")
    created = await ui_stack.gateway.admin.post(
        "/admin/models",
        json={"id": embedder, "provider": "local", "model": "wordllama", "kind": "embedding",
              "dimensions": 64},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    kb_id = unique("ui-kb")
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="Knowledge bases").click()
    await page.get_by_role("button", name="New knowledge base").click()
    form = page.get_by_role("form", name="Knowledge base")
    await form.get_by_label("Id", exact=True).fill(kb_id)
    await form.get_by_label("Name", exact=True).fill("Docs")
    await form.get_by_label("Embedding model").select_option(embedder)
    await form.get_by_role("button", name="Create knowledge base").click()
    await page.locator(f"tr[data-kb='{kb_id}']").get_by_role("link", name=kb_id).click()

    notes = tmp_path / "refunds.md"
    notes.write_text(
        "# Refunds\n\nRefunds are paid within five days.\n\n# Shipping\n\nParcels ship daily.\n"
    )
    upload = page.get_by_role("form", name="Upload files")
    await upload.get_by_label("Files").set_input_files(str(notes))
    await upload.get_by_role("button", name="Upload and ingest").click()
    await expect(page.locator("[data-fact=ingestion-status]")).to_have_text("completed")
    await expect(page.get_by_text("refunds.md: ingested")).to_be_visible()

    search = page.get_by_role("form", name="Search")
    await search.get_by_label("Query").fill("how long do refunds take")
    await search.get_by_role("button", name="Search").click()
    results = page.get_by_role("table", name="Search results")
    await expect(results.locator("tbody tr").first).to_contain_text("Refunds are paid")
    await expect(results).to_contain_text('"source":"refunds.md"')

    await page.get_by_label("Document filter (JSON)").fill(
        '{"field": "source", "operator": "eq", "value": "other.md"}'
    )
    await page.get_by_role("form", name="Filter documents").get_by_role("button").click()
    await expect(page.get_by_role("table", name="Documents")).to_contain_text("No documents.")


async def test_a_workflow_shows_save_errors_and_runs_step_by_step(
    page: Page, ui_stack: UiStack
) -> None:
    model_id = await ui_stack.add_model("wf")
    workflow_id = unique("ui-flow")
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="Workflows").click()
    await page.get_by_role("button", name="New workflow").click()
    editor = page.get_by_label("Definition (JSON)")
    definition = (
        '{"id": "%s", "name": "Ask", "input_schema": {"type": "object", "properties":'
        ' {"question": {"type": "string"}}, "required": ["question"]},'
        ' "steps": [{"name": "answer", "type": "chat_completion", "model_id": "%s",'
        ' "user_message": "${request:question} ${step:later:content}"}]}'
    )
    await editor.fill(definition % (workflow_id, "no-such-model"))
    await page.get_by_role("button", name="Save workflow").click()
    problems = page.locator("ul.problems li")
    await expect(problems.first).to_contain_text("steps[0]")
    assert (await ui_stack.gateway.admin.get(f"/admin/workflows/{workflow_id}")).status_code == 404

    fixed = (definition % (workflow_id, model_id)).replace(" ${step:later:content}", "")
    await editor.fill(fixed)
    await page.get_by_role("button", name="Save workflow").click()
    await (
        page.locator(f"tr[data-workflow='{workflow_id}']")
        .get_by_role("link", name=workflow_id)
        .click()
    )
    run_form = page.get_by_role("form", name="Execute workflow")
    await run_form.get_by_label("question (required)").fill("what is up")
    await run_form.get_by_role("button", name="Execute").click()
    await expect(page.locator("[data-fact=run-status]")).to_have_text("completed")
    await expect(page.locator("ol.steps li").first).to_contain_text("answer")
    await expect(page.locator("ol.steps li").first).to_contain_text("echo: what is up")


async def test_a_paused_workflow_takes_its_input_from_the_run_view(
    page: Page, ui_stack: UiStack
) -> None:
    model_id = await ui_stack.add_model("wait")
    workflow_id = unique("ui-wait")
    definition = {
        "id": workflow_id,
        "name": "Approve, then answer",
        "steps": [
            {"name": "approve", "type": "wait_for_input", "timeout_s": 300,
             "input_schema": {"type": "object", "properties": {"ok": {"type": "boolean"}},
                              "required": ["ok"]}},
            {"name": "answer", "type": "chat_completion", "model_id": model_id,
             "user_message": "approved ${step:approve:input.ok}"},
        ],
    }  # fmt: skip
    saved = await ui_stack.gateway.admin.post("/admin/workflows", json=definition)
    assert saved.status_code == 201, saved.text
    await sign_in(page, ui_stack)
    await page.goto(ui_stack.ui_url + "#/workflows")
    await (
        page.locator(f"tr[data-workflow='{workflow_id}']")
        .get_by_role("link", name=workflow_id)
        .click()
    )
    await (
        page.get_by_role("form", name="Execute workflow")
        .get_by_role("button", name="Execute")
        .click()
    )
    waiting = page.get_by_role("form", name="Input for approve")
    await expect(waiting).to_be_visible()
    await expect(page.locator("[data-fact=run-status]")).to_have_text("running")
    await waiting.get_by_label("approve is waiting for input").fill('{"ok": "yes"}')
    await waiting.get_by_role("button", name="Send input").click()
    await expect(waiting.get_by_role("alert")).to_contain_text("ok")  # refused by its schema
    await waiting.get_by_label("approve is waiting for input").fill('{"ok": true}')
    await waiting.get_by_role("button", name="Send input").click()
    await expect(page.locator("[data-fact=run-status]")).to_have_text("completed")
    await expect(page.locator("ol.steps")).to_contain_text("echo: approved true")
