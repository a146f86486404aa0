"""Hardening 1 and 4: callback URLs reach only allowed addresses, and each operation's
callbacks are signed with a secret of its own."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway_core.callbacks import SIGNATURE_HEADER, verify
from gateway_core.config import Settings
from tests.conftest import Gateway, openai_error, running_gateway
from tests.fakes.openai_upstream import FakeOpenAI
from tests.replay_scenarios import CallbackReceiver

MESSAGES = [{"role": "user", "content": "call me back"}]


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    async with CallbackReceiver() as running:
        yield running


@pytest.fixture
async def strict_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """A gateway on the default outbound policy (the test settings allow loopback)."""
    async with running_gateway(settings.model_copy(update={"callback_allow": ""})) as gateway:
        yield gateway


async def _submit(gateway: Gateway, callback_url: str) -> httpx.Response:
    body = {"model": "m", "messages": MESSAGES, "callback_url": callback_url}
    return await gateway.admin.post("/v1/chat/completions?async=true", json=body)


async def _settled_callback(gateway: Gateway, operation_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        document = (await gateway.admin.get(f"/v1/operations/{operation_id}")).json()
        callback = document.get("callback") or {}
        if callback.get("status") in ("delivered", "failed"):
            return dict(callback)
        assert time.monotonic() < deadline, document
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/ok",
        "http://localhost:{port}/ok",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/ok",
        "http://10.0.0.7/hook",
    ],
)
async def test_a_callback_to_a_private_address_is_refused_at_request_time(
    strict_gateway: Gateway, upstream: FakeOpenAI, receiver: CallbackReceiver, url: str
) -> None:
    await strict_gateway.add_model("m", upstream)
    port = receiver.port
    error = openai_error(await _submit(strict_gateway, url.format(port=port)), 400)
    assert error["code"] == "outbound_address_refused"
    assert error["param"] == "callback_url"
    assert "PMP_" not in error["message"]
    assert not upstream.requests  # no run was started


async def test_a_name_resolving_to_loopback_is_refused_when_connecting(
    strict_gateway: Gateway, upstream: FakeOpenAI, receiver: CallbackReceiver
) -> None:
    # "127.1" is a host name to the request-time check but resolves to 127.0.0.1: only
    # the check on the address actually connected to can refuse it.
    await strict_gateway.add_model("m", upstream)
    port = receiver.port
    accepted = await _submit(strict_gateway, f"http://127.1:{port}/ok")
    assert accepted.status_code == 202, accepted.text
    callback = await _settled_callback(strict_gateway, accepted.json()["operation_id"])
    assert callback["status"] == "failed"
    assert not receiver.delivered
    # Only delivered / failed: nothing says why, so it maps nothing.
    assert set(callback) <= {"status", "delivered", "attempts", "delivered_at"}


async def test_the_allow_setting_opens_loopback_and_the_state_says_only_delivered(
    gateway: Gateway, upstream: FakeOpenAI, receiver: CallbackReceiver
) -> None:
    assert gateway.runtime.settings.callback_allow == "127.0.0.1/32"
    await gateway.add_model("m", upstream)
    accepted = await _submit(gateway, receiver.url("/ok"))
    assert accepted.status_code == 202, accepted.text
    callback = await _settled_callback(gateway, accepted.json()["operation_id"])
    assert callback["status"] == "delivered"
    assert "status_code" not in callback
    assert "error" not in callback
    assert len(receiver.delivered) == 1


class SignatureReceiver(CallbackReceiver):
    """Keeps each delivery's raw body and signature header."""

    def __init__(self) -> None:
        super().__init__()
        self.signed: list[tuple[bytes, str]] = []

    async def _accept(self, request: Any) -> Any:
        self.signed.append((await request.body(), request.headers.get(SIGNATURE_HEADER, "")))
        return await super()._accept(request)


async def test_each_operation_signs_its_callbacks_with_its_own_secret(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    await gateway.add_model("m", upstream)
    async with SignatureReceiver() as receiver:
        first = (await _submit(gateway, receiver.url("/ok"))).json()
        second = (await _submit(gateway, receiver.url("/ok"))).json()
        for accepted in (first, second):
            await _settled_callback(gateway, accepted["operation_id"])
    assert first["callback_secret"].startswith("whsec_")
    assert first["callback_secret"] != second["callback_secret"]
    by_operation = {json.loads(body)["operation_id"]: (body, sig) for body, sig in receiver.signed}
    body, signature = by_operation[first["operation_id"]]
    assert verify(first["callback_secret"].encode(), body, signature)
    # The other operation's receiver cannot check (or forge) this one's callbacks.
    assert not verify(second["callback_secret"].encode(), body, signature)
    # The secret is shown once: not on the operation document.
    document = (await gateway.admin.get(f"/v1/operations/{first['operation_id']}")).json()
    assert "callback_secret" not in json.dumps(document)
