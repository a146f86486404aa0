"""GET /admin/credentials/providers: which credential sources are set up and reachable."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter

from gateway_api.deps import AdminDep, RuntimeDep
from gateway_core.credentials.base import SourceStatus
from gateway_core.credentials.sources import SOURCE_NAMES, build_sources

router = APIRouter(prefix="/admin/credentials", tags=["admin"])


@router.get("/providers")
async def credential_providers(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, object]:
    """Each source: configured or not, reachable, authenticated; never a secret value."""
    async with httpx.AsyncClient(timeout=5, follow_redirects=False) as http:
        sources = build_sources(runtime.settings, http)
        checked = await asyncio.gather(*(source.check() for source in sources.values()))
    statuses = {status.source: status for status in checked}
    data = [
        statuses.get(name) or SourceStatus(source=name, configured=False) for name in SOURCE_NAMES
    ]
    return {"object": "list", "data": [status.model_dump() for status in data]}
