"""Chat inputs and outputs as they travel through workflows and activities."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway_core.domain.models import CachePolicy, CredentialRef, ModelParams
from gateway_core.domain.prompts import PromptUse


class ResolvedModel(BaseModel):
    """A model as one run sees it: configuration and version, never a secret."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    id: str
    version: int
    provider: str
    upstream_model: str
    base_url: str | None = None
    credential: CredentialRef | None = None
    defaults: ModelParams = Field(default_factory=ModelParams)
    stream_usage: bool = True
    drop_unsupported_params: bool = False
    # Provider-specific settings; defaults keep recorded inputs decoding.
    api_version: str | None = None
    deployment: str | None = None
    region: str | None = None
    auth: str | None = None
    cache: CachePolicy | None = None
    kind: str = "chat"
    dimensions: int | None = None


class ChainStep(BaseModel):
    """One step of a chain: a model with its retry budget and latency limits.

    `max_latency_ms` bounds one plain attempt, or a stream's wait for its first chunk;
    a stream as a whole is bounded by `max_stream_ms` and kept alive by heartbeats.
    """

    model_config = ConfigDict(frozen=True)

    model: ResolvedModel
    max_retries: int = 2
    max_latency_ms: int = 120_000
    max_time_to_first_token_ms: int | None = None
    max_stream_ms: int = 600_000
    heartbeat_timeout_ms: int = 30_000
    on_exhausted: Literal["next", "fail"] = "next"


class ChatWorkflowInput(BaseModel):
    """Everything ChatWorkflow needs; `body` is the OpenAI request minus `model`."""

    steps: list[ChainStep]
    body: dict[str, Any]
    stream: bool = False
    request_id: str | None = None
    chain_id: str | None = None
    chain_version: int | None = None
    callback_url: str | None = None
    operation_type: str | None = None
    prompts: list[PromptUse] = []


class ProviderCallInput(BaseModel):
    """Input of one provider-call activity."""

    model: ResolvedModel
    body: dict[str, Any]
    stream_key: str | None = None
    attempt_timeout_ms: int | None = None
    first_chunk_timeout_ms: int | None = None
    request_id: str | None = None
    chain_id: str | None = None
    step_index: int = 0
    prior_attempts: int = 0


class ProviderCallResult(BaseModel):
    """What a provider-call activity returns: the answer and which attempt produced it."""

    response: dict[str, Any]
    attempt: int = 1


class ChatResult(BaseModel):
    """What a chat run returns: the OpenAI response plus who served it."""

    response: dict[str, Any]
    served_by: str
    steps_tried: int = 1
    attempts: int = 1
    fallbacks: int = 0
    chain_id: str | None = None
