"""Hardening 2 and 5: Temporal payloads are encrypted, an operator with the admin key
can decode them through the codec endpoint, and split processes share their secrets."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowFailureError, WorkflowHistory

from gateway_api.assembly import open_runtime
from gateway_core.config import Settings
from gateway_core.process import StartupError
from temporal_workers.payload_codec import PayloadKeyError, load_or_create_key, new_key_text
from tests.conftest import ADMIN_KEY, Gateway, openai_error, running_gateway
from tests.fakes.openai_upstream import FakeOpenAI, Scenario

PROMPT = "the secret recipe is forty-two parts basil"
UI_ORIGIN = "http://localhost:8233"


async def _completed_history(gateway: Gateway, upstream: FakeOpenAI) -> WorkflowHistory:
    await gateway.add_model("m", upstream)
    body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
    accepted = await gateway.admin.post("/v1/chat/completions?async=true", json=body)
    assert accepted.status_code == 202, accepted.text
    handle = gateway.runtime.temporal.runs.client.get_workflow_handle(
        accepted.json()["operation_id"]
    )
    result = await handle.result()
    assert PROMPT in json.dumps(result)  # the gateway itself reads it back
    return await handle.fetch_history()


def _input_payload(history: WorkflowHistory) -> dict[str, object]:
    started = history.events[0].workflow_execution_started_event_attributes
    payload = started.input.payloads[0]
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


async def test_history_read_without_the_key_shows_no_prompt_and_the_codec_decodes_it(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    history = await _completed_history(gateway, upstream)
    raw = history.to_json()  # what Temporal's database and Web UI hold
    assert "basil" not in raw
    assert base64.b64encode(b"basil").decode()[:6] not in raw
    assert "echo:" not in raw
    decoded = await gateway.admin.post(
        "/codec/decode", json={"payloads": [_input_payload(history)]}
    )
    assert decoded.status_code == 200, decoded.text
    plain = decoded.json()["payloads"][0]
    assert base64.b64decode(plain["metadata"]["encoding"]) == b"json/plain"
    assert PROMPT in base64.b64decode(plain["data"]).decode()
    # And back: encode makes a payload the codec decodes again.
    encoded = await gateway.admin.post("/codec/encode", json={"payloads": [plain]})
    again = await gateway.admin.post("/codec/decode", json=encoded.json())
    assert again.json()["payloads"][0]["data"] == plain["data"]


async def test_a_failure_message_is_not_readable_in_history_without_the_key(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    """An upstream's error text may quote the prompt: it is encrypted like the prompt."""
    await gateway.add_model("m", upstream)
    upstream.enqueue(Scenario(status=400, error_message="cannot cook forty-two parts basil"))
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    accepted = await gateway.admin.post("/v1/chat/completions?async=true", json=body)
    assert accepted.status_code == 202, accepted.text
    operation_id = accepted.json()["operation_id"]
    handle = gateway.runtime.temporal.runs.client.get_workflow_handle(operation_id)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    raw = (await handle.fetch_history()).to_json()
    assert "basil" not in raw and "upstream_bad_request" not in raw
    # The gateway, holding the key, still reads the failure back whole.
    document = (await gateway.admin.get(f"/v1/operations/{operation_id}")).json()
    assert document["status"] == "failed"
    assert "basil" in document["error"]["message"], document


async def test_operations_recorded_under_an_older_payload_key_still_list(
    settings: Settings, upstream: FakeOpenAI
) -> None:
    """After PMP_PAYLOAD_KEY changes, old runs cannot be decrypted: the list still answers
    and says so for those operations, instead of failing with a 500."""
    body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
    async with running_gateway(settings) as before:
        await before.add_model("m", upstream)
        accepted = await before.admin.post("/v1/chat/completions?async=true", json=body)
        operation_id = accepted.json()["operation_id"]
        await before.runtime.temporal.runs.client.get_workflow_handle(operation_id).result()
    rotated = settings.model_copy(update={"payload_key": SecretStr(new_key_text())})
    async with running_gateway(rotated) as after:
        listed = await after.admin.get("/v1/operations", params={"limit": 100})
        assert listed.status_code == 200, listed.text
        [old] = [d for d in listed.json()["data"] if d["operation_id"] == operation_id]
        assert old["status"] == "completed" and old["error"]["code"] == "payload_key_mismatch"
        shown = await after.admin.get(f"/v1/operations/{operation_id}")
        assert shown.status_code == 200 and shown.json()["error"]["code"] == "payload_key_mismatch"


async def test_the_codec_endpoint_needs_the_admin_key_and_allows_only_the_ui_origin(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    history = await _completed_history(gateway, upstream)
    body = {"payloads": [_input_payload(history)]}
    anonymous = await gateway.admin.post(
        "/codec/decode", json=body, headers={"authorization": "", "origin": UI_ORIGIN}
    )
    openai_error(anonymous, 401)
    assert anonymous.headers["access-control-allow-origin"] == UI_ORIGIN
    key_only = await gateway.admin.post(
        "/codec/decode",
        json=body,
        headers={"authorization": "Bearer pk_live_notthekey0000000000000000000000"},
    )
    openai_error(key_only, 401)
    basic = base64.b64encode(f"operator:{ADMIN_KEY}".encode()).decode()
    with_basic = await gateway.admin.post(
        "/codec/decode",
        json=body,
        headers={"authorization": f"Basic {basic}", "origin": UI_ORIGIN},
    )
    assert with_basic.status_code == 200
    assert with_basic.headers["access-control-allow-credentials"] == "true"
    preflight = await gateway.admin.options(
        "/codec/decode",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    ui_preflight = await gateway.admin.options(
        "/codec/decode", headers={"origin": UI_ORIGIN, "access-control-request-method": "POST"}
    )
    assert ui_preflight.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "authorization" in ui_preflight.headers["access-control-allow-headers"]


def test_the_payload_key_file_is_made_once_in_serve_mode_only(tmp_path: Path) -> None:
    with pytest.raises(PayloadKeyError):
        load_or_create_key(None, tmp_path, create=False)
    first = load_or_create_key(None, tmp_path, create=True)
    assert load_or_create_key(None, tmp_path, create=False) == first
    assert (tmp_path / "payload-key").stat().st_mode & 0o077 == 0
    configured = new_key_text()
    assert load_or_create_key(configured, tmp_path, create=False) != first
    with pytest.raises(PayloadKeyError):
        load_or_create_key("c2hvcnQ=", tmp_path, create=False)


@pytest.mark.parametrize("mode", ["api", "worker"])
@pytest.mark.parametrize("missing", ["key_hash_secret", "payload_key"])
async def test_split_processes_refuse_a_missing_shared_secret(
    settings: Settings, mode: str, missing: str
) -> None:
    # Before: each process generated its own secret into its own data dir, so on a
    # recreated container every stored key hash stopped matching.
    lacking = settings.model_copy(update={missing: None})
    with pytest.raises(StartupError, match=f"PMP_{missing.upper()}") as refused:
        async with open_runtime(lacking, mode):  # type: ignore[arg-type]
            pass
    assert "\n" not in str(refused.value)
    assert not (settings.data_dir / "key-hash-secret").exists()
