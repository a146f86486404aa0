"""Builds the credential sources the settings configure."""

from __future__ import annotations

import httpx

from gateway_core.config import Settings
from gateway_core.credentials.aws_secrets_manager import AwsSecretsManagerSource
from gateway_core.credentials.base import CredentialResolver, CredentialSource, EnvCredentialSource
from gateway_core.credentials.env_policy import EnvNamePolicy
from gateway_core.credentials.vault import VaultSource

SOURCE_NAMES = ("env", "aws_secrets_manager", "vault")


def build_sources(settings: Settings, http: httpx.AsyncClient) -> dict[str, CredentialSource]:
    """env always; Secrets Manager when a region or endpoint is set; Vault when an address is."""
    sources: dict[str, CredentialSource] = {
        "env": EnvCredentialSource(policy=EnvNamePolicy(settings.credential_env_allow))
    }
    if settings.aws_secrets_manager_region or settings.aws_secrets_manager_endpoint_url:
        sources["aws_secrets_manager"] = AwsSecretsManagerSource(
            settings.aws_secrets_manager_region, settings.aws_secrets_manager_endpoint_url
        )
    if settings.vault_addr:
        sources["vault"] = VaultSource(
            http,
            settings.vault_addr,
            token=settings.vault_token.get_secret_value() if settings.vault_token else None,
            role_id=settings.vault_role_id,
            secret_id=(
                settings.vault_secret_id.get_secret_value() if settings.vault_secret_id else None
            ),
            approle_mount=settings.vault_approle_mount,
            kv_mount=settings.vault_kv_mount,
            namespace=settings.vault_namespace,
        )
    return sources


def build_resolver(settings: Settings, http: httpx.AsyncClient) -> CredentialResolver:
    """The worker's resolver: configured sources, values cached for the configured TTL."""
    return CredentialResolver(build_sources(settings, http), ttl_s=settings.credential_cache_ttl_s)
