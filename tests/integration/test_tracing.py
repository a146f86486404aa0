"""One chat call is one trace: HTTP server → workflow → activity → provider → upstream HTTP."""

from __future__ import annotations

import asyncio
import http.server
import json
import signal
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway_core.config import Settings
from gateway_core.process import StartupError
from gateway_core.telemetry import Telemetry, open_telemetry
from tests.conftest import (
    UPSTREAM_KEY,
    UPSTREAM_KEY_ENV,
    Gateway,
    running_gateway,
    start_worker_process,
)
from tests.fakes.openai_upstream import FakeOpenAI, Scenario
from tests.integration.test_knowledge_bases import DOCS
from tests.issue_examples import LOCAL_EMBED_MODEL, PRODUCT_DOCS_KB

SECRET_PROMPT = "my-secret-prompt-text-4711"
MESSAGES = [{"role": "user", "content": SECRET_PROMPT}]
CHAIN = {
    "id": "two-step",
    "name": "Two steps",
    "steps": [
        {"model_id": "primary", "max_retries": 0},
        {"model_id": "backup", "max_retries": 0},
    ],
}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(settings: Settings, exporter: InMemorySpanExporter) -> AsyncIterator[Gateway]:
    telemetry = Telemetry.with_exporter(exporter)
    async with running_gateway(settings, telemetry=telemetry) as running:
        yield running
    telemetry.shutdown()


async def _trace_of(exporter: InMemorySpanExporter, traceparent: str) -> list[ReadableSpan]:
    """The finished spans of the trace a `traceparent` header names, once its root ended."""
    trace_id = int(traceparent.split("-")[1], 16)
    for _ in range(100):
        spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
        if any(s.parent is None for s in spans):
            return spans
        await asyncio.sleep(0.05)
    raise AssertionError("the server span never ended")


