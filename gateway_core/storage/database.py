"""PostgreSQL access: the psycopg 3 async pool and versioned migrations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import resources
from typing import Protocol

from pgvector.psycopg.vector import register_vector_info
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg.types import TypeInfo
from psycopg_pool import AsyncConnectionPool

logger = logging.getLogger(__name__)

Pool = AsyncConnectionPool[AsyncConnection[DictRow]]
Connection = AsyncConnection[DictRow]


class ConnectionSource(Protocol):
    """What repositories borrow connections from: the pool, or one shared connection."""

    def connection(self) -> AbstractAsyncContextManager[Connection]: ...


class SharedConnection:
    """One connection lent again and again, so several repositories write in one transaction.

    Their own `conn.transaction()` blocks become savepoints inside the caller's.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        yield self._conn


# Any constant works; it only has to be the same in every gateway process.
_MIGRATION_LOCK_ID = 0x504D5047


async def register_vector_type(conn: Connection) -> None:
    """Teach a new connection pgvector's `vector` type (lists/ndarrays in, Vector out).

    Before migration 0001 has created the extension there is no such type: the connection
    stays plain, and `migrate` replaces such connections once it has created it.
    """
    info = await TypeInfo.fetch(conn, "vector")
    if info is not None:
        register_vector_info(conn, info)


async def open_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> Pool:
    """Open a pool whose connections return rows as dicts; raises if unreachable."""
    pool: Pool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
        configure=register_vector_type,
        open=False,
        name="pmp-gateway",
    )
    await pool.open(wait=True, timeout=30)
    return pool


def _migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("gateway_core.storage") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(pool: Pool) -> list[str]:
    """Apply pending migrations under an advisory lock, so concurrent start-ups queue."""
    applied: list[str] = []
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_ID,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT version FROM schema_migrations")
        done = {row["version"] for row in await cursor.fetchall()}
        for number, name, sql in _migration_files():
            if number in done:
                continue
            await conn.execute(sql.encode())
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (number, name)
            )
            applied.append(name)
    if applied:
        logger.info("applied migrations", extra={"migrations": ",".join(applied)})
        # Connections opened before the vector extension existed lack its adapters.
        await pool.drain()
    return applied
