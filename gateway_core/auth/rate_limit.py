"""Sliding-window rate limits per API key: requests per minute/hour/day, tokens per minute.

Each window is counted in fixed buckets; the current load is the current bucket plus the
previous one weighted by how much of it still lies inside the sliding window, so a burst
at a window edge cannot reach twice the limit. A request is admitted only if every
window admits it, and then counts in all of them at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway_core.domain.api_keys import RateLimits

Kind = Literal["requests", "tokens"]


@dataclass(frozen=True)
class Window:
    kind: Kind
    seconds: int
    limit: int


@dataclass(frozen=True)
class WindowState:
    """What the x-ratelimit-* headers report for one kind."""

    limit: int
    remaining: int
    reset_s: float


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: float = 0.0
    requests: WindowState | None = None
    tokens: WindowState | None = None
    reason: str = ""


def windows_of(limits: RateLimits) -> list[Window]:
    found = [
        Window("requests", 60, limits.requests_per_minute or 0),
        Window("requests", 3600, limits.requests_per_hour or 0),
        Window("requests", 86400, limits.requests_per_day or 0),
        Window("tokens", 60, limits.tokens_per_minute or 0),
    ]
    return [window for window in found if window.limit]


def sliding_load(previous: float, current: float, elapsed: float, seconds: int) -> float:
    return previous * (1 - elapsed / seconds) + current


def wait_until_fits(
    previous: float, current: float, elapsed: float, seconds: int, limit: int, cost: int
) -> float:
    """Seconds until `cost` more fits under `limit` (no new traffic assumed)."""
    room = limit - current - cost
    if room >= 0 and previous > 0:
        return max(0.0, seconds * (1 - room / previous) - elapsed)
    # Not even the current bucket alone leaves room: wait into the next bucket, where the
    # current one becomes the decaying previous one.
    later = seconds - elapsed
    if current > 0 and limit - cost >= 0:
        later += seconds * max(0.0, 1 - (limit - cost) / current)
    return later


def decide(loads: list[tuple[Window, float, float, float]], token_cost: int) -> RateDecision:
    """Admit or refuse from each window's (previous, current, elapsed) counts."""
    retry_after = 0.0
    reasons: list[str] = []
    states: dict[Kind, WindowState] = {}
    for window, previous, current, elapsed in loads:
        cost = 1 if window.kind == "requests" else token_cost
        load = sliding_load(previous, current, elapsed, window.seconds)
        if load + cost > window.limit:
            reasons.append(f"{window.limit} {window.kind} per {_unit(window.seconds)}")
            retry_after = max(
                retry_after,
                wait_until_fits(previous, current, elapsed, window.seconds, window.limit, cost),
            )
        remaining = max(0, math.floor(window.limit - load - cost))
        state = WindowState(window.limit, remaining, window.seconds - elapsed)
        if window.kind not in states or state.remaining < states[window.kind].remaining:
            states[window.kind] = state
    allowed = not reasons
    if not allowed:
        states = {kind: WindowState(s.limit, 0, s.reset_s) for kind, s in states.items()}
    return RateDecision(
        allowed=allowed,
        retry_after_s=retry_after,
        requests=states.get("requests"),
        tokens=states.get("tokens"),
        reason="rate limit reached: " + ", ".join(reasons) if reasons else "",
    )


def _unit(seconds: int) -> str:
    return {60: "minute", 3600: "hour", 86400: "day"}.get(seconds, f"{seconds} s")


class RateLimiter(Protocol):
    """Counts requests and tokens per key, shared by every process (Redis) or not (memory)."""

    async def acquire(self, key_id: str, limits: RateLimits, tokens: int) -> RateDecision:
        """Admit the request (counting it and its token estimate) or say when to retry."""
        ...

    async def adjust_tokens(self, key_id: str, limits: RateLimits, delta: int) -> None:
        """Correct the token estimate with the real usage once the answer is known."""
        ...


class MemoryRateLimiter:
    """In-process counters, for a single gateway process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, Kind, int, int], float] = {}

    def _bucket(self, key_id: str, window: Window, index: int) -> float:
        return self._buckets.get((key_id, window.kind, window.seconds, index), 0.0)

    async def acquire(self, key_id: str, limits: RateLimits, tokens: int) -> RateDecision:
        windows = windows_of(limits)
        if not windows:
            return RateDecision(allowed=True)
        now = self._clock()
        loads = []
        for window in windows:
            index, elapsed = divmod(now, window.seconds)
            loads.append(
                (
                    window,
                    self._bucket(key_id, window, int(index) - 1),
                    self._bucket(key_id, window, int(index)),
                    elapsed,
                )
            )
        decision = decide(loads, tokens)
        if decision.allowed:
            for window in windows:
                index = int(now // window.seconds)
                slot = (key_id, window.kind, window.seconds, index)
                cost = 1 if window.kind == "requests" else tokens
                self._buckets[slot] = self._buckets.get(slot, 0.0) + cost
            self._forget_old(now)
        return decision

    async def adjust_tokens(self, key_id: str, limits: RateLimits, delta: int) -> None:
        if not limits.tokens_per_minute or not delta:
            return
        slot: tuple[str, Kind, int, int] = (key_id, "tokens", 60, int(self._clock() // 60))
        self._buckets[slot] = max(0.0, self._buckets.get(slot, 0.0) + delta)

    def _forget_old(self, now: float) -> None:
        if len(self._buckets) < 10_000:
            return
        for slot in [s for s in self._buckets if (s[3] + 2) * s[2] < now]:
            del self._buckets[slot]
