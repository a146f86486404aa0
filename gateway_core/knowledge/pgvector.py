"""The pgvector backend: one table per knowledge base in the gateway's own PostgreSQL.

Each table has a fixed `vector(dim)` column with an HNSW index for the KB's distance, a
generated `tsvector` over the content (GIN) for keyword search, and `metadata jsonb` that
filters compile to (parameterized, see filters_pg). Below `exact_below` rows a search
scans the table exactly (an index does not pay there, and exact top_k honours any
filter); above it, HNSW with iterative scans (pgvector >= 0.8) keeps returning rows past
a selective filter until `top_k` are found. Scores are similarities, higher is better.
"""

from __future__ import annotations

import builtins
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgvector import Vector
from psycopg import sql
from psycopg.errors import Error as PsycopgError
from psycopg.types.json import Jsonb

from gateway_core.domain.knowledge import (
    BackendHealth,
    Distance,
    EmbeddedDocument,
    KnowledgeBaseRef,
    SearchHit,
    StoredDocument,
)
from gateway_core.knowledge.backend import DocumentPage, SearchQuery
from gateway_core.knowledge.filters import Condition, Filter, Group
from gateway_core.knowledge.filters_pg import compile_pg
from gateway_core.knowledge.term_scoring import RRF_K, reciprocal_rank_fusion
from gateway_core.storage.database import Connection, ConnectionSource

SCHEMA = "knowledge"
# Below this many rows an exact scan (a few ms at 256 dims) beats building on the index,
# and is exact under any filter.
EXACT_BELOW = 10_000
# HNSW indexes `vector` up to 2,000 dimensions; wider KBs are searched exactly.
MAX_INDEXED_DIMENSIONS = 2000
# Hybrid fuses candidate lists this many times top_k long (at least HYBRID_MIN_CANDIDATES).
HYBRID_CANDIDATE_FACTOR = 4
HYBRID_MIN_CANDIDATES = 50
# The HNSW beam (pgvector's default is 40); wider for recall, at some latency.
EF_SEARCH_MIN = 100
# Iterative scans stop after this many tuples (pgvector's default is 20,000).
MAX_SCAN_TUPLES = 50_000
UPSERT_BATCH = 500
TEXT_SEARCH_CONFIG = "english"

# websearch_to_tsquery ANDs plain words, so a question matches almost nothing; a query
# written without operators (quotes, `or`, `-`) matches any of its words instead, and
# ts_rank_cd ranks documents with more of them, closer together, first.
_KEYWORD_QUERY = sql.SQL(
    "(SELECT CASE WHEN strict::text ~ '[!|<]' THEN strict"
    " ELSE replace(strict::text, ' & ', ' | ')::tsquery END AS q"
    " FROM websearch_to_tsquery({}::regconfig, %s) AS strict) AS keyword"
).format(sql.Literal(TEXT_SEARCH_CONFIG))
_OPERATOR = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}
_OPCLASS = {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "inner_product": "vector_ip_ops"}


def similarity(distance: Distance, value: float) -> float:
    """pgvector's distance as a similarity: 1 - cosine distance, the dot product, 1/(1+l2)."""
    if distance == "cosine":
        return 1.0 - value
    if distance == "inner_product":
        return -value  # `<#>` is the negative inner product
    return 1.0 / (1.0 + value)


def table_name(kb_id: str) -> str:
    """`kb_<readable id>_<hash>`: ids differing only in case or hyphens stay apart."""
    readable = re.sub(r"[^a-z0-9]", "_", kb_id.lower())[:30]
    digest = hashlib.sha256(kb_id.encode()).hexdigest()[:10]
    return f"kb_{readable}_{digest}"


@dataclass(frozen=True)
class _Where:
    """A WHERE condition and its parameters, in order."""

    condition: sql.Composable
    params: list[Any]
    # The GIN index on metadata can pre-select the rows (see _required_values).
    preselects: bool = False


