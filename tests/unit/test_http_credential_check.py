"""An http_request credential goes only where the stored workflow version's step sends it.

Anyone who can start a UserWorkflow on the task queue could otherwise pair a stored
credential reference with their own URL: the worker checks each use against the stored
version before the credential is read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from activities.model_check import HttpCredentialCheck, ModelMismatchError
from gateway_core.errors import NotFoundError
from gateway_core.userflows.definition import WorkflowVersion
from gateway_core.userflows.runs import HttpRequestInput

AUTH = {"credential": {"source": "env", "name": "PARTNER_API_KEY"}}


def _version(url: str) -> WorkflowVersion:
    step = {"name": "call", "type": "http_request", "method": "POST", "url": url, "auth": AUTH}
    return WorkflowVersion.model_validate(
        {
            "id": "flow",
            "version": 3,
            "name": "Flow",
            "steps": [step],
            "created_at": datetime.now(UTC),
        }
    )


class _Versions:
    def __init__(self, version: WorkflowVersion) -> None:
        self.version = version
        self.reads = 0

    async def get_version(self, entity_id: str, version: int) -> WorkflowVersion:
        self.reads += 1
        if (entity_id, version) != (self.version.id, self.version.version):
            raise NotFoundError("no such version", code="version_not_found")
        return self.version


def _call(url: str) -> HttpRequestInput:
    """The input the genuine run sends for the stored step, to `url`."""
    auth = _version("https://any.example/").steps[0].auth
    assert auth is not None
    return HttpRequestInput(
        method="POST",
        url=url,
        credential=auth.model_dump(mode="json"),
        workflow_id="flow",
        workflow_version=3,
        step="call",
    )


async def test_the_stored_step_itself_passes_and_its_version_is_read_once() -> None:
    versions = _Versions(_version("https://api.example.com/v1/items/${request:id}"))
    check = HttpCredentialCheck(versions)
    await check.verify(_call("https://api.example.com/v1/items/7"))
    await check.verify(_call("https://API.example.com/v1/items/8"))
    assert versions.reads == 1


@pytest.mark.parametrize(
    "forgery",
    [
        {"url": "https://attacker.example/collect"},
        {"url": "http://api.example.com/v1/items/7"},  # another scheme: another origin
        {"url": "https://api.example.com:8443/v1/items/7"},
        {"method": "GET"},
        {"credential": {**AUTH, "credential": {"source": "env", "name": "OTHER_API_KEY"}}},
        {"step": "elsewhere"},
        {"workflow_version": 2},
        {"workflow_id": None},
    ],
)
async def test_a_use_the_stored_step_does_not_make_is_refused(forgery: dict[str, Any]) -> None:
    check = HttpCredentialCheck(
        _Versions(_version("https://api.example.com/v1/items/${request:id}"))
    )
    call = _call("https://api.example.com/v1/items/7").model_copy(update=forgery)
    with pytest.raises(ModelMismatchError) as refused:
        await check.verify(call)
    assert refused.value.code == "workflow_version_mismatch"


async def test_a_request_without_a_credential_is_not_checked() -> None:
    versions = _Versions(_version("https://api.example.com/x"))
    await HttpCredentialCheck(versions).verify(
        HttpRequestInput(method="GET", url="https://anywhere.example/")
    )
    assert versions.reads == 0


async def test_a_step_whose_template_picks_the_host_lets_the_input_choose_it() -> None:
    # The operator's definition lets the caller choose the destination: the check cannot
    # and does not narrow that; the outbound address policy still applies.
    check = HttpCredentialCheck(_Versions(_version("https://${request:host}/hook")))
    await check.verify(_call("https://partner.example/hook"))
