"""Prometheus metrics of one gateway process, in a registry of its own (no globals)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
