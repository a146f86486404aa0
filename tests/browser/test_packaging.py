"""The UI ships inside the wheel and needs no network beyond the gateway.

The wheel is built from a copy of the sources (so only declared package data gets in),
unpacked, and `pmp-gateway ui` runs from the unpacked copy; the browser may reach that
server alone, every other request is aborted and recorded.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, Request, Route, expect

from gateway_api.ui import STATIC_DIR
from gateway_core.process import free_port, stop, wait_for_port
from tests.browser.conftest import UiStack
from tests.conftest import ADMIN_KEY

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "gateway_api", "gateway_core", "temporal_workers",
           "activities", "workflows")  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built offline from a clean copy of its sources."""
    copy = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy / name)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*command, "--no-index", "-q", "-w", str(out)], cwd=copy, check=True, capture_output=True
    )
    (built,) = out.glob("pmp_llm_gateway-*.whl")
    return built


def test_the_wheel_holds_every_ui_asset(wheel: Path) -> None:
    expected = {
        f"gateway_api/ui/static/{path.relative_to(STATIC_DIR).as_posix()}"
        for path in STATIC_DIR.rglob("*")
        if path.is_file()
    }
    assert "gateway_api/ui/static/vendor/alpine-3.17.5.min.js" in expected
    assert "gateway_api/ui/static/vendor/VENDORED.md" in expected
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
        assert expected <= packed, sorted(expected - packed)
        for name in expected:  # byte for byte what the sources hold
            relative = name.removeprefix("gateway_api/ui/static/")
            assert archive.read(name) == (STATIC_DIR / relative).read_bytes(), name


@pytest.fixture
async def ui_from_wheel(
    wheel: Path, tmp_path: Path, ui_stack: UiStack
) -> AsyncIterator[tuple[str, Path]]:
    """`pmp-gateway ui` run from the unpacked wheel, proxying to the test gateway."""
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    port = free_port()
    log = tmp_path / "ui.log"
    launcher = (
        "import sys, gateway_api.ui; print(gateway_api.ui.__file__, flush=True); "
        "from gateway_api.cli import main; main(sys.argv[1:])"
    )
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", launcher, "ui", "--port", str(port),
            "--api-url", ui_stack.gateway.base_url,
            cwd=unpacked, env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
            stdout=out, stderr=out,
        )  # fmt: skip
    try:
        await wait_for_port("127.0.0.1", port, process, 30, "pmp-gateway ui")
        yield f"http://127.0.0.1:{port}", log
    finally:
        await stop(process, signal.SIGTERM)


async def test_the_ui_from_the_wheel_loads_with_every_other_host_blocked(
    page: Page, ui_stack: UiStack, ui_from_wheel: tuple[str, Path], tmp_path: Path
) -> None:
    ui_url, log = ui_from_wheel
    allowed = urlsplit(ui_url).netloc
    blocked: list[str] = []
    failed: list[str] = []
    served: list[str] = []

    async def only_the_ui_server(route: Route, request: Request) -> None:
        if urlsplit(request.url).netloc == allowed:
            served.append(urlsplit(request.url).path)
            await route.continue_()
        else:
            blocked.append(request.url)
            await route.abort()

    await page.route("**/*", only_the_ui_server)
    page.on("requestfailed", lambda request: failed.append(request.url))
    model_id = await ui_stack.add_model("offline")
    # Signed in through the UI server: its /api proxy carries the calls to the gateway.
    await page.goto(ui_url + "/")
    await page.get_by_label("API key").fill(ADMIN_KEY)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("link", name="Models").click()
    await expect(page.locator(f"tr[data-model='{model_id}']")).to_be_visible()
    font = await page.evaluate("() => getComputedStyle(document.body).fontFamily")
    assert "system-ui" in font  # Pico CSS applied
    await page.get_by_role("link", name="Playground").click()  # a stream through the proxy
    await page.get_by_label("Model or chain").select_option(model_id)
    await page.get_by_label("Message", exact=True).fill("through the proxy")
    await page.get_by_role("button", name="Send").click()
    reply = page.locator("ol.turns li.assistant .content")
    await expect(reply).to_have_text("echo: through the proxy")

    assert blocked == []
    assert failed == []
    assert "/ui/static/vendor/alpine-3.17.5.min.js" in served
    assert "/ui/static/vendor/pico-2.1.1.min.css" in served
    assert {"/api/ui/session", "/api/admin/models", "/api/v1/chat/completions"} <= set(served)
    assert str(tmp_path / "site") in log.read_text().splitlines()[0]  # the wheel's copy ran
