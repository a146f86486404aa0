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
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from gateway_core.config import Settings
from gateway_core.domain.operations import OWNER_ATTRIBUTE, TYPE_ATTRIBUTE

logger = logging.getLogger(__name__)


async def connect_client(settings: Settings, address: str | None = None) -> Client:
    """Connect to the configured (or embedded) Temporal frontend."""
    target = address or settings.temporal_address
    if target is None:
        raise ValueError("no Temporal address: set PMP_TEMPORAL_ADDRESS or embed the server")
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        api_key=api_key,
        tls=settings.temporal_tls or api_key is not None,
    )


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
