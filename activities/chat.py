"""Chat activities: thin adapters from Temporal to the provider adapters.

Each call checks the model's circuit breaker first, records its outcome there and in
the metrics, and reports which attempt answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.guard import AttemptGuard
from activities.heartbeats import HEARTBEAT_EVERY_S, heartbeating
from activities.model_check import ModelMismatchError, ModelVersionCheck
from gateway_core.breaker.base import CircuitBreaker
from gateway_core.credentials.base import CredentialResolver
from gateway_core.credentials.rotation import call_with_rotation, stream_with_rotation
from gateway_core.domain.chat import ProviderCallInput, ProviderCallResult
from gateway_core.domain.streams import ChunkEvent, EndEvent, ErrorEvent
from gateway_core.error_codec import application_error, payload_from_error
from gateway_core.errors import (
    GatewayError,
    StreamInterruptedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gateway_core.logging import request_id_var
from gateway_core.metrics import GatewayMetrics
from gateway_core.providers.registry import ProviderRegistry
from gateway_core.streaming.assembler import ChunkAssembler
from gateway_core.streaming.bus import StreamBus


def _failure(error: GatewayError) -> ApplicationError:
    """The activity's failure for `error`, recording this attempt's number."""
    return application_error(error, attempt=activity.info().attempt)


class ChatActivities:
    """Holds the long-lived clients the chat activities need."""

    def __init__(
        self,
        providers: ProviderRegistry,
        credentials: CredentialResolver,
        bus: StreamBus,
        breaker: CircuitBreaker,
        metrics: GatewayMetrics,
        models: ModelVersionCheck,
    ) -> None:
        self._models = models
        self._providers = providers
        self._credentials = credentials
        self._bus = bus
        self._guard = AttemptGuard(breaker, metrics)

    async def _admit(self, call: ProviderCallInput) -> None:
        await self._guard.admit(call.model.id)

    async def _verify_model(self, call: ProviderCallInput) -> None:
        """Refuse, before any credential is read, a model that is not its stored version."""
        try:
            await self._models.verify(call.model)
        except ModelMismatchError as error:
            if call.stream_key is not None:
                await self._bus.publish(
                    call.stream_key, ErrorEvent(error=payload_from_error(error))
                )
            raise _failure(error) from None

    async def _settle(
        self, call: ProviderCallInput, started: float, error: BaseException | None
    ) -> None:
        await self._guard.settle(call.model.id, call.chain_id, call.step_index, started, error)

    @activity.defn(name="chat_complete")
    async def complete(self, call: ProviderCallInput) -> ProviderCallResult:
        """One non-streaming upstream call, bounded by the step's latency limit."""
        request_id_var.set(call.request_id)
        await self._verify_model(call)
        await self._admit(call)
        started = time.monotonic()
        limit_s = call.attempt_timeout_ms / 1000 if call.attempt_timeout_ms else None
        try:
            provider = self._providers.get(call.model.provider)
            try:
                # Heartbeats reach a user workflow's chat step (a regular activity) with its cancel.
                async with asyncio.timeout(limit_s), heartbeating():
                    response = await call_with_rotation(
                        self._credentials,
                        call.model.credential,
                        lambda api_key: provider.complete(call.model, call.body, api_key),
                    )
            except TimeoutError:
                raise UpstreamTimeoutError(
                    f"upstream did not answer within {call.attempt_timeout_ms} ms",
                    retryable=True,
                    code="upstream_timeout",
                ) from None
        except GatewayError as error:
            await self._settle(call, started, error)
            raise _failure(error) from None
        await self._settle(call, started, None)
        return ProviderCallResult(response=response, attempt=activity.info().attempt)

    @activity.defn(name="chat_stream")
    async def stream(self, call: ProviderCallInput) -> ProviderCallResult:
        """One streaming upstream call: chunks go to the bus, the assembled answer returns.

        Once a chunk went out, no later attempt may stream again (the client would see
        the text twice): the chunk count rides on the heartbeat, and any failure after
        the first chunk is final.
        """
        request_id_var.set(call.request_id)
        key = call.stream_key
        if key is None:
            raise _failure(UpstreamError("stream call without a key", retryable=False))
        if _chunks_sent_by_earlier_attempt(activity.info().heartbeat_details):
            repeat = StreamInterruptedError(
                "an earlier attempt already streamed text; retrying would repeat it",
                retryable=False,
            )
            await self._bus.publish(key, ErrorEvent(error=payload_from_error(repeat)))
            raise _failure(repeat)
        await self._verify_model(call)
        await self._admit(call)
        assembler = ChunkAssembler()
        heartbeat = asyncio.create_task(_heartbeat_forever(assembler))
        started = time.monotonic()
        try:
            await self._relay(call, key, assembler)
        except Exception as exc:
            error = await self._stream_failure(exc, call, key, assembler)
            await self._settle(call, started, exc if error is None else error)
            if error is None:
                raise
            raise _failure(error) from None
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await self._settle(call, started, None)
        await self._bus.publish(key, EndEvent())
        return ProviderCallResult(response=assembler.response(), attempt=activity.info().attempt)

    async def _stream_failure(
        self, exc: Exception, call: ProviderCallInput, key: str, assembler: ChunkAssembler
    ) -> GatewayError | None:
        error: GatewayError | None = exc if isinstance(exc, GatewayError) else None
        if not assembler.chunks:
            return error
        reason = error.message if error else type(exc).__name__
        interrupted = StreamInterruptedError(
            f"stream interrupted after {assembler.chunks} chunks: {reason}",
            retryable=False,
            upstream_status=getattr(exc, "upstream_status", None),
        )
        await self._bus.publish(key, ErrorEvent(error=payload_from_error(interrupted)))
        return interrupted

    async def _relay(self, call: ProviderCallInput, key: str, assembler: ChunkAssembler) -> None:
        provider = self._providers.get(call.model.provider)
        attempt = activity.info().attempt
        opened = stream_with_rotation(
            self._credentials,
            call.model.credential,
            lambda api_key: provider.stream(call.model, call.body, api_key),
        )
        async with contextlib.aclosing(opened) as chunks:
            async for chunk in _first_within(chunks, call.first_chunk_timeout_ms):
                assembler.add(chunk)
                event = ChunkEvent(
                    attempt=attempt,
                    served_by=call.model.id,
                    step=call.step_index,
                    prior_attempts=call.prior_attempts,
                    data=chunk,
                )
                await self._bus.publish(key, event)
                activity.heartbeat(assembler.chunks)


async def _first_within(
    chunks: AsyncGenerator[dict[str, Any]], timeout_ms: int | None
) -> AsyncIterator[dict[str, Any]]:
    """Yield the chunks, failing (retryably) when the first one takes too long."""
    try:
        async with asyncio.timeout(timeout_ms / 1000 if timeout_ms else None):
            first = await anext(chunks)
    except TimeoutError:
        raise UpstreamTimeoutError(
            f"no first chunk within {timeout_ms} ms", retryable=True, code="upstream_timeout"
        ) from None
    except StopAsyncIteration:
        raise UpstreamError("upstream stream was empty", retryable=True) from None
    yield first
    async for chunk in chunks:
        yield chunk


def _chunks_sent_by_earlier_attempt(details: Any) -> bool:
    return bool(details) and isinstance(details[0], int) and details[0] > 0


async def _heartbeat_forever(assembler: ChunkAssembler) -> None:
    """Heartbeat while the upstream is silent, so a cancellation still reaches us."""
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY_S)
        activity.heartbeat(assembler.chunks)
