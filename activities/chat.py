"""Chat activities: thin adapters from Temporal to the provider adapters."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from temporalio import activity

from activities.errors import to_application_error
from gateway_core.credentials.base import CredentialResolver
from gateway_core.domain.chat import ProviderCallInput
from gateway_core.errors import GatewayError, StreamInterruptedError, UpstreamError
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
        """One streaming upstream call: chunks go to the bus, the assembled answer returns."""
        if call.stream_key is None:
            raise to_application_error(UpstreamError("stream call without a key", retryable=False))
        key = call.stream_key
        request_id_var.set(call.request_id)
        assembler = ChunkAssembler()
        heartbeat = asyncio.create_task(_heartbeat_forever())
        try:
            api_key = await self._credentials.resolve(call.model.credential)
            provider = self._providers.get(call.model.provider)
            async for chunk in provider.stream(call.model, call.body, api_key):
                assembler.add(chunk)
                await self._bus.publish(key, {"type": "chunk", "data": chunk})
                activity.heartbeat()
        except GatewayError as error:
            if assembler.chunks and isinstance(error, UpstreamError):
                # Text already reached the client: a retry would send it twice.
                error = StreamInterruptedError(
                    f"stream interrupted after {assembler.chunks} chunks: {error.message}",
                    retryable=False,
                    upstream_status=error.upstream_status,
                )
            raise to_application_error(error) from None
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await self._bus.publish(key, {"type": "end"})
        return assembler.response()


async def _heartbeat_forever() -> None:
    """Heartbeat while the upstream is silent, so a cancellation still reaches us."""
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY_S)
        activity.heartbeat()
