-- Semantic response cache: one vector per cached request. The answers themselves live in
-- the response cache (memory or Redis); a row whose answer is gone just misses.
CREATE TABLE semantic_cache (
    cache_key   text PRIMARY KEY,
    scope       text NOT NULL,
    tags        text[] NOT NULL,
    embedding   vector NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE INDEX semantic_cache_scope ON semantic_cache (scope, expires_at);
CREATE INDEX semantic_cache_tags ON semantic_cache USING gin (tags);
