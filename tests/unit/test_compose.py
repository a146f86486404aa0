"""docker-compose.yml keeps Temporal's frontend private and shares the gateway's secrets
(hardening 2 and 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).parent.parent.parent / "docker-compose.yml"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def test_the_temporal_frontend_port_is_not_published() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert not str(port).endswith(":7233"), (name, port)
    assert "ports" not in _services()["temporal"]


def test_api_and_worker_take_the_shared_secrets_from_the_operators_env_file() -> None:
    for name in ("gateway-api", "gateway-worker"):
        env = _services()[name]["environment"]
        for variable in ("PMP_KEY_HASH_SECRET", "PMP_PAYLOAD_KEY", "PMP_ADMIN_KEY"):
            assert env[variable].startswith("${" + variable + ":?"), (name, variable)


def test_the_web_ui_decodes_through_the_gateways_codec_endpoint() -> None:
    ui = _services()["temporal-ui"]
    assert ui["environment"]["TEMPORAL_CODEC_ENDPOINT"].endswith("/codec")
    assert all(str(port).startswith("127.0.0.1:") for port in ui["ports"])
