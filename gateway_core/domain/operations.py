"""Async operations: the document GET /v1/operations/{id} answers and callbacks carry.

An operation is a Temporal run: its id is the workflow id, its status the run's status.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway_core.domain.chat import ChatResult

OperationStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
OperationType = Literal["chat.completion"]
OPERATION_PREFIX = "op-"
# Search attributes every async run carries (registered by the gateway at start-up).
OWNER_ATTRIBUTE = "PmpOwner"
TYPE_ATTRIBUTE = "PmpOperationType"


class OperationDoc(BaseModel):
    """One operation as callers see it; `result` has the shape the sync call returns."""

    operation_id: str
    object: Literal["operation"] = "operation"
    type: str
    status: OperationStatus
    created_at: int
    updated_at: int
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    callback: dict[str, Any] | None = None
    # While an ingestion runs: documents_done, documents_total, chunks_stored (its query).
    progress: dict[str, Any] | None = None


class CallbackInput(BaseModel):
    """What the callback workflow delivers, and where."""

    url: str
    document: OperationDoc


class CallbackOutcome(BaseModel):
    """How a callback delivery ended (shown on the operation)."""

    delivered: bool
    status_code: int | None = None
    attempts: int = 1
    error: str | None = None
    delivered_at: datetime | None = None


def callback_run_id(operation_id: str) -> str:
    return f"{operation_id}-callback"


def response_with_metadata(result: ChatResult, run_id: str) -> dict[str, Any]:
    """A chat answer with the run's facts in `metadata` (string values, as OpenAI's)."""
    metadata = dict(result.response.get("metadata") or {})
    metadata.update(
        {
            "pmp_run_id": run_id,
            "pmp_served_by": result.served_by,
            "pmp_attempts": str(result.attempts),
            "pmp_fallbacks": str(result.fallbacks),
        }
    )
    if result.chain_id:
        metadata["pmp_chain"] = result.chain_id
    return {**result.response, "metadata": metadata}


def new_operation_id() -> str:
    """`op-<uuid7>`: time-ordered, so an id alone tells roughly when it was made."""
    return OPERATION_PREFIX + str(_uuid7())


def idempotent_id(prefix: str, owner: str, idempotency_key: str) -> str:
    """The same (owner, Idempotency-Key) always names the same run."""
    name = f"{owner}\x00{idempotency_key}"
    return prefix + str(uuid.uuid5(uuid.NAMESPACE_URL, f"pmp-gateway:{name}"))


def parse_operation_id(operation_id: str) -> uuid.UUID | None:
    """The UUID of a well-formed operation id, else None."""
    if not operation_id.startswith(OPERATION_PREFIX):
        return None
    try:
        return uuid.UUID(operation_id[len(OPERATION_PREFIX) :])
    except ValueError:
        return None


def created_at_of(parsed: uuid.UUID) -> float | None:
    """Creation time (Unix seconds) embedded in a version-7 UUID."""
    if parsed.version != 7:
        return None
    return (parsed.int >> 80) / 1000


def _uuid7() -> uuid.UUID:
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


class AsyncOptions(BaseModel):
    """What `?async=true` requests may add: a callback URL (http or https only)."""

    callback_url: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=2000)
