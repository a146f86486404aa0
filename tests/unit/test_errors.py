"""Upstream failures map to retryable or final gateway errors, with secrets removed; the
error codec carries every error class unchanged through payloads, Temporal, HTTP and SSE."""

from __future__ import annotations

import base64
import inspect
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ApplicationErrorCategory,
    CancelledError,
    RetryState,
    TimeoutType,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.service import RPCError, RPCStatusCode

from gateway_core import error_codec, errors
from gateway_core.domain.failures import (
    FailureKind,
    GatewayFailure,
    UpstreamFailure,
)
from gateway_core.domain.streams import (
    STREAM_EVENT,
    ChunkEvent,
    EndEvent,
    ErrorEvent,
    ResultEvent,
)
from gateway_core.errors import (
    ConfigurationError,
    GatewayError,
    NotFoundError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamModelNotFoundError,
    UpstreamRateLimitError,
    UpstreamTimeoutError,
)
from gateway_core.providers.openai import error_for_status, error_for_transport

SECRET = "sk-live-very-secret-value"


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, UpstreamBadRequestError, False),
        # A gone model is still a 400 to the caller, but lets a chain fall back.
        (404, UpstreamModelNotFoundError, False),
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
    failure = error_codec.application_error(error, attempt=1)
    assert failure.non_retryable is False
    assert failure.next_retry_delay == timedelta(seconds=3)
    assert failure.type == "UpstreamRateLimitError"
    assert failure.category == ApplicationErrorCategory.BENIGN


def test_retry_after_beyond_a_minute_is_capped() -> None:
    error = UpstreamRateLimitError("slow down", retryable=True, retry_after_s=600)
    failure = error_codec.application_error(error, attempt=1)
    assert failure.next_retry_delay == timedelta(seconds=60)


def test_configuration_errors_are_final() -> None:
    assert error_codec.application_error(ConfigurationError("no key"), attempt=1).non_retryable


def test_non_retryable_upstream_errors_are_final() -> None:
    error = UpstreamBadRequestError("bad", retryable=False, upstream_status=400)
    assert error_codec.application_error(error, attempt=2).non_retryable


def _sample(cls: type[GatewayError]) -> GatewayError:
    """An instance of `cls` with every field set (upstream ones included)."""
    if issubclass(cls, UpstreamError):
        return cls(
            f"{cls.__name__} happened",
            retryable=True,
            upstream_status=429,
            retry_after_s=2.5,
            code="some_code",
            param="model",
        )
    return cls(f"{cls.__name__} happened", code="some_code", param="model")


def _same(rebuilt: GatewayError, original: GatewayError) -> None:
    assert type(rebuilt) is type(original)
    assert rebuilt.to_dict() == original.to_dict()
    assert rebuilt.status_code == original.status_code
    if isinstance(original, UpstreamError):
        assert isinstance(rebuilt, UpstreamError)
        assert rebuilt.retryable == original.retryable
        assert rebuilt.upstream_status == original.upstream_status
        assert rebuilt.retry_after_s == original.retry_after_s


ERROR_CLASSES = sorted(error_codec.error_classes().values(), key=lambda cls: cls.__name__)


def test_every_error_class_of_the_hierarchy_is_a_known_kind() -> None:
    defined = {
        cls.__name__
        for cls in vars(errors).values()
        if inspect.isclass(cls) and issubclass(cls, GatewayError)
    }
    assert defined == set(error_codec.error_classes()) == set(get_args(FailureKind))
    for name, cls in error_codec.error_classes().items():
        expected = UpstreamFailure if issubclass(cls, UpstreamError) else GatewayFailure
        assert type(error_codec.payload_from_error(_sample(cls))) is expected, name


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_payload_round_trips_every_error_class(cls: type[GatewayError]) -> None:
    original = _sample(cls)
    payload = error_codec.payload_from_error(original, attempt=3)
    assert payload.kind == cls.__name__
    assert payload.attempt == 3
    _same(error_codec.error_from_payload(payload), original)
    # Through JSON, as the payload travels in failure details and on the Redis bus.
    decoded = error_codec.decode_payload(json.loads(json.dumps(payload.detail())))
    assert decoded == payload


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_application_error_round_trips_every_error_class(cls: type[GatewayError]) -> None:
    original = _sample(cls)
    failure = error_codec.application_error(original, attempt=2)
    assert failure.type == cls.__name__
    assert failure.message == original.message
    assert failure.non_retryable is not isinstance(original, UpstreamError)
    payload = error_codec.payload_from_application_error(failure)
    assert payload is not None
    assert payload.attempt == 2
    _same(error_codec.error_from_payload(payload), original)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_http_body_and_sse_frame_carry_every_error_class(cls: type[GatewayError]) -> None:
    original = _sample(cls)
    response = error_codec.http_error(original)
    assert response.status == original.status_code
    # A configuration error's detail is for operators: callers see a fixed message.
    public = getattr(original, "public_message", original.message)
    assert response.body == {
        "error": {
            "message": public,
            "type": original.error_type,
            "param": "model",
            "code": "some_code",
        }
    }
    frame = error_codec.sse_error_frame(original)
    assert frame.startswith(b"data: ")
    assert frame.endswith(b"\n\n")
    assert json.loads(frame[len(b"data: ") :]) == response.body


