"""The providers' transport: httpx requests over aiohttp, failures as httpx's own errors.

Each case talks to a raw loopback socket server that answers with the bytes given, so
what reaches the wire and what comes back are both exact.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from gateway_core.errors import UpstreamError, UpstreamTimeoutError
from gateway_core.process import free_port
from gateway_core.providers.http import error_for_transport, open_stream
from gateway_core.providers.registry import build_http_client

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """Records each request's head and each connection; answers through the handler
    `make_handler` builds for it."""

    def __init__(self, make_handler: Callable[[RawServer], Handler]) -> None:
        self.handler = make_handler(self)
        self.heads: list[bytes] = []
        self.connections = 0
        self.hung_up = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
            await reader.read()  # until the client closes its side
            self.hung_up.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.hung_up.set()
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return await reader.readexactly(length)


@asynccontextmanager
async def raw_server(
    handler: Callable[[RawServer], Handler],
) -> AsyncIterator[tuple[RawServer, str]]:
    server = RawServer(handler)
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        listening.close()


def _answer(body: bytes, *headers: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def answering(*answers: bytes) -> Callable[[RawServer], Handler]:
    """Answer consecutive requests on one connection with `answers`, in order."""

    def handler(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for answer in answers:
                await server.read_request(reader)
                writer.write(answer)
                await writer.drain()

        return handle

    return handler


async def test_request_goes_out_as_httpx_built_it_and_the_answer_comes_back_decoded() -> None:
    body = gzip.compress(b'{"ok": true}')
    answer = _answer(body, b"content-type: application/json", b"content-encoding: gzip")
    async with raw_server(answering(answer)) as (server, url), _client() as http:
        response = await http.post(
            f"{url}/v1/models/a%2Fb:generate?key=k%20v",
            json={"q": 1},
            headers={"authorization": "Bearer sk-test"},
        )
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    request_line, *header_lines = server.heads[0].decode("latin-1").strip().split("\r\n")
    # The path's escapes reach the upstream untouched (a model id may hold a slash).
    assert request_line == "POST /v1/models/a%2Fb:generate?key=k%20v HTTP/1.1"
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in header_lines]
    names = [name.lower() for name, _ in headers]
    assert names.count("content-length") == 1 and names.count("host") == 1
    assert names.count("content-type") == 1
    assert ("authorization", "Bearer sk-test") in headers
    assert dict((name.lower(), value) for name, value in headers)["content-type"] == (
        "application/json"
    )


async def test_consecutive_requests_share_one_connection() -> None:
    answers = [_answer(b"{}") for _ in range(3)]
    async with raw_server(answering(*answers)) as (server, url), _client() as http:
        for _ in range(3):
            assert (await http.get(url)).status_code == 200
    assert server.connections == 1


async def test_a_stream_closed_unread_hangs_up_on_the_upstream() -> None:
    def endless(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(b"6\r\ndata: \r\n")
            await writer.drain()

        return handle

    async with raw_server(endless) as (server, url), _client() as http:
        async with http.stream("POST", url, content=b"{}") as response:
            assert await anext(response.aiter_bytes()) == b"data: "
        await asyncio.wait_for(server.hung_up.wait(), 30)


async def test_refused_connection_is_httpx_connect_error() -> None:
    async with _client() as http:
        with pytest.raises(httpx.ConnectError) as raised:
            await http.get(f"http://127.0.0.1:{free_port('127.0.0.1')}/")
    error = error_for_transport(raised.value, None)
    assert error.retryable and "unreachable" in error.message


async def test_upstream_closing_before_answering_is_a_remote_protocol_error() -> None:
    def close_at_once(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.close()

        return handle

    async with raw_server(close_at_once) as (_server, url), _client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(url, content=b"{}")


async def test_body_cut_short_is_a_remote_protocol_error() -> None:
    def cut_short(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial')
            await writer.drain()
            writer.close()

        return handle

    async with raw_server(cut_short) as (_server, url), _client() as http:
        with pytest.raises(httpx.RemoteProtocolError) as raised:
            await http.post(url, content=b"{}")
    error = error_for_transport(raised.value, "sk-test")
    assert isinstance(error, UpstreamError) and error.retryable


async def test_silent_upstream_is_a_read_timeout_when_one_is_set() -> None:
    def silent(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            await asyncio.sleep(30)

        return handle

    async with raw_server(silent) as (_server, url), _client() as http:
        with pytest.raises(httpx.ReadTimeout) as raised:
            await http.post(url, content=b"{}", timeout=httpx.Timeout(None, read=0.2))
    assert isinstance(error_for_transport(raised.value, None), UpstreamTimeoutError)


async def test_error_status_of_a_stream_is_read_and_raised() -> None:
    error_body = b'{"error": {"message": "no such model"}}'
    answer = b"HTTP/1.1 404 Not Found\r\ncontent-length: %d\r\n\r\n" % len(error_body)
    async with raw_server(answering(answer + error_body)) as (_server, url), _client() as http:
        request = http.build_request("POST", url, content=b"{}")
        with pytest.raises(UpstreamError) as raised:
            async with open_stream(http, request, None):
                pass
    assert raised.value.upstream_status == 404
    assert "no such model" in raised.value.message


@asynccontextmanager
async def _client() -> AsyncIterator[httpx.AsyncClient]:
    http = build_http_client(connect_timeout_s=5.0, max_connections=4)
    try:
        yield http
    finally:
        await http.aclose()


async def test_a_proxy_from_the_environment_is_still_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with raw_server(answering(_answer(b"{}"))) as (server, proxy_url):
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy_url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        async with _client() as http:
            response = await http.get("http://upstream.invalid/v1/models")
    assert response.status_code == 200
    # The request went to the proxy, in the absolute form a proxy is sent.
    assert server.heads[0].startswith(b"GET http://upstream.invalid/v1/models HTTP/1.1")
