"""Credential resolution: a model names where its secret is; this fetches it at call time."""

from __future__ import annotations

import os
from typing import Protocol

from gateway_core.domain.models import CredentialRef
from gateway_core.errors import ConfigurationError


class CredentialSource(Protocol):
    """Fetches one secret value for a credential reference."""

    async def fetch(self, ref: CredentialRef) -> str: ...


class EnvCredentialSource:
    """Reads the secret from an environment variable of the worker process."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self._environ = environ

    async def fetch(self, ref: CredentialRef) -> str:
        environ = self._environ if self._environ is not None else os.environ
        value = (environ.get(ref.name) or "").strip()
        if not value:
            raise ConfigurationError(
                f"credential environment variable {ref.name} is not set on the worker",
                code="credential_missing",
            )
        if not value.isprintable():
            raise ConfigurationError(
                f"credential environment variable {ref.name} contains control characters",
                code="credential_invalid",
            )
        return value


class CredentialResolver:
    """Picks the source named by `ref.source` and returns the secret (or None)."""

    def __init__(self, sources: dict[str, CredentialSource] | None = None) -> None:
        self._sources: dict[str, CredentialSource] = sources or {"env": EnvCredentialSource()}

    async def resolve(self, ref: CredentialRef | None) -> str | None:
        if ref is None:
            return None
        source = self._sources.get(ref.source)
        if source is None:
            raise ConfigurationError(f"credential source {ref.source!r} is not configured")
        return await source.fetch(ref)
