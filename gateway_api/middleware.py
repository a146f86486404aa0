"""Pure ASGI middleware: request id in and out, one access-log line per request, drain."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway_core.config import Settings
from gateway_core.error_codec import http_error, internal_error_body
from gateway_core.errors import GatewayError, RequestTooLargeError, ServiceUnavailableError
from gateway_core.logging import redacted_body, request_id_var
from gateway_core.metrics import GatewayMetrics

logger = logging.getLogger("gateway_api.access")
_PROPAGATOR = TraceContextTextMapPropagator()
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_INTERNAL_ERROR_BODY = internal_error_body()
_INTERNAL_ERROR_START: Message = {
    "type": "http.response.start",
    "status": 500,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_INTERNAL_ERROR_BODY)).encode()),
    ],
}


_PROBES = frozenset({"/live", "/ready", "/health", "/metrics"})
_BODY_CAP = 1 << 20  # captured for the access line; longer bodies are logged by size
_STREAM_TAIL = 8192
_MODEL_PARSE_CAP = 256 * 1024  # the end of an event stream, where the usage chunk is


class DrainState:
    """Shared by the server and the middleware: whether this process is draining, and
    how many requests are still in flight."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """True when nothing is in flight any more, False when `timeout_s` ran out first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


@dataclass(frozen=True)
class AccessLogOptions:
    """PMP_LOG_BODIES and PMP_LOG_REDACT_FIELDS."""

    log_bodies: bool = False
    redact: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessLogOptions:
        fields = frozenset(name.lower() for name in settings.log_redact_fields)
        return cls(settings.log_bodies, fields)


class _Exchange:
    """What one request and its response showed, for the access line and the metrics."""

    def __init__(self, scope: Scope, request_id: str, options: AccessLogOptions) -> None:
        self.scope = scope
        self.request_id = request_id
        self.started = time.perf_counter()
        self.first_byte_s: float | None = None
        self.status = 500
        self.responded = False
        self.headers: dict[str, str] = {}
        self.request_body = bytearray()
        self.response_body = bytearray()
        self.streamed = False
        path = str(scope["path"])
        self._keep_request = options.log_bodies or path.startswith("/v1/")
        self._keep_response = options.log_bodies or path.startswith("/v1/")

    def saw_request(self, message: Message) -> None:
        if self._keep_request and message["type"] == "http.request":
            body = message.get("body", b"")
            if len(self.request_body) + len(body) <= _BODY_CAP:
                self.request_body += body

    def saw_response(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.responded = True
            self.first_byte_s = time.perf_counter() - self.started
            self.status = message["status"]
            self.headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in message.get("headers", [])
            }
            self.streamed = self.headers.get("content-type", "").startswith("text/event-stream")
        elif message["type"] == "http.response.body" and self._keep_response:
            self.response_body += message.get("body", b"")
            if self.streamed and len(self.response_body) > _STREAM_TAIL:
                del self.response_body[:-_STREAM_TAIL]
            elif len(self.response_body) > _BODY_CAP:
                self._keep_response = False
                self.response_body.clear()


