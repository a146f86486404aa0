"""Workflow overhead benchmark: the issue's `answer-with-context` workflow run through
`POST /v1/workflows/{id}/execute`, against the same three steps called one by one through
the HTTP API (knowledge-base search, CRAG score, chat completion).

Everything runs on 127.0.0.1 and is started and stopped by this script: the fake OpenAI
upstream in its own process, `pmp-gateway serve` with a fresh data dir, a model `gpt-4` on
the fake (also the CRAG judge, PMP_CRAG_JUDGE_MODEL), and a knowledge base `product-docs`
on pgvector with the local embedder. The documents are chosen so the hybrid scoring sends
one of them to the judge, as a real ambiguous hit would.

It prints the p50 (and p90) latency of each form, the difference and the ratio. It is a
report: it exits 0 whether or not the figures please, 1 if a request failed, 2 if start-up
failed.

    .venv/bin/python bench/workflow.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from harness import (
    ADMIN_KEY,
    HOST,
    UPSTREAM_KEY_ENV,
    Processes,
    StartupError,
    free_port,
    gateway_command,
    gateway_env,
    log_problems,
    log_tail,
    start_upstream,
    stop_process,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.test_user_workflows import DOCS, QUESTION  # noqa: E402  (path fix)
from tests.issue_examples import (  # noqa: E402
    ANSWER_WITH_CONTEXT,
    LOCAL_EMBED_MODEL,
    PRODUCT_DOCS_KB,
)

READY_TIMEOUT_S = 180.0
KB_ID = "product-docs"


def start_gateway(procs: Processes) -> tuple[str, subprocess.Popen[bytes]]:
    """`pmp-gateway serve` with the judge model configured."""
    port = free_port()
    env = gateway_env(procs.workdir, port) | {"PMP_CRAG_JUDGE_MODEL": "gpt-4"}
    log = procs.gateway_log.open("wb")
    procs.gateway = subprocess.Popen(
        gateway_command(),
        env=env,
        cwd=procs.workdir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    return f"http://{HOST}:{port}", procs.gateway


async def wait_ready(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartupError(f"gateway exited with code {process.returncode} during start-up")
        try:
            if (await client.get("/ready", timeout=3.0)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.25)
    raise StartupError(f"gateway not ready after {READY_TIMEOUT_S:.0f} s")


async def setup(client: httpx.AsyncClient, upstream_url: str) -> None:
    """The model, the knowledge base with its documents, and the workflow."""
    model = {
        "id": "gpt-4",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": f"{upstream_url}/v1",
        "credential": {"source": "env", "name": UPSTREAM_KEY_ENV},
    }
    writes: list[tuple[str, dict[str, Any]]] = [
        ("/admin/models", model),
        ("/admin/models", LOCAL_EMBED_MODEL),
        ("/admin/knowledge-bases", PRODUCT_DOCS_KB),
        (f"/v1/knowledge-bases/{KB_ID}/documents", {"documents": DOCS}),
        ("/admin/workflows", ANSWER_WITH_CONTEXT),
    ]
    for path, body in writes:
        response = await client.post(path, json=body)
        if response.status_code not in (200, 201):
            raise StartupError(f"POST {path} answered {response.status_code}: {response.text}")


async def checked(response: Awaitable[httpx.Response]) -> dict[str, Any]:
    answered = await response
    if answered.status_code != 200:
        raise RuntimeError(f"{answered.request.url.path}: {answered.status_code} {answered.text}")
    body: dict[str, Any] = answered.json()
    return body


async def as_workflow(client: httpx.AsyncClient) -> None:
    body = {"input": {"question": QUESTION}}
    await checked(client.post("/v1/workflows/answer-with-context/execute", json=body))


async def one_by_one(client: httpx.AsyncClient) -> None:
    """The workflow's steps as a client would chain them itself."""
    search = await checked(
        client.post(f"/v1/knowledge-bases/{KB_ID}/search", json={"query": QUESTION, "top_k": 10})
    )
    if not search["data"]:
        return
    documents = [
        {"id": h["id"], "content": h["content"], "score": h["score"]} for h in search["data"]
    ]
    score = await checked(
        client.post(
            "/v1/crag/score",
            json={
                "query": QUESTION,
                "documents": documents,
                "strategy": "hybrid",
                "correct_threshold": 0.5,
            },
        )
    )
    context = "\n\n".join(doc["content"] for doc in score["correct_documents"])
    message = f"Question: {QUESTION}\n\nContext:\n{context}"
    chat = {"model": "gpt-4", "messages": [{"role": "user", "content": message}]}
    await checked(client.post("/v1/chat/completions", json=chat))


async def timed(send: Callable[[], Awaitable[None]], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await send()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        await send()
        seconds.append(time.perf_counter() - started)
    return seconds


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


async def benchmark(
    runs: int, warmup: int, upstream_url: str, gateway_url: str, process: Any
) -> int:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=60) as client:
        await wait_ready(client, process)
        await setup(client, upstream_url)
        try:
            workflow = await timed(lambda: as_workflow(client), runs, warmup)
            steps = await timed(lambda: one_by_one(client), runs, warmup)
        except RuntimeError as error:
            print(f"request failed: {error}", file=sys.stderr)
            return 1
    wf50, st50 = percentile(workflow, 50), percentile(steps, 50)
    print(f"answer-with-context, {runs} sequential runs each (after {warmup} warm-up)")
    print(f"{'form':<34}{'p50 ms':>10}{'p90 ms':>10}")
    print(f"{'workflow (one execute call)':<34}{wf50:>10.1f}{percentile(workflow, 90):>10.1f}")
    print(f"{'steps one by one (3 HTTP calls)':<34}{st50:>10.1f}{percentile(steps, 90):>10.1f}")
    print(f"workflow - steps: {wf50 - st50:+.1f} ms at p50; ratio {wf50 / st50:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    procs = Processes(Path(tempfile.mkdtemp(prefix="pmp-bench-wf-")))
    try:
        upstream_url = start_upstream(procs)
        gateway_url, process = start_gateway(procs)
        return asyncio.run(benchmark(args.runs, args.warmup, upstream_url, gateway_url, process))
    except StartupError as exc:
        print(f"start-up failed: {exc}\n{log_tail(procs.gateway_log)}", file=sys.stderr)
        return 2
    finally:
        stop_process(procs.gateway, "gateway", 60.0)
        stop_process(procs.upstream, "fake upstream", 10.0)
        for line in log_problems(procs.gateway_log)[:10]:
            print(f"gateway log: {line[:300]}")
        shutil.rmtree(procs.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
