"""Which credential sources are set up and reachable; never a secret value."""

from __future__ import annotations

import asyncio

import httpx

from gateway_core.config import Settings
from gateway_core.credentials.base import SourceStatus
from gateway_core.credentials.sources import SOURCE_NAMES, build_sources

CHECK_TIMEOUT_S = 5


class CredentialProviders:
    """Checks every known credential source the settings configure."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def statuses(self) -> list[SourceStatus]:
        """One status per known source, in SOURCE_NAMES order; unconfigured ones say so."""
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S, follow_redirects=False) as http:
            sources = build_sources(self._settings, http)
            checked = await asyncio.gather(*(source.check() for source in sources.values()))
        by_name = {status.source: status for status in checked}
        return [
            by_name.get(name) or SourceStatus(source=name, configured=False)
            for name in SOURCE_NAMES
        ]
