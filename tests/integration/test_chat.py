"""Chat completions through the gateway with the official openai SDK."""

from __future__ import annotations

import dataclasses

import httpx
import openai
import pytest

from gateway_api.app import create_app
from gateway_core.streaming.bus import InProcessStreamBus
from tests.conftest import ADMIN_KEY, UPSTREAM_KEY, Gateway, decrypted_payloads
from tests.fakes.openai_upstream import FakeOpenAI, Scenario


async def test_plain_completion_returns_upstream_answer_with_usage_and_run_id(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream, config={"temperature": 0.2, "max_tokens": 256})
    client = gateway.openai()
    raw = await client.chat.completions.with_raw_response.create(
        model="fast-chat", messages=[{"role": "user", "content": "hello there"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.usage is not None and completion.usage.total_tokens == 5
    run_id = raw.headers["x-pmp-run-id"]
    assert run_id.startswith("chat-")
    sent = upstream.requests[-1]
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["temperature"] == 0.2 and sent.body["max_tokens"] == 256
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    description = await gateway.runtime.temporal.runs.client.get_workflow_handle(run_id).describe()
    assert description.workflow_type == "ChatWorkflow"


async def test_stream_relays_chunks_in_openai_format_ending_with_done(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    client = gateway.openai()
    stream = await client.chat.completions.create(
        model="fast-chat", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(pieces) == "echo: one two three"
    assert len(pieces) > 3
    # The caller did not ask for usage, so no usage chunk reaches it.
    async with gateway.admin.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "fast-chat",
            "stream": True,
            "messages": [{"role": "user", "content": "a b"}],
        },
    ) as response:
        lines = [line async for line in response.aiter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)
    assert not any('"usage":{' in line for line in lines)


async def test_stream_with_include_usage_ends_with_a_usage_chunk(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    client = gateway.openai()
    stream = await client.chat.completions.create(
        model="fast-chat",
        messages=[{"role": "user", "content": "count me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


async def test_stream_result_is_recorded_in_the_run_history(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    client = gateway.openai()
    raw = await client.chat.completions.with_raw_response.create(
        model="fast-chat", messages=[{"role": "user", "content": "remember this"}], stream=True
    )
    run_id = raw.headers["x-pmp-run-id"]
    async for _chunk in raw.parse():
        pass
    handle = gateway.runtime.temporal.runs.client.get_workflow_handle(run_id)
    result = await handle.result()
    assert result["response"]["choices"][0]["message"]["content"] == "echo: remember this"
    assert result["response"]["usage"]["completion_tokens"] == 3
    history = await handle.fetch_history()
    # Payloads are encrypted in the history (hardening 2): search them once decrypted.
    raw_events = b"".join(event.SerializeToString() for event in history.events)
    assert b"remember this" not in raw_events
    plain = await decrypted_payloads(gateway, history)
    assert b"remember this" in plain  # the search can find payload text
    assert UPSTREAM_KEY.encode() not in plain


async def test_unknown_model_is_404_in_openai_shape(gateway: Gateway) -> None:
    client = gateway.openai()
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}]
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_found" and error["param"] == "model"


async def test_openai_fields_the_gateway_does_not_interpret_pass_through_untouched(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    upstream.enqueue(
        Scenario(
            tool_calls=[
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ]
        )
    )
    completion = await gateway.openai().chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[tool],
        tool_choice="auto",
        response_format={"type": "text"},
        seed=7,
        n=1,
        logprobs=False,
        user="u-1",
        extra_body={"vendor_flag": {"x": 1}},
    )
    sent = upstream.requests[-1].body
    assert sent["tools"] == [tool]
    assert sent["tool_choice"] == "auto"
    assert sent["response_format"] == {"type": "text"}
    assert (sent["seed"], sent["n"], sent["logprobs"], sent["user"]) == (7, 1, False, "u-1")
    assert sent["vendor_flag"] == {"x": 1}
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.arguments == '{"city": "Oslo"}'
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_request_parameters_override_model_defaults(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream, config={"temperature": 0.2, "max_tokens": 256})
    await gateway.openai().chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], temperature=1.5
    )
    sent = upstream.requests[-1].body
    assert sent["temperature"] == 1.5
    assert sent["max_tokens"] == 256
    assert sent["stream"] is False


async def test_stream_whose_chunks_went_to_another_process_is_answered_from_the_result(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    # Another serve process picked up the stream activity: this bus never sees its chunks.
    await gateway.add_model("m", upstream)
    providers = dataclasses.replace(gateway.runtime.providers, bus=InProcessStreamBus())
    detached = dataclasses.replace(gateway.runtime, providers=providers)
    app = create_app(gateway.runtime.settings, runtime=detached)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    client = openai.AsyncOpenAI(
        base_url="http://gw/v1", api_key=ADMIN_KEY, http_client=http, max_retries=0
    )
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "still whole"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: still whole"
    assert chunks[-1].usage is not None
    await http.aclose()


async def test_stream_usage_can_be_turned_off_for_servers_that_reject_stream_options(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("plain", upstream, stream_usage=False)
    await gateway.add_model("counted", upstream)
    for model, expected in (("plain", None), ("counted", {"include_usage": True})):
        stream = await gateway.openai().chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
        assert all(chunk.usage is None for chunk in chunks)
        assert upstream.requests[-1].body.get("stream_options") == expected
