"""Relays a streaming run's chunks from the stream bus to the client as SSE frames."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from temporalio.client import WorkflowHandle

from gateway_api.chat_runs import Route, RunOptions, await_result, run_headers, start_run
from gateway_api.errors import sse_error
from gateway_api.runtime import Runtime
from gateway_core.domain.chat import ChatResult
from gateway_core.domain.prompts import PromptUse
from gateway_core.errors import (
    GatewayError,
    ServiceUnavailableError,
    StreamInterruptedError,
    error_from_payload,
)
from gateway_core.streaming.assembler import ChunkAssembler, response_to_chunks
from gateway_core.streaming.bus import StreamEvent

logger = logging.getLogger(__name__)

# Once the run has ended, how long its last events may still be in flight on the bus.
END_EVENT_GRACE_S = 2.0


class StreamRelay:
    """Relays one streaming run: waits for its first chunk, then yields SSE frames."""

    def __init__(
        self,
        runtime: Runtime,
        run_id: str,
        include_usage: bool,
        on_done: Callable[[str | None, dict[str, Any] | None], None] | None = None,
        on_complete: Callable[[dict[str, Any], str], Awaitable[None]] | None = None,
    ) -> None:
        self._runtime = runtime
        self._on_done = on_done
        # Given the assembled answer of a stream that ended with [DONE], and who served it.
        self._on_complete = on_complete
        self._assembler = ChunkAssembler() if on_complete is not None else None
        self._usage: dict[str, Any] | None = None
        self._run_id = run_id
        self._include_usage = include_usage
        self._stack = AsyncExitStack()
        self._events: AsyncIterator[StreamEvent] | None = None
        self._handle: WorkflowHandle[Any, ChatResult] | None = None
        self._result: asyncio.Task[ChatResult] | None = None
        self._next: asyncio.Future[StreamEvent] | None = None
        self._first: StreamEvent | None = None
        self._attempt: int | None = None
        self._sent = 0
        self._finished = False

    async def start(
        self,
        route: Route,
        body: dict[str, Any],
        *,
        prompts: list[PromptUse] | None = None,
        options: RunOptions | None = None,
    ) -> None:
        """Start the run and wait for its first event; errors before it raise here."""
        bus = self._runtime.bus
        if bus is None:
            raise ServiceUnavailableError(
                "streaming needs PMP_REDIS_URL when API and worker run as separate processes"
            )
        self._events = await self._stack.enter_async_context(bus.subscribe(self._run_id))
        try:
            self._handle = await start_run(
                self._runtime,
                self._run_id,
                route,
                body,
                stream=True,
                prompts=prompts,
                options=options,
            )
            self._result = asyncio.ensure_future(await_result(self._handle))
            self._first = await self._next_event()
        except BaseException:
            await self.close()
            raise

    async def _next_event(self) -> StreamEvent:
        if self._events is None or self._result is None:
            raise RuntimeError("relay not started")
        if self._next is None:
            self._next = asyncio.ensure_future(anext(self._events))
        waiting: set[asyncio.Future[Any]] = {self._next, self._result}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if self._next.done():
            event, self._next = self._next.result(), None
            return self._checked(event)
        failed = self._result.exception()
        if failed is not None and self._sent == 0:
            raise failed
        # The run has ended; its last events (an "end" or an error) may still be in flight,
        # or went to a bus this process does not see (another process ran the activity).
        try:
            async with asyncio.timeout(END_EVENT_GRACE_S):
                event = await asyncio.shield(self._next)
        except TimeoutError:
            if failed is not None:
                raise failed from None
            logger.warning(
                "stream events did not arrive; answering from the run result",
                extra={"run_id": self._run_id},
            )
            return {"type": "result", "data": self._result.result().response}
        self._next = None
        return self._checked(event)

    def headers(self) -> dict[str, str]:
        """Who serves the stream, known from its first event (before any byte is sent)."""
        first = self._first or {}
        if first.get("type") != "chunk":
            return {"x-pmp-run-id": self._run_id}
        attempts = int(first.get("prior_attempts", 0)) + int(first.get("attempt", 1))
        return run_headers(
            self._run_id, str(first.get("served_by", "")), attempts, int(first.get("step", 0))
        )

    def _checked(self, event: StreamEvent) -> StreamEvent:
        if event.get("type") == "error":
            raise error_from_payload(event.get("error") or {})
        if event.get("type") == "chunk":
            attempt = event.get("attempt")
            if self._attempt is None:
                self._attempt = attempt
            elif attempt != self._attempt:
                raise StreamInterruptedError(
                    "the stream restarted after text was sent", retryable=False
                )
        return event

    async def frames(self) -> AsyncIterator[bytes]:
        """SSE frames: chunks, then `[DONE]`; an error event if the run fails mid-way."""
        try:
            event = self._first
            while event is not None and event.get("type") == "chunk":
                if self._assembler is not None:
                    self._assembler.add(event["data"])
                frame = self._frame(event["data"])
                if frame:
                    yield frame
                self._sent += 1
                event = await self._next_event()
            if event is not None and event.get("type") == "result" and self._sent == 0:
                for chunk in response_to_chunks(event["data"]):
                    frame = self._frame(chunk)
                    if frame:
                        yield frame
            self._finished = True
            await self._complete(event)
            yield b"data: [DONE]\n\n"
        except GatewayError as error:
            self._finished = True
            yield sse_error(error)
        finally:
            await self.close()

    async def _complete(self, last: StreamEvent | None) -> None:
        if self._on_complete is None or self._assembler is None:
            return
        # A "result" event is the run's own whole answer (its chunks never reached us).
        whole = last is not None and last.get("type") == "result"
        response = last["data"] if whole and last else self._assembler.response()
        served_by = self.headers().get("x-pmp-served-by", "")
        result = self._result
        finished = result is not None and result.done() and not result.cancelled()
        if not served_by and finished and result is not None and result.exception() is None:
            served_by = result.result().served_by
        await self._on_complete(response, served_by)

    def _frame(self, chunk: dict[str, Any]) -> bytes | None:
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        if not self._include_usage and "usage" in chunk:
            if not chunk.get("choices"):
                return None
            chunk = {key: value for key, value in chunk.items() if key != "usage"}
        return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n".encode()

    async def close(self) -> None:
        """Release the subscription; a run the client abandoned is cancelled."""
        if self._on_done is not None:
            served_by = self.headers().get("x-pmp-served-by")
            self._on_done(served_by, self._usage)
            self._on_done = None
        if self._next is not None:
            self._next.cancel()
            self._next = None
        result_pending = self._result is None or not self._result.done()
        if self._handle is not None and not self._finished and result_pending:
            self._runtime.spawn(self._handle.cancel(), "cancel abandoned run")
        if self._result is not None and not self._result.done():
            self._result.cancel()
        await self._stack.aclose()
