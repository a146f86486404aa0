"""`pmp-gateway ingest --kb ID PATH...`: send files and folders to a running gateway.

Files go to `POST /v1/knowledge-bases/{id}/ingest?async=true` in runs of at most
`--files-per-run` files and `--bytes-per-run` bytes, as multipart streamed from disk; each
run is one ingestion operation. With `--wait` (the default) the command follows each
operation with a progress line, then prints one row per document and exits 0 when every
document was ingested or unchanged, 1 when any failed, 2 when the command could not run
(usage, no gateway, no key). The URL and the admin key are found as for `export`/`import`.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import mimetypes
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from gateway_api.config_cli import CommandError, _error_message, _request, admin_key, gateway_url
from gateway_core.config import Settings

EXIT_OK, EXIT_FAILED_DOCUMENTS, EXIT_USAGE = 0, 1, 2
FILES_PER_RUN = 50
# Below the gateway's default per-request upload limit; a 413 splits the run anyway.
BYTES_PER_RUN = 32 * 1024 * 1024
POLL_INTERVAL_S = 0.5
UPLOAD_TIMEOUT_S = 600.0
FINISHED = ("completed", "failed", "cancelled")
BAR_WIDTH = 24


@dataclass(frozen=True)
class SourceFile:
    """A file to send; `name` (its path below the folder named) is the upload's filename,
    so two `README.md` in different folders get different default document ids."""

    path: Path
    name: str
    size: int


@dataclass
class Run:
    """One upload: its files, its operation, and what became of each document."""

    files: list[SourceFile]
    operation_id: str | None = None
    documents: list[dict[str, Any]] = field(default_factory=list)


def add_ingest_command(commands: Any) -> None:
    """Register `ingest` on the CLI's subcommands."""
    sub = commands.add_parser("ingest", help="send files and folders to a knowledge base")
    sub.add_argument("--kb", required=True, help="the knowledge base id")
    sub.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files and folders")
    sub.add_argument(
        "--glob", action="append", default=[], metavar="PATTERN",
        help="only files in folders whose name or relative path matches (repeatable)",
    )  # fmt: skip
    sub.add_argument(
        "--recursive", action=argparse.BooleanOptionalAction, default=True,
        help="walk sub-folders too (default)",
    )  # fmt: skip
    sub.add_argument(
        "--wait", action=argparse.BooleanOptionalAction, default=True,
        help="follow the runs and print a summary (default); --no-wait prints operation ids",
    )  # fmt: skip
    sub.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="an ingestion option, dotted for nesting: chunker.chunk_size=500 (repeatable)",
    )  # fmt: skip
    sub.add_argument("--metadata", help="a JSON object added to every document's metadata")
    sub.add_argument("--files-per-run", type=int, default=FILES_PER_RUN, metavar="N")
    sub.add_argument("--bytes-per-run", type=int, default=BYTES_PER_RUN, metavar="N")
    sub.add_argument("--url", help="the gateway (default http://PMP_HOST:PMP_PORT)")
    sub.add_argument("--data-dir", type=Path, help="where to find the admin-key file")


