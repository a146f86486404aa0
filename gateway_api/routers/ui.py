"""The admin UI at /ui/ (the root redirects there) and the two routes only it needs.

`GET /ui/session` tells the signed-in key who it is and where runs open in the Temporal
Web UI; `GET /ui/usage` shows any key its own usage (the admin usage route is for
admins only).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from gateway_api.assembly.groups import Runtime
from gateway_api.deps import ApiKeysDep, AuthenticatedDep
from gateway_api.ui import STATIC_DIR, index_html

router = APIRouter(include_in_schema=False)

# Stands for the run id in `run_url_template`; the UI substitutes it.
RUN_ID_SLOT = "{run_id}"


def run_url_template(runtime: Runtime) -> str | None:
    """Where a run opens in the Temporal Web UI, with `{run_id}` to fill in."""
    return runtime.temporal.runs.run_url(RUN_ID_SLOT)


@router.get("/", response_model=None)
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui", response_model=None)
@router.get("/ui/", response_model=None)
async def ui_page() -> HTMLResponse:
    return HTMLResponse(index_html(""), headers={"cache-control": "no-cache"})


@router.get("/ui/session")
async def ui_session(request: Request, caller: AuthenticatedDep) -> dict[str, object]:
    """Who the presented key is (401 when it is not valid) and where runs open."""
    runtime: Runtime = request.app.state.runtime
    return {
        "key_id": caller.key_id,
        "admin": caller.is_admin,
        "permissions": caller.permissions.model_dump(mode="json"),
        "rate_limits": caller.rate_limits.model_dump(mode="json"),
        "run_url_template": run_url_template(runtime),
    }


@router.get("/ui/usage")
async def own_usage(
    caller: AuthenticatedDep,
    keys: ApiKeysDep,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    group_by: Literal["day", "model"] = "day",
) -> dict[str, object]:
    """The calling key's own requests and tokens per day or per model."""
    usage = await keys.usage(caller.key_id, start=start, end=end, group_by=group_by)
    return usage.document()


def mount_ui(app: FastAPI) -> None:
    """The UI's routes and its static assets (from the installed package)."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
