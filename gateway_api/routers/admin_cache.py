"""Response-cache administration at /admin/cache: statistics and invalidation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway_api.deps import CacheDep

router = APIRouter(prefix="/cache", tags=["admin"])


def _removed(count: int) -> dict[str, Any]:
    return {"object": "cache.invalidation", "deleted": count}


@router.get("")
async def cache_stats(cache: CacheDep) -> dict[str, Any]:
    return {"object": "cache.stats", **await cache.stats()}


@router.delete("")
async def invalidate_all_or_older(
    cache: CacheDep,
    # At most ~100 years: PostgreSQL's interval overflows far beyond (a 500 before).
    older_than_seconds: Annotated[float | None, Query(ge=0, le=3_153_600_000)] = None,
) -> dict[str, Any]:
    """Every entry, or with `older_than_seconds` those stored longer ago than that."""
    if older_than_seconds is None:
        return _removed(await cache.invalidate(lambda store: store.clear()))
    age = older_than_seconds
    return _removed(await cache.invalidate(lambda store: store.delete_older_than(age)))


@router.delete("/entries/{key}")
async def invalidate_key(key: str, cache: CacheDep) -> dict[str, Any]:
    """One entry, by the key a response named in `x-pmp-cache-key`."""
    return _removed(await cache.invalidate(lambda store: store.delete(key)))


@router.delete("/models/{model_id}")
async def invalidate_model(model_id: str, cache: CacheDep) -> dict[str, Any]:
    """Every entry a model (or chain) answered or could have answered."""
    return _removed(await cache.invalidate(lambda store: store.delete_tagged(model_id)))
