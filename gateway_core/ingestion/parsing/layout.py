"""What every format parser shares: text assembled block by block, with its sections."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from gateway_core.ingestion.model import DocumentParseError, ParsedDocument, Section

BLOCK_SEPARATOR = "\n\n"
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


@dataclass
class _OpenSection:
    start: int
    end: int
    page: int | None
    heading_path: tuple[str, ...]


class DocumentBuilder:
    """Joins blocks with a blank line and records which section each block belongs to.

    Consecutive blocks with the same heading path and page share one section; a heading
    always opens a new one, so two headings with the same text stay two sections.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._sections: list[_OpenSection] = []

    def add(
        self,
        text: str,
        *,
        heading_path: tuple[str, ...] = (),
        page: int | None = None,
        opens_section: bool = False,
    ) -> None:
        block = clean_block(text)
        if not block:
            return
        if self._parts:
            self._parts.append(BLOCK_SEPARATOR)
            self._length += len(BLOCK_SEPARATOR)
        start = self._length
        self._parts.append(block)
        self._length += len(block)
        current = self._sections[-1] if self._sections else None
        if (
            current is not None
            and not opens_section
            and current.heading_path == heading_path
            and current.page == page
        ):
            current.end = self._length
        else:
            self._sections.append(_OpenSection(start, self._length, page, heading_path))

    def build(self, *, format: str, metadata: dict[str, Any]) -> ParsedDocument:
        """The document; `empty_document` when no block had any text."""
        if not self._parts:
            raise DocumentParseError("the document has no text to ingest", code="empty_document")
        sections = [
            Section(
                start=section.start,
                end=section.end,
                page=section.page,
                heading_path=list(section.heading_path),
            )
            for section in self._sections
        ]
        return ParsedDocument(
            text="".join(self._parts), sections=sections, metadata=metadata, format=format
        )


class HeadingTrail:
    """The headings above the current position, outermost first (levels 0-9)."""

    def __init__(self) -> None:
        self._headings: list[tuple[int, str]] = []

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._headings)

    def enter(self, level: int, title: str) -> tuple[str, ...]:
        """Move to a heading: it replaces those at its level or deeper."""
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._headings.append((level, title))
        return self.path


def clean_block(text: str) -> str:
    """The block without NUL characters (PostgreSQL text cannot hold them) or blank edges.

    Leading blank lines go but the first line's indentation stays (code keeps its shape).
    """
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    return _LEADING_BLANK_LINES.sub("", text).rstrip()


def iso_datetime(value: object) -> str | None:
    """A date as an ISO-8601 string, or None when there is none or it is not a date."""
    if isinstance(value, date):  # a datetime is a date too; YAML front matter gives dates
        return value.isoformat()
    if isinstance(value, str) and value.strip():
        try:
            return datetime.fromisoformat(value.strip()).isoformat()
        except ValueError:
            return None
    return None


def text_metadata(**fields: object) -> dict[str, Any]:
    """The given fields that hold text, stripped; empty and missing ones left out."""
    return {
        key: value.strip()
        for key, value in fields.items()
        if isinstance(value, str) and value.strip()
    }
