"""The application services of one process, built once from its runtime groups."""

from __future__ import annotations

from dataclasses import dataclass

from gateway_api.assembly.groups import Runtime
from gateway_api.services.accounting import Accounting
from gateway_api.services.api_keys import ApiKeyAdmin
from gateway_api.services.cache_policy import ResponseCacheService
from gateway_api.services.chat import ChatService
from gateway_api.services.codec import CodecService, codec_origins
from gateway_api.services.config_admin import ConfigAdmin
from gateway_api.services.crag import CragService
from gateway_api.services.credentials import CredentialProviders
from gateway_api.services.embeddings import EmbeddingService
from gateway_api.services.entities import EntityServices, PromptService, VersionedEntityService
from gateway_api.services.ingestion import IngestionService, UploadLimits
from gateway_api.services.knowledge import KnowledgeBackends, KnowledgeService
from gateway_api.services.knowledge_admin import KnowledgeBaseAdmin
from gateway_api.services.limits import RateLimitGate
from gateway_api.services.model_health import ModelHealth
from gateway_api.services.operations import OperationsService
from gateway_api.services.prompt_refs import PromptReferences
from gateway_api.services.readiness import Readiness
from gateway_api.services.routing import Router
from gateway_api.services.workflow_runs import WorkflowRunsService
from gateway_core.providers.local import LocalEmbedder
from gateway_core.storage.blobs import BlobStore


@dataclass(frozen=True)
class Services:
    """Each service a router calls; a new entry point adds its service here."""

    chat: ChatService
    operations: OperationsService
    cache: ResponseCacheService
    limits: RateLimitGate
    entities: EntityServices
    readiness: Readiness
    api_keys: ApiKeyAdmin
    config: ConfigAdmin
    model_health: ModelHealth
    credentials: CredentialProviders
    embeddings: EmbeddingService
    knowledge: KnowledgeService
    ingestion: IngestionService
    crag: CragService
    workflow_runs: WorkflowRunsService
    codec: CodecService


def _chat_service(
    runtime: Runtime, router: Router, limits: RateLimitGate, cache: ResponseCacheService
) -> ChatService:
    storage = runtime.storage
    return ChatService(
        router=router,
        limits=limits,
        prompts=PromptReferences(storage.prompts, storage.prompt_cache),
        cache=cache,
        runs=runtime.temporal.runs,
        accounting=_accounting(runtime),
        bus=runtime.providers.bus,
        metrics=runtime.providers.metrics,
        background=runtime.background,
        callbacks=runtime.callbacks,
        max_messages=runtime.settings.max_messages,
    )


def _embedding_service(runtime: Runtime, router: Router, limits: RateLimitGate) -> EmbeddingService:
    return EmbeddingService(
        router=router,
        limits=limits,
        runs=runtime.temporal.runs,
        accounting=_accounting(runtime),
        metrics=runtime.providers.metrics,
        local=LocalEmbedder(),
    )


def _accounting(runtime: Runtime) -> Accounting:
    auth = runtime.auth
    return Accounting(usage=auth.usage, limiter=auth.rate_limiter, background=runtime.background)


def _ingestion_service(
    runtime: Runtime, knowledge: KnowledgeService, router: Router
) -> IngestionService:
    settings = runtime.settings
    return IngestionService(
        knowledge=knowledge,
        router=router,
        blobs=BlobStore(runtime.storage.pool),
        runs=runtime.temporal.runs,
        limits=UploadLimits(
            per_file=settings.max_upload_bytes, per_request=settings.max_ingest_request_bytes
        ),
        concurrency=settings.ingestion_concurrency,
    )


def _crag_service(
    runtime: Runtime,
    chat: ChatService,
    knowledge: KnowledgeService,
    router: Router,
    limits: RateLimitGate,
) -> CragService:
    return CragService(
        chat=chat,
        knowledge=knowledge,
        router=router,
        prompts=runtime.storage.prompt_cache,
        limits=limits,
        default_judge=runtime.settings.crag_judge_model,
    )


def _operations_service(runtime: Runtime) -> OperationsService:
    return OperationsService(
        runtime.temporal.runs, retention_days=runtime.settings.operation_retention_days
    )


def _workflow_runs_service(
    runtime: Runtime, router: Router, operations: OperationsService
) -> WorkflowRunsService:
    storage = runtime.storage
    return WorkflowRunsService(
        workflows=storage.workflows,
        router=router,
        prompts=storage.prompt_cache,
        knowledge_bases=storage.knowledge_bases,
        runs=runtime.temporal.runs,
        operations=operations,
        judge_model=runtime.settings.crag_judge_model,
    )


def _codec_service(runtime: Runtime) -> CodecService:
    origins = codec_origins(runtime.settings)
    return CodecService(runtime.temporal.codec, runtime.auth.admin_keys, origins)


def build_services(runtime: Runtime) -> Services:
    storage, auth = runtime.storage, runtime.auth
    cache = ResponseCacheService(runtime.cache, runtime.providers.metrics)
    limits = RateLimitGate(auth.rate_limiter)
    router = Router(runtime.settings, storage.model_cache, storage.chain_cache)
    chat = _chat_service(runtime, router, limits, cache)
    embeddings = _embedding_service(runtime, router, limits)  # also the KBs' TextEmbedder
    entities = EntityServices(
        models=VersionedEntityService(storage.models, storage.model_cache.invalidate),
        chains=VersionedEntityService(storage.chains, storage.chain_cache.invalidate),
        prompts=PromptService(storage.prompts, storage.prompt_cache.invalidate),
        knowledge_bases=KnowledgeBaseAdmin(
            storage.knowledge_bases, KnowledgeBackends(runtime.knowledge.backends), embeddings
        ),
        # Nothing caches workflow definitions yet: a run pins the version it starts with.
        workflows=VersionedEntityService(storage.workflows, lambda _id: None),
    )
    knowledge = KnowledgeService(
        repository=storage.knowledge_bases,
        backends=KnowledgeBackends(runtime.knowledge.backends),
        embedder=embeddings,
        limits=limits,
        telemetry=runtime.providers.telemetry,
    )
    operations = _operations_service(runtime)
    return Services(
        chat=chat,
        operations=operations,
        cache=cache,
        limits=limits,
        entities=entities,
        readiness=Readiness(storage.pool, runtime.temporal.runs, runtime.mode),
        api_keys=ApiKeyAdmin(
            keys=storage.api_keys, authenticator=auth.authenticator, usage=auth.usage
        ),
        config=ConfigAdmin(storage),
        model_health=ModelHealth(
            models=storage.models,
            breaker=runtime.providers.breaker,
            metrics=runtime.providers.metrics,
        ),
        credentials=CredentialProviders(runtime.settings),
        embeddings=embeddings,
        knowledge=knowledge,
        ingestion=_ingestion_service(runtime, knowledge, router),
        crag=_crag_service(runtime, chat, knowledge, router, limits),
        workflow_runs=_workflow_runs_service(runtime, router, operations),
        codec=_codec_service(runtime),
    )
