"""Document ingestion through the real gateway: real files, real Temporal, real pgvector.

Files are made here by real tools (fpdf2, python-docx); embeddings come from the `local`
wordllama model. The crash test runs the API in this process and the worker as a
`pmp-gateway worker` subprocess that is SIGKILLed halfway through.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docx
import httpx
import pytest
from fpdf import FPDF

from gateway_core.config import Settings
from tests.conftest import Gateway, api_only, running_gateway, start_worker_process

MODEL = {"provider": "local", "model": "wordllama", "kind": "embedding", "dimensions": 256}
CLI = str(Path(sys.executable).parent / "pmp-gateway")


def make_pdf(pages: list[str], *, title: str, author: str) -> bytes:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def make_docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Handbook"
    document.add_heading("Onboarding", level=1)
    document.add_paragraph("New staff receive a laptop and a badge on their first day.")
    document.add_heading("Equipment", level=2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Item", "Owner"
    table.cell(1, 0).text, table.cell(1, 1).text = "Laptop", "IT desk"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


MARKDOWN = b"""# Guide

Intro paragraph about the product.

## Install

Run the installer and follow the prompts.

### Linux

Use the tarball on Linux machines.
"""
HTML = b"""<html><head><title>Status page</title><style>p{}</style></head><body>
<nav>Home | About</nav><main><h1>Status</h1><p>All systems are operational today.</p>
<h2>History</h2><p>No incidents were reported last week.</p></main>
<script>alert('x')</script></body></html>"""
JSON_DOC = json.dumps({"title": "Config", "version": 3, "items": ["a", "b"]}).encode()
TEXT = b"Plain notes about refunds: they are paid back within five days."


async def _kb(gateway: Gateway, **backend: Any) -> str:
    """A fresh local-embedding model and knowledge base; the KB's id."""
    suffix = uuid.uuid4().hex[:8]
    model = await gateway.admin.post("/admin/models", json={"id": f"emb-{suffix}", **MODEL})
    assert model.status_code == 201, model.text
    body = {
        "id": f"kb-{suffix}",
        "name": "Docs",
        "backend": backend or {"type": "pgvector"},
        "embedding_model_id": f"emb-{suffix}",
        "ingestion": {"chunk_size": 200, "chunk_overlap": 20, "embed_batch_size": 4},
    }
    created = await gateway.admin.post("/admin/knowledge-bases", json=body)
    assert created.status_code == 201, created.text
    return str(body["id"])


