"""Model repository: models with a version that increases on every update."""

from __future__ import annotations

import builtins
from typing import Any

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from gateway_core.domain.models import Model, ModelCreate, ModelUpdate, ModelVersion
from gateway_core.errors import ConflictError, ModelNotFoundError, NotFoundError
from gateway_core.storage.database import ConnectionSource
from gateway_core.storage.names import claim_routable_id

_INSERT_VERSION = "INSERT INTO model_versions (model_id, version, definition) VALUES (%s, %s, %s)"


def _to_model(row: dict[str, Any]) -> Model:
    return Model.model_validate(
        {
            **row["definition"],
            "id": row["id"],
            "version": row["version"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }
    )


def _to_version(row: dict[str, Any]) -> ModelVersion:
    return ModelVersion.model_validate(
        {
            **row["definition"],
            "id": row["model_id"],
            "version": row["version"],
            "created_at": row["created_at"],
        }
    )


class ModelRepository:
    """Stores Model definitions as JSON documents keyed by id."""

    def __init__(self, pool: ConnectionSource) -> None:
        self._pool = pool

    async def list(self, *, enabled_only: bool = False) -> list[Model]:
        """All models ordered by id."""
        sql = "SELECT * FROM models"
        if enabled_only:
            sql += " WHERE (definition->>'enabled')::boolean"
        async with self._pool.connection() as conn:
            cursor = await conn.execute(sql + " ORDER BY id")
            return [_to_model(row) for row in await cursor.fetchall()]

    async def get(self, model_id: str) -> Model:
        """The model with this id, or ModelNotFoundError."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT * FROM models WHERE id = %s", (model_id,))
            row = await cursor.fetchone()
        if row is None:
            raise ModelNotFoundError(f"model {model_id!r} does not exist", param="model")
        return _to_model(row)

    async def create(self, model: ModelCreate) -> Model:
        """Insert a new model; ConflictError when the id is taken.

        A re-created id continues its version history, so a version recorded by a run
        always names one definition.
        """
        definition = Jsonb(model.model_dump(mode="json", exclude={"id"}))
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await claim_routable_id(conn, model.id, "model")
                cursor = await conn.execute(
                    "INSERT INTO models (id, version, definition) VALUES (%s,"
                    " (SELECT COALESCE(max(version), 0) + 1 FROM model_versions"
                    "  WHERE model_id = %s), %s) RETURNING *",
                    (model.id, model.id, definition),
                )
                row = await cursor.fetchone()
                if row is None:
                    raise RuntimeError("INSERT ... RETURNING returned no row")
                await conn.execute(_INSERT_VERSION, (model.id, row["version"], definition))
        except UniqueViolation:
            raise ConflictError(f"model {model.id!r} already exists", param="id") from None
        return _to_model(row)

    async def update(
        self, model_id: str, update: ModelUpdate, *, expected_version: int | None = None
    ) -> Model:
        """Replace the definition and bump the version; optional optimistic check."""
        definition = Jsonb(update.model_dump(mode="json"))
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "UPDATE models SET definition = %s, version = version + 1, updated_at = now()"
                " WHERE id = %s AND (%s::int IS NULL OR version = %s::int) RETURNING *",
                (definition, model_id, expected_version, expected_version),
            )
            row = await cursor.fetchone()
            if row is None:
                exists = await conn.execute("SELECT 1 FROM models WHERE id = %s", (model_id,))
                if await exists.fetchone() is None:
                    raise ModelNotFoundError(f"model {model_id!r} does not exist", param="model")
                raise ConflictError(
                    f"model {model_id!r} is not at version {expected_version}",
                    code="version_conflict",
                )
            await conn.execute(_INSERT_VERSION, (model_id, row["version"], definition))
        return _to_model(row)

    async def delete(self, model_id: str) -> None:
        """Remove a model (its version history stays for audit)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute("DELETE FROM models WHERE id = %s", (model_id,))
        if cursor.rowcount == 0:
            raise ModelNotFoundError(f"model {model_id!r} does not exist", param="model")

    async def list_versions(
        self, model_id: str, *, limit: int = 50, before: int | None = None
    ) -> builtins.list[ModelVersion]:
        """Versions newest first (also of a deleted model), those below `before` when given."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT * FROM model_versions WHERE model_id = %s"
                " AND (%s::int IS NULL OR version < %s::int) ORDER BY version DESC LIMIT %s",
                (model_id, before, before, limit),
            )
            rows = await cursor.fetchall()
        if not rows and before is None:
            raise ModelNotFoundError(f"model {model_id!r} does not exist", param="model")
        return [_to_version(row) for row in rows]

    async def get_version(self, model_id: str, version: int) -> ModelVersion:
        """One version of the model, or a NotFoundError."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT * FROM model_versions WHERE model_id = %s AND version = %s",
                (model_id, version),
            )
            row = await cursor.fetchone()
        if row is None:
            raise NotFoundError(
                f"model {model_id!r} has no version {version}",
                param="version",
                code="version_not_found",
            )
        return _to_version(row)

    async def revert(
        self, model_id: str, version: int, *, expected_version: int | None = None
    ) -> Model:
        """Make an old version current again, as a new version (validated as an update)."""
        old = await self.get_version(model_id, version)
        definition = ModelUpdate.model_validate(
            old.model_dump(exclude={"id", "version", "created_at"})
        )
        return await self.update(model_id, definition, expected_version=expected_version)
