"""What a non-admin key sees, and the UI served apart from the API (`pmp-gateway ui`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from playwright.async_api import Page, expect

from gateway_api.app import create_app
from gateway_api.ui.server import create_ui_app
from gateway_core.process import free_port
from tests.browser.conftest import UiStack, sign_in, unique
from tests.conftest import ADMIN_KEY


@asynccontextmanager
async def serving(app: Any, port: int = 0) -> AsyncIterator[str]:
    """An ASGI app on a loopback port (a free one by default); yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


async def test_a_key_without_admin_sees_its_usage_operations_and_allowed_models_only(
    page: Page, ui_stack: UiStack
) -> None:
    allowed = await ui_stack.add_model("mine")
    await ui_stack.add_model("theirs")
    key_id = unique("member")
    created = await ui_stack.gateway.admin.post(
        "/admin/api-keys",
        json={"id": key_id, "name": "Member", "permissions": {"models": [allowed]}},
    )
    key = created.json()["key"]
    await sign_in(page, ui_stack, key)
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link")).to_have_text(["My usage", "Operations", "Playground"])

    await page.goto(ui_stack.ui_url + "#/models")  # an admin view: sent back to its own
    await expect(page.get_by_role("heading", name=f"Usage of {key_id}")).to_be_visible()
    assert page.url.endswith("#/usage")

    await nav.get_by_role("link", name="Playground").click()
    await expect(page.get_by_label("Model or chain").locator("option")).to_have_text([allowed])
    await page.get_by_label("Message", exact=True).fill("hello")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("ol.turns li.assistant .content")).to_have_text("echo: hello")

    # A stream's usage is settled once it ended, just after the browser saw [DONE].
    for _ in range(100):
        usage = await ui_stack.gateway.admin.get(f"/admin/api-keys/{key_id}/usage?group_by=model")
        if usage.json()["data"]:
            break
        await asyncio.sleep(0.1)
    await nav.get_by_role("link", name="My usage").click()
    by_model = page.get_by_role("heading", name="By model").locator("..")
    await expect(by_model).to_contain_text(allowed)
    await expect(by_model).to_contain_text("1 req")


async def test_the_ui_served_apart_calls_the_api_across_origins_with_cors(
    page: Page, ui_stack: UiStack
) -> None:
    model_id = await ui_stack.add_model("cors")
    ui_port = free_port()
    ui_origin = f"http://127.0.0.1:{ui_port}"
    runtime = ui_stack.gateway.runtime
    origins = f"https://elsewhere.example, {ui_origin}"
    settings = runtime.settings.model_copy(update={"cors_origins": origins})
    api_calls: list[str] = []
    page.on("request", lambda request: api_calls.append(request.url))
    async with (
        serving(create_app(settings, runtime=runtime)) as api_url,
        serving(create_ui_app(api_url, skip_proxy=True), port=ui_port),
    ):
        await sign_in(page, ui_stack, url=f"{ui_origin}/ui/")
        await page.get_by_role("link", name="Models").click()
        await expect(page.locator(f"tr[data-model='{model_id}']")).to_be_visible()
        assert f"{api_url}/ui/session" in api_calls
        assert f"{api_url}/admin/models?limit=20" in api_calls
        assert not any(urlsplit(url).path.startswith("/api/") for url in api_calls)


async def test_without_cors_the_ui_served_apart_says_the_api_is_unreachable(
    page: Page, ui_stack: UiStack
) -> None:
    async with serving(create_ui_app(ui_stack.gateway.base_url, skip_proxy=True)) as ui_url:
        await page.goto(f"{ui_url}/ui/")
        await page.get_by_label("API key").fill(ADMIN_KEY)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("not reachable")
