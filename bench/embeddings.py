"""Throughput of the `local` embedding model (wordllama, 256 dimensions): texts per second.

Measures `LocalEmbedder.embed_texts` as the gateway calls it (on a worker thread, one
batch at a time) for batch sizes 1, 32 and 256, on short sentences (~12 words) and on
paragraphs (~120 words), after one warm-up batch that loads the model.

Run from the repository root: `.venv/bin/python bench/embeddings.py [--seconds S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from gateway_core.providers.local import LocalEmbedder

BATCH_SIZES = (1, 32, 256)
WORDS = [
    "invoice",
    "payment",
    "account",
    "password",
    "reset",
    "billing",
    "refund",
    "order",
    "shipping",
    "delivery",
    "customer",
    "support",
    "ticket",
    "error",
    "login",
    "email",
    "address",
    "subscription",
    "plan",
    "upgrade",
    "cancel",
    "renew",
    "receipt",
    "tax",
    "report",
    "export",
    "import",
    "database",
    "backup",
    "restore",
    "server",
]


def _texts(count: int, words: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=words)).capitalize() + "." for _ in range(count)]


async def _rate(embedder: LocalEmbedder, texts: list[str], batch: int, seconds: float) -> float:
    """Texts per second embedding `texts` in batches of `batch` for about `seconds`."""
    done, started, index = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        chunk = texts[index : index + batch]
        index = (index + batch) % (len(texts) - batch)
        await embedder.embed_texts("wordllama", chunk, 256)
        done += len(chunk)
    return done / (time.perf_counter() - started)


async def main(seconds: float) -> None:
    embedder = LocalEmbedder()
    loading = time.perf_counter()
    await embedder.embed_texts("wordllama", ["warm up"], 256)
    print(f"model load + first batch: {(time.perf_counter() - loading) * 1000:.0f} ms")
    print(f"{'text':<22}{'batch':>6}{'texts/s':>12}")
    for label, words in (("sentence (~12 words)", 12), ("paragraph (~120 words)", 120)):
        texts = _texts(4096, words, seed=words)
        for batch in BATCH_SIZES:
            rate = await _rate(embedder, texts, batch, seconds)
            print(f"{label:<22}{batch:>6}{rate:>12,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    asyncio.run(main(parser.parse_args().seconds))
