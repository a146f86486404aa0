"""The ApiKey entity: who may call the gateway, for what, and how often."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway_core.domain.models import ResourceId

KeyStatus = Literal["active", "suspended", "revoked", "expired"]
ResourceKind = Literal["models", "chains", "prompts", "knowledge_bases", "workflows"]
Access = Literal["all", "none"] | list[ResourceId]


class Permissions(BaseModel):
    """Per resource kind: every resource, none, or the named ones; plus the admin flag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: Access = "none"
    chains: Access = "none"
    prompts: Access = "none"
    knowledge_bases: Access = "none"
    workflows: Access = "none"
    admin: bool = False

    def allows(self, kind: ResourceKind, resource_id: str) -> bool:
        if self.admin:
            return True
        access: Access = getattr(self, kind)
        if access == "all":
            return True
        if access == "none":
            return False
        return resource_id in access


ALL_PERMISSIONS = Permissions(
    models="all", chains="all", prompts="all", knowledge_bases="all", workflows="all", admin=True
)


class RateLimits(BaseModel):
    """Sliding-window limits; unset means unlimited."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(default=None, gt=0)
    requests_per_hour: int | None = Field(default=None, gt=0)
    requests_per_day: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class ApiKeyBase(BaseModel):
    """Fields an operator sets on a key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    permissions: Permissions = Field(default_factory=Permissions)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    expires_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        # PostgreSQL's jsonb cannot hold U+0000: refuse it here (400), not at the INSERT.
        if _has_nul(value):
            raise ValueError("metadata must not contain the NUL character (U+0000)")
        return value

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class ApiKeyCreate(ApiKeyBase):
    """Body of POST /admin/api-keys."""

    id: ResourceId
    environment: Literal["live", "test"] = "live"


class ApiKeyUpdate(ApiKeyBase):
    """Body of PUT /admin/api-keys/{id}: name, permissions, limits, expiry, metadata."""


class ApiKey(ApiKeyBase):
    """A stored key as the admin API shows it: never the secret, never its hash."""

    id: ResourceId
    environment: Literal["live", "test"] = "live"
    status: KeyStatus
    key_prefix: str
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None = None
    rotated_at: datetime | None = None
    previous_key_valid_until: datetime | None = None

    def effective_status(self, now: datetime) -> KeyStatus:
        if self.status == "active" and self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return self.status


class CreatedApiKey(ApiKey):
    """The creation (or rotation) answer: the only time the full key is shown."""

    key: str


class RotateRequest(BaseModel):
    """Body of POST /admin/api-keys/{id}/rotate."""

    model_config = ConfigDict(extra="forbid")

    grace_period_seconds: int = Field(default=0, ge=0, le=30 * 24 * 3600)
