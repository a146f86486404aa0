"""How a stream attempt that dies of an unexpected exception is counted (hardening 10)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.chat import ChatActivities
from activities.model_check import ModelVersionCheck
from gateway_core.breaker.base import BreakerConfig, MemoryCircuitBreaker
from gateway_core.config import Settings
from gateway_core.credentials.sources import build_resolver
from gateway_core.domain.chat import ProviderCallInput, ResolvedModel
from gateway_core.domain.models import ModelVersion
from gateway_core.metrics import GatewayMetrics
from gateway_core.providers.openai import OpenAIProvider
from gateway_core.providers.registry import ProviderRegistry
from gateway_core.streaming.bus import InProcessStreamBus


class _StoredAsRun:
    """Model versions exactly as the run names them (the check passes)."""

    async def get_version(self, entity_id: str, version: int) -> ModelVersion:
        return ModelVersion(
            id=entity_id,
            version=version,
            provider="openai",
            model="gpt",
            created_at=datetime.now(UTC),
        )


class _ProviderWithABug(OpenAIProvider):
    """An adapter whose stream fails with a plain exception before its first chunk."""

    def stream(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> AsyncGenerator[dict[str, Any]]:
        async def broken() -> AsyncGenerator[dict[str, Any]]:
            raise KeyError("choices")
            yield {}  # pragma: no cover - makes this an async generator

        return broken()


async def test_an_unexpected_failure_before_the_first_chunk_is_a_failed_attempt(
    tmp_path: Path,
) -> None:
    async with httpx.AsyncClient() as http:
        providers = ProviderRegistry(http)
        providers._providers["openai"] = _ProviderWithABug(http)
        breaker = MemoryCircuitBreaker(BreakerConfig())
        metrics = GatewayMetrics()
        chat = ChatActivities(
            providers,
            build_resolver(Settings(data_dir=tmp_path), http),
            InProcessStreamBus(),
            breaker,
            metrics,
            ModelVersionCheck(_StoredAsRun()),
        )
        model = ResolvedModel(id="m", version=1, provider="openai", upstream_model="gpt")
        call = ProviderCallInput(model=model, body={"messages": []}, stream_key="run-1")
        with pytest.raises((KeyError, ApplicationError)):
            await ActivityEnvironment().run(chat.stream, call)
        providers.close()
    status = await breaker.status("m")
    assert (status.requests, status.failures) == (1, 1)
    exposition = metrics.render().decode()
    assert 'outcome="KeyError"' in exposition
    assert 'outcome="ok"' not in exposition
