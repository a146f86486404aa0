"""Hardening 2: the worker trusts no workflow input about where credentials go."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError

from gateway_core.domain.chat import ChainStep, ChatResult, ChatWorkflowInput, ResolvedModel
from gateway_core.domain.embeddings import EmbeddingResult, EmbeddingWorkflowInput
from gateway_core.domain.models import CredentialRef
from tests.conftest import UPSTREAM_KEY_ENV, Gateway
from tests.fakes.openai_upstream import FakeOpenAI

MESSAGES = [{"role": "user", "content": "whose key is this?"}]


async def _run_directly(gateway: Gateway, model: ResolvedModel, *, stream: bool) -> None:
    """Start a ChatWorkflow the way anyone who can reach the Temporal frontend could."""
    client = gateway.runtime.temporal.runs.client
    body = {"messages": MESSAGES, **({"stream": True} if stream else {})}
    await client.execute_workflow(
        "ChatWorkflow",
        ChatWorkflowInput(steps=[ChainStep(model=model, max_retries=0)], body=body),
        id=f"forged-{uuid.uuid4().hex[:8]}",
        task_queue=gateway.runtime.settings.temporal_task_queue,
        result_type=ChatResult,
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_a_run_whose_model_is_not_its_stored_version_is_refused_unread(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI, stream: bool
) -> None:
    stored = await gateway.add_model("m", upstream)
    forged = ResolvedModel(
        id="m",
        version=stored["version"],
        provider="openai",
        upstream_model="gpt-4o-mini",
        base_url=backup.base_url,  # the attacker's server, with the real credential
        credential=CredentialRef(source="env", name=UPSTREAM_KEY_ENV),
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await _run_directly(gateway, forged, stream=stream)
    assert "not the stored model version" in str(failed.value.cause)
    assert not backup.requests
    assert not upstream.requests
    # The same model as stored is served.
    genuine = forged.model_copy(update={"base_url": upstream.base_url})
    await _run_directly(gateway, genuine, stream=False)
    assert len(upstream.requests) == 1


async def test_a_run_naming_a_version_that_does_not_exist_is_refused(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    ghost = ResolvedModel(
        id="m",
        version=99,
        provider="openai",
        upstream_model="gpt-4o-mini",
        base_url=upstream.base_url,
        credential=CredentialRef(source="env", name=UPSTREAM_KEY_ENV),
    )
    with pytest.raises(WorkflowFailureError):
        await _run_directly(gateway, ghost, stream=False)
    assert not upstream.requests


async def test_an_embedding_run_whose_model_is_not_its_stored_version_is_refused(
    gateway: Gateway, upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    stored = await gateway.add_model(
        "e", upstream, model="text-embedding-3-small", kind="embedding", dimensions=16
    )
    forged = ResolvedModel(
        id="e",
        version=stored["version"],
        provider="openai",
        upstream_model="text-embedding-3-small",
        base_url=backup.base_url,
        credential=CredentialRef(source="env", name=UPSTREAM_KEY_ENV),
        dimensions=16,
    )
    client = gateway.runtime.temporal.runs.client
    with pytest.raises(WorkflowFailureError) as failed:
        await client.execute_workflow(
            "EmbeddingWorkflow",
            EmbeddingWorkflowInput(steps=[ChainStep(model=forged, max_retries=0)], inputs=["hi"]),
            id=f"forged-{uuid.uuid4().hex[:8]}",
            task_queue=gateway.runtime.settings.temporal_task_queue,
            result_type=EmbeddingResult,
        )
    assert "not the stored model version" in str(failed.value.cause)
    assert not backup.requests and not upstream.requests
