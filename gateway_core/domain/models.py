"""The Model entity: which provider model a gateway model name stands for."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

ResourceId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,49})$", max_length=50)
]

ProviderName = Literal["openai"]


class CredentialRef(BaseModel):
    """Where the model's secret lives; never the secret itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["env"] = "env"
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)]


class ModelParams(BaseModel):
    """Default sampling parameters applied when the request leaves them out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: str | list[str] | None = None

    @field_validator("stop")
    @classmethod
    def _stop_limit(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value


class ModelBase(BaseModel):
    """Fields an operator sets on a model."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    provider: ProviderName
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    credential: CredentialRef | None = None
    config: ModelParams = Field(default_factory=ModelParams)
    enabled: bool = True
    # Ask the upstream for usage on streams (stream_options.include_usage); turn off for
    # OpenAI-compatible servers that reject stream_options.
    stream_usage: bool = True
    description: str | None = Field(default=None, max_length=2000)

    @field_validator("credential")
    @classmethod
    def _not_gateway_setting(cls, value: CredentialRef | None) -> CredentialRef | None:
        # Checked where operators write models, not in CredentialRef itself: recorded
        # workflow inputs must keep decoding whatever rules are added later.
        if value is not None and value.name.upper().startswith("PMP_"):
            raise ValueError("PMP_* variables are the gateway's own settings, not credentials")
        return value


class ModelCreate(ModelBase):
    """Body of POST /admin/models."""

    id: ResourceId


class ModelUpdate(ModelBase):
    """Body of PUT /admin/models/{id}: the whole new definition."""


class Model(ModelBase):
    """A stored model; `version` increases on every update."""

    id: ResourceId
    version: int = 1
    created_at: datetime
    updated_at: datetime