def _where(filter: Filter | None) -> _Where:
    """The compiled filter, plus `metadata @> {...}` for its top-level `eq` conditions.

    The containment adds nothing to the result (each `eq` already demands it) but lets
    the GIN index on metadata pre-select the rows of a selective filter.
    """
    if filter is None:
        return _Where(sql.SQL("TRUE"), [])
    compiled = compile_pg(filter, column="metadata")
    contained = _required_values(filter)
    if not contained:
        return _Where(compiled.clause, list(compiled.params))
    condition = sql.SQL("({}) AND metadata @> %s").format(compiled.clause)
    return _Where(condition, [*compiled.params, Jsonb(contained)], preselects=True)


def _required_values(filter: Filter) -> dict[str, Any]:
    """The nested object every match contains: the scalar `eq`s that all must hold."""
    members = (
        filter.filters if isinstance(filter, Group) and filter.connector == "and" else [filter]
    )
    required: dict[str, Any] = {}
    for member in members:
        if not isinstance(member, Condition) or member.operator != "eq":
            continue
        if member.value is None or isinstance(member.value, list):
            continue  # list `eq` is whole-list equality; containment would be a subset test
        target = required
        for segment in member.path[:-1]:
            nested = target.setdefault(segment, {})
            if not isinstance(nested, dict):
                break  # `a = 1` and `a.b = 2` together: nothing matches; leave it to SQL
            target = nested
        else:
            target.setdefault(member.path[-1], member.value)
    return required


