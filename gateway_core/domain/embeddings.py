"""Embedding inputs and results as they travel through workflows and activities.

Vectors cross Temporal packed (little-endian float32, base64): about 5.3 bytes per value
instead of ~20 as JSON numbers, so a run's result stays under Temporal's 2 MB payload
limit for `run_capacity(dimensions)` inputs.
"""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from gateway_core.domain.chat import ChainStep, ResolvedModel

# OpenAI's own limit on inputs per request.
MAX_INPUTS = 2048
# Text (UTF-8) or token ids (4 bytes each) in one run's input: half the payload limit.
MAX_INPUT_BYTES = 1_000_000
# Floats in one run's result: 300,000 packed values are ~1.6 MB of base64.
MAX_RUN_VALUES = 300_000
# Providers whose embeddings API takes token ids as well as text.
TOKEN_INPUT_PROVIDERS = ("openai", "azure_openai")

# One input: a text, or (OpenAI) the token ids of one.
EmbeddingInput = str | list[int]


def run_capacity(dimensions: int) -> int:
    """How many vectors of `dimensions` one run may return."""
    return max(1, min(MAX_INPUTS, MAX_RUN_VALUES // max(1, dimensions)))


def input_bytes(inputs: Sequence[EmbeddingInput]) -> int:
    """The size an input list takes in a run's payload (roughly, before JSON quoting)."""
    return sum(len(item.encode()) if isinstance(item, str) else 4 * len(item) for item in inputs)


class PackedVectors(BaseModel):
    """`count` vectors of `dimensions` floats, row after row, as base64 float32 (LE)."""

    model_config = ConfigDict(frozen=True)

    count: int
    dimensions: int
    data: str

    @classmethod
    def pack(cls, vectors: Sequence[Sequence[float]]) -> PackedVectors:
        """Pack equally long vectors; a ValueError when their lengths differ."""
        dimensions = len(vectors[0]) if vectors else 0
        values = array.array("f")
        for vector in vectors:
            if len(vector) != dimensions:
                raise ValueError("vectors of different lengths")
            values.extend(vector)
        if sys.byteorder == "big":
            values.byteswap()
        encoded = base64.b64encode(values.tobytes()).decode()
        return cls(count=len(vectors), dimensions=dimensions, data=encoded)

    def rows(self) -> list[list[float]]:
        """The vectors as lists of Python floats."""
        values = self._values()
        width = self.dimensions
        return [values[i * width : (i + 1) * width].tolist() for i in range(self.count)]

    def base64_rows(self) -> list[str]:
        """Each vector as OpenAI's `encoding_format: base64` writes it (float32 LE)."""
        raw = base64.b64decode(self.data)
        width = 4 * self.dimensions
        return [
            base64.b64encode(raw[i * width : (i + 1) * width]).decode() for i in range(self.count)
        ]

    def _values(self) -> array.array[float]:
        values = array.array("f")
        values.frombytes(base64.b64decode(self.data))
        if sys.byteorder == "big":
            values.byteswap()
        return values


class EmbeddingWorkflowInput(BaseModel):
    """Everything EmbeddingWorkflow needs: the chain of embedding models and the inputs."""

    steps: list[ChainStep]
    inputs: list[EmbeddingInput]
    # The vector size the caller asked for; None: each model's own `dimensions`.
    dimensions: int | None = None
    # Other request fields passed to the provider as they came (`user`, `input_type`).
    extra: dict[str, Any] = {}
    request_id: str | None = None
    chain_id: str | None = None
    chain_version: int | None = None


class EmbedCallInput(BaseModel):
    """Input of one embedding activity: one model, one attempt."""

    model: ResolvedModel
    inputs: list[EmbeddingInput]
    dimensions: int | None = None
    extra: dict[str, Any] = {}
    attempt_timeout_ms: int | None = None
    request_id: str | None = None
    chain_id: str | None = None
    step_index: int = 0

    @property
    def expected_dimensions(self) -> int | None:
        """The vector length the answer must have."""
        return self.dimensions or self.model.dimensions


class EmbedCallResult(BaseModel):
    """What one embedding activity returns: the vectors and the tokens counted."""

    vectors: PackedVectors
    prompt_tokens: int = 0
    attempt: int = 1


class EmbeddingResult(BaseModel):
    """What an embedding run returns: the vectors plus who served them."""

    vectors: PackedVectors
    prompt_tokens: int = 0
    served_by: str
    steps_tried: int = 1
    attempts: int = 1
    fallbacks: int = 0
    chain_id: str | None = None
