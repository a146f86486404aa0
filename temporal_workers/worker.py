"""Worker assembly: the workflows and activities of the gateway on one task queue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.callbacks import CallbackActivities
from activities.chat import ChatActivities
from activities.embeddings import EmbeddingActivities
from activities.ingestion import IngestionActivities
from activities.model_check import HttpCredentialCheck, ModelVersionCheck
from activities.userflow import UserflowActivities
from gateway_core.breaker.base import CircuitBreaker
from gateway_core.config import Settings
from gateway_core.credentials.sources import build_resolver
from gateway_core.knowledge.backend import KnowledgeBackend
from gateway_core.metrics import GatewayMetrics
from gateway_core.outbound import OutboundPolicy, outbound_client
from gateway_core.providers.registry import ProviderRegistry, build_http_client
from gateway_core.storage.blobs import BlobStore
from gateway_core.storage.database import Pool
from gateway_core.storage.models import ModelRepository
from gateway_core.storage.workflows import WorkflowRepository
from gateway_core.streaming.bus import StreamBus
from gateway_core.telemetry import Telemetry
from temporal_workers.result_handoff import HandOffInterceptor, ResultHandOff
from workflows.callback import CallbackWorkflow
from workflows.chat import ChatWorkflow
from workflows.embeddings import EmbeddingWorkflow
from workflows.ingestion import IngestionWorkflow
from workflows.user import UserWorkflow

WORKFLOWS = [ChatWorkflow, CallbackWorkflow, EmbeddingWorkflow, IngestionWorkflow, UserWorkflow]


@dataclass(frozen=True)
class GatewayActivities:
    """The activity holders of one worker, each with the clients it needs."""

    chat: ChatActivities
    callbacks: CallbackActivities
    embeddings: EmbeddingActivities
    ingestion: IngestionActivities
    userflow: UserflowActivities


def build_worker(
    client: Client,
    task_queue: str,
    activities: GatewayActivities,
    graceful_shutdown_s: float = 0.0,
    handoff: ResultHandOff | None = None,
) -> Worker:
    """A worker for every gateway workflow.

    Workflows run unsandboxed for latency (a sandboxed task costs several ms more on two
    cores); determinism is guarded by replaying recorded histories under the sandbox
    in tests/integration/test_replay.py. With `handoff` (the API shares this process),
    each run's result also goes straight to the request awaiting it.
    """
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[
            activities.chat.complete,
            activities.chat.stream,
            activities.callbacks.deliver,
            activities.embeddings.embed,
            activities.ingestion.parse,
            activities.ingestion.chunk,
            activities.ingestion.embed_batch,
            activities.ingestion.upsert,
            activities.ingestion.cleanup,
            activities.userflow.kb_search,
            activities.userflow.http_request,
        ],
        workflow_runner=UnsandboxedWorkflowRunner(),
        interceptors=[HandOffInterceptor(handoff)] if handoff is not None else [],
        max_concurrent_workflow_tasks=200,
        max_concurrent_activities=500,
        max_concurrent_local_activities=500,
        # Cancellation reaches an activity only with a heartbeat response: send them often.
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        default_heartbeat_throttle_interval=timedelta(seconds=1),
        # On shutdown: stop polling, let running activities finish this long, then cancel.
        graceful_shutdown_timeout=timedelta(seconds=graceful_shutdown_s),
    )


@asynccontextmanager
async def running_worker(
    settings: Settings,
    client: Client,
    bus: StreamBus,
    breaker: CircuitBreaker,
    metrics: GatewayMetrics,
    callback_secret: bytes,
    pool: Pool,
    knowledge_backends: Mapping[str, KnowledgeBackend],
    telemetry: Telemetry | None = None,
    handoff: ResultHandOff | None = None,
) -> AsyncIterator[Worker]:
    """Run the worker with its own upstream connection pool until the block exits."""
    http = build_http_client(settings.upstream_connect_timeout_s, settings.upstream_max_connections)
    if telemetry is not None:
        telemetry.instrument_http(http)
    providers = ProviderRegistry(http, metrics, telemetry)
    policy = OutboundPolicy.from_settings(settings)
    callback_http = outbound_client(policy, connect_timeout_s=settings.upstream_connect_timeout_s)
    try:
        wiring = _Wiring(
            settings,
            pool,
            http,
            policy,
            callback_http,
            providers,
            bus,
            breaker,
            metrics,
            callback_secret,
            knowledge_backends,
            telemetry,
        )
        # Blobs of runs that never reached their clean-up (terminated, or lost).
        await BlobStore(pool).sweep(settings.ingestion_blob_ttl_hours)
        worker = build_worker(
            client,
            settings.temporal_task_queue,
            _activities(wiring),
            graceful_shutdown_s=settings.drain_seconds,
            handoff=handoff,
        )
        async with worker:
            yield worker
    finally:
        providers.close()
        await callback_http.aclose()
        await http.aclose()


@dataclass(frozen=True)
class _Wiring:
    """What the activities share: the process's clients, breaker, bus and metrics."""

    settings: Settings
    pool: Pool
    http: httpx.AsyncClient  # upstream providers
    policy: OutboundPolicy
    outbound: httpx.AsyncClient  # user-chosen URLs, through `policy`
    providers: ProviderRegistry
    bus: StreamBus
    breaker: CircuitBreaker
    metrics: GatewayMetrics
    callback_secret: bytes
    knowledge_backends: Mapping[str, KnowledgeBackend]
    telemetry: Telemetry | None


def _activities(w: _Wiring) -> GatewayActivities:
    resolver = build_resolver(w.settings, w.http)
    # Every run's model is checked against its stored version before a credential is read.
    models = ModelVersionCheck(ModelRepository(w.pool))
    embeddings = EmbeddingActivities(w.providers, resolver, w.breaker, w.metrics, models)
    return GatewayActivities(
        chat=ChatActivities(w.providers, resolver, w.bus, w.breaker, w.metrics, models),
        # Callback URLs are user-chosen: their own client enforces the outbound policy.
        callbacks=CallbackActivities(w.outbound, w.callback_secret),
        embeddings=embeddings,
        ingestion=IngestionActivities(BlobStore(w.pool), w.knowledge_backends, embeddings),
        # Workflow http_request steps share the callbacks' policy-enforcing client.
        userflow=UserflowActivities(
            w.knowledge_backends,
            embeddings,
            resolver,
            w.outbound,
            w.policy,
            HttpCredentialCheck(WorkflowRepository(w.pool)),
            w.telemetry,
        ),
    )
