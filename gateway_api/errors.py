"""Installs the handlers through which every error leaves as an OpenAI-format response.

The bodies, statuses and headers come from gateway_core.error_codec.
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway_core.error_codec import (
    HttpError,
    error_from_validation,
    http_error,
    http_error_for_status,
)
from gateway_core.errors import GatewayError, InvalidRequestError

logger = logging.getLogger(__name__)


def _response(error: HttpError) -> JSONResponse:
    return JSONResponse(error.body, status_code=error.status, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the gateway as {"error": {message, type, param, code}}."""

    async def on_gateway_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        if exc.status_code >= 500:
            logger.warning(
                "request failed", extra={"error": exc.message, "status": exc.status_code}
            )
        return _response(http_error(exc))

    async def on_validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _response(http_error(error_from_validation(exc.errors())))

    async def on_http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _response(http_error_for_status(exc.status_code, str(exc.detail), exc.headers))

    async def on_database_value_error(_request: Request, exc: Exception) -> Response:
        # SQLSTATE class 22 (data exception): a request value PostgreSQL cannot store or
        # compare (U+0000 in text, an interval out of range), not a server fault.
        logger.info("database refused a request value", extra={"error": type(exc).__name__})
        error = InvalidRequestError(
            "a value in the request cannot be stored (for example the NUL character U+0000,"
            " or a number out of range)",
            code="unstorable_value",
        )
        return _response(http_error(error))

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(psycopg.DataError, on_database_value_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
