"""Rate limits on the request path: admit or refuse, and the x-ratelimit-* headers."""

from __future__ import annotations

import math

from gateway_core.auth.rate_limit import RateDecision, RateLimiter
from gateway_core.auth.service import Caller
from gateway_core.errors import RateLimitError


class RateLimitGate:
    """Counts each request (and its token estimate) against the caller's limits."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def admit(self, caller: Caller, *, tokens: int, headers: dict[str, str]) -> None:
        """Count the request; 429 with Retry-After when over a limit.

        The x-ratelimit-* headers go into `headers` first, so that whatever answer the
        request gets (a later 403 or 404 included) carries them.
        """
        token_limit = caller.rate_limits.tokens_per_minute
        if token_limit is not None and tokens > token_limit:
            # Waiting would not help: this request alone is over the per-minute token limit.
            raise RateLimitError(
                f"request too large: about {tokens} tokens, limit {token_limit} tokens per minute",
                code="request_too_large",
            )
        decision = await self._limiter.acquire(caller.key_id, caller.rate_limits, tokens)
        headers.update(rate_limit_headers(decision))
        if not decision.allowed:
            error = RateLimitError(decision.reason)
            error.headers.update(headers)
            error.headers["retry-after"] = str(max(1, math.ceil(decision.retry_after_s)))
            raise error


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
