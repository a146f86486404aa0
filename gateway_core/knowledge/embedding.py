"""What the knowledge-base service needs from embeddings: vectors for texts, by model id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class EmbeddingBatch:
    """One vector per input text, in input order, and the tokens the upstream counted."""

    vectors: list[list[float]]
    prompt_tokens: int
    served_by: str


class TextEmbedder(Protocol):
    """Embeds texts with a stored embedding model (or chain of them).

    The `local` provider runs in-process; others run as a durable embedding run.
    """

    async def embed_texts(self, model_id: str, texts: Sequence[str]) -> EmbeddingBatch: ...
