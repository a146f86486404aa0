"""Async operations backed by Temporal: describe, list and cancel runs by id.

An operation is a run: its id is the workflow id, its status and result the run's. Who
may see one comes from its PmpOwner search attribute; nobody else learns it exists.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from temporalio.client import (
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from gateway_api.services.run_client import RunClient
from gateway_core import error_codec
from gateway_core.auth.service import Caller
from gateway_core.domain.chat import ChatResult
from gateway_core.domain.ingestion import OPERATION_TYPE as INGESTION
from gateway_core.domain.ingestion import PROGRESS_QUERY, IngestionProgress, IngestionResult
from gateway_core.domain.operations import (
    OWNER_ATTRIBUTE,
    TYPE_ATTRIBUTE,
    CallbackOutcome,
    OperationDoc,
    OperationStatus,
    callback_run_id,
    created_at_of,
    parse_operation_id,
    response_with_metadata,
)
from gateway_core.errors import (
    ConfigurationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)
from gateway_core.userflows.runs import OPERATION_TYPE as WORKFLOW_RUN
from gateway_core.userflows.runs import PROGRESS_QUERY as WORKFLOW_PROGRESS
from gateway_core.userflows.runs import UserflowProgress, UserWorkflowResult
from temporal_workers.payload_codec import PayloadKeyError

# Set on runs started with a callback_url: only those have a callback child to look up.
CALLBACK_MEMO = "pmp_callback"
OWNER_KEY = SearchAttributeKey.for_keyword(OWNER_ATTRIBUTE)
TYPE_KEY = SearchAttributeKey.for_keyword(TYPE_ATTRIBUTE)
_TERMINAL: dict[WorkflowExecutionStatus, OperationStatus] = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.TERMINATED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
}
_QUERY_STATUS = {
    "pending": "'Running'",
    "running": "'Running'",
    "completed": "'Completed'",
    "failed": "'Failed', 'TimedOut', 'Terminated'",
    "cancelled": "'Canceled'",
}
_UNREADABLE = ConfigurationError(
    "the run's payloads were encrypted with another payload key (PMP_PAYLOAD_KEY changed)",
    code="payload_key_mismatch",
)
# How long a cancel waits for the run to close its upstream request before answering.
CANCEL_WAIT_S = 10


class OperationNotFoundError(NotFoundError):
    default_code = "operation_not_found"


def operation_attributes(owner: str, operation_type: str) -> TypedSearchAttributes:
    """The search attributes an async run carries: who started it, and what it is."""
    return TypedSearchAttributes(
        [SearchAttributePair(OWNER_KEY, owner), SearchAttributePair(TYPE_KEY, operation_type)]
    )


def pending_document(operation_id: str, operation_type: str) -> OperationDoc:
    now = int(time.time())
    return OperationDoc(
        operation_id=operation_id,
        type=operation_type,
        status="pending",
        created_at=now,
        updated_at=now,
    )


class OperationsService:
    """Reads and cancels the operations a caller owns (an admin sees all)."""

    def __init__(self, runs: RunClient, *, retention_days: int) -> None:
        self._runs = runs
        self._retention_days = retention_days

    async def describe(self, caller: Caller, operation_id: str) -> OperationDoc:
        """The operation document; 404 for anyone but its owner (or an admin)."""
        return await self._document(await self._owned(caller, operation_id))

    async def cancel(self, caller: Caller, operation_id: str) -> OperationDoc:
        """Cancel a running operation (its upstream request is closed); 409 once it ended."""
        description = await self._owned(caller, operation_id)
        if description.status in _TERMINAL:
            raise ConflictError(
                f"operation {operation_id!r} has already ended ({_TERMINAL[description.status]})",
                code="operation_finished",
            )
        if not await self._runs.cancel(operation_id):  # it ended since the describe above
            raise ConflictError(
                f"operation {operation_id!r} has already ended", code="operation_finished"
            )
        # The run ends as cancelled once its activity has closed the upstream request.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CANCEL_WAIT_S):
                await self._runs.failure(operation_id)
        return await self.describe(caller, operation_id)

    async def list(
        self,
        caller: Caller,
        *,
        status: str | None,
        operation_type: str | None,
        limit: int,
        after: str | None,
    ) -> tuple[list[OperationDoc], str | None]:
        """The caller's operations newest first (a visibility query), one page at a time."""
        page = await self._runs.list_page(
            _visibility_query(caller, status, operation_type), page_size=limit, cursor=after
        )
        # The listing already carries status, owner, type and memo: no describe per run.
        documents = await self._documents(page.executions)
        if status in ("pending", "running"):  # one visibility status, told apart here
            documents = [d for d in documents if d.status == status]
        return documents, page.cursor

    async def describe_many(
        self, caller: Caller, operation_ids: builtins.list[str]
    ) -> tuple[builtins.list[OperationDoc], builtins.list[str]]:
        """Several operations with one visibility query: (documents in asked order, missing).

        Ids the (eventually consistent) listing does not show yet are described one by one.
        """
        for operation_id in operation_ids:
            if parse_operation_id(operation_id) is None:
                raise InvalidRequestError(
                    f"{operation_id!r} is not an operation id (op-<uuid>)", param="ids"
                )
        wanted = builtins.list(dict.fromkeys(operation_ids))
        ids = ", ".join(_quoted(operation_id) for operation_id in wanted)
        query = f"{_visibility_query(caller, None, None)} AND WorkflowId IN ({ids})"
        page = await self._runs.list_page(query, page_size=len(wanted), cursor=None)
        listed = {execution.id: execution for execution in page.executions}
        documents = await self._documents(builtins.list(listed.values()))
        found: dict[str, OperationDoc] = dict(zip(listed, documents, strict=True))
        for operation_id in (i for i in wanted if i not in listed):
            with contextlib.suppress(NotFoundError):
                found[operation_id] = await self.describe(caller, operation_id)
        return [found[i] for i in wanted if i in found], [i for i in wanted if i not in found]

    async def _owned(self, caller: Caller, operation_id: str) -> WorkflowExecutionDescription:
        parsed = parse_operation_id(operation_id)
        if parsed is None:
            raise InvalidRequestError(
                f"{operation_id!r} is not an operation id (op-<uuid>)", param="operation_id"
            )
        description = await self._runs.describe(operation_id)
        if description is None:
            raise self._missing(operation_id, created_at_of(parsed))
        owner = description.typed_search_attributes.get(OWNER_KEY)
        if owner is None or (owner != caller.key_id and not caller.is_admin):
            # Not 403: ids of other callers' operations must not be probeable.
            raise OperationNotFoundError(f"operation {operation_id!r} does not exist")
        return description

    def _missing(self, operation_id: str, created_at: float | None) -> NotFoundError:
        days = self._retention_days
        if created_at is not None and time.time() - created_at > days * 86400:
            return OperationNotFoundError(
                f"operation {operation_id!r} has expired: results are kept for {days} days",
                code="operation_expired",
            )
        return OperationNotFoundError(f"operation {operation_id!r} does not exist")

    async def _documents(
        self, executions: Sequence[WorkflowExecution]
    ) -> builtins.list[OperationDoc]:
        """Documents of listed runs; their callback children come from one more listing."""
        callbacks = await self._callback_runs(executions)
        return builtins.list(
            await asyncio.gather(*(self._document(e, callbacks) for e in executions))
        )

    async def _callback_runs(
        self, executions: Sequence[WorkflowExecution]
    ) -> dict[str, WorkflowExecution]:
        """The callback children of those runs that have one, by run id (one listing)."""
        ids = [callback_run_id(e.id) for e in executions if await _has_callback(e)]
        if not ids:
            return {}
        query = f"WorkflowId IN ({', '.join(_quoted(i) for i in ids)})"
        page = await self._runs.list_page(query, page_size=len(ids), cursor=None)
        return {execution.id: execution for execution in page.executions}

    async def _document(
        self,
        description: WorkflowExecution,
        callbacks: Mapping[str, WorkflowExecution] | None = None,
    ) -> OperationDoc:
        """The operation's document; one recorded under another payload key (before a key
        change) shows that as its error instead of failing the whole answer."""
        try:
            return await self._read_document(description, callbacks)
        except PayloadKeyError:
            return OperationDoc(
                operation_id=description.id,
                type=description.typed_search_attributes.get(TYPE_KEY) or "chat.completion",
                status=_TERMINAL.get(description.status, "running")
                if description.status
                else "running",
                created_at=int(description.start_time.timestamp()),
                updated_at=int((description.close_time or description.start_time).timestamp()),
                error=error_codec.operation_error(_UNREADABLE),
            )

    async def _read_document(
        self,
        description: WorkflowExecution,
        callbacks: Mapping[str, WorkflowExecution] | None,
    ) -> OperationDoc:
        operation_id = description.id
        status: OperationStatus = "running"
        if description.status in _TERMINAL:
            status = _TERMINAL[description.status]
        elif description.history_length <= 2:
            status = "pending"
        created = description.start_time
        document = OperationDoc(
            operation_id=operation_id,
            type=description.typed_search_attributes.get(TYPE_KEY) or "chat.completion",
            status=status,
            created_at=int(created.timestamp()),
            updated_at=int((description.close_time or created).timestamp()),
        )
        if status == "completed":
            document.result = await self._result(document)
        elif status in ("failed", "cancelled"):
            document.error = error_codec.operation_error(await self._runs.failure(operation_id))
        elif document.type == INGESTION:
            document.progress = await self._ingestion_progress(operation_id)
        elif document.type == WORKFLOW_RUN:
            document.progress = await self._workflow_progress(operation_id)
        if await _has_callback(description):
            document.callback = await self._callback_state(operation_id, callbacks or {})
        return document

    async def _result(self, document: OperationDoc) -> dict[str, Any]:
        """A completed operation's result, in the shape its synchronous call answers."""
        operation_id = document.operation_id
        if document.type == INGESTION:
            handle = self._runs.handle(operation_id, IngestionResult)
            return (await self._runs.result(handle)).answer()
        if document.type == WORKFLOW_RUN:
            run = self._runs.handle(operation_id, UserWorkflowResult)
            return (await self._runs.result(run)).answer(operation_id)
        result = await self._runs.result(self._runs.handle(operation_id, ChatResult))
        return response_with_metadata(result, operation_id)

    async def _ingestion_progress(self, operation_id: str) -> dict[str, Any] | None:
        """A running ingestion's `progress` query (None when no worker answers it now)."""
        progress = await self._runs.query(operation_id, PROGRESS_QUERY, IngestionProgress)
        return progress.model_dump() if progress is not None else None

    async def _workflow_progress(self, operation_id: str) -> dict[str, Any] | None:
        """A running workflow's current steps and paused inputs (its `progress` query)."""
        progress = await self._runs.query(operation_id, WORKFLOW_PROGRESS, UserflowProgress)
        return progress.model_dump() if progress is not None else None

    async def _callback_state(
        self, operation_id: str, listed: Mapping[str, WorkflowExecution]
    ) -> dict[str, Any] | None:
        run_id = callback_run_id(operation_id)
        description = listed.get(run_id) or await self._runs.describe(run_id)
        if description is None:
            return None
        if description.status == WorkflowExecutionStatus.COMPLETED:
            outcome = await self._runs.result(self._runs.handle(run_id, CallbackOutcome))
            # Only delivered or failed: the receiver's status or error would let any key
            # map what answers where (the history keeps them for operators).
            return {
                "status": "delivered" if outcome.delivered else "failed",
                **outcome.model_dump(
                    mode="json", include={"delivered", "attempts", "delivered_at"}
                ),
            }
        if description.status == WorkflowExecutionStatus.RUNNING:
            return {"status": "pending"}
        return {"status": "failed", "delivered": False}


def _visibility_query(caller: Caller, status: str | None, operation_type: str | None) -> str:
    clauses = [f"{TYPE_ATTRIBUTE} IS NOT NULL"]
    if not caller.is_admin:
        clauses.append(f"{OWNER_ATTRIBUTE} = {_quoted(caller.key_id)}")
    if operation_type:
        clauses.append(f"{TYPE_ATTRIBUTE} = {_quoted(operation_type)}")
    if status:
        clauses.append(f"ExecutionStatus IN ({_QUERY_STATUS[status]})")
    return " AND ".join(clauses)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def _has_callback(execution: WorkflowExecution) -> bool:
    """Whether the run was started with a callback_url (its memo says so); a memo sealed
    under another payload key reads as no callback."""
    try:
        return bool(await execution.memo_value(CALLBACK_MEMO, default=False))
    except PayloadKeyError:
        return False
