"""Gateway settings, read once at start-up from PMP_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "pmp-gateway"


class Settings(BaseSettings):
    """Everything the gateway can be told; unset service URLs mean 'embed it'."""

    model_config = SettingsConfigDict(env_prefix="PMP_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    admin_key: SecretStr | None = None
    # When set, GET /metrics needs `Authorization: Bearer <this key>`.
    metrics_key: SecretStr | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    # Request and response bodies in the access log, with secrets and these fields redacted.
    log_bodies: bool = False
    log_redact_fields: list[str] = Field(default_factory=list)
    # Message content as span attributes (off: prompts and answers never reach a tracer).
    trace_content: bool = False
    # On SIGTERM: /ready answers 503 and in-flight requests get this long to finish.
    drain_seconds: float = Field(default=30.0, ge=0)

    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None
    temporal_tls: bool = False
    # mTLS to a self-hosted frontend: the client certificate and key (PEM files), and the
    # CA that signed the server's certificate when it is not a public one.
    temporal_tls_cert_path: Path | None = None
    temporal_tls_key_path: Path | None = None
    temporal_tls_ca_path: Path | None = None
    temporal_task_queue: str = "pmp-gateway"
    temporal_port: int = Field(default=7233, ge=0, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=0, le=65535)
    temporal_ui: bool = True
    # The Web UI of an external Temporal (the embedded server's is known); the admin UI
    # builds its run links from it.
    temporal_ui_url: str | None = None
    # Browser origins allowed to call the API directly (comma-separated, e.g. the
    # `pmp-gateway ui --skip-proxy` address); empty: no CORS headers.
    cors_origins: str = ""

    database_url: SecretStr | None = None
    database_pool_min: int = Field(default=1, ge=1)
    database_pool_max: int = Field(default=10, ge=1)
    embedded_postgres_port: int = Field(default=0, ge=0, le=65535)

    redis_url: SecretStr | None = None

    # Response cache (in Redis when PMP_REDIS_URL is set, else in process memory).
    cache_max_entries: int = Field(default=10_000, ge=1)
    cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    cache_embedding_model: str = "text-embedding-3-small"

    # HMAC secret for stored API key hashes; processes sharing a database must share it.
    # Unset: generated at first start into the data dir.
    key_hash_secret: SecretStr | None = None
    # AES-GCM key (32 bytes, base64) for Temporal payloads; api/worker processes need it,
    # serve generates one into the data dir at first start.
    payload_key: SecretStr | None = None
    # Browser origins (comma-separated) that may call /codec/*: the Temporal Web UI's.
    # Unset: the embedded UI on localhost / 127.0.0.1 at PMP_TEMPORAL_UI_PORT.
    codec_cors_origins: str | None = None
    # How long async operation results are kept (the Temporal namespace's retention; the
    # embedded server is set to it, an external one must be configured to match).
    operation_retention_days: int = Field(default=7, ge=1, le=3650)
    auth_cache_ttl_s: float = Field(default=5.0, ge=0)
    usage_flush_interval_s: float = Field(default=2.0, gt=0)

    # Ingestion uploads: each file, and all of one request's content, at most this many
    # bytes (413 beyond); the staged bytes of runs that never cleaned up expire after a TTL.
    # Any other request body (chat, embeddings, admin, import): refused over this, 413.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # A chat request's `messages` may have at most this many entries (400 beyond).
    max_messages: int = Field(default=2048, ge=1)
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_ingest_request_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    ingestion_blob_ttl_hours: float = Field(default=72.0, gt=0)
    ingestion_concurrency: int = Field(default=4, ge=1, le=64)

    # Corrective-RAG: the chat model (or chain) that judges documents for the `llm` and
    # `hybrid` strategies when a request names none.
    crag_judge_model: str | None = None

    upstream_connect_timeout_s: float = Field(default=10.0, gt=0)
    upstream_max_connections: int = Field(default=200, ge=1)
    default_max_retries: int = Field(default=2, ge=0, le=10)
    default_timeout_ms: int = Field(default=120_000, gt=0)
    stream_heartbeat_timeout_s: float = Field(default=30.0, gt=0)
    stream_max_duration_s: float = Field(default=600.0, gt=0)

    breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_min_requests: int = Field(default=5, ge=1)
    breaker_window_s: float = Field(default=60.0, gt=0)
    breaker_cooldown_s: float = Field(default=30.0, gt=0)
    breaker_probes: int = Field(default=1, ge=1)
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    # The Temporal SDK's own metrics (temporal_*: polls, task slots, latencies), served in
    # Prometheus format by the SDK on this port of PMP_HOST; 0: off.
    temporal_metrics_port: int = Field(default=0, ge=0, le=65535)

    # Credential sources (env is always on); fetched values are cached this long.
    credential_cache_ttl_s: float = Field(default=300.0, ge=0)
    # Which variables `env` credentials may name (comma-separated shell patterns).
    credential_env_allow: str = "*_API_KEY,*_TOKEN,*_KEYS"
    # Callback URLs and workflow HTTP steps reach only public addresses, plus these
    # (comma-separated CIDRs and host names, `*.example.internal` for subdomains).
    callback_allow: str = ""
    aws_secrets_manager_region: str | None = None
    aws_secrets_manager_endpoint_url: str | None = None
    vault_addr: str | None = None
    vault_namespace: str | None = None
    vault_kv_mount: str = "secret"
    vault_token: SecretStr | None = None
    vault_role_id: str | None = None
    vault_secret_id: SecretStr | None = None
    vault_approle_mount: str = "approle"

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def embeds_temporal(self) -> bool:
        return self.temporal_address is None

    @property
    def embeds_postgres(self) -> bool:
        return self.database_url is None
