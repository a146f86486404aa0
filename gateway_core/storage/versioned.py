"""One repository for every versioned entity (models, chains, prompts, ...).

An entity lives in two tables: `<table>` (id, version, definition jsonb, created_at,
updated_at) holds the current definition, `<table>_versions` (<key>, version,
definition, created_at) every definition ever written. Deleting keeps the history, and
a re-created id continues it, so a version recorded by a run always names one definition.
What differs between entities is data and hooks on a `VersionedSpec`.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from gateway_core.errors import ConflictError, InvalidRequestError, NotFoundError
from gateway_core.storage.database import Connection, ConnectionSource
from gateway_core.storage.names import claim_routable_id


class CreateBody(Protocol):
    """A create body: the id plus the fields that become the definition."""

    @property
    def id(self) -> str: ...

    def model_dump(self, *, mode: str = ..., exclude: Any = ...) -> dict[str, Any]: ...


EntityT = TypeVar("EntityT", bound=BaseModel)
VersionT = TypeVar("VersionT", bound=BaseModel)
CreateT = TypeVar("CreateT", bound=CreateBody)
UpdateT = TypeVar("UpdateT", bound=BaseModel)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def fields_without_id(body: BaseModel | CreateBody) -> dict[str, Any]:
    """The default stored definition: the body's fields as JSON, minus the id."""
    return body.model_dump(mode="json", exclude={"id"})


@dataclass(frozen=True)
class VersionedSpec(Generic[EntityT, VersionT, CreateT, UpdateT]):
    """What one entity kind stores where, and the hooks that make it differ."""

    kind: str  # in messages ("model 'x' does not exist") and for claim_routable_id
    table: str
    versions_table: str
    key_column: str  # the versions table's column naming the entity
    entity_model: type[EntityT]
    version_model: type[VersionT]
    create_model: type[CreateT]
    update_model: type[UpdateT]
    not_found_error: type[NotFoundError]
    not_found_param: str
    # The stored document for a create or update body (prompts add their variables).
    definition: Callable[[CreateT | UpdateT], dict[str, Any]] = field(default=fields_without_id)
    # Run inside the write's transaction, before it (chains check the models they name).
    check: Callable[[Connection, CreateT | UpdateT], Awaitable[None]] | None = None
    # Models and chains share one id namespace (`"model": "<id>"` may name either).
    routable: bool = False

    def __post_init__(self) -> None:
        # Table names are spliced into SQL: only plain identifiers written in code.
        for name in (self.table, self.versions_table, self.key_column):
            if not _IDENTIFIER.match(name):
                raise ValueError(f"not a plain SQL identifier: {name!r}")

    def not_found(self, entity_id: str) -> NotFoundError:
        return self.not_found_error(
            f"{self.kind} {entity_id!r} does not exist", param=self.not_found_param
        )

    def no_version(self, entity_id: str, version: int) -> NotFoundError:
        return NotFoundError(
            f"{self.kind} {entity_id!r} has no version {version}",
            param="version",
            code="version_not_found",
        )


@dataclass(frozen=True)
class Page(Generic[EntityT]):
    """One page of a listing by id; `has_more` says whether a next page exists."""

    items: list[EntityT]
    has_more: bool


