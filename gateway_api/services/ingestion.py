"""Document ingestion into a knowledge base: stage the uploads, run IngestionWorkflow.

The caller's limits, permission and the knowledge base (existing, enabled, writable) are
checked before a byte of the body is read. Uploads stream into the blob store in parts
with a size cap per file and per request (413 beyond); the run gets their ids. Without
`async=true` the answer waits for the run; with it, 202 and an operation whose document
shows the run's progress.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

from pydantic import ValidationError

from gateway_api.services.answers import JsonAnswer
from gateway_api.services.knowledge import KnowledgeService, ResolvedKnowledgeBase
from gateway_api.services.operations import operation_attributes, pending_document
from gateway_api.services.routing import Router
from gateway_api.services.run_client import RunClient, RunOptions
from gateway_api.services.upload_stream import PartData, PartEvent, PartStart, multipart_events
from gateway_core import error_codec
from gateway_core.auth.service import Caller
from gateway_core.domain.chat import ChainStep
from gateway_core.domain.ingestion import (
    MAX_DOCUMENTS,
    OPERATION_TYPE,
    WORKFLOW_NAME,
    IngestionOptions,
    IngestionResult,
    IngestionWorkflowInput,
    IngestJsonBody,
    SourceDocument,
)
from gateway_core.domain.operations import new_operation_id
from gateway_core.errors import InvalidRequestError, RequestTooLargeError
from gateway_core.logging import request_id_var
from gateway_core.storage.blobs import BlobStore, BlobWriter

MAX_OPTIONS_BYTES = 64 * 1024
MAX_DOCUMENT_ID = 200


@dataclass(frozen=True)
class UploadLimits:
    """PMP_MAX_UPLOAD_BYTES per file, PMP_MAX_INGEST_REQUEST_BYTES per request."""

    per_file: int
    per_request: int

    @property
    def json_body(self) -> int:
        """The raw JSON form may carry base64 (4/3 of the bytes) plus its framing."""
        return self.per_request * 4 // 3 + 1024 * 1024


@dataclass(frozen=True)
class IngestCall:
    """One ingestion request as the router received it: the body is read here."""

    caller: Caller
    kb_id: str
    content_type: str
    body: AsyncIterable[bytes]
    declared_length: int | None = None
    run_async: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def default_document_id(filename: str | None, digest: str) -> str:
    """The filename as given (stable across re-ingestions), else the content's hash."""
    name = (filename or "").strip().replace("\\", "/").strip("/")
    if not name:
        return f"sha256-{digest[:32]}"
    if len(name) <= MAX_DOCUMENT_ID:
        return name
    return f"{name[:150]}~{hashlib.sha256(name.encode()).hexdigest()[:16]}"


class _Upload:
    """One file part being staged: its blob writer and running hash."""

    def __init__(self, writer: BlobWriter, start: PartStart) -> None:
        self.writer = writer
        self.start = start
        self.digest = hashlib.sha256()


class _Staging:
    """The documents of one request, staged as blobs under the run's id."""

    def __init__(self, blobs: BlobStore, run_id: str, limits: UploadLimits) -> None:
        self._blobs = blobs
        self._run_id = run_id
        self._limits = limits
        self._total = 0
        self.documents: list[SourceDocument] = []
        self.options = IngestionOptions()

    def _count(self, name: str, size_before: int, more: int) -> None:
        if size_before + more > self._limits.per_file:
            raise RequestTooLargeError(
                f"{name!r} is larger than {self._limits.per_file} bytes",
                param="file",
            )
        self._total += more
        if self._total > self._limits.per_request:
            raise RequestTooLargeError(
                f"the request's documents exceed {self._limits.per_request} bytes"
                " (PMP_MAX_INGEST_REQUEST_BYTES): split it",
                param="file",
            )

    def _add(self, document: SourceDocument) -> None:
        if len(self.documents) >= MAX_DOCUMENTS:
            raise InvalidRequestError(f"at most {MAX_DOCUMENTS} documents per request")
        if any(known.document_id == document.document_id for known in self.documents):
            raise InvalidRequestError(
                f"document_id {document.document_id!r} appears twice in the request",
                code="duplicate_document_id",
            )
        self.documents.append(document)

    async def read_multipart(self, events: AsyncIterator[PartEvent]) -> None:
        """`file` parts (any part with a filename) and one optional `options` part."""
        current: _Upload | bytearray | None = None
        async for event in events:
            if isinstance(event, PartStart):
                current = self._begin(event)
            elif isinstance(event, PartData):
                await self._data(current, event.data)
            else:
                await self._end(current)
                current = None

    def _begin(self, start: PartStart) -> _Upload | bytearray:
        if start.filename is not None or start.name == "file":
            return _Upload(BlobWriter(self._blobs, self._run_id, "upload"), start)
        if start.name == "options":
            return bytearray()
        raise InvalidRequestError(
            f"unknown form field {start.name!r}: send `file` parts and an `options` part",
            param=start.name or None,
        )

    async def _data(self, current: _Upload | bytearray | None, data: bytes) -> None:
        if isinstance(current, bytearray):
            if len(current) + len(data) > MAX_OPTIONS_BYTES:
                raise RequestTooLargeError("`options` is too large", param="options")
            current.extend(data)
        elif current is not None:
            self._count(current.start.filename or "file", current.writer.size, len(data))
            current.digest.update(data)
            await current.writer.write(data)

    async def _end(self, current: _Upload | bytearray | None) -> None:
        if isinstance(current, bytearray):
            self.options = _options(bytes(current))
        elif current is not None:
            blob_id = await current.writer.close()
            start = current.start
            document_id = default_document_id(start.filename, current.digest.hexdigest())
            self._add(
                SourceDocument(
                    document_id=document_id,
                    filename=start.filename,
                    content_type=start.content_type,
                    blob_id=blob_id,
                    size=current.writer.size,
                )
            )

    async def read_json(self, raw: bytes) -> None:
        """The JSON form: each source's content staged as one blob."""
        try:
            body = IngestJsonBody.model_validate_json(raw)
        except ValidationError as error:
            raise error_codec.error_from_validation(error.errors()) from None
        self.options = body.options
        for index, source in enumerate(body.sources):
            content = _source_bytes(source.content, source.content_base64, index)
            self._count(source.filename or f"sources[{index}]", 0, len(content))
            digest = hashlib.sha256(content).hexdigest()
            self._add(
                SourceDocument(
                    document_id=source.document_id or default_document_id(source.filename, digest),
                    filename=source.filename,
                    content_type=source.content_type,
                    blob_id=await self._blobs.put(self._run_id, "upload", content),
                    size=len(content),
                    metadata=source.metadata,
                )
            )

    def final_documents(self) -> list[SourceDocument]:
        """The documents with `options.metadata` under each one's own metadata."""
        if not self.documents:
            raise InvalidRequestError("no documents: send `file` parts or `sources`")
        shared = self.options.metadata
        return [
            document.model_copy(update={"metadata": {**shared, **document.metadata}})
            for document in self.documents
        ]


