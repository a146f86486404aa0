"""Per-request accounting: usage per key and model, and the token-limit correction."""

from __future__ import annotations

from typing import Any

from gateway_api.services.background import Background
from gateway_core.auth.rate_limit import RateLimiter
from gateway_core.auth.service import Caller
from gateway_core.auth.usage import UsageRecorder


class UsageAccount:
    """Settles one request once its real usage is known (or it failed)."""

    def __init__(
        self,
        *,
        usage: UsageRecorder,
        limiter: RateLimiter,
        background: Background,
        caller: Caller,
        requested: str,
        estimate: int,
    ) -> None:
        self._usage = usage
        self._limiter = limiter
        self._background = background
        self._caller = caller
        self._requested = requested
        self._estimate = estimate
        self._settled = False

    def submitted(self) -> None:
        """An async run: count the request now and keep its token estimate charged."""
        if self._settled:
            return
        self._settled = True
        self._usage.record(self._caller.key_id, self._requested, 0, 0)

    def settle(self, served_by: str | None, usage: dict[str, Any] | None) -> None:
        """Count the request for its serving model; swap the token estimate for the real use."""
        if self._settled:
            return
        self._settled = True
        usage = usage or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        self._usage.record(self._caller.key_id, served_by or self._requested, prompt, completion)
        actual = int(usage.get("total_tokens") or prompt + completion) if usage else 0
        delta = actual - self._estimate
        if delta and self._caller.rate_limits.tokens_per_minute:
            self._background.spawn(
                self._limiter.adjust_tokens(self._caller.key_id, self._caller.rate_limits, delta),
                "token limit correction",
            )


class Accounting:
    """Opens a UsageAccount per request over the process's usage recorder and limiter."""

    def __init__(
        self, *, usage: UsageRecorder, limiter: RateLimiter, background: Background
    ) -> None:
        self._usage = usage
        self._limiter = limiter
        self._background = background

    def open(self, caller: Caller, requested: str, estimate: int) -> UsageAccount:
        """The account of one request for `requested`, charged `estimate` tokens so far."""
        return UsageAccount(
            usage=self._usage,
            limiter=self._limiter,
            background=self._background,
            caller=caller,
            requested=requested,
            estimate=estimate,
        )
