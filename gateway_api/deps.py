"""Dependencies: the runtime and the caller's identity, as one-line aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway_api.runtime import Runtime
from gateway_core.errors import AuthenticationError


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def presented_key(request: Request) -> str:
    """The key from `Authorization: Bearer` or `X-API-Key`; 401 when neither is there."""
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    raise AuthenticationError(
        "no API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
        code="missing_api_key",
    )


async def require_key(request: Request, runtime: RuntimeDep) -> str:
    """Authenticate the caller (for now every valid key is the admin key, see issue 5)."""
    key = presented_key(request)
    if not runtime.admin_keys.verify(key):
        raise AuthenticationError("the API key is not valid")
    return "admin"


async def require_admin(request: Request, runtime: RuntimeDep) -> str:
    return await require_key(request, runtime)


CallerDep = Annotated[str, Depends(require_key)]
AdminDep = Annotated[str, Depends(require_admin)]
