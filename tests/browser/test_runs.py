"""Calls and runs: the playground streams, operations cancel, run links open the run."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.conftest import UiStack, sign_in, unique
from tests.fakes.openai_upstream import Scenario

# Collects every text the last assistant turn showed, so a test can tell a stream that
# grew word by word from an answer that appeared at once.
WATCH_REPLY = """() => {
  window.seenReplies = [];
  const turns = document.querySelector('ol.turns');
  new MutationObserver(() => {
    const replies = turns.querySelectorAll('li.assistant .content');
    const last = replies[replies.length - 1];
    if (last) window.seenReplies.push(last.textContent);
  }).observe(turns, {subtree: true, childList: true, characterData: true});
}"""


async def test_the_playground_streams_token_by_token_and_links_the_run(
    page: Page, ui_stack: UiStack
) -> None:
    model_id = await ui_stack.add_model("play")
    words = "one two three four five six"
    ui_stack.upstream.enqueue(Scenario(content=words, chunk_delay_s=0.15))
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="Playground").click()
    await page.get_by_label("Model or chain").select_option(model_id)
    await page.get_by_label("System prompt").fill("Count.")
    await page.get_by_label("Max tokens").fill("50")
    await page.evaluate(WATCH_REPLY)
    await page.get_by_label("Message", exact=True).fill("count to six")
    await page.get_by_role("button", name="Send").click()

    reply = page.locator("ol.turns li.assistant .content").last
    await expect(reply).to_have_text(words)
    seen = await page.evaluate("() => window.seenReplies")
    partial = {text for text in seen if text and text != words}
    assert len(partial) >= 3, seen  # it grew in steps, not all at once
    assert all(words.startswith(text) for text in partial)
    facts = page.get_by_role("definition").filter(has_text=model_id)
    await expect(facts.first).to_be_visible()  # served by
    await expect(page.locator("[data-fact=chunks]")).to_have_text("6")
    sent = ui_stack.upstream.requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "Count."}
    assert sent["stream"] is True
    assert sent["max_tokens"] == 50

    # The run link opens the run in the Temporal Web UI (here a stand-in on loopback).
    link = page.locator(".runfacts a.runlink")
    run_id = await link.inner_text()
    assert run_id.startswith("chat-")
    assert run_id in (await link.get_attribute("href") or "")
    async with page.context.expect_page() as opened:
        await link.click()
    temporal_page = await opened.value
    await temporal_page.wait_for_load_state()
    assert temporal_page.url.startswith(ui_stack.temporal_ui.root_url)
    assert temporal_page.url.endswith(f"/namespaces/default/workflows/{run_id}")
    await expect(temporal_page.get_by_role("heading")).to_contain_text(run_id)


async def test_an_async_operation_is_cancelled_from_the_operations_view(
    page: Page, ui_stack: UiStack
) -> None:
    model_id = await ui_stack.add_model("slow")
    ui_stack.upstream.enqueue(Scenario(hang=True))
    started = await ui_stack.gateway.admin.post(
        "/v1/chat/completions?async=true",
        json={"model": model_id, "messages": [{"role": "user", "content": "take your time"}]},
    )
    assert started.status_code == 202, started.text
    operation_id = started.json()["operation_id"]

    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="Operations").click()
    row = page.locator(f"tr[data-operation='{operation_id}']")
    await expect(row.get_by_role("link", name="Run")).to_have_attribute(
        "href", f"{ui_stack.temporal_ui.root_url}/namespaces/default/workflows/{operation_id}"
    )
    await row.get_by_role("link", name=operation_id).click()
    await expect(page.locator("[data-fact=status]")).to_have_text("running")
    page.once("dialog", lambda dialog: dialog.accept())
    await row.get_by_role("button", name=f"Cancel {operation_id}").click()
    # The gateway answers the cancel once the run ended (it waits up to 10 s for that).
    await expect(page.get_by_text("Cancelling…")).to_be_visible()
    await expect(page.locator("[data-fact=status]")).to_have_text("cancelled", timeout=30_000)
    await expect(row).to_contain_text("cancelled")
    described = await ui_stack.gateway.admin.get(f"/v1/operations/{operation_id}")
    assert described.json()["status"] == "cancelled"

    await page.get_by_label("Status").select_option("cancelled")
    await expect(row).to_be_visible()
    await page.get_by_label("Status").select_option("completed")
    await expect(row).to_have_count(0)


async def test_the_playground_sends_a_stored_prompt_with_its_variables(
    page: Page, ui_stack: UiStack
) -> None:
    model_id = await ui_stack.add_model("prompted")
    prompt_id = unique("sys")
    body = {"id": prompt_id, "name": "Tone", "content": "Answer ${var:tone}."}
    assert (await ui_stack.gateway.admin.post("/admin/prompts", json=body)).status_code == 201
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="Playground").click()
    await page.get_by_label("Model or chain").select_option(model_id)
    await page.get_by_label("Stored prompt").check()
    await page.get_by_label("Prompt id").fill(prompt_id)
    await page.get_by_label("Variables (JSON)").fill("{not json")
    await page.get_by_label("Message", exact=True).fill("hi")
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_text("Variables must be a JSON object.")).to_be_visible()

    await page.get_by_label("Variables (JSON)").fill('{"tone": "briefly"}')
    await page.get_by_label("Stream tokens").uncheck()
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("ol.turns li.assistant .content")).to_have_text("echo: hi")
    await expect(page.locator("[data-fact=cache]")).to_have_text("bypass")
    await expect(page.locator("[data-fact=attempts]")).to_have_text("1")
    sent = ui_stack.upstream.requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert "stream" not in sent or sent["stream"] is False
