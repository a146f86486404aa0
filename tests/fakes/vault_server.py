"""A loopback HashiCorp Vault: KV v2 read/write, AppRole login, token lookup, health.

Secrets live in `secrets[(mount, path)]`; tests rotate a value by writing there. It
counts reads and logins so tests can see what the gateway cached.
"""

from __future__ import annotations

import secrets as token_generator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer


def _denied() -> Response:
    return JSONResponse({"errors": ["permission denied"]}, status_code=403)


class FakeVault(LoopbackServer):
    """Vault's HTTP API, as much of it as the gateway and hvac use."""

    def __init__(self, root_token: str) -> None:
        super().__init__(
            [
                Route("/v1/sys/health", self._health),
                Route("/v1/auth/token/lookup-self", self._lookup_self),
                Route("/v1/auth/{mount}/login", self._login, methods=["POST"]),
                Route("/v1/{mount}/data/{path:path}", self._kv, methods=["GET", "POST", "PUT"]),
            ]
        )
        self.tokens: dict[str, int] = {root_token: 3600}
        self.approles: dict[str, str] = {}  # role_id -> secret_id
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions: dict[tuple[str, str], int] = {}
        self.reads = 0
        self.logins = 0
        self.sealed = False

    @property
    def address(self) -> str:
        return self.root_url

    def put(self, mount: str, path: str, data: dict[str, Any]) -> None:
        self.secrets[(mount, path)] = dict(data)
        self.versions[(mount, path)] = self.versions.get((mount, path), 0) + 1

    def _token_ok(self, request: Request) -> bool:
        return request.headers.get("x-vault-token") in self.tokens

    async def _health(self, request: Request) -> Response:
        body = {"initialized": True, "sealed": self.sealed, "standby": False, "version": "1.17.0"}
        return JSONResponse(body, status_code=503 if self.sealed else 200)

    async def _lookup_self(self, request: Request) -> Response:
        if not self._token_ok(request):
            return _denied()
        token = request.headers["x-vault-token"]
        data = {"id": token, "ttl": self.tokens[token], "policies": ["default"]}
        return JSONResponse({"data": data})

    async def _login(self, request: Request) -> Response:
        body = await request.json()
        if self.approles.get(str(body.get("role_id"))) != body.get("secret_id"):
            return JSONResponse({"errors": ["invalid role or secret ID"]}, status_code=400)
        self.logins += 1
        token = f"hvs.{token_generator.token_hex(12)}"
        self.tokens[token] = 3600
        auth = {
            "client_token": token,
            "accessor": token_generator.token_hex(8),
            "policies": ["default", "gateway"],
            "token_policies": ["default", "gateway"],
            "lease_duration": 3600,
            "renewable": True,
            "metadata": {"role_name": "gateway"},
        }
        return JSONResponse({"auth": auth, "data": None, "lease_duration": 0, "renewable": False})

    async def _kv(self, request: Request) -> Response:
        if not self._token_ok(request):
            return _denied()
        key = (request.path_params["mount"], request.path_params["path"])
        if request.method != "GET":
            self.put(*key, (await request.json())["data"])
            return JSONResponse({"data": {"version": self.versions[key], "destroyed": False}})
        self.reads += 1
        if key not in self.secrets:
            return JSONResponse({"errors": []}, status_code=404)
        metadata = {"version": self.versions[key], "destroyed": False, "deletion_time": ""}
        data = {"data": self.secrets[key], "metadata": metadata}
        return JSONResponse(
            {"request_id": "req-1", "lease_id": "", "renewable": False, "data": data}
        )