def test_http_error_headers_ask_for_a_bearer_key_and_say_when_to_retry() -> None:
    unauthenticated = error_codec.http_error(errors.AuthenticationError("who are you"))
    assert unauthenticated.status == 401
    assert unauthenticated.headers == {"www-authenticate": "Bearer"}
    assert unauthenticated.body["error"]["code"] == "invalid_api_key"
    limited = UpstreamRateLimitError("busy", retryable=True, retry_after_s=0.2)
    assert error_codec.http_error(limited).headers == {"retry-after": "1"}
    # Retry-After is only sent with a 429 (a 503 circuit says nothing about when).
    circuit = errors.CircuitOpenError("open", retryable=False, retry_after_s=5)
    assert "retry-after" not in error_codec.http_error(circuit).headers
    custom = errors.RateLimitError("slow")
    custom.headers["x-ratelimit-remaining-requests"] = "0"
    assert error_codec.http_error(custom).headers == {"x-ratelimit-remaining-requests": "0"}


def test_recorded_failure_details_decode_with_their_extra_keys() -> None:
    history = Path(__file__).parent.parent / "histories" / "chat_failed_after_retry.json"
    details: list[Any] = []
    for event in json.loads(history.read_text())["events"]:
        text = json.dumps(event)
        if "applicationFailureInfo" not in text:
            continue
        attributes = next(value for key, value in event.items() if key.endswith("Attributes"))
        failure = attributes["failure"]
        for payload in failure["applicationFailureInfo"]["details"]["payloads"]:
            details.append(json.loads(base64.b64decode(payload["data"])))
    assert details, "the recorded failed run has no failure details"
    for detail in details:
        payload = error_codec.decode_payload({**detail, "added_later": {"x": 1}})
        assert isinstance(payload, UpstreamFailure)
        assert payload.kind == "UpstreamBadRequestError"
        assert isinstance(error_codec.error_from_payload(payload), UpstreamBadRequestError)
    assert details[-1]["attempts"] == 2


def test_a_detail_that_is_no_failure_payload_is_not_decoded() -> None:
    assert error_codec.decode_payload({"kind": "SomethingElse", "message": "?"}) is None
    assert error_codec.decode_payload("just text") is None
    assert error_codec.decode_payload({"message": "no kind"}) is None


def test_an_error_class_defined_elsewhere_travels_as_its_known_ancestor() -> None:
    class OperationGoneError(NotFoundError):
        default_code = "operation_gone"

    payload = error_codec.payload_from_error(OperationGoneError("gone"))
    assert payload.kind == "NotFoundError"
    rebuilt = error_codec.error_from_payload(payload)
    assert rebuilt.status_code == 404
    assert rebuilt.code == "operation_gone"


def _activity_error(cause: BaseException) -> ActivityError:
    error = ActivityError(
        "activity failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="test",
        activity_type="chat_stream",
        activity_id="1",
        retry_state=RetryState.MAXIMUM_ATTEMPTS_REACHED,
    )
    error.__cause__ = cause
    return error


def test_workflow_decodes_regular_and_local_activity_failures_alike() -> None:
    failure = error_codec.application_error(
        UpstreamBadRequestError("no", retryable=False, upstream_status=400), attempt=2
    )
    for error in (_activity_error(failure), failure):
        payload = error_codec.payload_from_activity_failure(error, max_retries=4)
        assert payload.kind == "UpstreamBadRequestError"
        assert payload.attempt_count == 2


def test_a_temporal_timeout_used_every_attempt_of_the_step() -> None:
    timeout = TemporalTimeoutError(
        "activity timeout", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[]
    )
    payload = error_codec.payload_from_activity_failure(_activity_error(timeout), max_retries=2)
    assert isinstance(payload, UpstreamFailure)
    assert payload.kind == "UpstreamTimeoutError"
    assert payload.retryable is True
    assert payload.code == "upstream_timeout"
    assert payload.attempt_count == 3


