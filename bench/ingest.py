"""Ingestion throughput: 500 generated documents of mixed formats into a pgvector KB.

What it measures (everything on 127.0.0.1, started and stopped by this script):

* it writes N documents (default 500) in equal shares of plain text, Markdown, HTML (with
  script, style and navigation to strip), JSON, PDF (fpdf2, two pages, title and author)
  and DOCX (python-docx, headings and a table), each a few thousand characters of
  generated prose;
* `pmp-gateway serve` runs on its embedded default (fresh data dir: embedded Temporal and
  PostgreSQL), with the `local` wordllama embedder and one pgvector knowledge base;
* `pmp-gateway ingest --no-wait` sends the folder (runs of 50 files), and this script
  polls the operations until all have finished. End to end = from starting the CLI to the
  last operation's end: documents/s and chunks/s.
* Where the time goes: each operation is a Temporal run (run id = operation id); its
  history's ActivityTaskScheduled/Started/Completed events give, per activity type, the
  time spent running and the time spent waiting for a worker slot.

Run it from the repository root: `.venv/bin/python bench/ingest.py [--documents N]`.
It exits 0 when every document was ingested, 1 otherwise, 2 if the gateway did not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docx
import httpx
from fpdf import FPDF
from harness import (
    ADMIN_KEY,
    Processes,
    StartupError,
    log_problems,
    log_tail,
    start_gateway,
    stop_process,
)
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

KB_ID = "bench-ingest"
MODEL_ID = "local-embed"
FORMATS = ("txt", "md", "html", "json", "pdf", "docx")
READY_TIMEOUT_S = 180.0
POLL_INTERVAL_S = 0.25
INGEST_TIMEOUT_S = 1800.0
CLI = Path(sys.executable).with_name("pmp-gateway")
VOCABULARY = (
    "account invoice refund billing customer order shipment delivery warehouse carrier"
    " payment card bank transfer balance statement tax rate discount coupon subscription"
    " plan upgrade downgrade renewal contract clause notice period support ticket agent"
    " escalation priority response time service level outage incident report analysis"
    " root cause mitigation deployment release version feature request roadmap quarter"
    " budget forecast revenue margin cost supplier vendor procurement approval policy"
    " security access password token audit compliance privacy data retention backup"
    " recovery region latency throughput capacity scaling cluster node storage network"
)
WORDS = VOCABULARY.split()


# --------------------------------------------------------------------------- the corpus


def _sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 20))
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(3, 7)))


@dataclass
class Article:
    """One generated document: a title and (heading, paragraphs) sections."""

    title: str
    sections: list[tuple[str, list[str]]] = field(default_factory=list)


def _article(number: int, rng: random.Random) -> Article:
    article = Article(f"Report {number}: {' '.join(rng.choices(WORDS, k=3))}")
    for index in range(rng.randint(2, 4)):
        heading = f"Section {index + 1} {rng.choice(WORDS)}"
        article.sections.append((heading, [_paragraph(rng) for _ in range(rng.randint(1, 3))]))
    return article


def _write_text(article: Article, path: Path) -> None:
    body = [article.title, ""]
    for _, paragraphs in article.sections:
        body += [*paragraphs, ""]
    path.write_text("\n\n".join(body))


def _write_markdown(article: Article, path: Path) -> None:
    body = [f"# {article.title}"]
    for heading, paragraphs in article.sections:
        body += [f"## {heading}", *paragraphs]
    path.write_text("\n\n".join(body) + "\n")


def _write_html(article: Article, path: Path) -> None:
    sections = "".join(
        f"<h2>{heading}</h2>" + "".join(f"<p>{p}</p>" for p in paragraphs)
        for heading, paragraphs in article.sections
    )
    path.write_text(
        f"<html><head><title>{article.title}</title><style>p {{margin: 0}}</style>"
        "<script>var tracking = 1;</script></head><body><nav><a href='/'>Home</a></nav>"
        f"<main><h1>{article.title}</h1>{sections}</main></body></html>"
    )


def _write_json(article: Article, path: Path) -> None:
    sections = [{"heading": h, "text": "\n\n".join(p)} for h, p in article.sections]
    document = {"title": article.title, "author": "Bench", "sections": sections}
    path.write_text(json.dumps(document))


def _write_pdf(article: Article, path: Path) -> None:
    pdf = FPDF()
    pdf.set_title(article.title)
    pdf.set_author("Bench")
    pdf.set_font("Helvetica", size=11)
    half = max(1, len(article.sections) // 2)
    for page_sections in (article.sections[:half], article.sections[half:]):
        pdf.add_page()
        for heading, paragraphs in page_sections:
            pdf.multi_cell(0, 6, heading, new_x="LMARGIN", new_y="NEXT")
            for paragraph in paragraphs:
                pdf.multi_cell(0, 5, paragraph, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


def _write_docx(article: Article, path: Path) -> None:
    document = docx.Document()
    document.core_properties.title = article.title
    document.core_properties.author = "Bench"
    document.add_heading(article.title, level=1)
    for heading, paragraphs in article.sections:
        document.add_heading(heading, level=2)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    table = document.add_table(rows=2, cols=2)
    for row, (key, value) in enumerate((("owner", "bench"), ("status", "final"))):
        table.cell(row, 0).text, table.cell(row, 1).text = key, value
    document.save(str(path))


WRITERS = {
    "txt": _write_text,
    "md": _write_markdown,
    "html": _write_html,
    "json": _write_json,
    "pdf": _write_pdf,
    "docx": _write_docx,
}


def write_corpus(folder: Path, documents: int) -> int:
    """N documents, formats in turn; the total size in bytes."""
    folder.mkdir(parents=True)
    rng = random.Random(15)  # reproducible prose
    for number in range(documents):
        extension = FORMATS[number % len(FORMATS)]
        WRITERS[extension](_article(number, rng), folder / f"doc-{number:04d}.{extension}")
    return sum(path.stat().st_size for path in folder.iterdir())


# --------------------------------------------------------------------------- the gateway


async def wait_ready(client: httpx.AsyncClient, url: str, process: Any) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise StartupError(f"gateway exited with code {process.returncode}")
        try:
            if (await client.get(f"{url}/ready")).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise StartupError(f"gateway not ready within {READY_TIMEOUT_S:.0f} s")


async def create_knowledge_base(client: httpx.AsyncClient, url: str) -> None:
    model = {
        "id": MODEL_ID,
        "provider": "local",
        "model": "wordllama",
        "kind": "embedding",
        "dimensions": 256,
    }
    kb = {
        "id": KB_ID,
        "name": "Bench ingestion",
        "backend": {"type": "pgvector"},
        "embedding_model_id": MODEL_ID,
        "distance": "cosine",
    }
    for path, body in (("/admin/models", model), ("/admin/knowledge-bases", kb)):
        response = await client.post(f"{url}{path}", json=body)
        if response.status_code != 201:
            raise StartupError(f"POST {path}: {response.status_code} {response.text}")


def temporal_address(log: Path) -> str:
    """The embedded Temporal's address, as `serve` announced it."""
    match = re.search(r"Temporal:\s+(\S+)", log.read_text(errors="replace"))
    if match is None:
        raise StartupError("the gateway did not announce its Temporal address")
    return match.group(1)


