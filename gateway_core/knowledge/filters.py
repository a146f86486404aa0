"""The metadata filter language (placeholder: being written; see the knowledge-base issue)."""

from __future__ import annotations

from typing import Any

Filter = Any