def _options(raw: bytes) -> IngestionOptions:
    try:
        return IngestionOptions.model_validate_json(raw or b"{}")
    except ValidationError as error:
        problems = [{**problem, "loc": ("options", *problem["loc"])} for problem in error.errors()]
        raise error_codec.error_from_validation(problems) from None


def _source_bytes(text: str | None, encoded: str | None, index: int) -> bytes:
    if text is not None:
        return text.encode()
    try:
        return base64.b64decode(encoded or "", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            "content_base64 is not valid base64", param=f"sources[{index}].content_base64"
        ) from None


async def _bounded(body: AsyncIterable[bytes], limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `limit` bytes."""
    collected = bytearray()
    async for chunk in body:
        collected.extend(chunk)
        if len(collected) > limit:
            raise RequestTooLargeError(f"the request body exceeds {limit} bytes")
    return bytes(collected)


@dataclass(frozen=True)
class _Target:
    found: ResolvedKnowledgeBase
    embedding: ChainStep
    run_id: str


class IngestionService:
    """POST /v1/knowledge-bases/{id}/ingest."""

    def __init__(
        self,
        *,
        knowledge: KnowledgeService,
        router: Router,
        blobs: BlobStore,
        runs: RunClient,
        limits: UploadLimits,
        concurrency: int,
    ) -> None:
        self._knowledge = knowledge
        self._router = router
        self._blobs = blobs
        self._runs = runs
        self._limits = limits
        self._concurrency = concurrency

    async def ingest(self, call: IngestCall) -> JsonAnswer:
        """Stage the documents and run the ingestion (202 at once with `async=true`)."""
        target = await self._prepare(call)
        staging = _Staging(self._blobs, target.run_id, self._limits)
        try:
            await self._read(call, staging)
            workflow_input = self._workflow_input(target, staging)
            options = None
            if call.run_async:
                attributes = operation_attributes(call.caller.key_id, OPERATION_TYPE)
                options = RunOptions(search_attributes=attributes)
            handle = await self._runs.start(
                WORKFLOW_NAME,
                workflow_input,
                run_id=target.run_id,
                result_type=IngestionResult,
                options=options,
            )
        except BaseException:
            await self._blobs.delete_run(target.run_id)  # nothing will clean them up
            raise
        headers = {"x-pmp-run-id": target.run_id}
        if (url := self._runs.run_url(target.run_id)) is not None:
            headers["x-pmp-run-url"] = url
        if call.run_async:
            document = pending_document(target.run_id, OPERATION_TYPE)
            headers["location"] = f"/v1/operations/{target.run_id}"
            return JsonAnswer(document.model_dump(exclude_none=True), headers, status=202)
        result = await self._runs.result(handle)
        return JsonAnswer(result.answer(), headers)

    async def _prepare(self, call: IngestCall) -> _Target:
        found = await self._knowledge.resolve_writable(call.caller, call.kb_id, call.headers)
        route = await self._router.resolve(found.kb.embedding_model_id, kind="embedding")
        limit = self._limits.json_body
        if call.declared_length is not None and call.declared_length > limit:
            raise RequestTooLargeError(f"the request body exceeds {limit} bytes")
        run_id = new_operation_id() if call.run_async else f"ingest-{uuid.uuid4().hex}"
        return _Target(found=found, embedding=route.steps[0], run_id=run_id)

    async def _read(self, call: IngestCall, staging: _Staging) -> None:
        media_type = call.content_type.split(";", 1)[0].strip().lower()
        if media_type == "multipart/form-data":
            await staging.read_multipart(multipart_events(call.body, call.content_type))
        elif media_type == "application/json":
            await staging.read_json(await _bounded(call.body, self._limits.json_body))
        else:
            raise InvalidRequestError(
                "send multipart/form-data (`file` parts) or application/json (`sources`)",
                code="unsupported_media_type",
            )

    def _workflow_input(self, target: _Target, staging: _Staging) -> IngestionWorkflowInput:
        kb = target.found.kb
        options = staging.options
        return IngestionWorkflowInput(
            kb=target.found.ref,
            embedding=target.embedding,
            documents=staging.final_documents(),
            parser=options.parser,
            chunker=options.chunker.resolve(kb.ingestion),
            batch_size=options.batch_size or kb.ingestion.embed_batch_size,
            concurrency=self._concurrency,
            request_id=request_id_var.get(),
        )