class PgvectorBackend:
    """Stores and searches knowledge bases whose backend is `pgvector`."""

    read_only = False

    def __init__(self, pool: ConnectionSource, *, exact_below: int = EXACT_BELOW) -> None:
        self._pool = pool
        self._exact_below = exact_below
        self._iterative: bool | None = None  # pgvector >= 0.8, found on first search

    def _table(self, kb: KnowledgeBaseRef) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table_name(kb.id)))

    def _distance_sql(self, kb: KnowledgeBaseRef) -> sql.Composed:
        return sql.SQL("embedding {} %s").format(sql.SQL(_OPERATOR[kb.distance]))

    async def prepare(self, kb: KnowledgeBaseRef) -> None:
        """The table, its HNSW index (for the KB's distance) and its full-text index."""
        name = table_name(kb.id)
        table = self._table(kb)
        statements = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id text PRIMARY KEY, content text NOT NULL,"
                " metadata jsonb NOT NULL DEFAULT '{{}}', embedding vector({}) NOT NULL,"
                " content_tsv tsvector GENERATED ALWAYS AS"
                " (to_tsvector({}::regconfig, content)) STORED)"
            ).format(table, sql.Literal(kb.dimensions), sql.Literal(TEXT_SEARCH_CONFIG)),
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (content_tsv)").format(
                sql.Identifier(f"{name}_fts"), table
            ),
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {} ON {} USING gin (metadata jsonb_path_ops)"
            ).format(sql.Identifier(f"{name}_meta"), table),
        ]
        if kb.dimensions <= MAX_INDEXED_DIMENSIONS:
            statements.append(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding {})").format(
                    sql.Identifier(f"{name}_hnsw"), table, sql.SQL(_OPCLASS[kb.distance])
                )
            )
        async with self._pool.connection() as conn, conn.transaction():
            for statement in statements:
                await conn.execute(statement)

    async def drop(self, kb: KnowledgeBaseRef) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._table(kb)))

    async def upsert(self, kb: KnowledgeBaseRef, documents: Sequence[EmbeddedDocument]) -> None:
        """Insert or replace by id in batches, all in one transaction (all or nothing)."""
        statement = sql.SQL(
            "INSERT INTO {} (id, content, metadata, embedding) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content,"
            " metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding"
        ).format(self._table(kb))
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            for start in range(0, len(documents), UPSERT_BATCH):
                rows = [
                    (doc.id, doc.content, Jsonb(doc.metadata), Vector(doc.embedding))
                    for doc in documents[start : start + UPSERT_BATCH]
                ]
                await cursor.executemany(statement, rows)

    async def replace_source(
        self, kb: KnowledgeBaseRef, document_id: str, documents: Sequence[EmbeddedDocument]
    ) -> None:
        """The source's old chunks out and its new ones in, in one transaction.

        Under READ COMMITTED a search statement sees the table as of its start: either
        before the commit (all old chunks) or after it (all new ones), never a mixture.
        """
        table = self._table(kb)
        delete = sql.SQL("DELETE FROM {} WHERE metadata @> %s").format(table)
        insert = sql.SQL(
            "INSERT INTO {} (id, content, metadata, embedding) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content,"
            " metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding"
        ).format(table)
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            await cursor.execute(delete, (Jsonb({"document_id": document_id}),))
            for start in range(0, len(documents), UPSERT_BATCH):
                rows = [
                    (doc.id, doc.content, Jsonb(doc.metadata), Vector(doc.embedding))
                    for doc in documents[start : start + UPSERT_BATCH]
                ]
                await cursor.executemany(insert, rows)

    async def source_hash(self, kb: KnowledgeBaseRef, document_id: str) -> str | None:
        statement = sql.SQL(
            "SELECT metadata->>'content_hash' AS hash FROM {} WHERE metadata @> %s LIMIT 1"
        ).format(self._table(kb))
        async with self._pool.connection() as conn:
            cursor = await conn.execute(statement, (Jsonb({"document_id": document_id}),))
            row = await cursor.fetchone()
        return None if row is None else row["hash"]

    async def get(self, kb: KnowledgeBaseRef, document_id: str) -> StoredDocument | None:
        statement = sql.SQL("SELECT id, content, metadata FROM {} WHERE id = %s").format(
            self._table(kb)
        )
        async with self._pool.connection() as conn:
            row = await (await conn.execute(statement, (document_id,))).fetchone()
        return None if row is None else StoredDocument.model_validate(row)

    async def list(
        self, kb: KnowledgeBaseRef, *, filter: Filter | None, limit: int, after: str | None
    ) -> DocumentPage:
        where = _where(filter)
        statement = sql.SQL(
            "SELECT id, content, metadata FROM {} WHERE ({}) AND (%s::text IS NULL OR id > %s)"
            " ORDER BY id LIMIT %s"
        ).format(self._table(kb), where.condition)
        async with self._pool.connection() as conn:
            cursor = await conn.execute(statement, [*where.params, after, after, limit + 1])
            rows = await cursor.fetchall()
        documents = [StoredDocument.model_validate(row) for row in rows[:limit]]
        return DocumentPage(documents=documents, has_more=len(rows) > limit)

    async def delete(self, kb: KnowledgeBaseRef, document_ids: Sequence[str]) -> int:
        statement = sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self._table(kb))
        async with self._pool.connection() as conn:
            cursor = await conn.execute(statement, (list(document_ids),))
        return cursor.rowcount

    async def delete_matching(self, kb: KnowledgeBaseRef, filter: Filter) -> int:
        where = _where(filter)
        statement = sql.SQL("DELETE FROM {} WHERE {}").format(self._table(kb), where.condition)
        async with self._pool.connection() as conn:
            cursor = await conn.execute(statement, where.params)
        return cursor.rowcount

    async def count(self, kb: KnowledgeBaseRef) -> int:
        statement = sql.SQL("SELECT count(*) AS n FROM {}").format(self._table(kb))
        async with self._pool.connection() as conn:
            row = await (await conn.execute(statement)).fetchone()
        return int(row["n"]) if row else 0

    async def health(self, kb: KnowledgeBaseRef) -> BackendHealth:
        """Up when the KB's table answers a query."""
        statement = sql.SQL("SELECT 1 FROM {} LIMIT 0").format(self._table(kb))
        try:
            async with self._pool.connection() as conn:
                await conn.execute(statement)
        except PsycopgError as error:
            return BackendHealth(status="down", error=str(error).strip().splitlines()[0])
        return BackendHealth(status="up")

    async def search(self, kb: KnowledgeBaseRef, query: SearchQuery) -> builtins.list[SearchHit]:
        """Best first; vector scores are similarities, keyword ts_rank_cd/(1+rank), hybrid RRF."""
        async with self._pool.connection() as conn, conn.transaction():
            if query.mode == "keyword":
                ranked = await self._keyword(conn, kb, query, query.top_k)
                hits = [hit for hit, _ in ranked]
            elif query.mode == "vector":
                hits = await self._nearest(conn, kb, query, query.top_k)
            else:
                hits = await self._hybrid(conn, kb, query)
        return hits[: query.top_k]

    async def uses_index(self, kb: KnowledgeBaseRef, query: SearchQuery) -> bool:
        """Whether a vector search for `query` would walk the HNSW index (EXPLAIN), for tests."""
        async with self._pool.connection() as conn, conn.transaction():
            statement, params = await self._nearest_statement(conn, kb, query, query.top_k)
            cursor = await conn.execute(sql.SQL("EXPLAIN ") + statement, params)
            plan = "\n".join(str(next(iter(row.values()))) for row in await cursor.fetchall())
        return f"{table_name(kb.id)}_hnsw" in plan

    async def _nearest(
        self, conn: Connection, kb: KnowledgeBaseRef, query: SearchQuery, limit: int
    ) -> builtins.list[SearchHit]:
        statement, params = await self._nearest_statement(conn, kb, query, limit)
        rows = await (await conn.execute(statement, params)).fetchall()
        hits = [_hit(row, similarity(kb.distance, row["distance"])) for row in rows]
        # relaxed_order may hand rows back slightly out of order: sort them once more.
        hits.sort(key=lambda hit: -hit.score)
        threshold = query.similarity_threshold
        return [hit for hit in hits if threshold is None or hit.score >= threshold]

    async def _nearest_statement(
        self, conn: Connection, kb: KnowledgeBaseRef, query: SearchQuery, limit: int
    ) -> tuple[sql.Composed, builtins.list[Any]]:
        """Inside a transaction: settle exact or HNSW for this search, and its SELECT."""
        if query.vector is None:
            raise ValueError("a vector search needs the query's embedding")
        where = _where(query.filter)
        await self._choose_path(conn, kb, limit, where)
        distance = self._distance_sql(kb)
        statement = sql.SQL(
            "SELECT id, content, metadata, {} AS distance FROM {} WHERE {} ORDER BY {} LIMIT %s"
        ).format(distance, self._table(kb), where.condition, distance)
        vector = Vector(query.vector)
        return statement, [vector, *where.params, vector, limit]

    async def _choose_path(
        self, conn: Connection, kb: KnowledgeBaseRef, limit: int, where: _Where
    ) -> None:
        """SET LOCAL the planner and HNSW settings: exact below the threshold, else HNSW."""
        if kb.dimensions > MAX_INDEXED_DIMENSIONS or await self._rows_below(
            conn, kb, self._exact_below
        ):
            await conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
            return
        iterative = await self._iterative_scans(conn)
        # Without iterative scans (pgvector 0.7) a filter can only be met by a wider beam.
        filtered = bool(where.params)
        ef_search = max(EF_SEARCH_MIN, min(1000, limit)) if iterative or not filtered else 1000
        # No full scan: HNSW, or (for a filter the GIN index can pre-select) the planner's
        # pick of HNSW and an exact sort of the pre-selected rows.
        settings = {"hnsw.ef_search": str(ef_search), "enable_seqscan": "off"}
        if not where.preselects:
            settings["enable_sort"] = "off"  # only the HNSW index yields distance order
        if iterative:
            settings["hnsw.iterative_scan"] = "relaxed_order"
            settings["hnsw.max_scan_tuples"] = str(MAX_SCAN_TUPLES)
        for name, value in settings.items():
            await conn.execute("SELECT set_config(%s, %s, true)", (name, value))

    async def _rows_below(self, conn: Connection, kb: KnowledgeBaseRef, bound: int) -> bool:
        """Whether the table has fewer than `bound` rows: the planner's estimate when it has
        one, else a count that stops at `bound`."""
        estimate = await conn.execute(
            "SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
            (f"{SCHEMA}.{table_name(kb.id)}",),
        )
        row = await estimate.fetchone()
        if row is not None and row["reltuples"] >= 0:
            return bool(row["reltuples"] < bound)
        counted = await conn.execute(
            sql.SQL("SELECT count(*) AS n FROM (SELECT 1 FROM {} LIMIT %s) AS bounded").format(
                self._table(kb)
            ),
            (bound,),
        )
        found = await counted.fetchone()
        return found is None or int(found["n"]) < bound

    async def _iterative_scans(self, conn: Connection) -> bool:
        if self._iterative is None:
            cursor = await conn.execute(
                "SELECT string_to_array(extversion, '.')::int[] >= ARRAY[0, 8] AS iterative"
                " FROM pg_extension WHERE extname = 'vector'"
            )
            row = await cursor.fetchone()
            self._iterative = bool(row and row["iterative"])
        return self._iterative

    async def _keyword(
        self, conn: Connection, kb: KnowledgeBaseRef, query: SearchQuery, limit: int
    ) -> builtins.list[tuple[SearchHit, float | None]]:
        """Full-text hits by ts_rank_cd (normalised to rank/(rank+1)), each with its vector
        similarity when the query has a vector (hybrid's threshold needs it)."""
        where = _where(query.filter)
        distance: sql.Composable = sql.SQL("NULL::float8")
        leading: builtins.list[Any] = []
        if query.vector is not None:
            distance, leading = self._distance_sql(kb), [Vector(query.vector)]
        statement = sql.SQL(
            "SELECT id, content, metadata, {} AS distance, ts_rank_cd(content_tsv, keyword.q, 32)"
            " AS rank FROM {}, {} WHERE content_tsv @@ keyword.q AND ({})"
            " ORDER BY rank DESC, id LIMIT %s"
        ).format(distance, self._table(kb), _KEYWORD_QUERY, where.condition)
        params = [*leading, query.text, *where.params, limit]
        rows = await (await conn.execute(statement, params)).fetchall()
        return [
            (
                _hit(row, float(row["rank"])),
                None if row["distance"] is None else similarity(kb.distance, row["distance"]),
            )
            for row in rows
        ]

    async def _hybrid(
        self, conn: Connection, kb: KnowledgeBaseRef, query: SearchQuery
    ) -> builtins.list[SearchHit]:
        """Reciprocal rank fusion (k = 60) of the vector and the keyword candidate lists.

        A threshold keeps only documents whose vector similarity reaches it.
        """
        candidates = max(HYBRID_MIN_CANDIDATES, query.top_k * HYBRID_CANDIDATE_FACTOR)
        vector_hits = await self._nearest(conn, kb, query, candidates)
        keyword_hits = await self._keyword(conn, kb, query, candidates)
        threshold = query.similarity_threshold
        keyword_ranking = [
            hit
            for hit, vector_score in keyword_hits
            if threshold is None or (vector_score is not None and vector_score >= threshold)
        ]
        by_id = {hit.id: hit for hit in [*keyword_ranking, *vector_hits]}
        fused = reciprocal_rank_fusion(
            [[hit.id for hit in vector_hits], [hit.id for hit in keyword_ranking]], k=RRF_K
        )
        order = sorted(fused, key=lambda doc_id: (-fused[doc_id], doc_id))
        return [by_id[doc_id].model_copy(update={"score": fused[doc_id]}) for doc_id in order]


def _hit(row: dict[str, Any], score: float) -> SearchHit:
    return SearchHit(id=row["id"], content=row["content"], score=score, metadata=row["metadata"])
