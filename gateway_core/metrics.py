"""Prometheus metrics of one gateway process, in a registry of its own (no globals)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from gateway_core.process import StartupError

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
# Bucket boundaries the OpenTelemetry GenAI conventions advise for each instrument.
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
_OPERATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
_FIRST_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5)
_PER_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5)
# The conventions' attribute names as Prometheus labels (dots become underscores).
_GENAI_LABELS = [
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "pmp_model_id",
]


@dataclass(frozen=True)
class GenAiLabels:
    """Who one provider call went to: operation, provider, upstream model, gateway model."""

    operation: str
    provider: str
    request_model: str
    model_id: str

    def values(self, response_model: str) -> list[str]:
        return [self.operation, self.provider, self.request_model, response_model, self.model_id]


class UpstreamTime:
    """Seconds spent in upstream calls per request id, for the gateway-overhead histogram.

    Filled by provider calls and read once by the request's access log; both sides
    meet only where API and worker share a process (the serve mode). Entries nobody
    reads (a request answered by another process) are dropped after `ttl_s`.
    """

    def __init__(self, ttl_s: float = 300.0) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, tuple[float, float]] = {}
        self._ttl_s = ttl_s

    def add(self, request_id: str | None, seconds: float) -> None:
        if request_id is None:
            return
        now = time.monotonic()
        with self._lock:
            spent, _seen = self._seconds.get(request_id, (0.0, now))
            self._seconds[request_id] = (spent + seconds, now)
            if len(self._seconds) > 10_000:
                self._seconds = {
                    key: entry
                    for key, entry in self._seconds.items()
                    if now - entry[1] < self._ttl_s
                }

    def pop(self, request_id: str) -> float | None:
        with self._lock:
            entry = self._seconds.pop(request_id, None)
        return None if entry is None else entry[0]


class GatewayMetrics:
    """Counters and histograms for chat runs, upstream attempts and circuit breakers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pmp_chat_requests",
            "Chat completions answered, by requested name, serving model and outcome.",
            ["requested", "served_by", "outcome"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "pmp_chat_request_seconds",
            "Time to a complete answer (plain) or to the first chunk (stream).",
            ["requested", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "pmp_chain_fallbacks",
            "Chain steps given up before a later step answered or the chain failed.",
            ["chain"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "pmp_upstream_attempts",
            "Upstream calls, by model, chain step and outcome.",
            ["model", "chain", "step", "outcome"],
            registry=self.registry,
        )
        self.attempt_latency = Histogram(
            "pmp_upstream_attempt_seconds",
            "Duration of one upstream call, by model and chain step.",
            ["model", "chain", "step"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "pmp_circuit_breaker_state",
            "Last breaker state seen by this process (0 closed, 1 half-open, 2 open).",
            ["model"],
            registry=self.registry,
        )
        self._add_cache_metrics()
        self._add_genai_metrics()
        self._add_gateway_metrics()
        self.upstream_time = UpstreamTime()

    def _add_cache_metrics(self) -> None:
        self.cache_lookups = Counter(
            "pmp_cache_lookups",
            "Response-cache outcomes by requested name: hit, semantic-hit, miss, bypass.",
            ["requested", "result"],
            registry=self.registry,
        )
        self.cache_bytes = Gauge(
            "pmp_cache_bytes",
            "Bytes of answers the response cache holds (as of this process's last write).",
            registry=self.registry,
        )
        self.cache_entries = Gauge(
            "pmp_cache_entries",
            "Entries the response cache holds (as of this process's last write).",
            registry=self.registry,
        )

    def _add_genai_metrics(self) -> None:
        # OpenTelemetry names in Prometheus form: dots to underscores, the unit as a
        # suffix (`s` → `_seconds`; the annotation `{token}` adds none).
        self.genai_token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per provider call (gen_ai.client.token.usage), by token type.",
            [*_GENAI_LABELS, "gen_ai_token_type"],
            buckets=_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.genai_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of one provider call (gen_ai.client.operation.duration).",
            [*_GENAI_LABELS, "error_type"],
            buckets=_OPERATION_BUCKETS,
            registry=self.registry,
        )
        self.genai_first_token = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from a stream's request to its first chunk (gen_ai.server.time_to_first_token).",
            _GENAI_LABELS,
            buckets=_FIRST_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.genai_per_token = Histogram(
            "gen_ai_server_time_per_output_token_seconds",
            "Time per output token after the first (gen_ai.server.time_per_output_token).",
            _GENAI_LABELS,
            buckets=_PER_TOKEN_BUCKETS,
            registry=self.registry,
        )

    def _add_gateway_metrics(self) -> None:
        self.overhead = Histogram(
            "pmp_gateway_overhead_seconds",
            "Time of a request spent outside upstream calls (serve mode: API and worker in"
            " one process).",
            ["stream"],
            buckets=_FIRST_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "pmp_http_requests",
            "HTTP requests answered, by route template and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.rate_limit_refusals = Counter(
            "pmp_rate_limit_refusals",
            "Requests the gateway's own rate limits refused (429 before any run).",
            ["route"],
            registry=self.registry,
        )

    def observe_genai(
        self,
        labels: GenAiLabels,
        *,
        response_model: str,
        seconds: float,
        error_type: str,
        input_tokens: int | None,
        output_tokens: int | None,
        first_chunk_s: float | None,
    ) -> None:
        """One provider call: its duration, tokens, and a stream's first-token timing."""
        values = labels.values(response_model)
        self.genai_duration.labels(*values, error_type).observe(seconds)
        if input_tokens is not None:
            self.genai_token_usage.labels(*values, "input").observe(input_tokens)
        if output_tokens is not None:
            self.genai_token_usage.labels(*values, "output").observe(output_tokens)
        if first_chunk_s is None or error_type:
            return
        self.genai_first_token.labels(*values).observe(first_chunk_s)
        if output_tokens and output_tokens > 1:
            per_token = (seconds - first_chunk_s) / (output_tokens - 1)
            self.genai_per_token.labels(*values).observe(per_token)

    def observe_attempt(
        self, *, model: str, chain: str | None, step: int, outcome: str, seconds: float
    ) -> None:
        labels = {"model": model, "chain": chain or "", "step": str(step)}
        self.attempts.labels(**labels, outcome=outcome).inc()
        self.attempt_latency.labels(**labels).observe(seconds)

    def observe_breaker(self, model: str, state: str) -> None:
        self.breaker_state.labels(model=model).set(_BREAKER_STATES.get(state, 0))

    def render(self) -> bytes:
        """The text exposition format for GET /metrics."""
        return generate_latest(self.registry)


@contextmanager
def serving_metrics(metrics: GatewayMetrics, host: str, port: int) -> Iterator[int | None]:
    """Serve `GET /metrics` of a process that has no HTTP API (the worker); port 0: off.

    Yields the port it listens on (None when off); stops the server on exit.
    """
    if port == 0:
        yield None
        return
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as error:
        raise StartupError(
            f"cannot serve worker metrics on {host}:{port} (PMP_WORKER_METRICS_PORT;"
            f" 0 turns it off): {error.strerror}"
        ) from None
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
