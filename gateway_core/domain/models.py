"""The Model entity: which provider model a gateway model name stands for."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from gateway_core.domain.updates import ReadBackUpdate

MAX_DIMENSIONS = 16_000  # pgvector's own limit for a stored vector
# Providers with an embeddings API the gateway speaks (anthropic has none).
EMBEDDING_PROVIDERS = ("openai", "azure_openai", "gemini", "bedrock", "local")
# Embedding models shipped inside a wheel, served in-process by provider `local`, and the
# vector sizes each one gives (Matryoshka-trained: shorter ones are prefixes).
LOCAL_EMBEDDING_MODELS: dict[str, tuple[int, ...]] = {"wordllama": (64, 128, 256)}

ResourceId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,49})$", max_length=50)
]

ProviderName = Literal["openai", "azure_openai", "anthropic", "gemini", "bedrock", "local"]
# What a model answers: chat completions, or embeddings (vectors of `dimensions` floats).
ModelKind = Literal["chat", "embedding"]
CredentialSourceName = Literal["env", "aws_secrets_manager", "vault"]
# How a provider authenticates with the credential's value: `api_key` is the provider's
# own key header; `entra_id` (Azure OpenAI) sends the value as a Microsoft Entra ID
# bearer token.
AuthKind = Literal["api_key", "entra_id"]


class CredentialRef(BaseModel):
    """Where the model's secret lives; never the secret itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: CredentialSourceName = "env"
    # env: the variable's name
    name: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)]
        | None
    ) = None
    # aws_secrets_manager: the secret's id or ARN, optional region override
    secret_id: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None
    region: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,40}$")] | None = None
    # vault: KV v2 mount and path
    mount: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}$")] | None = None
    path: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./-]{1,500}$")] | None = None
    # aws_secrets_manager / vault: which key of a JSON / KV secret holds the value
    field: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Each source uses a few of the fields: show (and store) only those that are set.
        dumped: dict[str, Any] = handler(self)
        return {key: value for key, value in dumped.items() if value is not None}


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


class CachePolicy(BaseModel):
    """Whether and how a model's answers are cached (see gateway_api.response_cache)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["exact", "semantic"] = "exact"
    ttl_seconds: int = Field(default=3600, ge=1, le=30 * 24 * 3600)
    # Off by default: with sampling, a repeated question is expected to vary.
    cache_when_temperature_above_zero: bool = False
    # Semantic mode: the least cosine similarity of the last user message that counts.
    similarity_threshold: float = Field(default=0.95, ge=0, le=1)
    # Semantic mode: the provider's embedding model (default: PMP_CACHE_EMBEDDING_MODEL).
    embedding_model: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


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
    # Drop request options the provider has no equivalent for (seed, penalties,
    # logit_bias on Anthropic and Bedrock) instead of answering 400.
    drop_unsupported_params: bool = False
    description: str | None = Field(default=None, max_length=2000)
    # Provider-specific settings (see _provider_fields for which provider takes which).
    api_version: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,40}$")] | None = None
    deployment: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    region: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,40}$")] | None = None
    auth: AuthKind | None = None
    # Response caching; None (the default) caches nothing.
    cache: CachePolicy | None = None
    kind: ModelKind = "chat"
    # Embedding models: the length of the vectors the model returns.
    dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)

    @field_validator("credential")
    @classmethod
    def _not_gateway_setting(cls, value: CredentialRef | None) -> CredentialRef | None:
        # Checked where operators write models, not in CredentialRef itself: recorded
        # workflow inputs must keep decoding whatever rules are added later.
        if value is None:
            return value
        if value.name is not None and value.name.upper().startswith("PMP_"):
            raise ValueError("PMP_* variables are the gateway's own settings, not credentials")
        missing = [f for f in _CREDENTIAL_FIELDS[value.source] if getattr(value, f) is None]
        if missing:
            raise ValueError(f"credential source {value.source} needs {', '.join(missing)}")
        return value

    @model_validator(mode="after")
    def _provider_fields(self) -> Self:
        for name, providers in _PROVIDER_FIELDS.items():
            if getattr(self, name) is not None and self.provider not in providers:
                raise ValueError(f"`{name}` applies to provider {' or '.join(providers)} only")
        if self.provider == "azure_openai" and self.base_url is None:
            raise ValueError("azure_openai needs base_url: the resource endpoint")
        if self.provider == "bedrock" and self.region is None:
            raise ValueError("bedrock needs region")
        if self.auth == "entra_id" and self.credential is None:
            raise ValueError("entra_id auth needs a credential holding the bearer token")
        _check_kind(self)
        return self


def _check_kind(model: ModelBase) -> None:
    """Embedding models state their dimensions and take no chat settings; `local` serves
    only the embedding models shipped with the gateway, in the sizes they support."""
    if model.kind == "chat":
        if model.dimensions is not None:
            raise ValueError("`dimensions` applies to embedding models only")
        if model.provider == "local":
            raise ValueError("provider local serves embedding models only")
        return
    if model.provider not in EMBEDDING_PROVIDERS:
        raise ValueError(f"provider {model.provider} has no embedding models")
    if model.dimensions is None:
        raise ValueError("embedding models need `dimensions`: the length of their vectors")
    if model.cache is not None or model.config != ModelParams():
        raise ValueError("`cache` and `config` apply to chat models only")
    if model.provider == "local":
        _check_local(model)


def _check_local(model: ModelBase) -> None:
    sizes = LOCAL_EMBEDDING_MODELS.get(model.model)
    if sizes is None:
        names = ", ".join(sorted(LOCAL_EMBEDDING_MODELS))
        raise ValueError(f"provider local has no model {model.model!r} (it has: {names})")
    if model.dimensions not in sizes:
        raise ValueError(f"local model {model.model} has dimensions {', '.join(map(str, sizes))}")
    if model.base_url is not None or model.credential is not None:
        raise ValueError("provider local runs in-process: it takes no base_url or credential")


_CREDENTIAL_FIELDS: dict[str, tuple[str, ...]] = {
    "env": ("name",),
    "aws_secrets_manager": ("secret_id",),
    "vault": ("path",),
}
_PROVIDER_FIELDS: dict[str, tuple[str, ...]] = {
    "api_version": ("azure_openai", "anthropic"),
    "deployment": ("azure_openai",),
    "region": ("bedrock",),
    "auth": ("azure_openai",),
}


class ModelCreate(ModelBase):
    """Body of POST /admin/models."""

    id: ResourceId


class ModelUpdate(ReadBackUpdate, ModelBase):
    """Body of PUT /admin/models/{id}: the whole new definition."""


class Model(ModelBase):
    """A stored model; `version` increases on every update."""

    id: ResourceId
    version: int = 1
    created_at: datetime
    updated_at: datetime


class ModelVersion(ModelBase):
    """One version of a model as it was written; `created_at` is when it was written."""

    id: ResourceId
    version: int
    created_at: datetime
