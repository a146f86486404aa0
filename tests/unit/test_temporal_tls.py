"""Temporal connection hardening: mTLS from PMP_TEMPORAL_TLS_*, the embedded UI's codec."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from gateway_core.config import Settings
from gateway_core.process import StartupError
from temporal_workers.client import tls_config
from temporal_workers.dev_server import EmbeddedTemporal


def test_plain_tls_flags_stay_as_they_were(tmp_path: Path) -> None:
    assert tls_config(Settings(data_dir=tmp_path), False) is False
    assert tls_config(Settings(data_dir=tmp_path), True) is True
    assert tls_config(Settings(data_dir=tmp_path, temporal_tls=True), False) is True


def test_client_certificate_key_and_ca_make_an_mtls_config(tmp_path: Path) -> None:
    for name in ("client.pem", "client.key", "ca.pem"):
        (tmp_path / name).write_bytes(f"PEM {name}".encode())
    settings = Settings(
        data_dir=tmp_path,
        temporal_tls_cert_path=tmp_path / "client.pem",
        temporal_tls_key_path=tmp_path / "client.key",
        temporal_tls_ca_path=tmp_path / "ca.pem",
    )
    config = tls_config(settings, False)
    assert isinstance(config, TLSConfig)
    assert config.client_cert == b"PEM client.pem"
    assert config.client_private_key == b"PEM client.key"
    assert config.server_root_ca_cert == b"PEM ca.pem"


def test_a_certificate_without_its_key_is_one_startup_error(tmp_path: Path) -> None:
    (tmp_path / "client.pem").write_text("PEM")
    settings = Settings(data_dir=tmp_path, temporal_tls_cert_path=tmp_path / "client.pem")
    with pytest.raises(StartupError, match="both"):
        tls_config(settings, False)
    missing = Settings(
        data_dir=tmp_path,
        temporal_tls_cert_path=tmp_path / "nope.pem",
        temporal_tls_key_path=tmp_path / "nope.key",
    )
    with pytest.raises(StartupError, match="cannot read"):
        tls_config(missing, False)


def test_the_embedded_web_ui_decodes_through_the_gateways_codec_endpoint(tmp_path: Path) -> None:
    endpoint = "http://localhost:8080/codec"
    argv = EmbeddedTemporal(tmp_path, port=1, ui_port=2, codec_endpoint=endpoint)._argv()
    assert argv[argv.index("--ui-codec-endpoint") + 1] == endpoint
    headless = EmbeddedTemporal(tmp_path, port=1, ui=False, codec_endpoint=endpoint)._argv()
    assert "--ui-codec-endpoint" not in headless
