"""The codec server: decodes and encodes Temporal payloads for an operator with the key.

It speaks the Temporal codec server protocol: a JSON body `{"payloads": [...]}` where each
payload is `{"metadata": {name: base64}, "data": base64}`, answered in the same shape.
The Web UI calls it from the browser, so answers carry CORS headers for the UI's
origins only, and every call needs the admin key.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence
from typing import Any, Literal

from temporalio.api.common.v1 import Payload

from gateway_core.auth.keys import AdminKeys
from gateway_core.config import Settings
from gateway_core.errors import AuthenticationError, InvalidRequestError
from temporal_workers.payload_codec import AesGcmCodec, PayloadKeyError

MAX_PAYLOADS = 1000
CodecAction = Literal["decode", "encode"]


class CodecService:
    """Runs payloads through this process's codec for a caller holding the admin key."""

    def __init__(self, codec: AesGcmCodec, admin_keys: AdminKeys, origins: Sequence[str]) -> None:
        self._codec = codec
        self._admin_keys = admin_keys
        self._origins = frozenset(origins)

    def cors_headers(self, origin: str | None) -> dict[str, str]:
        """The CORS answer for `origin`: only a configured Web UI origin is allowed."""
        if origin is None or not any(hmac.compare_digest(origin, o) for o in self._origins):
            return {}
        return {
            "access-control-allow-origin": origin,
            "access-control-allow-credentials": "true",
            "access-control-allow-methods": "POST, OPTIONS",
            "access-control-allow-headers": "authorization, content-type, x-namespace",
            "access-control-max-age": "600",
            "vary": "origin",
        }

    def authorize(self, presented: str | None) -> None:
        if not presented or not self._admin_keys.verify(presented):
            raise AuthenticationError(
                "the codec endpoint needs the admin key", code="invalid_api_key"
            )

    async def run(self, action: CodecAction, body: dict[str, Any]) -> dict[str, Any]:
        payloads = [_payload_from_json(item) for item in _payload_list(body)]
        try:
            if action == "decode":
                converted = await self._codec.decode(payloads)
            else:
                converted = await self._codec.encode(payloads)
        except PayloadKeyError as error:
            raise InvalidRequestError(str(error), param="payloads", code="payload_key") from None
        return {"payloads": [_payload_to_json(p) for p in converted]}


def _payload_list(body: dict[str, Any]) -> list[Any]:
    items = body.get("payloads")
    if not isinstance(items, list):
        raise InvalidRequestError("`payloads` must be a list", param="payloads")
    if len(items) > MAX_PAYLOADS:
        raise InvalidRequestError(f"at most {MAX_PAYLOADS} payloads", param="payloads")
    return items


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise InvalidRequestError("payload fields must be base64 strings", param="payloads")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("payload fields must be base64", param="payloads") from None


def _payload_from_json(item: Any) -> Payload:
    if not isinstance(item, dict):
        raise InvalidRequestError("each payload must be an object", param="payloads")
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidRequestError("payload metadata must be an object", param="payloads")
    return Payload(
        metadata={str(name): _b64(value) for name, value in metadata.items()},
        data=_b64(item.get("data", "")),
    )


def _payload_to_json(payload: Payload) -> dict[str, Any]:
    return {
        "metadata": {
            name: base64.b64encode(value).decode() for name, value in payload.metadata.items()
        },
        "data": base64.b64encode(payload.data).decode(),
    }


def codec_origins(settings: Settings) -> list[str]:
    """The Web UI origins allowed to call the codec endpoint."""
    if settings.codec_cors_origins is not None:
        return [o.strip().rstrip("/") for o in settings.codec_cors_origins.split(",") if o.strip()]
    port = settings.temporal_ui_port
    return [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
