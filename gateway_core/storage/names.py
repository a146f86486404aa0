"""Model and chain ids share one namespace: `"model": "<id>"` may name either."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from gateway_core.errors import ConflictError

_TABLES = {"model": "models", "chain": "chains"}


async def claim_routable_id(conn: AsyncConnection[DictRow], resource_id: str, kind: str) -> None:
    """Inside a transaction: refuse an id that the other kind already uses.

    The advisory lock serialises concurrent creations of the same id across both tables.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('routable:' || %s))", (resource_id,))
    for other, table in _TABLES.items():
        if other == kind:
            continue
        cursor = await conn.execute(f"SELECT 1 FROM {table} WHERE id = %s", (resource_id,))
        if await cursor.fetchone() is not None:
            raise ConflictError(
                f"{resource_id!r} is already the id of a {other}; models and chains share ids",
                param="id",
            )
