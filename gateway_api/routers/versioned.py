"""One router factory for versioned entities: create, get, list, update, delete, history.

Each entity kind describes itself with a `VersionedRoutes` spec; the routes only speak
HTTP and call the kind's service (gateway_api.services.entities), which writes and
invalidates the kind's cache.
"""

# No `from __future__ import annotations` here: FastAPI reads the handlers' annotations
# at runtime, and they use the spec's values (limits, body classes), which exist only
# inside `versioned_router`.

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from gateway_api.deps import EntitiesDep, IfMatchDep
from gateway_api.schemas import VersionRef
from gateway_api.services.answers import cursor_page
from gateway_api.services.entities import EntityServices, VersionedEntityService
from gateway_core.storage.versioned import CreateT, EntityT, Page, UpdateT, VersionT

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def _deleted_answer(entity: str) -> Callable[[str], dict[str, Any]]:
    return lambda entity_id: {"id": entity_id, "object": entity, "deleted": True}


@dataclass(frozen=True)
class VersionedRoutes(Generic[EntityT, VersionT, CreateT, UpdateT]):
    """What the routes of one entity kind parse, answer and call."""

    prefix: str  # below /admin, e.g. "/models"
    entity: str  # the `object` of a delete answer, e.g. "model"
    create_body: type[CreateT]
    update_body: type[UpdateT]
    entity_model: type[EntityT]
    version_model: type[VersionT]
    service: Callable[[EntityServices], VersionedEntityService[EntityT, VersionT, CreateT, UpdateT]]
    # The delete answer; default {"id", "object": entity, "deleted": true}.
    deleted: Callable[[str], BaseModel | dict[str, Any]] | None = None
    # False when the kind lists with its own filters (prompts search by name and tag).
    list_route: bool = True
    # False when the kind's PUT takes options of its own (knowledge bases: `reembed`).
    update_route: bool = True
    # Generous, so a plain GET still returns every model or chain an operator has.
    list_limit: int = 100
    max_list_limit: int = 500


def page_answer(page: Page[Any]) -> dict[str, Any]:
    """A cursor page: pass `last_id` as `after` for the next one while `has_more`."""
    return cursor_page([item.model_dump(mode="json") for item in page.items], page.has_more)


def _typed(endpoint: Endpoint, **classes: type) -> Endpoint:
    """Give FastAPI the spec's concrete classes where mypy checks the handler by TypeVar."""
    endpoint.__annotations__.update(classes)
    return endpoint


def versioned_router(
    spec: VersionedRoutes[EntityT, VersionT, CreateT, UpdateT],
) -> APIRouter:
    """An APIRouter at `spec.prefix` with the routes every versioned entity has."""
    router = APIRouter(prefix=spec.prefix, tags=["admin"])
    if spec.list_route:
        _add_list(router, spec)
    _add_crud(router, spec)
    _add_history(router, spec)
    return router


def _add_list(router: APIRouter, spec: VersionedRoutes[EntityT, Any, Any, Any]) -> None:
    async def list_entities(
        services: EntitiesDep,
        limit: Annotated[int, Query(ge=1, le=spec.max_list_limit)] = spec.list_limit,
        after: Annotated[str | None, Query(max_length=50)] = None,
    ) -> dict[str, Any]:
        """Ordered by id; pass the `last_id` of one page as `after` to get the next."""
        return page_answer(await spec.service(services).list_page(limit=limit, after=after))

    router.add_api_route("", list_entities, methods=["GET"])


def _add_crud(
    router: APIRouter, spec: VersionedRoutes[EntityT, VersionT, CreateT, UpdateT]
) -> None:
    deleted = spec.deleted or _deleted_answer(spec.entity)

    async def create(body: CreateT, services: EntitiesDep) -> EntityT:
        return await spec.service(services).create(body)

    async def get(entity_id: str, services: EntitiesDep) -> EntityT:
        return await spec.service(services).get(entity_id)

    async def update(
        entity_id: str, body: UpdateT, services: EntitiesDep, expected_version: IfMatchDep
    ) -> EntityT:
        """Replace the definition as a new version; with `If-Match: <version>` only from it."""
        entities = spec.service(services)
        return await entities.update(entity_id, body, expected_version=expected_version)

    async def delete(entity_id: str, services: EntitiesDep) -> Any:
        """Remove the current definition; the version history stays."""
        await spec.service(services).delete(entity_id)
        return deleted(entity_id)

    entity = spec.entity_model
    router.add_api_route(
        "",
        _typed(create, body=spec.create_body),
        methods=["POST"],
        status_code=status.HTTP_201_CREATED,
        response_model=entity,
    )
    router.add_api_route("/{entity_id}", get, methods=["GET"], response_model=entity)
    if spec.update_route:
        router.add_api_route(
            "/{entity_id}",
            _typed(update, body=spec.update_body),
            methods=["PUT"],
            response_model=entity,
        )
    router.add_api_route("/{entity_id}", delete, methods=["DELETE"], response_model=None)


def _add_history(router: APIRouter, spec: VersionedRoutes[EntityT, VersionT, Any, Any]) -> None:
    async def list_versions(
        entity_id: str,
        services: EntitiesDep,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        """Versions newest first; pass the last one's `version` as `before` for older ones."""
        versions = await spec.service(services).list_versions(entity_id, limit=limit, before=before)
        return {"object": "list", "data": [v.model_dump(mode="json") for v in versions]}

    async def get_version(entity_id: str, version: int, services: EntitiesDep) -> VersionT:
        return await spec.service(services).get_version(entity_id, version)

    async def revert(
        entity_id: str, body: VersionRef, services: EntitiesDep, expected_version: IfMatchDep
    ) -> EntityT:
        """Make `version` current again as a new version; its history stays as it was."""
        entities = spec.service(services)
        return await entities.revert(entity_id, body.version, expected_version=expected_version)

    router.add_api_route("/{entity_id}/versions", list_versions, methods=["GET"])
    router.add_api_route(
        "/{entity_id}/versions/{version}",
        get_version,
        methods=["GET"],
        response_model=spec.version_model,
    )
    router.add_api_route(
        "/{entity_id}/revert", revert, methods=["POST"], response_model=spec.entity_model
    )
