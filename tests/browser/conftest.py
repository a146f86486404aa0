"""Browser tests: Debian's Chromium driven by Playwright against a real gateway.

One browser and one gateway serve the whole folder (each test gets a fresh browser
context, so its own sessionStorage); tests use ids of their own instead of truncating.
A stand-in for the Temporal Web UI records which run a link opened.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment

from gateway_core.config import Settings
from tests.conftest import ADMIN_KEY, UPSTREAM_KEY, UPSTREAM_KEY_ENV, Gateway, running_gateway
from tests.fakes.loopback import LoopbackServer
from tests.fakes.openai_upstream import FakeOpenAI

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"


@dataclass
class UiStack:
    """The gateway, its upstream and the Temporal Web UI stand-in, as the tests see them."""

    gateway: Gateway
    upstream: FakeOpenAI
    temporal_ui: LoopbackServer

    @property
    def ui_url(self) -> str:
        return f"{self.gateway.base_url}/ui/"

    async def add_model(self, prefix: str = "m", **fields: object) -> str:
        model_id = unique(prefix)
        await self.gateway.add_model(model_id, self.upstream, **fields)
        return model_id


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _stand_in_page(request: Request) -> HTMLResponse:
    return HTMLResponse(f"<title>Temporal stand-in</title><h1>{request.url.path}</h1>")


@pytest.fixture(scope="package")
async def temporal_ui_stand_in() -> AsyncIterator[LoopbackServer]:
    async with LoopbackServer([Route("/{path:path}", _stand_in_page)]) as server:
        yield server


@pytest.fixture(scope="package")
async def ui_stack(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
    database_url: str,
    temporal_ui_stand_in: LoopbackServer,
) -> AsyncIterator[UiStack]:
    previous = os.environ.get(UPSTREAM_KEY_ENV)
    os.environ[UPSTREAM_KEY_ENV] = UPSTREAM_KEY
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("ui") / "data",
        admin_key=ADMIN_KEY,
        temporal_address=temporal_env.client.service_client.config.target_host,
        database_url=database_url,
        temporal_task_queue=f"ui-{uuid.uuid4().hex[:12]}",
        temporal_ui_url=temporal_ui_stand_in.root_url,
        auth_cache_ttl_s=0,  # a suspended key fails on its next call
        default_max_retries=0,
    )
    upstream = FakeOpenAI(api_key=UPSTREAM_KEY)
    await upstream.start()
    try:
        async with running_gateway(settings) as gateway:
            yield UiStack(gateway, upstream, temporal_ui_stand_in)
    finally:
        await upstream.stop()
        if previous is None:
            os.environ.pop(UPSTREAM_KEY_ENV, None)
        else:
            os.environ[UPSTREAM_KEY_ENV] = previous


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    created = await browser.new_context(viewport={"width": 1280, "height": 900})
    created.set_default_timeout(10_000)
    try:
        yield created
    finally:
        await created.close()


@pytest.fixture
async def page(context: BrowserContext, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A page whose screenshot is saved under tests/artifacts/ui/ when the test ends."""
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        await opened.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert not errors, f"JavaScript errors on the page: {errors}"


async def sign_in(page: Page, stack: UiStack, key: str = ADMIN_KEY, url: str = "") -> None:
    """Open the UI (the gateway's, or the one at `url`) and sign in with `key`."""
    await page.goto(url or stack.ui_url)
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("button", name="Sign out").wait_for()
