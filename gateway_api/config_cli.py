"""`pmp-gateway export`, `pmp-gateway import` and `serve --config`.

Export and import talk to a running gateway's admin API (`--url`, default the
PMP_HOST/PMP_PORT it listens on) with the admin key from PMP_ADMIN_KEY or the data dir's
`admin-key` file. Going through the API means the embedded PostgreSQL needs no second
owner, and the running gateway's caches learn of the change at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from gateway_api.assembly.groups import Runtime
from gateway_api.services.config_admin import ConfigAdmin
from gateway_core.auth.keys import ADMIN_KEY_FILE
from gateway_core.config import Settings
from gateway_core.config_io import (
    GatewayConfig,
    ImportReport,
    load_document,
    parse_config,
)
from gateway_core.errors import GatewayError
from gateway_core.process import StartupError

TIMEOUT_S = 60.0


class CommandError(Exception):
    """A CLI command failed; the message is for the user."""


def gateway_url(settings: Settings, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"


def admin_key(settings: Settings) -> str:
    """PMP_ADMIN_KEY, else the key the gateway generated into the data dir."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    path = settings.data_dir / ADMIN_KEY_FILE
    try:
        return path.read_text().strip()
    except OSError:
        raise CommandError(f"no admin key: set PMP_ADMIN_KEY or make {path} readable") from None


def _request(
    settings: Settings,
    url: str | None,
    path: str,
    params: dict[str, str],
    content: tuple[bytes, str] | None = None,
) -> str:
    """The body of a successful admin call (POST with `content`, else GET)."""
    base = gateway_url(settings, url)
    headers = {"authorization": f"Bearer {admin_key(settings)}"}
    try:
        with httpx.Client(base_url=base, timeout=TIMEOUT_S, headers=headers) as client:
            if content is None:
                response = client.get(path, params=params)
            else:
                body, content_type = content
                response = client.post(
                    path, params=params, content=body, headers={"content-type": content_type}
                )
    except httpx.TransportError as error:
        raise CommandError(f"no gateway answers at {base} ({error}); pass --url") from None
    if response.status_code >= 400:
        raise CommandError(_error_message(response))
    return response.text


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:500]}"


def export_command(settings: Settings, url: str | None, fmt: str) -> None:
    """Print the running gateway's configuration to stdout."""
    sys.stdout.write(_request(settings, url, "/admin/export", {"format": fmt}))


def import_command(
    settings: Settings, url: str | None, file: Path, *, prune: bool, dry_run: bool
) -> None:
    """Send a configuration file to the running gateway and print what it changed."""
    try:
        content = file.read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read {file}: {error.strerror}") from None
    content_type = "application/json" if file.suffix == ".json" else "application/yaml"
    params = {"prune": str(prune).lower(), "dry_run": str(dry_run).lower()}
    text = _request(settings, url, "/admin/import", params, (content, content_type))
    print(describe_report(ImportReport.model_validate_json(text)))


def describe_report(report: ImportReport) -> str:
    """One line per section, e.g. `models: created a, b; unchanged c`."""
    lines = ["dry run: nothing was written"] if report.dry_run else []
    for section in ("models", "prompts"):
        counts = getattr(report, section).model_dump()
        parts = [f"{what} {', '.join(ids)}" for what, ids in counts.items() if ids]
        lines.append(f"{section}: {'; '.join(parts) or 'nothing'}")
    return "\n".join(lines)


def read_config_file(file: Path) -> GatewayConfig:
    """Read and validate a configuration file before anything starts."""
    try:
        content = file.read_bytes()
        return parse_config(load_document(content, json_only=file.suffix == ".json"))
    except OSError as error:
        raise StartupError(f"cannot read {file}: {error.strerror}") from None
    except GatewayError as error:
        raise StartupError(f"{file}: {error.message}") from None


async def apply_config(runtime: Runtime, config: GatewayConfig) -> ImportReport:
    """Apply a validated configuration at start-up (entries not in it are kept)."""
    try:
        return await ConfigAdmin(runtime.storage).apply(config)
    except GatewayError as error:
        raise StartupError(f"could not apply the configuration: {error.message}") from None
