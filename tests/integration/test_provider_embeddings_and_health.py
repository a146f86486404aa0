"""The rest of the provider protocol against the fakes: embeddings and the cheap check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway_core.domain.chat import ResolvedModel
from gateway_core.errors import InvalidRequestError, UpstreamError
from gateway_core.providers.registry import ProviderRegistry
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.azure_upstream import FakeAzureOpenAI
from tests.fakes.bedrock_upstream import FakeBedrock
from tests.fakes.gemini_upstream import FakeGemini


@pytest.fixture
async def registry() -> AsyncIterator[ProviderRegistry]:
    async with httpx.AsyncClient() as http:
        providers = ProviderRegistry(http)
        yield providers
        providers.close()


def _model(provider: str, base_url: str, **fields: object) -> ResolvedModel:
    return ResolvedModel.model_validate(
        {"id": "m", "version": 1, "provider": provider, "base_url": base_url, **fields}
        | {"upstream_model": fields.get("upstream_model", "text-model")}
    )


async def test_gemini_embeds_in_one_batch_and_checks_its_model(registry: ProviderRegistry) -> None:
    async with FakeGemini(api_key="g-key") as fake:
        model = _model("gemini", fake.base_url)
        gemini = registry.get("gemini")
        result = await gemini.embed(model, {"input": ["ab", "abcd"]}, "g-key")
        assert [item["embedding"][0] for item in result["data"]] == [2.0, 4.0]
        assert [item["index"] for item in result["data"]] == [0, 1]
        await gemini.check(model, "g-key")
        with pytest.raises(UpstreamError) as caught:
            await gemini.check(model, "wrong")
        assert caught.value.upstream_status == 400


async def test_azure_embeds_at_its_deployment_and_checks_with_entra_id(
    registry: ProviderRegistry,
) -> None:
    fake = FakeAzureOpenAI(api_key=None, deployments=("emb",), bearer_token="entra-token")
    await fake.start()
    try:
        model = _model("azure_openai", fake.base_url, deployment="emb", auth="entra_id")
        result = await registry.get("azure_openai").embed(model, {"input": "abc"}, "entra-token")
        assert result["data"][0]["embedding"][0] == 3.0
        with pytest.raises(UpstreamError) as caught:
            await registry.get("azure_openai").embed(model, {"input": "abc"}, "stale-token")
        assert caught.value.upstream_status == 401
    finally:
        await fake.stop()


async def test_anthropic_and_bedrock_check_and_anthropic_has_no_embeddings(
    registry: ProviderRegistry,
) -> None:
    async with (
        FakeAnthropic(api_key="a-key") as anthropic,
        FakeBedrock(access_key_id="AKIACHECK", region="us-east-1") as bedrock,
    ):
        claude = _model("anthropic", anthropic.base_url)
        await registry.get("anthropic").check(claude, "a-key")
        with pytest.raises(UpstreamError) as caught:
            await registry.get("anthropic").check(claude, "wrong")
        assert caught.value.upstream_status == 401
        titan = _model("bedrock", bedrock.base_url, region="us-east-1")
        await registry.get("bedrock").check(titan, "AKIACHECK:secret")
        with pytest.raises(UpstreamError) as caught:
            await registry.get("bedrock").check(titan, "AKIAWRONG:secret")
        assert caught.value.upstream_status == 403
        with pytest.raises(InvalidRequestError, match="embeddings is not supported"):
            await registry.get("anthropic").embed(claude, {"input": "x"}, None)
