"""Credentials from AWS Secrets Manager (moto server) and Vault (loopback KV v2 + AppRole):
cached with a TTL, refetched when the upstream refuses them, and never shown anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import openai
import pytest
from moto.server import ThreadedMotoServer
from pydantic import SecretStr
from temporalio.client import WorkflowFailureError

from gateway_core.config import Settings
from gateway_core.credentials.aws_secrets_manager import AwsSecretsManagerSource
from gateway_core.credentials.base import CredentialResolver
from gateway_core.domain.models import CredentialRef
from gateway_core.errors import ConfigurationError
from gateway_core.process import free_port
from tests.conftest import Gateway, decrypted_payloads, running_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.vault_server import FakeVault

AWS_REGION = "eu-central-1"
VAULT_ROOT = "hvs.credentials-test-root"
ROLE_ID, ROLE_SECRET = "gateway-role", "approle-secret-id-value"
OLD_KEY, NEW_KEY = "sk-ant-old-secret-value-1", "sk-ant-new-secret-value-2"
VAULT_REF = {"source": "vault", "mount": "secret", "path": "llm/anthropic", "field": "api_key"}
MESSAGES: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto in server mode on a free loopback port, with fake AWS credentials in the env."""
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", AWS_REGION),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _put_secret(endpoint: str, name: str, value: str) -> None:
    client = boto3.client("secretsmanager", region_name=AWS_REGION, endpoint_url=endpoint)
    client.create_secret(Name=name, SecretString=value)


@pytest.fixture
async def anthropic_fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=OLD_KEY) as fake:
        yield fake


@pytest.fixture
async def vault() -> AsyncIterator[FakeVault]:
    async with FakeVault(root_token=VAULT_ROOT) as server:
        server.approles[ROLE_ID] = ROLE_SECRET
        server.put("secret", "llm/anthropic", {"api_key": OLD_KEY, "note": "rotated monthly"})
        yield server


@pytest.fixture
async def vault_gateway(settings: Settings, vault: FakeVault) -> AsyncIterator[Gateway]:
    """A gateway whose worker reads Vault with AppRole."""
    settings.vault_addr = vault.address
    settings.vault_role_id = ROLE_ID
    settings.vault_secret_id = SecretStr(ROLE_SECRET)
    async with running_gateway(settings) as gateway:
        yield gateway


async def _add_claude(gateway: Gateway, fake: FakeAnthropic, credential: dict[str, Any]) -> None:
    body = {
        "id": "claude",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "base_url": f"{fake.base_url}/v1",
        "credential": credential,
    }
    response = await gateway.admin.post("/admin/models", json=body)
    assert response.status_code == 201, response.text


async def test_secrets_manager_json_field_is_the_upstream_key(
    settings: Settings, moto_endpoint: str, anthropic_fake: FakeAnthropic
) -> None:
    _put_secret(moto_endpoint, "prod/llm", f'{{"anthropic": "{OLD_KEY}", "other": "x"}}')
    settings.aws_secrets_manager_region = AWS_REGION
    settings.aws_secrets_manager_endpoint_url = moto_endpoint
    async with running_gateway(settings) as gateway:
        credential = {"source": "aws_secrets_manager", "secret_id": "prod/llm"}
        await _add_claude(gateway, anthropic_fake, {**credential, "field": "anthropic"})
        completion = await gateway.openai().chat.completions.create(
            model="claude", messages=MESSAGES
        )
    assert completion.choices[0].message.content == "echo: hi"
    assert anthropic_fake.requests[-1].headers["x-api-key"] == OLD_KEY


async def test_secrets_manager_source_reads_plain_secrets_and_names_what_is_missing(
    moto_endpoint: str,
) -> None:
    _put_secret(moto_endpoint, "plain", "  sk-plain-value  ")
    _put_secret(moto_endpoint, "doc", '{"a": "1"}')
    source = AwsSecretsManagerSource(AWS_REGION, moto_endpoint)
    assert await source.fetch(CredentialRef(source="aws_secrets_manager", secret_id="plain")) == (
        "sk-plain-value"
    )
    missing_field = CredentialRef(source="aws_secrets_manager", secret_id="doc", field="b")
    with pytest.raises(ConfigurationError, match="has no field b"):
        await source.fetch(missing_field)
    with pytest.raises(ConfigurationError, match="does not exist") as caught:
        await source.fetch(CredentialRef(source="aws_secrets_manager", secret_id="nope"))
    assert caught.value.code == "credential_missing"
    status = await source.check()
    assert status.reachable and status.authenticated


async def test_vault_value_is_fetched_once_and_cached(
    vault_gateway: Gateway, vault: FakeVault, anthropic_fake: FakeAnthropic
) -> None:
    await _add_claude(vault_gateway, anthropic_fake, VAULT_REF)
    for _ in range(3):
        completion = await vault_gateway.openai().chat.completions.create(
            model="claude", messages=MESSAGES
        )
        assert completion.choices[0].message.content == "echo: hi"
    assert vault.reads == 1 and vault.logins == 1
    assert anthropic_fake.requests[-1].headers["x-api-key"] == OLD_KEY


