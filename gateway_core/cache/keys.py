"""Cache keys: a hash of exactly the parts of a request that change its answer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from gateway_core.domain.chat import ResolvedModel

# Body fields that never change the answer: who asks, how it is delivered, bookkeeping.
IGNORED_FIELDS = frozenset({"user", "stream", "stream_options", "cache", "metadata", "store"})
KEY_SCHEMA = 1


def request_key(
    *,
    tenant: str,
    chain_id: str | None,
    chain_version: int | None,
    models: Sequence[ResolvedModel],
    body: dict[str, Any],
) -> str:
    """The exact-match key: tenant, route with configuration versions, answer-shaping body."""
    return _digest(_canonical(tenant, chain_id, chain_version, models, answer_fields(body)))


def semantic_scope(
    *,
    tenant: str,
    chain_id: str | None,
    chain_version: int | None,
    models: Sequence[ResolvedModel],
    body: dict[str, Any],
    embedder: str,
) -> str:
    """What must match exactly for a semantic hit: everything but the last user message."""
    fields = answer_fields(body)
    messages = [dict(message) for message in fields.get("messages") or []]
    index = _last_user_index(messages)
    if index is not None:
        messages[index]["content"] = None
    fields["messages"] = messages
    document = _canonical(tenant, chain_id, chain_version, models, fields)
    document["embedder"] = embedder
    return _digest(document)


def last_user_text(messages: Sequence[dict[str, Any]]) -> str | None:
    """The text of the last user message (text parts joined), or None."""
    index = _last_user_index(messages)
    if index is None:
        return None
    content = messages[index].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [str(p.get("text", "")) for p in content if isinstance(p, dict)]
        return " ".join(texts)
    return None


def answer_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name not in IGNORED_FIELDS}


def _last_user_index(messages: Sequence[dict[str, Any]]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return index
    return None


def _canonical(
    tenant: str,
    chain_id: str | None,
    chain_version: int | None,
    models: Sequence[ResolvedModel],
    fields: dict[str, Any],
) -> dict[str, Any]:
    return {
        "schema": KEY_SCHEMA,
        "tenant": tenant,
        "chain": [chain_id, chain_version],
        # The whole resolved configuration, not only its version: a model deleted and
        # created again can repeat a version number with another definition.
        "models": [model.model_dump(mode="json") for model in models],
        "body": fields,
    }


def _digest(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
