"""Admin API for prompts at /admin/prompts: CRUD, search, history, revert, render."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from gateway_api.deps import AdminDep, IfMatchDep, RuntimeDep
from gateway_api.schemas import RenderedPrompt, RenderRequest, VersionRef
from gateway_core.domain.prompts import (
    Prompt,
    PromptCreate,
    PromptUpdate,
    PromptVersion,
    render_content,
)

router = APIRouter(prefix="/admin/prompts", tags=["admin"])

Limit = Annotated[int, Query(ge=1, le=100)]


@router.get("")
async def list_prompts(
    runtime: RuntimeDep,
    _admin: AdminDep,
    name: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[list[str] | None, Query()] = None,
    limit: Limit = 20,
    after: Annotated[str | None, Query(max_length=50)] = None,
) -> dict[str, Any]:
    """Prompts by id; `name` matches name or id (substring), each `tag` must be carried.

    Pages by cursor: pass the `last_id` of one page as `after` to get the next.
    """
    page = await runtime.prompts.list(name=name, tags=tag, limit=limit, after=after)
    data = [prompt.model_dump(mode="json") for prompt in page.prompts]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": page.has_more,
    }


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_prompt(body: PromptCreate, runtime: RuntimeDep, _admin: AdminDep) -> Prompt:
    created = await runtime.prompts.create(body)
    runtime.prompt_cache.invalidate(body.id)
    return created


@router.get("/{prompt_id}")
async def get_prompt(prompt_id: str, runtime: RuntimeDep, _admin: AdminDep) -> Prompt:
    return await runtime.prompts.get(prompt_id)


@router.put("/{prompt_id}")
async def update_prompt(
    prompt_id: str,
    body: PromptUpdate,
    runtime: RuntimeDep,
    _admin: AdminDep,
    expected_version: IfMatchDep,
) -> Prompt:
    """Replace the prompt as a new version; with `If-Match: <version>` only from that one."""
    updated = await runtime.prompts.update(prompt_id, body, expected_version=expected_version)
    runtime.prompt_cache.invalidate(prompt_id)
    return updated


@router.delete("/{prompt_id}")
async def delete_prompt(prompt_id: str, runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
    await runtime.prompts.delete(prompt_id)
    runtime.prompt_cache.invalidate(prompt_id)
    return {"id": prompt_id, "object": "prompt", "deleted": True}


@router.get("/{prompt_id}/versions")
async def list_prompt_versions(
    prompt_id: str,
    runtime: RuntimeDep,
    _admin: AdminDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """Versions newest first; pass the last one's `version` as `before` for older ones."""
    versions = await runtime.prompts.list_versions(prompt_id, limit=limit, before=before)
    return {"object": "list", "data": [v.model_dump(mode="json") for v in versions]}


@router.get("/{prompt_id}/versions/{version}")
async def get_prompt_version(
    prompt_id: str, version: int, runtime: RuntimeDep, _admin: AdminDep
) -> PromptVersion:
    return await runtime.prompts.get_version(prompt_id, version)


@router.post("/{prompt_id}/revert")
async def revert_prompt(
    prompt_id: str,
    body: VersionRef,
    runtime: RuntimeDep,
    _admin: AdminDep,
    expected_version: IfMatchDep,
) -> Prompt:
    """Make `version` current again as a new version; its history stays as it was."""
    reverted = await runtime.prompts.revert(
        prompt_id, body.version, expected_version=expected_version
    )
    runtime.prompt_cache.invalidate(prompt_id)
    return reverted


@router.post("/{prompt_id}/render")
async def render_prompt(
    prompt_id: str, body: RenderRequest, runtime: RuntimeDep, _admin: AdminDep
) -> RenderedPrompt:
    """The prompt's text with `variables` filled in; 400 names every one left missing."""
    prompt: Prompt | PromptVersion
    if body.version is None:
        prompt = await runtime.prompts.get(prompt_id)
    else:
        prompt = await runtime.prompts.get_version(prompt_id, body.version)
    content = render_content(prompt.content, body.variables)
    return RenderedPrompt(prompt_id=prompt.id, version=prompt.version, content=content)
