"""HashiCorp Vault KV v2 as a credential source, with token or AppRole authentication."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import httpx

from gateway_core.credentials.base import SourceStatus, checked_value
from gateway_core.domain.models import CredentialRef
from gateway_core.errors import ConfigurationError, UpstreamError


class VaultSource:
    """Reads `{mount}/data/{path}` and one field of it.

    With AppRole, the login token is kept until shortly before its lease ends and
    renewed by logging in again (also once after a 403).
    """

    name = "vault"
    cacheable = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        address: str,
        *,
        token: str | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
        approle_mount: str = "approle",
        kv_mount: str = "secret",
        namespace: str | None = None,
    ) -> None:
        self._http = http
        self._address = address.rstrip("/")
        self._static_token = token
        self._role_id = role_id
        self._secret_id = secret_id
        self._approle_mount = approle_mount
        self._kv_mount = kv_mount
        self._namespace = namespace
        self._token: str | None = token
        self._token_expires = float("inf")
        self._login_lock = asyncio.Lock()

    @property
    def uses_approle(self) -> bool:
        return self._static_token is None and self._role_id is not None

    def _headers(self, token: str | None) -> dict[str, str]:
        headers = {}
        if token:
            headers["x-vault-token"] = token
        if self._namespace:
            headers["x-vault-namespace"] = self._namespace
        return headers

    async def _request(
        self, method: str, path: str, token: str | None, json: dict[str, Any] | None = None
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method,
                f"{self._address}/v1/{path}",
                headers=self._headers(token),
                json=json,
                timeout=10,
            )
        except httpx.TransportError as exc:
            raise UpstreamError(
                f"Vault unreachable ({type(exc).__name__})",
                retryable=True,
                code="credential_store_unavailable",
            ) from None

    async def _login(self) -> str:
        if not self.uses_approle:
            if self._static_token is None:
                raise ConfigurationError(
                    "Vault needs PMP_VAULT_TOKEN or PMP_VAULT_ROLE_ID + PMP_VAULT_SECRET_ID",
                    code="credential_unavailable",
                )
            return self._static_token
        async with self._login_lock:
            if self._token and self._token_expires > time.monotonic():
                return self._token
            body = {"role_id": self._role_id, "secret_id": self._secret_id}
            mount = quote(self._approle_mount, safe="")
            response = await self._request("POST", f"auth/{mount}/login", None, body)
            if response.status_code != 200:
                raise ConfigurationError(
                    f"Vault AppRole login failed ({response.status_code})",
                    code="credential_unavailable",
                )
            auth = response.json().get("auth") or {}
            lease = float(auth.get("lease_duration") or 0) or 3600.0
            self._token = str(auth.get("client_token"))
            self._token_expires = time.monotonic() + max(lease * 0.8, 1.0)
            return self._token

    def _forget_token(self) -> None:
        if self.uses_approle:
            self._token, self._token_expires = None, 0.0

    async def _read(self, ref: CredentialRef) -> httpx.Response:
        mount = quote(ref.mount or self._kv_mount, safe="")
        path = f"{mount}/data/{quote(ref.path or '', safe='/')}"
        response = await self._request("GET", path, await self._login())
        if response.status_code == 403 and self.uses_approle:
            self._forget_token()  # the token may have been revoked early: log in once more
            response = await self._request("GET", path, await self._login())
        return response

    async def fetch(self, ref: CredentialRef) -> str:
        where = f"vault {ref.mount or self._kv_mount}/{ref.path}"
        response = await self._read(ref)
        if response.status_code == 404:
            raise ConfigurationError(
                f"credential {where} does not exist", code="credential_missing"
            )
        if response.status_code >= 500:
            raise UpstreamError(
                f"Vault answered {response.status_code}",
                retryable=True,
                code="credential_store_unavailable",
            )
        if response.status_code != 200:
            raise ConfigurationError(
                f"credential {where} could not be read ({response.status_code})",
                code="credential_unavailable",
            )
        data = ((response.json().get("data") or {}).get("data")) or {}
        field = ref.field
        if field is None and len(data) == 1:
            field = next(iter(data))
        if field is None or field not in data:
            raise ConfigurationError(
                f"credential {where} has no field {field or '(name one with `field`)'}",
                code="credential_missing",
            )
        return checked_value(str(data[field]), f"{where} field {field}")

    async def check(self) -> SourceStatus:
        status = SourceStatus(
            source=self.name,
            configured=True,
            settings={
                "address": self._address,
                "auth": "approle" if self.uses_approle else "token",
                "kv_mount": self._kv_mount,
            },
        )
        try:
            health = await self._request("GET", "sys/health", None)
        except UpstreamError as error:
            return status.model_copy(update={"reachable": False, "detail": error.message})
        if health.status_code not in (200, 429):
            detail = {501: "not initialised", 503: "sealed"}.get(health.status_code, "unhealthy")
            return status.model_copy(update={"reachable": True, "detail": detail})
        try:
            token = await self._login()
            lookup = await self._request("GET", "auth/token/lookup-self", token)
        except (ConfigurationError, UpstreamError) as error:
            return status.model_copy(
                update={"reachable": True, "authenticated": False, "detail": error.message}
            )
        authenticated = lookup.status_code == 200
        detail = "ok" if authenticated else f"token refused ({lookup.status_code})"
        return status.model_copy(
            update={"reachable": True, "authenticated": authenticated, "detail": detail}
        )
