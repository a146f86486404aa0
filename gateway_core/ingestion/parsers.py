"""Parsers (placeholder; being written): `parse(content, *, filename, content_type, parser)`."""

from __future__ import annotations

from gateway_core.ingestion.model import ParsedDocument, ParserName


def parse(
    content: bytes,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    parser: ParserName = "auto",
) -> ParsedDocument:
    """The document's text, sections and metadata; DocumentParseError when unreadable."""
    raise NotImplementedError
