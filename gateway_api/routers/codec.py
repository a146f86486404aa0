"""POST /codec/decode and /codec/encode: the Temporal Web UI's codec server.

The key is the admin key, as `Authorization: Bearer <key>` (the CLI's `--codec-auth`)
or as the password of HTTP Basic credentials the browser keeps once `GET /codec/login`
asked for them (the Web UI's "Include cross-origin credentials" then sends them).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from gateway_api.deps import CodecDep
from gateway_api.services.codec import MAX_PAYLOADS, CodecAction
from gateway_core.errors import AuthenticationError, GatewayError

router = APIRouter(prefix="/codec", tags=["codec"])


def _presented(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return token.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


@router.options("/{action}", include_in_schema=False)
async def preflight(action: str, request: Request, codec: CodecDep) -> Response:
    return Response(status_code=204, headers=codec.cors_headers(request.headers.get("origin")))


@router.get("/login", include_in_schema=False)
async def login(request: Request, codec: CodecDep) -> Response:
    """Opened once in the browser: it asks for the admin key (as the Basic password)."""
    try:
        codec.authorize(_presented(request))
    except AuthenticationError:
        challenge = {"www-authenticate": 'Basic realm="pmp-gateway codec"'}
        return Response("the admin key is the password", status_code=401, headers=challenge)
    return Response("codec access granted for this browser", media_type="text/plain")


async def _run(
    action: CodecAction, request: Request, codec: CodecDep, body: dict[str, Any]
) -> JSONResponse:
    headers = codec.cors_headers(request.headers.get("origin"))
    try:
        codec.authorize(_presented(request))
        answer = await codec.run(action, body)
    except GatewayError as error:  # the browser can read the error only with CORS headers
        error.headers.update(headers)
        raise
    return JSONResponse(answer, headers=headers)


class CodecPayload(BaseModel):
    """One Temporal payload: metadata values and data in base64."""

    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class CodecPayloads(BaseModel):
    payloads: list[CodecPayload] = Field(max_length=MAX_PAYLOADS)


@router.post("/decode")
async def decode(request: Request, codec: CodecDep, body: CodecPayloads) -> JSONResponse:
    """Decrypt payloads (Temporal codec server protocol)."""
    return await _run("decode", request, codec, body.model_dump())


@router.post("/encode")
async def encode(request: Request, codec: CodecDep, body: CodecPayloads) -> JSONResponse:
    """Encrypt payloads (Temporal codec server protocol)."""
    return await _run("encode", request, codec, body.model_dump())
