"""Operation callbacks: POST the operation document, signed so receivers can trust it.

Header `X-PMP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed
with the operation's own signing secret: the string `callback_secret` of the 202 answer
(its UTF-8 bytes are the HMAC key).

That secret is HMAC(server callback secret, operation id), so the worker re-derives it
from what the run already carries and it never enters Temporal history; one receiver's
secret says nothing about another operation's, and nobody can make one without the
server secret (itself derived from the key-hash secret, which never leaves the gateway).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

import httpx

from gateway_core.errors import UpstreamError
from gateway_core.outbound import OutboundPolicy

SIGNATURE_HEADER = "x-pmp-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def derive_callback_secret(key_hash_secret: bytes) -> bytes:
    """The server's callback secret: the root every operation's signing secret comes from."""
    return hmac.new(key_hash_secret, b"pmp-gateway callback signing", hashlib.sha256).digest()


def operation_secret(server_secret: bytes, operation_id: str) -> str:
    """The signing secret of one operation's callbacks, as its 202 answer shows it."""
    digest = hmac.new(server_secret, b"operation\x00" + operation_id.encode(), hashlib.sha256)
    return SECRET_PREFIX + base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


@dataclass(frozen=True)
class CallbackTargets:
    """The API's side of callbacks: which URLs it accepts, and each operation's secret."""

    policy: OutboundPolicy
    server_secret: bytes

    def admit(self, url: str) -> None:
        """Refuse (400) a callback URL that visibly points at a non-public address."""
        self.policy.check_url(url, param="callback_url")

    def secret_for(self, operation_id: str) -> str:
        return operation_secret(self.server_secret, operation_id)


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def verify(secret: bytes, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    """What a receiver does: recompute the HMAC and check the timestamp is recent."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - stamp) > tolerance_s:
        return False
    expected = sign(secret, body, stamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


async def post_signed(http: httpx.AsyncClient, url: str, body: bytes, secret: bytes) -> int:
    """POST once; a 2xx answer is delivery, anything else a retryable failure.

    `http` should be an `gateway_core.outbound.outbound_client`: a refused address raises
    its non-retryable OutboundRefusedError from here.
    """
    headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(secret, body)}
    try:
        response = await http.post(url, content=body, headers=headers, timeout=10.0)
    except httpx.TransportError as exc:
        raise UpstreamError(
            f"callback receiver unreachable ({type(exc).__name__})", retryable=True
        ) from None
    if not 200 <= response.status_code < 300:
        raise UpstreamError(
            f"callback receiver answered {response.status_code}",
            retryable=True,
            upstream_status=response.status_code,
        )
    return response.status_code