async def test_rotated_key_is_refetched_after_the_upstream_refuses_the_cached_one(
    vault_gateway: Gateway, vault: FakeVault, anthropic_fake: FakeAnthropic
) -> None:
    await _add_claude(vault_gateway, anthropic_fake, VAULT_REF)
    client = vault_gateway.openai()
    await client.chat.completions.create(model="claude", messages=MESSAGES)
    # The key is rotated: Vault holds the new one, the upstream refuses the old one.
    vault.put("secret", "llm/anthropic", {"api_key": NEW_KEY})
    anthropic_fake.api_key = NEW_KEY
    completion = await client.chat.completions.create(model="claude", messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: hi"
    keys = [r.headers["x-api-key"] for r in anthropic_fake.requests]
    assert keys == [OLD_KEY, OLD_KEY, NEW_KEY]
    assert vault.reads == 2
    # Streams rotate too, before their first chunk.
    vault.put("secret", "llm/anthropic", {"api_key": OLD_KEY})
    anthropic_fake.api_key = OLD_KEY
    stream = await client.chat.completions.create(model="claude", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: hi"
    assert [r.headers["x-api-key"] for r in anthropic_fake.requests][-2:] == [NEW_KEY, OLD_KEY]


async def test_a_refused_key_that_did_not_change_is_not_retried(
    vault_gateway: Gateway, vault: FakeVault, anthropic_fake: FakeAnthropic
) -> None:
    await _add_claude(vault_gateway, anthropic_fake, VAULT_REF)
    anthropic_fake.api_key = NEW_KEY  # the upstream revoked the key; Vault was not updated
    with pytest.raises(openai.APIStatusError) as caught:
        await vault_gateway.openai().chat.completions.create(model="claude", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert len(anthropic_fake.requests) == 1 and vault.reads == 2


async def test_no_credential_value_reaches_history_logs_or_error_bodies(
    vault_gateway: Gateway,
    vault: FakeVault,
    anthropic_fake: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    anthropic_fake.quote_keys = True  # the upstream quotes refused keys in its errors
    await _add_claude(vault_gateway, anthropic_fake, VAULT_REF)
    client = vault_gateway.openai()
    ok = await client.chat.completions.with_raw_response.create(model="claude", messages=MESSAGES)
    stream = await client.chat.completions.with_raw_response.create(
        model="claude", messages=MESSAGES, stream=True
    )
    async for _chunk in stream.parse():
        pass
    anthropic_fake.api_key = "sk-ant-something-else"  # now every key we hold is refused
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="claude", messages=MESSAGES)
    error_text = caught.value.response.text
    assert "invalid x-api-key" in error_text and "[redacted]" in error_text
    secrets = [OLD_KEY, ROLE_SECRET, *[t for t in vault.tokens if t != VAULT_ROOT]]
    assert all(secret not in error_text for secret in secrets)
    run_ids = [
        ok.headers["x-pmp-run-id"],
        stream.headers["x-pmp-run-id"],
        caught.value.response.headers["x-pmp-run-id"],
    ]
    for run_id in run_ids:
        handle = vault_gateway.runtime.temporal.runs.client.get_workflow_handle(run_id)
        # The answer is handed over before its run closes: read the whole history.
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
        history = await handle.fetch_history()
        raw = b"".join(event.SerializeToString() for event in history.events)
        plain = await decrypted_payloads(vault_gateway, history)
        assert b"echo: hi" in plain or b"invalid x-api-key" in plain  # the search sees text
        assert all(secret.encode() not in raw + plain for secret in secrets)
    assert caplog.records  # the logs were captured
    assert all(secret not in caplog.text for secret in secrets)


async def test_credential_sources_are_listed_with_reachability_and_no_values(
    settings: Settings, moto_endpoint: str, vault: FakeVault
) -> None:
    settings.aws_secrets_manager_region = AWS_REGION
    settings.aws_secrets_manager_endpoint_url = moto_endpoint
    settings.vault_addr = vault.address
    settings.vault_role_id = ROLE_ID
    settings.vault_secret_id = SecretStr(ROLE_SECRET)
    async with running_gateway(settings) as gateway:
        response = await gateway.admin.get("/admin/credentials/providers")
        assert response.status_code == 200
        listed = {entry["source"]: entry for entry in response.json()["data"]}
        assert listed["env"]["configured"] and listed["env"]["reachable"]
        assert listed["aws_secrets_manager"]["reachable"] is True
        assert listed["vault"]["reachable"] is True and listed["vault"]["authenticated"] is True
        assert listed["vault"]["settings"]["auth"] == "approle"
        assert ROLE_SECRET not in response.text and "hvs." not in response.text
        settings.vault_addr = f"http://127.0.0.1:{free_port()}"
        settings.aws_secrets_manager_endpoint_url = None
        settings.aws_secrets_manager_region = None
        response = await gateway.admin.get("/admin/credentials/providers")
    listed = {entry["source"]: entry for entry in response.json()["data"]}
    assert listed["vault"]["reachable"] is False
    assert listed["aws_secrets_manager"] == {
        "source": "aws_secrets_manager",
        "configured": False,
        "reachable": None,
        "authenticated": None,
        "detail": "",
        "settings": {},
    }


async def test_resolver_cache_expires_after_its_ttl() -> None:
    now = [0.0]

    class Counting:
        name, cacheable, calls = "vault", True, 0

        async def fetch(self, ref: CredentialRef) -> str:
            self.calls += 1
            return f"value-{self.calls}"

        async def check(self) -> Any:
            raise NotImplementedError

    source = Counting()
    resolver = CredentialResolver({"vault": source}, ttl_s=60, clock=lambda: now[0])
    ref = CredentialRef(source="vault", path="p")
    assert await resolver.resolve(ref) == "value-1"
    now[0] = 59
    assert await resolver.resolve(ref) == "value-1"
    now[0] = 61
    assert await resolver.resolve(ref) == "value-2"
    resolver.invalidate(ref)
    assert await resolver.resolve(ref) == "value-3"
    await asyncio.sleep(0)
