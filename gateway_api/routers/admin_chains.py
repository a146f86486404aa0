"""Admin CRUD for model chains at /admin/chains (admin key required)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, status

from gateway_api.deps import AdminDep, RuntimeDep
from gateway_api.routers.admin_models import _expected_version
from gateway_core.domain.chains import ChainCreate, ChainUpdate, ModelChain

router = APIRouter(prefix="/admin/chains", tags=["admin"])


@router.get("")
async def list_chains(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, object]:
    chains = await runtime.chains.list()
    return {"object": "list", "data": [chain.model_dump(mode="json") for chain in chains]}


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_chain(body: ChainCreate, runtime: RuntimeDep, _admin: AdminDep) -> ModelChain:
    created = await runtime.chains.create(body)
    runtime.chain_cache.invalidate(body.id)
    return created


@router.get("/{chain_id}")
async def get_chain(chain_id: str, runtime: RuntimeDep, _admin: AdminDep) -> ModelChain:
    return await runtime.chains.get(chain_id)


@router.put("/{chain_id}")
async def update_chain(
    chain_id: str,
    body: ChainUpdate,
    runtime: RuntimeDep,
    _admin: AdminDep,
    if_match: Annotated[str | None, Header()] = None,
) -> ModelChain:
    updated = await runtime.chains.update(
        chain_id, body, expected_version=_expected_version(if_match)
    )
    runtime.chain_cache.invalidate(chain_id)
    return updated


@router.delete("/{chain_id}")
async def delete_chain(chain_id: str, runtime: RuntimeDep, _admin: AdminDep) -> dict[str, object]:
    await runtime.chains.delete(chain_id)
    runtime.chain_cache.invalidate(chain_id)
    return {"id": chain_id, "object": "chain", "deleted": True}
