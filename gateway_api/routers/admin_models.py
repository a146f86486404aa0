"""Admin CRUD for models at /admin/models (admin key required)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, status

from gateway_api.deps import AdminDep, IfMatchDep, RuntimeDep, parse_if_match
from gateway_api.schemas import DeletedModel, VersionRef
from gateway_core.domain.models import Model, ModelCreate, ModelUpdate, ModelVersion

router = APIRouter(prefix="/admin/models", tags=["admin"])


def _expected_version(if_match: str | None) -> int | None:
    """Kept for callers that read the header themselves; new routes use IfMatchDep."""
    return parse_if_match(if_match)


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


@router.get("/{model_id}/versions")
async def list_model_versions(
    model_id: str,
    runtime: RuntimeDep,
    _admin: AdminDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """Versions newest first; pass the last one's `version` as `before` for older ones."""
    versions = await runtime.models.list_versions(model_id, limit=limit, before=before)
    return {"object": "list", "data": [v.model_dump(mode="json") for v in versions]}


@router.get("/{model_id}/versions/{version}")
async def get_model_version(
    model_id: str, version: int, runtime: RuntimeDep, _admin: AdminDep
) -> ModelVersion:
    return await runtime.models.get_version(model_id, version)


@router.post("/{model_id}/revert")
async def revert_model(
    model_id: str,
    body: VersionRef,
    runtime: RuntimeDep,
    _admin: AdminDep,
    expected_version: IfMatchDep,
) -> Model:
    """Make `version` current again as a new version; its history stays as it was."""
    reverted = await runtime.models.revert(
        model_id, body.version, expected_version=expected_version
    )
    runtime.model_cache.invalidate(model_id)
    return reverted
