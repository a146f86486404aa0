-- Staged bytes of ingestion runs (uploads, parsed text, chunks, vectors), so that none of
-- them travels in a workflow's history. A blob is stored in parts of at most about 1 MiB,
-- written as an upload streams in; API and worker processes share them through this
-- table. A run's last activity deletes its blobs; a start-up sweep removes those of runs
-- that never got that far.
CREATE TABLE ingestion_blobs (
    id          uuid NOT NULL,
    part        integer NOT NULL,
    run_id      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('upload', 'parsed', 'chunks', 'vectors')),
    content     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, part)
);

CREATE INDEX ingestion_blobs_run ON ingestion_blobs (run_id);
CREATE INDEX ingestion_blobs_created ON ingestion_blobs (created_at);
