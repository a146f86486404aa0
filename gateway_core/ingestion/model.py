"""What parsers produce and chunkers consume: text with its structure, and the chunks."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

ParserName = Literal["auto", "text", "markdown", "html", "json", "pdf", "docx"]
ChunkStrategy = Literal["fixed", "sentence", "paragraph", "recursive"]


class Section(BaseModel):
    """A run of a document's text with where it sits: its page and its heading path.

    `start`/`end` are character offsets into `ParsedDocument.text`; sections are in
    order, do not overlap, and together cover the text except separators between them.
    """

    model_config = ConfigDict(frozen=True)

    start: int
    end: int
    page: int | None = None  # 1-based, where the format has pages (PDF)
    heading_path: list[str] = Field(default_factory=list)  # outermost heading first


class ParsedDocument(BaseModel):
    """A document's extracted text, its sections, and its own metadata."""

    model_config = ConfigDict(frozen=True)

    text: str
    sections: list[Section]
    # title, author, created, modified (ISO-8601 strings), page_count, and for JSON the
    # document's top-level scalar fields; absent keys are simply left out.
    metadata: dict[str, Any] = Field(default_factory=dict)
    format: str  # which parser read it: text, markdown, html, json, pdf, docx


class ChunkerOptions(BaseModel):
    """`options.chunker`: how a document is split (defaults come from the KB)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: ChunkStrategy = "recursive"
    chunk_size: int = Field(default=1000, ge=50, le=20_000)
    chunk_overlap: int = Field(default=200, ge=0, le=5_000)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Self:
        refuse_overlap_not_below_size(self.chunk_size, self.chunk_overlap)
        return self


def refuse_overlap_not_below_size(chunk_size: int, chunk_overlap: int) -> None:
    """An overlap as long as the chunk would leave no room to move forward: refused."""
    if chunk_overlap >= chunk_size:
        raise ValueError(
            f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})"
        )


class Chunk(BaseModel):
    """One piece of a document to embed: its text and where it came from."""

    model_config = ConfigDict(frozen=True)

    index: int
    text: str
    start: int  # character offsets into ParsedDocument.text
    end: int
    page: int | None = None
    heading_path: list[str] = Field(default_factory=list)


class DocumentParseError(Exception):
    """This document cannot be read (unknown format, encrypted or corrupt, empty, bad UTF-8).

    A per-document failure: the ingestion reports it for this document and goes on.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
