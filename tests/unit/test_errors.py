"""Upstream failures map to retryable or final gateway errors, with secrets removed."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from activities.errors import to_application_error
from gateway_core.errors import (
    ConfigurationError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamRateLimitError,
    UpstreamTimeoutError,
    error_from_payload,
    error_to_payload,
)
from gateway_core.providers.openai import error_for_status, error_for_transport

SECRET = "sk-live-very-secret-value"


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, UpstreamBadRequestError, False),
        (404, UpstreamBadRequestError, False),
        (422, UpstreamBadRequestError, False),
        (401, UpstreamError, False),
        (403, UpstreamError, False),
        (408, UpstreamError, True),
        (409, UpstreamError, True),
        (429, UpstreamRateLimitError, True),
        (500, UpstreamError, True),
        (503, UpstreamError, True),
    ],
)
def test_status_codes_map_to_retryable_or_not(status: int, kind: type, retryable: bool) -> None:
    error = error_for_status(status, b'{"error": {"message": "nope"}}', None, SECRET)
    assert type(error) is kind
    assert error.retryable is retryable
    assert error.upstream_status == status
    assert "nope" in error.message


def test_upstream_message_echoing_the_key_is_redacted() -> None:
    body = f'{{"error": {{"message": "Incorrect API key provided: {SECRET}"}}}}'.encode()
    error = error_for_status(401, body, None, SECRET)
    assert SECRET not in error.message
    assert "[redacted]" in error.message


def test_transport_errors_are_retryable_and_timeouts_are_504() -> None:
    timeout = error_for_transport(httpx.ReadTimeout("slow"), SECRET)
    assert isinstance(timeout, UpstreamTimeoutError)
    assert timeout.retryable
    assert timeout.status_code == 504
    refused = error_for_transport(httpx.ConnectError("refused"), SECRET)
    assert refused.retryable
    assert refused.status_code == 502


def test_retry_after_becomes_the_next_retry_delay() -> None:
    error = UpstreamRateLimitError("slow down", retryable=True, retry_after_s=3)
    failure = to_application_error(error)
    assert failure.non_retryable is False
    assert failure.next_retry_delay == timedelta(seconds=3)
    assert failure.type == "UpstreamRateLimitError"


def test_configuration_errors_are_final() -> None:
    assert to_application_error(ConfigurationError("no key")).non_retryable is True


def test_error_payload_round_trips_kind_and_fields() -> None:
    original = UpstreamRateLimitError(
        "busy", retryable=True, upstream_status=429, retry_after_s=2.0, code="rate_limited"
    )
    rebuilt = error_from_payload(error_to_payload(original))
    assert isinstance(rebuilt, UpstreamRateLimitError)
    assert rebuilt.to_dict() == original.to_dict()
    assert rebuilt.retry_after_s == 2.0
    assert rebuilt.status_code == 429