def _path_to_root(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[str]:
    """Span names from `span` up to the root."""
    by_id = {s.context.span_id: s for s in spans}
    names = [span.name]
    current: ReadableSpan | None = span
    while current is not None and current.parent is not None:
        current = by_id.get(current.parent.span_id)
        assert current is not None, f"{names[-1]} has a parent outside the trace"
        names.append(current.name)
    return names


def _provider_spans(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    found = [s for s in spans if s.name.startswith("chat ")]
    return sorted(found, key=lambda s: s.start_time or 0)


def _assert_chain_of_custody(provider: ReadableSpan, spans: Sequence[ReadableSpan]) -> None:
    """The provider span sits under activity, workflow, workflow start and server span."""
    path = _path_to_root(provider, spans)
    assert path[-1] == "POST /v1/chat/completions"
    assert path[-2] == "StartWorkflow:ChatWorkflow", path
    assert path[1].startswith("RunActivity:chat_"), path
    # TracingInterceptor's workflow span is a zero-length sibling of what the workflow
    # schedules (a workflow cannot hold a span open across replays).
    start = next(s for s in spans if s.name == "StartWorkflow:ChatWorkflow")
    workflow = [s for s in spans if s.name == "RunWorkflow:ChatWorkflow"]
    assert [s.parent.span_id for s in workflow if s.parent] == [start.context.span_id]
    children = [s for s in spans if s.parent and s.parent.span_id == provider.context.span_id]
    assert [s.kind for s in children] == [SpanKind.CLIENT], [s.name for s in children]
    upstream_request = _attributes(children[0])
    # Old or stable HTTP names, as OTEL_SEMCONV_STABILITY_OPT_IN chooses.
    assert (
        upstream_request.get("http.request.method", upstream_request.get("http.method")) == "POST"
    )


def _assert_no_prompt_text(spans: Sequence[ReadableSpan]) -> None:
    for span in spans:
        flat = json.dumps(dict(span.attributes or {}), default=str)
        flat += json.dumps([dict(event.attributes or {}) for event in span.events], default=str)
        assert SECRET_PROMPT not in flat, span.name


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_plain_call_is_one_trace_with_genai_attributes(
    traced: Gateway, exporter: InMemorySpanExporter, upstream: FakeOpenAI
) -> None:
    await traced.add_model("fast-chat", upstream)
    raw = await traced.openai().chat.completions.with_raw_response.create(
        model="fast-chat", messages=MESSAGES
    )
    completion = raw.parse()
    spans = await _trace_of(exporter, raw.headers["traceparent"])
    [provider] = _provider_spans(spans)
    assert provider.name == "chat gpt-4o-mini"
    assert provider.kind == SpanKind.CLIENT
    attributes = _attributes(provider)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == completion.model
    assert completion.usage is not None
    assert attributes["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    _assert_chain_of_custody(provider, spans)
    server = [s for s in spans if s.parent is None]
    assert [s.name for s in server] == ["POST /v1/chat/completions"], "one server span"
    _assert_no_prompt_text(spans)


async def test_stream_is_one_trace_and_the_provider_span_covers_the_stream(
    traced: Gateway, exporter: InMemorySpanExporter, upstream: FakeOpenAI
) -> None:
    await traced.add_model("fast-chat", upstream)
    raw = await traced.openai().chat.completions.with_raw_response.create(
        model="fast-chat",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    async for chunk in raw.parse():
        usage = chunk.usage or usage
    spans = await _trace_of(exporter, raw.headers["traceparent"])
    [provider] = _provider_spans(spans)
    assert provider.name == "chat gpt-4o-mini"
    assert _path_to_root(provider, spans)[1].startswith("RunActivity:chat_stream")
    attributes = _attributes(provider)
    assert usage is not None
    assert attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    _assert_chain_of_custody(provider, spans)
    _assert_no_prompt_text(spans)


async def test_chain_fallback_shows_one_provider_span_per_attempt(
    traced: Gateway,
    exporter: InMemorySpanExporter,
    upstream: FakeOpenAI,
    backup: FakeOpenAI,
) -> None:
    await traced.add_model("primary", upstream)
    await traced.add_model("backup", backup, model="gpt-4o")
    created = await traced.admin.post("/admin/chains", json=CHAIN)
    assert created.status_code == 201, created.text
    upstream.enqueue(Scenario(status=500, error_message=f"boom {SECRET_PROMPT}"))
    raw = await traced.openai().chat.completions.with_raw_response.create(
        model="two-step", messages=MESSAGES
    )
    assert raw.headers["x-pmp-served-by"] == "backup"
    spans = await _trace_of(exporter, raw.headers["traceparent"])
    failed, answered = _provider_spans(spans)
    assert _attributes(failed)["pmp.model.id"] == "primary"
    assert failed.status.status_code == StatusCode.ERROR
    assert _attributes(failed)["error.type"] == "500"
    assert answered.name == "chat gpt-4o"
    assert _attributes(answered)["pmp.model.id"] == "backup"
    assert answered.status.status_code == StatusCode.UNSET
    for provider in (failed, answered):
        _assert_chain_of_custody(provider, spans)
    assert len({s.context.trace_id for s in spans}) == 1


async def test_trace_content_setting_puts_messages_on_the_provider_span(
    settings: Settings, exporter: InMemorySpanExporter, upstream: FakeOpenAI
) -> None:
    telemetry = Telemetry.with_exporter(exporter, trace_content=True)
    async with running_gateway(settings, telemetry=telemetry) as traced:
        await traced.add_model("fast-chat", upstream)
        raw = await traced.openai().chat.completions.with_raw_response.create(
            model="fast-chat", messages=MESSAGES
        )
        spans = await _trace_of(exporter, raw.headers["traceparent"])
    [provider] = _provider_spans(spans)
    assert SECRET_PROMPT in _attributes(provider)["gen_ai.input.messages"]
    assert "echo:" in _attributes(provider)["gen_ai.output.messages"]


async def test_tracing_is_off_without_an_endpoint_and_installs_nothing(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    assert not gateway.runtime.providers.telemetry.enabled
    await gateway.add_model("fast-chat", upstream)
    raw = await gateway.openai().chat.completions.with_raw_response.create(
        model="fast-chat", messages=MESSAGES
    )
    assert "traceparent" not in raw.headers
    assert not gateway.runtime.temporal.runs.client.config()["interceptors"]


async def test_embeddings_call_is_one_trace_with_an_embeddings_span(
    traced: Gateway, exporter: InMemorySpanExporter, upstream: FakeOpenAI
) -> None:
    await traced.add_model(
        "oa-embed", upstream, model="text-embedding-3-small", kind="embedding", dimensions=16
    )
    raw = await traced.openai().embeddings.with_raw_response.create(
        model="oa-embed", input=SECRET_PROMPT
    )
    usage = raw.parse().usage
    spans = await _trace_of(exporter, raw.headers["traceparent"])
    [provider] = [s for s in spans if s.name.startswith("embeddings ")]
    assert provider.name == "embeddings text-embedding-3-small"
    attributes = _attributes(provider)
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    path = _path_to_root(provider, spans)
    assert path[-1] == "POST /v1/embeddings"
    assert path[1].startswith("RunActivity:"), path
    _assert_no_prompt_text(spans)


class _OtlpReceiver(http.server.BaseHTTPRequestHandler):
    """A loopback OTLP/HTTP endpoint that keeps what it is sent."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_otlp_endpoint_variable_turns_tracing_on_and_spans_reach_it_over_http() -> None:
    _OtlpReceiver.received.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            telemetry = open_telemetry(False, env)
        tracer = telemetry.tracer()
        assert tracer is not None
        tracer.start_span("probe").end()
        assert telemetry.tracer_provider is not None
        assert telemetry.tracer_provider.force_flush(10_000)
        telemetry.shutdown()
    finally:
        server.shutdown()
    [(path, body)] = _OtlpReceiver.received
    assert path == "/v1/traces"
    assert b"pmp-gateway" in body and b"probe" in body


def test_tracing_stays_off_without_an_endpoint_and_names_bad_protocols() -> None:
    assert not open_telemetry(True, {"OTEL_SERVICE_NAME": "x"}).enabled
    grpc = open_telemetry(
        False,
        {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        },
    )
    assert grpc.enabled
    grpc.shutdown()
    with pytest.raises(StartupError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        open_telemetry(
            False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
        )


async def test_split_mode_worker_continues_the_api_trace_across_processes(
    settings: Settings,
    exporter: InMemorySpanExporter,
    upstream: FakeOpenAI,
    tmp_path: Path,
) -> None:
    """The worker process exports its spans over OTLP/HTTP into the API's trace."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _OtlpReceiver.received.clear()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
        "OTEL_SERVICE_NAME": "pmp-worker-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    worker = start_worker_process(
        settings, tmp_path / "worker.log", env={UPSTREAM_KEY_ENV: UPSTREAM_KEY, **otel}
    )
    try:
        telemetry = Telemetry.with_exporter(exporter)
        async with running_gateway(settings, telemetry=telemetry, mode="api") as api:
            await api.add_model("fast-chat", upstream)
            raw = await api.openai().chat.completions.with_raw_response.create(
                model="fast-chat", messages=MESSAGES
            )
        trace_id = bytes.fromhex(raw.headers["traceparent"].split("-")[1])
        names = await _worker_span_names(trace_id)
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)
        server.shutdown()
    assert "chat gpt-4o-mini" in names
    assert any(name.startswith("RunActivity:chat_complete") for name in names)
    assert "POST" in names, names


async def _worker_span_names(trace_id: bytes) -> set[str]:
    """Names of the spans of `trace_id` the worker exported, once its provider span came."""
    for _ in range(100):
        names = set()
        for path, body in list(_OtlpReceiver.received):
            assert path == "/v1/traces"
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                service = {a.key: a.value.string_value for a in resource.resource.attributes}
                assert service["service.name"] == "pmp-worker-under-test"
                for scope in resource.scope_spans:
                    names |= {s.name for s in scope.spans if s.trace_id == trace_id}
        if "chat gpt-4o-mini" in names:
            return names
        await asyncio.sleep(0.1)
    raise AssertionError(f"no worker span of the trace arrived: {_OtlpReceiver.received!r:.300}")


async def test_a_knowledge_base_search_is_a_search_span_under_the_server_span(
    traced: Gateway, exporter: InMemorySpanExporter
) -> None:
    assert (await traced.admin.post("/admin/models", json=LOCAL_EMBED_MODEL)).status_code == 201
    assert (
        await traced.admin.post("/admin/knowledge-bases", json=PRODUCT_DOCS_KB)
    ).status_code == 201
    added = await traced.admin.post(
        "/v1/knowledge-bases/product-docs/documents", json={"documents": DOCS}
    )
    assert added.status_code == 200, added.text
    searched = await traced.admin.post(
        "/v1/knowledge-bases/product-docs/search",
        json={
            "query": SECRET_PROMPT,
            "top_k": 2,
            "filter": {"field": "category", "operator": "eq", "value": "billing"},
        },
    )
    assert searched.status_code == 200, searched.text
    spans = await _trace_of(exporter, searched.headers["traceparent"])
    [search] = [s for s in spans if s.name == "search product-docs"]
    assert search.kind == SpanKind.CLIENT
    assert _path_to_root(search, spans)[-1] == "POST /v1/knowledge-bases/{kb_id}/search"
    attributes = _attributes(search)
    assert attributes["db.system.name"] == "postgresql"
    assert attributes["db.operation.name"] == "search"
    assert attributes["db.collection.name"] == "product-docs"
    assert attributes["pmp.search.top_k"] == 2
    assert attributes["pmp.search.filtered"] is True
    assert attributes["pmp.search.hits"] == len(searched.json()["data"]) == 2
    _assert_no_prompt_text(spans)
