"""Usable by keyboard alone and on a 390 px wide phone screen."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import ARTIFACTS, UiStack, sign_in, unique
from tests.conftest import ADMIN_KEY


async def test_sign_in_and_navigation_work_by_keyboard_alone(page: Page, ui_stack: UiStack) -> None:
    await page.goto(ui_stack.ui_url)
    await page.get_by_label("API key").wait_for()
    await page.keyboard.press("Tab")  # the skip link first
    await page.keyboard.press("Tab")
    await expect(page.locator("#signin-key")).to_be_focused()
    await page.keyboard.type(ADMIN_KEY)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    models_link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Models")
    await models_link.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Models")).to_be_visible()
    await page.get_by_role("button", name="New model").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#model-id")).to_be_focused()  # the form opens at its first field


async def _seed(stack: UiStack) -> None:
    """Something to show in every view."""
    admin = stack.gateway.admin
    model_id = await stack.add_model("shown")
    chain = {"id": unique("chain"), "name": "Resilient", "steps": [{"model_id": model_id}]}
    prompt = {"id": unique("prompt"), "name": "Support", "content": "Be ${var:tone:brief}."}
    embedder = {"id": unique("embed"), "provider": "local", "model": "wordllama",
                "kind": "embedding", "dimensions": 64}  # fmt: skip
    kb = {"id": unique("kb"), "name": "Docs", "embedding_model_id": embedder["id"]}
    key = {"id": unique("team"), "name": "Team", "permissions": {"models": [model_id]}}
    step = {"name": "answer", "type": "chat_completion", "model_id": model_id,
            "user_message": "${request:question}"}  # fmt: skip
    schema = {"type": "object", "properties": {"question": {"type": "string"}}}
    workflow = {"id": unique("flow"), "name": "Ask", "steps": [step], "input_schema": schema}
    for path, body in (
        ("/admin/chains", chain),
        ("/admin/prompts", prompt),
        ("/admin/models", embedder),
        ("/admin/knowledge-bases", kb),
        ("/admin/api-keys", key),
        ("/admin/workflows", workflow),
    ):
        created = await admin.post(path, json=body)
        assert created.status_code == 201, created.text
    chat = {"model": model_id, "messages": [{"role": "user", "content": "hi"}]}
    assert (await admin.post("/v1/chat/completions?async=true", json=chat)).status_code == 202


@pytest.mark.parametrize("width", [1280, 390])
async def test_every_view_fits_the_screen_without_sideways_scrolling(
    browser: Browser, ui_stack: UiStack, width: int
) -> None:
    await _seed(ui_stack)
    context = await browser.new_context(
        viewport={"width": width, "height": 900 if width > 800 else 844}, is_mobile=width < 800
    )
    try:
        page = await context.new_page()
        await sign_in(page, ui_stack)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        views = await page.eval_on_selector_all(
            "nav[aria-label=Main] a", "links => links.map(a => a.hash)"
        )
        assert len(views) == 10
        for view in views:
            await page.goto(ui_stack.ui_url + view)
            await page.locator("main h2").first.wait_for()
            await page.wait_for_load_state("networkidle")
            widths = await page.evaluate(
                "() => [document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert widths[0] <= widths[1], (view, widths)  # tables scroll inside their box
            name = view.strip("#/")
            await page.screenshot(path=str(ARTIFACTS / f"{width}px-{name}.png"), full_page=True)
            first = page.locator("main table tbody tr td:first-child a[href='#']").first
            if await first.count():  # and the first item's detail, where the view has one
                await first.click()
                await page.locator("article.detail").wait_for()
                await page.wait_for_load_state("networkidle")
                detail = ARTIFACTS / f"{width}px-{name}-detail.png"
                await page.screenshot(path=str(detail), full_page=True)
    finally:
        await context.close()
