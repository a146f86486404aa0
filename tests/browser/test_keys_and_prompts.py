"""API keys (the secret shown once) and prompts (variables found live, render preview)."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, expect

from tests.browser.conftest import ARTIFACTS, UiStack, sign_in, unique


async def test_a_new_key_shows_its_secret_once_and_the_secret_works(
    page: Page, ui_stack: UiStack
) -> None:
    key_id = unique("ui-key")
    model_id = await ui_stack.add_model("allowed")
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="API keys").click()
    await page.get_by_role("button", name="New key").click()
    form = page.get_by_role("form", name="API key")
    await form.get_by_label("Id", exact=True).fill(key_id)
    await form.get_by_label("Name", exact=True).fill("From the UI")
    await form.get_by_label("models", exact=True).select_option("list")
    await form.get_by_label("models ids, comma-separated").fill(model_id)
    await form.get_by_label("Requests / minute").fill("30")
    await form.get_by_role("button", name="Create key").click()

    secret_box = page.get_by_label("New API key")
    await expect(secret_box).to_have_value(re.compile(r"^pk_live_\S{20,}$"))
    secret = await secret_box.input_value()
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.get_by_role("button", name="Copy", exact=True).click()
    await expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert await page.evaluate("() => navigator.clipboard.readText()") == secret

    stored = (await ui_stack.gateway.admin.get(f"/admin/api-keys/{key_id}")).json()
    assert stored["permissions"]["models"] == [model_id]
    assert stored["rate_limits"]["requests_per_minute"] == 30
    async with httpx.AsyncClient(base_url=ui_stack.gateway.base_url) as client:
        listed = await client.get("/v1/models", headers={"authorization": f"Bearer {secret}"})
    assert [card["id"] for card in listed.json()["data"]] == [model_id]

    await page.screenshot(path=str(ARTIFACTS / "keys-secret-shown.png"), full_page=True)
    await page.get_by_role("button", name="I have stored it, hide it").click()
    await expect(secret_box).to_have_count(0)
    await page.reload()
    await page.get_by_role("table", name="API keys").locator(f"tr[data-key='{key_id}']").wait_for()
    assert secret not in await page.content()  # listed by prefix, never again in full


async def test_a_prompt_shows_its_variables_while_typed_and_renders(
    page: Page, ui_stack: UiStack
) -> None:
    prompt_id = unique("ui-prompt")
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="Prompts").click()
    await page.get_by_role("button", name="New prompt").click()
    form = page.get_by_role("form", name="Prompt")
    await form.get_by_label("Id", exact=True).fill(prompt_id)
    await form.get_by_label("Name", exact=True).fill("Support")
    content = form.get_by_label("Content")
    await content.fill("Help with ${var:product:our product}. Be ${var:tone}.")
    variables = form.locator(".vars")
    await expect(variables).to_contain_text("product = our product")
    await expect(variables).to_contain_text("tone (required)")
    await content.fill("Be ${var:tone} about ${var:topic}.")
    await expect(variables).to_contain_text("topic (required)")
    await expect(variables).not_to_contain_text("product")
    await form.get_by_role("button", name="Save prompt").click()

    preview = page.get_by_role("form", name="Render preview")
    await preview.get_by_label("tone (required)").fill("brief")
    await preview.get_by_role("button", name="Render").click()
    await expect(page.get_by_role("alert").filter(has_text="topic")).to_be_visible()
    await preview.get_by_label("topic (required)").fill("refunds")
    await preview.get_by_role("button", name="Render").click()
    await expect(page.get_by_label("Rendered prompt")).to_have_text("Be brief about refunds.")


async def test_a_key_is_suspended_activated_rotated_and_revoked(
    page: Page, ui_stack: UiStack
) -> None:
    key_id = unique("life")
    body = {"id": key_id, "name": "Lifecycle", "permissions": {"models": "all"}}
    first_secret = (await ui_stack.gateway.admin.post("/admin/api-keys", json=body)).json()["key"]
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="API keys").click()
    row = page.locator(f"tr[data-key='{key_id}']")
    page.on("dialog", lambda dialog: dialog.accept())
    await row.get_by_role("button", name="Suspend").click()
    await expect(row).to_contain_text("suspended")
    await row.get_by_role("button", name="Activate").click()
    await expect(row).to_contain_text("active")
    await row.get_by_role("button", name="Rotate").click()
    rotated = await page.get_by_label("New API key").input_value()
    assert rotated.startswith("pk_live_") and rotated != first_secret
    await row.get_by_role("button", name="Usage").click()
    await expect(page.get_by_role("heading", name=f"Usage of {key_id}")).to_be_visible()
    await row.get_by_role("button", name="Revoke").click()
    await expect(row).to_contain_text("revoked")
    assert (await ui_stack.gateway.admin.get(f"/admin/api-keys/{key_id}")).json()["status"] == (
        "revoked"
    )
