"""Worker assembly: the workflows and activities of the gateway on one task queue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.callbacks import CallbackActivities
from activities.chat import ChatActivities
from activities.embeddings import EmbeddingActivities
from activities.ingestion import IngestionActivities
from activities.model_check import ModelVersionCheck
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
from gateway_core.streaming.bus import StreamBus
from gateway_core.telemetry import Telemetry
from workflows.callback import CallbackWorkflow
from workflows.chat import ChatWorkflow
from workflows.embeddings import EmbeddingWorkflow
from workflows.ingestion import IngestionWorkflow
from workflows.user import UserWorkflow

WORKFLOWS = [ChatWorkflow, CallbackWorkflow, EmbeddingWorkflow, IngestionWorkflow, UserWorkflow]


def build_worker(
    client: Client,
    task_queue: str,
    chat: ChatActivities,
    callbacks: CallbackActivities,
    embeddings: EmbeddingActivities,
    ingestion: IngestionActivities,
    userflow: UserflowActivities,
    graceful_shutdown_s: float = 0.0,
) -> Worker:
    """A worker for every gateway workflow.

    Workflows run unsandboxed for latency (a sandboxed task costs several ms more on two
    cores); determinism is guarded by replaying recorded histories under the sandbox
    in tests/integration/test_replay.py.
    """
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[
            chat.complete,
            chat.stream,
            callbacks.deliver,
            embeddings.embed,
            ingestion.parse,
            ingestion.chunk,
            ingestion.embed_batch,
            ingestion.upsert,
            ingestion.cleanup,
            userflow.kb_search,
            userflow.http_request,
        ],
        workflow_runner=UnsandboxedWorkflowRunner(),
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
) -> AsyncIterator[Worker]:
    """Run the worker with its own upstream connection pool until the block exits."""
    http = build_http_client(settings.upstream_connect_timeout_s, settings.upstream_max_connections)
    if telemetry is not None:
        telemetry.instrument_http(http)
    providers = ProviderRegistry(http, metrics, telemetry)
    policy = OutboundPolicy.from_settings(settings)
    callback_http = outbound_client(policy, connect_timeout_s=settings.upstream_connect_timeout_s)
    try:
        resolver = build_resolver(settings, http)
        # Every run's model is checked against its stored version before a credential is read.
        models = ModelVersionCheck(ModelRepository(pool))
        chat = ChatActivities(providers, resolver, bus, breaker, metrics, models)
        # Callback URLs are user-chosen: their own client enforces the outbound policy.
        callbacks = CallbackActivities(callback_http, callback_secret)
        embeddings = EmbeddingActivities(providers, resolver, breaker, metrics)
        blobs = BlobStore(pool)
        # Blobs of runs that never reached their clean-up (terminated, or lost).
        await blobs.sweep(settings.ingestion_blob_ttl_hours)
        ingestion = IngestionActivities(blobs, knowledge_backends, embeddings)
        # Workflow http_request steps share the callbacks' policy-enforcing client.
        userflow = UserflowActivities(
            knowledge_backends, embeddings, resolver, callback_http, policy, telemetry
        )
        worker = build_worker(
            client,
            settings.temporal_task_queue,
            chat,
            callbacks,
            embeddings,
            ingestion,
            userflow,
            graceful_shutdown_s=settings.drain_seconds,
        )
        async with worker:
            yield worker
    finally:
        providers.close()
        await callback_http.aclose()
        await http.aclose()
