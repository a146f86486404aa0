"""Migrations apply once, even when several gateway processes start at the same time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gateway_core.storage.database import migrate, open_pool


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    name = f"pmp_migrate_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(database_url)
    params["dbname"] = name
    yield make_conninfo(**params)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_concurrent_start_ups_apply_each_migration_exactly_once(
    fresh_database: str,
) -> None:
    pools = [await open_pool(fresh_database, min_size=1, max_size=2) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(pool) for pool in pools))
        applied = [name for result in results for name in result]
        assert applied == sorted(set(applied))  # each applied by exactly one process
        assert "0001_initial.sql" in applied
        async with pools[0].connection() as conn:
            cursor = await conn.execute("SELECT count(*) AS n FROM schema_migrations")
            row = await cursor.fetchone()
            assert row is not None
            assert row["n"] == len(applied)
            extension = await conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            )
            assert await extension.fetchone() is not None
        assert await migrate(pools[0]) == []
    finally:
        for pool in pools:
            await pool.close()
