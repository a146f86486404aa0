"""Admin CRUD, history and revert for models at /admin/models."""

from __future__ import annotations

from gateway_api.routers.versioned import VersionedRoutes, versioned_router
from gateway_api.schemas import DeletedModel
from gateway_core.domain.models import Model, ModelCreate, ModelUpdate, ModelVersion

router = versioned_router(
    VersionedRoutes(
        prefix="/models",
        entity="model",
        create_body=ModelCreate,
        update_body=ModelUpdate,
        entity_model=Model,
        version_model=ModelVersion,
        service=lambda services: services.models,
        deleted=lambda model_id: DeletedModel(id=model_id),
    )
)
