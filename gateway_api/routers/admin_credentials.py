"""GET /admin/credentials/providers: which credential sources are set up and reachable."""

from __future__ import annotations

from fastapi import APIRouter

from gateway_api.deps import CredentialsDep

router = APIRouter(prefix="/credentials", tags=["admin"])


@router.get("/providers")
async def credential_providers(credentials: CredentialsDep) -> dict[str, object]:
    """Each source: configured or not, reachable, authenticated; never a secret value."""
    statuses = await credentials.statuses()
    return {"object": "list", "data": [status.model_dump() for status in statuses]}
