"""Dependencies: the runtime and the caller's identity, as one-line aliases."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Header, Request

from gateway_api.runtime import Runtime
from gateway_core.auth.rate_limit import RateDecision
from gateway_core.auth.service import Caller
from gateway_core.errors import AuthenticationError, InvalidRequestError, RateLimitError


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


async def authenticate(request: Request, runtime: RuntimeDep) -> Caller:
    """The caller behind the presented key (401 saying what is wrong with it)."""
    return await runtime.authenticator.authenticate(presented_key(request))


async def rate_limited_caller(
    request: Request, runtime: RuntimeDep, caller: Annotated[Caller, Depends(authenticate)]
) -> Caller:
    """An authenticated caller whose request fits its limits (counted as one request)."""
    await enforce_rate_limit(request, runtime, caller, tokens=0)
    return caller


async def enforce_rate_limit(
    request: Request, runtime: Runtime, caller: Caller, *, tokens: int
) -> None:
    """Count the request (and its token estimate); 429 with Retry-After when over a limit.

    The x-ratelimit-* headers are attached to whatever response the request gets.
    """
    token_limit = caller.rate_limits.tokens_per_minute
    if token_limit is not None and tokens > token_limit:
        # Waiting would not help: this request alone is over the per-minute token limit.
        raise RateLimitError(
            f"request too large: about {tokens} tokens, limit {token_limit} tokens per minute",
            code="request_too_large",
        )
    decision = await runtime.rate_limiter.acquire(caller.key_id, caller.rate_limits, tokens)
    headers = rate_limit_headers(decision)
    request.state.pmp_headers = {**getattr(request.state, "pmp_headers", {}), **headers}
    if not decision.allowed:
        error = RateLimitError(decision.reason)
        error.headers.update(headers)
        error.headers["retry-after"] = str(max(1, math.ceil(decision.retry_after_s)))
        raise error


async def require_admin(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
    """Admin routes need a key with the admin flag (403 otherwise)."""
    caller.require_admin()
    return caller


CallerDep = Annotated[Caller, Depends(rate_limited_caller)]
# For routes that count the request themselves (chat: with its token estimate).
AuthenticatedDep = Annotated[Caller, Depends(authenticate)]
AdminDep = Annotated[Caller, Depends(require_admin)]


def rate_limit_headers(decision: RateDecision) -> dict[str, str]:
    """OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers."""
    headers: dict[str, str] = {}
    for kind, state in (("requests", decision.requests), ("tokens", decision.tokens)):
        if state is None:
            continue
        headers[f"x-ratelimit-limit-{kind}"] = str(state.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(state.remaining)
        headers[f"x-ratelimit-reset-{kind}"] = format_duration(state.reset_s)
    return headers


def format_duration(seconds: float) -> str:
    """Durations as OpenAI writes them: `20ms`, `6s`, `1m30s`, `2h0m0s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def parse_if_match(if_match: str | None) -> int | None:
    """The version an `If-Match` header expects (`3`, `"3"` or `W/"3"`), or None."""
    if if_match is None:
        return None
    raw = if_match.strip().strip('"').removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise InvalidRequestError("If-Match must be a version number", param="If-Match")
    return int(raw)


async def if_match_version(if_match: Annotated[str | None, Header()] = None) -> int | None:
    return parse_if_match(if_match)


# The version a conditional write expects; None writes unconditionally.
IfMatchDep = Annotated[int | None, Depends(if_match_version)]
