"""Response-cache administration at /admin/cache: statistics and invalidation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway_api.deps import AdminDep, RuntimeDep
from gateway_api.response_cache import invalidate

router = APIRouter(prefix="/admin/cache", tags=["admin"])


def _removed(count: int) -> dict[str, Any]:
    return {"object": "cache.invalidation", "deleted": count}


@router.get("")
async def cache_stats(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
    stats = await runtime.response_cache.stats()
    return {
        "object": "cache.stats",
        "backend": runtime.response_cache.name,
        "entries": stats.entries,
        "bytes": stats.bytes,
    }


@router.delete("")
async def invalidate_all_or_older(
    runtime: RuntimeDep,
    _admin: AdminDep,
    older_than_seconds: Annotated[float | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """Every entry, or with `older_than_seconds` those stored longer ago than that."""
    if older_than_seconds is None:
        return _removed(await invalidate(runtime, lambda store: store.clear()))
    age = older_than_seconds
    return _removed(await invalidate(runtime, lambda store: store.delete_older_than(age)))


@router.delete("/entries/{key}")
async def invalidate_key(key: str, runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
    """One entry, by the key a response named in `x-pmp-cache-key`."""
    return _removed(await invalidate(runtime, lambda store: store.delete(key)))


@router.delete("/models/{model_id}")
async def invalidate_model(model_id: str, runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
    """Every entry a model (or chain) answered or could have answered."""
    return _removed(await invalidate(runtime, lambda store: store.delete_tagged(model_id)))
