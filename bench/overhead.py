"""Gateway overhead benchmark: latency and throughput through the gateway vs. direct upstream.

What it measures (all on 127.0.0.1, everything started and stopped by this script):

* a fake OpenAI upstream (tests.fakes.openai_upstream.FakeOpenAI) runs in its own process;
* `pmp-gateway serve` runs as a user would start it, with a fresh temporary data dir
  (embedded Temporal and PostgreSQL), and one model `bench` pointing at the fake upstream;
* the load generator (this process, httpx.AsyncClient with keep-alive) sends the same
  POST /v1/chat/completions body directly to the upstream (the baseline) and through the
  gateway, and reports p50/p99 latency and throughput at concurrency 1 and 32, plus streaming
  time-to-first-token (first `data:` line carrying content) at concurrency 1.

It prints a table and the targets (p50 overhead at concurrency 1 <= 10 ms; >= 150 req/s at
concurrency 32) as met / not met. It is a report: it exits 0 whether or not targets are met,
1 if any request failed, 2 if the upstream or the gateway could not be started.

Run it from the repository root:

    .venv/bin/python bench/overhead.py [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import auth_cost  # bench/auth_cost.py, beside this script
import httpx
from harness import (
    ADMIN_KEY,
    HOST,
    UPSTREAM_KEY,
    UPSTREAM_KEY_ENV,
    Processes,
    StartupError,
    free_port,
    log_problems,
    log_tail,
    start_gateway,
    start_upstream,
    stop_process,
)

MODEL_ID = "bench"
CHAIN_ID = "bench-chain"
CACHED_MODEL_ID = "bench-cached"
UPSTREAM_MODEL = "gpt-4o-mini"
TARGET_OVERHEAD_MS = 10.0
TARGET_RPS = 150.0
READY_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 30.0

Send = Callable[[], Awaitable[float]]


class RequestFailed(RuntimeError):
    """One benchmark request did not get the expected answer."""


@dataclass(frozen=True)
class Target:
    """Where a benchmark request goes: the upstream directly, or the gateway."""

    name: str
    base_url: str
    key: str
    model: str

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


@dataclass
class Phase:
    """Outcome of one measured phase."""

    label: str
    requested: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0

    @property
    def done(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def rps(self) -> float:
        return self.done / self.wall_s if self.wall_s > 0 else math.nan


# --------------------------------------------------------------------------- gateway set-up


async def wait_ready(
    client: httpx.AsyncClient, base_url: str, process: subprocess.Popen[bytes]
) -> float:
    started = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise StartupError(f"gateway exited with code {process.returncode} during start-up")
        try:
            response = await client.get(f"{base_url}/ready", timeout=3.0)
            if response.status_code == 200:
                return time.monotonic() - started
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(0.25)
    raise StartupError(f"gateway not ready after {READY_TIMEOUT_S:.0f} s (last: {last})")


async def create_model(client: httpx.AsyncClient, gateway_url: str, upstream_url: str) -> None:
    body = {
        "id": MODEL_ID,
        "provider": "openai",
        "model": UPSTREAM_MODEL,
        "base_url": f"{upstream_url}/v1",
        "credential": {"source": "env", "name": UPSTREAM_KEY_ENV},
    }
    response = await client.post(
        f"{gateway_url}/admin/models", json=body, headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    if response.status_code != 201:
        raise StartupError(
            f"POST /admin/models answered {response.status_code}: {response.text[:500]}"
        )


async def create_cached_model(
    client: httpx.AsyncClient, gateway_url: str, upstream_url: str
) -> None:
    """A model whose answers are cached: repeated identical requests are hits."""
    body = {
        "id": CACHED_MODEL_ID,
        "provider": "openai",
        "model": UPSTREAM_MODEL,
        "base_url": f"{upstream_url}/v1",
        "credential": {"source": "env", "name": UPSTREAM_KEY_ENV},
        "cache": {"mode": "exact", "ttl_seconds": 600},
    }
    response = await client.post(
        f"{gateway_url}/admin/models", json=body, headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    if response.status_code != 201:
        raise StartupError(f"POST /admin/models answered {response.status_code}: {response.text}")


async def create_failing_chain(client: httpx.AsyncClient, gateway_url: str) -> None:
    """A two-step chain whose first model fails fast (connection refused), then `bench`."""
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    down = {
        "id": "bench-down",
        "provider": "openai",
        "model": UPSTREAM_MODEL,
        "base_url": f"http://{HOST}:{free_port()}/v1",
    }
    chain = {
        "id": CHAIN_ID,
        "name": "first step fails fast",
        "steps": [{"model_id": "bench-down", "max_retries": 0}, {"model_id": MODEL_ID}],
    }
    for path, body in (("/admin/models", down), ("/admin/chains", chain)):
        response = await client.post(f"{gateway_url}{path}", json=body, headers=headers)
        if response.status_code != 201:
            raise StartupError(f"POST {path} answered {response.status_code}: {response.text}")


# --------------------------------------------------------------------------- requests


def chat_body(target: Target, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": target.model,
        "messages": [{"role": "user", "content": "Say hello to the benchmark"}],
    }
    if stream:
        body["stream"] = True
    return body


def plain_sender(client: httpx.AsyncClient, target: Target) -> Send:
    body = chat_body(target, stream=False)

    async def send() -> float:
        started = time.perf_counter()
        response = await client.post(target.chat_url, json=body, headers=target.headers)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RequestFailed(f"HTTP {response.status_code}: {response.text[:200]}")
        if not response.json()["choices"][0]["message"]["content"]:
            raise RequestFailed("answer without content")
        return elapsed

    return send


def has_content(line: str) -> bool:
    if not line.startswith("data:"):
        return False
    payload = line[5:].strip()
    if not payload or payload == "[DONE]":
        return False
    chunk = json.loads(payload)
    if "error" in chunk:
        raise RequestFailed(f"stream error event: {payload[:200]}")
    return any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices", []))


def stream_sender(client: httpx.AsyncClient, target: Target) -> Send:
    body = chat_body(target, stream=True)

    async def send() -> float:
        started = time.perf_counter()
        first: float | None = None
        async with client.stream(
            "POST", target.chat_url, json=body, headers=target.headers
        ) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                raise RequestFailed(f"HTTP {response.status_code}: {text[:200]}")
            async for line in response.aiter_lines():
                if first is None and has_content(line):
                    first = (time.perf_counter() - started) * 1000
        if first is None:
            raise RequestFailed("stream ended without a content chunk")
        return first

    return send


async def run_phase(
    label: str, send: Send, count: int, concurrency: int, time_limit_s: float
) -> Phase:
    """Send `count` requests with `concurrency` in flight; stop early at the time limit."""
    phase = Phase(label, count)
    remaining = count
    deadline = time.perf_counter() + time_limit_s

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            try:
                phase.latencies_ms.append(await send())
            except Exception as exc:  # every failure is counted and reported
                phase.errors[f"{type(exc).__name__}: {exc}"[:240]] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.wall_s = time.perf_counter() - started
    return phase


# --------------------------------------------------------------------------- the benchmark


@dataclass(frozen=True)
class Plan:
    warmup: int
    serial: int
    concurrent: int
    concurrency: int
    stream: int
    time_limit_s: float


async def measure(
    client: httpx.AsyncClient, direct: Target, gateway: Target, plan: Plan
) -> list[Phase]:
    phases: list[Phase] = []
    senders = {t.name: plain_sender(client, t) for t in (direct, gateway)}
    streamers = {t.name: stream_sender(client, t) for t in (direct, gateway)}
    limit = plan.time_limit_s
    for name, send in senders.items():
        phases.append(await run_phase(f"warm-up {name}", send, plan.warmup, 1, limit))
    for name, send in senders.items():
        phases.append(await run_phase(f"{name} c=1", send, plan.serial, 1, limit))
    for name, send in senders.items():
        burst = 2 * plan.concurrency
        phases.append(
            await run_phase(f"warm-up {name} burst", send, burst, plan.concurrency, limit)
        )
        phases.append(
            await run_phase(
                f"{name} c={plan.concurrency}", send, plan.concurrent, plan.concurrency, limit
            )
        )
    for name, send in streamers.items():
        phases.append(await run_phase(f"warm-up {name} stream", send, 10, 1, limit))
        phases.append(await run_phase(f"{name} stream TTFT c=1", send, plan.stream, 1, limit))
    chain = plain_sender(client, Target("chain", gateway.base_url, gateway.key, CHAIN_ID))
    phases.append(await run_phase("warm-up chain", chain, 10, 1, limit))
    phases.append(await run_phase("chain fallback c=1", chain, plan.serial, 1, limit))
    cached = plain_sender(client, Target("cache", gateway.base_url, gateway.key, CACHED_MODEL_ID))
    phases.append(await run_phase("warm-up cache", cached, 10, 1, limit))
    phases.append(await run_phase("cache hit c=1", cached, plan.serial, 1, limit))
    phases.append(
        await run_phase(
            f"cache hit c={plan.concurrency}", cached, plan.concurrent, plan.concurrency, limit
        )
    )
    return phases


def fmt(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def print_table(phases: list[Phase]) -> None:
    print(f"{'phase':<28}{'done/asked':>12}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}{'errors':>8}")
    print("-" * 78)
    for phase in phases:
        if phase.label.startswith("warm-up"):
            continue
        print(
            f"{phase.label:<28}{f'{phase.done}/{phase.requested}':>12}"
            f"{fmt(phase.percentile(0.5)):>10}{fmt(phase.percentile(0.99)):>10}"
            f"{fmt(phase.rps, 1):>10}{sum(phase.errors.values()):>8}"
        )


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def print_targets(by_label: dict[str, Phase], concurrency: int) -> None:
    direct1, gateway1 = by_label["direct c=1"], by_label["gateway c=1"]
    directn = by_label[f"direct c={concurrency}"]
    gatewayn = by_label[f"gateway c={concurrency}"]
    sdirect, sgateway = by_label["direct stream TTFT c=1"], by_label["gateway stream TTFT c=1"]
    overhead = gateway1.percentile(0.5) - direct1.percentile(0.5)
    ratio = gateway1.percentile(0.5) / direct1.percentile(0.5)
    ttft_overhead = sgateway.percentile(0.5) - sdirect.percentile(0.5)
    print()
    print(f"p50 overhead at c=1:        {fmt(overhead)} ms  (gateway/direct p50 = {fmt(ratio)}x)")
    print(
        f"p99 overhead at c=1:        "
        f"{fmt(gateway1.percentile(0.99) - direct1.percentile(0.99))} ms"
    )
    print(
        f"throughput at c={concurrency}:        {fmt(gatewayn.rps, 1)} req/s "
        f"(gateway/direct = {fmt(gatewayn.rps / directn.rps, 3)})"
    )
    print(
        f"stream TTFT p50 overhead:   {fmt(ttft_overhead)} ms  "
        f"(gateway/direct = {fmt(sgateway.percentile(0.5) / sdirect.percentile(0.5))}x)"
    )
    chain = by_label["chain fallback c=1"]
    print(
        f"chain, first step fails:   {fmt(chain.percentile(0.5) - gateway1.percentile(0.5))} ms "
        f"added p50 vs a healthy single model (chain/single = "
        f"{fmt(chain.percentile(0.5) / gateway1.percentile(0.5))}x)"
    )
    hit1 = by_label["cache hit c=1"]
    hitn = by_label[f"cache hit c={concurrency}"]
    print(
        f"cache hit:                  p50 {fmt(hit1.percentile(0.5))} ms at c=1 "
        f"(direct {fmt(direct1.percentile(0.5))} ms); {fmt(hitn.rps, 1)} req/s at "
        f"c={concurrency} (direct {fmt(directn.rps, 1)} req/s)"
    )
    print()
    print("Targets")
    print(
        f"  p50 overhead at concurrency 1 <= {TARGET_OVERHEAD_MS:.0f} ms: "
        f"{fmt(overhead)} ms -> {verdict(overhead <= TARGET_OVERHEAD_MS)}"
    )
    print(
        f"  >= {TARGET_RPS:.0f} req/s at concurrency {concurrency}: "
        f"{fmt(gatewayn.rps, 1)} req/s -> {verdict(gatewayn.rps >= TARGET_RPS)}"
    )
    print(
        f"  cache hit p50 at concurrency 1 <= 2 ms: {fmt(hit1.percentile(0.5))} ms -> "
        f"{verdict(hit1.percentile(0.5) <= 2.0)}"
    )


def print_errors(phases: list[Phase]) -> int:
    total = 0
    for phase in phases:
        for message, count in phase.errors.most_common(5):
            print(f"  error in {phase.label}: {count} x {message}")
        total += sum(phase.errors.values())
        if phase.done + sum(phase.errors.values()) < phase.requested:
            print(
                f"  note: {phase.label} hit the time limit after "
                f"{phase.done + sum(phase.errors.values())} of {phase.requested} requests"
            )
    return total


async def benchmark(
    plan: Plan, upstream_url: str, gateway_url: str, gateway_process: subprocess.Popen[bytes]
) -> int:
    limits = httpx.Limits(
        max_connections=plan.concurrency * 2, max_keepalive_connections=plan.concurrency * 2
    )
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        ready_s = await wait_ready(client, gateway_url, gateway_process)
        print(f"gateway ready after {ready_s:.1f} s at {gateway_url}; upstream at {upstream_url}")
        await create_model(client, gateway_url, upstream_url)
        await create_failing_chain(client, gateway_url)
        await create_cached_model(client, gateway_url, upstream_url)
        direct = Target("direct", upstream_url, UPSTREAM_KEY, UPSTREAM_MODEL)
        gateway = Target("gateway", gateway_url, ADMIN_KEY, MODEL_ID)
        started = time.perf_counter()
        phases = await measure(client, direct, gateway, plan)
        elapsed = time.perf_counter() - started
    print(f"CPU cores: {os.cpu_count()}   measuring took {elapsed:.1f} s\n")
    print_table(phases)
    print_targets({phase.label: phase for phase in phases}, plan.concurrency)
    errors = print_errors(phases)
    if errors:
        print(f"\n{errors} request(s) failed")
    print("\nPer-request cost of API-key authentication and rate limiting (bench/auth_cost.py):")
    for line in await auth_cost.measure():
        print(f"  {line}")
    return 1 if errors else 0


def shutdown(procs: Processes) -> None:
    stop_process(procs.gateway, "gateway", 60.0)
    stop_process(procs.upstream, "fake upstream", 10.0)
    problems = log_problems(procs.gateway_log)
    if problems:
        print(f"\ngateway log has {len(problems)} error line(s); first ones:")
        for line in problems[:10]:
            print(f"  {line[:300]}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=1000,
        help="requests per target at the high concurrency (default 1000)",
    )
    parser.add_argument(
        "--serial-requests",
        type=int,
        default=300,
        help="requests per target at concurrency 1 (default 300)",
    )
    parser.add_argument(
        "--stream-requests",
        type=int,
        default=100,
        help="streaming requests per target at concurrency 1 (default 100)",
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--time-limit",
        type=float,
        default=60.0,
        help="seconds after which a phase stops sending (default 60)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary dir (logs, data) and print its path"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(
        args.warmup,
        args.serial_requests,
        args.requests,
        args.concurrency,
        args.stream_requests,
        args.time_limit,
    )
    procs = Processes(Path(tempfile.mkdtemp(prefix="pmp-bench-")))
    try:
        upstream_url = start_upstream(procs)
        gateway_url, gateway_process = start_gateway(procs)
        return asyncio.run(benchmark(plan, upstream_url, gateway_url, gateway_process))
    except StartupError as exc:
        print(
            f"start-up failed: {exc}\n--- gateway log tail ---\n{log_tail(procs.gateway_log)}",
            file=sys.stderr,
        )
        return 2
    finally:
        shutdown(procs)
        if args.keep:
            print(f"kept {procs.workdir}")
        else:
            shutil.rmtree(procs.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