class VersionedRepository(Generic[EntityT, VersionT, CreateT, UpdateT]):
    """Create, read, list, update (optionally If-Match), delete, history and revert."""

    def __init__(
        self, pool: ConnectionSource, spec: VersionedSpec[EntityT, VersionT, CreateT, UpdateT]
    ) -> None:
        self._pool = pool
        self.spec = spec
        self._insert_version = (
            f"INSERT INTO {spec.versions_table} ({spec.key_column}, version, definition)"
            " VALUES (%s, %s, %s)"
        )

    async def create(self, body: CreateT) -> EntityT:
        """Insert a new entity; ConflictError when the id is taken."""
        spec = self.spec
        definition = Jsonb(spec.definition(body))
        try:
            async with self._pool.connection() as conn, conn.transaction():
                if spec.routable:
                    await claim_routable_id(conn, body.id, spec.kind)
                if spec.check is not None:
                    await spec.check(conn, body)
                cursor = await conn.execute(
                    f"INSERT INTO {spec.table} (id, version, definition) VALUES (%s,"
                    f" (SELECT COALESCE(max(version), 0) + 1 FROM {spec.versions_table}"
                    f"  WHERE {spec.key_column} = %s), %s) RETURNING *",
                    (body.id, body.id, definition),
                )
                row = await cursor.fetchone()
                if row is None:
                    raise RuntimeError("INSERT ... RETURNING returned no row")
                await conn.execute(self._insert_version, (body.id, row["version"], definition))
        except UniqueViolation:
            raise ConflictError(f"{spec.kind} {body.id!r} already exists", param="id") from None
        return self._to_entity(row)

    async def find(self, entity_id: str) -> EntityT | None:
        """The entity with this id, or None."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT * FROM {self.spec.table} WHERE id = %s", (entity_id,)
            )
            row = await cursor.fetchone()
        return None if row is None else self._to_entity(row)

    async def get(self, entity_id: str) -> EntityT:
        """The entity with this id, or the spec's not-found error."""
        entity = await self.find(entity_id)
        if entity is None:
            raise self.spec.not_found(entity_id)
        return entity

    async def list_page(
        self,
        *,
        limit: int,
        after: str | None = None,
        where: str = "TRUE",
        params: Mapping[str, Any] | None = None,
    ) -> Page[EntityT]:
        """Entities ordered by id after the id `after`.

        `where` is an SQL condition written in code, with `%(name)s` placeholders that
        `params` fills.
        """
        values = {**(params or {}), "after": after, "limit": limit + 1}
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT * FROM {self.spec.table} WHERE ({where})"
                " AND (%(after)s::text IS NULL OR id > %(after)s) ORDER BY id LIMIT %(limit)s",
                values,
            )
            rows = await cursor.fetchall()
        return Page([self._to_entity(row) for row in rows[:limit]], len(rows) > limit)

    async def list_all(self, *, where: str = "TRUE") -> builtins.list[EntityT]:
        """Every entity ordered by id (export reads this), optionally filtered by `where`."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT * FROM {self.spec.table} WHERE {where} ORDER BY id"
            )
            return [self._to_entity(row) for row in await cursor.fetchall()]

    async def update(
        self, entity_id: str, body: UpdateT, *, expected_version: int | None = None
    ) -> EntityT:
        """Replace the definition as a new version; ConflictError if not at `expected_version`.

        A body read back from GET may carry `id`: it must be this entity's.
        """
        named = getattr(body, "id", None)
        if named is not None and named != entity_id:
            raise InvalidRequestError(
                f"the body's id {named!r} is not the {self.spec.kind} being updated"
                f" ({entity_id!r})",
                param="id",
            )
        async with self._pool.connection() as conn, conn.transaction():
            row = await self._write_version(conn, entity_id, body, expected_version)
        return self._to_entity(row)

    async def revert(
        self, entity_id: str, version: int, *, expected_version: int | None = None
    ) -> EntityT:
        """Make an old version current again, as a new version (validated as an update)."""
        spec = self.spec
        async with self._pool.connection() as conn, conn.transaction():
            old = await self._version_row(conn, entity_id, version)
            fields = self._to_version(old).model_dump(include=set(spec.update_model.model_fields))
            body = spec.update_model.model_validate(fields)
            row = await self._write_version(conn, entity_id, body, expected_version)
        return self._to_entity(row)

    async def delete(self, entity_id: str) -> None:
        """Remove the entity; its version history stays for audit."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"DELETE FROM {self.spec.table} WHERE id = %s", (entity_id,)
            )
        if cursor.rowcount == 0:
            raise self.spec.not_found(entity_id)

    async def list_versions(
        self, entity_id: str, *, limit: int = 50, before: int | None = None
    ) -> builtins.list[VersionT]:
        """Versions newest first (also of a deleted entity), those below `before` when given.

        No versions at all, without `before`, is the entity's not-found error.
        """
        spec = self.spec
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT * FROM {spec.versions_table} WHERE {spec.key_column} = %s"
                " AND (%s::int IS NULL OR version < %s::int) ORDER BY version DESC LIMIT %s",
                (entity_id, before, before, limit),
            )
            rows = await cursor.fetchall()
        if not rows and before is None:
            raise spec.not_found(entity_id)
        return [self._to_version(row) for row in rows]

    async def get_version(self, entity_id: str, version: int) -> VersionT:
        """One version (also of a deleted entity), or NotFoundError `version_not_found`."""
        async with self._pool.connection() as conn:
            return self._to_version(await self._version_row(conn, entity_id, version))

    async def _version_row(self, conn: Connection, entity_id: str, version: int) -> dict[str, Any]:
        spec = self.spec
        cursor = await conn.execute(
            f"SELECT * FROM {spec.versions_table} WHERE {spec.key_column} = %s AND version = %s",
            (entity_id, version),
        )
        row = await cursor.fetchone()
        if row is None:
            raise spec.no_version(entity_id, version)
        return row

    async def _write_version(
        self, conn: Connection, entity_id: str, body: UpdateT, expected_version: int | None
    ) -> dict[str, Any]:
        """Inside a transaction: make `body` the next version of the entity.

        Concurrent writers with the same `expected_version` queue on the row lock; the
        later one then finds another version and gets ConflictError, so no write is lost.
        """
        spec = self.spec
        if spec.check is not None:
            await spec.check(conn, body)
        definition = Jsonb(spec.definition(body))
        cursor = await conn.execute(
            f"UPDATE {spec.table} SET definition = %s, version = version + 1, updated_at = now()"
            " WHERE id = %s AND (%s::int IS NULL OR version = %s::int) RETURNING *",
            (definition, entity_id, expected_version, expected_version),
        )
        row = await cursor.fetchone()
        if row is None:
            current = await conn.execute(
                f"SELECT version FROM {spec.table} WHERE id = %s", (entity_id,)
            )
            found = await current.fetchone()
            if found is None:
                raise spec.not_found(entity_id)
            raise ConflictError(
                f"{spec.kind} {entity_id!r} is at version {found['version']},"
                f" not {expected_version}",
                code="version_conflict",
            )
        await conn.execute(self._insert_version, (entity_id, row["version"], definition))
        return row

    def _to_entity(self, row: dict[str, Any]) -> EntityT:
        return self.spec.entity_model.model_validate(
            {
                **row["definition"],
                "id": row["id"],
                "version": row["version"],
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
            }
        )

    def _to_version(self, row: dict[str, Any]) -> VersionT:
        return self.spec.version_model.model_validate(
            {
                **row["definition"],
                "id": row[self.spec.key_column],
                "version": row["version"],
                "created_at": row["created_at"],
            }
        )
