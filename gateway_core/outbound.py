"""The one outbound address policy: where the gateway may send user-chosen HTTP requests.

Callback URLs and user-defined workflow `http_request` steps name their own destination,
so without a check any API key could make the gateway probe its internal network (the
cloud metadata address 169.254.169.254 included). By default only global unicast
addresses may be reached; `PMP_CALLBACK_ALLOW` (comma-separated CIDRs and host names,
a host name may start with `*.` for its subdomains) opens chosen ones.

The check runs on the address actually connected to: the client's network backend
resolves the host itself, checks every address it resolves to, and connects only to
allowed ones, so a name that resolves to 127.0.0.1 (or is re-pointed between a check and the
connection) is refused. Redirects are off and proxies from the environment are ignored.
TLS still verifies the URL's host name (httpcore takes the SNI name from the request).

Public API:
- `OutboundPolicy.from_setting(text)` / `OutboundPolicy.from_settings(settings)`
- `policy.check_url(url, param=)`: the request-time check (scheme, literal addresses, localhost
  names); raises `OutboundRefusedError`. It does not resolve names.
- `policy.allows_address(host, ip)`: the connect-time check of one resolved address.
- `outbound_client(policy, ...)`: an `httpx.AsyncClient` enforcing the policy on every
  connection; a refused one raises `OutboundRefusedError` from the request call.
- `OutboundRefusedError`: a 400 `invalid_request_error`, code `outbound_address_refused`;
  its message names the URL's host, never what it resolved to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpcore
import httpx

from gateway_core.errors import InvalidRequestError

if TYPE_CHECKING:
    from gateway_core.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOW_SETTING = "PMP_CALLBACK_ALLOW"
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


class OutboundRefusedError(InvalidRequestError):
    """The destination is not one the gateway may send requests to."""

    default_code = "outbound_address_refused"


def _refused(host: str, param: str | None = None) -> OutboundRefusedError:
    return OutboundRefusedError(
        f"requests to {host!r} are not allowed: the address is not public "
        "(an operator can allow it in the gateway's outbound allow list)",
        param=param,
    )


def _parse_ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    """Global unicast only: not loopback, private, link-local, multicast, reserved, ..."""
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class OutboundPolicy:
    """Which destinations are allowed beyond public addresses (none by default)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_setting(cls, text: str) -> OutboundPolicy:
        """Parse `PMP_CALLBACK_ALLOW`: CIDRs (or single addresses) and host names."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in text.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls.from_setting(settings.callback_allow)

    def host_allowed(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        if name in self.hosts:
            return True
        return any(h.startswith("*.") and name.endswith(h[1:]) for h in self.hosts)

    def address_allowed(self, address: IPAddress) -> bool:
        if is_public(address):
            return True
        return any(address in network for network in self.networks)

    def check_url(self, url: str, *, param: str | None = None) -> None:
        """Refuse a URL that is not http(s) or whose host is visibly not public."""
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            raise OutboundRefusedError("the URL is not valid", param=param) from None
        if parts.scheme not in ("http", "https") or not host:
            raise OutboundRefusedError(
                "the URL must be http:// or https:// with a host", param=param
            )
        if self.host_allowed(host):
            return
        literal = _parse_ip(host)
        if literal is not None and not self.address_allowed(literal):
            raise _refused(host, param)
        name = host.lower().rstrip(".")
        if literal is None and (name in _LOCAL_NAMES or name.endswith(".localhost")):
            raise _refused(host, param)

    def allows_address(self, host: str, ip: str) -> bool:
        """Whether connecting to `ip` (an address `host` resolved to) is allowed."""
        if self.host_allowed(host):
            return True
        address = _parse_ip(ip)
        return address is not None and self.address_allowed(address)


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves each host itself and connects only to addresses the policy allows."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        resolved = await self._resolve(host, port, timeout)
        # Only checked addresses are tried, so a name with one public and one private
        # address never reaches the private one when the public one fails to connect.
        addresses = [a for a in resolved if self._policy.allows_address(host, a)]
        if not addresses:
            raise _refused(host)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last_error = error
        raise last_error or httpcore.ConnectError(f"no address for {host!r}")

    async def _resolve(self, host: str, port: int, limit_s: float | None) -> list[str]:
        literal = _parse_ip(host)
        if literal is not None:
            return [str(literal)]
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(limit_s):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError):
            raise httpcore.ConnectError(f"could not resolve {host!r}") from None
        unique = dict.fromkeys(str(info[4][0]) for info in infos)
        if not unique:
            raise httpcore.ConnectError(f"could not resolve {host!r}")
        return list(unique)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefusedError("requests over local sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def outbound_client(
    policy: OutboundPolicy,
    *,
    connect_timeout_s: float = 10.0,
    timeout_s: float = 30.0,
    max_connections: int = 100,
) -> httpx.AsyncClient:
    """An HTTP client whose every connection passes `policy` (redirects off, no proxies)."""
    transport = httpx.AsyncHTTPTransport(retries=0)
    # httpx has no public hook for the network backend: swap its pool for one with ours,
    # keeping the transport's request/response and error translation.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=max_connections,
        max_keepalive_connections=max(1, max_connections // 5),
        keepalive_expiry=5.0,
        network_backend=_CheckedBackend(policy),
    )
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
    )
