"""Parsers: document bytes → text with its sections and metadata (`parse`).

Pure and synchronous CPU work (the parse activity runs it in a thread); nothing is
downloaded. One module per format lives in `gateway_core.ingestion.parsing`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway_core.ingestion.model import DocumentParseError, ParsedDocument, ParserName
from gateway_core.ingestion.parsing.detection import DocumentFormat, charset_of, detect_format
from gateway_core.ingestion.parsing.docx_parser import parse_docx
from gateway_core.ingestion.parsing.html_parser import parse_html
from gateway_core.ingestion.parsing.json_parser import parse_json
from gateway_core.ingestion.parsing.markdown_parser import parse_markdown
from gateway_core.ingestion.parsing.pdf_parser import parse_pdf
from gateway_core.ingestion.parsing.plain_text import decode_text, parse_text

logger = logging.getLogger(__name__)
_UTF8_BOM = b"\xef\xbb\xbf"

_TEXT_PARSERS: dict[str, Callable[[str], ParsedDocument]] = {
    "text": parse_text,
    "markdown": parse_markdown,
    "html": parse_html,
    "json": parse_json,
}


def parse(
    content: bytes,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    parser: ParserName = "auto",
) -> ParsedDocument:
    """The document's text, sections and metadata; DocumentParseError when unreadable.

    `parser="auto"` picks the format from the content type, then the extension, then
    the bytes; a named parser is used as asked and fails with `parse_failed` when the
    content is not in its format. Error messages never quote the document.
    """
    if not content.removeprefix(_UTF8_BOM).strip():
        raise DocumentParseError("the document is empty", code="empty_document")
    chosen: DocumentFormat = (
        detect_format(content, filename=filename, content_type=content_type)
        if parser == "auto"
        else parser
    )
    try:
        return _parse_as(chosen, content, charset_of(content_type))
    except DocumentParseError:
        raise
    except Exception as error:
        # A parser library tripping over odd input fails this document, not the run: a
        # retry would trip the same way. Only the error's type is logged, never content.
        logger.warning("%s parser failed: %s", chosen, type(error).__name__)
        raise DocumentParseError(
            f"the {chosen} parser could not read the document", code="parse_failed"
        ) from None


def _parse_as(chosen: DocumentFormat, content: bytes, charset: str | None) -> ParsedDocument:
    if chosen == "pdf":
        return parse_pdf(content)
    if chosen == "docx":
        return parse_docx(content)
    return _TEXT_PARSERS[chosen](decode_text(content, charset))