# --------------------------------------------------------------------------- the run


def submit(folder: Path, url: str, files_per_run: int) -> list[str]:
    """`pmp-gateway ingest --no-wait`: the operation ids it printed."""
    env = {**os.environ, "PMP_ADMIN_KEY": ADMIN_KEY}
    runs = ["--files-per-run", str(files_per_run)]
    done = subprocess.run(
        [str(CLI), "ingest", "--kb", KB_ID, str(folder), "--no-wait", "--url", url, *runs],
        env=env,
        capture_output=True,
        text=True,
        timeout=INGEST_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ingest exited {done.returncode}: {done.stderr}")
    return done.stdout.split()


async def wait_all(client: httpx.AsyncClient, url: str, ids: list[str]) -> list[dict[str, Any]]:
    """Poll the operations until every one has ended; their final documents."""
    deadline = time.monotonic() + INGEST_TIMEOUT_S
    finished: dict[str, dict[str, Any]] = {}
    while len(finished) < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ids) - len(finished)} operation(s) still running")
        pending = [i for i in ids if i not in finished]
        response = await client.get(f"{url}/v1/operations", params={"ids": ",".join(pending)})
        response.raise_for_status()
        for document in response.json()["data"]:
            if document["status"] in ("completed", "failed", "cancelled"):
                finished[document["operation_id"]] = document
        await asyncio.sleep(POLL_INTERVAL_S)
    return [finished[i] for i in ids]


