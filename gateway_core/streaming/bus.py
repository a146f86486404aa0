"""Stream bus: the streaming activity publishes chunks, the API relays them as SSE.

Events are typed (gateway_core.domain.streams): chunk events, then an end or an error
event. The in-process bus hands the event objects over as they are; Redis carries them
as JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis

from gateway_core.domain.streams import STREAM_EVENT, StreamEvent


class StreamBus(Protocol):
    """Carries one run's chunks from the worker to the API, keyed by workflow id."""

    def subscribe(self, key: str) -> AbstractAsyncContextManager[AsyncIterator[StreamEvent]]:
        """Open a subscription; it must be opened before the run starts publishing."""
        ...

    async def publish(self, key: str, event: StreamEvent) -> None: ...

    def shared(self, key: str) -> bool:
        """Whether more than one subscription of this process relays the run now."""
        ...


# Events a run's channel keeps for subscribers that attach late (as the Redis stream's
# maxlen): a second request with the same Idempotency-Key joins a run already streaming.
MAX_KEPT_EVENTS = 10_000


@dataclass
class _Channel:
    """One run's events so far and the queues of everyone subscribed to it."""

    events: list[StreamEvent] = field(default_factory=list)
    queues: list[asyncio.Queue[StreamEvent]] = field(default_factory=list)


class _Subscription:
    def __init__(self, bus: InProcessStreamBus, key: str) -> None:
        self._bus = bus
        self._key = key
        self._queue: asyncio.Queue[StreamEvent] = asyncio.Queue()

    async def __aenter__(self) -> AsyncIterator[StreamEvent]:
        channel = self._bus._channels.setdefault(self._key, _Channel())
        for event in channel.events:  # a late subscriber still gets the whole stream
            self._queue.put_nowait(event)
        channel.queues.append(self._queue)
        return self._events()

    async def __aexit__(self, *exc_info: object) -> None:
        channel = self._bus._channels.get(self._key)
        if channel is None:
            return
        channel.queues = [queue for queue in channel.queues if queue is not self._queue]
        if not channel.queues:  # nobody listens any more: forget the run's events
            del self._bus._channels[self._key]

    async def _events(self) -> AsyncIterator[StreamEvent]:
        while True:
            yield await self._queue.get()


class InProcessStreamBus:
    """For API and worker in one process: every subscriber of a run gets all its events."""

    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}

    def subscribe(self, key: str) -> AbstractAsyncContextManager[AsyncIterator[StreamEvent]]:
        return _Subscription(self, key)

    def shared(self, key: str) -> bool:
        channel = self._channels.get(key)
        return channel is not None and len(channel.queues) > 1

    async def publish(self, key: str, event: StreamEvent) -> None:
        channel = self._channels.get(key)
        if channel is None:  # nobody subscribed: the relay subscribes before a run starts
            return
        if len(channel.events) < MAX_KEPT_EVENTS:
            channel.events.append(event)
        for queue in channel.queues:
            queue.put_nowait(event)


DONE_STREAM_TTL_S = 60


class _RedisSubscription:
    def __init__(self, redis: Redis, key: str, block_ms: int) -> None:
        self._redis = redis
        self._key = key
        self._block_ms = block_ms

    async def __aenter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def __aexit__(self, *exc_info: object) -> None:
        # Not deleted: another subscriber of the same run (the same Idempotency-Key) may
        # still be reading; the stream expires shortly instead.
        await self._redis.expire(self._key, DONE_STREAM_TTL_S)

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

    def shared(self, key: str) -> bool:
        return False  # readers in other processes are not known here

    async def publish(self, key: str, event: StreamEvent) -> None:
        stream_key = self._stream_key(key)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(stream_key, {"e": event.model_dump_json()}, maxlen=10_000, approximate=True)
            pipe.expire(stream_key, self._ttl_s)
            await pipe.execute()
