"""The one codec for gateway errors: every translation of a GatewayError lives here.

GatewayError ⇄ FailurePayload (gateway_core.domain.failures) ⇄ Temporal ApplicationError
(activity failures, the workflow's final failure, a run's failure as the client sees it)
⇄ OpenAI-format HTTP body and SSE error event. This is the only gateway_core module that
imports temporalio, and only its light `exceptions` and `service` modules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, get_args

from pydantic import ValidationError
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ApplicationErrorCategory,
    CancelledError,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.service import RPCError, RPCStatusCode

from gateway_core import errors
from gateway_core.domain.failures import (
    FAILURE_PAYLOAD,
    FailurePayload,
    GatewayFailure,
    GatewayKind,
    UpstreamFailure,
    UpstreamKind,
)
from gateway_core.errors import GatewayError, InvalidRequestError, UpstreamError

# Retry-After beyond this is not worth holding an attempt for.
MAX_RETRY_DELAY_S = 60.0

_GATEWAY_CLASSES: dict[str, type[GatewayError]] = {
    name: getattr(errors, name) for name in get_args(GatewayKind)
}
_UPSTREAM_CLASSES: dict[str, type[UpstreamError]] = {
    name: getattr(errors, name) for name in get_args(UpstreamKind)
}
# HTTP errors raised by the framework itself (404 route, 405 method, ...), by status.
_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def error_classes() -> dict[str, type[GatewayError]]:
    """Every error class a payload may name, by its `kind` (the class name)."""
    return {**_GATEWAY_CLASSES, **_UPSTREAM_CLASSES}


# --- GatewayError ⇄ FailurePayload -------------------------------------------------------


def _kind_of(error: GatewayError) -> str:
    """The class name, or that of the nearest known ancestor for a class defined elsewhere."""
    known = error_classes()
    return next(cls.__name__ for cls in type(error).__mro__ if cls.__name__ in known)


def payload_from_error(error: GatewayError, *, attempt: int | None = None) -> FailurePayload:
    """Serialise an error so it can cross a process boundary (failure details, the bus)."""
    fields: dict[str, Any] = {
        "kind": _kind_of(error),
        **error.to_dict(),
        "message": error.message,  # the detail crosses; to_dict may hide it from callers
        "attempt": attempt,
    }
    if isinstance(error, UpstreamError):
        return UpstreamFailure.model_validate(
            {
                **fields,
                "retryable": error.retryable,
                "upstream_status": error.upstream_status,
                "retry_after_s": error.retry_after_s,
            }
        )
    return GatewayFailure.model_validate(fields)


def error_from_payload(payload: FailurePayload) -> GatewayError:
    """Rebuild the error that `payload_from_error` serialised."""
    if isinstance(payload, UpstreamFailure):
        return _UPSTREAM_CLASSES[payload.kind](
            payload.message,
            retryable=payload.retryable,
            upstream_status=payload.upstream_status,
            retry_after_s=payload.retry_after_s,
            code=payload.code,
            param=payload.param,
        )
    return _GATEWAY_CLASSES[payload.kind](payload.message, code=payload.code, param=payload.param)


def decode_payload(detail: object) -> FailurePayload | None:
    """A recorded failure detail as a payload (extra keys ignored); None if it is not one."""
    try:
        return FAILURE_PAYLOAD.validate_python(detail)
    except ValidationError:
        return None


# --- FailurePayload ⇄ Temporal ApplicationError ------------------------------------------


def application_error(error: GatewayError, *, attempt: int) -> ApplicationError:
    """An activity's failure, retryable only for a retryable upstream error.

    Retry-After (capped) becomes the next retry delay; the payload records the attempt.
    """
    upstream = error if isinstance(error, UpstreamError) else None
    delay = None
    if upstream is not None and upstream.retry_after_s:
        delay = timedelta(seconds=min(upstream.retry_after_s, MAX_RETRY_DELAY_S))
    return ApplicationError(
        error.message,
        payload_from_error(error, attempt=attempt).detail(),
        type=type(error).__name__,
        non_retryable=not (upstream is not None and upstream.retryable),
        next_retry_delay=delay,
        # An upstream failing is the gateway's daily business, not a bug: the SDK then logs
        # it at DEBUG without a traceback (the API logs the outcome once, with the run id).
        category=ApplicationErrorCategory.BENIGN,
    )


def payload_from_application_error(error: ApplicationError) -> FailurePayload | None:
    """The payload an ApplicationError carries in its first detail, if it carries one."""
    return decode_payload(error.details[0]) if error.details else None


def payload_from_activity_failure(error: BaseException, *, max_retries: int) -> FailurePayload:
    """The workflow's view of a failed activity: its payload, or one made from the failure.

    A regular activity fails with ActivityError(cause=...); a local activity's failure
    arrives as the cause itself. A Temporal timeout used up every attempt of the step.
    """
    cause = error.cause if isinstance(error, ActivityError) else error
    if isinstance(cause, ApplicationError):
        payload = payload_from_application_error(cause)
        if payload is not None:
            return payload
    if isinstance(cause, TemporalTimeoutError):
        timeout = errors.UpstreamTimeoutError(
            "upstream did not answer within the step's latency limit",
            retryable=True,
            code="upstream_timeout",
        )
        return payload_from_error(timeout, attempt=max_retries + 1)
    message = str(cause) if cause is not None else str(error)
    return payload_from_error(UpstreamError(message, retryable=False), attempt=1)


def empty_chain_failure() -> ApplicationError:
    """A run whose chain has no step (recorded inputs only: routing refuses it earlier)."""
    return chain_failure(payload_from_error(InvalidRequestError("chain has no steps")), attempts=0)


def chain_failure(failure: FailurePayload | None, *, attempts: int) -> ApplicationError:
    """The workflow's final, non-retryable failure once its chain is exhausted."""
    last = failure or payload_from_error(UpstreamError("all chain steps failed", retryable=False))
    return ApplicationError(
        last.message,
        last.model_copy(update={"attempts": attempts}).detail(),
        type=last.kind,
        non_retryable=True,
    )


