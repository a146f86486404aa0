"""Signing in: the key is checked, kept in sessionStorage only, and a dead key signs out."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.conftest import UiStack, sign_in, unique
from tests.conftest import ADMIN_KEY


async def test_a_wrong_key_is_refused_and_the_right_one_kept_in_session_storage_only(
    page: Page, ui_stack: UiStack
) -> None:
    await page.goto(ui_stack.gateway.base_url + "/")
    assert page.url == ui_stack.ui_url  # the root redirects to the UI
    await page.get_by_label("API key").fill("pk_live_not-a-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("This key was refused")

    await page.get_by_label("API key").fill(ADMIN_KEY)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    stored = await page.evaluate(
        "() => [sessionStorage.getItem('pmp-api-key'), localStorage.length, document.cookie]"
    )
    assert stored == [ADMIN_KEY, 0, ""]
    assert await page.context.cookies() == []


async def test_a_key_suspended_mid_session_returns_to_sign_in(
    page: Page, ui_stack: UiStack
) -> None:
    key_id = unique("k")
    created = await ui_stack.gateway.admin.post(
        "/admin/api-keys",
        json={"id": key_id, "name": key_id, "permissions": {"models": "all"}},
    )
    assert created.status_code == 201, created.text
    await sign_in(page, ui_stack, created.json()["key"])
    await expect(page.get_by_role("heading", name="Usage of")).to_be_visible()

    suspended = await ui_stack.gateway.admin.post(f"/admin/api-keys/{key_id}/suspend")
    assert suspended.status_code == 200, suspended.text
    await page.get_by_role("link", name="Operations").click()
    await expect(page.get_by_role("alert")).to_contain_text("Signed out")
    await expect(page.get_by_label("API key")).to_be_visible()
    assert await page.evaluate("() => sessionStorage.getItem('pmp-api-key')") is None
