"""GenAI spans and metrics around every provider call, named by the OpenTelemetry conventions.

`ObservedProvider` wraps one `LlmProvider`; the registry hands it out for every call, so
each attempt (a retry, a fallback step, a credential rotation) is one `chat {model}` span
and one observation, whatever the provider.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from gateway_core.domain.chat import ResolvedModel
from gateway_core.errors import GatewayError
from gateway_core.logging import request_id_var
from gateway_core.metrics import GatewayMetrics, GenAiLabels
from gateway_core.providers.base import LlmProvider
from gateway_core.telemetry.setup import Telemetry

# gen_ai.provider.name values of the conventions, by the gateway's provider names.
PROVIDER_NAMES = {
    "openai": "openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "local": "local",
}


@dataclass
class _Outcome:
    """What one call returned, gathered from a response or the chunks of a stream."""

    response_model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reasons: list[str] = field(default_factory=list)
    first_chunk_s: float | None = None
    texts: list[str] = field(default_factory=list)

    def read_usage(self, usage: dict[str, Any] | None) -> None:
        if usage:
            self.input_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
            self.output_tokens = usage.get("completion_tokens")

    def read(self, document: dict[str, Any]) -> None:
        """Fold in a `chat.completion`, a chunk, or an embeddings `list`."""
        self.response_model = document.get("model") or self.response_model
        self.read_usage(document.get("usage"))
        for choice in document.get("choices") or []:
            if choice.get("finish_reason"):
                self.finish_reasons.append(choice["finish_reason"])
            message = choice.get("message") or choice.get("delta") or {}
            if isinstance(message.get("content"), str):
                self.texts.append(message["content"])


class ObservedProvider:
    """An `LlmProvider` that records a span (when tracing is on) and metrics per call."""

    def __init__(
        self, inner: LlmProvider, name: str, metrics: GatewayMetrics, telemetry: Telemetry
    ) -> None:
        self._inner = inner
        self._provider_name = PROVIDER_NAMES.get(name, name)
        self._metrics = metrics
        self._tracer: Tracer | None = telemetry.tracer()
        self._content = telemetry.trace_content

    async def complete(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        outcome = _Outcome()
        with self._observed("chat", model, body, outcome):
            response = await self._inner.complete(model, body, api_key)
            outcome.read(response)
        return response

    async def embed(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        outcome = _Outcome()
        with self._observed("embeddings", model, body, outcome):
            response = await self._inner.embed(model, body, api_key)
            outcome.read(response)
        return response

    async def check(self, model: ResolvedModel, api_key: str | None) -> None:
        await self._inner.check(model, api_key)

    async def stream(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> AsyncGenerator[dict[str, Any]]:
        """The inner stream, observed; the span is current only while the upstream is read.

        Entering the span around each step (not across a `yield`) keeps the context
        balanced however the consumer closes the generator.
        """
        outcome = _Outcome()
        with self._observed("chat", model, body, outcome, stream=True) as span:
            chunks = self._inner.stream(model, body, api_key)
            started = time.perf_counter()
            try:
                while True:
                    with trace.use_span(
                        span,
                        end_on_exit=False,
                        record_exception=False,
                        set_status_on_exception=False,
                    ):
                        try:
                            chunk = await anext(chunks)
                        except StopAsyncIteration:
                            break
                    if outcome.first_chunk_s is None:
                        outcome.first_chunk_s = time.perf_counter() - started
                    outcome.read(chunk)
                    yield chunk
            finally:
                await chunks.aclose()

    @contextmanager
    def _observed(
        self,
        operation: str,
        model: ResolvedModel,
        body: dict[str, Any],
        outcome: _Outcome,
        *,
        stream: bool = False,
    ) -> Iterator[Span]:
        labels = GenAiLabels(operation, self._provider_name, model.upstream_model, model.id)
        started = time.perf_counter()
        error_type = ""
        # A stream's span is made current per upstream read only (see `stream`).
        with self._span(labels, body, current=not stream) as span:
            try:
                yield span
            except BaseException as error:
                error_type = _error_type(error)
                _mark_failed(span, error, error_type)
                raise
            finally:
                seconds = time.perf_counter() - started
                _describe_outcome(span, outcome, self._content)
                self._metrics.observe_genai(
                    labels,
                    response_model=outcome.response_model,
                    seconds=seconds,
                    error_type=error_type,
                    input_tokens=outcome.input_tokens,
                    output_tokens=outcome.output_tokens,
                    first_chunk_s=outcome.first_chunk_s if stream else None,
                )
                self._metrics.upstream_time.add(request_id_var.get(), seconds)

    @contextmanager
    def _span(self, labels: GenAiLabels, body: dict[str, Any], current: bool) -> Iterator[Span]:
        if self._tracer is None:
            yield trace.INVALID_SPAN
            return
        attributes: dict[str, Any] = {
            genai.GEN_AI_OPERATION_NAME: labels.operation,
            genai.GEN_AI_PROVIDER_NAME: labels.provider,
            genai.GEN_AI_REQUEST_MODEL: labels.request_model,
            "pmp.model.id": labels.model_id,
        }
        for name, key in _REQUEST_ATTRIBUTES.items():
            if isinstance(body.get(key), int | float) and not isinstance(body.get(key), bool):
                attributes[name] = body[key]
        if self._content and "messages" in body:
            attributes[genai.GEN_AI_INPUT_MESSAGES] = json.dumps(body["messages"], default=str)
        name = f"{labels.operation} {labels.request_model}"
        span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        try:
            if current:
                with trace.use_span(
                    span, end_on_exit=False, record_exception=False, set_status_on_exception=False
                ):
                    yield span
            else:
                yield span
        finally:
            span.end()


_REQUEST_ATTRIBUTES = {
    genai.GEN_AI_REQUEST_MAX_TOKENS: "max_tokens",
    genai.GEN_AI_REQUEST_TEMPERATURE: "temperature",
    genai.GEN_AI_REQUEST_TOP_P: "top_p",
}


def _describe_outcome(span: Span, outcome: _Outcome, content: bool) -> None:
    if not span.is_recording():
        return
    if outcome.response_model:
        span.set_attribute(genai.GEN_AI_RESPONSE_MODEL, outcome.response_model)
    if outcome.input_tokens is not None:
        span.set_attribute(genai.GEN_AI_USAGE_INPUT_TOKENS, outcome.input_tokens)
    if outcome.output_tokens is not None:
        span.set_attribute(genai.GEN_AI_USAGE_OUTPUT_TOKENS, outcome.output_tokens)
    if outcome.finish_reasons:
        span.set_attribute(genai.GEN_AI_RESPONSE_FINISH_REASONS, outcome.finish_reasons)
    if content and outcome.texts:
        output = [
            {"role": "assistant", "parts": [{"type": "text", "content": "".join(outcome.texts)}]}
        ]
        span.set_attribute(genai.GEN_AI_OUTPUT_MESSAGES, json.dumps(output))


def _error_type(error: BaseException) -> str:
    status = getattr(error, "upstream_status", None)
    if isinstance(error, GatewayError) and status:
        return str(status)
    return type(error).__name__


def _mark_failed(span: Span, error: BaseException, error_type: str) -> None:
    if not span.is_recording():
        return
    span.set_attribute(error_attributes.ERROR_TYPE, error_type)
    # The message only: an upstream's error text is redacted of credentials by the adapter.
    message = error.message if isinstance(error, GatewayError) else type(error).__name__
    span.set_status(Status(StatusCode.ERROR, message))
