"""The admin key: generated once (even with racing start-ups), or taken from PMP_ADMIN_KEY."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from gateway_core.auth.keys import ADMIN_KEY_FILE, ensure_admin_key
from gateway_core.storage.database import migrate, open_pool


async def test_first_start_generates_one_key_even_when_processes_race(
    tmp_path: Path, database_url: str
) -> None:
    pool = await open_pool(database_url)
    await migrate(pool)
    try:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM admin_keys")
        folders = [tmp_path / f"p{i}" for i in range(3)]
        results = await asyncio.gather(*(ensure_admin_key(pool, None, f) for f in folders))
        written = [f / ADMIN_KEY_FILE for f in folders if (f / ADMIN_KEY_FILE).exists()]
        assert len(written) == 1
        key = written[0].read_text().strip()
        assert stat.S_IMODE(written[0].stat().st_mode) == 0o600
        assert all(keys.verify(key) for keys in results)
        # PMP_ADMIN_KEY set to that same key (pinning it) works and is then the only key.
        pinned = await ensure_admin_key(pool, key, tmp_path)
        assert pinned.verify(key)
        other = await ensure_admin_key(pool, "pk_admin_other_" + "y" * 30, tmp_path)
        assert not other.verify(key)
        again = await ensure_admin_key(pool, None, tmp_path / "later")
        assert again.verify(key)
    finally:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM admin_keys")
        await pool.close()
