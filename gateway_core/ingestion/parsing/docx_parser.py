"""DOCX (python-docx): paragraphs and tables in body order, heading styles as sections.

Heading styles ("Heading 1".."Heading 9", and styles based on them) open sections; the
"Title" style is the outermost heading. Consecutive list paragraphs form one block of
"- item" lines; a table is one block of rows, cells joined by " | ".
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import docx
from docx.document import Document
from docx.styles.style import ParagraphStyle
from docx.table import Table
from docx.text.paragraph import Paragraph

from gateway_core.ingestion.model import DocumentParseError, ParsedDocument
from gateway_core.ingestion.parsing.layout import (
    DocumentBuilder,
    HeadingTrail,
    iso_datetime,
    text_metadata,
)

DOCX_MAIN_PART = "word/document.xml"
_HEADING_STYLE = re.compile(r"heading ([1-9])", re.IGNORECASE)
_STYLE_BASE_DEPTH = 5  # custom styles based on a heading style, a few generations deep


def looks_like_docx(content: bytes) -> bool:
    """A ZIP package with a Word main document part (other ZIPs are not DOCX)."""
    if not content.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as package:
            return DOCX_MAIN_PART in package.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def parse_docx(content: bytes) -> ParsedDocument:
    if not looks_like_docx(content):
        raise DocumentParseError("the content is not a DOCX (Word) file", code="parse_failed")
    try:
        document = docx.Document(io.BytesIO(content))
    except Exception:  # a damaged package surfaces as any of many errors
        raise DocumentParseError(
            "the DOCX file is damaged and cannot be read", code="parse_failed"
        ) from None
    builder = DocumentBuilder()
    _add_body(document, builder)
    return builder.build(format="docx", metadata=_metadata(document))


def _add_body(document: Document, builder: DocumentBuilder) -> None:
    trail = HeadingTrail()
    list_items: list[str] = []

    def flush_list() -> None:
        builder.add("\n".join(list_items), heading_path=trail.path)
        list_items.clear()

    for item in document.iter_inner_content():
        if isinstance(item, Table):
            flush_list()
            builder.add("\n".join(_table_rows(item)), heading_path=trail.path)
            continue
        level = _heading_level(item)
        title = item.text.strip()
        if level is not None and title:
            flush_list()
            builder.add(title, heading_path=trail.enter(level, title), opens_section=True)
        elif _is_list_item(item):
            if title:
                list_items.append(f"- {title}")
        else:
            flush_list()
            builder.add(item.text, heading_path=trail.path)
    flush_list()


def _heading_level(paragraph: Paragraph) -> int | None:
    style: ParagraphStyle | None = paragraph.style
    for _ in range(_STYLE_BASE_DEPTH):
        if style is None:
            return None
        name = style.name or ""
        if name.lower() == "title":
            return 0
        match = _HEADING_STYLE.fullmatch(name)
        if match:
            return int(match.group(1))
        style = style.base_style
    return None


def _is_list_item(paragraph: Paragraph) -> bool:
    style_name = (paragraph.style.name or "") if paragraph.style is not None else ""
    properties = paragraph._p.pPr  # numbering lives in the paragraph's own properties
    return style_name.lower().startswith("list") or (
        properties is not None and properties.numPr is not None
    )


def _table_rows(table: Table) -> list[str]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            # a merged cell is listed once per grid column it spans; show it once
            if previous is not None and cell._tc is previous._tc:
                continue
            previous = cell
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return rows


def _metadata(document: Document) -> dict[str, Any]:
    try:
        properties = document.core_properties
        metadata = text_metadata(title=properties.title, author=properties.author)
        dates = (("created", properties.created), ("modified", properties.modified))
    except Exception:  # malformed core properties lose the metadata, not the text
        return {}
    for key, value in dates:
        iso = iso_datetime(value)
        if iso is not None:
            metadata[key] = iso
    return metadata
