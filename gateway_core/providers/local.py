"""Provider `local`: embedding models shipped inside a wheel, run in this process.

`wordllama` is a table of token vectors (32,000 x 256, float32) and a tokenizer: a text's
vector is the mean of its tokens' rows, L2-normalised. Its Matryoshka training makes the
first 64 or 128 values a usable shorter vector, so smaller sizes are a truncation (before
normalising). The weights load once per process, lazily, on a thread; embedding runs on
a thread too, so the event loop never computes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway_core.domain.chat import ResolvedModel
from gateway_core.domain.models import LOCAL_EMBEDDING_MODELS
from gateway_core.errors import ConfigurationError, InvalidRequestError
from gateway_core.providers.base import text_inputs, unsupported

NAME = "local"
# Token rows gathered at once: bounds memory whatever the texts' lengths (~64 MB at 256).
WINDOW_TOKENS = 65_536


@dataclass(frozen=True)
class EmbeddedTexts:
    """Unit vectors, one row per text, and how many tokens the texts had."""

    vectors: npt.NDArray[np.float32]
    tokens: int


class _WordLlama:
    """The token table and tokenizer of wordllama, without its padding batches."""

    def __init__(self) -> None:
        import wordllama  # type: ignore[import-untyped]  # 19 MB: imported on first use
        from tokenizers import Tokenizer
        from wordllama import WordLlama

        # The wheel ships `tokenizers/`, its loader looks in `tokenizer/`: pointing
        # cache_dir at the package itself (downloads off) finds both files offline.
        loaded = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
        self.table: npt.NDArray[np.float32] = np.ascontiguousarray(loaded.embedding)
        # Our own copy: wordllama shares its tokenizer between instances and turns
        # padding on, which would count pad tokens as text. We pool by text ourselves.
        self.tokenizer = Tokenizer.from_str(loaded.tokenizer.to_str())
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    def embed(self, texts: Sequence[str], dimensions: int) -> EmbeddedTexts:
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        lengths = np.array([len(encoding.ids) for encoding in encodings], dtype=np.int64)
        ids = np.concatenate(
            [np.asarray(encoding.ids, dtype=np.int64) for encoding in encodings]
            + [np.empty(0, dtype=np.int64)]
        )
        np.clip(ids, 0, self.table.shape[0] - 1, out=ids)
        owners = np.repeat(np.arange(len(texts)), lengths)
        sums = np.zeros((len(texts), dimensions), dtype=np.float32)
        # The mean and the sum of a text's rows have the same direction: sum, normalise.
        for start in range(0, len(ids), WINDOW_TOKENS):
            window_owners = owners[start : start + WINDOW_TOKENS]
            rows = self.table[ids[start : start + WINDOW_TOKENS], :dimensions]
            starts = np.flatnonzero(np.diff(window_owners, prepend=-1))
            sums[window_owners[starts]] += np.add.reduceat(rows, starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        np.divide(sums, norms, out=sums, where=norms > 0)
        return EmbeddedTexts(sums, int(lengths.sum()))


_LOADERS = {"wordllama": _WordLlama}
_loaded: dict[str, _WordLlama] = {}
_load_lock = threading.Lock()


def _model(name: str) -> _WordLlama:
    """The named model, loaded on first use (once per process, whichever thread asks)."""
    with _load_lock:
        model = _loaded.get(name)
        if model is None:
            loader = _LOADERS.get(name)
            if loader is None:
                raise ConfigurationError(f"provider local has no model {name!r}")
            model = loader()
            _loaded[name] = model
        return model


class LocalEmbedder:
    """Vectors from a shipped model, computed on a worker thread."""

    async def embed_texts(
        self, model_name: str, texts: Sequence[str], dimensions: int
    ) -> EmbeddedTexts:
        sizes = LOCAL_EMBEDDING_MODELS.get(model_name, ())
        if dimensions not in sizes:
            raise InvalidRequestError(
                f"local model {model_name} has dimensions {', '.join(map(str, sizes))},"
                f" not {dimensions}",
                param="dimensions",
                code="unsupported_dimensions",
            )
        return await asyncio.to_thread(lambda: _model(model_name).embed(texts, dimensions))

    async def load(self, model_name: str) -> None:
        await asyncio.to_thread(_model, model_name)


class LocalProvider:
    """The LlmProvider face of LocalEmbedder: embeddings only."""

    name = NAME

    def __init__(self, embedder: LocalEmbedder | None = None) -> None:
        self._embedder = embedder or LocalEmbedder()

    async def complete(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        raise unsupported(NAME, "chat completions")

    async def stream(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> AsyncGenerator[dict[str, Any]]:
        raise unsupported(NAME, "chat completions")
        yield {}  # pragma: no cover - makes this an async generator like the others

    async def embed(
        self, model: ResolvedModel, body: dict[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        texts = text_inputs(body, NAME)
        dimensions = int(body.get("dimensions") or model.dimensions or 0)
        embedded = await self._embedder.embed_texts(model.upstream_model, texts, dimensions)
        data = [
            {"object": "embedding", "index": index, "embedding": vector}
            for index, vector in enumerate(embedded.vectors.tolist())
        ]
        usage = {"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens}
        return {"object": "list", "data": data, "model": model.upstream_model, "usage": usage}

    async def check(self, model: ResolvedModel, api_key: str | None) -> None:
        await self._embedder.load(model.upstream_model)
