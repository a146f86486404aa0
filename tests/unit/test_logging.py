"""Log lines are structured and carry the request and trace ids; the access line says who,
what and how long, and never carries a credential."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway_api.middleware import AccessLogOptions, RequestContextMiddleware
from gateway_core.logging import (
    JsonFormatter,
    configure_logging,
    redacted_body,
    request_id_var,
)

API_KEY = "pk_live_secret_value_123456"


async def _chat(request: Request) -> JSONResponse:
    request.state.pmp_key_id = "team-a"
    body = await request.json()
    answer = {"model": body["model"], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
    headers = {"x-pmp-run-id": "chat-1", "x-pmp-served-by": "backup", "x-pmp-fallbacks": "1"}
    return JSONResponse(answer | {"echo": body}, headers=headers)


def _client(options: AccessLogOptions) -> httpx.AsyncClient:
    app = RequestContextMiddleware(
        Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])]),
        options=options,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def _access_line(caplog: pytest.LogCaptureFixture, options: AccessLogOptions) -> dict:
    body = {
        "model": "resilient",
        "messages": [{"role": "user", "content": "hi"}],
        "api_key": "inline-secret",
        "customer_ssn": "078-05-1120",
        "note": API_KEY,
    }
    with caplog.at_level(logging.INFO, logger="gateway_api.access"):
        async with _client(options) as client:
            response = await client.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {API_KEY}"}
            )
    assert response.status_code == 200
    [record] = [r for r in caplog.records if r.name == "gateway_api.access"]
    line = JsonFormatter().format(record)
    assert API_KEY not in line and "inline-secret" not in line
    return dict(json.loads(line))


async def test_access_line_names_key_model_server_tokens_run_and_durations(
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = await _access_line(caplog, AccessLogOptions())
    assert line["msg"] == "POST /v1/chat/completions 200"
    assert line["key_id"] == "team-a"
    assert line["model"] == "resilient"
    assert line["served_by"] == "backup"
    assert line["run_id"] == "chat-1"
    assert (line["prompt_tokens"], line["completion_tokens"]) == (7, 3)
    assert line["duration_ms"] >= 0
    assert line["request_id"].startswith("req_")
    assert "request_body" not in line, "bodies only with PMP_LOG_BODIES"


async def test_logged_bodies_redact_secrets_and_configured_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = AccessLogOptions(log_bodies=True, redact=frozenset({"customer_ssn"}))
    line = await _access_line(caplog, options)
    request = line["request_body"]
    assert request["messages"] == [{"role": "user", "content": "hi"}]
    assert request["api_key"] == "[redacted]"
    assert request["customer_ssn"] == "[redacted]"
    assert request["note"] == "[redacted]", "the presented key is cut wherever it appears"
    assert line["response_body"]["echo"]["customer_ssn"] == "[redacted]"


def test_a_body_that_is_not_json_is_logged_by_size_only() -> None:
    assert redacted_body(b"password=hunter2", frozenset(), ()) == {"bytes": 16}


def test_json_lines_carry_request_id_and_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    token = request_id_var.set("req_abc")
    try:
        logging.getLogger("pmp.test").info("served", extra={"status": 200})
    finally:
        request_id_var.reset(token)
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["msg"] == "served"
    assert entry["request_id"] == "req_abc"
    assert entry["status"] == 200
    assert entry["level"] == "info"


def test_text_lines_end_with_key_value_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text", "INFO")
    logging.getLogger("pmp.test").warning("slow", extra={"duration_ms": 12.5})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "WARNING" in line
    assert line.endswith("slow duration_ms=12.5")


def test_lines_logged_inside_a_span_carry_its_trace_and_span_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("pmp.test").info("inside")
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    context = span.get_span_context()
    assert entry["trace_id"] == f"{context.trace_id:032x}"
    assert entry["span_id"] == f"{context.span_id:016x}"
