"""Admin CRUD, history and revert for user-defined workflows at /admin/workflows.

A definition is checked as a whole when saved: every problem in one 400
(gateway_core.userflows.validation). Running one is not part of this router.
"""

from __future__ import annotations

from gateway_api.routers.versioned import VersionedRoutes, versioned_router
from gateway_core.userflows.definition import (
    Workflow,
    WorkflowCreate,
    WorkflowUpdate,
    WorkflowVersion,
)

router = versioned_router(
    VersionedRoutes(
        prefix="/workflows",
        entity="workflow",
        create_body=WorkflowCreate,
        update_body=WorkflowUpdate,
        entity_model=Workflow,
        version_model=WorkflowVersion,
        service=lambda services: services.workflows,
    )
)
