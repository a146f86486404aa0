"""HTML (selectolax/lexbor): the main text without scripts, styles and navigation.

The main text is `<main>`, else the first `<article>`, else `<body>`. Headings h1-h6 open
sections with their heading path; lists become "- item" lines, tables rows of cells
joined by " | ", `<pre>` keeps its spacing, other whitespace collapses as a browser would.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from gateway_core.ingestion.model import ParsedDocument
from gateway_core.ingestion.parsing.layout import (
    DocumentBuilder,
    HeadingTrail,
    iso_datetime,
    text_metadata,
)

# Never content: code, styling, navigation and page furniture (and their ARIA roles).
_NEVER_CONTENT = (
    "script, style, noscript, template, nav, aside, form, iframe, svg, object, "
    "[role=navigation], [role=complementary], [role=search], [hidden]"
)
# Page-level header and footer go; an article's own <header> usually holds its title.
_PAGE_FURNITURE = ("header", "footer", "[role=banner]", "[role=contentinfo]")
_HEADING_LEVELS = {f"h{level}": level for level in range(1, 7)}
_LISTS = frozenset({"ul", "ol", "menu"})
_BLOCKS = frozenset(
    "address article blockquote caption dd details dialog div dl dt fieldset figcaption "  # noqa: SIM905 - words read best as words
    "figure hr li main p section summary body html".split()
)
_WHITESPACE = re.compile(r"\s+")
# Where each metadata key is found, in order of preference (meta name or property).
_META_SOURCES: dict[str, tuple[str, ...]] = {
    "title": ("og:title", "twitter:title", "dc.title"),
    "author": ("author", "article:author", "dc.creator", "dcterms.creator"),
    "created": ("article:published_time", "dcterms.created", "dc.date", "date", "pubdate"),
    "modified": ("article:modified_time", "og:updated_time", "dcterms.modified", "last-modified"),
    "description": ("description", "og:description", "dc.description"),
}


def parse_html(text: str) -> ParsedDocument:
    tree = LexborHTMLParser(text)
    metadata = _metadata(tree)
    _remove_non_content(tree)
    root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    builder = DocumentBuilder()
    if root is not None:
        _BlockWalker(builder).walk(root)
    return builder.build(format="html", metadata=metadata)


def fragment_text(html: str) -> str:
    """The readable text of an HTML fragment (an HTML block inside Markdown)."""
    tree = LexborHTMLParser(html)
    _remove_non_content(tree)
    body = tree.body
    return collapse_whitespace(body.text(separator=" ")) if body is not None else ""


def collapse_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _remove_non_content(tree: LexborHTMLParser) -> None:
    for node in tree.css(_NEVER_CONTENT):
        node.decompose()
    for node in tree.css(", ".join(_PAGE_FURNITURE)):
        if not _inside_article(node):
            node.decompose()


def _inside_article(node: LexborNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in ("article", "main"):
            return True
        parent = parent.parent
    return False


def _metadata(tree: LexborHTMLParser) -> dict[str, Any]:
    meta: dict[str, str] = {}
    for node in tree.css("meta[content]"):
        attributes = node.attributes
        key = attributes.get("name") or attributes.get("property") or attributes.get("itemprop")
        content = attributes.get("content")
        if key and content and key.strip().lower() not in meta:
            meta[key.strip().lower()] = content
    title_node = tree.css_first("head title") or tree.css_first("title")
    found: dict[str, str | None] = {
        key: next((meta[name] for name in names if name in meta), None)
        for key, names in _META_SOURCES.items()
    }
    if title_node is not None and title_node.text().strip():
        found["title"] = collapse_whitespace(title_node.text())
    html_node = tree.css_first("html")
    language = html_node.attributes.get("lang") if html_node is not None else None
    metadata = text_metadata(
        title=found["title"], author=found["author"], description=found["description"]
    )
    metadata.update(text_metadata(language=language))
    for key in ("created", "modified"):
        value = _html_date(found[key])
        if value is not None:
            metadata[key] = value
    return metadata


def _html_date(value: str | None) -> str | None:
    """ISO-8601 as most pages write it, or an HTTP date (`last-modified`)."""
    if not value:
        return None
    iso = iso_datetime(value)
    if iso is not None:
        return iso
    try:
        return parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError):
        return None


class _BlockWalker:
    """Walks the tree without recursion (deeply nested pages must not overflow the stack).

    Inline text gathers until a block boundary; the items of a list gather into one
    block of lines, indented by nesting.
    """

    def __init__(self, builder: DocumentBuilder) -> None:
        self._builder = builder
        self._trail = HeadingTrail()
        self._inline: list[str] = []
        self._list_depth = 0
        self._list_lines: list[str] = []
        self._item_marker = ""

    def walk(self, root: LexborNode) -> None:
        stack: list[tuple[LexborNode, bool]] = [(root, True)]
        while stack:
            node, entering = stack.pop()
            if entering:
                self._enter(node, stack)
            else:
                self._leave(node)
        self._flush_inline()
        self._flush_list()

    def _enter(self, node: LexborNode, stack: list[tuple[LexborNode, bool]]) -> None:
        tag = node.tag or ""
        if tag == "-text":
            self._inline.append(_WHITESPACE.sub(" ", node.text_content or ""))
        elif tag == "br":
            self._inline.append("\n")
        elif tag in _HEADING_LEVELS:
            self._add_heading(_HEADING_LEVELS[tag], collapse_whitespace(node.text(separator=" ")))
        elif tag == "pre":
            self._add_block(node.text(deep=True))
        elif tag == "table":
            self._add_block("\n".join(_table_rows(node)))
        elif not tag.startswith("-"):  # comments and doctypes have no text
            if tag in _LISTS or tag in _BLOCKS:
                self._start(tag)
                stack.append((node, False))
            stack.extend((child, True) for child in reversed(list(node.iter(include_text=True))))

    def _start(self, tag: str) -> None:
        self._flush_inline()
        if tag in _LISTS:
            self._list_depth += 1
        elif tag == "li":
            self._item_marker = "  " * max(self._list_depth - 1, 0) + "- "

    def _leave(self, node: LexborNode) -> None:
        self._flush_inline()
        if node.tag in _LISTS:
            self._list_depth -= 1
            if self._list_depth == 0:
                self._flush_list()

    def _flush_inline(self) -> None:
        joined = "".join(self._inline)
        self._inline.clear()
        text = "\n".join(line.strip() for line in joined.split("\n")).strip()
        if not text:
            return
        if self._list_depth > 0:
            self._list_lines.append(self._item_marker + text)
            self._item_marker = "  " * max(self._list_depth - 1, 0) + "  "
        else:
            self._builder.add(text, heading_path=self._trail.path)

    def _flush_list(self) -> None:
        if self._list_lines:
            self._builder.add("\n".join(self._list_lines), heading_path=self._trail.path)
            self._list_lines.clear()

    def _add_block(self, text: str) -> None:
        """A block of its own (a table, preformatted text) in document order."""
        self._flush_inline()
        if self._list_depth > 0:
            self._list_lines.append(text.strip())
            return
        self._builder.add(text, heading_path=self._trail.path)

    def _add_heading(self, level: int, title: str) -> None:
        self._flush_inline()
        self._flush_list()
        if title:
            path = self._trail.enter(level, title)
            self._builder.add(title, heading_path=path, opens_section=True)


def _table_rows(table: LexborNode) -> list[str]:
    rows = []
    for row in table.css("tr"):
        cells = [
            collapse_whitespace(cell.text(separator=" "))
            for cell in row.iter()
            if cell.tag in ("td", "th")
        ]
        if any(cells):
            rows.append(" | ".join(cells))
    return rows