@dataclass
class StageTimes:
    """Seconds per activity type: running, and waiting between scheduled and started."""

    count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    running: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    waiting: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    workflow_wall: list[float] = field(default_factory=list)
    first_start: float = float("inf")
    last_close: float = 0.0


async def collect_stage_times(address: str, workflow_ids: list[str]) -> StageTimes:
    """Activity durations from the runs' histories, child workflows included."""
    client = await Client.connect(address)
    times = StageTimes()
    queue = list(workflow_ids)
    while queue:
        history = await client.get_workflow_handle(queue.pop()).fetch_history()
        scheduled: dict[int, tuple[str, float]] = {}
        started: dict[int, float] = {}
        events = list(history.events)
        for event in events:
            at = event.event_time.ToDatetime().timestamp()
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[event.event_id] = (name, at)
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started[event.activity_task_started_event_attributes.scheduled_event_id] = at
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                scheduled_id = event.activity_task_completed_event_attributes.scheduled_event_id
                name, scheduled_at = scheduled[scheduled_id]
                started_at = started[scheduled_id]
                times.count[name] += 1
                times.running[name] += at - started_at
                times.waiting[name] += started_at - scheduled_at
            elif event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                child = event.child_workflow_execution_started_event_attributes
                queue.append(child.workflow_execution.workflow_id)
        first = events[0].event_time.ToDatetime().timestamp()
        last = events[-1].event_time.ToDatetime().timestamp()
        times.workflow_wall.append(last - first)
        times.first_start = min(times.first_start, first)
        times.last_close = max(times.last_close, last)
    return times


def measure_stage_costs(folder: Path) -> dict[str, float]:
    """Seconds per stage on one thread, no Temporal, no database: what the work itself costs.

    The same parser, chunker (the KB defaults: recursive, 1000/200) and local model the
    activities call; storing has no in-process twin (it is pgvector behind the backend).
    """
    from gateway_core.ingestion.chunkers import chunk
    from gateway_core.ingestion.model import ChunkerOptions
    from gateway_core.ingestion.parsers import parse
    from gateway_core.providers.local import LocalEmbedder

    costs = {"read": 0.0, "parse": 0.0, "chunk": 0.0, "embed": 0.0}
    texts: list[str] = []
    for path in sorted(folder.iterdir()):
        started = time.perf_counter()
        content = path.read_bytes()
        parsed_at = time.perf_counter()
        document = parse(content, filename=path.name)
        chunked_at = time.perf_counter()
        texts += [piece.text for piece in chunk(document, ChunkerOptions())]
        done = time.perf_counter()
        costs["read"] += parsed_at - started
        costs["parse"] += chunked_at - parsed_at
        costs["chunk"] += done - chunked_at
    costs["embed"] = asyncio.run(_embed_seconds(LocalEmbedder(), texts))
    costs["chunks"] = len(texts)
    return costs


async def _embed_seconds(embedder: Any, texts: list[str]) -> float:
    """Batches of 64 (the KB default), the model loaded beforehand."""
    await embedder.load("wordllama")
    started = time.perf_counter()
    for start in range(0, len(texts), 64):
        await embedder.embed_texts("wordllama", texts[start : start + 64], 256)
    return time.perf_counter() - started


def print_stage_costs(costs: dict[str, float], documents: int) -> None:
    chunks = int(costs.pop("chunks"))
    total = sum(costs.values())
    print(f"\nthe same work in-process, one thread ({documents} documents, {chunks} chunks):")
    for name, seconds in costs.items():
        print(f"  {name:<8}{seconds:>8.2f} s {seconds / total:>5.0%}")
    print(f"  total   {total:>8.2f} s = {documents / total:,.0f} documents/s")


