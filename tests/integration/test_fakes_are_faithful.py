"""The provider fakes speak the real wire formats: each official client library talks to
its fake as it would to the real service (so the contract tests prove something)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import boto3
import hvac
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.azure_upstream import FakeAzureOpenAI
from tests.fakes.bedrock_upstream import FakeBedrock
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.loopback import Scenario
from tests.fakes.vault_server import FakeVault

WEATHER_CALL = {
    "id": "toolu_01",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
}
ANTHROPIC_TOOL: Any = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key="sk-ant-faithful") as fake:
        yield fake


@pytest.fixture
async def fake_gemini() -> AsyncIterator[FakeGemini]:
    async with FakeGemini(api_key="gemini-faithful") as fake:
        yield fake


@pytest.fixture
async def fake_bedrock() -> AsyncIterator[FakeBedrock]:
    async with FakeBedrock(access_key_id="AKIAFAITHFUL", region="us-west-2") as fake:
        yield fake


def _anthropic(fake: FakeAnthropic) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key="sk-ant-faithful", base_url=fake.base_url, max_retries=0
    )


async def test_anthropic_sdk_reads_the_fake_message_and_its_stream(
    fake_anthropic: FakeAnthropic,
) -> None:
    client = _anthropic(fake_anthropic)
    message = await client.messages.create(
        model="claude-fake-model",
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hello"}],
    )
    assert message.content[0].type == "text" and message.content[0].text == "echo: hello"
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 2
    async with client.messages.stream(
        model="claude-fake-model", max_tokens=100, messages=[{"role": "user", "content": "a b c"}]
    ) as stream:
        text = await stream.get_final_text()
    assert text == "echo: a b c"
    assert fake_anthropic.requests[-1].headers["anthropic-version"]


async def test_anthropic_sdk_assembles_the_fake_streamed_tool_use(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.enqueue(Scenario(tool_calls=[WEATHER_CALL]))
    async with _anthropic(fake_anthropic).messages.stream(
        model="claude-fake-model",
        max_tokens=100,
        tools=[ANTHROPIC_TOOL],
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use" and block.input == {"city": "Oslo"}
    assert final.stop_reason == "tool_use"


async def test_anthropic_sdk_sees_the_fake_errors_as_the_real_ones(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.enqueue(Scenario(status=429, error_message="rate limited"))
    client = _anthropic(fake_anthropic)
    with pytest.raises(anthropic.RateLimitError) as caught:
        await client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert "rate limited" in str(caught.value)
    fake_anthropic.stream_error = "overloaded_error"
    fake_anthropic.enqueue(Scenario(content="a b c", break_after_chunks=2, error_message="busy"))
    with pytest.raises(anthropic.APIStatusError, match="busy"):
        async with client.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            await stream.get_final_text()
    wrong = anthropic.AsyncAnthropic(api_key="nope", base_url=fake_anthropic.base_url)
    with pytest.raises(anthropic.AuthenticationError):
        await wrong.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )


def _genai(fake: FakeGemini, api_key: str = "gemini-faithful") -> genai.Client:
    options = genai_types.HttpOptions(base_url=fake.root_url, api_version="v1beta")
    return genai.Client(api_key=api_key, http_options=options)


async def test_google_genai_sdk_reads_the_fake_reply_stream_and_function_call(
    fake_gemini: FakeGemini,
) -> None:
    client = _genai(fake_gemini)
    response = await client.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents="hello",
        config=genai_types.GenerateContentConfig(system_instruction="be brief"),
    )
    assert response.text == "echo: hello"
    assert response.usage_metadata is not None
    assert response.usage_metadata.candidates_token_count == 2
    assert fake_gemini.seen().system == "be brief"
    pieces = [
        chunk.text
        async for chunk in await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="one two"
        )
    ]
    assert "".join(p or "" for p in pieces) == "echo: one two" and len(pieces) == 3
    fake_gemini.enqueue(Scenario(tool_calls=[WEATHER_CALL]))
    declaration = genai_types.FunctionDeclaration(
        name="get_weather",
        parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    called = await client.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents="weather?",
        config=genai_types.GenerateContentConfig(
            tools=[genai_types.Tool(function_declarations=[declaration])],
            automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )
    assert called.function_calls is not None
    assert called.function_calls[0].name == "get_weather"
    assert called.function_calls[0].args == {"city": "Oslo"}


async def test_google_genai_sdk_sees_the_fake_errors_as_the_real_ones(
    fake_gemini: FakeGemini,
) -> None:
    fake_gemini.enqueue(Scenario(status=429, error_message="quota exceeded"))
    with pytest.raises(genai_errors.ClientError) as caught:
        await _genai(fake_gemini).aio.models.generate_content(model="g", contents="x")
    assert caught.value.code == 429 and "quota exceeded" in str(caught.value)
    with pytest.raises(genai_errors.ClientError) as caught:
        await _genai(fake_gemini, "wrong").aio.models.generate_content(model="g", contents="x")
    assert caught.value.code == 400 and "API key not valid" in str(caught.value)


def _bedrock(fake: FakeBedrock, access_key_id: str = "AKIAFAITHFUL") -> Any:
    return boto3.client(
        "bedrock-runtime",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        region_name="us-west-2",
        endpoint_url=fake.base_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key="faithful-secret",
    )


async def test_boto3_decodes_the_fake_converse_and_event_stream(
    fake_bedrock: FakeBedrock,
) -> None:
    client = _bedrock(fake_bedrock)
    messages = [{"role": "user", "content": [{"text": "hello"}]}]
    response = await asyncio.to_thread(
        client.converse, modelId="anthropic.claude-3-haiku-20240307-v1:0", messages=messages
    )
    assert response["output"]["message"]["content"] == [{"text": "echo: hello"}]
    assert response["stopReason"] == "end_turn" and response["usage"]["outputTokens"] == 2
    assert (
        fake_bedrock.requests[-1].path == "/model/anthropic.claude-3-haiku-20240307-v1:0/converse"
    )
    fake_bedrock.enqueue(Scenario(tool_calls=[WEATHER_CALL]))

    def stream_events() -> list[dict[str, Any]]:
        answer = client.converse_stream(modelId="m", messages=messages)
        return list(answer["stream"])

    events = await asyncio.to_thread(stream_events)
    kinds = [next(iter(event)) for event in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    start = events[1]["contentBlockStart"]["start"]["toolUse"]
    assert start == {"toolUseId": "toolu_01", "name": "get_weather"}
    pieces = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events[2:4]]
    assert "".join(pieces) == '{"city": "Oslo"}'


async def test_boto3_sees_the_fake_errors_and_stream_exceptions_as_the_real_ones(
    fake_bedrock: FakeBedrock,
) -> None:
    client = _bedrock(fake_bedrock)
    messages = [{"role": "user", "content": [{"text": "hello"}]}]
    fake_bedrock.enqueue(Scenario(status=429, error_message="Too many requests"))
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(client.converse, modelId="m", messages=messages)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(
            _bedrock(fake_bedrock, "AKIAWRONG").converse, modelId="m", messages=messages
        )
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"
    fake_bedrock.stream_exception = "ModelStreamErrorException"
    fake_bedrock.enqueue(Scenario(content="a b c", break_after_chunks=2, error_message="boom"))

    def stream_events() -> list[dict[str, Any]]:
        return list(client.converse_stream(modelId="m", messages=messages)["stream"])

    with pytest.raises(EventStreamError) as streamed:
        await asyncio.to_thread(stream_events)
    assert streamed.value.response["Error"]["Code"] == "modelStreamErrorException"


async def test_openai_sdk_azure_client_talks_to_the_fake_deployment() -> None:
    fake = FakeAzureOpenAI(api_key="azure-faithful", deployments=("prod",))
    await fake.start()
    try:
        client = openai.AsyncAzureOpenAI(
            azure_endpoint=fake.base_url,
            api_key="azure-faithful",
            api_version="2024-10-21",
            max_retries=0,
        )
        completion = await client.chat.completions.create(
            model="prod", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content == "echo: hi"
        assert fake.requests[-1].path == "/openai/deployments/prod/chat/completions"
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="other", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        await fake.stop()


async def test_hvac_reads_kv_v2_and_logs_in_with_approle_on_the_fake_vault() -> None:
    async with FakeVault(root_token="hvs.faithful-root") as vault:
        vault.put("secret", "llm/anthropic", {"api_key": "sk-from-vault"})
        vault.approles["role-1"] = "secret-1"

        def use_hvac() -> tuple[Any, Any, bool]:
            root = hvac.Client(url=vault.address, token="hvs.faithful-root")
            root.secrets.kv.v2.create_or_update_secret(
                path="llm/other", secret={"k": "v"}, mount_point="secret"
            )
            read = root.secrets.kv.v2.read_secret_version(
                path="llm/anthropic", mount_point="secret", raise_on_deleted_version=True
            )
            approle = hvac.Client(url=vault.address)
            login = approle.auth.approle.login(role_id="role-1", secret_id="secret-1")
            return read, login, approle.is_authenticated()

        read, login, authenticated = await asyncio.to_thread(use_hvac)
        assert read["data"]["data"] == {"api_key": "sk-from-vault"}
        assert read["data"]["metadata"]["version"] == 1
        assert login["auth"]["client_token"].startswith("hvs.")
        assert authenticated
        assert vault.secrets[("secret", "llm/other")] == {"k": "v"}
