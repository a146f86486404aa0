"""Chat completions through the gateway with the official openai SDK."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import UPSTREAM_KEY, Gateway
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
    description = await gateway.runtime.temporal.get_workflow_handle(run_id).describe()
    assert description.workflow_type == "ChatWorkflow"
