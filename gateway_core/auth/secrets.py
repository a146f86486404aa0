"""API key secrets: generation, the keyed hash that is stored, and parsing.

A key reads `pk_live_<lookup><secret>`: the 10-character lookup finds the row, the
HMAC-SHA256 of the whole key under a server-side secret (never in the database) proves it.
A stolen key table therefore cannot be brute-forced offline.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import string
from pathlib import Path

LOOKUP_LENGTH = 10
_LOOKUP_ALPHABET = string.ascii_lowercase + string.digits
PREFIXES = {"live": "pk_live_", "test": "pk_test_"}
SECRET_FILE = "key-hash-secret"  # noqa: S105 - a file name, not a secret


def generate_key(environment: str) -> tuple[str, str]:
    """A new key and its lookup prefix: 32 bytes from the OS's secure random source."""
    lookup = "".join(secrets.choice(_LOOKUP_ALPHABET) for _ in range(LOOKUP_LENGTH))
    return f"{PREFIXES[environment]}{lookup}{secrets.token_urlsafe(32)}", lookup


def lookup_of(presented: str) -> str | None:
    """The lookup prefix of a presented key, or None if it is not a gateway API key."""
    for prefix in PREFIXES.values():
        if presented.startswith(prefix):
            lookup = presented[len(prefix) : len(prefix) + LOOKUP_LENGTH]
            return lookup if len(lookup) == LOOKUP_LENGTH else None
    return None


class KeyHasher:
    """HMAC of keys under the server secret; comparisons take constant time."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the key hash secret must be at least 32 bytes")
        self._secret = secret

    def digest(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    def matches(self, key: str, stored: str) -> bool:
        return self.matches_digest(self.digest(key), stored)

    @staticmethod
    def matches_digest(digest: str, stored: str) -> bool:
        """Constant-time comparison, so timing says nothing about the stored hash."""
        return hmac.compare_digest(digest, stored)


def load_or_create_secret(configured: str | None, data_dir: Path) -> bytes:
    """PMP_KEY_HASH_SECRET, else a secret made at first start in a 0600 file of the data dir.

    Processes that share a database must share this secret (set the variable).
    """
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(value + b"\n")
    return value
