"""A concurrency limit whose waiters are served by priority: Max tier before Pro and Free."""

from __future__ import annotations

import asyncio
import heapq
import itertools

from shared.auth import TIER_MAX


class QueueTimeout(Exception):
    pass


def priority(tier: int) -> int:
    """Lower is served first."""
    return 0 if tier >= TIER_MAX else 1


class PrioritySemaphore:
    """A concurrency limit whose waiters are served by priority (lower first), then arrival."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self.active = 0
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._seq = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    async def acquire(self, priority: int = 1, wait_seconds: float | None = None) -> None:
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), fut))
        try:
            await asyncio.wait_for(fut, wait_seconds)
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                self.release()
            raise QueueTimeout(f"no free slot within {wait_seconds}s") from None
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just as we gave up
            else:
                fut.cancel()
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(True)  # hand the slot over: `active` stays the same
                return
        self.active = max(0, self.active - 1)
