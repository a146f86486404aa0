CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE models (
    id          text PRIMARY KEY,
    version     integer NOT NULL DEFAULT 1,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE model_versions (
    model_id    text NOT NULL,
    version     integer NOT NULL,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, version)
);

CREATE TABLE admin_keys (
    id          text PRIMARY KEY,
    key_hash    text NOT NULL,
    source      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
