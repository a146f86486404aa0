"""Parsers on real files made here by real tools (fpdf2, python-docx, pypdf's writer).

Every document carries a marker word; every error message is checked not to quote it.
"""

from __future__ import annotations

import io
import json
import socket
import zipfile
from datetime import UTC, datetime
from typing import Any

import docx
import pytest
from docx.enum.text import WD_BREAK
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from gateway_core.ingestion.model import DocumentParseError, ParsedDocument, ParserName
from gateway_core.ingestion.parsers import parse
from gateway_core.ingestion.parsing.layout import BLOCK_SEPARATOR

SECRET = "zebracorn"  # appears in documents, must never appear in an error message
CREATED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
MODIFIED = datetime(2024, 6, 7, 8, 9, 10, tzinfo=UTC)

MARKDOWN = f"""---
title: The Install Guide
author: Grace Hopper
date: 2024-03-04
---
# Guide

Intro with **bold**, `code` and a [link](https://example.com/{SECRET}).

## Install

1. First step
2. Second step
   - nested a
   - nested b

```python
def answer():
    return 42
```

### On Linux

| OS | Command |
|----|---------|
| Debian | apt install {SECRET} |

## Use

Run it.

<div><script>stolen()</script>inline html</div>
"""

HTML = f"""<!DOCTYPE html>
<html lang="en"><head>
<title>Field   Notes</title>
<meta name="author" content="Rosalind Franklin">
<meta property="article:published_time" content="2024-01-02T03:04:05Z">
<meta property="article:modified_time" content="2024-02-03T04:05:06+01:00">
<meta name="description" content="Notes from the field">
<style>.hidden {{ display: none }} STYLE_TEXT</style>
<script>var SCRIPT_TEXT = 1;</script>
</head><body>
<header><h1>SITE_HEADER</h1></header>
<nav><a href="/">NAV_LINK</a></nav>
<main>
<h1>Field Notes</h1>
<p>Hello <b>world</b>,<br>second line about {SECRET}.</p>
<noscript>NOSCRIPT_TEXT</noscript>
<h2>Birds</h2>
<ul><li>Robin</li><li>Crow<ul><li>Raven</li></ul></li></ul>
<aside>ASIDE_TEXT</aside>
<h3>Nesting</h3>
<table><tr><th>Bird</th><th>Eggs</th></tr><tr><td>Robin</td><td>4</td></tr></table>
<form><label>FORM_TEXT</label><input name="q"></form>
<pre>  keep
    this spacing</pre>
<h2>Trees</h2>
<div>Oak and ash.</div>
<script>SCRIPT_TWO()</script>
</main>
<footer>FOOTER_TEXT</footer>
</body></html>
"""
NEVER_IN_HTML_TEXT = (
    "SCRIPT_TEXT",
    "SCRIPT_TWO",
    "STYLE_TEXT",
    "SITE_HEADER",
    "NAV_LINK",
    "NOSCRIPT_TEXT",
    "ASIDE_TEXT",
    "FORM_TEXT",
    "FOOTER_TEXT",
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing must never reach the network (no model or data downloads)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a parser tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def make_pdf(pages: list[str], *, title: str = "", author: str = "") -> bytes:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if author:
        pdf.set_author(author)
    pdf.set_creation_date(CREATED)
    pdf.set_font("helvetica", size=12)
    for page_text in pages:
        pdf.add_page()
        if page_text:
            pdf.multi_cell(0, 10, page_text)
    return bytes(pdf.output())


def make_docx() -> bytes:
    document = docx.Document()
    properties = document.core_properties
    properties.title = "Annual Plan"
    properties.author = "Katherine Johnson"
    properties.created = CREATED
    properties.modified = MODIFIED
    document.add_paragraph("Plan 2025", style="Title")
    document.add_paragraph("Opening words.")
    document.add_heading("Goals", level=1)
    document.add_paragraph(f"Grow the {SECRET} program.")
    document.add_paragraph("Hire two people", style="List Bullet")
    document.add_paragraph("Ship version two", style="List Bullet")
    document.add_heading("Budget", level=2)
    table = document.add_table(rows=3, cols=3)
    for row, cells in zip(
        table.rows, (("Item", "Q1", "Q2"), ("Travel", "10", "12"), ("Total", "", "")), strict=True
    ):
        for cell, value in zip(row.cells, cells, strict=True):
            cell.text = value
    merged = table.cell(2, 1).merge(table.cell(2, 2))
    merged.text = "22"
    document.add_heading("Risks", level=3)
    document.add_paragraph("Weather.").add_run().add_break(WD_BREAK.LINE)
    document.add_heading("Timeline", level=1)
    document.add_paragraph("Q1 then Q2.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def encrypt(pdf: bytes, *, user_password: str, owner_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password, owner_password=owner_password, algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        for name, data in members.items():
            package.writestr(name, data)
    return buffer.getvalue()


def section_texts(document: ParsedDocument) -> list[tuple[list[str], int | None, str]]:
    return [
        (section.heading_path, section.page, document.text[section.start : section.end])
        for section in document.sections
    ]


def assert_sections_well_formed(document: ParsedDocument) -> None:
    """In order, not overlapping, and covering the text except separators between them."""
    assert document.sections, "a parsed document has at least one section"
    position = 0
    for index, section in enumerate(document.sections):
        assert section.start < section.end <= len(document.text)
        expected_start = 0 if index == 0 else position + len(BLOCK_SEPARATOR)
        assert section.start == expected_start
        if index:
            assert document.text[position : section.start] == BLOCK_SEPARATOR
        position = section.end
    assert position == len(document.text)


def parse_error(content: bytes, **kwargs: Any) -> DocumentParseError:
    with pytest.raises(DocumentParseError) as caught:
        parse(content, **kwargs)
    assert SECRET not in caught.value.message
    assert SECRET not in str(caught.value)
    return caught.value


# --- PDF ---------------------------------------------------------------------------


def test_pdf_has_one_section_per_page_with_page_numbers_and_metadata() -> None:
    pages = [f"Page one about {SECRET}.", "Page two has more.", "Page three ends it."]
    document = parse(make_pdf(pages, title="Quarterly Report", author="Ada Lovelace"))

    assert document.format == "pdf"
    assert_sections_well_formed(document)
    assert [(page, text) for _, page, text in section_texts(document)] == [
        (1, pages[0]),
        (2, pages[1]),
        (3, pages[2]),
    ]
    assert all(section.heading_path == [] for section in document.sections)
    assert document.metadata == {
        "page_count": 3,
        "title": "Quarterly Report",
        "author": "Ada Lovelace",
        "created": "2024-05-06T07:08:09+00:00",
    }


def test_pdf_pages_without_text_keep_the_others_numbered() -> None:
    document = parse(make_pdf(["First.", "", "Third."]), filename="scan.pdf")

    assert [page for _, page, _ in section_texts(document)] == [1, 3]
    assert document.metadata["page_count"] == 3


def test_pdf_without_any_text_is_an_empty_document() -> None:
    error = parse_error(make_pdf(["", ""]), filename="blank.pdf")
    assert error.code == "empty_document"
    assert "no extractable text" in error.message


def test_encrypted_pdf_is_refused_but_an_owner_only_password_reads() -> None:
    pdf = make_pdf([f"Confidential {SECRET}."], title="Secret")

    locked = parse_error(encrypt(pdf, user_password="open-sesame", owner_password="o"))
    assert locked.code == "encrypted_pdf"

    # an empty user password means anyone may open it: the text is readable
    readable = parse(encrypt(pdf, user_password="", owner_password="owner"))
    assert readable.text == f"Confidential {SECRET}."


def test_truncated_pdf_is_corrupt() -> None:
    pdf = make_pdf([f"Page {number} {SECRET}." for number in range(1, 4)])
    for cut in (len(pdf) // 4, len(pdf) // 2, len(pdf) - 40):
        error = parse_error(pdf[:cut], filename="broken.pdf")
        assert error.code == "corrupt_pdf", cut


# --- DOCX --------------------------------------------------------------------------


def test_docx_keeps_nested_headings_lists_and_tables() -> None:
    document = parse(make_docx(), filename="plan.docx")

    assert document.format == "docx"
    assert_sections_well_formed(document)
    assert section_texts(document) == [
        (["Plan 2025"], None, "Plan 2025\n\nOpening words."),
        (
            ["Plan 2025", "Goals"],
            None,
            f"Goals\n\nGrow the {SECRET} program.\n\n- Hire two people\n- Ship version two",
        ),
        (
            ["Plan 2025", "Goals", "Budget"],
            None,
            "Budget\n\nItem | Q1 | Q2\nTravel | 10 | 12\nTotal | 22",
        ),
        (["Plan 2025", "Goals", "Budget", "Risks"], None, "Risks\n\nWeather."),
        (["Plan 2025", "Timeline"], None, "Timeline\n\nQ1 then Q2."),
    ]
    assert document.metadata == {
        "title": "Annual Plan",
        "author": "Katherine Johnson",
        "created": "2024-05-06T07:08:09+00:00",
        "modified": "2024-06-07T08:09:10+00:00",
    }


def test_zip_that_is_not_docx_is_unsupported_and_forced_docx_fails() -> None:
    archive = make_zip({"notes.txt": SECRET.encode()})

    assert parse_error(archive).code == "unsupported_format"
    assert parse_error(archive, filename="bundle.zip").code == "unsupported_format"
    forced = parse_error(archive, parser="docx")
    assert forced.code == "parse_failed"
    assert "not a DOCX" in forced.message


def test_damaged_docx_fails_to_parse() -> None:
    damaged = make_zip({"word/document.xml": b"<not xml " + SECRET.encode()})
    error = parse_error(damaged, filename="damaged.docx")
    assert error.code == "parse_failed"


# --- Markdown ----------------------------------------------------------------------


def test_markdown_sections_follow_nested_headings_and_text_stays_readable() -> None:
    document = parse(MARKDOWN.encode(), filename="guide.md")

    assert document.format == "markdown"
    assert_sections_well_formed(document)
    assert section_texts(document) == [
        (["Guide"], None, "Guide\n\nIntro with bold, code and a link."),
        (
            ["Guide", "Install"],
            None,
            "Install\n\n1. First step\n2. Second step\n  - nested a\n  - nested b"
            "\n\ndef answer():\n    return 42",
        ),
        (
            ["Guide", "Install", "On Linux"],
            None,
            f"On Linux\n\nOS | Command\nDebian | apt install {SECRET}",
        ),
        (["Guide", "Use"], None, "Use\n\nRun it.\n\ninline html"),
    ]
    assert "stolen" not in document.text
    assert document.metadata == {
        "title": "The Install Guide",
        "author": "Grace Hopper",
        "created": "2024-03-04",
    }


def test_markdown_without_front_matter_takes_its_first_heading_as_title() -> None:
    document = parse(b"Preface.\n\n# Real Title\n\nBody.\n", content_type="text/markdown")

    assert document.metadata == {"title": "Real Title"}
    assert section_texts(document) == [
        ([], None, "Preface."),
        (["Real Title"], None, "Real Title\n\nBody."),
    ]


def test_markdown_headings_with_the_same_text_stay_separate_sections() -> None:
    document = parse(b"# A\n\n## Notes\n\none\n\n## Notes\n\ntwo\n", filename="x.md")

    assert [path for path, _, _ in section_texts(document)] == [
        ["A"],
        ["A", "Notes"],
        ["A", "Notes"],
    ]


# --- HTML --------------------------------------------------------------------------


def test_html_main_text_has_headings_as_sections_and_no_page_furniture() -> None:
    document = parse(HTML.encode(), filename="notes.html")

    assert document.format == "html"
    assert_sections_well_formed(document)
    for hidden in NEVER_IN_HTML_TEXT:
        assert hidden not in document.text, hidden
    assert section_texts(document) == [
        (["Field Notes"], None, f"Field Notes\n\nHello world,\nsecond line about {SECRET}."),
        (["Field Notes", "Birds"], None, "Birds\n\n- Robin\n- Crow\n  - Raven"),
        (
            ["Field Notes", "Birds", "Nesting"],
            None,
            "Nesting\n\nBird | Eggs\nRobin | 4\n\n  keep\n    this spacing",
        ),
        (["Field Notes", "Trees"], None, "Trees\n\nOak and ash."),
    ]
    assert document.metadata == {
        "title": "Field Notes",
        "author": "Rosalind Franklin",
        "description": "Notes from the field",
        "language": "en",
        "created": "2024-01-02T03:04:05+00:00",
        "modified": "2024-02-03T04:05:06+01:00",
    }


def test_html_article_header_keeps_its_title() -> None:
    page = b"<html><body><header>MENU</header><article><header><h1>Story</h1></header>"
    page += b"<p>Once.</p></article></body></html>"
    document = parse(page)

    assert section_texts(document) == [(["Story"], None, "Story\n\nOnce.")]


def test_deeply_nested_html_parses_without_recursion() -> None:
    depth = 5000
    page = "<html><body>" + "<div>" * depth + "deep text" + "</div>" * depth + "</body></html>"
    assert parse(page.encode(), filename="deep.html").text == "deep text"


# --- JSON --------------------------------------------------------------------------


def test_json_is_pretty_printed_with_top_level_scalars_as_metadata() -> None:
    value = {
        "title": "Config",
        "version": 3,
        "ratio": 0.5,
        "enabled": True,
        "missing": None,
        "body": "x" * 600,
        "tags": ["a", SECRET],
        "nested": {"deep": 1},
    }
    document = parse(json.dumps(value, separators=(",", ":")).encode(), filename="c.json")

    assert document.format == "json"
    assert document.text == json.dumps(value, indent=2)
    assert document.metadata == {"title": "Config", "version": 3, "ratio": 0.5, "enabled": True}
    assert_sections_well_formed(document)


def test_json_errors() -> None:
    assert parse_error(b'{"a": ' + SECRET.encode(), filename="x.json").code == "parse_failed"
    assert parse_error(b"{}", filename="x.json").code == "empty_document"
    assert parse_error(b"[ ]", parser="json").code == "empty_document"


def test_json_that_does_not_parse_is_sniffed_as_text() -> None:
    document = parse(b"{not json, " + SECRET.encode() + b"}")
    assert document.format == "text"


# --- text and encodings ------------------------------------------------------------


def test_text_drops_a_byte_order_mark_and_normalises_line_ends() -> None:
    document = parse(b"\xef\xbb\xbfFirst line\r\nsecond line\r\n\r\nNext paragraph.\r\n")

    assert document.format == "text"
    assert document.text == "First line\nsecond line\n\nNext paragraph."
    assert section_texts(document) == [([], None, document.text)]
    assert document.metadata == {}


def test_invalid_utf8_is_refused_without_quoting_the_content() -> None:
    content = f"caf\xe9 {SECRET}".encode("latin-1")
    for kwargs in ({}, {"filename": "notes.md"}, {"parser": "html"}, {"parser": "text"}):
        error = parse_error(content, **kwargs)
        assert error.code == "invalid_utf8"
        assert "offset 3" in error.message


def test_a_charset_in_the_content_type_is_honoured() -> None:
    content = f"caf\xe9 {SECRET}".encode("latin-1")
    document = parse(content, content_type="text/plain; charset=ISO-8859-1")
    assert document.text == f"caf\xe9 {SECRET}"


@pytest.mark.parametrize("content", [b"", b"   \n\t\r\n", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("parser", ["auto", "text", "markdown", "html", "json", "pdf", "docx"])
def test_an_empty_file_is_an_empty_document(content: bytes, parser: ParserName) -> None:
    assert parse_error(content, filename="empty.txt", parser=parser).code == "empty_document"


def test_markup_without_text_is_an_empty_document() -> None:
    scripts_only = b"<html><body><script>x()</script></body></html>"
    assert parse_error(scripts_only).code == "empty_document"
    assert parse_error(b"# \n\n---\n", filename="blank.md").code == "empty_document"


# --- choosing the parser -----------------------------------------------------------


def _format(content: bytes, **kwargs: Any) -> str:
    return parse(content, **kwargs).format


def test_auto_detection_by_content_type_then_extension_then_sniffing() -> None:
    markdown = b"# Title\n\nBody text.\n"
    html = b"<html><body><h1>Title</h1><p>Body</p></body></html>"
    pdf = make_pdf(["Body text."])
    word = make_docx()

    # the content type decides first, even against the extension
    assert _format(markdown, content_type="text/markdown") == "markdown"
    assert _format(html, filename="page.txt", content_type="text/html; charset=utf-8") == "html"
    assert _format(pdf, content_type="application/pdf") == "pdf"
    # a generic content type defers to the extension
    assert _format(markdown, filename="a.md", content_type="application/octet-stream") == (
        "markdown"
    )
    assert _format(markdown, filename="A.MARKDOWN", content_type="text/plain") == "markdown"
    assert _format(html, filename="page.htm") == "html"
    assert _format(markdown, filename="notes.txt") == "text"
    # no hint at all: the bytes decide
    assert _format(pdf) == "pdf"
    assert _format(word, content_type="application/octet-stream") == "docx"
    assert _format(b"  <!DOCTYPE html><p>x</p>") == "html"
    assert _format(b'[{"a": 1}]', filename="data") == "json"
    assert _format(b'"just a string"') == "text"
    assert _format(markdown) == "text"  # Markdown is never guessed from content


def test_unsupported_formats_are_named_as_such() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    assert parse_error(png).code == "unsupported_format"
    assert parse_error(b"pixels", content_type="image/jpeg").code == "unsupported_format"
    assert parse_error(b"old word", filename="letter.doc").code == "unsupported_format"
    assert parse_error(b"bin\x00ary " + SECRET.encode()).code == "unsupported_format"


def test_a_forced_parser_must_fit_the_content() -> None:
    text = f"Plain words about {SECRET}.".encode()

    for parser in ("pdf", "docx", "json"):
        error = parse_error(text, parser=parser)
        assert error.code == "parse_failed", parser
    assert "not a PDF" in parse_error(text, parser="pdf").message
    # a forced parser overrides every hint
    assert _format(b"# Heading\n\ntext", filename="x.html", parser="markdown") == "markdown"
    assert parse(b"# Heading", parser="text").text == "# Heading"


def test_every_format_yields_well_formed_sections() -> None:
    samples: list[tuple[bytes, dict[str, Any]]] = [
        (make_pdf(["a", "b"]), {}),
        (make_docx(), {}),
        (MARKDOWN.encode(), {"filename": "g.md"}),
        (HTML.encode(), {}),
        (b'{"k": "v"}', {}),
        (b"one\n\ntwo", {}),
    ]
    for content, kwargs in samples:
        assert_sections_well_formed(parse(content, **kwargs))


def test_nul_characters_never_reach_the_text() -> None:
    # PostgreSQL text columns refuse NUL; a forced text parse drops them
    assert parse(b"text with a NUL\x00 inside", parser="text").text == "text with a NUL inside"
