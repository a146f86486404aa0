"""The embedding activity: one provider call for a list of inputs, vectors packed.

Like the chat activities it checks the model's circuit breaker first and records the
outcome there and in the metrics; the answer is checked (one vector per input, of the
length the model is configured for) before it is packed for the run's history.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from temporalio import activity

from activities.guard import AttemptGuard
from activities.model_check import ModelMismatchError, ModelVersionCheck
from gateway_core.breaker.base import CircuitBreaker
from gateway_core.credentials.base import CredentialResolver
from gateway_core.credentials.rotation import call_with_rotation
from gateway_core.domain.embeddings import EmbedCallInput, EmbedCallResult, PackedVectors
from gateway_core.error_codec import application_error
from gateway_core.errors import (
    ConfigurationError,
    GatewayError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gateway_core.logging import request_id_var
from gateway_core.metrics import GatewayMetrics
from gateway_core.providers.registry import ProviderRegistry

# These answer with their model's own vector size unless asked for another one; sending
# `dimensions` to a model without it (OpenAI's ada-002) would be refused.
NATIVE_SIZE_PROVIDERS = ("openai", "azure_openai", "gemini")


def upstream_body(call: EmbedCallInput) -> dict[str, Any]:
    """The OpenAI embeddings body a provider adapter receives for this call."""
    body: dict[str, Any] = {**call.extra, "input": call.inputs, "encoding_format": "float"}
    wanted = call.expected_dimensions
    native = call.model.provider in NATIVE_SIZE_PROVIDERS and wanted == call.model.dimensions
    if wanted is not None and not native:
        body["dimensions"] = wanted
    return body


def packed_answer(answer: dict[str, Any], call: EmbedCallInput) -> PackedVectors:
    """The answer's vectors in input order, checked against the request, packed."""
    try:
        items = sorted(answer["data"], key=lambda item: int(item["index"]))
        vectors = [_floats(item["embedding"]) for item in items]
    except (KeyError, TypeError, ValueError):
        raise UpstreamError("upstream sent a malformed embeddings answer", retryable=True) from None
    if len(vectors) != len(call.inputs):
        raise UpstreamError(
            f"upstream sent {len(vectors)} vectors for {len(call.inputs)} inputs", retryable=True
        )
    expected = call.expected_dimensions
    lengths = {len(vector) for vector in vectors}
    if expected is not None and lengths != {expected}:
        raise ConfigurationError(
            f"model `{call.model.id}` answered vectors of {sorted(lengths)} dimensions;"
            f" {expected} were expected (check the model's `dimensions`)",
            code="dimensions_mismatch",
        )
    return PackedVectors.pack(vectors)


def _floats(embedding: Any) -> list[float]:
    """A vector as floats, whether sent as numbers or as base64 float32."""
    if isinstance(embedding, str):
        return PackedVectors(
            count=1, dimensions=len(base64.b64decode(embedding)) // 4, data=embedding
        ).rows()[0]
    return [float(value) for value in embedding]


class EmbeddingActivities:
    """Holds the long-lived clients the embedding activity needs."""

    def __init__(
        self,
        providers: ProviderRegistry,
        credentials: CredentialResolver,
        breaker: CircuitBreaker,
        metrics: GatewayMetrics,
        models: ModelVersionCheck,
    ) -> None:
        self._providers = providers
        self._credentials = credentials
        self._guard = AttemptGuard(breaker, metrics)
        self._models = models

    @activity.defn(name="embed")
    async def embed(self, call: EmbedCallInput) -> EmbedCallResult:
        """One embeddings call, bounded by the step's latency limit."""
        request_id_var.set(call.request_id)
        try:
            # Before any credential is read: the run's model is the stored version it names.
            await self._models.verify(call.model)
        except ModelMismatchError as error:
            raise application_error(error, attempt=activity.info().attempt) from None
        await self._guard.admit(call.model.id)
        started = time.monotonic()
        try:
            result = await self._attempt(call)
        except GatewayError as error:
            await self._guard.settle(call.model.id, call.chain_id, call.step_index, started, error)
            raise application_error(error, attempt=activity.info().attempt) from None
        await self._guard.settle(call.model.id, call.chain_id, call.step_index, started, None)
        return result

    async def _attempt(self, call: EmbedCallInput) -> EmbedCallResult:
        provider = self._providers.get(call.model.provider)
        body = upstream_body(call)
        limit_s = call.attempt_timeout_ms / 1000 if call.attempt_timeout_ms else None
        try:
            async with asyncio.timeout(limit_s):
                answer = await call_with_rotation(
                    self._credentials,
                    call.model.credential,
                    lambda api_key: provider.embed(call.model, body, api_key),
                )
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"upstream did not answer within {call.attempt_timeout_ms} ms",
                retryable=True,
                code="upstream_timeout",
            ) from None
        usage = answer.get("usage") or {}
        return EmbedCallResult(
            vectors=packed_answer(answer, call),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            attempt=activity.info().attempt,
        )
