"""Fixed-duration load on one endpoint: `wrk` when installed, else an httpx load generator.

wrk is preferred: at 32 connections a Python load generator would take a good part of the
two cores it shares with the systems it measures.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = {auth}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %f %f\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Endpoint:
    """Where a request goes and with which key and model name."""

    name: str
    base_url: str
    key: str
    model: str

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"

    def body(self, stream: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Say hello to the benchmark"}],
        }
        if stream:
            body["stream"] = True
        return body


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def run_wrk(endpoint: Endpoint, concurrency: int, seconds: float) -> LoadResult:
    """wrk for `seconds` with `concurrency` keep-alive connections (its own latency stats)."""
    script = WRK_SCRIPT.format(
        body=lua_string(json.dumps(endpoint.body())), auth=lua_string(f"Bearer {endpoint.key}")
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
        path = Path(file.name)
    threads = min(2, concurrency)
    argv = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds:.0f}s", "--timeout", "30s"]
    try:
        done = subprocess.run(
            [*argv, "-s", str(path), endpoint.chat_url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    finally:
        path.unlink(missing_ok=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {done.stdout[-500:]} {done.stderr[-500:]}")
    count, micros, socket_errors, status_errors, p50, p99 = line.split()[1:]
    return LoadResult(
        requests=int(count),
        seconds=int(micros) / 1e6,
        p50_ms=float(p50) / 1000,
        p99_ms=float(p99) / 1000,
        errors=int(socket_errors) + int(status_errors),
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def run_httpx(endpoint: Endpoint, concurrency: int, seconds: float) -> LoadResult:
    """The same load from this process, for machines without wrk."""
    latencies: list[float] = []
    errors = 0
    body = endpoint.body()
    headers = {"authorization": f"Bearer {endpoint.key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await client.post(endpoint.chat_url, json=body, headers=headers)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return LoadResult(
        len(latencies) + errors,
        wall,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        errors,
    )


async def run_load(endpoint: Endpoint, concurrency: int, seconds: float) -> LoadResult:
    if shutil.which("wrk"):
        return await asyncio.to_thread(run_wrk, endpoint, concurrency, seconds)
    return await run_httpx(endpoint, concurrency, seconds)


def has_content(line: str) -> bool:
    if not line.startswith("data:"):
        return False
    payload = line[5:].strip()
    if not payload or payload == "[DONE]":
        return False
    chunk = json.loads(payload)
    return any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices", []))


async def first_token_ms(client: httpx.AsyncClient, endpoint: Endpoint) -> float:
    """Time to the first SSE chunk that carries content; the stream is read to its end."""
    started = time.perf_counter()
    first: float | None = None
    headers = {"authorization": f"Bearer {endpoint.key}"}
    body = endpoint.body(stream=True)
    async with client.stream("POST", endpoint.chat_url, json=body, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{endpoint.name} stream answered {response.status_code}")
        async for line in response.aiter_lines():
            if first is None and has_content(line):
                first = (time.perf_counter() - started) * 1000
    if first is None:
        raise RuntimeError(f"{endpoint.name} stream ended without content")
    return first


async def serial_latencies(
    endpoint: Endpoint, count: int, *, stream: bool, warmup: int = 10
) -> tuple[list[float], int]:
    """`count` requests one after another (after `warmup`); latencies in ms and errors."""
    latencies: list[float] = []
    errors = 0
    headers = {"authorization": f"Bearer {endpoint.key}"}
    async with httpx.AsyncClient(timeout=30.0) as client:
        for index in range(warmup + count):
            try:
                if stream:
                    elapsed = await first_token_ms(client, endpoint)
                else:
                    started = time.perf_counter()
                    response = await client.post(
                        endpoint.chat_url, json=endpoint.body(), headers=headers
                    )
                    response.raise_for_status()
                    elapsed = (time.perf_counter() - started) * 1000
            except (httpx.HTTPError, RuntimeError):
                errors += index >= warmup
                continue
            if index >= warmup:
                latencies.append(elapsed)
    return latencies, errors