# --------------------------------------------------------------------------- the report


def print_outcome(operations: list[dict[str, Any]], elapsed: float, submitted: float) -> int:
    documents = [d for op in operations for d in (op.get("result") or {}).get("documents", [])]
    statuses: dict[str, int] = defaultdict(int)
    for document in documents:
        statuses[document["status"]] += 1
    chunks = sum(int(d.get("chunks") or 0) for d in documents)
    failed = [op["operation_id"] for op in operations if op["status"] != "completed"]
    print(f"operations: {len(operations)} ({len(failed)} not completed: {failed})")
    print(f"documents: {len(documents)} {dict(statuses)}; chunks stored: {chunks}")
    print(f"upload (CLI, all runs submitted): {submitted:.1f} s")
    print(f"end to end: {elapsed:.1f} s")
    print(f"  {len(documents) / elapsed:.1f} documents/s, {chunks / elapsed:.1f} chunks/s")
    for failure in [d for d in documents if d["status"] == "failed"][:5]:
        print(f"  failed: {failure.get('filename')}: {failure.get('error')}")
    return 0 if statuses.get("ingested", 0) == len(documents) and not failed else 1


def print_stage_times(times: StageTimes) -> None:
    total = sum(times.running.values()) or 1.0
    walls = sorted(times.workflow_wall)
    span = times.last_close - times.first_start
    print(
        f"\nwhere the time goes: {len(walls)} runs, first start to last end {span:.1f} s"
        f" (run wall p50 {walls[len(walls) // 2]:.1f} s, max {walls[-1]:.1f} s);"
        " activity wall time summed over all activities, concurrent ones overlapping:"
    )
    print(f"  {'activity':<28}{'count':>7}{'run s':>9}{'share':>8}{'mean ms':>9}{'queued s':>10}")
    for name in sorted(times.running, key=lambda n: -times.running[n]):
        running, count = times.running[name], times.count[name]
        print(
            f"  {name:<28}{count:>7}{running:>9.1f}{running / total:>8.0%}"
            f"{running / count * 1000:>9.1f}{times.waiting[name]:>10.1f}"
        )


async def benchmark(args: argparse.Namespace, procs: Processes, url: str, process: Any) -> int:
    documents = args.documents
    folder = procs.workdir / "corpus"
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        ready = await wait_ready(client, url, process)
        print(f"gateway ready after {ready:.1f} s at {url}; CPU cores: {os.cpu_count()}")
        size = write_corpus(folder, documents)
        print(f"corpus: {documents} documents ({', '.join(FORMATS)}), {size / 1e6:.1f} MB")
        await create_knowledge_base(client, url)
        started = time.perf_counter()
        ids = await asyncio.to_thread(submit, folder, url, args.files_per_run)
        submitted = time.perf_counter() - started
        operations = await wait_all(client, url, ids)
        elapsed = time.perf_counter() - started
        code = print_outcome(operations, elapsed, submitted)
        kb = (await client.get(f"{url}/admin/knowledge-bases/{KB_ID}")).json()
        print(f"knowledge base document_count (chunks): {kb.get('document_count')}")
    print_stage_times(await collect_stage_times(temporal_address(procs.gateway_log), ids))
    print_stage_costs(await asyncio.to_thread(measure_stage_costs, folder), documents)
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--files-per-run", type=int, default=50, help="the CLI's run size")
    parser.add_argument("--keep", action="store_true", help="keep the temporary dir")
    args = parser.parse_args()
    procs = Processes(Path(tempfile.mkdtemp(prefix="pmp-bench-ingest-")))
    try:
        url, process = start_gateway(procs)
        return asyncio.run(benchmark(args, procs, url, process))
    except StartupError as error:
        print(f"start-up failed: {error}\n{log_tail(procs.gateway_log)}", file=sys.stderr)
        return 2
    finally:
        stop_process(procs.gateway, "gateway", 60.0)
        for line in log_problems(procs.gateway_log)[:10]:
            print(f"gateway log: {line[:300]}")
        if args.keep:
            print(f"kept {procs.workdir}")
        else:
            shutil.rmtree(procs.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
