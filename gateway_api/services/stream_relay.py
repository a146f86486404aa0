"""Relays a streaming run's chunks from the stream bus to the client as SSE frames."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, assert_never

from temporalio.client import WorkflowHandle

from gateway_api.services.answers import SSE_DONE, run_headers, sse_data
from gateway_api.services.background import Background
from gateway_api.services.run_client import RunClient
from gateway_core.domain.chat import ChatResult
from gateway_core.domain.streams import (
    ChunkEvent,
    EndEvent,
    ErrorEvent,
    ResultEvent,
    StreamEvent,
)
from gateway_core.error_codec import error_from_payload, sse_error_frame
from gateway_core.errors import GatewayError, ServiceUnavailableError, StreamInterruptedError
from gateway_core.streaming.assembler import ChunkAssembler, response_to_chunks
from gateway_core.streaming.bus import StreamBus

logger = logging.getLogger(__name__)

RunStarter = Callable[[], Awaitable[WorkflowHandle[Any, ChatResult]]]

# Once the run has ended, how long its last events may still be in flight on the bus.
END_EVENT_GRACE_S = 2.0


class StreamRelay:
    """Relays one streaming run: waits for its first chunk, then yields SSE frames."""

    def __init__(
        self,
        bus: StreamBus | None,
        runs: RunClient,
        background: Background,
        run_id: str,
        include_usage: bool,
        on_done: Callable[[str | None, dict[str, Any] | None], None] | None = None,
        on_complete: Callable[[dict[str, Any], str], Awaitable[None]] | None = None,
        idempotent: bool = False,
    ) -> None:
        self._bus = bus
        # With an Idempotency-Key the run may be another request's: its result is in history.
        self._idempotent = idempotent
        self._runs = runs
        self._background = background
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

    async def start(self, start_run: RunStarter) -> None:
        """Subscribe, start the run and wait for its first event; errors before it raise here.

        The subscription and the result's hand-off open first: the run may publish as soon
        as it starts. The result tells a failure that published nothing.
        """
        bus = self._bus
        if bus is None:
            raise ServiceUnavailableError(
                "streaming needs PMP_REDIS_URL when API and worker run as separate processes"
            )
        self._events = await self._stack.enter_async_context(bus.subscribe(self._run_id))
        handed_over = self._stack.enter_context(
            self._runs.awaiting(self._run_id, idempotent=self._idempotent)
        )
        try:
            self._handle = await start_run()
            self._result = asyncio.ensure_future(self._runs.outcome(self._handle, handed_over))
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
            return ResultEvent(data=self._result.result().response)
        self._next = None
        return self._checked(event)

    def headers(self) -> dict[str, str]:
        """Who serves the stream, known from its first event (before any byte is sent)."""
        first = self._first
        if not isinstance(first, ChunkEvent):
            return {"x-pmp-run-id": self._run_id}
        attempts = first.prior_attempts + first.attempt
        return run_headers(self._run_id, first.served_by, attempts, first.step)

    def _checked(self, event: StreamEvent) -> StreamEvent:
        match event:
            case ErrorEvent():
                raise error_from_payload(event.error)
            case ChunkEvent():
                if self._attempt is None:
                    self._attempt = event.attempt
                elif event.attempt != self._attempt:
                    raise StreamInterruptedError(
                        "the stream restarted after text was sent", retryable=False
                    )
            case EndEvent() | ResultEvent():
                pass
            case _:
                assert_never(event)
        return event

    async def frames(self) -> AsyncIterator[bytes]:
        """SSE frames: chunks, then `[DONE]`; an error event if the run fails mid-way."""
        try:
            event = self._first
            while isinstance(event, ChunkEvent):
                if self._assembler is not None:
                    self._assembler.add(event.data)
                frame = self._frame(event.data)
                if frame:
                    yield frame
                self._sent += 1
                event = await self._next_event()
            if isinstance(event, ResultEvent) and self._sent == 0:
                for chunk in response_to_chunks(event.data):
                    frame = self._frame(chunk)
                    if frame:
                        yield frame
            self._finished = True
            await self._complete(event)
            yield SSE_DONE
        except GatewayError as error:
            self._finished = True
            yield sse_error_frame(error)
        finally:
            await self.close()

    async def _complete(self, last: StreamEvent | None) -> None:
        if self._on_complete is None or self._assembler is None:
            return
        # A "result" event is the run's own whole answer (its chunks never reached us).
        response = last.data if isinstance(last, ResultEvent) else self._assembler.response()
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
        return sse_data(chunk)

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
        # Another client of the same run (the same Idempotency-Key) may still be reading.
        shared = self._bus is not None and self._bus.shared(self._run_id)
        if self._handle is not None and not self._finished and result_pending and not shared:
            self._background.spawn(self._handle.cancel(), "cancel abandoned run")
        if self._result is not None and not self._result.done():
            self._result.cancel()
        await self._stack.aclose()
