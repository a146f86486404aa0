"""JSON: the whole document pretty-printed, its top-level scalar fields as metadata."""

from __future__ import annotations

import json
import math
from typing import Any

from gateway_core.ingestion.model import DocumentParseError, ParsedDocument
from gateway_core.ingestion.parsing.layout import DocumentBuilder

# Metadata rides on every chunk: long strings (a body field) and very many fields would
# bloat each stored chunk, so only short scalars are offered, and only so many of them.
MAX_METADATA_FIELDS = 50
MAX_METADATA_STRING_CHARS = 500


def loads_json(text: str) -> Any:
    """The parsed value; `parse_failed` when the text is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        where = (
            f" (line {error.lineno}, column {error.colno})"
            if isinstance(error, json.JSONDecodeError)
            else ""
        )
        raise DocumentParseError(
            f"the document is not valid JSON{where}", code="parse_failed"
        ) from None


def parse_json(text: str) -> ParsedDocument:
    value = loads_json(text)
    if value in ({}, [], "", None):
        raise DocumentParseError("the JSON document has no content", code="empty_document")
    builder = DocumentBuilder()
    builder.add(json.dumps(value, indent=2, ensure_ascii=False))
    return builder.build(format="json", metadata=top_level_scalars(value))


def top_level_scalars(value: Any) -> dict[str, Any]:
    """An object's short string, number and boolean fields, in document order."""
    if not isinstance(value, dict):
        return {}
    scalars: dict[str, Any] = {}
    for key, field in value.items():
        if len(scalars) == MAX_METADATA_FIELDS:
            break
        if "\x00" not in key and _is_short_scalar(field):
            scalars[key] = field
    return scalars


def _is_short_scalar(field: Any) -> bool:
    if isinstance(field, float):
        return math.isfinite(field)  # NaN and Infinity are not JSON a database accepts
    if isinstance(field, str):
        # PostgreSQL's jsonb refuses NUL characters
        return 0 < len(field) <= MAX_METADATA_STRING_CHARS and "\x00" not in field
    return isinstance(field, bool | int)
