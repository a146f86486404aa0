"""Admin CRUD for models at /admin/models (admin key required)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, status

from gateway_api.deps import AdminDep, RuntimeDep
from gateway_api.schemas import DeletedModel
from gateway_core.domain.models import Model, ModelCreate, ModelUpdate
from gateway_core.errors import InvalidRequestError

router = APIRouter(prefix="/admin/models", tags=["admin"])


def _expected_version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    raw = if_match.strip().strip('"').removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise InvalidRequestError("If-Match must be a model version number", param="If-Match")
    return int(raw)


@router.get("")
async def list_models(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, object]:
    models = await runtime.models.list()
    return {"object": "list", "data": [m.model_dump(mode="json") for m in models]}


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_model(body: ModelCreate, runtime: RuntimeDep, _admin: AdminDep) -> Model:
    created = await runtime.models.create(body)
    runtime.model_cache.invalidate(body.id)
    return created


@router.get("/{model_id}")
async def get_model(model_id: str, runtime: RuntimeDep, _admin: AdminDep) -> Model:
    return await runtime.models.get(model_id)


@router.put("/{model_id}")
async def update_model(
    model_id: str,
    body: ModelUpdate,
    runtime: RuntimeDep,
    _admin: AdminDep,
    if_match: Annotated[str | None, Header()] = None,
) -> Model:
    updated = await runtime.models.update(
        model_id, body, expected_version=_expected_version(if_match)
    )
    runtime.model_cache.invalidate(model_id)
    return updated


@router.delete("/{model_id}")
async def delete_model(model_id: str, runtime: RuntimeDep, _admin: AdminDep) -> DeletedModel:
    await runtime.models.delete(model_id)
    runtime.model_cache.invalidate(model_id)
    return DeletedModel(id=model_id)
