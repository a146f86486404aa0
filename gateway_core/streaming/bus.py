"""Stream bus: the streaming activity publishes chunks, the API relays them as SSE.

Events are typed (gateway_core.domain.streams): chunk events, then an end or an error
event. The in-process bus hands the event objects over as they are; Redis carries them
as JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from redis.asyncio import Redis

from gateway_core.domain.streams import STREAM_EVENT, StreamEvent


class StreamBus(Protocol):
    """Carries one run's chunks from the worker to the API, keyed by workflow id."""

    def subscribe(self, key: str) -> AbstractAsyncContextManager[AsyncIterator[StreamEvent]]:
        """Open a subscription; it must be opened before the run starts publishing."""
        ...

    async def publish(self, key: str, event: StreamEvent) -> None: ...


class _Subscription:
    def __init__(self, bus: InProcessStreamBus, key: str) -> None:
        self._bus = bus
        self._key = key
        self._queue: asyncio.Queue[StreamEvent] = asyncio.Queue()

    async def __aenter__(self) -> AsyncIterator[StreamEvent]:
        self._bus._queues[self._key] = self._queue
        return self._events()

    async def __aexit__(self, *exc_info: object) -> None:
        self._bus._queues.pop(self._key, None)

    async def _events(self) -> AsyncIterator[StreamEvent]:
        while True:
            yield await self._queue.get()


class InProcessStreamBus:
    """For API and worker in one process: one queue per open subscription."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[StreamEvent]] = {}

    def subscribe(self, key: str) -> AbstractAsyncContextManager[AsyncIterator[StreamEvent]]:
        return _Subscription(self, key)

    async def publish(self, key: str, event: StreamEvent) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            queue.put_nowait(event)


class _RedisSubscription:
    def __init__(self, redis: Redis, key: str, block_ms: int) -> None:
        self._redis = redis
        self._key = key
        self._block_ms = block_ms

    async def __aenter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._redis.delete(self._key)

    async def _events(self) -> AsyncIterator[StreamEvent]:
        last_id = "0-0"
        while True:
            batches: Any = await self._redis.xread({self._key: last_id}, block=self._block_ms)
            for _stream, entries in batches:
                for entry_id, fields in entries:
                    last_id = entry_id
                    yield STREAM_EVENT.validate_json(fields[b"e"])


class RedisStreamBus:
    """For API and workers in separate processes: one Redis stream per run."""

    def __init__(self, redis: Redis, *, ttl_s: int = 600, block_ms: int = 5000) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._block_ms = block_ms

    @staticmethod
    def _stream_key(key: str) -> str:
        return f"pmp:stream:{key}"

    def subscribe(self, key: str) -> AbstractAsyncContextManager[AsyncIterator[StreamEvent]]:
        return _RedisSubscription(self._redis, self._stream_key(key), self._block_ms)

    async def publish(self, key: str, event: StreamEvent) -> None:
        stream_key = self._stream_key(key)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(stream_key, {"e": event.model_dump_json()}, maxlen=10_000, approximate=True)
            pipe.expire(stream_key, self._ttl_s)
            await pipe.execute()
