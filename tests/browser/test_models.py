"""Models through the forms: create, edit, disable, versions, test call, delete."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.conftest import UiStack, sign_in, unique
from tests.conftest import UPSTREAM_KEY_ENV


async def test_a_model_is_created_through_the_form_checked_before_and_after_sending(
    page: Page, ui_stack: UiStack
) -> None:
    model_id = unique("ui-model")
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="Models").click()
    await page.get_by_role("button", name="New model").click()
    form = page.get_by_role("form", name="Model")

    # Checked before sending: nothing is written without the required fields.
    await form.get_by_role("button", name="Save model").click()
    assert await form.get_by_label("Id", exact=True).evaluate("el => el.validity.valueMissing")

    await form.get_by_label("Id", exact=True).fill(model_id)
    await form.get_by_label("Upstream model").fill("gpt-4o-mini")
    await form.get_by_label("Base URL").fill(ui_stack.upstream.base_url)
    await form.get_by_label("Credential source").select_option("env")
    # The API refuses the gateway's own settings as credentials (param `credential`):
    # its message is shown at that field.
    await form.get_by_label("Environment variable").fill("PMP_ADMIN_KEY")
    await form.get_by_role("button", name="Save model").click()
    field_error = form.locator(".field", has_text="Credential source").locator("small")
    await expect(field_error).to_contain_text("PMP_* variables are the gateway's own settings")
    await expect(form.get_by_label("Credential source")).to_have_attribute("aria-invalid", "true")
    assert (await ui_stack.gateway.admin.get(f"/admin/models/{model_id}")).status_code == 404

    await form.get_by_label("Environment variable").fill(UPSTREAM_KEY_ENV)
    await form.get_by_label("Temperature").fill("0.3")
    await form.get_by_role("button", name="Save model").click()
    row = page.locator(f"tr[data-model='{model_id}']")
    await expect(row).to_contain_text("gpt-4o-mini")
    stored = (await ui_stack.gateway.admin.get(f"/admin/models/{model_id}")).json()
    assert stored["credential"] == {"source": "env", "name": UPSTREAM_KEY_ENV}
    assert stored["config"]["temperature"] == 0.3


async def test_a_model_is_edited_switched_compared_tried_and_deleted(
    page: Page, ui_stack: UiStack
) -> None:
    model_id = await ui_stack.add_model("ui-edit")
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="Models").click()
    form = page.get_by_role("form", name="Model")
    row = page.locator(f"tr[data-model='{model_id}']")
    await row.get_by_role("button", name=f"Edit {model_id}").click()
    await form.get_by_label("Upstream model").fill("gpt-4.1-mini")
    await form.get_by_role("button", name="Save model").click()
    await expect(row).to_contain_text("gpt-4.1-mini")
    await expect(row.locator("td").nth(4)).to_have_text("2")

    await row.get_by_role("button", name=f"Disable {model_id}").click()
    await expect(row).to_contain_text("disabled")
    disabled = await ui_stack.gateway.admin.get(f"/admin/models/{model_id}")
    assert disabled.json()["enabled"] is False
    await row.get_by_role("button", name=f"Enable {model_id}").click()
    await expect(row).to_contain_text("enabled")

    # Details: versions with a diff, and a test call through the real chat path.
    await row.get_by_role("link", name=model_id).click()
    versions = page.get_by_role("table", name="Model versions")
    first_version = versions.locator("tr").filter(
        has=page.get_by_role("cell", name="1", exact=True)
    )
    await first_version.get_by_role("button", name="Diff with current").click()
    diff = page.get_by_role("table", name="Differences")
    await expect(diff).to_contain_text("gpt-4.1-mini")
    await expect(diff).to_contain_text("gpt-4o-mini")
    await page.get_by_label("Message", exact=True).fill("ping")
    await page.get_by_role("button", name="Send test call").click()
    await expect(page.locator(".testresult")).to_contain_text("echo: ping")
    await expect(page.locator(".testresult")).to_contain_text(f"served by {model_id}")

    page.once("dialog", lambda dialog: dialog.accept())
    await row.get_by_role("button", name=f"Delete {model_id}").click()
    await expect(row).to_have_count(0)
    assert (await ui_stack.gateway.admin.get(f"/admin/models/{model_id}")).status_code == 404


async def test_a_destructive_action_needs_confirmation(page: Page, ui_stack: UiStack) -> None:
    model_id = await ui_stack.add_model("keep")
    await sign_in(page, ui_stack)
    await page.goto(ui_stack.ui_url + "#/models")
    row = page.locator(f"tr[data-model='{model_id}']")
    page.once("dialog", lambda dialog: dialog.dismiss())
    await row.get_by_role("button", name=f"Delete {model_id}").click()
    await expect(row).to_have_count(1)
    assert (await ui_stack.gateway.admin.get(f"/admin/models/{model_id}")).status_code == 200


async def test_provider_fields_show_for_their_provider_and_a_model_level_error_above_the_form(
    page: Page, ui_stack: UiStack
) -> None:
    await sign_in(page, ui_stack)
    await page.get_by_role("link", name="Models").click()
    await page.get_by_role("button", name="New model").click()
    form = page.get_by_role("form", name="Model")
    region = form.get_by_label("Region")
    await expect(region).to_be_hidden()
    await form.get_by_label("Provider").select_option("bedrock")
    await expect(region).to_be_visible()
    await form.get_by_label("Id", exact=True).fill(unique("br"))
    await form.get_by_label("Upstream model").fill("anthropic.claude-3-haiku")
    await form.get_by_role("button", name="Save model").click()
    # "bedrock needs region" concerns the whole model (no `param`): shown above the form.
    await expect(form.get_by_role("alert").first).to_contain_text("bedrock needs region")
