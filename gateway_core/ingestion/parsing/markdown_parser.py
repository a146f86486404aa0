"""Markdown (CommonMark with tables, via markdown-it-py): one section per heading.

The text is the document rendered back to plain, readable text: headings and paragraphs
without markup, lists with their markers and nesting, code as written, tables as rows
of cells joined by " | ". Links keep their text, images their alt text.
"""

from __future__ import annotations

from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from gateway_core.ingestion.model import ParsedDocument
from gateway_core.ingestion.parsing.html_parser import fragment_text
from gateway_core.ingestion.parsing.layout import (
    DocumentBuilder,
    HeadingTrail,
    iso_datetime,
    text_metadata,
)

_MARKDOWN = MarkdownIt("commonmark").enable("table")
_FRONT_MATTER_FENCE = "---"
_MAX_FRONT_MATTER_CHARS = 64 * 1024  # a larger block is not front matter worth reading
_LISTS = ("bullet_list", "ordered_list")


def parse_markdown(text: str) -> ParsedDocument:
    front_matter, body = split_front_matter(text)
    builder = DocumentBuilder()
    trail = HeadingTrail()
    first_title: str | None = None
    for node in SyntaxTreeNode(_MARKDOWN.parse(body)).children:
        if node.type == "heading":
            title = _inline_text(node)
            if not title:
                continue
            level = int(node.tag[1:])
            if level == 1 and first_title is None:
                first_title = title
            builder.add(title, heading_path=trail.enter(level, title), opens_section=True)
        else:
            builder.add(_block_text(node), heading_path=trail.path)
    return builder.build(format="markdown", metadata=_metadata(front_matter, first_title))


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """A leading `---` YAML block as a mapping, and the text after it."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != _FRONT_MATTER_FENCE:
        return {}, text
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() in (_FRONT_MATTER_FENCE, "..."):
            block = "\n".join(lines[1:index])
            return _yaml_mapping(block), "\n".join(lines[index + 1 :])
    return {}, text  # never closed: a thematic break, not front matter


def _yaml_mapping(block: str) -> dict[str, Any]:
    if len(block) > _MAX_FRONT_MATTER_CHARS:
        return {}
    try:
        loaded = yaml.safe_load(block)
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _metadata(front_matter: dict[str, Any], first_title: str | None) -> dict[str, Any]:
    """Front matter's title and author win; the first top-level heading is the fallback."""
    metadata = text_metadata(title=first_title)
    metadata.update(
        text_metadata(title=front_matter.get("title"), author=front_matter.get("author"))
    )
    for key, names in (("created", ("created", "date")), ("modified", ("modified", "updated"))):
        for name in names:
            value = iso_datetime(front_matter.get(name))
            if value is not None:
                metadata[key] = value
                break
    return metadata


def _block_text(node: SyntaxTreeNode) -> str:
    if node.type in ("paragraph", "heading"):
        return _inline_text(node)
    if node.type in ("fence", "code_block"):
        return node.content.rstrip("\n")
    if node.type in _LISTS:
        return "\n".join(_list_lines(node, depth=0))
    if node.type == "table":
        return "\n".join(_table_rows(node))
    if node.type == "blockquote":
        inner = "\n\n".join(_block_text(child) for child in node.children)
        return "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))
    if node.type == "html_block":
        return fragment_text(node.content)
    return "\n".join(_block_text(child) for child in node.children)


def _inline_text(node: SyntaxTreeNode) -> str:
    parts: list[str] = []
    for child in node.children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type != "html_inline":
            parts.append(_inline_text(child))
    return "".join(parts).strip()


def _list_lines(node: SyntaxTreeNode, *, depth: int) -> list[str]:
    ordered = node.type == "ordered_list"
    number = int(node.attrs.get("start", 1)) if ordered else 1
    lines: list[str] = []
    for item in node.children:
        marker = f"{'  ' * depth}{number}." if ordered else f"{'  ' * depth}-"
        number += 1
        lines.extend(_item_lines(item, marker=marker, depth=depth))
    return lines


def _item_lines(item: SyntaxTreeNode, *, marker: str, depth: int) -> list[str]:
    """The item's first line after its marker, later lines indented under it."""
    continuation = " " * (len(marker) + 1)
    lines: list[str] = []
    for block in item.children:
        if block.type in _LISTS:
            if not lines:  # an item that opens with a sublist still shows its marker
                lines.append(marker)
            lines.extend(_list_lines(block, depth=depth + 1))
            continue
        for line in _block_text(block).split("\n"):
            lines.append(f"{marker} {line}" if not lines else f"{continuation}{line}")
    return lines or [marker]


def _table_rows(node: SyntaxTreeNode) -> list[str]:
    return [
        " | ".join(_inline_text(cell) for cell in row.children)
        for part in node.children
        for row in part.children
    ]
