"""PDF (pypdf): one section per page that has text, with its 1-based page number."""

from __future__ import annotations

import io
from typing import Any

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError

from gateway_core.ingestion.model import DocumentParseError, ParsedDocument
from gateway_core.ingestion.parsing.layout import DocumentBuilder, iso_datetime, text_metadata

PDF_MAGIC = b"%PDF-"
_HEADER_WINDOW = 1024  # the PDF header may follow some bytes of junk (ISO 32000 allows it)


def looks_like_pdf(content: bytes) -> bool:
    return PDF_MAGIC in content[:_HEADER_WINDOW]


def parse_pdf(content: bytes) -> ParsedDocument:
    if not looks_like_pdf(content):
        raise DocumentParseError("the content is not a PDF (no %PDF- header)", code="parse_failed")
    reader = _open(content)
    builder = DocumentBuilder()
    for number, page in enumerate(reader.pages, start=1):
        try:
            page_text = page.extract_text()
        except Exception:  # pypdf raises many kinds on a damaged page
            raise DocumentParseError(
                f"page {number} of the PDF cannot be read", code="corrupt_pdf"
            ) from None
        builder.add(page_text, page=number)
    metadata = _metadata(reader)
    try:
        return builder.build(format="pdf", metadata=metadata)
    except DocumentParseError:
        raise DocumentParseError(
            "the PDF has no extractable text (scanned pages need OCR, which is not done here)",
            code="empty_document",
        ) from None


def _open(content: bytes) -> PdfReader:
    """A reader ready for its pages; encrypted PDFs open only without a user password."""
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise DocumentParseError("the PDF is encrypted with a password", code="encrypted_pdf")
        _ = len(reader.pages)  # reading the page tree finds most structural damage now
    except DocumentParseError:
        raise
    except DependencyError:  # AES without the `cryptography` package installed
        raise DocumentParseError(
            "the PDF is encrypted and cannot be decrypted here", code="encrypted_pdf"
        ) from None
    except Exception:  # a damaged file surfaces as any of many errors
        raise DocumentParseError(
            "the PDF is damaged and cannot be read", code="corrupt_pdf"
        ) from None
    return reader


def _metadata(reader: PdfReader) -> dict[str, Any]:
    metadata: dict[str, Any] = {"page_count": len(reader.pages)}
    try:
        info = reader.metadata
        if info is None:
            return metadata
        metadata.update(text_metadata(title=info.title, author=info.author))
        for key, read in (("created", "creation_date"), ("modified", "modification_date")):
            value = iso_datetime(getattr(info, read))
            if value is not None:
                metadata[key] = value
    except Exception:  # a malformed info dictionary loses metadata, not text
        return metadata
    return metadata
