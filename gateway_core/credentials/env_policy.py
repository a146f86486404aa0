"""Which environment variables a model's `env` credential may name.

Without a limit, an admin could point a model at `AWS_SECRET_ACCESS_KEY` (or any secret of
the worker's environment) and at a `base_url` of their own, and the worker would send it
there. Names must match PMP_CREDENTIAL_ENV_ALLOW: comma-separated shell patterns.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from gateway_core.domain.models import CredentialRef
from gateway_core.errors import ConfigurationError, InvalidRequestError

DEFAULT_ENV_ALLOW = "*_API_KEY,*_TOKEN,*_KEYS"
SETTING = "PMP_CREDENTIAL_ENV_ALLOW"


class EnvNamePolicy:
    """The patterns an `env` credential's variable name must match (case-sensitive)."""

    def __init__(self, patterns: str = DEFAULT_ENV_ALLOW) -> None:
        self._patterns = [part.strip() for part in patterns.split(",") if part.strip()]

    def allows(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self._patterns)

    def check_for_write(self, credential: CredentialRef | None) -> None:
        """400 when a model being written names a variable outside the allowed patterns."""
        if credential is None or credential.source != "env" or credential.name is None:
            return
        if not self.allows(credential.name):
            raise InvalidRequestError(
                f"credential.name {credential.name!r} is not an allowed environment variable:"
                f" names must match {SETTING} ({', '.join(self._patterns)})",
                param="credential.name",
                code="credential_not_allowed",
            )

    def check_for_read(self, name: str) -> None:
        """The worker's own check before it reads a variable (a stored model may predate
        the setting, or a run's input may not come from the gateway)."""
        if not self.allows(name):
            raise ConfigurationError(
                f"credential environment variable {name} is not allowed by {SETTING}",
                code="credential_not_allowed",
            )
