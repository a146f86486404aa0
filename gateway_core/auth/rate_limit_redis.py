"""The sliding-window rate limiter with its counters in Redis, shared by every process.

One Lua script per check: it reads every window's two buckets, decides, and (when
admitted) counts the request in all of them, atomically and in one round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from gateway_core.auth.rate_limit import RateDecision, Window, decide, windows_of
from gateway_core.domain.api_keys import RateLimits

# ARGV: now, admit(1/0 ignored), then per window: kind, seconds, cost. Returns, per window,
# previous and current counts; when every window admits, the costs are added.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local counts = {}
local fits = true
local n = (#ARGV - 1) / 4
for i = 0, n - 1 do
  local kind, seconds = ARGV[2 + i * 4], tonumber(ARGV[3 + i * 4])
  local cost, limit = tonumber(ARGV[4 + i * 4]), tonumber(ARGV[5 + i * 4])
  local index = math.floor(now / seconds)
  local base = KEYS[1] .. ':' .. kind .. ':' .. seconds .. ':'
  local previous = tonumber(redis.call('GET', base .. (index - 1)) or '0')
  local current = tonumber(redis.call('GET', base .. index) or '0')
  local elapsed = now - index * seconds
  if previous * (1 - elapsed / seconds) + current + cost > limit then fits = false end
  table.insert(counts, tostring(previous))
  table.insert(counts, tostring(current))
end
if fits then
  for i = 0, n - 1 do
    local kind, seconds = ARGV[2 + i * 4], tonumber(ARGV[3 + i * 4])
    local cost = tonumber(ARGV[4 + i * 4])
    local key = KEYS[1] .. ':' .. kind .. ':' .. seconds .. ':' .. math.floor(now / seconds)
    redis.call('INCRBYFLOAT', key, cost)
    redis.call('EXPIRE', key, seconds * 2 + 1)
  end
end
return counts
"""

_ADJUST = """
local value = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if tonumber(value) < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
redis.call('EXPIRE', KEYS[1], 121)
return 1
"""


class RedisRateLimiter:
    """Same decisions as MemoryRateLimiter, counters shared through Redis."""

    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._acquire = redis.register_script(_ACQUIRE)
        self._adjust = redis.register_script(_ADJUST)

    @staticmethod
    def _prefix(key_id: str) -> str:
        return f"pmp:rl:{{{key_id}}}"

    async def acquire(self, key_id: str, limits: RateLimits, tokens: int) -> RateDecision:
        windows = windows_of(limits)
        if not windows:
            return RateDecision(allowed=True)
        now = self._clock()
        args: list[Any] = [now]
        for window in windows:
            cost = 1 if window.kind == "requests" else tokens
            args += [window.kind, window.seconds, cost, window.limit]
        raw: Any = await self._acquire(keys=[self._prefix(key_id)], args=args)
        loads: list[tuple[Window, float, float, float]] = []
        for position, window in enumerate(windows):
            previous, current = float(raw[2 * position]), float(raw[2 * position + 1])
            loads.append((window, previous, current, now % window.seconds))
        return decide(loads, tokens)

    async def adjust_tokens(self, key_id: str, limits: RateLimits, delta: int) -> None:
        if not limits.tokens_per_minute or not delta:
            return
        key = f"{self._prefix(key_id)}:tokens:60:{int(self._clock() // 60)}"
        await self._adjust(keys=[key], args=[delta])
