"""API-key administration: writes that also drop the key's cached verifications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from gateway_core.auth.service import ADMIN_CALLER_ID, Authenticator
from gateway_core.auth.usage import UsageRecorder
from gateway_core.domain.api_keys import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyUpdate,
    CreatedApiKey,
    KeyStatus,
    RotateRequest,
)
from gateway_core.errors import InvalidRequestError
from gateway_core.storage.api_keys import ApiKeyRepository

GroupBy = Literal["day", "model"]
# The usage window when the caller gives no `from`: this many days before `to`.
DEFAULT_USAGE_DAYS = 30


@dataclass(frozen=True)
class KeyUsage:
    """A key's requests and tokens per day or per model, `start` to `end` inclusive."""

    key_id: str
    start: date
    end: date
    group_by: GroupBy
    rows: list[dict[str, Any]]

    def document(self) -> dict[str, object]:
        """The usage answer of the admin API and of a key's own usage in the UI."""
        return {
            "object": "list",
            "key_id": self.key_id,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "group_by": self.group_by,
            "data": self.rows,
        }


class ApiKeyAdmin:
    """Create, change and read API keys; a change takes effect on the next request."""

    def __init__(
        self, *, keys: ApiKeyRepository, authenticator: Authenticator, usage: UsageRecorder
    ) -> None:
        self._keys = keys
        self._authenticator = authenticator
        self._usage = usage

    async def create(self, body: ApiKeyCreate) -> CreatedApiKey:
        """A new key with its secret, which is shown this once."""
        return await self._keys.create(body)

    async def list_all(self) -> list[ApiKey]:
        """Every key, without secrets."""
        return await self._keys.list_all()

    async def get(self, key_id: str) -> ApiKey:
        """One key (404 when there is none)."""
        return await self._keys.get(key_id)

    async def update(self, key_id: str, body: ApiKeyUpdate) -> ApiKey:
        """Change a key's name, permissions, limits or expiry."""
        updated = await self._keys.update(key_id, body)
        self._authenticator.invalidate(key_id)
        return updated

    async def suspend(self, key_id: str) -> ApiKey:
        """Refuse the key until it is activated again."""
        return await self._set_status(key_id, "suspended")

    async def activate(self, key_id: str) -> ApiKey:
        """Accept a suspended key again."""
        return await self._set_status(key_id, "active")

    async def revoke(self, key_id: str) -> ApiKey:
        """Final: a revoked key (and any previous secret of it) never works again."""
        return await self._set_status(key_id, "revoked")

    async def rotate(self, key_id: str, request: RotateRequest | None = None) -> CreatedApiKey:
        """A new secret; the old one keeps working for the request's grace period."""
        grace = (request or RotateRequest()).grace_period_seconds
        rotated = await self._keys.rotate(key_id, grace)
        self._authenticator.invalidate(key_id)
        return rotated

    async def usage(
        self, key_id: str, *, start: date | None, end: date | None, group_by: GroupBy
    ) -> KeyUsage:
        """Usage up to `end` (today), from `start` (30 days before `end`); 400 if reversed."""
        if key_id != ADMIN_CALLER_ID:
            await self._keys.get(key_id)
        end = end or datetime.now(UTC).date()
        start = start or end - timedelta(days=DEFAULT_USAGE_DAYS)
        if start > end:
            raise InvalidRequestError("`from` is after `to`", param="from")
        await self._usage.flush()
        rows = await self._keys.usage(key_id, start, end, group_by)
        return KeyUsage(key_id, start, end, group_by, rows)

    async def _set_status(self, key_id: str, status: KeyStatus) -> ApiKey:
        changed = await self._keys.set_status(key_id, status)
        self._authenticator.invalidate(key_id)
        return changed
