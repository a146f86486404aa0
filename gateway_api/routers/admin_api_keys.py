"""Admin management of API keys at /admin/api-keys: the secret is shown once, at creation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from gateway_api.deps import AdminDep, RuntimeDep
from gateway_core.auth.service import ADMIN_CALLER_ID
from gateway_core.domain.api_keys import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyUpdate,
    CreatedApiKey,
    KeyStatus,
    RotateRequest,
)
from gateway_core.errors import InvalidRequestError

router = APIRouter(prefix="/admin/api-keys", tags=["admin"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(body: ApiKeyCreate, runtime: RuntimeDep, _admin: AdminDep) -> CreatedApiKey:
    return await runtime.api_keys.create(body)


@router.get("")
async def list_keys(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, object]:
    keys = await runtime.api_keys.list_all()
    return {"object": "list", "data": [key.model_dump(mode="json") for key in keys]}


@router.get("/{key_id}")
async def get_key(key_id: str, runtime: RuntimeDep, _admin: AdminDep) -> ApiKey:
    return await runtime.api_keys.get(key_id)


@router.put("/{key_id}")
async def update_key(
    key_id: str, body: ApiKeyUpdate, runtime: RuntimeDep, _admin: AdminDep
) -> ApiKey:
    updated = await runtime.api_keys.update(key_id, body)
    runtime.authenticator.invalidate(key_id)
    return updated


async def _set_status(runtime: RuntimeDep, key_id: str, new_status: KeyStatus) -> ApiKey:
    changed = await runtime.api_keys.set_status(key_id, new_status)
    runtime.authenticator.invalidate(key_id)
    return changed


@router.post("/{key_id}/suspend")
async def suspend_key(key_id: str, runtime: RuntimeDep, _admin: AdminDep) -> ApiKey:
    return await _set_status(runtime, key_id, "suspended")


@router.post("/{key_id}/activate")
async def activate_key(key_id: str, runtime: RuntimeDep, _admin: AdminDep) -> ApiKey:
    return await _set_status(runtime, key_id, "active")


@router.post("/{key_id}/revoke")
async def revoke_key(key_id: str, runtime: RuntimeDep, _admin: AdminDep) -> ApiKey:
    """Final: a revoked key (and any previous secret of it) never works again."""
    return await _set_status(runtime, key_id, "revoked")


@router.post("/{key_id}/rotate")
async def rotate_key(
    key_id: str, runtime: RuntimeDep, _admin: AdminDep, body: RotateRequest | None = None
) -> CreatedApiKey:
    grace = (body or RotateRequest()).grace_period_seconds
    rotated = await runtime.api_keys.rotate(key_id, grace)
    runtime.authenticator.invalidate(key_id)
    return rotated


@router.get("/{key_id}/usage")
async def key_usage(
    key_id: str,
    runtime: RuntimeDep,
    _admin: AdminDep,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    group_by: Literal["day", "model"] = "day",
) -> dict[str, object]:
    """Requests and tokens of a key per day or per model (`from`/`to` inclusive, UTC days)."""
    if key_id != ADMIN_CALLER_ID:
        await runtime.api_keys.get(key_id)
    today = datetime.now(UTC).date()
    end = end or today
    start = start or end - timedelta(days=30)
    if start > end:
        raise InvalidRequestError("`from` is after `to`", param="from")
    await runtime.usage.flush()
    rows = await runtime.api_keys.usage(key_id, start, end, group_by)
    return {
        "object": "list",
        "key_id": key_id,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "group_by": group_by,
        "data": rows,
    }
