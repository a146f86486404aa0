"""The one adapter between the services and Temporal: start, await, query, update,
describe, cancel, list.

Every Temporal failure leaves here as a GatewayError (through gateway_core.error_codec),
so services never see an RPCError or a WorkflowFailureError.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from gateway_core import error_codec
from gateway_core.errors import ConflictError, GatewayError, InvalidRequestError
from temporal_workers.result_handoff import FROM_HISTORY, ResultHandOff

ResultT = TypeVar("ResultT", bound=BaseModel)

REQUEST_MEMO = "pmp_request_hash"
# How long a waiter trusts the in-process hand-off alone. A run that has not handed its
# result over by then may be finishing on another process's worker: from then on the
# history long poll waits too, and whichever answers first wins.
HANDOFF_ALONE_S = 2.0


@dataclass(frozen=True)
class RunOptions:
    """How a run is started beyond its input."""

    search_attributes: TypedSearchAttributes | None = None
    memo: dict[str, Any] | None = None
    # With an Idempotency-Key: attach to the run of that id instead of starting another,
    # provided it was started for the same request (409 otherwise).
    request_hash: str | None = None


@dataclass(frozen=True)
class RunPage:
    """One page of a visibility listing and the cursor of the next (None at the end)."""

    executions: Sequence[WorkflowExecution]
    cursor: str | None


class RunClient:
    """Starts and observes runs on one task queue of one namespace."""

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        namespace: str,
        eager_start: bool,
        ui_url: str | None = None,
        handoff: ResultHandOff | None = None,
    ) -> None:
        self.client = client
        # Set when this process's worker runs the runs it starts (`serve`).
        self.handoff = handoff
        self._task_queue = task_queue
        self._namespace = namespace
        self.eager_start = eager_start
        self._ui_url = ui_url.rstrip("/") if ui_url else None

    def run_url(self, run_id: str) -> str | None:
        """Where an operator opens the run in the Temporal Web UI (when one runs)."""
        if not self._ui_url:
            return None
        return f"{self._ui_url}/namespaces/{self._namespace}/workflows/{run_id}"

    def handle(self, run_id: str, result_type: type[ResultT]) -> WorkflowHandle[Any, ResultT]:
        return self.client.get_workflow_handle(run_id, result_type=result_type)

    async def start(
        self,
        workflow: str,
        arg: BaseModel,
        *,
        run_id: str,
        result_type: type[ResultT],
        options: RunOptions | None = None,
    ) -> WorkflowHandle[Any, ResultT]:
        """Start `workflow` as `run_id` (eagerly when the worker shares this client)."""
        options = options or RunOptions()
        idempotent = options.request_hash is not None
        memo = dict(options.memo or {})
        if idempotent:
            memo[REQUEST_MEMO] = options.request_hash
        try:
            handle = await self.client.start_workflow(
                workflow,
                arg,
                id=run_id,
                task_queue=self._task_queue,
                result_type=result_type,
                request_eager_start=self.eager_start,
                search_attributes=options.search_attributes,
                memo=memo or None,
                id_conflict_policy=(
                    WorkflowIDConflictPolicy.USE_EXISTING
                    if idempotent
                    else WorkflowIDConflictPolicy.UNSPECIFIED
                ),
                id_reuse_policy=(
                    WorkflowIDReusePolicy.REJECT_DUPLICATE
                    if idempotent
                    else WorkflowIDReusePolicy.ALLOW_DUPLICATE
                ),
            )
        except WorkflowAlreadyStartedError:
            handle = self.handle(run_id, result_type)
        except RPCError as error:
            raise error_codec.error_from_rpc(error) from None
        if idempotent:
            await self._same_request(handle, options.request_hash)
        return handle

    async def execute(
        self,
        workflow: str,
        arg: BaseModel,
        *,
        run_id: str,
        result_type: type[ResultT],
        options: RunOptions | None = None,
    ) -> ResultT:
        """Start `workflow` and await its result, from the in-process worker when it can."""
        idempotent = options is not None and options.request_hash is not None
        with self.awaiting(run_id, idempotent=idempotent) as handed_over:
            handle = await self.start(
                workflow, arg, run_id=run_id, result_type=result_type, options=options
            )
            return await self.outcome(handle, handed_over)

    @contextmanager
    def awaiting(self, run_id: str, *, idempotent: bool) -> Iterator[asyncio.Future[Any] | None]:
        """Where this process's worker will hand over `run_id`'s result; enter before start.

        None when it cannot: no worker here, or an Idempotency-Key, whose request may
        attach to a run another request started (its result is then read from history).
        """
        if self.handoff is None or idempotent:
            yield None
            return
        with self.handoff.awaiting(run_id) as future:
            yield future

    async def outcome(
        self, handle: WorkflowHandle[Any, ResultT], handed_over: asyncio.Future[Any] | None
    ) -> ResultT:
        """The run's result, handed over in process when `awaiting` gave a future."""
        if handed_over is None:
            return await self.result(handle)
        return await self._handed_over_or_recorded(handle, handed_over)

    async def _handed_over_or_recorded(
        self, handle: WorkflowHandle[Any, ResultT], handed_over: asyncio.Future[Any]
    ) -> ResultT:
        done, _ = await asyncio.wait({handed_over}, timeout=HANDOFF_ALONE_S)
        if not done:
            recorded = asyncio.ensure_future(self.result(handle))
            try:
                await asyncio.wait({handed_over, recorded}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not recorded.done():
                    recorded.cancel()
            if recorded.done():
                return recorded.result()
        outcome = handed_over.result()
        if outcome is FROM_HISTORY:  # it failed or was cancelled: the error is in history
            return await self.result(handle)
        result: ResultT = outcome
        return result

    async def _same_request(
        self, handle: WorkflowHandle[Any, Any], request_hash: str | None
    ) -> None:
        """An Idempotency-Key names one request: reusing it for another is a 409."""
        description = await handle.describe()
        recorded = await description.memo_value(REQUEST_MEMO, default=None)
        if recorded is not None and recorded != request_hash:
            raise ConflictError(
                "this Idempotency-Key was already used with a different request",
                code="idempotency_key_reused",
            )

    async def result(self, handle: WorkflowHandle[Any, ResultT]) -> ResultT:
        """The run's result; its failure as the GatewayError it carries."""
        try:
            return await handle.result()
        except WorkflowFailureError as failure:
            raise error_codec.error_from_run_failure(failure.cause) from None
        except RPCError as error:
            raise error_codec.error_from_rpc(error) from None

    async def failure(self, run_id: str) -> GatewayError | None:
        """The error a failed or cancelled run ended with (None if it did not fail)."""
        try:
            await self.client.get_workflow_handle(run_id).result()
        except WorkflowFailureError as failure:
            return error_codec.error_from_run_failure(failure.cause)
        except RPCError as error:
            raise error_codec.error_from_rpc(error) from None
        return None

    async def query(self, run_id: str, name: str, result_type: type[ResultT]) -> ResultT | None:
        """A running run's query answer, or None when no worker answers it now."""
        try:
            answer: ResultT = await self.client.get_workflow_handle(run_id).query(
                name, result_type=result_type
            )
        except (RPCError, WorkflowQueryFailedError):
            return None
        return answer

    async def update(self, run_id: str, name: str, arg: Any) -> None:
        """Deliver an update; the run's refusal as the GatewayError its validator raised."""
        try:
            await self.client.get_workflow_handle(run_id).execute_update(name, arg)
        except WorkflowUpdateFailedError as failure:
            raise error_codec.error_from_run_failure(failure.cause) from None
        except RPCError as error:
            raise error_codec.error_from_rpc(error) from None

    async def describe(self, run_id: str) -> WorkflowExecutionDescription | None:
        """The run's description, or None when no such run exists (any more)."""
        try:
            return await self.client.get_workflow_handle(run_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise error_codec.error_from_rpc(error) from None

    async def cancel(self, run_id: str) -> bool:
        """Request cancellation; False when the run had already ended."""
        try:
            await self.client.get_workflow_handle(run_id).cancel()
        except RPCError as error:
            if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                return False
            raise error_codec.error_from_rpc(error) from None
        return True

    async def list_page(self, query: str, *, page_size: int, cursor: str | None) -> RunPage:
        """One page of runs matching a visibility query; 400 for a cursor we did not issue."""
        try:
            token = base64.urlsafe_b64decode(cursor.encode()) if cursor else None
        except (ValueError, UnicodeEncodeError):
            raise _bad_cursor() from None
        iterator = self.client.list_workflows(query, page_size=page_size, next_page_token=token)
        try:
            await iterator.fetch_next_page()
        except RPCError as error:
            if error.status == RPCStatusCode.INVALID_ARGUMENT and cursor:
                raise _bad_cursor() from None
            raise error_codec.error_from_rpc(error) from None
        next_token = iterator.next_page_token
        next_cursor = base64.urlsafe_b64encode(next_token).decode() if next_token else None
        return RunPage(iterator.current_page or [], next_cursor)

    async def check_health(self) -> None:
        """Raises when the Temporal frontend does not answer its health check."""
        await self.client.service_client.check_health()


def _bad_cursor() -> InvalidRequestError:
    return InvalidRequestError("`after` is not a cursor from a previous page", param="after")
