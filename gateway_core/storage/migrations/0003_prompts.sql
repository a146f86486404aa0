-- Prompts, with every version kept (as models are): `definition` holds name, description,
-- content, tags and the variables extracted from the content when it was saved.
CREATE TABLE prompts (
    id          text PRIMARY KEY,
    version     integer NOT NULL DEFAULT 1,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE prompt_versions (
    prompt_id   text NOT NULL,
    version     integer NOT NULL,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (prompt_id, version)
);

-- Listing by tag: `definition->'tags' @> '["support"]'`.
CREATE INDEX prompts_tags ON prompts USING gin ((definition->'tags'));
