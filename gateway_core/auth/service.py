"""Authentication of callers: the admin key and stored API keys, with a short cache.

A verified key is remembered for `cache_ttl_s` (keyed by its HMAC, never the key), so a
request normally costs no database round trip; admin changes made through this process
take effect at once, elsewhere within the TTL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway_core.auth.keys import AdminKeys
from gateway_core.auth.secrets import KeyHasher, lookup_of
from gateway_core.domain.api_keys import (
    ALL_PERMISSIONS,
    Permissions,
    RateLimits,
    ResourceKind,
)
from gateway_core.errors import AuthenticationError, PermissionDeniedError
from gateway_core.storage.api_keys import ApiKeyRepository, StoredKey

_SINGULAR = {
    "models": "model",
    "chains": "chain",
    "prompts": "prompt",
    "knowledge_bases": "knowledge base",
    "workflows": "workflow",
}


@dataclass(frozen=True)
class Caller:
    """Who is calling: a stored key, or the bootstrap admin key."""

    key_id: str
    permissions: Permissions
    rate_limits: RateLimits

    @property
    def is_admin(self) -> bool:
        return self.permissions.admin

    def require(self, kind: ResourceKind, resource_id: str) -> None:
        """403 naming the resource when this key may not use it."""
        if not self.permissions.allows(kind, resource_id):
            raise PermissionDeniedError(
                f"API key {self.key_id!r} may not use {_SINGULAR[kind]} {resource_id!r}",
                param="model" if kind in ("models", "chains") else None,
                code="permission_denied",
            )

    def require_admin(self) -> None:
        if not self.is_admin:
            raise PermissionDeniedError(
                f"API key {self.key_id!r} is not an admin key", code="admin_required"
            )


# Not a valid key id (ids start with a letter or digit): no stored key can be mistaken for it.
ADMIN_CALLER_ID = "_admin"
ADMIN_CALLER = Caller(ADMIN_CALLER_ID, ALL_PERMISSIONS, RateLimits())


class Authenticator:
    """Turns a presented key into a Caller or a 401 that says what is wrong with it."""

    def __init__(
        self,
        admin_keys: AdminKeys,
        keys: ApiKeyRepository,
        hasher: KeyHasher,
        *,
        cache_ttl_s: float = 5.0,
    ) -> None:
        self._admin_keys = admin_keys
        self._keys = keys
        self._hasher = hasher
        self._ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, StoredKey]] = {}
        self.last_used: dict[str, datetime] = {}

    async def authenticate(self, presented: str) -> Caller:
        if self._admin_keys.verify(presented):
            return ADMIN_CALLER
        lookup = lookup_of(presented)
        if lookup is None:
            raise AuthenticationError("the API key is not valid")
        digest = self._hasher.digest(presented)
        stored = await self._stored(lookup, digest)
        if stored is None:
            raise AuthenticationError("the API key is not valid")
        now = datetime.now(UTC)
        status = stored.key.effective_status(now)
        if status == "revoked":
            raise AuthenticationError(
                f"API key {stored.key.id!r} has been revoked", code="key_revoked"
            )
        if status == "suspended":
            raise AuthenticationError(
                f"API key {stored.key.id!r} is suspended", code="key_suspended"
            )
        if status == "expired":
            raise AuthenticationError(
                f"API key {stored.key.id!r} expired at {stored.key.expires_at:%Y-%m-%dT%H:%M:%SZ}",
                code="key_expired",
            )
        if stored.matched_previous and (
            stored.key.previous_key_valid_until is None
            or stored.key.previous_key_valid_until <= now
        ):
            raise AuthenticationError(
                f"API key {stored.key.id!r} was rotated and its grace period is over",
                code="key_rotated",
            )
        self.last_used[stored.key.id] = now
        return Caller(stored.key.id, stored.key.permissions, stored.key.rate_limits)

    async def _stored(self, lookup: str, digest: str) -> StoredKey | None:
        entry = self._cache.get(digest)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        stored = await self._keys.find_by_lookup(lookup)
        if stored is None:
            return None
        expected = stored.previous_key_hash if stored.matched_previous else stored.key_hash
        if expected is None or not self._hasher.matches_digest(digest, expected):
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + self._ttl_s, stored)
        return stored

    def invalidate(self, key_id: str) -> None:
        """Forget cached verifications of a key whose status or secret changed."""
        for digest in [d for d, (_, s) in self._cache.items() if s.key.id == key_id]:
            del self._cache[digest]
