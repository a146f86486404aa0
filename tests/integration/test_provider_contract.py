"""One contract, every provider: the same openai SDK calls through the gateway work
whether the model is OpenAI, Azure OpenAI, Anthropic, Gemini or Bedrock.

Each provider's loopback fake speaks that provider's wire format and reports what it
understood as a provider-neutral `Seen`, so a translation mistake fails here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.conftest import Gateway
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.azure_upstream import FakeAzureOpenAI
from tests.fakes.bedrock_upstream import FakeBedrock
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.loopback import Scenario, Seen
from tests.fakes.openai_upstream import FakeOpenAI

KEY_ENV = "CONTRACT_UPSTREAM_API_KEY"
PROVIDERS = ["openai", "azure_openai", "anthropic", "gemini", "bedrock"]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
WEATHER_CALL = {
    "id": "call_w1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
}
# A 1x1 PNG.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
    "AAAABJRU5ErkJggg=="
)


def openai_seen(body: dict[str, Any]) -> Seen:
    """OpenAI request → provider-neutral view (the other fakes provide their own)."""
    view = Seen(tools=[t["function"]["name"] for t in body.get("tools", [])])
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            view.images += ["image/png" for p in content if p["type"] == "image_url"]
            content = "".join(p.get("text", "") for p in content if p["type"] == "text")
        if message["role"] in ("system", "developer"):
            view.system = content
        elif message["role"] == "tool":
            view.tool_results.append((message["tool_call_id"], content))
            view.turns.append(("user", content))
        else:
            for call in message.get("tool_calls") or []:
                arguments = json.loads(call["function"]["arguments"])
                view.tool_calls.append((call["function"]["name"], arguments))
            view.turns.append((message["role"], content or ""))
    return view


@dataclass
class Upstream:
    """A provider's fake and how a gateway model points at it."""

    provider: str
    fake: Any
    model: dict[str, Any]
    seen: Callable[[int], Seen]

    @property
    def requests(self) -> list[Any]:
        return list(self.fake.requests)


def _upstream(provider: str, monkeypatch: pytest.MonkeyPatch) -> Upstream:
    if provider == "openai":
        monkeypatch.setenv(KEY_ENV, "sk-contract-openai")
        fake: Any = FakeOpenAI(api_key="sk-contract-openai")
        model = {"model": "gpt-4o-mini"}
        return Upstream(provider, fake, model, lambda i: openai_seen(fake.requests[i].body))
    if provider == "azure_openai":
        monkeypatch.setenv(KEY_ENV, "azure-contract-key")
        fake = FakeAzureOpenAI(api_key="azure-contract-key", deployments=("prod-4o",))
        model = {"model": "gpt-4o", "deployment": "prod-4o", "api_version": "2024-10-21"}
        return Upstream(provider, fake, model, lambda i: openai_seen(fake.requests[i].body))
    if provider == "anthropic":
        monkeypatch.setenv(KEY_ENV, "sk-ant-contract")
        fake = FakeAnthropic(api_key="sk-ant-contract")
        return Upstream(provider, fake, {"model": "claude-sonnet-4-5"}, lambda i: fake.seen(i))
    if provider == "gemini":
        monkeypatch.setenv(KEY_ENV, "gemini-contract-key")
        fake = FakeGemini(api_key="gemini-contract-key")
        return Upstream(provider, fake, {"model": "gemini-2.5-flash"}, lambda i: fake.seen(i))
    monkeypatch.setenv(KEY_ENV, "AKIAFAKEBEDROCK:bedrock-contract-secret")
    fake = FakeBedrock(access_key_id="AKIAFAKEBEDROCK", region="eu-west-1")
    model = {"model": "anthropic.claude-3-haiku-20240307-v1:0", "region": "eu-west-1"}
    return Upstream(provider, fake, model, lambda i: fake.seen(i))


@pytest.fixture(params=PROVIDERS)
async def upstream_model(
    request: pytest.FixtureRequest, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Upstream]:
    """The provider's fake, running, and a gateway model `m` pointing at it."""
    upstream = _upstream(request.param, monkeypatch)
    await upstream.fake.start()
    body = {
        "id": "m",
        "provider": upstream.provider,
        "base_url": upstream.fake.base_url,
        "credential": {"source": "env", "name": KEY_ENV},
        **upstream.model,
    }
    created = await gateway.admin.post("/admin/models", json=body)
    assert created.status_code == 201, created.text
    try:
        yield upstream
    finally:
        await upstream.fake.stop()


async def test_plain_reply(gateway: Gateway, upstream_model: Upstream) -> None:
    completion = await gateway.openai().chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hello there"}]
    )
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens > completion.usage.completion_tokens
    assert upstream_model.seen(-1).turns == [("user", "hello there")]


async def test_system_prompt_reaches_the_provider_as_its_system_instruction(
    gateway: Gateway, upstream_model: Upstream
) -> None:
    completion = await gateway.openai().chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "hi"},
        ],
    )
    assert completion.choices[0].message.content == "echo: hi"
    seen = upstream_model.seen(-1)
    assert seen.system == "Answer in French."
    assert seen.turns == [("user", "hi")]


async def test_multi_turn_conversation_keeps_roles_and_order(
    gateway: Gateway, upstream_model: Upstream
) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Hello Ada"},
        {"role": "user", "content": "what is my name?"},
    ]
    completion = await gateway.openai().chat.completions.create(model="m", messages=messages)
    assert completion.choices[0].message.content == "echo: what is my name?"
    assert upstream_model.seen(-1).turns == [
        ("user", "my name is Ada"),
        ("assistant", "Hello Ada"),
        ("user", "what is my name?"),
    ]


