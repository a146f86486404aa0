"""What a service answers, before any HTTP: a JSON document or an event stream.

Routers turn these into responses (gateway_api.responses); services never build one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class JsonAnswer:
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass(frozen=True)
class EventStreamAnswer:
    """SSE frames: produced as the run streams, or all at once (a cache replay)."""

    frames: AsyncIterator[bytes] | bytes
    headers: dict[str, str] = field(default_factory=dict)


Answer = JsonAnswer | EventStreamAnswer


def sse_data(document: dict[str, Any]) -> bytes:
    """One SSE `data:` frame holding a compact JSON document."""
    return f"data: {json.dumps(document, separators=(',', ':'))}\n\n".encode()


SSE_DONE = b"data: [DONE]\n\n"


def run_headers(run_id: str, served_by: str, attempts: int, fallbacks: int) -> dict[str, str]:
    """Which model served the run and what it took, as response headers."""
    return {
        "x-pmp-run-id": run_id,
        "x-pmp-served-by": served_by,
        "x-pmp-attempts": str(attempts),
        "x-pmp-fallbacks": str(fallbacks),
    }


def cursor_page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A list ordered by id: pass `last_id` as `after` for the next page while `has_more`."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
