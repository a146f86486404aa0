"""Admin API for prompts at /admin/prompts: CRUD, search, history, revert, render."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from gateway_api.deps import EntitiesDep
from gateway_api.routers.versioned import VersionedRoutes, page_answer, versioned_router
from gateway_api.schemas import RenderedPrompt, RenderRequest
from gateway_core.domain.prompts import Prompt, PromptCreate, PromptUpdate, PromptVersion

router = versioned_router(
    VersionedRoutes(
        prefix="/prompts",
        entity="prompt",
        create_body=PromptCreate,
        update_body=PromptUpdate,
        entity_model=Prompt,
        version_model=PromptVersion,
        service=lambda services: services.prompts,
        list_route=False,  # prompts list with search, below
    )
)


@router.get("")
async def list_prompts(
    services: EntitiesDep,
    name: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=50)] = None,
) -> dict[str, Any]:
    """Prompts by id; `name` matches name or id (substring), each `tag` must be carried.

    Pages by cursor: pass the `last_id` of one page as `after` to get the next.
    """
    page = await services.prompts.search(name=name, tags=tag, limit=limit, after=after)
    return page_answer(page)


@router.post("/{prompt_id}/render")
async def render_prompt(
    prompt_id: str, body: RenderRequest, services: EntitiesDep
) -> RenderedPrompt:
    """The prompt's text with `variables` filled in; 400 names every one left missing."""
    return await services.prompts.render(prompt_id, body.version, body.variables)