class RequestContextMiddleware:
    """Sets the request id (caller's x-request-id if sane), logs one access line per
    request, counts it, and refuses new work while the process drains."""

    def __init__(
        self,
        app: ASGIApp,
        drain: DrainState | None = None,
        options: AccessLogOptions | None = None,
    ) -> None:
        self.app = app
        self._drain = drain or DrainState()
        self._options = options or AccessLogOptions()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._drain.draining and await _refused_while_draining(scope, send):
            return
        probe = scope["path"] in _PROBES
        if not probe:
            self._drain.enter()
        try:
            await self._handle(scope, receive, send)
        finally:
            if not probe:
                self._drain.leave()

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else f"req_{uuid.uuid4().hex}"
        token = request_id_var.set(request_id)
        exchange = _Exchange(scope, request_id, self._options)

        async def receive_seen() -> Message:
            message = await receive()
            exchange.saw_request(message)
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._response_headers(scope, message, request_id)
            exchange.saw_response(message)
            await send(message)

        try:
            await self.app(scope, receive_seen, send_with_id)
        except Exception:
            # Anything the error mapper did not know: logged with the request id, and the
            # caller still gets OpenAI's error shape (and the id) when nothing was sent yet.
            logger.exception("unhandled error")
            if not exchange.responded:
                await send_with_id(dict(_INTERNAL_ERROR_START))
                await send_with_id({"type": "http.response.body", "body": _INTERNAL_ERROR_BODY})
        finally:
            _log_access(exchange, self._options)
            request_id_var.reset(token)

    def _response_headers(
        self, scope: Scope, message: Message, request_id: str
    ) -> list[tuple[bytes, bytes]]:
        headers = list(message.get("headers", []))
        headers.append((b"x-request-id", request_id.encode()))
        # Set by request handlers (rate-limit headers) for every response they get.
        extra: dict[str, str] = scope.get("state", {}).get("pmp_headers", {})
        present = {name.lower() for name, _value in headers}
        for name, value in extra.items():
            if name.encode() not in present:
                headers.append((name.encode(), value.encode()))
        headers.extend(_trace_headers())
        if self._drain.draining:
            # Keep-alive clients reconnect, through the load balancer, to another process.
            headers.append((b"connection", b"close"))
        return headers


async def _refused_while_draining(scope: Scope, send: Send) -> bool:
    """While draining, /ready says so (503) and new work is refused; probes still answer."""
    path = scope["path"]
    if path == "/ready":
        body = json.dumps({"status": "draining", "down": ["draining"]}).encode()
        await _send_body(send, 503, body, [(b"connection", b"close")])
        return True
    if path in _PROBES:
        return False
    refused = ServiceUnavailableError(
        "this gateway process is shutting down; retry the request", code="draining"
    )
    refused.headers["retry-after"] = "1"
    refused.headers["connection"] = "close"
    await _send_error(send, refused)
    return True


def _log_access(exchange: _Exchange, options: AccessLogOptions) -> None:
    scope = exchange.scope
    duration_s = time.perf_counter() - exchange.started
    fields = _access_fields(exchange, duration_s)
    metrics = _metrics_of(scope)
    if metrics is not None:
        _count(metrics, exchange, fields, duration_s)
    if options.log_bodies:
        secrets = _presented_secrets(scope)
        fields["request_body"] = redacted_body(
            bytes(exchange.request_body), options.redact, secrets
        )
        if not exchange.streamed:
            fields["response_body"] = redacted_body(
                bytes(exchange.response_body), options.redact, secrets
            )
    logger.info("%s %s %s", scope["method"], scope["path"], exchange.status, extra=fields)


def _access_fields(exchange: _Exchange, duration_s: float) -> dict[str, Any]:
    """The access line's fields; those the request did not have are left out."""
    state = exchange.scope.get("state", {})
    headers = exchange.headers
    fields: dict[str, Any] = {
        "request_id": exchange.request_id,
        "status": exchange.status,
        "duration_ms": round(duration_s * 1000, 2),
        "key_id": state.get("pmp_key_id"),
        "model": _requested_model(exchange),
        "served_by": headers.get("x-pmp-served-by"),
        "run_id": headers.get("x-pmp-run-id"),
        "fallbacks": headers.get("x-pmp-fallbacks"),
        "cache": headers.get("x-pmp-cache"),
    }
    if exchange.first_byte_s is not None and exchange.streamed:
        fields["first_byte_ms"] = round(exchange.first_byte_s * 1000, 2)
    usage = _usage(exchange)
    if usage:
        fields["prompt_tokens"] = usage.get("prompt_tokens")
        fields["completion_tokens"] = usage.get("completion_tokens")
    return {name: value for name, value in fields.items() if value is not None}


