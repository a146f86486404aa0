"""The one place errors become OpenAI-format HTTP responses."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway_core.errors import GatewayError, UpstreamError

logger = logging.getLogger(__name__)

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


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def gateway_error_response(error: GatewayError) -> JSONResponse:
    headers = dict(error.headers)
    if error.status_code == 401:
        headers["www-authenticate"] = "Bearer"
    if isinstance(error, UpstreamError) and error.retry_after_s and error.status_code == 429:
        headers["retry-after"] = str(max(1, round(error.retry_after_s)))
    return JSONResponse({"error": error.to_dict()}, status_code=error.status_code, headers=headers)


def _field_path(location: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    if not parts:
        return None
    path = parts[0]
    for part in parts[1:]:
        path += f"[{part}]" if part.isdigit() else f".{part}"
    return path


def _validation_response(error: RequestValidationError) -> JSONResponse:
    problems = error.errors()
    first = problems[0] if problems else {}
    if first.get("type") == "json_invalid":
        return JSONResponse(
            error_body(
                f"request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".rstrip(
                    ": "
                ),
                "invalid_request_error",
                code="invalid_json",
            ),
            status_code=400,
        )
    if first.get("type") == "model_attributes_type" and tuple(first.get("loc", ())) == ("body",):
        return JSONResponse(
            error_body(
                "request body must be a JSON object (Content-Type: application/json)",
                "invalid_request_error",
                code="invalid_json",
            ),
            status_code=400,
        )
    messages = []
    for problem in problems:
        field = _field_path(problem.get("loc", ())) or "body"
        messages.append(f"{field}: {problem.get('msg', 'invalid')}")
    return JSONResponse(
        error_body(
            "; ".join(messages),
            "invalid_request_error",
            param=_field_path(first.get("loc", ())),
            code="invalid_value",
        ),
        status_code=400,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the gateway as {"error": {message, type, param, code}}."""

    async def on_gateway_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        if exc.status_code >= 500:
            logger.warning(
                "request failed", extra={"error": exc.message, "status": exc.status_code}
            )
        return gateway_error_response(exc)

    async def on_validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_response(exc)

    async def on_http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        error_type = _STATUS_TYPES.get(exc.status_code, "server_error")
        return JSONResponse(
            error_body(str(exc.detail), error_type),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def sse_error(error: GatewayError) -> bytes:
    """An error event inside an SSE stream, as OpenAI sends one."""
    return f"data: {json.dumps({'error': error.to_dict()})}\n\n".encode()
