"""The base of every versioned entity's PUT body: it may be the document a GET returned."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field, model_validator


class ReadBackUpdate(BaseModel):
    """Accepts what GET answered, so that read, edit, PUT works as operators expect.

    Fields the gateway derives or keeps (version, timestamps, ...) are dropped before
    validation; `id`, when present, must name the entity being updated (the repository
    checks it against the path) and is never stored.
    """

    READ_ONLY_FIELDS: ClassVar[frozenset[str]] = frozenset({"version", "created_at", "updated_at"})

    id: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key not in cls.READ_ONLY_FIELDS}
        return data
