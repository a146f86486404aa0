"""IngestionWorkflow: parse → chunk → embed in batches → store, per document.

Each stage is a regular activity (visible in the Web UI, retried by its policy, resumed
on another worker after a crash); documents go through a bounded number at a time, and a
failing document ends as `failed` in the answer without failing the others. Only blob
ids and counts cross the history. The `progress` query reports how far the run is.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from gateway_core.domain.ingestion import (
        PROGRESS_QUERY,
        WORKFLOW_NAME,
        ChunkInput,
        ChunkOutcome,
        CleanupInput,
        DocumentOutcome,
        EmbedBatchInput,
        EmbedBatchOutcome,
        IngestionProgress,
        IngestionResult,
        IngestionWorkflowInput,
        ParseInput,
        ParseOutcome,
        SourceDocument,
        UpsertInput,
        UpsertOutcome,
    )
    from gateway_core.error_codec import error_from_payload, payload_from_activity_failure
    from workflows.chat import BACKSTOP, NON_RETRYABLE_ERRORS, is_cancellation, retry_policy

PARSE_ACTIVITY = "ingest_parse"
CHUNK_ACTIVITY = "ingest_chunk"
EMBED_ACTIVITY = "ingest_embed_batch"
UPSERT_ACTIVITY = "ingest_upsert"
CLEANUP_ACTIVITY = "ingest_cleanup"
# Parsing a large PDF and storing a document's chunks may take minutes; a dead worker's
# attempt is noticed within the heartbeat timeout (activities beat every second).
STAGE_TIMEOUT = timedelta(minutes=15)
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
STAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE_ERRORS,
)
STAGE_RETRIES = 4  # STAGE_RETRY's attempts beyond the first, for failure payloads
OutcomeT = TypeVar("OutcomeT")


@workflow.defn(name=WORKFLOW_NAME)
class IngestionWorkflow:
    """One ingestion request: every document through every stage, reported per document."""

    def __init__(self) -> None:
        self._progress = IngestionProgress()

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> IngestionProgress:
        return self._progress

    @workflow.run
    async def run(self, inp: IngestionWorkflowInput) -> IngestionResult:
        self._progress = IngestionProgress(documents_total=len(inp.documents))
        gate = asyncio.Semaphore(max(1, inp.concurrency))

        async def one(document: SourceDocument) -> DocumentOutcome:
            async with gate:
                outcome = await self._document(inp, document)
            self._progress.documents_done += 1
            return outcome

        try:
            outcomes = await asyncio.gather(*(one(document) for document in inp.documents))
        finally:
            await workflow.execute_activity(
                CLEANUP_ACTIVITY,
                CleanupInput(run_id=workflow.info().workflow_id),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=STAGE_RETRY,
                result_type=int,
            )
        return IngestionResult.of(inp.kb.id, list(outcomes))

    async def _document(
        self, inp: IngestionWorkflowInput, document: SourceDocument
    ) -> DocumentOutcome:
        """One document's stages; any stage's final failure is this document's error."""
        try:
            return await self._stages(inp, document)
        except FailureError as error:
            if is_cancellation(error):
                raise
            payload = payload_from_activity_failure(error, max_retries=STAGE_RETRIES)
            failed = _outcome(document, "failed", 0)
            failed.error = error_from_payload(payload).to_dict()
            return failed

    async def _stages(
        self, inp: IngestionWorkflowInput, document: SourceDocument
    ) -> DocumentOutcome:
        run_id = workflow.info().workflow_id
        parse = ParseInput(
            run_id=run_id,
            kb=inp.kb,
            document=document,
            parser=inp.parser,
            chunker=inp.chunker,
            embedding_model_id=inp.embedding.model.id,
        )
        parsed = await self._stage(PARSE_ACTIVITY, parse, ParseOutcome)
        if parsed.unchanged or parsed.parsed_blob_id is None:
            return _outcome(document, "unchanged", parsed.stored_chunks)
        chunk = ChunkInput(
            run_id=run_id,
            document=document,
            parsed_blob_id=parsed.parsed_blob_id,
            chunker=inp.chunker,
            content_hash=parsed.content_hash,
        )
        chunked = await self._stage(CHUNK_ACTIVITY, chunk, ChunkOutcome)
        vectors = await self._embed(inp, chunked)
        upsert = UpsertInput(
            kb=inp.kb,
            document_id=document.document_id,
            chunks_blob_id=chunked.chunks_blob_id,
            vectors_blob_ids=vectors,
        )
        stored = await self._stage(UPSERT_ACTIVITY, upsert, UpsertOutcome)
        self._progress.chunks_stored += stored.stored
        return _outcome(document, "ingested", stored.stored)

    async def _embed(self, inp: IngestionWorkflowInput, chunked: ChunkOutcome) -> list[str]:
        """The document's chunks in batches of `batch_size`, one activity per batch."""
        step = inp.embedding
        vector_blobs: list[str] = []
        for start in range(0, chunked.count, inp.batch_size):
            batch: EmbedBatchOutcome = await workflow.execute_activity(
                EMBED_ACTIVITY,
                EmbedBatchInput(
                    run_id=workflow.info().workflow_id,
                    chunks_blob_id=chunked.chunks_blob_id,
                    start=start,
                    size=inp.batch_size,
                    embedding=step,
                    request_id=inp.request_id,
                ),
                start_to_close_timeout=timedelta(milliseconds=step.max_latency_ms) + BACKSTOP,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=retry_policy(step),
                result_type=EmbedBatchOutcome,
            )
            vector_blobs.append(batch.vectors_blob_id)
            self._progress.chunks_embedded += batch.count
        return vector_blobs

    @staticmethod
    async def _stage(activity: str, arg: object, result_type: type[OutcomeT]) -> OutcomeT:
        outcome: OutcomeT = await workflow.execute_activity(
            activity,
            arg,
            start_to_close_timeout=STAGE_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=STAGE_RETRY,
            result_type=result_type,
        )
        return outcome


def _outcome(document: SourceDocument, status: str, chunks: int) -> DocumentOutcome:
    return DocumentOutcome.model_validate(
        {
            "document_id": document.document_id,
            "filename": document.filename,
            "status": status,
            "chunks": chunks,
        }
    )
