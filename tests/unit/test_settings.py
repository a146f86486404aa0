"""Settings come from PMP_* variables; unset service URLs mean the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway_core.config import Settings


def test_defaults_embed_everything_on_port_8080(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PMP_DATABASE_URL", "PMP_TEMPORAL_ADDRESS", "PMP_PORT", "PMP_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.port == 8080
    assert settings.temporal_port == 7233
    assert settings.temporal_ui_port == 8233
    assert settings.embeds_postgres
    assert settings.embeds_temporal


def test_environment_names_the_services(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PMP_DATABASE_URL", "postgresql://u:secretpw@db/pmp")
    monkeypatch.setenv("PMP_TEMPORAL_ADDRESS", "temporal:7233")
    monkeypatch.setenv("PMP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PMP_LOG_FORMAT", "json")
    settings = Settings()
    assert not settings.embeds_postgres
    assert not settings.embeds_temporal
    assert settings.data_dir == tmp_path.resolve()
    assert settings.log_format == "json"
    assert "secretpw" not in repr(settings)


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMP_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings()