def _files(*named: tuple[str, bytes, str]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", item) for item in named]


async def _chunks(client: httpx.AsyncClient, kb_id: str, document_id: str) -> list[dict[str, Any]]:
    """Every stored chunk of one source, by id."""
    match = {"field": "document_id", "operator": "eq", "value": document_id}
    listed = await client.post(
        f"/v1/knowledge-bases/{kb_id}/documents/list", json={"filter": match, "limit": 1000}
    )
    assert listed.status_code == 200, listed.text
    return list(listed.json()["data"])


def _by_id(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {document["document_id"]: document for document in answer["documents"]}


async def test_a_batch_of_real_files_ingests_with_per_document_errors(gateway: Gateway) -> None:
    kb_id = await _kb(gateway)
    pdf = make_pdf(
        ["Refunds are paid within five days.", "Invoices arrive monthly."],
        title="Billing",
        author="Ana",
    )
    files = _files(
        ("billing.pdf", pdf, "application/pdf"),
        ("handbook.docx", make_docx(), "application/octet-stream"),
        ("guide.md", MARKDOWN, "text/markdown"),
        ("status.html", HTML, "text/html"),
        ("config.json", JSON_DOC, "application/json"),
        ("notes.txt", TEXT, "text/plain"),
        ("broken.pdf", pdf[: len(pdf) // 3], "application/pdf"),
        ("empty.txt", b"", "text/plain"),
    )
    options = {"metadata": {"team": "support"}}
    response = await gateway.admin.post(
        f"/v1/knowledge-bases/{kb_id}/ingest",
        files=[*files, ("options", (None, json.dumps(options).encode(), "application/json"))],
        timeout=120,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "partial" and answer["knowledge_base_id"] == kb_id
    documents = _by_id(answer)
    for name in ("billing.pdf", "handbook.docx", "guide.md", "status.html", "config.json"):
        assert documents[name]["status"] == "ingested", documents[name]
        assert documents[name]["chunks"] >= 1
    assert documents["notes.txt"]["status"] == "ingested"
    broken, empty = documents["broken.pdf"], documents["empty.txt"]
    assert broken["status"] == "failed" and broken["error"]["code"] == "corrupt_pdf"
    assert set(broken["error"]) == {"message", "type", "param", "code"}
    assert empty["status"] == "failed" and empty["error"]["code"] == "empty_document"

    pages = await _chunks(gateway.admin, kb_id, "billing.pdf")
    assert len(pages) == documents["billing.pdf"]["chunks"]
    first = next(chunk for chunk in pages if chunk["id"] == "billing.pdf#0")
    meta = first["metadata"]
    assert meta["document_id"] == "billing.pdf" and meta["source"] == "billing.pdf"
    assert meta["chunk_index"] == 0 and meta["total_chunks"] == len(pages)
    assert meta["page"] == 1 and meta["title"] == "Billing" and meta["author"] == "Ana"
    assert meta["team"] == "support" and {"start", "end", "content_hash"} <= set(meta)
    guide = await _chunks(gateway.admin, kb_id, "guide.md")
    assert any(chunk["metadata"].get("heading_path") for chunk in guide)


async def test_json_sources_take_text_or_base64_and_caller_metadata_wins(gateway: Gateway) -> None:
    kb_id = await _kb(gateway)
    body = {
        "sources": [
            {
                "document_id": "faq",
                "filename": "faq.md",
                "content": "# Real title\n\nAnswers to common questions.",
                "metadata": {"title": "Caller title", "lang": "en"},
            },
            {"content_base64": base64.b64encode(TEXT).decode(), "content_type": "text/plain"},
        ],
        "options": {"metadata": {"lang": "de", "team": "docs"}, "chunker": {"strategy": "fixed"}},
    }
    response = await gateway.admin.post(f"/v1/knowledge-bases/{kb_id}/ingest", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "completed"
    anonymous = answer["documents"][1]["document_id"]
    assert anonymous.startswith("sha256-")
    [faq] = await _chunks(gateway.admin, kb_id, "faq")
    assert faq["id"] == "faq#0"
    # The caller's own keys beat the parser's title and the request-wide metadata.
    assert faq["metadata"]["title"] == "Caller title"
    assert faq["metadata"]["lang"] == "en" and faq["metadata"]["team"] == "docs"
    bad = await gateway.admin.post(
        f"/v1/knowledge-bases/{kb_id}/ingest", json={"sources": [{"filename": "x.txt"}]}
    )
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


async def _wait_operation(
    client: httpx.AsyncClient, operation_id: str, timeout_s: float = 120
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The finished operation document and every progress seen while it ran."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while True:
        document = dict((await client.get(f"/v1/operations/{operation_id}")).json())
        if document.get("progress"):
            seen.append(document["progress"])
        if document.get("status") in ("completed", "failed", "cancelled"):
            return document, seen
        assert time.monotonic() < deadline, document
        await asyncio.sleep(0.1)


def _long_text(paragraphs: int, tag: str) -> bytes:
    body = "\n\n".join(
        f"Paragraph {i} of the {tag} edition talks about topic {i % 7}." for i in range(paragraphs)
    )
    return body.encode()


async def test_async_ingestion_shows_progress_and_then_the_answer(gateway: Gateway) -> None:
    kb_id = await _kb(gateway)
    files = _files(*((f"part-{i}.txt", _long_text(40, f"p{i}"), "text/plain") for i in range(3)))
    options = {"batch_size": 1, "chunker": {"strategy": "paragraph", "chunk_size": 80}}
    response = await gateway.admin.post(
        f"/v1/knowledge-bases/{kb_id}/ingest?async=true",
        files=[*files, ("options", (None, json.dumps(options).encode(), "application/json"))],
    )
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["status"] == "pending" and pending["type"] == "knowledge_base.ingestion"
    document, seen = await _wait_operation(gateway.admin, pending["operation_id"])
    assert document["status"] == "completed", document
    assert seen and all(progress["documents_total"] == 3 for progress in seen)
    assert {"documents_done", "chunks_stored"} <= set(seen[-1])
    result = document["result"]
    assert result["status"] == "completed" and len(result["documents"]) == 3
    assert sum(item["chunks"] for item in result["documents"]) >= 3 * 40
    listed = await gateway.admin.get(
        "/v1/operations", params={"type": "knowledge_base.ingestion", "limit": 5}
    )
    assert pending["operation_id"] in [item["operation_id"] for item in listed.json()["data"]]


async def _ingest_text(
    client: httpx.AsyncClient, kb_id: str, name: str, content: bytes, **options: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/knowledge-bases/{kb_id}/ingest",
        files=[
            ("file", (name, content, "text/plain")),
            ("options", (None, json.dumps(options).encode(), "application/json")),
        ],
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["documents"][0])


async def test_reingestion_is_unchanged_for_the_same_bytes_and_replaces_otherwise(
    gateway: Gateway,
) -> None:
    kb_id = await _kb(gateway)
    options = {"chunker": {"strategy": "paragraph", "chunk_size": 80}}
    first = await _ingest_text(gateway.admin, kb_id, "notes.txt", _long_text(10, "old"), **options)
    assert first["status"] == "ingested" and first["chunks"] >= 10
    again = await _ingest_text(gateway.admin, kb_id, "notes.txt", _long_text(10, "old"), **options)
    assert again == {**first, "status": "unchanged"}
    replaced = await _ingest_text(
        gateway.admin, kb_id, "notes.txt", _long_text(4, "new"), **options
    )
    assert replaced["status"] == "ingested" and replaced["chunks"] < first["chunks"]
    stored = await _chunks(gateway.admin, kb_id, "notes.txt")
    assert len(stored) == replaced["chunks"]
    assert all("new edition" in chunk["content"] for chunk in stored)
    removed = await gateway.admin.delete(
        f"/v1/knowledge-bases/{kb_id}/documents", params={"document_id": "notes.txt"}
    )
    assert removed.status_code == 200 and removed.json()["deleted"] == replaced["chunks"]
    assert await _chunks(gateway.admin, kb_id, "notes.txt") == []
    by_filter = await gateway.admin.request(
        "DELETE",
        f"/v1/knowledge-bases/{kb_id}/documents",
        json={"filter": {"field": "document_id", "operator": "eq", "value": "x"}},
    )
    assert by_filter.status_code == 200 and by_filter.json()["deleted"] == 0


async def test_qdrant_reingestion_replaces_and_deletes_leftover_chunks(gateway: Gateway) -> None:
    kb_id = await _kb(gateway, type="qdrant")
    options = {"chunker": {"strategy": "paragraph", "chunk_size": 80}}
    first = await _ingest_text(gateway.admin, kb_id, "q.txt", _long_text(9, "old"), **options)
    again = await _ingest_text(gateway.admin, kb_id, "q.txt", _long_text(9, "old"), **options)
    assert first["status"] == "ingested" and again["status"] == "unchanged"
    assert again["chunks"] == first["chunks"]
    replaced = await _ingest_text(gateway.admin, kb_id, "q.txt", _long_text(3, "new"), **options)
    stored = await _chunks(gateway.admin, kb_id, "q.txt")
    assert len(stored) == replaced["chunks"] < first["chunks"]
    assert all("new edition" in chunk["content"] for chunk in stored)


async def test_a_search_during_reingestion_never_sees_a_mixture(gateway: Gateway) -> None:
    kb_id = await _kb(gateway)
    options = {"chunker": {"strategy": "paragraph", "chunk_size": 80}}
    editions = [_long_text(30, "old"), _long_text(12, "new")]
    await _ingest_text(gateway.admin, kb_id, "doc.txt", editions[0], **options)
    match = {"field": "document_id", "operator": "eq", "value": "doc.txt"}
    done = asyncio.Event()
    observed: list[set[str]] = []

    async def search_forever() -> None:
        while not done.is_set():
            found = await gateway.admin.post(
                f"/v1/knowledge-bases/{kb_id}/search",
                json={"query": "topic edition", "top_k": 100, "filter": match},
            )
            assert found.status_code == 200, found.text
            hits = found.json()["data"]
            observed.append({hit["metadata"]["content_hash"] for hit in hits})
            totals = {hit["metadata"]["total_chunks"] for hit in hits}
            assert len(totals) == 1 and len(hits) == totals.pop()

    searching = asyncio.create_task(search_forever())
    try:
        for round_ in range(6):
            await _ingest_text(
                gateway.admin, kb_id, "doc.txt", editions[(round_ + 1) % 2], **options
            )
    finally:
        done.set()
        await searching
    assert observed and all(len(hashes) == 1 for hashes in observed)
    assert len(set().union(*observed)) == 2  # both editions were seen, each whole


async def test_limits_permissions_and_read_only_knowledge_bases(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = settings.model_copy(
        update={"max_upload_bytes": 2000, "max_ingest_request_bytes": 3000}
    )
    async with running_gateway(limited) as gateway:
        kb_id = await _kb(gateway)
        url = f"/v1/knowledge-bases/{kb_id}/ingest"
        too_big = await gateway.admin.post(
            url, files=_files(("big.txt", b"x" * 2500, "text/plain"))
        )
        assert too_big.status_code == 413, too_big.text
        assert too_big.json()["error"]["code"] == "request_too_large"
        over_total = await gateway.admin.post(
            url, files=_files(*((f"f{i}.txt", b"y" * 1500, "text/plain") for i in range(3)))
        )
        assert over_total.status_code == 413, over_total.text
        async with gateway.runtime.storage.pool.connection() as conn:
            left = await (
                await conn.execute("SELECT count(*) AS n FROM ingestion_blobs")
            ).fetchone()
        assert left is not None and left["n"] == 0  # refused uploads leave nothing staged

        bedrock = await _kb(
            gateway, type="bedrock", knowledge_base_id="KB12345678", region="us-east-1"
        )
        refused = await gateway.admin.post(
            f"/v1/knowledge-bases/{bedrock}/ingest", files=_files(("a.txt", TEXT, "text/plain"))
        )
        assert (
            refused.status_code == 405
            and refused.json()["error"]["type"] == "invalid_request_error"
        )

        key = await gateway.admin.post(
            "/admin/api-keys",
            json={"id": "reader", "name": "reader", "permissions": {"knowledge_bases": ["other"]}},
        )
        assert key.status_code == 201, key.text
        headers = {"authorization": f"Bearer {key.json()['key']}"}
        denied = await gateway.admin.post(
            url, files=_files(("a.txt", TEXT, "text/plain")), headers=headers
        )
        assert denied.status_code == 403 and denied.json()["error"]["type"] == "permission_error"


def _start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return start_worker_process(settings, log)


async def _progress_at_least(
    client: httpx.AsyncClient, operation_id: str, embedded: int
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        document = (await client.get(f"/v1/operations/{operation_id}")).json()
        assert document["status"] in ("pending", "running"), document
        progress = dict(document.get("progress") or {})
        if progress.get("chunks_embedded", 0) >= embedded:
            return progress
        assert time.monotonic() < deadline, document
        await asyncio.sleep(0.05)


async def test_a_worker_killed_mid_ingestion_is_replaced_and_every_chunk_stored_once(
    settings: Settings, tmp_path: Path
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = _start_worker(settings, tmp_path / "worker-1.log")
    replacement = None
    try:
        async with api_only(settings) as api:
            kb_id = await _kb(api)
            options = {"batch_size": 1, "chunker": {"strategy": "paragraph", "chunk_size": 80}}
            started = await api.admin.post(
                f"/v1/knowledge-bases/{kb_id}/ingest?async=true",
                files=[
                    ("file", ("long.txt", _long_text(150, "durable"), "text/plain")),
                    ("options", (None, json.dumps(options).encode(), "application/json")),
                ],
            )
            assert started.status_code == 202, started.text
            operation_id = started.json()["operation_id"]
            progress = await _progress_at_least(api.admin, operation_id, embedded=5)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            replacement = _start_worker(settings, tmp_path / "worker-2.log")
            document, _ = await _wait_operation(api.admin, operation_id, timeout_s=180)
            assert document["status"] == "completed", document
            [outcome] = document["result"]["documents"]
            # Killed mid-embedding: the replacement embedded the rest and stored it all.
            assert (
                progress["chunks_stored"] == 0 and progress["chunks_embedded"] < outcome["chunks"]
            )
            assert outcome["status"] == "ingested" and outcome["chunks"] >= 150
            stored = await _chunks(api.admin, kb_id, "long.txt")
            ids = [chunk["id"] for chunk in stored]
            assert len(ids) == len(set(ids)) == outcome["chunks"]
            assert set(ids) == {f"long.txt#{i}" for i in range(outcome["chunks"])}
            shown = (await api.admin.get(f"/admin/knowledge-bases/{kb_id}")).json()
            assert shown["document_count"] == outcome["chunks"]
    finally:
        for process in (worker, replacement):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
