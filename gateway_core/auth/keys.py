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
    """Register PMP_ADMIN_KEY, or generate a key on first start and write it to a 0600 file."""
    async with pool.connection() as conn, conn.transaction():
        if configured:
            await conn.execute(
                "INSERT INTO admin_keys (id, key_hash, source) VALUES ('env', %s, 'env')"
                " ON CONFLICT (id) DO UPDATE SET key_hash = EXCLUDED.key_hash",
                (hash_key(configured),),
            )
        else:
            await conn.execute("DELETE FROM admin_keys WHERE id = 'env'")
            cursor = await conn.execute("SELECT 1 FROM admin_keys WHERE id = 'generated'")
            if await cursor.fetchone() is None:
                key = generate_admin_key()
                path = _write_key_file(data_dir, key)
                await conn.execute(
                    "INSERT INTO admin_keys (id, key_hash, source)"
                    " VALUES ('generated', %s, 'generated')",
                    (hash_key(key),),
                )
                logger.warning(
                    "generated an admin key; it is shown nowhere else",
                    extra={"admin_key_file": str(path)},
                )
            else:
                logger.info(
                    "admin key was generated at first start",
                    extra={"admin_key_file": str(data_dir / ADMIN_KEY_FILE)},
                )
        cursor = await conn.execute("SELECT key_hash FROM admin_keys")
        hashes = {row["key_hash"] for row in await cursor.fetchall()}
    return AdminKeys(hashes)


def _write_key_file(data_dir: Path, key: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / ADMIN_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    return path
