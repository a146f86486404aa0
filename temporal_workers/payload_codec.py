"""AES-GCM encryption of every Temporal payload the gateway writes.

Prompts, answers and callback documents travel through Temporal as workflow and
activity inputs and results; without this codec they sit readable in Temporal's
database and Web UI. The key is `PMP_PAYLOAD_KEY` (32 bytes, base64), or in serve mode
a key file generated in the data dir at first start. Payloads without the encrypted
encoding pass through undecoded, so histories recorded before (tests/histories) still
replay. The codec endpoint (`/codec/decode`, `/codec/encode`) lets an operator holding
the admin key read payloads in the Web UI.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

ENCODING = b"binary/encrypted"
KEY_ID_FIELD = "encryption-key-id"
KEY_FILE = "payload-key"
NONCE_BYTES = 12
KEY_BYTES = 32


class PayloadKeyError(ValueError):
    """The payload key is missing, malformed, or not the one a payload was sealed with."""


def parse_key(text: str) -> bytes:
    """A 32-byte key from base64 (standard or URL-safe, padding optional)."""
    cleaned = text.strip()
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        key = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        raise PayloadKeyError("the payload key is not base64") from None
    if len(key) != KEY_BYTES:
        raise PayloadKeyError(f"the payload key must be {KEY_BYTES} bytes (base64 of them)")
    return key


def new_key_text() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def load_or_create_key(configured: str | None, data_dir: Path, *, create: bool) -> bytes:
    """The configured key, else the data dir's key file (made at first start if `create`)."""
    if configured:
        return parse_key(configured)
    path = data_dir / KEY_FILE
    if path.exists():
        return parse_key(path.read_text())
    if not create:
        raise PayloadKeyError("no payload key")
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return parse_key(path.read_text())
    with os.fdopen(fd, "w") as handle:
        handle.write(new_key_text() + "\n")
    return parse_key(path.read_text())


class AesGcmCodec(PayloadCodec):
    """Seals each payload (its whole serialized form) with AES-256-GCM and a random nonce."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        # Names the key without revealing it, so a wrong key is a clear error.
        self.key_id = hashlib.sha256(b"pmp payload key id\x00" + key).hexdigest()[:16]

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._seal(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(payload) for payload in payloads]

    def _seal(self, payload: Payload) -> Payload:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, payload.SerializeToString(), ENCODING)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_FIELD: self.key_id.encode()},
            data=nonce + sealed,
        )

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption (or by another client): as it is
        if payload.metadata.get(KEY_ID_FIELD, b"").decode() != self.key_id:
            raise PayloadKeyError("payload was encrypted with another payload key")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            return Payload.FromString(self._aead.decrypt(nonce, sealed, ENCODING))
        except InvalidTag:
            raise PayloadKeyError("payload does not decrypt with this payload key") from None


def encrypted_converter(codec: PayloadCodec | None) -> DataConverter:
    """The gateway's data converter (pydantic-aware) with `codec` on every payload.

    Failure messages and stack traces move into an encoded payload too, so an upstream's
    error text (which may quote the prompt) is as unreadable in history as the prompt.
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