async def test_tool_call_and_tool_result_round_trip(
    gateway: Gateway, upstream_model: Upstream
) -> None:
    client = gateway.openai()
    upstream_model.fake.enqueue(Scenario(tool_calls=[WEATHER_CALL]))
    question: Any = {"role": "user", "content": "weather in Oslo?"}
    first = await client.chat.completions.create(
        model="m", messages=[question], tools=[WEATHER_TOOL], tool_choice="auto"
    )
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Oslo"}
    assert upstream_model.seen(-1).tools == ["get_weather"]

    second = await client.chat.completions.create(
        model="m",
        tools=[WEATHER_TOOL],
        messages=[
            question,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": calls[0].id, "content": "18C and sunny"},
        ],
    )
    assert second.choices[0].finish_reason == "stop"
    seen = upstream_model.seen(-1)
    assert seen.tool_calls == [("get_weather", {"city": "Oslo"})]
    assert [content for _ref, content in seen.tool_results] == ["18C and sunny"]
    assert [role for role, _text in seen.turns] == ["user", "assistant", "user"]


async def test_streaming_text_arrives_in_chunks_with_finish_reason_and_usage(
    gateway: Gateway, upstream_model: Upstream
) -> None:
    stream = await gateway.openai().chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == "echo: one two three"
    assert len([p for p in pieces if p]) >= 4
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_consecutive_calls_reuse_one_upstream_connection(
    gateway: Gateway, upstream_model: Upstream, stream: bool
) -> None:
    # A response closed with its body unread drops its connection: against a real upstream,
    # every call would pay a new TCP and TLS handshake before its first token.
    client = gateway.openai()
    messages: Any = [{"role": "user", "content": "one two"}]
    for _ in range(3):
        if stream:
            chunks = await client.chat.completions.create(model="m", messages=messages, stream=True)
            assert "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            reply = await client.chat.completions.create(model="m", messages=messages)
            assert reply.choices[0].message.content
    ports = [record.client_port for record in upstream_model.requests]
    assert len(ports) == 3 and None not in ports
    assert len(set(ports)) == 1, ports


async def test_streaming_tool_call_arrives_as_openai_tool_call_deltas(
    gateway: Gateway, upstream_model: Upstream
) -> None:
    upstream_model.fake.enqueue(Scenario(tool_calls=[WEATHER_CALL]))
    stream = await gateway.openai().chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    ids: dict[int, str] = {}
    finish = None
    async for chunk in stream:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            if delta.id:
                ids[delta.index] = delta.id
            if delta.function and delta.function.name:
                names[delta.index] = names.get(delta.index, "") + delta.function.name
            if delta.function and delta.function.arguments:
                arguments[delta.index] = arguments.get(delta.index, "") + delta.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert names == {0: "get_weather"}
    assert json.loads(arguments[0]) == {"city": "Oslo"}
    assert ids[0]
    assert finish == "tool_calls"


async def test_upstream_429_is_retried_until_success(
    gateway: Gateway, upstream_model: Upstream
) -> None:
    upstream_model.fake.enqueue(Scenario(status=429, error_message="slow down"))
    completion = await gateway.openai().chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "echo: hi"
    assert len(upstream_model.requests) == 2


async def test_upstream_400_is_a_400_with_the_upstream_message_and_no_retry(
    gateway: Gateway, upstream_model: Upstream
) -> None:
    upstream_model.fake.enqueue(Scenario(status=400, error_message="prompt is too long"))
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.openai().chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert "prompt is too long" in caught.value.message
    assert len(upstream_model.requests) == 1


async def test_stream_broken_midway_ends_with_an_error_and_no_retry(
    gateway: Gateway, upstream_model: Upstream
) -> None:
    upstream_model.fake.enqueue(Scenario(content="a b c d", break_after_chunks=3))
    stream = await gateway.openai().chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    text = "".join(received)
    assert text and "a b c d".startswith(text) and text != "a b c d"
    assert "interrupted" in caught.value.message
    assert len(upstream_model.requests) == 1


async def test_image_input_reaches_the_provider_as_an_image(
    gateway: Gateway, upstream_model: Upstream
) -> None:
    content: Any = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    completion = await gateway.openai().chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}]
    )
    if upstream_model.provider not in ("openai", "azure_openai"):  # their fake echoes raw parts
        assert completion.choices[0].message.content == "echo: what is this?"
    assert upstream_model.seen(-1).images == ["image/png"]


UNSUPPORTED: dict[str, dict[str, Any]] = {
    "anthropic": {"n": 2},
    "gemini": {"logprobs": True},
    "bedrock": {"tools": [WEATHER_TOOL], "tool_choice": "none"},
}


# openai and azure_openai take every OpenAI feature the gateway sends: no case for them.
@pytest.mark.parametrize("upstream_model", list(UNSUPPORTED), indirect=True)
async def test_a_feature_the_provider_cannot_do_is_a_clear_400_before_any_upstream_call(
    gateway: Gateway, upstream_model: Upstream
) -> None:
    extra = UNSUPPORTED[upstream_model.provider]
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.openai().chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], **extra
        )
    assert f"not supported by provider {upstream_model.provider}" in caught.value.message
    assert upstream_model.requests == []
