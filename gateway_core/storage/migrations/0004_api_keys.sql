CREATE TABLE api_keys (
    id                      text PRIMARY KEY,
    environment             text NOT NULL,
    lookup                  text NOT NULL UNIQUE,
    key_hash                text NOT NULL,
    previous_lookup         text UNIQUE,
    previous_key_hash       text,
    previous_valid_until    timestamptz,
    status                  text NOT NULL,
    definition              jsonb NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    rotated_at              timestamptz,
    last_used_at            timestamptz
);

CREATE TABLE api_key_usage (
    key_id              text NOT NULL,
    model               text NOT NULL,
    day                 date NOT NULL,
    requests            bigint NOT NULL DEFAULT 0,
    prompt_tokens       bigint NOT NULL DEFAULT 0,
    completion_tokens   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day, model)
);
