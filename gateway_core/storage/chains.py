"""Chain repository: chains with versions, validated against the models they name."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from gateway_core.domain.chains import ChainBase, ChainCreate, ChainUpdate, ModelChain
from gateway_core.errors import ConflictError, InvalidRequestError, NotFoundError
from gateway_core.storage.database import ConnectionSource
from gateway_core.storage.names import claim_routable_id

_INSERT_VERSION = "INSERT INTO chain_versions (chain_id, version, definition) VALUES (%s, %s, %s)"


class ChainNotFoundError(NotFoundError):
    default_code = "chain_not_found"


def _to_chain(row: dict[str, Any]) -> ModelChain:
    return ModelChain.model_validate(
        {
            **row["definition"],
            "id": row["id"],
            "version": row["version"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }
    )


async def _check_models(conn: AsyncConnection[DictRow], chain: ChainBase) -> None:
    """Every step must name an existing, enabled model; all problems are reported at once."""
    ids = [step.model_id for step in chain.steps]
    cursor = await conn.execute(
        "SELECT id, (definition->>'enabled')::boolean AS enabled FROM models WHERE id = ANY(%s)",
        (ids,),
    )
    enabled = {row["id"]: row["enabled"] for row in await cursor.fetchall()}
    problems = []
    first_param = None
    for index, model_id in enumerate(ids):
        if model_id not in enabled:
            problems.append(f"steps[{index}].model_id: model {model_id!r} does not exist")
        elif not enabled[model_id]:
            problems.append(f"steps[{index}].model_id: model {model_id!r} is disabled")
        else:
            continue
        first_param = first_param or f"steps[{index}].model_id"
    if problems:
        raise InvalidRequestError("; ".join(problems), param=first_param, code="invalid_model")


class ChainRepository:
    """Stores ModelChain definitions as JSON documents keyed by id."""

    def __init__(self, pool: ConnectionSource) -> None:
        self._pool = pool

    async def list(self) -> list[ModelChain]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT * FROM chains ORDER BY id")
            return [_to_chain(row) for row in await cursor.fetchall()]

    async def find(self, chain_id: str) -> ModelChain | None:
        """The chain with this id, or None (the chat route then looks for a model)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT * FROM chains WHERE id = %s", (chain_id,))
            row = await cursor.fetchone()
        return None if row is None else _to_chain(row)

    async def get(self, chain_id: str) -> ModelChain:
        chain = await self.find(chain_id)
        if chain is None:
            raise ChainNotFoundError(f"chain {chain_id!r} does not exist", param="id")
        return chain

    async def create(self, chain: ChainCreate) -> ModelChain:
        """Insert a chain; its version continues the history of a deleted namesake."""
        definition = Jsonb(chain.model_dump(mode="json", exclude={"id"}))
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await claim_routable_id(conn, chain.id, "chain")
                await _check_models(conn, chain)
                cursor = await conn.execute(
                    "INSERT INTO chains (id, version, definition) VALUES (%s,"
                    " (SELECT COALESCE(max(version), 0) + 1 FROM chain_versions"
                    "  WHERE chain_id = %s), %s) RETURNING *",
                    (chain.id, chain.id, definition),
                )
                row = await cursor.fetchone()
                if row is None:
                    raise RuntimeError("INSERT ... RETURNING returned no row")
                await conn.execute(_INSERT_VERSION, (chain.id, row["version"], definition))
        except UniqueViolation:
            raise ConflictError(f"chain {chain.id!r} already exists", param="id") from None
        return _to_chain(row)

    async def update(
        self, chain_id: str, update: ChainUpdate, *, expected_version: int | None = None
    ) -> ModelChain:
        definition = Jsonb(update.model_dump(mode="json"))
        async with self._pool.connection() as conn, conn.transaction():
            await _check_models(conn, update)
            cursor = await conn.execute(
                "UPDATE chains SET definition = %s, version = version + 1, updated_at = now()"
                " WHERE id = %s AND (%s::int IS NULL OR version = %s::int) RETURNING *",
                (definition, chain_id, expected_version, expected_version),
            )
            row = await cursor.fetchone()
            if row is None:
                exists = await conn.execute("SELECT 1 FROM chains WHERE id = %s", (chain_id,))
                if await exists.fetchone() is None:
                    raise ChainNotFoundError(f"chain {chain_id!r} does not exist", param="id")
                raise ConflictError(
                    f"chain {chain_id!r} is not at version {expected_version}",
                    code="version_conflict",
                )
            await conn.execute(_INSERT_VERSION, (chain_id, row["version"], definition))
        return _to_chain(row)

    async def delete(self, chain_id: str) -> None:
        async with self._pool.connection() as conn:
            cursor = await conn.execute("DELETE FROM chains WHERE id = %s", (chain_id,))
        if cursor.rowcount == 0:
            raise ChainNotFoundError(f"chain {chain_id!r} does not exist", param="id")
