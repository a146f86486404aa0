"""Starts ChatWorkflow runs for the chat route and relays their streams as SSE."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError

from gateway_api.errors import sse_error
from gateway_api.runtime import Runtime
from gateway_core.domain.chat import ChainStep, ChatResult, ChatWorkflowInput, ResolvedModel
from gateway_core.domain.models import Model
from gateway_core.errors import (
    GatewayError,
    ModelNotFoundError,
    ServiceUnavailableError,
    UpstreamError,
    error_from_payload,
)
from gateway_core.logging import request_id_var
from gateway_core.streaming.assembler import response_to_chunks
from gateway_core.streaming.bus import StreamEvent

logger = logging.getLogger(__name__)
_background: set[asyncio.Task[Any]] = set()
# How long to wait for the "end" event once the run itself has completed.
END_EVENT_GRACE_S = 2.0


def new_run_id() -> str:
    return f"chat-{uuid.uuid4().hex}"


async def resolve_steps(runtime: Runtime, model_name: str) -> list[ChainStep]:
    """A model name becomes a chain; a plain model is a chain of one step."""
    try:
        model = await runtime.model_cache.get(model_name)
    except ModelNotFoundError:
        raise ModelNotFoundError(
            f"The model `{model_name}` does not exist or you do not have access to it.",
            param="model",
        ) from None
    if not model.enabled:
        raise ModelNotFoundError(f"The model `{model_name}` is disabled.", param="model")
    settings = runtime.settings
    return [
        ChainStep(
            model=_resolved(model),
            max_retries=settings.default_max_retries,
            max_latency_ms=settings.default_timeout_ms,
        )
    ]


def _resolved(model: Model) -> ResolvedModel:
    return ResolvedModel(
        id=model.id,
        version=model.version,
        provider=model.provider,
        upstream_model=model.model,
        base_url=model.base_url,
        credential=model.credential,
        defaults=model.config,
    )


def failure_to_error(failure: WorkflowFailureError) -> GatewayError:
    """The gateway error a failed run carries (see workflows.chat and activities.errors)."""
    cause = failure.cause
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
        return error_from_payload(cause.details[0])
    if isinstance(cause, CancelledError):
        return UpstreamError("the run was cancelled", retryable=False, code="cancelled")
    return UpstreamError(f"the run failed: {cause or failure}", retryable=False)


async def start_run(
    runtime: Runtime, run_id: str, steps: list[ChainStep], body: dict[str, Any], stream: bool
) -> WorkflowHandle[Any, ChatResult]:
    workflow_input = ChatWorkflowInput(
        steps=steps, body=body, stream=stream, request_id=request_id_var.get()
    )
    return await runtime.temporal.start_workflow(
        "ChatWorkflow",
        workflow_input,
        id=run_id,
        task_queue=runtime.settings.temporal_task_queue,
        result_type=ChatResult,
        request_eager_start=runtime.eager_start,
    )


async def run_to_completion(
    runtime: Runtime, run_id: str, steps: list[ChainStep], body: dict[str, Any]
) -> ChatResult:
    handle = await start_run(runtime, run_id, steps, body, stream=False)
    try:
        return await handle.result()
    except WorkflowFailureError as failure:
        raise failure_to_error(failure) from None


def _cancel_in_background(handle: WorkflowHandle[Any, Any]) -> None:
    async def cancel() -> None:
        try:
            await handle.cancel()
        except Exception as exc:  # the run may have finished meanwhile
            logger.debug("cancel after disconnect failed", extra={"error": str(exc)})

    task = asyncio.create_task(cancel())
    _background.add(task)
    task.add_done_callback(_background.discard)


class StreamRelay:
    """Relays one streaming run: waits for its first chunk, then yields SSE frames."""

    def __init__(self, runtime: Runtime, run_id: str, include_usage: bool) -> None:
        self._runtime = runtime
        self._run_id = run_id
        self._include_usage = include_usage
        self._stack = AsyncExitStack()
        self._events: AsyncIterator[StreamEvent] | None = None
        self._handle: WorkflowHandle[Any, ChatResult] | None = None
        self._result: asyncio.Task[ChatResult] | None = None
        self._next: asyncio.Future[StreamEvent] | None = None
        self._first: StreamEvent | None = None
        self._finished = False

    async def start(self, steps: list[ChainStep], body: dict[str, Any]) -> None:
        """Start the run and wait for its first event; errors before it raise here."""
        bus = self._runtime.bus
        if bus is None:
            raise ServiceUnavailableError(
                "streaming needs PMP_REDIS_URL when API and worker run as separate processes"
            )
        self._events = await self._stack.enter_async_context(bus.subscribe(self._run_id))
        try:
            self._handle = await start_run(self._runtime, self._run_id, steps, body, stream=True)
            self._result = asyncio.ensure_future(self._handle.result())
            self._first = await self._next_event()
        except BaseException:
            await self.close()
            raise

    async def _next_event(self) -> StreamEvent:
        assert self._events is not None and self._result is not None
        if self._next is None:
            self._next = asyncio.ensure_future(anext(self._events))
        waiting: set[asyncio.Future[Any]] = {self._next, self._result}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if self._next.done():
            event, self._next = self._next.result(), None
            return event
        # The run ended before its next event: on success the "end" event is on its way,
        # unless the stream activity ran in a process this bus does not reach.
        try:
            result = self._result.result()
        except WorkflowFailureError as failure:
            raise failure_to_error(failure) from None
        try:
            async with asyncio.timeout(END_EVENT_GRACE_S):
                return await asyncio.shield(self._next)
        except TimeoutError:
            logger.warning(
                "stream events did not arrive; answering from the run result",
                extra={"run_id": self._run_id},
            )
            return {"type": "result", "data": result.response}

    async def frames(self) -> AsyncIterator[bytes]:
        """SSE frames: chunks, then `[DONE]`; an error event if the run fails mid-way."""
        try:
            event = self._first
            sent = 0
            while event is not None and event.get("type") == "chunk":
                frame = self._frame(event["data"])
                if frame:
                    yield frame
                sent += 1
                event = await self._next_event()
            if event is not None and event.get("type") == "result" and sent == 0:
                for chunk in response_to_chunks(event["data"]):
                    frame = self._frame(chunk)
                    if frame:
                        yield frame
            self._finished = True
            yield b"data: [DONE]\n\n"
        except GatewayError as error:
            self._finished = True
            yield sse_error(error)
        finally:
            await self.close()

    def _frame(self, chunk: dict[str, Any]) -> bytes | None:
        if not self._include_usage and chunk.get("usage") is not None:
            if not chunk.get("choices"):
                return None
            chunk = {key: value for key, value in chunk.items() if key != "usage"}
        return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n".encode()

    async def close(self) -> None:
        """Release the subscription; a run the client abandoned is cancelled."""
        if self._next is not None:
            self._next.cancel()
            self._next = None
        if (
            self._handle is not None
            and not self._finished
            and (self._result is None or not self._result.done())
        ):
            _cancel_in_background(self._handle)
        if self._result is not None and not self._result.done():
            self._result.cancel()
        await self._stack.aclose()
