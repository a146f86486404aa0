"""Structured logging: key=value text or one JSON object per line, with request and trace ids."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pmp_request_id", default=None
)

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRS
    }
    request_id = request_id_var.get()
    if request_id is not None and "request_id" not in fields:
        fields["request_id"] = request_id
    # The span current where the line was logged (none when tracing is off).
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        fields.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        fields.setdefault("span_id", trace.format_span_id(context.span_id))
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable line with trailing key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        pairs = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if pairs:
            line = f"{line} {pairs}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(log_format: str, level: str = "INFO") -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "temporalio.activity", "temporalio.workflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The access log is ours (gateway_api.middleware), with the request id.
    logging.getLogger("uvicorn.access").disabled = True


# Field names whose values are credentials wherever they appear in a logged body.
SECRET_FIELDS = frozenset(
    {
        "api_key",
        "apikey",
        "authorization",
        "password",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "client_secret",
        "key",
        "credential",
        "credentials",
        "secret_access_key",
        "session_token",
    }
)
REDACTED = "[redacted]"


def redact_fields(value: Any, fields: frozenset[str]) -> Any:
    """`value` with every dict entry named in `fields` (case-insensitive) replaced."""
    if isinstance(value, dict):
        return {
            key: REDACTED if str(key).lower() in fields else redact_fields(item, fields)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_fields(item, fields) for item in value]
    return value


def redacted_body(raw: bytes, fields: frozenset[str], secrets: tuple[str, ...]) -> Any:
    """A request or response body fit for a log line: JSON with secret fields redacted.

    Values of `secrets` (the presented API key) are cut from the text wherever they
    occur; a body that is not JSON is logged by its size only.
    """
    text = raw.decode("utf-8", errors="replace")
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"bytes": len(raw)}
    return redact_fields(parsed, SECRET_FIELDS | fields)
