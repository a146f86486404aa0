"""Circuit breaker whose state lives in Redis, shared by every gateway process.

Each operation is one Lua script: one round trip, atomic across processes. Outcomes are
counted in one-second buckets (hashes with a TTL), so nothing scans the keyspace.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import Redis

from gateway_core.breaker.base import Admission, BreakerConfig, BreakerStatus, State

# KEYS[1] state hash; ARGV: now, probes, cooldown
_ALLOW = """
local st = redis.call('HMGET', KEYS[1], 'state', 'open_until', 'probes_taken', 'probe_at')
local state = st[1] or 'closed'
if state == 'closed' then return {1, 'closed'} end
local now = tonumber(ARGV[1])
if state == 'open' then
  if now < tonumber(st[2]) then return {0, 'open'} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probes_taken', 0)
  st[3] = '0'
end
-- a probe that never reported back is a lease that runs out after a cool-down
if now - tonumber(st[4] or '0') >= tonumber(ARGV[3]) then st[3] = '0' end
if tonumber(st[3] or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'probes_taken', tonumber(st[3] or '0') + 1, 'probe_at', now)
  return {1, 'half_open'}
end
return {0, 'half_open'}
"""

# KEYS[1] state hash, KEYS[2] bucket prefix; ARGV: now, success, window, ratio, min, cooldown
_RECORD = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' then
  if ARGV[2] == '1' then
    redis.call('DEL', KEYS[1])
    for s = math.floor(now) - math.floor(window), math.floor(now) do
      redis.call('DEL', KEYS[2] .. s)
    end
    return 'closed'
  end
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + tonumber(ARGV[6]))
  redis.call('EXPIRE', KEYS[1], math.ceil(window + tonumber(ARGV[6])) * 2)
  return 'open'
end
local second = math.floor(now)
local bucket = KEYS[2] .. second
redis.call('HINCRBY', bucket, ARGV[2] == '1' and 'ok' or 'fail', 1)
redis.call('EXPIRE', bucket, math.ceil(window) + 2)
redis.call('EXPIRE', KEYS[1], math.ceil(window + tonumber(ARGV[6])) * 2)
if state ~= 'closed' or ARGV[2] == '1' then return state end
local first = second - math.floor(window) + 1
local total, fails = 0, 0
for s = first, second do
  local counts = redis.call('HMGET', KEYS[2] .. s, 'ok', 'fail')
  local ok, fail = tonumber(counts[1] or '0'), tonumber(counts[2] or '0')
  total = total + ok + fail
  fails = fails + fail
end
if total >= tonumber(ARGV[5]) and fails / total >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + tonumber(ARGV[6]))
  return 'open'
end
return state
"""

# KEYS[1] state hash, KEYS[2] bucket prefix; ARGV: now, window
_RESET = """
redis.call('DEL', KEYS[1])
local second = math.floor(tonumber(ARGV[1]))
for s = second - math.floor(tonumber(ARGV[2])), second do
  redis.call('DEL', KEYS[2] .. s)
end
return 1
"""

# KEYS[1] state hash, KEYS[2] bucket prefix; ARGV: now, window
_STATUS = """
local st = redis.call('HMGET', KEYS[1], 'state', 'open_until')
local second = math.floor(tonumber(ARGV[1]))
local first = second - math.floor(tonumber(ARGV[2])) + 1
local total, fails = 0, 0
for s = first, second do
  local counts = redis.call('HMGET', KEYS[2] .. s, 'ok', 'fail')
  total = total + tonumber(counts[1] or '0') + tonumber(counts[2] or '0')
  fails = fails + tonumber(counts[2] or '0')
end
return {st[1] or 'closed', st[2] or '0', total, fails}
"""


class RedisCircuitBreaker:
    """The memory breaker's behaviour, with state shared through Redis."""

    def __init__(
        self, redis: Redis, config: BreakerConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._config = config
        self._clock = clock
        self._allow = redis.register_script(_ALLOW)
        self._record = redis.register_script(_RECORD)
        self._status = redis.register_script(_STATUS)
        self._reset = redis.register_script(_RESET)

    @staticmethod
    def _keys(model_id: str) -> list[str]:
        return [f"pmp:cb:{{{model_id}}}:state", f"pmp:cb:{{{model_id}}}:b:"]

    async def allow(self, model_id: str) -> bool:
        return (await self.admit(model_id)).allowed

    async def admit(self, model_id: str) -> Admission:
        raw: Any = await self._allow(
            keys=self._keys(model_id)[:1],
            args=[self._clock(), self._config.probes, self._config.cooldown_s],
        )
        return Admission(int(raw[0]) == 1, _state(raw[1]))

    async def record(self, model_id: str, success: bool) -> State:
        config = self._config
        raw: Any = await self._record(
            keys=self._keys(model_id),
            args=[
                self._clock(),
                "1" if success else "0",
                config.window_s,
                config.failure_ratio,
                config.min_requests,
                config.cooldown_s,
            ],
        )
        return _state(raw)

    async def status(self, model_id: str) -> BreakerStatus:
        raw: Any = await self._status(
            keys=self._keys(model_id), args=[self._clock(), self._config.window_s]
        )
        state = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
        open_until = float(raw[1])
        total, failures = int(raw[2]), int(raw[3])
        return BreakerStatus(
            state=cast(State, state),
            requests=total,
            failures=failures,
            error_rate=failures / total if total else 0.0,
            open_until=open_until if state == "open" else None,
        )

    async def reset(self, model_id: str) -> None:
        await self._reset(keys=self._keys(model_id), args=[self._clock(), self._config.window_s])


def _state(raw: Any) -> State:
    """A state name as a Lua script returned it (bytes from redis-py)."""
    name = raw.decode() if isinstance(raw, bytes) else str(raw)
    if name not in ("closed", "open", "half_open"):
        raise ValueError(f"unknown circuit state {name!r}")
    return cast(State, name)
