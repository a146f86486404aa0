"""Chunkers (placeholder; being written): `chunk(document, options) -> list[Chunk]`."""

from __future__ import annotations

from gateway_core.ingestion.model import Chunk, ChunkerOptions, ParsedDocument


def chunk(document: ParsedDocument, options: ChunkerOptions) -> list[Chunk]:
    """Pieces of at most `options.chunk_size` characters, in order, covering the text."""
    raise NotImplementedError
