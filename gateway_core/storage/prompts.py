"""Prompt repository: every version of a prompt is kept; updates can be made conditional."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from gateway_core.domain.prompts import (
    Prompt,
    PromptBase,
    PromptCreate,
    PromptUpdate,
    PromptVersion,
    prompt_variables,
)
from gateway_core.errors import ConflictError, NotFoundError, PromptNotFoundError
from gateway_core.storage.database import Connection, ConnectionSource

_INSERT_VERSION = "INSERT INTO prompt_versions (prompt_id, version, definition) VALUES (%s, %s, %s)"
_LIST = (
    "SELECT * FROM prompts"
    " WHERE (%(pattern)s::text IS NULL OR definition->>'name' ILIKE %(pattern)s"
    "        OR id ILIKE %(pattern)s)"
    " AND definition->'tags' @> %(tags)s"
    " AND (%(after)s::text IS NULL OR id > %(after)s)"
    " ORDER BY id LIMIT %(limit)s"
)


@dataclass(frozen=True)
class PromptPage:
    """One page of a prompt listing; `has_more` says whether a next page exists."""

    prompts: list[Prompt]
    has_more: bool


def _definition(prompt: PromptBase) -> Jsonb:
    """The stored document: the operator's fields plus the variables found in the content."""
    fields = prompt.model_dump(mode="json", include=set(PromptBase.model_fields))
    fields["variables"] = [v.model_dump(mode="json") for v in prompt_variables(prompt.content)]
    return Jsonb(fields)


