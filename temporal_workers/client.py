"""Temporal client factory: one pydantic-aware client per process."""

from __future__ import annotations

import logging

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest
from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.converter import PayloadCodec
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from gateway_core.config import Settings
from gateway_core.domain.operations import OWNER_ATTRIBUTE, TYPE_ATTRIBUTE
from gateway_core.process import StartupError
from gateway_core.telemetry import Telemetry
from temporal_workers.payload_codec import encrypted_converter

logger = logging.getLogger(__name__)


async def connect_client(
    settings: Settings,
    address: str | None = None,
    *,
    telemetry: Telemetry | None = None,
    codec: PayloadCodec | None = None,
) -> Client:
    """Connect to the configured (or embedded) Temporal frontend.

    With tracing on, the client (and so every worker built on it) carries the tracing
    interceptor: a run's start, workflow and activities join the caller's trace.
    """
    target = address or settings.temporal_address
    if target is None:
        raise ValueError("no Temporal address: set PMP_TEMPORAL_ADDRESS or embed the server")
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        # With a codec (every gateway process has one), payloads are stored encrypted.
        data_converter=encrypted_converter(codec),
        api_key=api_key,
        tls=tls_config(settings, api_key is not None),
        interceptors=_interceptors(telemetry),
    )


def tls_config(settings: Settings, has_api_key: bool) -> bool | TLSConfig:
    """TLS to the frontend: on with an API key or PMP_TEMPORAL_TLS; mTLS with a cert."""
    cert, key, ca = (
        settings.temporal_tls_cert_path,
        settings.temporal_tls_key_path,
        settings.temporal_tls_ca_path,
    )
    if cert is None and key is None and ca is None:
        return settings.temporal_tls or has_api_key
    if (cert is None) != (key is None):
        raise StartupError("mTLS to Temporal needs both a client certificate and its key")
    try:
        return TLSConfig(
            client_cert=cert.read_bytes() if cert else None,
            client_private_key=key.read_bytes() if key else None,
            server_root_ca_cert=ca.read_bytes() if ca else None,
        )
    except OSError as error:
        raise StartupError(f"cannot read a Temporal TLS file: {error.strerror}") from None


def _interceptors(telemetry: Telemetry | None) -> list[Interceptor]:
    tracer = telemetry.tracer() if telemetry is not None else None
    return [] if tracer is None else [TracingInterceptor(tracer)]


def install_sdk_metrics(settings: Settings) -> None:
    """Serve the Temporal SDK's metrics (PMP_TEMPORAL_METRICS_PORT) from this process.

    The SDK's runtime is per process and must be chosen before the first client
    connects, so the CLI calls this once at start-up.
    """
    if settings.temporal_metrics_port == 0:
        return
    address = f"{settings.host}:{settings.temporal_metrics_port}"
    telemetry = TelemetryConfig(
        metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True)
    )
    Runtime.set_default(Runtime(telemetry=telemetry), error_if_already_set=False)


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Register the keyword attributes async operations are listed by (idempotent).

    On a server where the gateway may not do this, create them once by hand:
    `temporal operator search-attribute create --name PmpOwner --type Keyword` and the
    same for PmpOperationType.
    """
    wanted = {
        OWNER_ATTRIBUTE: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        TYPE_ATTRIBUTE: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    }
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        name: kind for name, kind in wanted.items() if name not in existing.custom_attributes
    }
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
        )
    except RPCError as error:
        if error.status != RPCStatusCode.ALREADY_EXISTS:
            logger.warning(
                "could not register search attributes; listing operations needs them",
                extra={"error": error.message},
            )


async def set_retention(client: Client, namespace: str, days: int) -> None:
    """Keep closed runs (async operation results) for `days` on the embedded server."""
    await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace=namespace,
            config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=days * 86400)),
        )
    )
