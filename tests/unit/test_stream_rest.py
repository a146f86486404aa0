"""A finished stream's rest is read for connection reuse, but never waited on for long."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from gateway_core.providers.http import open_stream, sse_events


class _Body(httpx.AsyncByteStream):
    """An SSE body that ends its last event, then either ends or stays open."""

    def __init__(self, then_hang: bool) -> None:
        self.then_hang = then_hang
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"event: message_stop\ndata: {}\n\n"
        if self.then_hang:
            await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed = True


async def _read_one_event(body: _Body) -> list[str]:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=body))
    async with httpx.AsyncClient(transport=transport) as http:
        request = http.build_request("POST", "http://upstream.test/v1/messages")
        async with open_stream(http, request, None) as lines:
            async for name, _data in sse_events(lines):
                return [name]  # the reader stops at its end marker, as the providers do
    return []


async def test_a_body_that_ends_is_read_to_its_end_and_closed() -> None:
    body = _Body(then_hang=False)
    assert await asyncio.wait_for(_read_one_event(body), 30) == ["message_stop"]
    assert body.closed


async def test_a_body_left_open_after_the_end_marker_is_closed_not_waited_for() -> None:
    body = _Body(then_hang=True)
    # Without the bound, this would wait forever on the open body.
    assert await asyncio.wait_for(_read_one_event(body), 30) == ["message_stop"]
    assert body.closed
