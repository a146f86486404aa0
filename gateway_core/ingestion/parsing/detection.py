"""Which format a document is in: its content type, then its extension, then its bytes."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Literal

from gateway_core.ingestion.model import DocumentParseError
from gateway_core.ingestion.parsing.docx_parser import looks_like_docx
from gateway_core.ingestion.parsing.pdf_parser import looks_like_pdf

DocumentFormat = Literal["text", "markdown", "html", "json", "pdf", "docx"]

_CONTENT_TYPES: dict[str, DocumentFormat] = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/json": "json",
    "text/json": "json",
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}
# Formats this gateway cannot read: saying so beats ingesting their bytes as text.
_UNSUPPORTED_MEDIA = ("image/", "audio/", "video/", "font/", "model/")
_UNSUPPORTED_CONTENT_TYPES = frozenset(
    {
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/vnd.rar",
        "application/epub+zip",
    }
)
_EXTENSIONS: dict[str, DocumentFormat] = {
    **dict.fromkeys((".txt", ".text", ".log", ".csv", ".tsv", ".rst"), "text"),
    **dict.fromkeys((".md", ".markdown", ".mdown", ".mkd"), "markdown"),
    **dict.fromkeys((".html", ".htm", ".xhtml"), "html"),
    ".json": "json",
    ".pdf": "pdf",
    ".docx": "docx",
}
_UNSUPPORTED_EXTENSIONS = frozenset(
    ".png .jpg .jpeg .gif .webp .bmp .tif .tiff .ico .heic .svg .mp3 .wav .ogg .flac "  # noqa: SIM905 - words read best as words
    ".mp4 .mov .avi .mkv .webm .zip .gz .tgz .tar .7z .rar .doc .xls .xlsx .ppt .pptx "
    ".odt .ods .odp .rtf .epub .exe .dll .so .bin .dmg .iso".split()
)
_BINARY_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",  # JPEG
    b"GIF8",
    b"RIFF",  # WebP, WAV, AVI
    b"\x1f\x8b",  # gzip
    b"7z\xbc\xaf",
    b"Rar!",
    b"\xd0\xcf\x11\xe0",  # legacy Office (.doc, .xls)
    b"ID3",  # MP3
    b"PK\x03\x04",  # a ZIP that is not DOCX (DOCX is recognised before this list)
)
_SNIFF_BYTES = 8192


def media_type(content_type: str | None) -> str:
    """`text/html; charset=utf-8` → `text/html`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def charset_of(content_type: str | None) -> str | None:
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


def detect_format(
    content: bytes, *, filename: str | None, content_type: str | None
) -> DocumentFormat:
    """The format to parse with; `unsupported_format` for a format no parser reads.

    Generic content types (application/octet-stream, text/plain, anything unknown) say
    too little: the extension and then the bytes decide.
    """
    media = media_type(content_type)
    if media.startswith(_UNSUPPORTED_MEDIA) or media in _UNSUPPORTED_CONTENT_TYPES:
        raise _unsupported(f"content type {media}")
    if media in _CONTENT_TYPES:
        return _CONTENT_TYPES[media]
    extension = PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()
    if extension in _UNSUPPORTED_EXTENSIONS:
        raise _unsupported(f"extension {extension}")
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    return sniff_format(content)


def sniff_format(content: bytes) -> DocumentFormat:
    """The format the bytes themselves show; UTF-8 text when nothing else fits."""
    if looks_like_pdf(content):
        return "pdf"
    if looks_like_docx(content):
        return "docx"
    head = content[:_SNIFF_BYTES]
    if head.startswith(_BINARY_MAGIC) or b"\x00" in head:
        raise _unsupported("binary content")
    text_head = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n").lower()
    if text_head.startswith("<!doctype html") or (
        text_head.startswith("<") and "<html" in text_head[:1024]
    ):
        return "html"
    if text_head.startswith(("{", "[")) and _is_json_container(content):
        return "json"
    return "text"


def _is_json_container(content: bytes) -> bool:
    try:
        return isinstance(json.loads(content.decode("utf-8-sig")), dict | list)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


def _unsupported(what: str) -> DocumentParseError:
    return DocumentParseError(
        f"unsupported document format ({what}); supported: text, Markdown, HTML, JSON, PDF, DOCX",
        code="unsupported_format",
    )
