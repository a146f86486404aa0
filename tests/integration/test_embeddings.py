"""POST /v1/embeddings through the official openai SDK: local, OpenAI-compatible, Bedrock.

Each call is an EmbeddingWorkflow run on the real Temporal dev server; the upstreams are
loopback fakes speaking the providers' wire formats.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import openai
import pytest

from gateway_api.assembly.services import build_services
from gateway_core.providers.local import LocalEmbedder
from tests.conftest import Gateway
from tests.fakes.bedrock_upstream import FakeBedrock
from tests.fakes.openai_upstream import FakeOpenAI, Scenario, fake_vector

LOCAL_MODEL = {
    "id": "local-embed",
    "provider": "local",
    "model": "wordllama",
    "kind": "embedding",
    "dimensions": 256,
}
TEXTS = ["How do I reset my password?", "Invoices are sent monthly.", "ünïcödé ✓"]
BEDROCK_KEY_ENV = "BEDROCK_TEST_KEYS"


async def _create(gateway: Gateway, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await gateway.admin.post(path, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _openai_embedder(
    gateway: Gateway, model_id: str, upstream: FakeOpenAI, dimensions: int = 16
) -> None:
    await gateway.add_model(
        model_id, upstream, model="text-embedding-3-small", kind="embedding", dimensions=dimensions
    )


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


async def test_the_admin_body_as_written_serves_local_embeddings(gateway: Gateway) -> None:
    created = await _create(gateway, "/admin/models", LOCAL_MODEL)
    assert (created["kind"], created["dimensions"]) == ("embedding", 256)
    client = gateway.openai()
    raw = await client.embeddings.with_raw_response.create(
        model="local-embed", input=TEXTS, encoding_format="float"
    )
    answer = raw.parse()
    assert raw.headers["x-pmp-run-id"].startswith("emb-")
    assert raw.headers["x-pmp-served-by"] == "local-embed"
    assert [item.index for item in answer.data] == [0, 1, 2]
    assert all(len(item.embedding) == 256 for item in answer.data)
    assert all(abs(_norm(item.embedding) - 1) < 1e-5 for item in answer.data)
    assert answer.model == "local-embed"
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > len(TEXTS)
    # The run computed what the in-process embedder computes.
    local = await LocalEmbedder().embed_texts("wordllama", TEXTS, 256)
    assert np.allclose(np.array([item.embedding for item in answer.data]), local.vectors)
    assert answer.usage.prompt_tokens == local.tokens


async def test_base64_vectors_decode_to_the_float_ones(gateway: Gateway) -> None:
    await _create(gateway, "/admin/models", LOCAL_MODEL)
    floats = await gateway.admin.post(
        "/v1/embeddings", json={"model": "local-embed", "input": TEXTS[0]}
    )
    packed = await gateway.admin.post(
        "/v1/embeddings",
        json={"model": "local-embed", "input": TEXTS[0], "encoding_format": "base64"},
    )
    assert floats.status_code == packed.status_code == 200, packed.text
    encoded = packed.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = list(struct.unpack(f"<{256}f", base64.b64decode(encoded)))
    assert decoded == floats.json()["data"][0]["embedding"]
    # The SDK asks for base64 by default and decodes it: the same vector again.
    sdk = await gateway.openai().embeddings.create(model="local-embed", input=TEXTS[0])
    assert sdk.data[0].embedding == decoded


async def test_local_dimensions_are_a_normalised_prefix(gateway: Gateway) -> None:
    await _create(gateway, "/admin/models", LOCAL_MODEL)
    client = gateway.openai()
    full = await client.embeddings.create(model="local-embed", input=TEXTS, encoding_format="float")
    short = await client.embeddings.create(
        model="local-embed", input=TEXTS, dimensions=64, encoding_format="float"
    )
    for whole, part in zip(full.data, short.data, strict=True):
        prefix = np.array(whole.embedding[:64])
        assert np.allclose(part.embedding, prefix / np.linalg.norm(prefix), atol=1e-6)
    with pytest.raises(openai.BadRequestError, match="dimensions 64, 128, 256"):
        await client.embeddings.create(model="local-embed", input="x", dimensions=100)


async def test_openai_compatible_upstream_gets_the_request_in_its_format(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await _openai_embedder(gateway, "oa-embed", upstream)
    client = gateway.openai()
    answer = await client.embeddings.create(model="oa-embed", input=TEXTS[:2], user="u-1")
    for item, text in zip(answer.data, TEXTS[:2], strict=True):
        assert np.allclose(item.embedding, fake_vector(text, 16), atol=1e-6)
    sent = upstream.requests[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.body == {
        "input": TEXTS[:2],
        "encoding_format": "float",
        "model": "text-embedding-3-small",
        "user": "u-1",
    }
    assert answer.usage.prompt_tokens == sum(len(text.split()) for text in TEXTS[:2])
    # A smaller size is asked of the upstream; token arrays pass through as they are.
    short = await client.embeddings.create(model="oa-embed", input=[[1, 2, 3]], dimensions=8)
    assert upstream.requests[-1].body["dimensions"] == 8
    assert upstream.requests[-1].body["input"] == [[1, 2, 3]]
    assert np.allclose(short.data[0].embedding, fake_vector([1, 2, 3], 8), atol=1e-6)


async def test_a_chain_of_embedding_models_falls_back(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    await _openai_embedder(gateway, "embed-a", upstream)
    await _openai_embedder(gateway, "embed-b", backup)
    steps = [{"model_id": "embed-a", "max_retries": 0}, {"model_id": "embed-b"}]
    await _create(gateway, "/admin/chains", {"id": "embed-pair", "name": "pair", "steps": steps})
    upstream.enqueue(Scenario(status=503))
    raw = await gateway.openai().embeddings.with_raw_response.create(
        model="embed-pair", input="fallback please"
    )
    assert raw.headers["x-pmp-served-by"] == "embed-b"
    assert raw.headers["x-pmp-fallbacks"] == "1"
    assert np.allclose(raw.parse().data[0].embedding, fake_vector("fallback please", 16), atol=1e-6)
    assert len(upstream.requests) == len(backup.requests) == 1


async def test_models_of_the_wrong_kind_are_refused(gateway: Gateway, upstream: FakeOpenAI) -> None:
    await _create(gateway, "/admin/models", LOCAL_MODEL)
    await gateway.add_model("chatty", upstream)
    client = gateway.openai()
    with pytest.raises(openai.BadRequestError, match="`local-embed` is an embedding model"):
        await client.chat.completions.create(
            model="local-embed", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.BadRequestError, match="`chatty` is a chat model"):
        await client.embeddings.create(model="chatty", input="hi")
    mixed = {
        "id": "mixed",
        "name": "m",
        "steps": [{"model_id": "chatty"}, {"model_id": "local-embed"}],
    }
    refused = await gateway.admin.post("/admin/chains", json=mixed)
    assert refused.status_code == 400
    assert "must all be chat models or all embedding models" in refused.json()["error"]["message"]
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dimensions": None}, "embedding models need `dimensions`"),
        ({"kind": "chat"}, "`dimensions` applies to embedding models only"),
        ({"dimensions": 300}, "local model wordllama has dimensions 64, 128, 256"),
        ({"model": "e5"}, "provider local has no model 'e5'"),
        ({"base_url": "http://127.0.0.1:1"}, "takes no base_url or credential"),
        ({"provider": "anthropic"}, "provider anthropic has no embedding models"),
    ],
)
async def test_model_definitions_are_checked(
    gateway: Gateway, fields: dict[str, Any], message: str
) -> None:
    refused = await gateway.admin.post("/admin/models", json={**LOCAL_MODEL, **fields})
    assert refused.status_code == 400, refused.text
    assert message in refused.text


async def test_requests_the_chain_cannot_take_are_refused(gateway: Gateway) -> None:
    await _create(gateway, "/admin/models", LOCAL_MODEL)
    client = gateway.openai()
    with pytest.raises(openai.BadRequestError, match="takes text only, not token arrays"):
        await client.embeddings.create(model="local-embed", input=[1, 2, 3])
    with pytest.raises(openai.BadRequestError, match="at most 2048 inputs"):
        await client.embeddings.create(model="local-embed", input=["x"] * 2049)
    with pytest.raises(openai.APIStatusError, match="fit one run's result") as caught:
        await client.embeddings.create(model="local-embed", input=["x"] * 1500)
    assert caught.value.status_code == 413
    with pytest.raises(openai.BadRequestError, match="may not exceed"):
        await client.embeddings.create(model="local-embed", input="x", dimensions=512)
    empty = await gateway.admin.post("/v1/embeddings", json={"model": "local-embed", "input": ""})
    assert empty.status_code == 400


async def test_keys_need_permission_for_the_embedding_model(gateway: Gateway) -> None:
    await _create(gateway, "/admin/models", LOCAL_MODEL)
    body = {"id": "narrow", "name": "narrow", "permissions": {"models": ["other-model"]}}
    key = (await _create(gateway, "/admin/api-keys", body))["key"]
    narrow = openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError, match="may not use model 'local-embed'"):
        await narrow.embeddings.create(model="local-embed", input="hi")


async def test_embed_texts_serves_the_knowledge_bases(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await _create(gateway, "/admin/models", LOCAL_MODEL)
    await _openai_embedder(gateway, "oa-embed", upstream)
    embedder = build_services(gateway.runtime).embeddings
    local = await embedder.embed_texts("local-embed", TEXTS)
    assert (local.served_by, len(local.vectors), len(local.vectors[0])) == ("local-embed", 3, 256)
    assert upstream.requests == []
    remote = await embedder.embed_texts("oa-embed", TEXTS)
    assert remote.served_by == "oa-embed"
    assert np.allclose(remote.vectors[2], fake_vector(TEXTS[2], 16), atol=1e-6)
    assert len(upstream.requests) == 1


@pytest.fixture
async def bedrock(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeBedrock]:
    monkeypatch.setenv(BEDROCK_KEY_ENV, "AKIAFAKEBEDROCK:fake-secret")
    async with FakeBedrock() as fake:
        yield fake


async def _bedrock_model(
    gateway: Gateway, fake: FakeBedrock, model_id: str, model: str, dimensions: int = 256
) -> None:
    body = {
        "id": model_id,
        "provider": "bedrock",
        "model": model,
        "kind": "embedding",
        "dimensions": dimensions,
        "region": "us-east-1",
        "base_url": fake.base_url,
        "credential": {"source": "env", "name": BEDROCK_KEY_ENV},
    }
    await _create(gateway, "/admin/models", body)


async def test_bedrock_titan_embeds_one_text_per_invoke(
    gateway: Gateway, bedrock: FakeBedrock
) -> None:
    await _bedrock_model(gateway, bedrock, "titan", "amazon.titan-embed-text-v2:0")
    answer = await gateway.openai().embeddings.create(model="titan", input=TEXTS)
    for item, text in zip(answer.data, TEXTS, strict=True):
        assert np.allclose(item.embedding, fake_vector(text, 256), atol=1e-6)
    paths = {request.path for request in bedrock.requests}
    assert paths == {"/model/amazon.titan-embed-text-v2:0/invoke"}
    assert sorted(request.body["inputText"] for request in bedrock.requests) == sorted(TEXTS)
    assert all(request.body["dimensions"] == 256 for request in bedrock.requests)
    assert answer.usage.prompt_tokens == sum(len(text.split()) for text in TEXTS)


async def test_bedrock_cohere_embeds_in_batches_of_96(
    gateway: Gateway, bedrock: FakeBedrock
) -> None:
    await _bedrock_model(gateway, bedrock, "cohere", "cohere.embed-v4:0")
    texts = [f"document number {i}" for i in range(100)]
    answer = await gateway.openai().embeddings.create(
        model="cohere", input=texts, extra_body={"input_type": "search_query"}
    )
    # The two calls go out concurrently: their order is not fixed.
    assert sorted(len(request.body["texts"]) for request in bedrock.requests) == [4, 96]
    assert bedrock.requests[0].body["input_type"] == "search_query"
    assert bedrock.requests[0].body["output_dimension"] == 256
    assert np.allclose(
        answer.data[99].embedding, fake_vector(["search_query", texts[99]], 256), atol=1e-6
    )
    assert answer.usage.prompt_tokens == 300


async def test_bedrock_refusals_reach_the_caller_as_400(
    gateway: Gateway, bedrock: FakeBedrock
) -> None:
    await _bedrock_model(gateway, bedrock, "cohere3", "cohere.embed-english-v3", 1024)
    client = gateway.openai()
    with pytest.raises(openai.BadRequestError, match="only Cohere Embed v4"):
        await client.embeddings.create(model="cohere3", input="x", dimensions=128)
    assert bedrock.requests == []
    answer = await client.embeddings.create(model="cohere3", input="x")
    assert len(answer.data[0].embedding) == 1024
    assert "output_dimension" not in bedrock.requests[0].body
    bedrock.enqueue(Scenario(status=400, error_message="Input is too long for requested model."))
    with pytest.raises(openai.BadRequestError, match="too long"):
        await client.embeddings.create(model="cohere3", input="x")
