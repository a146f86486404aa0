"""The one place gateway errors become Temporal ApplicationErrors."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from gateway_core.errors import GatewayError, UpstreamError, error_to_payload


def to_application_error(error: GatewayError, *, attempt: int | None = None) -> ApplicationError:
    """Retryable upstream failures stay retryable (honouring Retry-After); the rest do not.

    The payload records which attempt failed, so the workflow can count attempts.
    """
    retryable = isinstance(error, UpstreamError) and error.retryable
    delay = None
    if isinstance(error, UpstreamError) and error.retry_after_s:
        delay = timedelta(seconds=min(error.retry_after_s, 60.0))
    payload = error_to_payload(error)
    if attempt is None:
        attempt = activity.info().attempt if activity.in_activity() else 1
    payload["attempt"] = attempt
    return ApplicationError(
        error.message,
        payload,
        type=type(error).__name__,
        non_retryable=not retryable,
        next_retry_delay=delay,
        # An upstream failing is the gateway's daily business, not a bug: the SDK then logs
        # it at DEBUG without a traceback (the API logs the outcome once, with the run id).
        category=ApplicationErrorCategory.BENIGN,
    )
