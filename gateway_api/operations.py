"""Async operations backed by Temporal: start, describe, list and cancel runs by id.

Status, result and error come from the run itself (describe / result); who may see an
operation comes from its PmpOwner search attribute.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import Any

from temporalio.client import (
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from gateway_api.chat_runs import CALLBACK_MEMO, failure_to_error, rpc_to_error
from gateway_api.runtime import Runtime
from gateway_core.auth.service import Caller
from gateway_core.domain.chat import ChatResult
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
from gateway_core.errors import ConflictError, InvalidRequestError, NotFoundError

OWNER_KEY = SearchAttributeKey.for_keyword(OWNER_ATTRIBUTE)
TYPE_KEY = SearchAttributeKey.for_keyword(TYPE_ATTRIBUTE)
_TERMINAL = {
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


class OperationNotFoundError(NotFoundError):
    default_code = "operation_not_found"


def operation_attributes(owner: str, operation_type: str) -> TypedSearchAttributes:
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


async def describe_operation(runtime: Runtime, caller: Caller, operation_id: str) -> OperationDoc:
    """The operation document; 404 for anyone but its owner (or an admin)."""
    description = await _owned(runtime, caller, operation_id)
    return await _document(runtime, description)


async def _owned(
    runtime: Runtime, caller: Caller, operation_id: str
) -> WorkflowExecutionDescription:
    parsed = parse_operation_id(operation_id)
    if parsed is None:
        raise InvalidRequestError(
            f"{operation_id!r} is not an operation id (op-<uuid>)", param="operation_id"
        )
    handle = runtime.temporal.get_workflow_handle(operation_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise rpc_to_error(error) from None
        raise _missing(runtime, operation_id, created_at_of(parsed)) from None
    owner = description.typed_search_attributes.get(OWNER_KEY)
    if owner is None or (owner != caller.key_id and not caller.is_admin):
        # Not 403: ids of other callers' operations must not be probeable.
        raise OperationNotFoundError(f"operation {operation_id!r} does not exist")
    return description


def _missing(runtime: Runtime, operation_id: str, created_at: float | None) -> NotFoundError:
    days = runtime.settings.operation_retention_days
    if created_at is not None and time.time() - created_at > days * 86400:
        return OperationNotFoundError(
            f"operation {operation_id!r} has expired: results are kept for {days} days",
            code="operation_expired",
        )
    return OperationNotFoundError(f"operation {operation_id!r} does not exist")


async def _document(runtime: Runtime, description: WorkflowExecutionDescription) -> OperationDoc:
    operation_id = description.id
    status: OperationStatus = "running"
    if description.status in _TERMINAL:
        status = _TERMINAL[description.status]  # type: ignore[assignment]
    elif description.history_length <= 2:
        status = "pending"
    created = description.start_time
    updated = description.close_time or created
    document = OperationDoc(
        operation_id=operation_id,
        type=description.typed_search_attributes.get(TYPE_KEY) or "chat.completion",
        status=status,
        created_at=int(created.timestamp()),
        updated_at=int(updated.timestamp()),
    )
    handle: WorkflowHandle[Any, ChatResult] = runtime.temporal.get_workflow_handle(
        operation_id, result_type=ChatResult
    )
    if status == "completed":
        document.result = response_with_metadata(await handle.result(), operation_id)
    elif status in ("failed", "cancelled"):
        document.error = await _failure(handle)
    if await description.memo_value(CALLBACK_MEMO, default=False):
        document.callback = await _callback_state(runtime, operation_id)
    return document


async def _failure(handle: WorkflowHandle[Any, ChatResult]) -> dict[str, Any]:
    try:
        await handle.result()
    except WorkflowFailureError as failure:
        return failure_to_error(failure).to_dict()
    return {
        "message": "the operation did not complete",
        "type": "server_error",
        "param": None,
        "code": None,
    }


async def _callback_state(runtime: Runtime, operation_id: str) -> dict[str, Any] | None:
    handle = runtime.temporal.get_workflow_handle(
        callback_run_id(operation_id), result_type=CallbackOutcome
    )
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise rpc_to_error(error) from None
    if description.status == WorkflowExecutionStatus.COMPLETED:
        outcome = await handle.result()
        return {
            "status": "delivered" if outcome.delivered else "failed",
            **outcome.model_dump(mode="json"),
        }
    if description.status == WorkflowExecutionStatus.RUNNING:
        return {"status": "pending"}
    return {"status": "failed", "delivered": False}


async def cancel_operation(runtime: Runtime, caller: Caller, operation_id: str) -> OperationDoc:
    """Cancel a running operation (its upstream request is closed); 409 once it ended."""
    description = await _owned(runtime, caller, operation_id)
    if description.status in _TERMINAL:
        raise ConflictError(
            f"operation {operation_id!r} has already ended ({_TERMINAL[description.status]})",
            code="operation_finished",
        )
    handle = runtime.temporal.get_workflow_handle(operation_id)
    try:
        await handle.cancel()
    except RPCError as error:
        # It ended between the describe above and the cancel request.
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise ConflictError(
                f"operation {operation_id!r} has already ended", code="operation_finished"
            ) from None
        raise rpc_to_error(error) from None
    # The run ends as cancelled once its activity has closed the upstream request.
    with contextlib.suppress(WorkflowFailureError, TimeoutError):
        async with asyncio.timeout(10):
            await handle.result()
    return await describe_operation(runtime, caller, operation_id)


async def list_operations(
    runtime: Runtime,
    caller: Caller,
    *,
    status: str | None,
    operation_type: str | None,
    limit: int,
    after: str | None,
) -> tuple[list[OperationDoc], str | None]:
    """The caller's operations newest first (a visibility query), one page at a time."""
    clauses = [f"{TYPE_ATTRIBUTE} IS NOT NULL"]
    if not caller.is_admin:
        clauses.append(f"{OWNER_ATTRIBUTE} = {_quoted(caller.key_id)}")
    if operation_type:
        clauses.append(f"{TYPE_ATTRIBUTE} = {_quoted(operation_type)}")
    if status:
        clauses.append(f"ExecutionStatus IN ({_QUERY_STATUS[status]})")
    try:
        token = base64.urlsafe_b64decode(after.encode()) if after else None
    except (ValueError, UnicodeEncodeError):
        raise InvalidRequestError(
            "`after` is not a cursor from a previous page", param="after"
        ) from None
    iterator = runtime.temporal.list_workflows(
        " AND ".join(clauses), page_size=limit, next_page_token=token
    )
    try:
        await iterator.fetch_next_page()
    except RPCError as error:
        if error.status == RPCStatusCode.INVALID_ARGUMENT and after:
            raise InvalidRequestError(
                "`after` is not a cursor from a previous page", param="after"
            ) from None
        raise rpc_to_error(error) from None
    documents = []
    for execution in iterator.current_page or []:
        handle = runtime.temporal.get_workflow_handle(execution.id)
        documents.append(await _document(runtime, await handle.describe()))
    if status == "pending":
        documents = [d for d in documents if d.status == "pending"]
    elif status == "running":
        documents = [d for d in documents if d.status == "running"]
    next_token = iterator.next_page_token
    cursor = base64.urlsafe_b64encode(next_token).decode() if next_token else None
    return documents, cursor


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
