"""Plain text: the bytes decoded (UTF-8 unless the content type names a charset)."""

from __future__ import annotations

import codecs

from gateway_core.ingestion.model import DocumentParseError, ParsedDocument
from gateway_core.ingestion.parsing.layout import DocumentBuilder


def decode_text(content: bytes, charset: str | None = None) -> str:
    """The content as text; a UTF-8 byte-order mark is dropped.

    A charset named in the content type is honoured when Python knows it; otherwise the
    content must be UTF-8 (`invalid_utf8`), never guessed, so no text is silently garbled.
    """
    encoding = _known_encoding(charset) or "utf-8"
    if encoding == "utf-8":
        encoding = "utf-8-sig"
    try:
        return content.decode(encoding)
    except UnicodeDecodeError as error:
        raise DocumentParseError(
            f"the document is not valid {_shown(encoding)} (bad byte at offset {error.start})",
            code="invalid_utf8",
        ) from None


def parse_text(text: str) -> ParsedDocument:
    """The whole text as one section; paragraphs are left to the chunker."""
    builder = DocumentBuilder()
    builder.add(text)
    return builder.build(format="text", metadata={})


def _known_encoding(charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        return codecs.lookup(charset.strip().strip('"')).name
    except LookupError:
        return None


def _shown(encoding: str) -> str:
    return "UTF-8" if encoding == "utf-8-sig" else encoding
