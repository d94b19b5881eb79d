"""shared.tasks.cancel_and_wait ends a task even when a cancellation is lost (Python 3.11's
asyncio.wait_for returns the inner result instead of raising when both happen at once)."""

from __future__ import annotations

import asyncio

import pytest

from shared.tasks import cancel_all_and_wait, cancel_and_wait


async def _loses_its_first_cancellation(state: dict) -> None:
    """What a `while True: await wait_for(...)` loop does when wait_for swallows the cancel."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            state["cancels"] += 1
            if state["cancels"] == 1:
                continue  # lost, as wait_for loses it
            raise


async def test_a_lost_cancellation_still_ends_the_task():
    state = {"cancels": 0}
    task = asyncio.create_task(_loses_its_first_cancellation(state))
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, recancel_seconds=0.05), 5)
    assert task.cancelled() and state["cancels"] == 2


async def test_a_plain_cancel_and_await_hangs_on_such_a_task():
    """The failure cancel_and_wait exists for: one cancel, then await, never returns."""
    state = {"cancels": 0}
    task = asyncio.create_task(_loses_its_first_cancellation(state))
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done and state["cancels"] == 1
    await cancel_and_wait(task, recancel_seconds=0.05)


async def test_outcomes_are_retrieved_and_nones_skipped():
    async def fails():
        raise RuntimeError("boom")

    async def finishes():
        return 1

    failed, finished = asyncio.create_task(fails()), asyncio.create_task(finishes())
    await asyncio.sleep(0.01)
    await cancel_and_wait(failed, None, finished)
    await cancel_all_and_wait(x for x in [failed, finished])  # a generator is read once, fine
    assert failed.done() and finished.result() == 1


async def test_the_callers_own_cancellation_propagates():
    state = {"cancels": 0}
    task = asyncio.create_task(_loses_its_first_cancellation(state))
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(task, recancel_seconds=10))
    await asyncio.sleep(0.05)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    await cancel_and_wait(task, recancel_seconds=0.05)