def callback_error(error: ApplicationError) -> dict[str, Any]:
    """The `error` of a failed run's callback document (OpenAI error fields)."""
    payload = payload_from_application_error(error)
    if payload is None:
        return GatewayError(error.message).to_dict()
    return error_from_payload(payload).to_dict()


# --- a run's failure and Temporal's own errors, as the API sees them ----------------------


def error_from_run_failure(cause: BaseException | None) -> GatewayError:
    """The gateway error a failed run carries, from its WorkflowFailureError's `cause`."""
    if isinstance(cause, ApplicationError):
        payload = payload_from_application_error(cause)
        if payload is not None:
            return error_from_payload(payload)
    if isinstance(cause, CancelledError):
        return UpstreamError("the run was cancelled", retryable=False, code="cancelled")
    return UpstreamError(f"the run failed: {cause or 'no cause recorded'}", retryable=False)


def error_from_rpc(error: RPCError) -> GatewayError:
    """Temporal refused or could not take the call."""
    if error.status == RPCStatusCode.INVALID_ARGUMENT and "size" in error.message.lower():
        return errors.RequestTooLargeError("the request is too large to record as a run")
    return errors.ServiceUnavailableError(
        f"Temporal is unavailable ({error.status.name})", code="temporal_unavailable"
    )


def operation_error(error: GatewayError | None) -> dict[str, Any]:
    """An operation document's `error`: its failed run's error (None: it did not complete)."""
    if error is None:
        return GatewayError("the operation did not complete").to_dict()
    return error.to_dict()


# --- OpenAI-format HTTP bodies and SSE error events ---------------------------------------


@dataclass(frozen=True)
class HttpError:
    """An error response: status, `{"error": {message, type, param, code}}` and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def http_error(error: GatewayError) -> HttpError:
    """The response for a gateway error (www-authenticate on 401, retry-after on 429)."""
    headers = dict(error.headers)
    if error.status_code == 401:
        headers["www-authenticate"] = "Bearer"
    if isinstance(error, UpstreamError) and error.retry_after_s and error.status_code == 429:
        headers["retry-after"] = str(max(1, round(error.retry_after_s)))
    return HttpError(error.status_code, {"error": error.to_dict()}, headers)


def http_error_for_status(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> HttpError:
    """The response for an HTTP error the framework raised (unknown route, method, ...)."""
    error_type = _STATUS_TYPES.get(status, "server_error")
    body = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return HttpError(status, body, dict(headers or {}))


def internal_error_body() -> bytes:
    """The JSON body of a 500 for an error nothing else mapped."""
    return json.dumps({"error": GatewayError("internal server error").to_dict()}).encode()


def sse_error_frame(error: GatewayError) -> bytes:
    """An error event inside an SSE stream, as OpenAI sends one."""
    return f"data: {json.dumps({'error': error.to_dict()})}\n\n".encode()


# --- request validation problems (pydantic / FastAPI `errors()` lists) --------------------


def _field_path(location: Sequence[Any]) -> str | None:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    if not parts:
        return None
    path = parts[0]
    for part in parts[1:]:
        path += f"[{part}]" if part.isdigit() else f".{part}"
    return path


def error_from_validation(problems: Sequence[Mapping[str, Any]]) -> InvalidRequestError:
    """A 400 for a request that failed validation: unreadable JSON, or each bad field."""
    first: Mapping[str, Any] = problems[0] if problems else {}
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", "")
        message = f"request body is not valid JSON: {reason}".rstrip(": ")
        return InvalidRequestError(message, code="invalid_json")
    if first.get("type") == "model_attributes_type" and tuple(first.get("loc", ())) == ("body",):
        return InvalidRequestError(
            "request body must be a JSON object (Content-Type: application/json)",
            code="invalid_json",
        )
    messages = [
        f"{_field_path(problem.get('loc', ())) or 'body'}: {problem.get('msg', 'invalid')}"
        for problem in problems
    ]
    return InvalidRequestError(
        "; ".join(messages), param=_field_path(first.get("loc", ())), code="invalid_value"
    )
