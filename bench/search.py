"""pgvector search at 100,000 documents x 256 dimensions: latency, HNSW vs exact, recall.

An embedded PostgreSQL with pgvector holds one knowledge base of random unit vectors (the
hardest case for HNSW: no cluster structure) whose metadata carries `tenant` = t0..t99,
so `{"field": "tenant", "operator": "eq", "value": "t7"}` keeps 1% of the documents.
Searches go through the gateway's PgvectorBackend exactly as the search route calls it:
top_k 10, with and without that filter, on the HNSW path and forced exact, one at a time.
Recall@10 compares each HNSW answer with the exact one. Targets: p50 <= 20 ms with the
filter, recall@10 >= 0.95. Run: `.venv/bin/python bench/search.py [documents]`.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway_core.domain.knowledge import EmbeddedDocument, KnowledgeBaseRef
from gateway_core.knowledge.backend import SearchQuery
from gateway_core.knowledge.filters import parse_filter
from gateway_core.knowledge.pgvector import SCHEMA, PgvectorBackend, table_name
from gateway_core.storage.database import Pool, migrate, open_pool
from gateway_core.storage.embedded import EmbeddedPostgres

DOCUMENTS = 100_000
DIMENSIONS = 256
TENANTS = 100
QUERIES = 200
TOP_K = 10
LOAD_BATCH = 5_000
KB = KnowledgeBaseRef.model_validate(
    {
        "id": "bench-search",
        "dimensions": DIMENSIONS,
        "distance": "cosine",
        "backend": {"type": "pgvector"},
    }
)
DATASET = sys.argv[2] if len(sys.argv) > 2 else "random"
CLUSTERS = 1000
CLUSTER_SPREAD = 0.03  # per dimension: |noise| ~ 0.5, so members sit at cosine ~0.8
SELECTIVE = {"field": "tenant", "operator": "eq", "value": "t7"}


def _unit_vectors(count: int, seed: int) -> npt.NDArray[np.float32]:
    """I.i.d. random unit vectors (`random`), or unit vectors around CLUSTERS centres
    (`clustered`: structure like real embeddings have, neighbours at cosine ~0.8)."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((count, DIMENSIONS)).astype(np.float32)
    if DATASET == "clustered":
        centres = np.random.default_rng(0).standard_normal((CLUSTERS, DIMENSIONS))
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        rows = centres[rng.integers(0, CLUSTERS, count)] + rows * CLUSTER_SPREAD
    unit: npt.NDArray[np.float32] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit.astype(np.float32)


async def _load(pool: Pool, backend: PgvectorBackend, documents: int) -> float:
    """Bulk load without the HNSW index, then build it once; the load's documents/s."""
    await backend.drop(KB)
    await backend.prepare(KB)
    index = f"{table_name(KB.id)}_hnsw"
    async with pool.connection() as conn:
        await conn.execute(f'DROP INDEX "{SCHEMA}"."{index}"')
    vectors = _unit_vectors(documents, seed=1)
    started = time.perf_counter()
    for start in range(0, documents, LOAD_BATCH):
        batch = [
            EmbeddedDocument(
                id=f"doc-{i:06d}",
                content=f"document {i}",
                metadata={"tenant": f"t{i % TENANTS}", "n": i},
                embedding=vectors[i].tolist(),
            )
            for i in range(start, min(start + LOAD_BATCH, documents))
        ]
        await backend.upsert(KB, batch)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    async with pool.connection() as conn:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute(
            f'CREATE INDEX "{index}" ON "{SCHEMA}"."{table_name(KB.id)}"'
            " USING hnsw (embedding vector_cosine_ops)"
        )
        # Hint bits and statistics now, not during the first searches.
        await conn.execute(f'VACUUM ANALYZE "{SCHEMA}"."{table_name(KB.id)}"')
    built = time.perf_counter() - started
    print(f"load: {documents / loaded:,.0f} documents/s; HNSW build {built:.1f} s")
    return documents / loaded


async def _run(
    backend: PgvectorBackend, queries: npt.NDArray[np.float32], filtered: bool
) -> tuple[list[float], list[list[str]]]:
    """Milliseconds per search and the ids each returned."""
    filter = parse_filter(SELECTIVE, path="filter") if filtered else None
    latencies, answers = [], []
    for vector in queries:
        query = SearchQuery(text="", vector=vector.tolist(), top_k=TOP_K, filter=filter)
        started = time.perf_counter()
        hits = await backend.search(KB, query)
        latencies.append((time.perf_counter() - started) * 1000)
        answers.append([hit.id for hit in hits])
    return latencies, answers


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def _recall(approximate: list[list[str]], exact: list[list[str]]) -> float:
    found = [len(set(a) & set(e)) / max(1, len(e)) for a, e in zip(approximate, exact, strict=True)]
    return statistics.fmean(found)


async def _bench(pool: Pool, documents: int) -> None:
    hnsw = PgvectorBackend(pool)
    exact = PgvectorBackend(pool, exact_below=10**12)
    await _load(pool, hnsw, documents)
    probe = SearchQuery(text="", vector=[1.0] + [0.0] * (DIMENSIONS - 1), top_k=TOP_K)
    assert await hnsw.uses_index(KB, probe), "the HNSW path does not use the index"
    assert not await exact.uses_index(KB, probe), "the exact path uses the index"
    queries = _unit_vectors(QUERIES, seed=2)
    await _run(hnsw, queries[:20], filtered=False)  # warm the cache and the plans
    print(f"dataset {DATASET}; ", end="")
    print(f"{documents:,} documents x {DIMENSIONS} dims, top_k {TOP_K}, {QUERIES} queries each")
    print(f"{'path':<8}{'filter':<10}{'p50 ms':>9}{'p99 ms':>9}{'hits':>7}")
    results = {}
    for name, backend in (("hnsw", hnsw), ("exact", exact)):
        for filtered in (False, True):
            latencies, answers = await _run(backend, queries, filtered)
            results[name, filtered] = answers
            hits = statistics.fmean(len(a) for a in answers)
            label = "tenant=1%" if filtered else "none"
            print(
                f"{name:<8}{label:<10}{_percentile(latencies, 50):>9.2f}"
                f"{_percentile(latencies, 99):>9.2f}{hits:>7.1f}"
            )
    for filtered in (False, True):
        recall = _recall(results["hnsw", filtered], results["exact", filtered])
        label = "tenant=1%" if filtered else "none"
        print(f"recall@{TOP_K} HNSW vs exact, filter {label}: {recall:.3f}")


def _local_embedding_throughput() -> None:
    """Texts per second of the `local` wordllama model (256 dims), one process."""
    from gateway_core.providers.local import LocalEmbedder

    texts = [
        f"short sentence number {i} about billing, refunds and invoices" for i in range(20_000)
    ]
    embedder = LocalEmbedder()
    asyncio.run(embedder.load("wordllama"))
    started = time.perf_counter()
    asyncio.run(embedder.embed_texts("wordllama", texts, 256))
    print(f"local wordllama embedding: {len(texts) / (time.perf_counter() - started):,.0f} texts/s")


async def main(documents: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pmp-bench-search-") as folder:
        async with EmbeddedPostgres(Path(folder)) as postgres:
            pool = await open_pool(postgres.url, max_size=4)
            try:
                await migrate(pool)
                await _bench(pool, documents)
            finally:
                await pool.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else DOCUMENTS))
    _local_embedding_throughput()
