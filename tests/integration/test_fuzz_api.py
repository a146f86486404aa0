"""Hardening 8: schemathesis over the gateway's own OpenAPI document.

Every documented operation gets a few generated requests (admin key, loopback only);
no answer may be a 5xx other than the deliberate 502/503/504 of an upstream failing,
and every error answer has the OpenAI error shape. Outbound connections to anything
but loopback are refused for the duration, so generated base URLs, callback URLs or
provider defaults cannot leave the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import socket
import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode

from tests.conftest import ADMIN_KEY, Gateway, openai_error
from tests.fakes.openai_upstream import FakeOpenAI

EXAMPLES_PER_OPERATION = 10
NEGATIVE_EXAMPLES_PER_OPERATION = 4  # requests that break the schema
BUDGET_S = 90.0
DELIBERATE = {502, 503, 504}  # an upstream failing, told apart from a gateway bug


def _is_loopback(host: Any) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection and name resolution that is not loopback."""
    resolve = socket.getaddrinfo
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        answers = [a for a in resolve(host, *args, **kwargs) if _is_loopback(a[4][0])]
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "non-loopback resolution refused")
        return answers

    def guarded(original: Any) -> Any:
        def attempt(self: socket.socket, address: Any) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
                raise ConnectionRefusedError("non-loopback connection refused by the fuzz test")
            return original(self, address)

        return attempt

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _problem(case: Case[Any], response: Any) -> str | None:
    status = response.status_code
    sent = f"query={case.query!r} body={case.body!r}"[:300]
    where = f"{case.method} {case.path} -> {status} ({sent})"
    if status >= 500 and status not in DELIBERATE:
        return f"{where}: {response.text[:300]}"
    if status >= 400 and "json" in response.headers.get("content-type", ""):
        error = response.json().get("error") if isinstance(response.json(), dict) else None
        if not isinstance(error, dict) or not {"message", "type", "param", "code"} <= set(error):
            return f"{where}: not the OpenAI error format: {response.text[:300]}"
    return None


def _fuzz(schema: Any, base_url: str) -> tuple[list[str], int]:
    """Run every operation's examples (in a thread: the gateway serves on the test loop)."""
    problems: list[str] = []
    calls = 0
    deadline = time.monotonic() + BUDGET_S
    modes = [
        (GenerationMode.POSITIVE, EXAMPLES_PER_OPERATION),
        (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES_PER_OPERATION),
    ]
    for result, (mode, examples) in itertools.product(schema.get_all_operations(), modes):
        operation = result.ok()
        if time.monotonic() > deadline:
            problems.append(f"fuzz budget of {BUDGET_S} s spent before {operation.label}")
            break

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Case[Any]) -> None:
            nonlocal calls
            calls += 1
            response = case.call(
                base_url=base_url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
            )
            problem = _problem(case, response)
            if problem is not None:
                problems.append(problem)

        with contextlib.suppress(Unsatisfiable):  # nothing to break in a parameterless call
            run()
    return problems, calls


async def test_the_openapi_document_fuzzes_without_server_errors(
    gateway: Gateway, upstream: FakeOpenAI, loopback_only: None
) -> None:
    await gateway.add_model("m", upstream)
    spec = (await gateway.admin.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(spec)
    started = time.monotonic()
    problems, calls = await asyncio.to_thread(_fuzz, schema, gateway.base_url)
    elapsed = time.monotonic() - started
    assert calls > 0
    assert not problems, "\n".join(problems[:30])
    print(f"fuzzed {calls} requests in {elapsed:.1f} s")


async def test_values_postgresql_cannot_store_are_a_400_not_a_500(gateway: Gateway) -> None:
    # What the fuzz run found: NUL in a query value or in key metadata, and an interval
    # out of PostgreSQL's range, each reached the database and came back as a 500.
    nul_tag = await gateway.admin.get("/admin/prompts", params={"tag": "a\x00b"})
    assert openai_error(nul_tag, 400)["code"] == "unstorable_value"
    key = {"id": "nul-meta", "name": "n", "metadata": {"note": "a\x00b"}}
    assert openai_error(await gateway.admin.post("/admin/api-keys", json=key), 400)
    huge = await gateway.admin.delete("/admin/cache", params={"older_than_seconds": 1e16})
    assert openai_error(huge, 400)["param"] is not None
