"""Admin key generation, hashing and verification (full key management is issue 5)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from gateway_core.storage.database import Pool

logger = logging.getLogger(__name__)

ADMIN_KEY_PREFIX = "pk_admin_"
ADMIN_KEY_FILE = "admin-key"
_ADMIN_KEY_LOCK_ID = 0x504D504B


def generate_admin_key() -> str:
    return ADMIN_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AdminKeys:
    """Hashes of the admin keys, loaded once; verification never touches the database."""

    def __init__(self, hashes: set[str]) -> None:
        self._hashes = frozenset(hashes)

    def verify(self, presented: str) -> bool:
        digest = hash_key(presented)
        return any(hmac.compare_digest(digest, known) for known in self._hashes)


async def ensure_admin_key(pool: Pool, configured: str | None, data_dir: Path) -> AdminKeys:
    """PMP_ADMIN_KEY when set; else the key generated at first start (written to a 0600 file).

    While PMP_ADMIN_KEY is set it is the only admin key; the generated one is kept for
    when it is unset again.
    """
    if configured:
        return AdminKeys({hash_key(configured)})
    async with pool.connection() as conn, conn.transaction():
        # Processes starting together queue here, so exactly one generates the key.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADMIN_KEY_LOCK_ID,))
        cursor = await conn.execute("SELECT key_hash FROM admin_keys WHERE id = 'generated'")
        row = await cursor.fetchone()
        if row is not None:
            logger.info(
                "admin key was generated at first start",
                extra={"admin_key_file": str(data_dir / ADMIN_KEY_FILE)},
            )
            return AdminKeys({row["key_hash"]})
        key = generate_admin_key()
        await conn.execute(
            "INSERT INTO admin_keys (id, key_hash, source) VALUES ('generated', %s, 'generated')",
            (hash_key(key),),
        )
        # Written inside the transaction: if the file cannot be written, no key is
        # registered that nobody can read.
        path = _write_key_file(data_dir, key)
    logger.warning(
        "generated an admin key; it is shown nowhere else", extra={"admin_key_file": str(path)}
    )
    return AdminKeys({hash_key(key)})


def _write_key_file(data_dir: Path, key: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / ADMIN_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    return path