def run_ingest_command(args: argparse.Namespace) -> int:
    """The exit code of `pmp-gateway ingest`."""
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    runs: list[Run] = []
    try:
        options = parse_options(args.option, args.metadata)
        files = collect_files(args.paths, args.glob, recursive=args.recursive)
        with _client(settings, args.url) as client:
            for batch in plan_runs(files, args.files_per_run, args.bytes_per_run):
                runs += _submit(client, args.kb, batch, options)
        if not args.wait:
            return _report_started(runs)
        for number, run in enumerate(runs, start=1):
            if run.operation_id:
                _follow(settings, args.url, run, f"run {number}/{len(runs)}")
    except CommandError as error:
        print(f"pmp-gateway ingest: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        started = [run.operation_id for run in runs if run.operation_id]
        print(f"\ninterrupted; the operations go on: {' '.join(started)}", file=sys.stderr)
        return 130
    print(summary_table(runs))
    return _exit_code(runs)


def _report_started(runs: list[Run]) -> int:
    """`--no-wait`: the operation ids on stdout; files refused before a run, on stderr."""
    print("\n".join(run.operation_id for run in runs if run.operation_id))
    refused = [run for run in runs if not run.operation_id]
    if refused:
        print(summary_table(refused), file=sys.stderr)
    return _exit_code(refused)


# --------------------------------------------------------------------------- what to send


def parse_options(pairs: list[str], metadata: str | None) -> dict[str, Any]:
    """`--option a.b=1` → `{"a": {"b": 1}}` (values read as JSON, else as text)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--option takes KEY=VALUE, not {pair!r}")
        *parents, leaf = key.split(".")
        target = options
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise CommandError(f"--option {key}: {part} is already a value")
        target[leaf] = _json_or_text(raw)
    if metadata is not None:
        parsed = _json_or_text(metadata)
        if not isinstance(parsed, dict):
            raise CommandError("--metadata takes a JSON object")
        options["metadata"] = parsed
    return options


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def collect_files(paths: list[Path], globs: list[str], *, recursive: bool) -> list[SourceFile]:
    """Named files as given; folders walked (hidden entries skipped) and filtered by `globs`."""
    found: dict[Path, SourceFile] = {}
    for path in paths:
        if path.is_file():
            found.setdefault(path.resolve(), SourceFile(path, path.name, path.stat().st_size))
        elif path.is_dir():
            for file in _walk(path, recursive):
                name = file.relative_to(path).as_posix()
                if not globs or any(_matches(name, pattern) for pattern in globs):
                    found.setdefault(file.resolve(), SourceFile(file, name, file.stat().st_size))
        else:
            raise CommandError(f"{path}: no such file or folder")
    if not found:
        raise CommandError("no files to ingest")
    return list(found.values())


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            yield entry
        elif recursive and entry.is_dir():
            yield from _walk(entry, recursive)


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(name.rsplit("/", 1)[-1], pattern)


def plan_runs(files: list[SourceFile], max_files: int, max_bytes: int) -> list[list[SourceFile]]:
    """Consecutive runs of at most `max_files` files and `max_bytes` bytes (a larger file
    goes alone: the gateway says whether it takes it)."""
    if max_files < 1 or max_bytes < 1:
        raise CommandError("--files-per-run and --bytes-per-run must be positive")
    runs: list[list[SourceFile]] = [[]]
    size = 0
    for file in files:
        if runs[-1] and (len(runs[-1]) >= max_files or size + file.size > max_bytes):
            runs.append([])
            size = 0
        runs[-1].append(file)
        size += file.size
    return runs


# --------------------------------------------------------------------------- talking to it


@contextlib.contextmanager
def _client(settings: Settings, url: str | None) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {admin_key(settings)}"}
    base = gateway_url(settings, url)
    with httpx.Client(base_url=base, headers=headers, timeout=UPLOAD_TIMEOUT_S) as client:
        yield client


def _submit(
    client: httpx.Client, kb: str, files: list[SourceFile], options: dict[str, Any]
) -> list[Run]:
    """Start an operation for `files`; a run the gateway finds too large is split in two."""
    try:
        response = _post_files(client, kb, files, options)
    except OSError as error:
        message = f"cannot read {error.filename}: {error.strerror}"
        return [Run(files, documents=[_local_failure(f, message) for f in files])]
    except httpx.TransportError as error:
        raise CommandError(
            f"no gateway answers at {client.base_url} ({error}); pass --url"
        ) from None
    if response.status_code == 413 and len(files) > 1:
        half = len(files) // 2
        return _submit(client, kb, files[:half], options) + _submit(
            client, kb, files[half:], options
        )
    if response.status_code == 413:
        return [Run(files, documents=[_local_failure(files[0], _error_message(response))])]
    if response.status_code != 202:
        raise CommandError(_error_message(response))
    return [Run(files, operation_id=str(response.json()["operation_id"]))]


def _post_files(
    client: httpx.Client, kb: str, files: list[SourceFile], options: dict[str, Any]
) -> httpx.Response:
    with contextlib.ExitStack() as stack:
        parts = [
            ("file", (f.name, stack.enter_context(f.path.open("rb")), _content_type(f.name)))
            for f in files
        ]
        data = {"options": json.dumps(options)} if options else None
        return client.post(
            f"/v1/knowledge-bases/{kb}/ingest", params={"async": "true"}, files=parts, data=data
        )


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _local_failure(file: SourceFile, message: str) -> dict[str, Any]:
    return {"filename": file.name, "status": "failed", "chunks": 0, "error": {"message": message}}


# --------------------------------------------------------------------------- following runs


def _follow(settings: Settings, url: str | None, run: Run, label: str) -> None:
    """Poll the run's operation to its end, showing its progress; keep its documents."""
    progress = ProgressLine(label, sys.stderr)
    while True:
        text = _request(settings, url, f"/v1/operations/{run.operation_id}", {})
        document: dict[str, Any] = json.loads(text)
        progress.show(document)
        if document.get("status") in FINISHED:
            progress.close()
            run.documents = _documents_of(document, run.files)
            return
        time.sleep(POLL_INTERVAL_S)


def _documents_of(operation: dict[str, Any], files: list[SourceFile]) -> list[dict[str, Any]]:
    """The per-document outcome; a run that ended without one failed every file in it."""
    documents = (operation.get("result") or {}).get("documents")
    if documents:
        return list(documents)
    error = operation.get("error") or {"message": f"the operation {operation.get('status')}"}
    return [{**_local_failure(file, ""), "error": error} for file in files]


class ProgressLine:
    """One line per run: rewritten in place on a terminal, else printed on each change."""

    def __init__(self, label: str, stream: TextIO) -> None:
        self._label = label
        self._stream = stream
        self._in_place = stream.isatty()
        self._last = ""

    def show(self, operation: dict[str, Any]) -> None:
        line = render_progress(self._label, operation)
        if line == self._last:
            return
        width = max(len(self._last), len(line))
        self._last = line
        self._stream.write(f"\r{line:<{width}}" if self._in_place else f"{line}\n")
        self._stream.flush()

    def close(self) -> None:
        if self._in_place and self._last:
            self._stream.write("\n")
            self._stream.flush()


def render_progress(label: str, operation: dict[str, Any]) -> str:
    """`run 1/2 [######------] 12/50 documents, 340 chunks (running)`."""
    progress = operation.get("progress") or _final_progress(operation)
    done = int(progress.get("documents_done") or 0)
    total = int(progress.get("documents_total") or 0)
    chunks = int(progress.get("chunks_stored") or 0)
    filled = BAR_WIDTH * done // total if total else 0
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    status = operation.get("status", "?")
    return f"{label} [{bar}] {done}/{total} documents, {chunks} chunks ({status})"


def _final_progress(operation: dict[str, Any]) -> dict[str, int]:
    """A finished run reports no progress of its own: its result says it all."""
    documents = (operation.get("result") or {}).get("documents") or []
    chunks = sum(int(d.get("chunks") or 0) for d in documents if d.get("status") == "ingested")
    count = len(documents)
    return {"documents_done": count, "documents_total": count, "chunks_stored": chunks}


# --------------------------------------------------------------------------- the outcome


def summary_table(runs: list[Run]) -> str:
    """One row per document, aligned, then the totals."""
    documents = [document for run in runs for document in run.documents]
    header = ("file", "document_id", "status", "chunks", "error")
    rows = [header] + [
        (
            str(d.get("filename") or ""),
            str(d.get("document_id") or ""),
            str(d.get("status") or ""),
            str(d.get("chunks") or 0),
            _error_text(d.get("error")),
        )
        for d in documents
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.append(_totals(documents))
    return "\n".join(lines)


def _totals(documents: list[dict[str, Any]]) -> str:
    """`4 documents: 3 ingested, 0 unchanged, 1 failed; 3 chunks`."""
    counts = {s: sum(d.get("status") == s for d in documents) for s in ("ingested", "unchanged")}
    failed = len(documents) - counts["ingested"] - counts["unchanged"]
    chunks = sum(int(d.get("chunks") or 0) for d in documents)
    noun = "document" if len(documents) == 1 else "documents"
    return (
        f"{len(documents)} {noun}: {counts['ingested']} ingested, {counts['unchanged']}"
        f" unchanged, {failed} failed; {chunks} chunks"
    )


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return "" if error is None else str(error)
    code = error.get("code")
    message = str(error.get("message") or "")
    return f"{message} ({code})" if code else message


def _exit_code(runs: list[Run]) -> int:
    failed = any(
        d.get("status") not in ("ingested", "unchanged") for r in runs for d in r.documents
    )
    return EXIT_FAILED_DOCUMENTS if failed else EXIT_OK
