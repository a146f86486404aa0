"""The whole configuration as one document: export, and import that refreshes caches."""

from __future__ import annotations

from typing import Any

from gateway_api.assembly.groups import StorageGroup
from gateway_core.config_io import (
    GatewayConfig,
    ImportReport,
    export_config,
    import_config,
    load_document,
    parse_config,
)


class ConfigAdmin:
    """Export and import over the storage group; every import drops the cached definitions."""

    def __init__(self, storage: StorageGroup) -> None:
        self._storage = storage

    async def export(self) -> dict[str, Any]:
        """Every model, chain and prompt, ordered by id."""
        storage = self._storage
        return await export_config(storage.models, storage.prompts, storage.chains)

    async def import_document(
        self, content: bytes, *, json_only: bool, prune: bool = False, dry_run: bool = False
    ) -> ImportReport:
        """Parse a JSON or YAML document (400 lists every problem in it) and apply it."""
        config = parse_config(load_document(content, json_only=json_only))
        return await self.apply(config, prune=prune, dry_run=dry_run)

    async def apply(
        self, config: GatewayConfig, *, prune: bool = False, dry_run: bool = False
    ) -> ImportReport:
        """Apply a validated configuration all or nothing, then forget cached definitions."""
        storage = self._storage
        report = await import_config(
            storage.pool, config, prune=prune, dry_run=dry_run, env_policy=storage.env_policy
        )
        self._storage.invalidate_all()
        return report
