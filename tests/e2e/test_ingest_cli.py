"""`pmp-gateway ingest`, run as the real CLI against a running gateway."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gateway_core.process import free_port
from tests.conftest import ADMIN_KEY, Gateway

pytestmark = pytest.mark.e2e
CLI = str(Path(sys.executable).parent / "pmp-gateway")
KB = "cli-docs"
LOCAL_EMBED = {
    "id": "local-embed",
    "provider": "local",
    "model": "wordllama",
    "kind": "embedding",
    "dimensions": 256,
}


async def _cli(*args: str) -> tuple[int, str, str]:
    """Run the CLI without blocking the loop that serves the gateway under test."""
    process = await asyncio.create_subprocess_exec(
        CLI,
        *args,
        env={**os.environ, "PMP_ADMIN_KEY": ADMIN_KEY},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def _knowledge_base(gateway: Gateway) -> None:
    for path, body in (
        ("/admin/models", LOCAL_EMBED),
        (
            "/admin/knowledge-bases",
            {"id": KB, "name": "CLI docs", "backend": {"type": "pgvector"},
             "embedding_model_id": "local-embed"},
        ),
    ):  # fmt: skip
        response = await gateway.admin.post(path, json=body)
        assert response.status_code == 201, response.text


def _folder(root: Path) -> Path:
    """Text, Markdown in a sub-folder, JSON, an empty file, and a hidden file."""
    folder = root / "docs"
    (folder / "guides").mkdir(parents=True)
    (folder / "notes.txt").write_text("The quartermaster keeps the zanzibar ledger in room 4.\n")
    (folder / "guides" / "setup.md").write_text(
        "# Setup\n\n## Install\n\nRun the flamingo installer twice.\n"
    )
    (folder / "prices.json").write_text(json.dumps({"title": "Prices", "plan": "gold", "eur": 9}))
    (folder / "empty.txt").write_text("")
    (folder / ".secret").write_text("never sent")
    return folder


def _rows(stdout: str) -> dict[str, list[str]]:
    """The summary table by file name: [document_id, status, chunks, error...]."""
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["file", "document_id", "status", "chunks", "error"]
    return {line.split()[0]: line.split()[1:] for line in lines[1:-1]}


async def _search(gateway: Gateway, query: str) -> list[dict[str, Any]]:
    response = await gateway.admin.post(
        f"/v1/knowledge-bases/{KB}/search", json={"query": query, "mode": "keyword", "top_k": 3}
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def test_a_mixed_folder_is_ingested_and_the_empty_file_fails_the_exit_code(
    gateway: Gateway, tmp_path: Path
) -> None:
    await _knowledge_base(gateway)
    folder = _folder(tmp_path)
    metadata = json.dumps({"team": "ops"})
    code, stdout, stderr = await _cli(
        "ingest", "--kb", KB, str(folder), "--url", gateway.base_url, "--metadata", metadata
    )
    assert code == 1, stderr
    rows = _rows(stdout)
    assert set(rows) == {"notes.txt", "guides/setup.md", "prices.json", "empty.txt"}
    for name in ("notes.txt", "guides/setup.md", "prices.json"):
        assert rows[name][1] == "ingested" and int(rows[name][2]) >= 1, rows[name]
    assert rows["empty.txt"][1:3] == ["failed", "0"]
    assert len(rows["empty.txt"]) > 3  # the error says why
    chunks = sum(int(row[2]) for row in rows.values())
    assert stdout.strip().splitlines()[-1] == (
        f"4 documents: 3 ingested, 0 unchanged, 1 failed; {chunks} chunks"
    )
    assert "run 1/1 [" in stderr and f"4/4 documents, {chunks} chunks (completed)" in stderr

    hits = await _search(gateway, "zanzibar ledger")
    assert "zanzibar ledger" in hits[0]["content"]
    assert hits[0]["metadata"]["source"] == "notes.txt"
    assert hits[0]["metadata"]["team"] == "ops"
    assert "flamingo" in (await _search(gateway, "flamingo installer"))[0]["content"]


async def test_a_glob_sends_only_matches_and_a_second_run_reports_them_unchanged(
    gateway: Gateway, tmp_path: Path
) -> None:
    await _knowledge_base(gateway)
    folder = _folder(tmp_path)
    args = ("ingest", "--kb", KB, str(folder), "--glob", "*.md", "--url", gateway.base_url)
    first_code, first, stderr = await _cli(*args)
    assert first_code == 0, stderr
    assert _rows(first)["guides/setup.md"][1] == "ingested"
    code, stdout, stderr = await _cli(*args)
    assert code == 0, stderr
    rows = _rows(stdout)
    assert set(rows) == {"guides/setup.md"}
    assert rows["guides/setup.md"][:2] == [_rows(first)["guides/setup.md"][0], "unchanged"]
    assert stdout.strip().splitlines()[-1].startswith("1 document: 0 ingested, 1 unchanged")


async def test_no_wait_prints_one_operation_id_per_run(gateway: Gateway, tmp_path: Path) -> None:
    await _knowledge_base(gateway)
    folder = _folder(tmp_path)
    code, stdout, stderr = await _cli(
        "ingest", "--kb", KB, str(folder / "notes.txt"), str(folder / "prices.json"),
        "--files-per-run", "1", "--no-wait", "--url", gateway.base_url,
    )  # fmt: skip
    assert code == 0, stderr
    operation_ids = stdout.split()
    assert len(operation_ids) == 2 and all(i.startswith("op-") for i in operation_ids)
    for operation_id in operation_ids:
        document = await _finished(gateway, operation_id)
        assert document["status"] == "completed", document
        assert [d["status"] for d in document["result"]["documents"]] == ["ingested"]


async def _finished(gateway: Gateway, operation_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        document: dict[str, Any] = (
            await gateway.admin.get(f"/v1/operations/{operation_id}")
        ).json()
        if document["status"] in ("completed", "failed", "cancelled"):
            return document
        assert time.monotonic() < deadline, document
        await asyncio.sleep(0.2)


async def test_usage_and_connection_problems_exit_2(gateway: Gateway, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    code, _, stderr = await _cli(
        "ingest", "--kb", "no-such-kb", str(folder), "--url", gateway.base_url
    )
    assert code == 2 and "no-such-kb" in stderr
    code, _, stderr = await _cli(
        "ingest", "--kb", KB, str(tmp_path / "missing"), "--url", gateway.base_url
    )
    assert code == 2 and "no such file or folder" in stderr
    url = f"http://127.0.0.1:{free_port()}"
    code, _, stderr = await _cli("ingest", "--kb", KB, str(folder), "--url", url)
    assert code == 2 and f"no gateway answers at {url}" in stderr
    code, _, stderr = await _cli("ingest", "--kb", KB, str(folder), "--option", "chunker")
    assert code == 2 and "KEY=VALUE" in stderr
