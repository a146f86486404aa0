"""Credential resolution: a model names where its secret is; this fetches it at call time.

Values from remote stores are cached for a TTL; `invalidate` drops one so the next
`resolve` fetches it fresh (see credentials.rotation).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel

from gateway_core.credentials.env_policy import EnvNamePolicy
from gateway_core.domain.models import CredentialRef
from gateway_core.errors import ConfigurationError


class SourceStatus(BaseModel):
    """What GET /admin/credentials/providers shows for one source; never a value."""

    source: str
    configured: bool
    reachable: bool | None = None
    authenticated: bool | None = None
    detail: str = ""
    settings: dict[str, str] = {}


class CredentialSource(Protocol):
    """Fetches one secret value for a credential reference."""

    name: str
    # Whether fetched values may be cached (a remote store), or are cheap to read.
    cacheable: bool

    async def fetch(self, ref: CredentialRef) -> str: ...

    async def check(self) -> SourceStatus:
        """Whether the store answers and accepts the gateway's own identity."""
        ...


def checked_value(value: str, where: str) -> str:
    """A fetched secret, refused when empty or carrying control characters."""
    value = value.strip()
    if not value:
        raise ConfigurationError(f"credential {where} is empty", code="credential_missing")
    if not value.isprintable():
        raise ConfigurationError(
            f"credential {where} contains control characters", code="credential_invalid"
        )
    return value


class EnvCredentialSource:
    """Reads the secret from an environment variable of the worker process."""

    name = "env"
    cacheable = False

    def __init__(
        self, environ: dict[str, str] | None = None, policy: EnvNamePolicy | None = None
    ) -> None:
        self._environ = environ
        self._policy = policy or EnvNamePolicy()

    async def fetch(self, ref: CredentialRef) -> str:
        environ = self._environ if self._environ is not None else os.environ
        variable = ref.name or ""
        self._policy.check_for_read(variable)
        if not (environ.get(variable) or "").strip():
            raise ConfigurationError(
                f"credential environment variable {variable} is not set on the worker",
                code="credential_missing",
            )
        return checked_value(environ[variable], f"environment variable {variable}")

    async def check(self) -> SourceStatus:
        return SourceStatus(
            source=self.name, configured=True, reachable=True, detail="worker environment"
        )


class CredentialResolver:
    """Picks the source named by `ref.source` and returns the secret (or None)."""

    def __init__(
        self,
        sources: dict[str, CredentialSource] | None = None,
        *,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sources: dict[str, CredentialSource] = sources or {"env": EnvCredentialSource()}
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[CredentialRef, tuple[float, str]] = {}

    @property
    def sources(self) -> dict[str, CredentialSource]:
        return dict(self._sources)

    async def resolve(self, ref: CredentialRef | None) -> str | None:
        if ref is None:
            return None
        source = self._sources.get(ref.source)
        if source is None:
            raise ConfigurationError(f"credential source {ref.source!r} is not configured")
        cached = self._cache.get(ref)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        value = await source.fetch(ref)
        if source.cacheable and self._ttl_s > 0:
            self._cache[ref] = (self._clock() + self._ttl_s, value)
        return value

    def invalidate(self, ref: CredentialRef) -> None:
        """Forget the cached value, so the next resolve fetches it again."""
        self._cache.pop(ref, None)