def test_an_unexplained_activity_failure_is_a_final_upstream_error_of_one_attempt() -> None:
    payload = error_codec.payload_from_activity_failure(
        _activity_error(RuntimeError("boom")), max_retries=2
    )
    assert isinstance(payload, UpstreamFailure)
    assert (payload.kind, payload.message, payload.retryable) == ("UpstreamError", "boom", False)
    assert payload.attempt_count == 1


def test_chain_failure_is_final_and_counts_the_whole_run() -> None:
    last = error_codec.payload_from_error(
        UpstreamBadRequestError("no", retryable=False, upstream_status=400), attempt=1
    )
    failure = error_codec.chain_failure(last, attempts=5)
    assert failure.non_retryable is True
    assert failure.type == "UpstreamBadRequestError"
    assert failure.details[0]["attempts"] == 5
    error = error_codec.error_from_run_failure(failure)
    assert isinstance(error, UpstreamBadRequestError)
    assert error.upstream_status == 400
    assert error_codec.callback_error(failure) == error.to_dict()


def test_run_failures_that_carry_no_payload() -> None:
    cancelled = error_codec.error_from_run_failure(CancelledError("cancelled"))
    assert isinstance(cancelled, UpstreamError)
    assert cancelled.code == "cancelled"
    bare = ApplicationError("chain has no steps", type="InvalidRequestError")
    unexplained = error_codec.error_from_run_failure(bare)
    assert type(unexplained) is UpstreamError
    assert unexplained.message.startswith("the run failed: ")
    assert "chain has no steps" in unexplained.message
    assert error_codec.callback_error(bare) == GatewayError("chain has no steps").to_dict()
    assert error_codec.operation_error(None)["message"] == "the operation did not complete"
    cancelled = error_codec.error_from_run_failure(CancelledError())
    assert error_codec.operation_error(cancelled)["code"] == "cancelled"


def test_temporal_rpc_errors() -> None:
    too_large = RPCError("Blob data size exceeds limit", RPCStatusCode.INVALID_ARGUMENT, b"")
    assert isinstance(error_codec.error_from_rpc(too_large), errors.RequestTooLargeError)
    down = error_codec.error_from_rpc(RPCError("no", RPCStatusCode.UNAVAILABLE, b""))
    assert isinstance(down, errors.ServiceUnavailableError)
    assert down.code == "temporal_unavailable"
    assert down.message == "Temporal is unavailable (UNAVAILABLE)"


def test_internal_error_body_is_an_openai_server_error() -> None:
    assert json.loads(error_codec.internal_error_body()) == {
        "error": {
            "message": "internal server error",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


def test_validation_problems_become_one_invalid_request() -> None:
    error = error_codec.error_from_validation(
        [
            {"type": "missing", "loc": ("body", "messages"), "msg": "Field required"},
            {"type": "int_type", "loc": ("body", "n", 0, "x"), "msg": "bad"},
        ]
    )
    assert error.to_dict() == {
        "message": "messages: Field required; n[0].x: bad",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "invalid_value",
    }
    unreadable = error_codec.error_from_validation(
        [{"type": "json_invalid", "loc": ("body", 3), "ctx": {"error": "Expecting value"}}]
    )
    assert unreadable.message == "request body is not valid JSON: Expecting value"
    assert unreadable.code == "invalid_json"
    assert error_codec.http_error(unreadable).status == 400


def test_stream_events_decode_by_type() -> None:
    chunk = {"id": "c1", "choices": [{"index": 0, "delta": {"content": "hi"}}]}
    payload = error_codec.payload_from_error(errors.StreamInterruptedError("cut", retryable=False))
    events = [
        ChunkEvent(attempt=2, served_by="m", step=1, prior_attempts=3, data=chunk),
        EndEvent(),
        ErrorEvent(error=payload),
        ResultEvent(data={"id": "r"}),
    ]
    for event in events:
        assert STREAM_EVENT.validate_json(event.model_dump_json()) == event
    # Unknown keys (a newer publisher) are ignored.
    assert STREAM_EVENT.validate_python({"type": "end", "offset": 7}) == EndEvent()


def test_error_payload_round_trips_kind_and_fields() -> None:
    original = UpstreamRateLimitError(
        "busy", retryable=True, upstream_status=429, retry_after_s=2.0, code="rate_limited"
    )
    rebuilt = error_codec.error_from_payload(error_codec.payload_from_error(original))
    assert isinstance(rebuilt, UpstreamRateLimitError)
    assert rebuilt.to_dict() == original.to_dict()
    assert rebuilt.retry_after_s == 2.0
    assert rebuilt.status_code == 429
