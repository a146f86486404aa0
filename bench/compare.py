"""The gateway beside LiteLLM's proxy, in one run, on the same loopback upstream.

Everything runs on 127.0.0.1 and is started and stopped by this script, one system at a
time (the others are not running while one is measured, except the fake upstream):

* the fake OpenAI upstream (tests/fakes/openai_upstream.py) in its own process, measured
  directly as the floor;
* LiteLLM's proxy with 1 and with 2 workers, from a virtualenv of its own that the script
  creates on first use (bench/compare_litellm.py);
* `pmp-gateway serve` on its embedded default (Temporal dev server and PostgreSQL as child
  processes, fresh data dir), one model `bench` and one cached model on the upstream.

Each is loaded with the same POST /v1/chat/completions at concurrency 1 and 32 for a fixed
time (wrk when installed, else httpx); CPU seconds per request of every process (gateway,
Temporal server, PostgreSQL, Redis, LiteLLM's workers) come from /proc. The gateway also
gets: Temporal RPCs per call (the dev server's own request counters), CPU by thread,
streaming time to first token, cache-hit latency, and with `--soak N` the RSS of the
gateway and Temporal server over N more requests after a warm-up of N/10
(bench/compare_soak.py); `--profile` samples the
gateway with py-spy under c=1 load. Run from the repository root:

    .venv/bin/python bench/compare.py [--seconds 10] [--soak 100000] [--profile]

A report: exits 0 whether targets are met or not, 1 if requests failed, 2 if a system did
not start.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import compare_litellm
import compare_procs
import compare_report
import compare_soak
import httpx
from compare_load import Endpoint, LoadResult, run_load, serial_latencies
from compare_profile import by_component, start_recording, summarise
from harness import (
    ADMIN_KEY,
    UPSTREAM_KEY,
    Processes,
    StartupError,
    log_tail,
    start_gateway,
    start_upstream,
    stop_process,
)
from overhead import CACHED_MODEL_ID, MODEL_ID, create_cached_model, create_model, wait_ready

from temporal_workers.server_metrics import settled_frontend_requests

UPSTREAM_MODEL = "gpt-4o-mini"
HIGH = 32
# Operations a running worker makes whatever the traffic.
PERIODIC_RPCS = {"RecordWorkerHeartbeat", "DescribeNamespace", "GetSystemInfo"}


# The gateway's Python threads by their OS names: the event loop and workflow tasks.
PYTHON_THREADS = ("pmp-gateway", "workflow-proces")


@dataclass(frozen=True)
class Plan:
    seconds: float
    warmup_s: float
    stream_requests: int
    cache_requests: int
    soak: int
    soak_limit_s: float
    profile: bool
    gateway_only: bool = False  # iterating on the gateway: no LiteLLM phases, no ratios


@dataclass
class Row:
    """One system at one concurrency: the load's outcome and CPU ms per request by role."""

    system: str
    concurrency: int
    load: LoadResult
    cpu_ms: dict[str, float]


@dataclass
class Findings:
    rows: list[Row] = field(default_factory=list)
    ttft: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    cache_hit: list[float] = field(default_factory=list)
    rpcs_per_call: dict[str, float] = field(default_factory=dict)
    threads_ms: dict[str, float] = field(default_factory=dict)
    soak: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # compare_procs.python_speed_ms() at the start and at the end of the run.
    speed_ms: list[float] = field(default_factory=list)


async def measure_load(
    endpoint: Endpoint, probe: compare_procs.Probe, concurrency: int, plan: Plan
) -> Row:
    await run_load(endpoint, concurrency, plan.warmup_s)
    before = probe.cpu()
    load = await run_load(endpoint, concurrency, plan.seconds)
    after = probe.cpu()
    done = max(load.requests, 1)
    cpu_ms = {role: 1000 * (after[role] - before[role]) / done for role in after}
    return Row(endpoint.name, concurrency, load, cpu_ms)


async def measure_ttft(endpoint: Endpoint, plan: Plan, found: Findings) -> None:
    latencies, errors = await serial_latencies(endpoint, plan.stream_requests, stream=True)
    found.ttft[endpoint.name] = latencies
    found.errors[f"{endpoint.name} stream"] += errors


async def measure_direct(upstream_url: str, pid: int, plan: Plan, found: Findings) -> None:
    endpoint = Endpoint("upstream direct", upstream_url, UPSTREAM_KEY, UPSTREAM_MODEL)
    probe = compare_procs.Probe("upstream", pid)
    for concurrency in (1, HIGH):
        found.rows.append(await measure_load(endpoint, probe, concurrency, plan))
    await measure_ttft(endpoint, plan, found)


async def measure_litellm(
    workdir: Path, upstream_url: str, workers: int, plan: Plan, found: Findings
) -> None:
    base_url, key, process = await asyncio.to_thread(
        compare_litellm.start_litellm, workdir, upstream_url, workers
    )
    try:
        endpoint = Endpoint(f"LiteLLM {workers}w", base_url, key, compare_litellm.MODEL_NAME)
        probe = compare_procs.Probe("litellm", process.pid)
        for concurrency in (1, HIGH):
            found.rows.append(await measure_load(endpoint, probe, concurrency, plan))
        if workers == 1:
            await measure_ttft(endpoint, plan, found)
    finally:
        stop_process(process, f"LiteLLM {workers}w", 30.0)


