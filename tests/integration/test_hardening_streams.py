"""Hardening 13: two streams with the same Idempotency-Key share one run, and both
clients receive the whole stream (the in-process bus used to keep one subscriber)."""

from __future__ import annotations

import asyncio

from gateway_core.domain.streams import ChunkEvent, EndEvent
from gateway_core.streaming.bus import InProcessStreamBus
from tests.conftest import Gateway
from tests.fakes.openai_upstream import FakeOpenAI, Scenario

WORDS = "one two three four five six seven eight"


async def _stream_text(gateway: Gateway, key: str) -> tuple[str, str]:
    client = gateway.openai()
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        extra_headers={"idempotency-key": key},
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    return text, stream.response.headers["x-pmp-run-id"]


async def test_two_streams_with_one_idempotency_key_both_get_the_whole_stream(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(content=WORDS, chunk_delay_s=0.15))
    first = asyncio.create_task(_stream_text(gateway, "same-stream"))
    while not upstream.requests:  # the run is streaming before the second client comes
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    second = asyncio.create_task(_stream_text(gateway, "same-stream"))
    (text_a, run_a), (text_b, run_b) = await asyncio.gather(first, second)
    assert run_a == run_b
    assert text_a == text_b == WORDS
    assert len(upstream.requests) == 1


async def test_a_late_subscriber_gets_every_event_and_leaving_forgets_them() -> None:
    bus = InProcessStreamBus()
    chunk = ChunkEvent(attempt=1, served_by="m", step=0, prior_attempts=0, data={"n": 1})
    async with bus.subscribe("run") as early:
        await bus.publish("run", chunk)
        async with bus.subscribe("run") as late:
            await bus.publish("run", EndEvent())
            assert [await anext(late), await anext(late)] == [chunk, EndEvent()]
        assert [await anext(early), await anext(early)] == [chunk, EndEvent()]
    await bus.publish("run", chunk)  # nobody subscribed: nothing is kept
    async with bus.subscribe("run") as fresh:
        await bus.publish("run", EndEvent())
        assert await anext(fresh) == EndEvent()


async def test_one_client_leaving_a_shared_stream_does_not_cancel_it_for_the_other(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(content=WORDS, chunk_delay_s=0.15))
    stayer = asyncio.create_task(_stream_text(gateway, "shared-then-left"))
    while not upstream.requests:
        await asyncio.sleep(0.02)
    leaver = await gateway.openai().chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        extra_headers={"idempotency-key": "shared-then-left"},
    )
    async for _chunk in leaver:
        break  # one chunk, then hang up
    await leaver.close()
    text, _run = await stayer
    assert text == WORDS
    assert not upstream.requests[0].disconnected
