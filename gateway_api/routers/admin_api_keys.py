"""Admin management of API keys at /admin/api-keys: the secret is shown once, at creation."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from gateway_api.deps import ApiKeysDep
from gateway_core.domain.api_keys import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyUpdate,
    CreatedApiKey,
    RotateRequest,
)

router = APIRouter(prefix="/api-keys", tags=["admin"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(body: ApiKeyCreate, keys: ApiKeysDep) -> CreatedApiKey:
    return await keys.create(body)


@router.get("")
async def list_keys(keys: ApiKeysDep) -> dict[str, object]:
    listed = await keys.list_all()
    return {"object": "list", "data": [key.model_dump(mode="json") for key in listed]}


@router.get("/{key_id}")
async def get_key(key_id: str, keys: ApiKeysDep) -> ApiKey:
    return await keys.get(key_id)


@router.put("/{key_id}")
async def update_key(key_id: str, body: ApiKeyUpdate, keys: ApiKeysDep) -> ApiKey:
    return await keys.update(key_id, body)


@router.post("/{key_id}/suspend")
async def suspend_key(key_id: str, keys: ApiKeysDep) -> ApiKey:
    return await keys.suspend(key_id)


@router.post("/{key_id}/activate")
async def activate_key(key_id: str, keys: ApiKeysDep) -> ApiKey:
    return await keys.activate(key_id)


@router.post("/{key_id}/revoke")
async def revoke_key(key_id: str, keys: ApiKeysDep) -> ApiKey:
    """Final: a revoked key (and any previous secret of it) never works again."""
    return await keys.revoke(key_id)


@router.post("/{key_id}/rotate")
async def rotate_key(
    key_id: str, keys: ApiKeysDep, body: RotateRequest | None = None
) -> CreatedApiKey:
    return await keys.rotate(key_id, body)


@router.get("/{key_id}/usage")
async def key_usage(
    key_id: str,
    keys: ApiKeysDep,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    group_by: Literal["day", "model"] = "day",
) -> dict[str, object]:
    """Requests and tokens of a key per day or per model (`from`/`to` inclusive, UTC days)."""
    usage = await keys.usage(key_id, start=start, end=end, group_by=group_by)
    return usage.document()