def _count(
    metrics: GatewayMetrics, exchange: _Exchange, fields: dict[str, Any], duration_s: float
) -> None:
    route = exchange.scope.get("route")
    template = getattr(route, "path", None) or "unmatched"
    metrics.http_requests.labels(template, str(exchange.status)).inc()
    if exchange.status == 429 and "run_id" not in fields:
        metrics.rate_limit_refusals.labels(template).inc()
    upstream_s = metrics.upstream_time.pop(exchange.request_id)
    if upstream_s is not None:
        overhead_s = max(0.0, duration_s - upstream_s)
        metrics.overhead.labels(str(exchange.streamed)).observe(overhead_s)
        fields["upstream_ms"] = round(upstream_s * 1000, 2)
        fields["overhead_ms"] = round(overhead_s * 1000, 2)


def _metrics_of(scope: Scope) -> GatewayMetrics | None:
    runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
    metrics = getattr(getattr(runtime, "providers", None), "metrics", None)
    return metrics if isinstance(metrics, GatewayMetrics) else None


def _requested_model(exchange: _Exchange) -> str | None:
    # Chat and embeddings bodies are small; a large upload is not parsed for a log field.
    body = exchange.request_body
    if not body.startswith(b"{") or len(body) > _MODEL_PARSE_CAP:
        return None
    try:
        model = json.loads(body).get("model")
    except (ValueError, AttributeError):
        return None
    return model if isinstance(model, str) else None


def _usage(exchange: _Exchange) -> dict[str, Any] | None:
    """`usage` of a JSON answer, or of the last event of a stream that carried one.

    Only the object after the last `"usage":` is decoded, not the whole answer (an
    embeddings answer can be megabytes of vectors).
    """
    body = bytes(exchange.response_body)
    if exchange.streamed:
        lines = [line for line in body.split(b"\n") if line.startswith(b"data: {")]
        body = next((line for line in reversed(lines) if b'"usage"' in line), b"")
    at = body.rfind(b'"usage"')
    if at < 0:
        return None
    text = body[at + len(b'"usage"') :].decode("utf-8", errors="replace").lstrip()
    if not text.startswith(":"):
        return None
    try:
        usage, _end = json.JSONDecoder().raw_decode(text[1:].lstrip())
    except ValueError:
        return None
    return usage if isinstance(usage, dict) else None


def _presented_secrets(scope: Scope) -> tuple[str, ...]:
    """The API key values this request presented, cut from anything logged."""
    headers = dict(scope["headers"])
    bearer = headers.get(b"authorization", b"").decode("latin-1").partition(" ")[2]
    return tuple(v for v in (bearer.strip(), headers.get(b"x-api-key", b"").decode("latin-1")) if v)


class BodySizeLimit:
    """Refuses request bodies over `limit` bytes with a 413, counted as they are read.

    A declared Content-Length over the limit is refused before anything is read. A body
    that grows past it while streaming gets the 413 at once; the read then fails inside
    the app, whose own answer to that is dropped. Ingestion routes take uploads and
    enforce their own, larger limits.
    """

    def __init__(self, app: ASGIApp, limit: int, exempt_suffixes: tuple[str, ...]) -> None:
        self.app = app
        self._limit = limit
        self._exempt = exempt_suffixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).endswith(self._exempt):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._limit:
            await _send_error(send, self._too_large())
            return
        seen, refused = 0, False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._limit and not refused:
                    refused = True
                    await _send_error(send, self._too_large())
                    raise self._too_large()
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)

    def _too_large(self) -> RequestTooLargeError:
        return RequestTooLargeError(f"the request body is over {self._limit} bytes")


async def _send_error(send: Send, error: GatewayError) -> None:
    response = http_error(error)
    body = json.dumps(response.body).encode()
    extra = [(name.encode(), value.encode()) for name, value in response.headers.items()]
    await _send_body(send, response.status, body, extra)


async def _send_body(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})


def _trace_headers() -> list[tuple[bytes, bytes]]:
    """`traceparent` of the request's server span, so a caller can find its trace."""
    if not trace.get_current_span().get_span_context().is_valid:
        return []
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return [(name.encode(), value.encode()) for name, value in carrier.items()]