async def count_rpcs(endpoint: Endpoint, pid: int, found: Findings, calls: int = 50) -> None:
    url = compare_procs.temporal_metrics_url(pid)
    if url is None:
        found.notes.append("no Temporal metrics endpoint found: RPCs per call not counted")
        return
    async with httpx.AsyncClient(timeout=10.0) as client:
        before = await settled_frontend_requests(client, url)
        await serial_latencies(endpoint, calls, stream=False, warmup=0)
        after = await settled_frontend_requests(client, url)
    found.rpcs_per_call = {
        op: (after[op] - before[op]) / calls
        for op in after
        if after[op] != before[op] and op not in PERIODIC_RPCS
    }


async def measure_threads(endpoint: Endpoint, pid: int, plan: Plan, found: Findings) -> None:
    """Gateway CPU by thread over a c=1 load: Python loop, Temporal core, pools."""
    before = compare_procs.thread_cpu(pid)
    load = await run_load(endpoint, 1, plan.seconds)
    after = compare_procs.thread_cpu(pid)
    done = max(load.requests, 1)
    found.threads_ms = {name: 1000 * (after[name] - before[name]) / done for name in after}


async def measure_profile(endpoint: Endpoint, pid: int, plan: Plan, found: Findings) -> None:
    out = Path(tempfile.gettempdir()) / f"pmp-bench-profile-{pid}.txt"
    recorder = start_recording(pid, plan.seconds, out)
    if recorder is None:
        found.notes.append("py-spy not found: no profile (see bench/README.md)")
        return
    load = await run_load(endpoint, 1, plan.seconds + 1)
    _, stderr = await asyncio.to_thread(recorder.communicate)
    if recorder.returncode != 0 or not out.exists():
        found.notes.append(f"py-spy failed: {stderr.decode(errors='replace')[-300:]}")
        return
    found.profile = [f"py-spy under c=1 load ({load.requests} calls), stacks in {out}"]
    python_ms = sum(ms for name, ms in found.threads_ms.items() if name.startswith(PYTHON_THREADS))
    found.profile += by_component(out, python_ms)
    found.profile += summarise(out)


async def measure_soak(endpoint: Endpoint, pid: int, plan: Plan, found: Findings) -> None:
    rate = next(r.load.rps for r in found.rows if r.system == "gateway" and r.concurrency == HIGH)
    samples, errors, seconds = await compare_soak.soak(
        endpoint, pid, HIGH, rate, plan.soak, plan.soak_limit_s
    )
    found.errors["gateway soak"] += errors
    found.soak = compare_soak.report(samples, errors, seconds)


async def measure_gateway(procs: Processes, upstream_url: str, plan: Plan, found: Findings) -> None:
    gateway_url, process = start_gateway(procs)
    async with httpx.AsyncClient(timeout=30.0) as client:
        await wait_ready(client, gateway_url, process)
        await create_model(client, gateway_url, upstream_url)
        await create_cached_model(client, gateway_url, upstream_url)
    endpoint = Endpoint("gateway", gateway_url, ADMIN_KEY, MODEL_ID)
    probe = compare_procs.Probe("gateway", process.pid)
    for concurrency in (1, HIGH):
        found.rows.append(await measure_load(endpoint, probe, concurrency, plan))
    await measure_ttft(endpoint, plan, found)
    cached = Endpoint("gateway cache", gateway_url, ADMIN_KEY, CACHED_MODEL_ID)
    found.cache_hit, errors = await serial_latencies(cached, plan.cache_requests, stream=False)
    found.errors["gateway cache"] += errors
    await count_rpcs(endpoint, process.pid, found)
    await measure_threads(endpoint, process.pid, plan, found)
    if plan.profile:
        await measure_profile(endpoint, process.pid, plan, found)
    if plan.soak:
        await measure_soak(endpoint, process.pid, plan, found)


async def benchmark(procs: Processes, plan: Plan) -> Findings:
    found = Findings(speed_ms=[compare_procs.python_speed_ms()])
    upstream_url = start_upstream(procs)
    assert procs.upstream is not None
    await measure_direct(upstream_url, procs.upstream.pid, plan, found)
    for workers in () if plan.gateway_only else (1, 2):
        await measure_litellm(procs.workdir, upstream_url, workers, plan, found)
    await measure_gateway(procs, upstream_url, plan, found)
    found.speed_ms.append(compare_procs.python_speed_ms())
    return found


def parse_args(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per load phase (10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each phase")
    parser.add_argument("--stream-requests", type=int, default=100)
    parser.add_argument("--cache-requests", type=int, default=200)
    parser.add_argument("--soak", type=int, default=0, help="requests in the memory soak")
    parser.add_argument(
        "--soak-time-limit", type=float, default=900.0, help="seconds, warm-up excluded (900)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway at c=1")
    parser.add_argument(
        "--gateway-only", action="store_true", help="skip LiteLLM (no target ratios)"
    )
    args = parser.parse_args(argv)
    return Plan(
        args.seconds,
        args.warmup,
        args.stream_requests,
        args.cache_requests,
        args.soak,
        args.soak_time_limit,
        args.profile,
        args.gateway_only,
    )


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    procs = Processes(Path(tempfile.mkdtemp(prefix="pmp-compare-")))
    try:
        if not plan.gateway_only:
            compare_litellm.ensure_litellm()
        found = asyncio.run(benchmark(procs, plan))
    except (StartupError, subprocess.CalledProcessError) as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        for log in sorted(procs.workdir.glob("*.log")):
            print(f"--- {log.name} ---\n{log_tail(log)}", file=sys.stderr)
        return 2
    finally:
        stop_process(procs.gateway, "gateway", 60.0)
        stop_process(procs.upstream, "fake upstream", 10.0)
        shutil.rmtree(procs.workdir, ignore_errors=True)
    compare_report.print_report(found, HIGH, compare_litellm.litellm_version())
    return 1 if sum(found.errors.values()) or any(r.load.errors for r in found.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
