"""API key repository: keyed hashes only, status changes, rotation, batched usage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from gateway_core.auth.secrets import KeyHasher, generate_key
from gateway_core.domain.api_keys import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyUpdate,
    CreatedApiKey,
    KeyStatus,
)
from gateway_core.errors import ConflictError, NotFoundError
from gateway_core.storage.database import Pool


class ApiKeyNotFoundError(NotFoundError):
    default_code = "api_key_not_found"


@dataclass(frozen=True)
class StoredKey:
    """A key row as authentication needs it."""

    key: ApiKey
    key_hash: str
    previous_key_hash: str | None
    matched_previous: bool


def _to_key(row: dict[str, Any]) -> ApiKey:
    return ApiKey.model_validate(
        {
            **row["definition"],
            "id": row["id"],
            "environment": row["environment"],
            "status": row["status"],
            "key_prefix": _display_prefix(row["environment"], row["lookup"]),
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "last_used_at": row["last_used_at"],
            "rotated_at": row["rotated_at"],
            "previous_key_valid_until": row["previous_valid_until"],
        }
    )


def _display_prefix(environment: str, lookup: str) -> str:
    return f"pk_{environment}_{lookup}"


@dataclass(frozen=True)
class UsageRow:
    key_id: str
    model: str
    day: date
    requests: int
    prompt_tokens: int
    completion_tokens: int


class ApiKeyRepository:
    """Stores API keys; the secret itself is never stored, only its keyed hash."""

    def __init__(self, pool: Pool, hasher: KeyHasher) -> None:
        self._pool = pool
        self._hasher = hasher

    async def create(self, body: ApiKeyCreate) -> CreatedApiKey:
        secret, lookup = generate_key(body.environment)
        definition = Jsonb(body.model_dump(mode="json", exclude={"id", "environment"}))
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(
                    "INSERT INTO api_keys (id, environment, lookup, key_hash, status, definition)"
                    " VALUES (%s, %s, %s, %s, 'active', %s) RETURNING *",
                    (body.id, body.environment, lookup, self._hasher.digest(secret), definition),
                )
                row = await cursor.fetchone()
        except UniqueViolation:
            raise ConflictError(f"API key {body.id!r} already exists", param="id") from None
        assert row is not None
        return CreatedApiKey(**_to_key(row).model_dump(), key=secret)

    async def list_all(self) -> list[ApiKey]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT * FROM api_keys ORDER BY id")
            return [_to_key(row) for row in await cursor.fetchall()]

    async def get(self, key_id: str) -> ApiKey:
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT * FROM api_keys WHERE id = %s", (key_id,))
            row = await cursor.fetchone()
        if row is None:
            raise ApiKeyNotFoundError(f"API key {key_id!r} does not exist", param="id")
        return _to_key(row)

    async def update(self, key_id: str, body: ApiKeyUpdate) -> ApiKey:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "UPDATE api_keys SET definition = %s, updated_at = now() WHERE id = %s RETURNING *",
                (Jsonb(body.model_dump(mode="json")), key_id),
            )
            row = await cursor.fetchone()
        if row is None:
            raise ApiKeyNotFoundError(f"API key {key_id!r} does not exist", param="id")
        return _to_key(row)

    async def set_status(self, key_id: str, status: KeyStatus) -> ApiKey:
        """Suspend, activate or revoke; revocation is final."""
        async with self._pool.connection() as conn, conn.transaction():
            current = await self._locked(conn, key_id)
            if current["status"] == "revoked" and status != "revoked":
                raise ConflictError(
                    f"API key {key_id!r} is revoked; revocation is final", code="key_revoked"
                )
            extra = ", previous_valid_until = now()" if status == "revoked" else ""
            cursor = await conn.execute(
                f"UPDATE api_keys SET status = %s, updated_at = now(){extra}"
                " WHERE id = %s RETURNING *",
                (status, key_id),
            )
            row = await cursor.fetchone()
        assert row is not None
        return _to_key(row)

    async def rotate(self, key_id: str, grace_s: int) -> CreatedApiKey:
        """A new secret for the same id and permissions; the old one works `grace_s` longer."""
        async with self._pool.connection() as conn, conn.transaction():
            current = await self._locked(conn, key_id)
            if current["status"] == "revoked":
                raise ConflictError(f"API key {key_id!r} is revoked", code="key_revoked")
            secret, lookup = generate_key(current["environment"])
            cursor = await conn.execute(
                "UPDATE api_keys SET previous_lookup = lookup, previous_key_hash = key_hash,"
                " previous_valid_until = now() + %s, lookup = %s, key_hash = %s,"
                " rotated_at = now(), updated_at = now() WHERE id = %s RETURNING *",
                (timedelta(seconds=grace_s), lookup, self._hasher.digest(secret), key_id),
            )
            row = await cursor.fetchone()
        assert row is not None
        return CreatedApiKey(**_to_key(row).model_dump(), key=secret)

    @staticmethod
    async def _locked(conn: Any, key_id: str) -> dict[str, Any]:
        cursor = await conn.execute("SELECT * FROM api_keys WHERE id = %s FOR UPDATE", (key_id,))
        row: dict[str, Any] | None = await cursor.fetchone()
        if row is None:
            raise ApiKeyNotFoundError(f"API key {key_id!r} does not exist", param="id")
        return row

    async def find_by_lookup(self, lookup: str) -> StoredKey | None:
        """The key whose current (or, within its grace period, previous) lookup this is."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT * FROM api_keys WHERE lookup = %s"
                " OR (previous_lookup = %s AND previous_valid_until > now())",
                (lookup, lookup),
            )
            row = await cursor.fetchone()
        if row is None:
            return None
        previous = row["lookup"] != lookup
        return StoredKey(_to_key(row), row["key_hash"], row["previous_key_hash"], previous)

    async def record_activity(self, last_used: dict[str, datetime], usage: list[UsageRow]) -> None:
        """Write a batch of last-used times and usage counters in one transaction."""
        async with self._pool.connection() as conn, conn.transaction():
            for key_id, when in last_used.items():
                await conn.execute(
                    "UPDATE api_keys SET last_used_at = GREATEST(last_used_at, %s) WHERE id = %s",
                    (when, key_id),
                )
            for row in usage:
                await conn.execute(
                    "INSERT INTO api_key_usage (key_id, model, day, requests, prompt_tokens,"
                    " completion_tokens) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (key_id, day, model) DO UPDATE SET"
                    " requests = api_key_usage.requests + EXCLUDED.requests,"
                    " prompt_tokens = api_key_usage.prompt_tokens + EXCLUDED.prompt_tokens,"
                    " completion_tokens ="
                    " api_key_usage.completion_tokens + EXCLUDED.completion_tokens",
                    (
                        row.key_id,
                        row.model,
                        row.day,
                        row.requests,
                        row.prompt_tokens,
                        row.completion_tokens,
                    ),
                )

    async def usage(
        self, key_id: str, start: date, end: date, group_by: Literal["day", "model"]
    ) -> list[dict[str, Any]]:
        """Requests and tokens per day or per model, `start` to `end` inclusive."""
        column = "day" if group_by == "day" else "model"
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {column} AS bucket, sum(requests)::bigint AS requests,"
                " sum(prompt_tokens)::bigint AS prompt_tokens,"
                " sum(completion_tokens)::bigint AS completion_tokens"
                " FROM api_key_usage WHERE key_id = %s AND day BETWEEN %s AND %s"
                f" GROUP BY {column} ORDER BY {column}",
                (key_id, start, end),
            )
            rows = await cursor.fetchall()
        return [
            {
                group_by: row["bucket"].isoformat() if group_by == "day" else row["bucket"],
                "requests": row["requests"],
                "prompt_tokens": row["prompt_tokens"],
                "completion_tokens": row["completion_tokens"],
                "total_tokens": row["prompt_tokens"] + row["completion_tokens"],
            }
            for row in rows
        ]


def utc_now() -> datetime:
    return datetime.now(UTC)
