"""Chat messages that reference stored prompts, driven through the official openai SDK."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import Gateway
from tests.fakes.openai_upstream import FakeOpenAI

SUPPORT = {
    "id": "support-agent",
    "name": "Support agent",
    "content": "You help with ${var:product:our product}. Be ${var:tone:brief}.",
}


async def _workflow_input(gateway: Gateway, run_id: str) -> dict[str, Any]:
    history = await gateway.runtime.temporal.runs.client.get_workflow_handle(run_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    # Payloads are encrypted in history: read the input as an operator with the key would.
    [plain] = await gateway.runtime.temporal.codec.decode([started.input.payloads[0]])
    return dict(json.loads(plain.data))


@pytest.fixture
async def support(gateway: Gateway, upstream: FakeOpenAI) -> Gateway:
    await gateway.add_model("fast-chat", upstream)
    response = await gateway.admin.post("/admin/prompts", json=SUPPORT)
    assert response.status_code == 201, response.text
    return gateway


async def test_system_prompt_reference_reaches_the_upstream_rendered_and_is_recorded(
    support: Gateway, upstream: FakeOpenAI
) -> None:
    raw = await support.openai().chat.completions.with_raw_response.create(
        model="fast-chat",
        messages=[
            {"role": "system", "prompt_id": "support-agent", "variables": {"product": "X"}},
            {"role": "user", "content": "hello"},
        ],
    )
    assert raw.parse().choices[0].message.content == "echo: hello"
    assert upstream.requests[-1].body["messages"] == [
        {"role": "system", "content": "You help with X. Be brief."},
        {"role": "user", "content": "hello"},
    ]
    recorded = await _workflow_input(support, raw.headers["x-pmp-run-id"])
    assert recorded["prompts"] == [{"prompt_id": "support-agent", "version": 1}]
    assert recorded["body"]["messages"][0] == {
        "role": "system",
        "content": "You help with X. Be brief.",
    }


async def test_pinned_prompt_version_renders_that_version_for_any_role(
    support: Gateway, upstream: FakeOpenAI
) -> None:
    update = {"name": "Support agent", "content": "Version two for ${var:product}."}
    assert (await support.admin.put("/admin/prompts/support-agent", json=update)).is_success
    raw = await support.openai().chat.completions.with_raw_response.create(
        model="fast-chat",
        messages=[
            {"role": "system", "prompt_id": "support-agent", "prompt_version": 1},
            {"role": "user", "prompt_id": "support-agent", "variables": {"product": "Y"}},
        ],
    )
    assert [m["content"] for m in upstream.requests[-1].body["messages"]] == [
        "You help with our product. Be brief.",
        "Version two for Y.",
    ]
    recorded = await _workflow_input(support, raw.headers["x-pmp-run-id"])
    assert recorded["prompts"] == [
        {"prompt_id": "support-agent", "version": 1},
        {"prompt_id": "support-agent", "version": 2},
    ]


async def test_streamed_chat_renders_prompt_references_too(
    support: Gateway, upstream: FakeOpenAI
) -> None:
    stream = await support.openai().chat.completions.create(
        model="fast-chat",
        messages=[{"role": "user", "prompt_id": "support-agent", "variables": {"tone": "kind"}}],
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: You help with our product. Be kind."
    assert upstream.requests[-1].body["stream"] is True


async def test_unknown_prompt_is_404_naming_it_and_nothing_is_called(
    support: Gateway, upstream: FakeOpenAI
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await support.openai().chat.completions.create(
            model="fast-chat",
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "system", "prompt_id": "no-such-prompt"},
            ],
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "prompt_not_found" and error["param"] == "messages[1].prompt_id"
    assert "no-such-prompt" in error["message"]
    with pytest.raises(openai.NotFoundError) as version:
        await support.openai().chat.completions.create(
            model="fast-chat",
            messages=[{"role": "system", "prompt_id": "support-agent", "prompt_version": 5}],
        )
    assert isinstance(version.value.body, dict)
    assert version.value.body["code"] == "version_not_found"
    assert upstream.requests == []


async def test_missing_variables_are_400_naming_them(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("fast-chat", upstream)
    body = {"id": "letter", "name": "Letter", "content": "Dear ${var:name}, ${var:body}"}
    await gateway.admin.post("/admin/prompts", json=body)
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.openai().chat.completions.create(
            model="fast-chat",
            messages=[{"role": "user", "prompt_id": "letter", "variables": {"other": 1}}],
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == "messages[0].variables" and error["code"] == "missing_variables"
    assert error["message"].endswith("without a default: name, body")
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"role": "system", "prompt_id": "support-agent", "content": "both"}, "messages[0]"),
        ({"role": "system", "content": "x", "variables": {"a": "b"}}, "messages[0]"),
        ({"role": "system", "prompt_id": "support-agent", "prompt_version": 0}, "prompt_version"),
        ({"role": "system", "prompt_id": "support-agent", "variables": {"a": [1]}}, "variables"),
    ],
)
async def test_malformed_prompt_references_are_400(
    support: Gateway, message: dict[str, Any], field: str
) -> None:
    response = await support.admin.post(
        "/v1/chat/completions", json={"model": "fast-chat", "messages": [message]}
    )
    assert response.status_code == 400
    assert field in response.json()["error"]["param"]
