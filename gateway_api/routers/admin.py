"""Every admin route, under /admin, behind one admin-key check.

The check sits on this router, not on each handler, so a new admin route cannot be
left open by a forgotten parameter.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gateway_api.deps import require_admin
from gateway_api.routers import (
    admin_api_keys,
    admin_cache,
    admin_chains,
    admin_config,
    admin_credentials,
    admin_health,
    admin_knowledge_bases,
    admin_models,
    admin_prompts,
    admin_workflows,
)

router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])

for sub_router in (
    admin_models.router,
    admin_chains.router,
    admin_health.router,
    admin_prompts.router,
    admin_config.router,
    admin_api_keys.router,
    admin_credentials.router,
    admin_cache.router,
    admin_knowledge_bases.router,
    admin_workflows.router,
):
    router.include_router(sub_router)
