"""The one hierarchy of domain errors; gateway_core.error_codec owns their translations."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    status_code = 500
    error_type = "server_error"
    default_code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers: dict[str, str] = {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }


class InvalidRequestError(GatewayError):
    status_code = 400
    error_type = "invalid_request_error"


# OpenAI reports 401 and 404 as invalid_request_error (telling them apart by `code`).
class AuthenticationError(GatewayError):
    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status_code = 403
    error_type = "permission_error"


class NotFoundError(GatewayError):
    status_code = 404
    error_type = "invalid_request_error"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class PromptNotFoundError(NotFoundError):
    default_code = "prompt_not_found"


class RequestTooLargeError(InvalidRequestError):
    status_code = 413
    default_code = "request_too_large"


class MethodNotAllowedError(GatewayError):
    """The resource exists but refuses this kind of request (a read-only knowledge base)."""

    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class ConflictError(GatewayError):
    status_code = 409
    error_type = "conflict_error"


class RateLimitError(GatewayError):
    """The caller's key is over one of its rate limits."""

    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class ServiceUnavailableError(GatewayError):
    status_code = 503
    error_type = "service_unavailable"


class ConfigurationError(GatewayError):
    """The gateway itself is misconfigured (missing credential, unknown provider).

    Its message is for operators (it may name environment variables, secret paths or
    store addresses): callers get a fixed message and the stable `code`; the detail stays
    in the API's log and the run's (encrypted) history.
    """

    status_code = 500
    error_type = "configuration_error"
    public_message = (
        "the gateway is not configured to serve this request; an operator can find the"
        " cause in the gateway's log"
    )

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "message": self.public_message}


class UpstreamError(GatewayError):
    """A provider call failed; `retryable` says whether another attempt may succeed."""

    status_code = 502
    error_type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        upstream_status: int | None = None,
        retry_after_s: float | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param)
        self.retryable = retryable
        self.upstream_status = upstream_status
        self.retry_after_s = retry_after_s


class UpstreamBadRequestError(UpstreamError):
    """The upstream refused the request itself; every retry would fail the same way."""

    status_code = 400
    error_type = "invalid_request_error"


class UpstreamModelNotFoundError(UpstreamBadRequestError):
    """The upstream does not know the model or deployment (404): this step cannot answer,
    but another model of the chain may, so the chain falls back (unlike a bad request)."""

    default_code = "upstream_model_not_found"


class UpstreamRateLimitError(UpstreamError):
    status_code = 429
    error_type = "rate_limit_error"


class UpstreamTimeoutError(UpstreamError):
    status_code = 504
    error_type = "timeout_error"


class CircuitOpenError(UpstreamError):
    """The model's circuit breaker is open: the step is skipped without calling it."""

    status_code = 503
    error_type = "service_unavailable"
    default_code = "circuit_open"


class StreamInterruptedError(UpstreamError):
    """The upstream stream broke after text reached the client; retrying would repeat it."""

    error_type = "upstream_error"
    default_code = "stream_interrupted"
