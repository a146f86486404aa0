-- Knowledge bases, with every version kept (as models are): `definition` holds name,
-- description, backend, embedding model id, distance, ingestion defaults and enabled.
CREATE TABLE knowledge_bases (
    id          text PRIMARY KEY,
    version     integer NOT NULL DEFAULT 1,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE knowledge_base_versions (
    knowledge_base_id  text NOT NULL,
    version            integer NOT NULL,
    definition         jsonb NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (knowledge_base_id, version)
);

-- The pgvector backend keeps one table per knowledge base (fixed vector dimension, its own
-- HNSW index) in this schema, apart from the gateway's own tables.
CREATE SCHEMA IF NOT EXISTS knowledge;
