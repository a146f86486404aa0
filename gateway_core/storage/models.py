"""Model repository: models with a version that increases on every update."""

from __future__ import annotations

import builtins
import dataclasses

from gateway_core.credentials.env_policy import EnvNamePolicy
from gateway_core.domain.models import Model, ModelCreate, ModelUpdate, ModelVersion
from gateway_core.errors import ModelNotFoundError
from gateway_core.storage.database import Connection, ConnectionSource
from gateway_core.storage.versioned import VersionedRepository, VersionedSpec

MODELS = VersionedSpec(
    kind="model",
    table="models",
    versions_table="model_versions",
    key_column="model_id",
    entity_model=Model,
    version_model=ModelVersion,
    create_model=ModelCreate,
    update_model=ModelUpdate,
    not_found_error=ModelNotFoundError,
    not_found_param="model",
    routable=True,
)


class ModelRepository(VersionedRepository[Model, ModelVersion, ModelCreate, ModelUpdate]):
    """Stores Model definitions as JSON documents keyed by id.

    Every write (create, update, revert, import) checks the credential's variable name
    against the env policy.
    """

    def __init__(self, pool: ConnectionSource, env_policy: EnvNamePolicy | None = None) -> None:
        policy = env_policy or EnvNamePolicy()

        async def check(_conn: Connection, model: ModelCreate | ModelUpdate) -> None:
            policy.check_for_write(model.credential)

        super().__init__(pool, dataclasses.replace(MODELS, check=check))

    async def list(self, *, enabled_only: bool = False) -> builtins.list[Model]:
        """All models ordered by id."""
        if enabled_only:
            return await self.list_all(where="(definition->>'enabled')::boolean")
        return await self.list_all()
