"""Votes coalesced like a group commit: while a vote statement is in flight, the votes that arrive
wait for the next one, which carries them all (repositories/votes.cast_many). Votes on one story
serialize on its row lock; one statement per vote made that lock (and a commit) the price of every
vote, about 300 votes/s on one story here. A batch takes the lock and commits once for all of its
votes, so the rate grows with the load instead of collapsing under it.

Each caller still gets its own answer: its vote's `previous` and the counters right after it. A
(target, user) pair appears at most once in a statement (a second vote of the same user on the same
target waits for the next one, so its previous value is the first one's). A caller cancelled while
queued is left out; one cancelled while its statement runs has voted (the vote is what it asked for).
A statement that fails fails every vote in it and changes nothing (it is one statement); one that
lost a deadlock to another instance's batch is retried."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from community_service.repositories import votes as vote_repo
from shared.tasks import cancel_all_and_wait

log = logging.getLogger("community_service.vote_batch")

DEADLOCK_RETRIES = 3


class VoteBatcher:
    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 500, in_flight: int = 2):
        self.pool = pool
        self.max_batch = max_batch
        self.in_flight = in_flight  # statements at once per target type
        self._queues: dict[str, list] = {t: [] for t in vote_repo.TABLES}
        self._running: dict[str, int] = dict.fromkeys(vote_repo.TABLES, 0)
        self._tasks: set[asyncio.Task] = set()
        self.calls = 0  # statements run, and the most votes one carried
        self.largest = 0

    async def cast(self, target_type: str, target_id, user_id: str, value: int, event=None):
        """The vote's row from cast_many (visible, previous, up, down)."""
        fut = asyncio.get_running_loop().create_future()
        self._queues[target_type].append(((target_id, user_id, value, event), fut))
        if self._running[target_type] < self.in_flight:
            self._running[target_type] += 1
            task = asyncio.get_running_loop().create_task(self._flush(target_type))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    def _take(self, queue: list) -> list:
        batch, rest, pairs = [], [], set()
        for item in queue:
            if item[1].done():
                continue
            pair = (item[0][0], item[0][1])
            if pair in pairs or len(batch) >= self.max_batch:
                rest.append(item)
            else:
                pairs.add(pair)
                batch.append(item)
        queue[:] = rest
        return batch

    async def _flush(self, target_type: str) -> None:
        queue = self._queues[target_type]
        try:
            while queue:
                batch = self._take(queue)
                if not batch:
                    continue
                try:
                    rows = await self._call(target_type, [vote for vote, _ in batch])
                except asyncio.CancelledError:
                    for _, fut in batch:
                        fut.cancel()
                    raise
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), row in zip(batch, rows, strict=True):
                    if not fut.done():
                        fut.set_result(row)
        finally:
            self._running[target_type] -= 1

    async def _call(self, target_type: str, votes: list[tuple]) -> list:
        self.calls += 1
        self.largest = max(self.largest, len(votes))
        for attempt in range(DEADLOCK_RETRIES):
            try:
                async with self.pool.acquire() as conn:
                    return await vote_repo.cast_many(conn, target_type, votes)
            except asyncpg.DeadlockDetectedError:
                # Two instances' batches locked two targets in opposite orders; the statement
                # was rolled back whole, so running it again is safe.
                if attempt == DEADLOCK_RETRIES - 1:
                    raise
                log.info("vote batch deadlocked, retrying", extra={"votes": len(votes)})
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await cancel_all_and_wait(list(self._tasks))
