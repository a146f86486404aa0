"""Every route under /admin refuses a caller without a key (401) and a non-admin key (403)."""

from __future__ import annotations

import re

import httpx
from fastapi.routing import iter_route_contexts

from gateway_api.app import create_app
from tests.conftest import Gateway

# Path parameters get a dummy value; auth must answer before any of them is looked at.
_PATH_PARAM = re.compile(r"\{[^}]+\}")


def _admin_routes(gateway: Gateway) -> list[tuple[str, str]]:
    """(method, path) of every /admin route in the app's route table, params filled in.

    `app.routes` holds included routers unflattened; `iter_route_contexts` walks them.
    """
    app = create_app(gateway.runtime.settings, runtime=gateway.runtime)
    return sorted(
        (method, _PATH_PARAM.sub("1", route.path))
        for route in iter_route_contexts(app.routes)
        if route.path is not None and route.path.startswith("/admin")
        for method in route.methods or ()
    )


async def _plain_key(gateway: Gateway) -> str:
    body = {"id": "plain", "name": "Plain", "permissions": {"models": "all"}}
    response = await gateway.admin.post("/admin/api-keys", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


async def test_every_admin_route_needs_an_admin_key(gateway: Gateway) -> None:
    routes = _admin_routes(gateway)
    assert len(routes) >= 40, routes
    plain = {"authorization": f"Bearer {await _plain_key(gateway)}"}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
        for method, path in routes:
            anonymous = await client.request(method, path, json={})
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            assert anonymous.json()["error"]["code"] == "missing_api_key"
            non_admin = await client.request(method, path, json={}, headers=plain)
            assert non_admin.status_code == 403, (method, path, non_admin.text)


async def test_the_admin_key_passes_the_router_check(gateway: Gateway) -> None:
    # The same table with the admin key: what answers is the route, not the auth check.
    listed = await gateway.admin.get("/admin/models")
    assert listed.status_code == 200 and listed.json()["data"] == []
    missing = await gateway.admin.get("/admin/chains/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "chain_not_found"
