"""Heartbeats of regular activities: how a cancellation, or a dead worker, is noticed.

Temporal delivers a run's cancellation to an activity only in a heartbeat's response, and
retries a dead worker's attempt after its heartbeat timeout rather than its whole
start-to-close timeout; so every activity that can wait on I/O heartbeats while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

HEARTBEAT_EVERY_S = 1.0


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat while the block runs (a local activity has none: its run cancels it)."""
    if activity.info().is_local:
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
