"""Rotation: an upstream refusing a credential (401/403) gets one retry with a fresh value."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

from gateway_core.credentials.base import CredentialResolver
from gateway_core.domain.models import CredentialRef
from gateway_core.errors import UpstreamError

T = TypeVar("T")
REJECTED_STATUS = frozenset({401, 403})


async def _fresh_value(
    resolver: CredentialResolver, ref: CredentialRef | None, error: UpstreamError, used: str | None
) -> str | None:
    """A different value to retry with after a refusal; re-raises `error` when there is none."""
    if ref is None or error.upstream_status not in REJECTED_STATUS:
        raise error
    resolver.invalidate(ref)
    fresh = await resolver.resolve(ref)
    if fresh == used:  # the store still holds the refused value: retrying cannot help
        raise error
    return fresh


async def call_with_rotation(
    resolver: CredentialResolver,
    ref: CredentialRef | None,
    call: Callable[[str | None], Awaitable[T]],
) -> T:
    """`call(api_key)`; after a 401/403, once more with a freshly fetched value."""
    api_key = await resolver.resolve(ref)
    try:
        return await call(api_key)
    except UpstreamError as error:
        fresh = await _fresh_value(resolver, ref, error, api_key)
    return await call(fresh)


async def stream_with_rotation(
    resolver: CredentialResolver,
    ref: CredentialRef | None,
    open_stream: Callable[[str | None], AsyncGenerator[dict[str, Any]]],
) -> AsyncGenerator[dict[str, Any]]:
    """The chunks of `open_stream(api_key)`; a refusal before the first chunk is retried once."""
    api_key = await resolver.resolve(ref)
    async with contextlib.aclosing(open_stream(api_key)) as chunks:
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            return
        except UpstreamError as error:
            fresh = await _fresh_value(resolver, ref, error, api_key)
        else:
            yield first
            async for chunk in chunks:
                yield chunk
            return
    async with contextlib.aclosing(open_stream(fresh)) as chunks:
        async for chunk in chunks:
            yield chunk
