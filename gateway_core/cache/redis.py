"""Response cache in Redis, shared by every gateway process.

Each operation is one Lua script (atomic, one round trip). Besides the entries, the
cache keeps its own indexes: sorted sets by creation, expiry and last use, a set per
tag (model or chain id) and a hash of each entry's size and tags. Invalidation walks
those indexes in batches, never the keyspace.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis

from gateway_core.cache.base import CachedAnswer, CacheLimits, CacheStats

# ARGV[1] is always the key prefix; `remove` drops an entry and every index of it.
_COMMON = """
local p = ARGV[1]
local function remove(key)
  local meta = redis.call('HGET', p .. 'meta', key)
  if not meta then return 0 end
  local size, tags = string.match(meta, '^(%d+)|(.*)$')
  redis.call('DEL', p .. 'e:' .. key)
  redis.call('ZREM', p .. 'created', key)
  redis.call('ZREM', p .. 'expires', key)
  redis.call('ZREM', p .. 'used', key)
  redis.call('HDEL', p .. 'meta', key)
  redis.call('DECRBY', p .. 'bytes', tonumber(size))
  for tag in string.gmatch(tags, '[^,]+') do
    redis.call('SREM', p .. 't:' .. tag, key)
  end
  return 1
end
local function prune(now)
  local expired = redis.call('ZRANGEBYSCORE', p .. 'expires', '-inf', now, 'LIMIT', 0, 256)
  for _, key in ipairs(expired) do remove(key) end
end
"""

# ARGV: prefix, key, now
_GET = """
local value = redis.call('GET', p .. 'e:' .. ARGV[2])
if not value then
  remove(ARGV[2])
  return false
end
redis.call('ZADD', p .. 'used', ARGV[3], ARGV[2])
return value
"""

# ARGV: prefix, key, value, now, ttl_ms, tags (comma-separated), created, max entries, max bytes
_PUT = """
local key, now = ARGV[2], tonumber(ARGV[4])
remove(key)
prune(now)
local size = string.len(ARGV[3])
redis.call('SET', p .. 'e:' .. key, ARGV[3], 'PX', ARGV[5])
redis.call('ZADD', p .. 'created', ARGV[7], key)
redis.call('ZADD', p .. 'expires', now + tonumber(ARGV[5]) / 1000, key)
redis.call('ZADD', p .. 'used', now, key)
redis.call('HSET', p .. 'meta', key, size .. '|' .. ARGV[6])
redis.call('INCRBY', p .. 'bytes', size)
for tag in string.gmatch(ARGV[6], '[^,]+') do
  redis.call('SADD', p .. 't:' .. tag, key)
end
local max_entries, max_bytes = tonumber(ARGV[8]), tonumber(ARGV[9])
while redis.call('ZCARD', p .. 'used') > max_entries
    or tonumber(redis.call('GET', p .. 'bytes') or '0') > max_bytes do
  local oldest = redis.call('ZRANGE', p .. 'used', 0, 0)
  if #oldest == 0 or oldest[1] == key then break end
  remove(oldest[1])
end
return 1
"""

# ARGV: prefix, key
_DELETE = "return remove(ARGV[2])"

# ARGV: prefix, tag, batch
_DELETE_TAGGED = """
local keys = redis.call('SRANDMEMBER', p .. 't:' .. ARGV[2], tonumber(ARGV[3]))
local removed = 0
for _, key in ipairs(keys) do
  if remove(key) == 0 then redis.call('SREM', p .. 't:' .. ARGV[2], key) end
  removed = removed + 1
end
return removed
"""

# ARGV: prefix, created cutoff ('+inf' for all), batch
_DELETE_CREATED_BEFORE = """
local keys = redis.call('ZRANGEBYSCORE', p .. 'created', '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, key in ipairs(keys) do remove(key) end
return #keys
"""

# ARGV: prefix, now
_STATS = """
prune(tonumber(ARGV[2]))
return {redis.call('ZCARD', p .. 'used'), tonumber(redis.call('GET', p .. 'bytes') or '0')}
"""

_BATCH = 500


class RedisResponseCache:
    """The memory cache's behaviour, with entries and indexes in Redis."""

    name = "redis"

    def __init__(
        self,
        redis: Redis,
        limits: CacheLimits | None = None,
        *,
        prefix: str = "pmp:rc:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limits = limits or CacheLimits()
        self._prefix = prefix
        self._clock = clock
        self._get = redis.register_script(_COMMON + _GET)
        self._put = redis.register_script(_COMMON + _PUT)
        self._delete = redis.register_script(_COMMON + _DELETE)
        self._delete_tagged = redis.register_script(_COMMON + _DELETE_TAGGED)
        self._delete_created = redis.register_script(_COMMON + _DELETE_CREATED_BEFORE)
        self._stats = redis.register_script(_COMMON + _STATS)

    async def get(self, key: str) -> CachedAnswer | None:
        raw: Any = await self._get(args=[self._prefix, key, self._clock()])
        return CachedAnswer.decode(raw) if raw else None

    async def put(
        self, key: str, answer: CachedAnswer, *, tags: Sequence[str], ttl_s: float
    ) -> bool:
        raw = answer.encode()
        if len(raw) > self._limits.max_bytes:
            return False
        await self._put(
            args=[
                self._prefix,
                key,
                raw,
                self._clock(),
                max(1, int(ttl_s * 1000)),
                ",".join(tags),
                answer.created_at,
                self._limits.max_entries,
                self._limits.max_bytes,
            ]
        )
        return True

    async def delete(self, key: str) -> int:
        removed: Any = await self._delete(args=[self._prefix, key])
        return int(removed)

    async def delete_tagged(self, tag: str) -> int:
        return await self._in_batches(self._delete_tagged, tag)

    async def delete_older_than(self, age_s: float) -> int:
        return await self._in_batches(self._delete_created, self._clock() - age_s)

    async def clear(self) -> int:
        return await self._in_batches(self._delete_created, "+inf")

    async def _in_batches(self, script: Any, argument: object) -> int:
        # Short scripts, so one large invalidation never blocks Redis for long.
        total = 0
        while True:
            removed = int(await script(args=[self._prefix, argument, _BATCH]))
            total += removed
            if removed < _BATCH:
                return total

    async def stats(self) -> CacheStats:
        raw: Any = await self._stats(args=[self._prefix, self._clock()])
        return CacheStats(entries=int(raw[0]), bytes=int(raw[1]))
