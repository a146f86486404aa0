"""Admin CRUD, history and revert for model chains at /admin/chains."""

from __future__ import annotations

from gateway_api.routers.versioned import VersionedRoutes, versioned_router
from gateway_core.domain.chains import ChainCreate, ChainUpdate, ChainVersion, ModelChain

router = versioned_router(
    VersionedRoutes(
        prefix="/chains",
        entity="chain",
        create_body=ChainCreate,
        update_body=ChainUpdate,
        entity_model=ModelChain,
        version_model=ChainVersion,
        service=lambda services: services.chains,
    )
)