def _to_prompt(row: dict[str, Any]) -> Prompt:
    return Prompt.model_validate(
        {
            **row["definition"],
            "id": row["id"],
            "version": row["version"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }
    )


def _to_version(row: dict[str, Any]) -> PromptVersion:
    return PromptVersion.model_validate(
        {
            **row["definition"],
            "id": row["prompt_id"],
            "version": row["version"],
            "created_at": row["created_at"],
        }
    )


def _not_found(prompt_id: str) -> PromptNotFoundError:
    return PromptNotFoundError(f"prompt {prompt_id!r} does not exist", param="prompt_id")


def _no_version(prompt_id: str, version: int) -> NotFoundError:
    return NotFoundError(
        f"prompt {prompt_id!r} has no version {version}", param="version", code="version_not_found"
    )


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class PromptRepository:
    """Stores prompts as JSON documents keyed by id, with their version history."""

    def __init__(self, pool: ConnectionSource) -> None:
        self._pool = pool

    async def list(
        self,
        *,
        name: str | None = None,
        tags: list[str] | None = None,
        limit: int = 20,
        after: str | None = None,
    ) -> PromptPage:
        """Prompts ordered by id after the id `after`, whose name or id contains `name`
        (case-insensitively) and which carry every tag in `tags`."""
        params = {
            "pattern": _like_pattern(name) if name else None,
            "tags": Jsonb(tags or []),
            "after": after,
            "limit": limit + 1,
        }
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_LIST, params)
            rows = await cursor.fetchall()
        return PromptPage([_to_prompt(row) for row in rows[:limit]], len(rows) > limit)

    async def list_all(self) -> builtins.list[Prompt]:
        """Every prompt ordered by id."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT * FROM prompts ORDER BY id")
            return [_to_prompt(row) for row in await cursor.fetchall()]

    async def get(self, prompt_id: str) -> Prompt:
        """The current version of the prompt, or PromptNotFoundError."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT * FROM prompts WHERE id = %s", (prompt_id,))
            row = await cursor.fetchone()
        if row is None:
            raise _not_found(prompt_id)
        return _to_prompt(row)

    async def get_version(self, prompt_id: str, version: int) -> PromptVersion:
        """One version of the prompt (also of a deleted one), or a NotFoundError."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT * FROM prompt_versions WHERE prompt_id = %s AND version = %s",
                (prompt_id, version),
            )
            row = await cursor.fetchone()
        if row is None:
            raise _no_version(prompt_id, version)
        return _to_version(row)

    async def list_versions(
        self, prompt_id: str, *, limit: int = 50, before: int | None = None
    ) -> builtins.list[PromptVersion]:
        """Versions newest first, those below `before` when given; 404 if there are none."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT * FROM prompt_versions WHERE prompt_id = %s"
                " AND (%s::int IS NULL OR version < %s::int) ORDER BY version DESC LIMIT %s",
                (prompt_id, before, before, limit),
            )
            rows = await cursor.fetchall()
        if not rows and before is None:
            raise _not_found(prompt_id)
        return [_to_version(row) for row in rows]

    async def create(self, prompt: PromptCreate) -> Prompt:
        """Insert a new prompt; ConflictError when the id is taken.

        A re-created id continues its version history, so a version recorded by a run
        always names one text.
        """
        definition = _definition(prompt)
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cursor = await conn.execute(
                    "INSERT INTO prompts (id, version, definition) VALUES (%s,"
                    " (SELECT COALESCE(max(version), 0) + 1 FROM prompt_versions"
                    "  WHERE prompt_id = %s), %s) RETURNING *",
                    (prompt.id, prompt.id, definition),
                )
                row = await cursor.fetchone()
                if row is None:
                    raise RuntimeError("INSERT ... RETURNING returned no row")
                await conn.execute(_INSERT_VERSION, (prompt.id, row["version"], definition))
        except UniqueViolation:
            raise ConflictError(f"prompt {prompt.id!r} already exists", param="id") from None
        return _to_prompt(row)

    async def update(
        self, prompt_id: str, update: PromptUpdate, *, expected_version: int | None = None
    ) -> Prompt:
        """Replace the definition as a new version; ConflictError if not at `expected_version`."""
        definition = _definition(update)
        async with self._pool.connection() as conn, conn.transaction():
            row = await _write_version(conn, prompt_id, definition, expected_version)
        return _to_prompt(row)

    async def revert(
        self, prompt_id: str, version: int, *, expected_version: int | None = None
    ) -> Prompt:
        """Make an old version current again, as a new version."""
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "SELECT definition FROM prompt_versions WHERE prompt_id = %s AND version = %s",
                (prompt_id, version),
            )
            old = await cursor.fetchone()
            if old is None:
                raise _no_version(prompt_id, version)
            row = await _write_version(conn, prompt_id, Jsonb(old["definition"]), expected_version)
        return _to_prompt(row)

    async def delete(self, prompt_id: str) -> None:
        """Remove a prompt (its version history stays for audit)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute("DELETE FROM prompts WHERE id = %s", (prompt_id,))
        if cursor.rowcount == 0:
            raise _not_found(prompt_id)


async def _write_version(
    conn: Connection, prompt_id: str, definition: Jsonb, expected_version: int | None
) -> dict[str, Any]:
    """Inside a transaction: make `definition` the next version of the prompt.

    Concurrent writers with the same `expected_version` queue on the row lock; the
    later one then finds another version and gets ConflictError, so no write is lost.
    """
    cursor = await conn.execute(
        "UPDATE prompts SET definition = %s, version = version + 1, updated_at = now()"
        " WHERE id = %s AND (%s::int IS NULL OR version = %s::int) RETURNING *",
        (definition, prompt_id, expected_version, expected_version),
    )
    row = await cursor.fetchone()
    if row is None:
        exists = await conn.execute("SELECT version FROM prompts WHERE id = %s", (prompt_id,))
        current = await exists.fetchone()
        if current is None:
            raise _not_found(prompt_id)
        raise ConflictError(
            f"prompt {prompt_id!r} is at version {current['version']}, not {expected_version}",
            code="version_conflict",
        )
    await conn.execute(_INSERT_VERSION, (prompt_id, row["version"], definition))
    return row
