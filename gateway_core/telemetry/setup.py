"""The tracer provider of one process, from the standard OTEL_* variables.

Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
set (or a test hands in an exporter); otherwise `Telemetry.off()` installs nothing, so
instrumentation, interceptors and provider spans cost nothing. The exporters read their
own OTEL_EXPORTER_OTLP_* variables (headers, certificates, timeouts).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Tracer

from gateway_core.process import StartupError

DEFAULT_SERVICE_NAME = "pmp-gateway"
TRACER_NAME = "pmp_gateway"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")


@dataclass(frozen=True)
class Telemetry:
    """Tracing of one process; `tracer_provider` None means off."""

    tracer_provider: TracerProvider | None = None
    # PMP_TRACE_CONTENT: messages as span attributes (they may hold personal data).
    trace_content: bool = False

    @classmethod
    def off(cls) -> Telemetry:
        return cls()

    @classmethod
    def with_exporter(cls, exporter: SpanExporter, *, trace_content: bool = False) -> Telemetry:
        """Spans exported synchronously to `exporter` (tests: an in-memory exporter)."""
        provider = TracerProvider(resource=_resource(os.environ))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return cls(provider, trace_content)

    @property
    def enabled(self) -> bool:
        return self.tracer_provider is not None

    def tracer(self) -> Tracer | None:
        if self.tracer_provider is None:
            return None
        return self.tracer_provider.get_tracer(TRACER_NAME)

    def instrument_http(self, client: httpx.AsyncClient) -> None:
        """Trace the upstream requests of this client (a child span per request)."""
        if self.tracer_provider is not None:
            HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.tracer_provider)

    def shutdown(self) -> None:
        """Flush what is buffered and stop exporting."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()


def tracing_configured(environ: Mapping[str, str]) -> bool:
    """Whether the OTEL_* variables name somewhere to send traces."""
    return any(environ.get(name) for name in _ENDPOINT_VARIABLES)


def open_telemetry(trace_content: bool, environ: Mapping[str, str] | None = None) -> Telemetry:
    """Tracing as the environment configures it; `Telemetry.off()` when no endpoint is set."""
    env = os.environ if environ is None else environ
    if not tracing_configured(env):
        return Telemetry.off()
    provider = TracerProvider(resource=_resource(env))
    provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(env)))
    return Telemetry(provider, trace_content)


def _resource(environ: Mapping[str, str]) -> Resource:
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES; the service name we pass wins.
    return Resource.create({SERVICE_NAME: environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME})


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    protocol = next((environ[name] for name in _PROTOCOL_VARIABLES if environ.get(name)), "")
    protocol = protocol or "http/protobuf"
    # Imported when chosen: the gRPC exporter loads grpcio, which HTTP users never need.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    raise StartupError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: use grpc or http/protobuf"
    )
