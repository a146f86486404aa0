"""Maps a model's provider name to the adapter that calls it."""

from __future__ import annotations

from urllib.request import getproxies

import httpx

from gateway_core.errors import ConfigurationError
from gateway_core.metrics import GatewayMetrics
from gateway_core.providers.anthropic import AnthropicProvider
from gateway_core.providers.azure_openai import AzureOpenAIProvider
from gateway_core.providers.base import LlmProvider
from gateway_core.providers.bedrock import BedrockProvider
from gateway_core.providers.gemini import GeminiProvider
from gateway_core.providers.local import LocalProvider
from gateway_core.providers.openai import OpenAIProvider
from gateway_core.providers.transport import AiohttpTransport
from gateway_core.telemetry.genai import ObservedProvider
from gateway_core.telemetry.setup import Telemetry


class ProviderRegistry:
    """Holds one adapter per provider; the HTTP ones share one connection pool.

    With `metrics`, every adapter is handed out observed (GenAI metrics, and a span
    per call when `telemetry` traces): the one place every provider call passes.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        metrics: GatewayMetrics | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._bedrock = BedrockProvider()
        self._providers: dict[str, LlmProvider] = {
            "openai": OpenAIProvider(http),
            "azure_openai": AzureOpenAIProvider(http),
            "anthropic": AnthropicProvider(http),
            "gemini": GeminiProvider(http),
            "bedrock": self._bedrock,
            "local": LocalProvider(),
        }
        if metrics is not None:
            observed = telemetry or Telemetry.off()
            self._providers = {
                name: ObservedProvider(provider, name, metrics, observed)
                for name, provider in self._providers.items()
            }

    def get(self, name: str) -> LlmProvider:
        provider = self._providers.get(name)
        if provider is None:
            raise ConfigurationError(f"provider {name!r} is not supported")
        return provider

    def close(self) -> None:
        """Release what is not the shared HTTP pool (boto3's thread pool)."""
        self._bedrock.close()


def build_http_client(connect_timeout_s: float, max_connections: int) -> httpx.AsyncClient:
    """The shared upstream pool; per-attempt time limits come from the Temporal activity.

    Behind a proxy named in the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) the pool
    is httpx's own, which honours those and NO_PROXY; httpx ignores them for a client
    given a transport of its own.
    """
    timeout = httpx.Timeout(None, connect=connect_timeout_s)
    if _environment_proxies():
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        return httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False)
    return httpx.AsyncClient(
        transport=AiohttpTransport(max_connections=max_connections),
        timeout=timeout,
        follow_redirects=False,
    )


def _environment_proxies() -> bool:
    return any(scheme in getproxies() for scheme in ("http", "https", "all"))
