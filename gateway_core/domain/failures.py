"""FailurePayload: a gateway error as it crosses Temporal (failure details) and the bus.

Two shapes, told apart by `kind` (the error's class name): upstream failures say whether
another attempt may succeed; gateway-side failures do not. Extra keys are ignored, so
recorded histories keep decoding when a field is added or dropped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

GatewayKind = Literal[
    "GatewayError",
    "InvalidRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ModelNotFoundError",
    "PromptNotFoundError",
    "ConflictError",
    "MethodNotAllowedError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "ConfigurationError",
]
UpstreamKind = Literal[
    "UpstreamError",
    "UpstreamBadRequestError",
    "UpstreamModelNotFoundError",
    "UpstreamRateLimitError",
    "UpstreamTimeoutError",
    "StreamInterruptedError",
    "CircuitOpenError",
]
FailureKind = Literal[GatewayKind, UpstreamKind]


class _Failure(BaseModel):
    """The fields every failure carries; `type`, `param`, `code` are its OpenAI error."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: str
    message: str = "upstream call failed"
    type: str | None = None
    param: str | None = None
    code: str | None = None
    # Which attempt of the activity failed; `attempts` is the whole run's count (final).
    attempt: int | None = None
    attempts: int | None = None

    @property
    def attempt_count(self) -> int:
        """How many attempts this failure used up (one when it does not say)."""
        return 1 if self.attempt is None else self.attempt

    def detail(self) -> dict[str, Any]:
        """The JSON-ready dict carried as Temporal failure details (unset counts left out)."""
        unset = {name for name in ("attempt", "attempts") if getattr(self, name) is None}
        return self.model_dump(exclude=unset)


class GatewayFailure(_Failure):
    """A gateway-side error (bad request, configuration, ...): never worth a retry."""

    kind: GatewayKind


class UpstreamFailure(_Failure):
    """A provider call failed; `retryable` says whether another attempt may succeed."""

    kind: UpstreamKind
    retryable: bool = False
    upstream_status: int | None = None
    retry_after_s: float | None = None


FailurePayload = Annotated[GatewayFailure | UpstreamFailure, Field(discriminator="kind")]
FAILURE_PAYLOAD: TypeAdapter[GatewayFailure | UpstreamFailure] = TypeAdapter(FailurePayload)
