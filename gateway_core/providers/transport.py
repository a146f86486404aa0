"""The wire under the providers' httpx client: aiohttp's connection pool and HTTP parser.

The providers speak httpx (requests, responses, its errors, its tracing); only the
transport under the client is aiohttp's (C-accelerated parser). Against httpx's own
transport (httpcore, h11 and anyio, pure Python) it took the client's CPU per upstream
call from 0.73 to 0.48 ms for a plain call and from 0.98 to 0.78 ms for a 20-chunk
stream on the benchmark machine (bench/upstream_transport.py). Behind a proxy named in
the environment, `build_http_client` keeps httpx's own transport.

Every aiohttp failure is raised as the httpx error of the same meaning, so
`providers.http.error_for_transport` keeps its one reading of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx
from yarl import URL

# How long an idle upstream connection is kept (httpx's own default).
KEEPALIVE_S = 5.0


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp session, opened on first use.

    The session is opened lazily because aiohttp binds it to the running event loop.
    """

    def __init__(self, *, max_connections: int) -> None:
        self._max_connections = max_connections
        # httpx's certificate store and its SSL_CERT_FILE / SSL_CERT_DIR, as before.
        self._ssl = httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=KEEPALIVE_S,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # httpx decodes the body and keeps no cookies for us: aiohttp must not either.
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()  # the bytes it holds, or its stream read whole
        with _as_httpx_errors(request):
            answer = await self._opened().request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=[
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in request.headers.raw
                ],
                data=body or None,
                allow_redirects=False,
                timeout=_timeout_of(request),
                # A body httpx sent without a content type goes without one.
                skip_auto_headers=("Content-Type",),
            )
        return httpx.Response(
            status_code=answer.status,
            headers=list(answer.raw_headers),
            stream=_Body(answer, request),
            extensions={
                "http_version": f"HTTP/{answer.version.major}.{answer.version.minor}".encode()
                if answer.version
                else b"HTTP/1.1",
                "reason_phrase": (answer.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Body(httpx.AsyncByteStream):
    """A response body as it arrives; closed unread, its connection is dropped, not pooled."""

    def __init__(self, answer: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._answer = answer
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for chunk in self._answer.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        if self._answer.content.at_eof():
            self._answer.release()
        else:
            # The caller stopped reading (cancelled, timed out): the upstream must see it.
            self._answer.close()


def _timeout_of(request: httpx.Request) -> aiohttp.ClientTimeout:
    """httpx's per-request timeouts in aiohttp's terms (None: no limit)."""
    limits = request.extensions.get("timeout", {})
    return aiohttp.ClientTimeout(
        total=None,
        connect=limits.get("pool"),
        sock_connect=limits.get("connect"),
        sock_read=limits.get("read"),
    )


# Most specific first: several aiohttp errors derive from more than one of these.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (TimeoutError, httpx.TimeoutException),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.ReadError),
)


@contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError:
        raise
    except (aiohttp.ClientError, TimeoutError) as error:
        for aiohttp_error, httpx_error in _ERRORS:
            if isinstance(error, aiohttp_error):
                # Only the kind: an aiohttp error can hold the URL (a key in its query) and headers.
                raise httpx_error(type(error).__name__, request=request) from None
        raise
