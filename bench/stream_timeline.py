"""Where a stream's time to first token goes, from the gateway's own trace spans.

Starts the fake upstream, an OTLP/HTTP receiver on loopback and `pmp-gateway serve` with
tracing pointed at it, then sends streaming calls one at a time. Each call carries its
own `traceparent`, so its spans are found by trace id. The report gives, as medians over
the calls, when each step of the stream's path began, in ms after the gateway's HTTP
server span began, and when the client saw the first content chunk. Tracing costs time
of its own, so the figures are a little above an untraced stream's.

The workflow's own spans (its task running, its scheduling the activity) carry the
workflow's clock, the time its task started on the server, not when the code ran.

Each run's history adds the Temporal server's own times (event times, same clock): when it
recorded the run's start, the first workflow task's completion and the activity's start.
The calls go back to back, as compare.py's stream phase sends them, so each one starts
while the server still finishes the run before (its activity's completion, last workflow
task and close); `--pause-ms` waits between calls to show that share.

Run from the repository root:
`.venv/bin/python bench/stream_timeline.py [--calls N] [--pause-ms MS]`.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import httpx
from compare_load import has_content
from harness import (
    ADMIN_KEY,
    HOST,
    Processes,
    free_port,
    start_gateway,
    start_upstream,
    stop_process,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from overhead import MODEL_ID, create_model, wait_ready
from temporalio.client import Client

# The path of one stream, in the order its steps begin: a span name (a prefix when it
# ends with a space, the genai span being `chat <model>`) and what its start means.
MILESTONES = (
    ("StartWorkflow:ChatWorkflow", "run start requested (Temporal client)"),
    ("RunWorkflow:ChatWorkflow", "first workflow task runs"),
    ("StartActivity:chat_stream", "workflow schedules the stream activity"),
    ("RunActivity:chat_stream", "activity starts on the worker"),
    ("chat ", "provider call starts"),
    ("POST", "upstream HTTP request starts"),  # the HTTP client span: the method alone
)
SERVER_SPAN = "POST /v1/chat/completions"
# Events of the run's history, by their attribute names, and what their times mean.
SERVER_EVENTS = (
    ("workflow_execution_started_event_attributes", "server records the run's start"),
    ("workflow_task_completed_event_attributes", "server records the first task's completion"),
    ("activity_task_started_event_attributes", "server starts the stream activity"),
)
FIRST_CHUNK = "client reads the first content chunk"


class Receiver(http.server.BaseHTTPRequestHandler):
    """OTLP/HTTP traces: keeps each span's name and start time by trace id."""

    spans: ClassVar[dict[str, list[tuple[str, int]]]] = defaultdict(list)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans[span.trace_id.hex()].append((span.name, span.start_time_unix_nano))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def one_stream(client: httpx.AsyncClient, url: str, trace_id: str) -> tuple[int, str]:
    """Sends one streaming call; when its first content arrived (wall-clock ns), its run."""
    headers = {
        "authorization": f"Bearer {ADMIN_KEY}",
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
    }
    body = {"model": MODEL_ID, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    first = 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r:
        async for line in r.aiter_lines():
            if not first and has_content(line):
                first = time.time_ns()
    if r.status_code != 200 or not first:
        raise RuntimeError(f"stream answered {r.status_code} without content")
    return first, r.headers["x-pmp-run-id"]


def offsets(
    trace: list[tuple[str, int]], first_chunk_ns: int, server: dict[str, int]
) -> dict[str, float] | None:
    """Each milestone's start, the server's events and the first chunk, in ms after the
    HTTP server span's start."""
    starts = {name: start for name, start in trace}
    root = starts.get(SERVER_SPAN)
    if root is None:
        return None
    found: dict[str, float] = {}
    for prefix, label in MILESTONES:
        match = min(
            (s for n, s in trace if _named(n, prefix) and s >= root and n != SERVER_SPAN),
            default=None,
        )
        if match is not None:
            found[label] = (match - root) / 1e6
    for label, event_ns in server.items():
        found[label] = (event_ns - root) / 1e6
    found[FIRST_CHUNK] = (first_chunk_ns - root) / 1e6
    return found


async def server_events(address: str, run_ids: list[str]) -> dict[str, dict[str, int]]:
    """Each run's first event of each SERVER_EVENTS kind, as server wall-clock ns."""
    client = await Client.connect(address)
    found: dict[str, dict[str, int]] = {}
    for run_id in run_ids:
        history = await client.get_workflow_handle(run_id).fetch_history()
        times: dict[str, int] = {}
        for event in history.events:
            kind = event.WhichOneof("attributes")
            for wanted, label in SERVER_EVENTS:
                if kind == wanted and label not in times:
                    times[label] = event.event_time.ToNanoseconds()
        found[run_id] = times
    return found


def _named(name: str, wanted: str) -> bool:
    return name.startswith(wanted) if wanted.endswith(" ") else name == wanted


async def measure(url: str, temporal: str, calls: int, pause_s: float) -> list[dict[str, float]]:
    async with httpx.AsyncClient(timeout=30.0) as client:
        for _ in range(20):  # warm-up
            await one_stream(client, url, secrets.token_hex(16))
        firsts = {}
        for _ in range(calls):
            await asyncio.sleep(pause_s)
            trace_id = secrets.token_hex(16)
            firsts[trace_id] = await one_stream(client, url, trace_id)
    await asyncio.sleep(3.0)  # the batch span processor's delay, and the worker's spans
    server = await server_events(temporal, [run_id for _, run_id in firsts.values()])
    rows = [
        offsets(Receiver.spans.get(tid, []), ns, server[run_id])
        for tid, (ns, run_id) in firsts.items()
    ]
    return [row for row in rows if row is not None]


def report(rows: list[dict[str, float]], pause_ms: float) -> None:
    labels = [label for _, label in MILESTONES + SERVER_EVENTS] + [FIRST_CHUNK]
    medians = {
        label: statistics.median(values)
        for label in labels
        if (values := [row[label] for row in rows if label in row])
    }
    spacing = f"{pause_ms:.0f} ms apart" if pause_ms else "back to back"
    print(f"\nstream timeline, {len(rows)} calls {spacing}, median ms after the HTTP server span:")
    previous = 0.0
    for label in sorted(medians, key=medians.__getitem__):
        median = medians[label]
        print(f"  {median:7.2f}  (+{median - previous:5.2f})  {label}")
        previous = median
    for label in labels:
        if label not in medians:
            print(f"  {'-':>7}          {label} (not seen)")


async def run(calls: int, pause_ms: float) -> int:
    receiver = http.server.ThreadingHTTPServer((HOST, free_port()), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = (
        f"http://{HOST}:{receiver.server_address[1]}/v1/traces"
    )
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "200"
    procs = Processes(Path(tempfile.mkdtemp(prefix="pmp-timeline-")))
    try:
        upstream_url = start_upstream(procs)
        url, process = start_gateway(procs)
        async with httpx.AsyncClient(timeout=30.0) as client:
            await wait_ready(client, url, process)
            await create_model(client, url, upstream_url)
        if procs.temporal_address is None:
            raise RuntimeError("the gateway's Temporal address is unknown")
        rows = await measure(url, procs.temporal_address, calls, pause_ms / 1000)
        report(rows, pause_ms)
    finally:
        stop_process(procs.gateway, "gateway", 60.0)
        stop_process(procs.upstream, "fake upstream", 10.0)
        receiver.shutdown()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--pause-ms", type=float, default=0.0, help="between calls")
    args = parser.parse_args()
    return asyncio.run(run(args.calls, args.pause_ms))


if __name__ == "__main__":
    sys.exit(main())
