"""A background task that runs a coroutine function now, then again every interval or sooner when
woken: a sweeper, a job scanner. A failed turn is logged and the next one runs as scheduled;
`stop()` cancels it wherever it is and waits for it to end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from shared.tasks import cancel_and_wait


class Periodic:
    def __init__(
        self,
        body: Callable[[], Awaitable[object]],
        every: float | Callable[[], float],
        *,
        name: str,
        log: logging.Logger,
        failure: str,
    ):
        """`every`: seconds, or a function giving the next wait (read after each turn).
        `failure`: the warning logged when a turn raises (with the error)."""
        self.body = body
        self.every = every
        self.name = name
        self.log = log
        self.failure = failure
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        """Run the next turn now (or at once after the one in progress)."""
        self._wake.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            try:
                await self.body()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.warning(self.failure, extra={"error": repr(exc)})
            self._wake.clear()
            wait = self.every() if callable(self.every) else self.every
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
