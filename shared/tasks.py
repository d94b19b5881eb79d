"""Stopping background tasks for sure.

Python 3.11's `asyncio.wait_for` loses a cancellation that arrives while the awaitable it wraps is
completing (it returns the result instead of raising CancelledError; python/cpython#86296, fixed
in 3.12 by the `asyncio.timeout` rewrite). A background loop such as
`while True: await asyncio.wait_for(event.wait(), interval)` then survives its `task.cancel()`,
and whoever awaits the task at shutdown waits forever: the suite hung that way in
`Tombstones.stop` (a resync every 0.2 s). `cancel_and_wait` cancels again until the task has
ended, so one lost cancellation costs `recancel_seconds` (2 s), not a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

# Long enough for a task's own clean-up on cancellation (releasing a connection) not to be interrupted.
RECANCEL_SECONDS = 2.0


async def cancel_and_wait(*tasks: asyncio.Task | None, recancel_seconds: float = RECANCEL_SECONDS) -> None:
    """Cancels the tasks and waits until each has ended, whatever it raised (its outcome is
    retrieved, so asyncio logs no 'exception was never retrieved'). `None`s are skipped."""
    await cancel_all_and_wait([t for t in tasks if t is not None], recancel_seconds=recancel_seconds)


async def cancel_all_and_wait(tasks: Iterable[asyncio.Task], *, recancel_seconds: float = RECANCEL_SECONDS) -> None:
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=recancel_seconds)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the caller is stopping, whatever it raised is moot
