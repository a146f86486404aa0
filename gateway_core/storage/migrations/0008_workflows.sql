-- User-defined workflows, with every version kept (as models are): `definition` holds
-- name, description, input_schema, steps, enabled and max_steps. A run pins the version
-- it started with, so versions are never deleted.
CREATE TABLE workflows (
    id          text PRIMARY KEY,
    version     integer NOT NULL DEFAULT 1,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workflow_versions (
    workflow_id  text NOT NULL,
    version      integer NOT NULL,
    definition   jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, version)
);
