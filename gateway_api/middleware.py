"""Pure ASGI middleware: request id in and out, one access-log line per request."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway_core.error_codec import http_error, internal_error_body
from gateway_core.errors import RequestTooLargeError
from gateway_core.logging import request_id_var

logger = logging.getLogger("gateway_api.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_INTERNAL_ERROR_BODY = internal_error_body()
_INTERNAL_ERROR_START: Message = {
    "type": "http.response.start",
    "status": 500,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_INTERNAL_ERROR_BODY)).encode()),
    ],
}


class RequestContextMiddleware:
    """Sets the request id (caller's x-request-id if sane) and logs the outcome."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else f"req_{uuid.uuid4().hex}"
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                responded = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                # Set by request handlers (rate-limit headers) for every response they get.
                extra: dict[str, str] = scope.get("state", {}).get("pmp_headers", {})
                present = {name.lower() for name, _value in headers}
                for name, value in extra.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Anything the error mapper did not know: logged with the request id, and the
            # caller still gets OpenAI's error shape (and the id) when nothing was sent yet.
            logger.exception("unhandled error")
            if not responded:
                await send_with_id(dict(_INTERNAL_ERROR_START))
                await send_with_id({"type": "http.response.body", "body": _INTERNAL_ERROR_BODY})
        finally:
            logger.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)


class BodySizeLimit:
    """Refuses request bodies over `limit` bytes with a 413, counted as they are read.

    A declared Content-Length over the limit is refused before anything is read. A body
    that grows past it while streaming gets the 413 at once; the read then fails inside
    the app, whose own answer to that is dropped. Ingestion routes take uploads and
    enforce their own, larger limits.
    """

    def __init__(self, app: ASGIApp, limit: int, exempt_suffixes: tuple[str, ...]) -> None:
        self.app = app
        self._limit = limit
        self._exempt = exempt_suffixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).endswith(self._exempt):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._limit:
            await _send_error(send, self._too_large())
            return
        seen, refused = 0, False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._limit and not refused:
                    refused = True
                    await _send_error(send, self._too_large())
                    raise self._too_large()
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)

    def _too_large(self) -> RequestTooLargeError:
        return RequestTooLargeError(
            f"the request body is over {self._limit} bytes (PMP_MAX_BODY_BYTES)"
        )


async def _send_error(send: Send, error: RequestTooLargeError) -> None:
    response = http_error(error)
    body = json.dumps(response.body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in response.headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
