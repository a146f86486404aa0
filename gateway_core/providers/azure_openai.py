"""Azure OpenAI: OpenAI's wire format at deployment URLs with an `api-version` query."""

from __future__ import annotations

from urllib.parse import quote

from gateway_core.domain.chat import ResolvedModel
from gateway_core.providers.openai import OpenAIProvider

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(OpenAIProvider):
    """`{endpoint}/openai/deployments/{deployment}/...?api-version=`; api-key or Entra ID."""

    name = "azure_openai"

    def _url(self, model: ResolvedModel, path: str) -> str:
        endpoint = (model.base_url or "").rstrip("/").removesuffix("/openai")
        version = quote(model.api_version or DEFAULT_API_VERSION, safe="")
        if path == "models":
            # The cheap check: the resource's model list, which needs a valid credential.
            return f"{endpoint}/openai/models?api-version={version}"
        deployment = quote(model.deployment or model.upstream_model, safe="")
        return f"{endpoint}/openai/deployments/{deployment}/{path}?api-version={version}"

    def _auth_headers(self, model: ResolvedModel, api_key: str | None) -> dict[str, str]:
        if not api_key:
            return {}
        if model.auth == "entra_id":
            return {"authorization": f"Bearer {api_key}"}
        return {"api-key": api_key}
