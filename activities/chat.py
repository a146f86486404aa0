"""Chat activities: thin adapters from Temporal to the provider adapters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from temporalio import activity

from activities.errors import to_application_error
from gateway_core.credentials.base import CredentialResolver
from gateway_core.domain.chat import ProviderCallInput
from gateway_core.errors import (
    GatewayError,
    StreamInterruptedError,
    UpstreamError,
    UpstreamTimeoutError,
    error_to_payload,
)
from gateway_core.logging import request_id_var
from gateway_core.providers.registry import ProviderRegistry
from gateway_core.streaming.assembler import ChunkAssembler
from gateway_core.streaming.bus import StreamBus

HEARTBEAT_EVERY_S = 1.0


class ChatActivities:
    """Holds the long-lived clients the chat activities need."""

    def __init__(
        self, providers: ProviderRegistry, credentials: CredentialResolver, bus: StreamBus
    ) -> None:
        self._providers = providers
        self._credentials = credentials
        self._bus = bus

    @activity.defn(name="chat_complete")
    async def complete(self, call: ProviderCallInput) -> dict[str, Any]:
        """One non-streaming upstream call."""
        request_id_var.set(call.request_id)
        try:
            api_key = await self._credentials.resolve(call.model.credential)
            provider = self._providers.get(call.model.provider)
            return await provider.complete(call.model, call.body, api_key)
        except GatewayError as error:
            raise to_application_error(error) from None

    @activity.defn(name="chat_stream")
    async def stream(self, call: ProviderCallInput) -> dict[str, Any]:
        """One streaming upstream call: chunks go to the bus, the assembled answer returns.

        Once a chunk went out, no later attempt may stream again (the client would see
        the text twice): the chunk count rides on the heartbeat, and any failure after
        the first chunk is final.
        """
        request_id_var.set(call.request_id)
        key = call.stream_key
        if key is None:
            raise to_application_error(UpstreamError("stream call without a key", retryable=False))
        if _chunks_sent_by_earlier_attempt(activity.info().heartbeat_details):
            repeat = StreamInterruptedError(
                "an earlier attempt already streamed text; retrying would repeat it",
                retryable=False,
            )
            await self._bus.publish(key, {"type": "error", "error": error_to_payload(repeat)})
            raise to_application_error(repeat)
        assembler = ChunkAssembler()
        heartbeat = asyncio.create_task(_heartbeat_forever(assembler))
        try:
            await self._relay(call, key, assembler)
        except Exception as exc:
            error: GatewayError | None = exc if isinstance(exc, GatewayError) else None
            if assembler.chunks:
                reason = error.message if error else type(exc).__name__
                error = StreamInterruptedError(
                    f"stream interrupted after {assembler.chunks} chunks: {reason}",
                    retryable=False,
                    upstream_status=getattr(exc, "upstream_status", None),
                )
                await self._bus.publish(key, {"type": "error", "error": error_to_payload(error)})
            if error is None:
                raise
            raise to_application_error(error) from None
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await self._bus.publish(key, {"type": "end"})
        return assembler.response()

    async def _relay(self, call: ProviderCallInput, key: str, assembler: ChunkAssembler) -> None:
        api_key = await self._credentials.resolve(call.model.credential)
        provider = self._providers.get(call.model.provider)
        attempt = activity.info().attempt
        async with contextlib.aclosing(provider.stream(call.model, call.body, api_key)) as chunks:
            async for chunk in _first_within(chunks, call.first_chunk_timeout_ms):
                assembler.add(chunk)
                await self._bus.publish(key, {"type": "chunk", "attempt": attempt, "data": chunk})
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
