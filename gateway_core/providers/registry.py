"""Maps a model's provider name to the adapter that calls it."""

from __future__ import annotations

import httpx

from gateway_core.errors import ConfigurationError
from gateway_core.providers.base import LlmProvider
from gateway_core.providers.openai import OpenAIProvider


class ProviderRegistry:
    """Holds one adapter per provider, all sharing one HTTP connection pool."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._providers: dict[str, LlmProvider] = {"openai": OpenAIProvider(http)}

    def get(self, name: str) -> LlmProvider:
        provider = self._providers.get(name)
        if provider is None:
            raise ConfigurationError(f"provider {name!r} is not supported")
        return provider


def build_http_client(connect_timeout_s: float, max_connections: int) -> httpx.AsyncClient:
    """The shared upstream pool; per-attempt time limits come from the Temporal activity."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(None, connect=connect_timeout_s),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=False,
    )
