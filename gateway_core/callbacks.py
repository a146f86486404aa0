"""Operation callbacks: POST the operation document, signed so receivers can trust it.

Header `X-PMP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed
with the callback secret (derived from the gateway's key-hash secret).
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from gateway_core.errors import UpstreamError

SIGNATURE_HEADER = "x-pmp-signature"


def derive_callback_secret(key_hash_secret: bytes) -> bytes:
    return hmac.new(key_hash_secret, b"pmp-gateway callback signing", hashlib.sha256).digest()


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
    """POST once; a 2xx answer is delivery, anything else a retryable failure."""
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
