"""ResultHandOff: a waiter settled from another thread, and only while it waits."""

from __future__ import annotations

import asyncio
import threading

from temporal_workers.result_handoff import FROM_HISTORY, ResultHandOff


async def test_a_delivery_from_a_workflow_thread_settles_the_waiter() -> None:
    handoff = ResultHandOff()
    with handoff.awaiting("run-1") as future:
        thread = threading.Thread(target=handoff.deliver, args=("run-1", {"ok": 1}))
        thread.start()
        assert await asyncio.wait_for(future, 10) == {"ok": 1}
        thread.join()


async def test_deliveries_for_other_runs_or_after_leaving_are_dropped() -> None:
    handoff = ResultHandOff()
    with handoff.awaiting("run-1") as future:
        handoff.deliver("run-2", "not mine")
        await asyncio.sleep(0)
        assert not future.done()
    handoff.deliver("run-1", "too late")  # nobody waits any more: no error, no entry
    await asyncio.sleep(0)
    assert not future.done()
    assert not handoff._waiting


async def test_a_waiter_that_went_away_is_not_settled() -> None:
    handoff = ResultHandOff()
    with handoff.awaiting("run-1") as future:
        future.cancel()  # the request's client disconnected
        handoff.deliver("run-1", FROM_HISTORY)
        await asyncio.sleep(0)
        assert future.cancelled()
