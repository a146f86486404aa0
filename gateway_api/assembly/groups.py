"""The long-lived parts of one gateway process, in typed groups.

Handlers and services reach only the group they need (see gateway_api.deps); the
lifespan owns every group through `open_runtime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway_api.services.background import Background
from gateway_api.services.run_client import RunClient
from gateway_core.auth.keys import AdminKeys
from gateway_core.auth.rate_limit import RateLimiter
from gateway_core.auth.service import Authenticator
from gateway_core.auth.usage import UsageRecorder
from gateway_core.breaker.base import CircuitBreaker
from gateway_core.cache.base import ResponseCache
from gateway_core.cache.semantic import Embedder, SemanticIndex
from gateway_core.callbacks import CallbackTargets
from gateway_core.config import Settings
from gateway_core.credentials.env_policy import EnvNamePolicy
from gateway_core.domain.chains import ModelChain
from gateway_core.domain.models import Model
from gateway_core.domain.prompts import Prompt
from gateway_core.knowledge.backend import KnowledgeBackend
from gateway_core.metrics import GatewayMetrics
from gateway_core.storage.api_keys import ApiKeyRepository
from gateway_core.storage.chains import ChainRepository
from gateway_core.storage.database import Pool
from gateway_core.storage.knowledge_bases import KnowledgeBaseRepository
from gateway_core.storage.model_cache import TtlCache
from gateway_core.storage.models import ModelRepository
from gateway_core.storage.prompts import PromptRepository
from gateway_core.storage.workflows import WorkflowRepository
from gateway_core.streaming.bus import StreamBus
from gateway_core.telemetry import Telemetry
from temporal_workers.payload_codec import AesGcmCodec

Mode = Literal["serve", "api", "worker"]


@dataclass(frozen=True)
class StorageGroup:
    """PostgreSQL and the repositories over it, with their short-lived read caches."""

    pool: Pool
    # Which variables `env` credentials may name (checked on every model write).
    env_policy: EnvNamePolicy
    models: ModelRepository
    chains: ChainRepository
    prompts: PromptRepository
    api_keys: ApiKeyRepository
    knowledge_bases: KnowledgeBaseRepository
    workflows: WorkflowRepository
    model_cache: TtlCache[Model]
    chain_cache: TtlCache[ModelChain | None]
    prompt_cache: TtlCache[Prompt]

    def invalidate_all(self) -> None:
        """Forget every cached definition (after a bulk import)."""
        self.model_cache.invalidate()
        self.chain_cache.invalidate()
        self.prompt_cache.invalidate()


@dataclass(frozen=True)
class AuthGroup:
    """Who may call, how often, and what they used."""

    admin_keys: AdminKeys
    authenticator: Authenticator
    rate_limiter: RateLimiter
    usage: UsageRecorder


@dataclass(frozen=True)
class TemporalGroup:
    """The Temporal connection and the one adapter every service starts runs through."""

    runs: RunClient
    address: str
    ui_url: str | None
    # Encrypts every payload the process writes; the codec endpoint decodes with it.
    codec: AesGcmCodec


@dataclass(frozen=True)
class CacheGroup:
    """The response cache: exact entries, the semantic index and its embedder."""

    responses: ResponseCache
    semantic_index: SemanticIndex | None
    embedder: Embedder | None


@dataclass(frozen=True)
class ProvidersGroup:
    """What the API knows of upstreams: breaker state, the stream bus, metrics."""

    breaker: CircuitBreaker
    bus: StreamBus | None
    metrics: GatewayMetrics
    # Tracing of this process (off unless OTEL_EXPORTER_OTLP_*ENDPOINT is set).
    telemetry: Telemetry = field(default_factory=Telemetry.off)


@dataclass(frozen=True)
class KnowledgeGroup:
    """The knowledge-base backends, by `backend.type`; a new backend adds one entry."""

    backends: dict[str, KnowledgeBackend]


@dataclass(frozen=True)
class Runtime:
    """Every group of one process; built by `open_runtime`, closed by its exit."""

    settings: Settings
    mode: Mode
    storage: StorageGroup
    auth: AuthGroup
    temporal: TemporalGroup
    cache: CacheGroup
    providers: ProvidersGroup
    knowledge: KnowledgeGroup
    background: Background
    # Callback URL checks and per-operation signing secrets (the API's side).
    callbacks: CallbackTargets
