"""Staged ingestion bytes in PostgreSQL: written in parts as they stream in, read whole.

Uploads, parsed documents, chunk lists and vectors of an ingestion run live here and
travel through the run only as ids (Temporal payloads are limited to 2 MB, and history
should stay small). Each blob belongs to a run; `delete_run` removes all of them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from typing import Literal

from gateway_core.errors import NotFoundError
from gateway_core.storage.database import ConnectionSource

BlobKind = Literal["upload", "parsed", "chunks", "vectors"]
# Parts are flushed at this size: an upload is never held whole in the API's memory.
PART_BYTES = 1024 * 1024


class BlobNotFoundError(NotFoundError):
    default_code = "blob_not_found"


class BlobStore:
    """Blobs of ingestion runs, by id."""

    def __init__(self, pool: ConnectionSource) -> None:
        self._pool = pool

    async def put(self, run_id: str, kind: BlobKind, content: bytes) -> str:
        """Store `content` as a new blob of `run_id`; its id."""
        blob_id = str(uuid.uuid4())
        async with self._pool.connection() as conn, conn.transaction():
            for part, start in enumerate(range(0, max(len(content), 1), PART_BYTES)):
                await conn.execute(
                    "INSERT INTO ingestion_blobs (id, part, run_id, kind, content)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (blob_id, part, run_id, kind, content[start : start + PART_BYTES]),
                )
        return blob_id

    async def put_stream(self, run_id: str, kind: BlobKind, pieces: AsyncIterable[bytes]) -> str:
        """Store a stream of pieces as one blob, a part per PART_BYTES; its id."""
        writer = BlobWriter(self, run_id, kind)
        async for piece in pieces:
            await writer.write(piece)
        return await writer.close()

    async def insert_part(
        self, blob_id: str, part: int, run_id: str, kind: BlobKind, content: bytes
    ) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO ingestion_blobs (id, part, run_id, kind, content)"
                " VALUES (%s, %s, %s, %s, %s)",
                (blob_id, part, run_id, kind, content),
            )

    async def get(self, blob_id: str) -> bytes:
        """The blob's bytes; 404 when it does not exist (any more)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT content FROM ingestion_blobs WHERE id = %s ORDER BY part", (blob_id,)
            )
            rows = await cursor.fetchall()
        if not rows:
            raise BlobNotFoundError(f"ingestion blob {blob_id} does not exist")
        return b"".join(bytes(row["content"]) for row in rows)

    async def delete(self, blob_ids: list[str]) -> int:
        """Delete blobs by id; how many parts went."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM ingestion_blobs WHERE id = ANY(%s::uuid[])", (blob_ids,)
            )
        return cursor.rowcount

    async def delete_run(self, run_id: str) -> int:
        """Delete every blob of a run; how many parts went."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute("DELETE FROM ingestion_blobs WHERE run_id = %s", (run_id,))
        return cursor.rowcount

    async def sweep(self, older_than_hours: float) -> int:
        """Delete blobs older than the TTL (of runs that never reached their clean-up)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM ingestion_blobs WHERE created_at < now() - make_interval(secs => %s)",
                (older_than_hours * 3600,),
            )
        return cursor.rowcount


class BlobWriter:
    """One blob written piece by piece; parts are flushed at PART_BYTES."""

    def __init__(self, store: BlobStore, run_id: str, kind: BlobKind) -> None:
        self._store = store
        self._run_id = run_id
        self._kind: BlobKind = kind
        self.blob_id = str(uuid.uuid4())
        self.size = 0
        self._buffer = bytearray()
        self._parts = 0

    async def write(self, piece: bytes) -> None:
        self._buffer.extend(piece)
        self.size += len(piece)
        while len(self._buffer) >= PART_BYTES:
            await self._flush(bytes(self._buffer[:PART_BYTES]))
            del self._buffer[:PART_BYTES]

    async def close(self) -> str:
        """Flush the rest (an empty blob still gets its one part); the blob's id."""
        if self._buffer or self._parts == 0:
            await self._flush(bytes(self._buffer))
            self._buffer.clear()
        return self.blob_id

    async def _flush(self, content: bytes) -> None:
        await self._store.insert_part(self.blob_id, self._parts, self._run_id, self._kind, content)
        self._parts += 1
