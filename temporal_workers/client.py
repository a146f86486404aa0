"""Temporal client factory: one pydantic-aware client per process."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from gateway_core.config import Settings


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
