"""`pmp-gateway ui`: the admin UI on its own, proxying `/api/*` to a gateway's API.

With `skip_proxy` it serves only the static files and the page tells the browser to
call the API at `api_url` directly (the API must then list this origin in
PMP_CORS_ORIGINS).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway_api.ui import STATIC_DIR, index_html

PROXY_PREFIX = "/api"
# Hop-by-hop headers (RFC 9110 7.6.1) and those httpx/uvicorn set for themselves.
_NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}
)
_PROXY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _forwarded_headers(headers: httpx.Headers | list[tuple[str, str]]) -> list[tuple[str, str]]:
    items = headers.multi_items() if isinstance(headers, httpx.Headers) else headers
    return [(name, value) for name, value in items if name.lower() not in _NOT_FORWARDED]


def _proxy_route(client: httpx.AsyncClient) -> Route:
    async def proxy(request: Request) -> Response:
        """Relay one request to the API as it came, and its answer as it streams back."""
        path = request.url.path.removeprefix(PROXY_PREFIX) or "/"
        upstream = client.build_request(
            request.method,
            path,
            params=str(request.query_params),
            headers=_forwarded_headers(list(request.headers.items())),
            content=request.stream(),
        )
        try:
            answer = await client.send(upstream, stream=True)
        except httpx.TransportError as error:
            reason = type(error).__name__
            message = f"the gateway API at {client.base_url} is not reachable: {reason}"
            error_body = {"message": message, "type": "api_error", "param": None}
            return JSONResponse({"error": {**error_body, "code": "api_unreachable"}}, 502)
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers=dict(_forwarded_headers(answer.headers)),
            background=BackgroundTask(answer.aclose),
        )

    return Route(PROXY_PREFIX + "/{path:path}", proxy, methods=_PROXY_METHODS)


def create_ui_app(api_url: str, *, skip_proxy: bool = False) -> Starlette:
    """The UI's pages and assets, plus the `/api` proxy unless `skip_proxy`."""
    api_base = api_url if skip_proxy else PROXY_PREFIX
    # No read timeout: a streamed answer may pause between tokens for as long as it likes.
    timeout = httpx.Timeout(10.0, read=None)
    client = httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=timeout)

    async def page(_request: Request) -> Response:
        return HTMLResponse(index_html(api_base), headers={"cache-control": "no-cache"})

    async def root(_request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=307)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()

    routes = [
        Route("/", root),
        Route("/ui", page),
        Route("/ui/", page),
        Mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static"),
    ]
    if not skip_proxy:
        routes.append(_proxy_route(client))
    return Starlette(routes=routes, lifespan=lifespan)


def run_ui(host: str, port: int, api_url: str, *, skip_proxy: bool) -> None:
    """Serve the UI until interrupted; prints where it is."""
    app = create_ui_app(api_url, skip_proxy=skip_proxy)
    how = f"calling {api_url} directly" if skip_proxy else f"proxying {PROXY_PREFIX}/* to {api_url}"
    print(f"PMP admin UI on http://{host}:{port}/ui/ ({how})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def add_ui_command(commands: Any) -> None:
    """`pmp-gateway ui [--host H] [--port P] [--api-url URL] [--skip-proxy]`."""
    ui = commands.add_parser("ui", help="serve the admin UI alone, in front of a gateway's API")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=8081)
    ui.add_argument("--api-url", default="http://localhost:8080", help="the gateway's API")
    ui.add_argument(
        "--skip-proxy",
        action="store_true",
        help="serve static files only; the browser calls --api-url (set PMP_CORS_ORIGINS there)",
    )


def run_ui_command(args: argparse.Namespace) -> None:
    run_ui(args.host, args.port, args.api_url, skip_proxy=args.skip_proxy)
